"""Signals before the event loop: imported first by `supervisor.__main__`, so it imports nothing
but `signal` (the package's own imports take most of a second)."""

from __future__ import annotations

import os
import signal
from types import FrameType


def reserve_standard_fds() -> None:
    """Put the null device on stdin, stdout or stderr if the process was started with one closed
    (`2>&-`): the descriptor would otherwise be reused by the next file or socket opened, and the
    event loop's library aborts when it closes a descriptor numbered 0 to 2."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)


class EarlySignals:
    """SIGINT, SIGTERM and SIGHUP from the process's first instruction until the event loop takes
    over: a stop asked for meanwhile is recorded (the run then stops as soon as it can, without a
    traceback), and a SIGHUP, whose default would kill the process, is ignored."""

    def __init__(self) -> None:
        self.received: list[signal.Signals] = []

    @classmethod
    def install(cls) -> EarlySignals:
        early = cls()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, early._record)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        return early

    def _record(self, signum: int, _frame: FrameType | None) -> None:
        self.received.append(signal.Signals(signum))

    def release(self) -> int | None:
        """Python's own handling from now on (for a command without an event loop); the exit
        code to end with at once when a stop was asked for meanwhile."""
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
        return 128 + self.received[0] if self.received else None
