"""A daemon keeps producing when it cannot log, and a report whose reader leaves early ends
quietly: the real CLI with its standard streams broken under it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from supervisor.errors import ExitCode
from tests.integration.cli_process import ROOT

ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def dry_run(summary: Path, **kwargs: object) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "supervisor", "run", "--dry-run", "--config", "config.yaml",
         "--summary", str(summary)],
        cwd=ROOT, env=ENV, stdout=subprocess.PIPE, **kwargs,  # type: ignore[call-overload]
    )  # fmt: skip


def stop(proc: subprocess.Popen[bytes]) -> int:
    """SIGTERM, reading what is left of its messages (so that it never blocks on a full pipe)."""
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    return proc.returncode


def test_a_log_pipe_that_dies_does_not_stop_the_run_and_the_summary_is_written(
    tmp_path: Path,
) -> None:
    summary = tmp_path / "summary.json"
    proc = dry_run(summary, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    for line in proc.stderr:  # the run is under way...
        if b'"event": "profile_started"' in line:
            break
    proc.stderr.close()  # ...when whoever read its logs goes away
    assert proc.stdout is not None
    for _ in range(50):  # it goes on streaming
        proc.stdout.readline()
    assert stop(proc) == ExitCode.OK
    document = json.loads(summary.read_text())
    assert document["total"]["delivered"] == document["total"]["produced"]
    assert document["log_lines_dropped"] > 0  # the final lines, at least


def test_a_run_without_a_stderr_at_all_still_runs_and_writes_its_summary(tmp_path: Path) -> None:
    summary = tmp_path / "summary.json"
    proc = dry_run(summary, stderr=subprocess.DEVNULL, preexec_fn=lambda: os.close(2))
    assert proc.stdout is not None
    for _ in range(50):  # it streams
        assert proc.stdout.readline()
    assert stop(proc) == ExitCode.OK
    assert json.loads(summary.read_text())["total"]["produced"] > 0


def test_check_piped_into_head_ends_quietly_with_its_exit_code() -> None:
    result = subprocess.run(
        f"{sys.executable} -m supervisor check --config config.yaml | head -1",
        shell=True, cwd=ROOT, env=ENV, capture_output=True, timeout=60, check=False,
        executable="/bin/bash",
    )  # fmt: skip
    assert result.stdout.decode().startswith("✓ config ")
    assert result.stderr == b""
