"""Signals before the event loop: imported first by `supervisor.__main__`, so it imports nothing
but `signal` (the package's own imports take most of a second)."""

from __future__ import annotations

import os
import signal
from types import FrameType

TYPE_CHECKING = False  # typing's own, without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable


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
    over, recorded: a stop asked for meanwhile ends the run as soon as it can (without a
    traceback), and a reload asked for meanwhile is applied once the fleet runs. SIGHUP's default
    would kill the process; ignoring it instead would drop the reload of a config file edited
    after the process read it (its pid file is written before the loop starts)."""

    def __init__(self) -> None:
        self.received: list[signal.Signals] = []

    @classmethod
    def install(cls) -> EarlySignals:
        early = cls()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, early._record)
        return early

    def _record(self, signum: int, _frame: FrameType | None) -> None:
        self.received.append(signal.Signals(signum))

    def replay(self, *, on_stop: Callable[[str], None], on_reload: Callable[[], None]) -> None:
        """Hand what was received to the event loop's handlers, in the order it came."""
        for sig in self.received:
            if sig == signal.SIGHUP:
                on_reload()
            else:
                on_stop(sig.name)

    def release(self) -> int | None:
        """Python's own handling from now on (for a command without an event loop); the exit
        code to end with at once when a stop was asked for meanwhile (a SIGHUP is for `run`'s
        config file: another command has none to re-read, and ignores it)."""
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
        stops = [sig for sig in self.received if sig != signal.SIGHUP]
        return 128 + stops[0] if stops else None
