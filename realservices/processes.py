"""Server processes: start one on a loopback port, wait until it is ready, stop it by its PID.

Every process started here is stopped by its owner (``stop_process``, ``kill_process`` or the
server object's ``stop()``); an ``atexit`` hook is the safety net for the ones a crash left behind.

Readiness is polled against a deadline: the pause between two probes is a ``Popen.wait`` on the
server itself, so a server that dies during startup is reported at once with the tail of its log.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

__all__ = [
    "LOCALHOST",
    "ServiceStartError",
    "free_port",
    "kill_process",
    "make_log_dir",
    "spawn",
    "stop_process",
    "wait_ready",
]

LOCALHOST = "127.0.0.1"

PROBE_INTERVAL_S = 0.05
_STOP_TIMEOUT_S = 10.0
_LOG_TAIL_BYTES = 4000


class ServiceStartError(RuntimeError):
    """A server did not become ready in time, or exited during startup."""


# The processes started here and not yet stopped. A safety net only: callers stop what they start.
_live_processes: set[subprocess.Popen[bytes]] = set()
_temp_dirs: set[Path] = set()


def stop_process(process: subprocess.Popen[bytes], *, timeout_s: float = _STOP_TIMEOUT_S) -> None:
    """SIGTERM, wait up to ``timeout_s``, then SIGKILL and reap. Idempotent."""
    try:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    finally:
        _live_processes.discard(process)


def kill_process(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL and reap. Idempotent."""
    try:
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait()
    finally:
        _live_processes.discard(process)


@atexit.register
def _stop_leftovers() -> None:
    for process in list(_live_processes):
        stop_process(process, timeout_s=3.0)
    for directory in list(_temp_dirs):
        shutil.rmtree(directory, ignore_errors=True)
    _temp_dirs.clear()


def make_log_dir(prefix: str) -> Path:
    """A fresh temporary directory for a server's log, removed at exit."""
    directory = Path(tempfile.mkdtemp(prefix=prefix))
    _temp_dirs.add(directory)
    return directory


def spawn(
    argv: list[str], *, port: int, log_path: Path, env: dict[str, str] | None
) -> subprocess.Popen[bytes]:
    """Start a server for ``port``, stdout and stderr appended to ``log_path`` (never a pipe)."""
    _ensure_port_free(port)
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env
        )
    _live_processes.add(process)
    return process


def _log_tail(log_path: Path) -> str:
    try:
        with log_path.open("rb") as log:
            log.seek(0, os.SEEK_END)
            log.seek(max(0, log.tell() - _LOG_TAIL_BYTES))
            return log.read().decode(errors="replace")
    except OSError as exc:
        return f"<log unreadable: {exc}>"


def wait_ready(
    what: str,
    process: subprocess.Popen[bytes],
    log_path: Path,
    probe: Callable[[], bool],
    *,
    timeout_s: float,
) -> None:
    """Probe until ready; on timeout or early exit stop the process and raise with its log tail."""
    deadline = time.monotonic() + timeout_s
    while True:
        if probe() and process.poll() is None:
            return
        # The pause between probes is a wait on the server: an early exit is seen at once.
        try:
            code = process.wait(timeout=PROBE_INTERVAL_S)
        except subprocess.TimeoutExpired:
            code = None
        if code is not None:
            _live_processes.discard(process)
            raise ServiceStartError(
                f"{what} exited with code {code} during startup; log {log_path}:\n"
                f"{_log_tail(log_path)}"
            )
        if time.monotonic() >= deadline:
            stop_process(process)
            raise ServiceStartError(
                f"{what} not ready within {timeout_s:g}s; log {log_path}:\n{_log_tail(log_path)}"
            )


def _ensure_port_free(port: int) -> None:
    """Refuse a port something listens on: a second server there would fail to bind (Tansu
    panics but exits 0), and the readiness probe would be answered by the first one."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # SO_REUSEADDR: a killed server's TIME_WAIT connections do not count, a listener does.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOCALHOST, port))
        except OSError as exc:
            raise ServiceStartError(f"port {port} on {LOCALHOST} is taken: {exc}") from exc


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the OS's choice; racy by nature, but briefly)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOCALHOST, 0))
        port: int = sock.getsockname()[1]
        return port
