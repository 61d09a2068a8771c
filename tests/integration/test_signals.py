"""Signals are obeyed from the process's first instruction: a stop asked for while the package is
still being imported ends the run cleanly, and an early SIGHUP does not kill it: the reload it
asks for is applied once the fleet runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.integration.cli_process import ROOT

# Stimulus times, not synchronisation: the package's imports take most of a second, so a signal
# sent this soon after the start lands while they run (or, on a slow machine, earlier still).
EARLY_S = (0.3, 0.5, 0.7)


def start_dry_run() -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "supervisor", "run", "--dry-run", "--config", "config.yaml"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


@pytest.mark.parametrize("delay_s", EARLY_S)
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_asked_for_while_starting_ends_the_run_without_a_traceback(
    delay_s: float, signum: signal.Signals
) -> None:
    proc = start_dry_run()
    time.sleep(delay_s)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=30)
    stderr = err.decode()
    assert "Traceback" not in stderr, stderr
    assert proc.returncode == 0, stderr
    assert '"event": "shutdown_requested"' in stderr


@pytest.mark.parametrize("delay_s", EARLY_S)
def test_an_early_sighup_is_applied_once_the_fleet_runs(delay_s: float) -> None:
    proc = start_dry_run()
    time.sleep(delay_s)
    proc.send_signal(signal.SIGHUP)
    seen = []
    for line in proc.stderr or ():  # the run goes on, and re-reads its config once running
        event = json.loads(line).get("event")
        seen.append(event)
        if event == "config_reloaded":
            break
    assert seen.index("profile_started") < seen.index("config_reloaded")
    assert proc.poll() is None
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err.decode()
