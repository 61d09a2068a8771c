"""Run `streaming-producer` as a subprocess and follow its JSON log lines.

Synchronisation is on log events (`wait_for`), never on sleeps.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

Event = dict[str, Any]

ROOT = Path(__file__).resolve().parents[2]


class CliProcess:
    """`python -m supervisor ARGS` with JSON logs on stderr collected by a reader thread."""

    def __init__(
        self,
        args: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        command: Sequence[str] = (sys.executable, "-m", "supervisor"),
    ) -> None:
        """`command` runs the program: `python -m supervisor` by default (`docker run ... IMAGE`
        for the container's)."""
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("KAFKA_")}
        for name in ("KEY", "SECRET", "ENDPOINT_URL", "PRODUCE_INTERVAL"):
            full_env.pop(name, None)
        full_env.update(env or {})
        self.args = [*command, *args]
        self.process = subprocess.Popen(
            self.args,
            cwd=cwd or ROOT,
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.lines: list[str] = []
        self.events: list[Event] = []
        self._new: queue.Queue[Event | None] = queue.Queue()
        self.stdout = b""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._out_reader = threading.Thread(target=self._read_stdout, daemon=True)
        self._out_reader.start()

    def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        self.stdout = self.process.stdout.read()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for raw in self.process.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.lines.append(line)
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict):
                self.events.append(event)
                self._new.put(event)
        self._new.put(None)

    def wait_for(self, predicate: Callable[[Event], bool], *, timeout_s: float = 30) -> Event:
        """The first log event (past or future) for which `predicate` holds."""
        for event in list(self.events):
            if predicate(event):
                return event
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no matching log event in {timeout_s}s; log:\n{self.log()}")
            try:
                event = self._new.get(timeout=remaining)
            except queue.Empty:
                continue
            if event is None:
                raise AssertionError(f"process exited before the event; log:\n{self.log()}")
            if predicate(event):
                return event

    def signal(self, sig: signal.Signals = signal.SIGTERM) -> None:
        self.process.send_signal(sig)

    def wait(self, timeout_s: float = 60) -> int:
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise
        # Both pipes reach EOF when the process exits: every line is collected after the joins.
        self._reader.join(timeout=10)
        self._out_reader.join(timeout=10)
        return self.process.returncode

    def sigterm_and_wait(self, timeout_s: float = 60) -> int:
        """SIGTERM, then the exit code: the run must be gone within `timeout_s`."""
        self.signal(signal.SIGTERM)
        return self.wait(timeout_s)

    def stop(self) -> None:
        """Make sure the process is gone and its pipes closed (test teardown)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._reader.join(timeout=10)
        self._out_reader.join(timeout=10)
        for pipe in (self.process.stdout, self.process.stderr):
            if pipe is not None:
                pipe.close()

    def output(self) -> str:
        """Everything the process wrote to stdout, once it has exited."""
        self._out_reader.join(timeout=10)
        return self.stdout.decode()

    def log(self) -> str:
        return "\n".join(self.lines[-60:])

    def named(self, name: str) -> list[Event]:
        return [e for e in self.events if e.get("event") == name]
