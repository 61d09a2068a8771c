"""Signals before the event loop: recorded, then handed to the loop's handlers in order; a
SIGHUP then is a reload applied once the fleet runs, not dropped."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from supervisor.cli import main
from supervisor.signals import EarlySignals

DATASET = Path(__file__).parents[2] / "data" / "transactions.csv"


@pytest.fixture
def restored_handlers() -> Iterator[None]:
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def test_signals_before_the_loop_are_recorded_sighup_included(restored_handlers: None) -> None:
    early = EarlySignals.install()
    signal.raise_signal(signal.SIGHUP)  # its default would end this process
    signal.raise_signal(signal.SIGTERM)
    assert early.received == [signal.SIGHUP, signal.SIGTERM]


def test_replay_hands_each_signal_to_its_handler_in_order() -> None:
    early = EarlySignals()
    early.received = [signal.SIGHUP, signal.SIGTERM, signal.SIGHUP]
    calls: list[str] = []
    early.replay(on_stop=calls.append, on_reload=lambda: calls.append("reload"))
    assert calls == ["reload", "SIGTERM", "reload"]


def test_a_command_without_a_loop_ends_on_an_early_stop_and_ignores_an_early_sighup(
    restored_handlers: None,
) -> None:
    early = EarlySignals()
    early.received = [signal.SIGHUP]
    assert early.release() is None
    early.received = [signal.SIGHUP, signal.SIGINT]
    assert early.release() == 128 + signal.SIGINT


class EditedWhileStarting(EarlySignals):
    """The operator's edit of the config file, and the SIGHUP after it, both while the process
    was starting: after the file was read, before the event loop took the signals."""

    def __init__(self, path: Path, edited: str) -> None:
        super().__init__()
        self.path, self.edited = path, edited

    def replay(self, *, on_stop: Callable[[str], None], on_reload: Callable[[], None]) -> None:
        self.path.write_text(self.edited)
        self.received.append(signal.SIGHUP)
        super().replay(on_stop=on_stop, on_reload=on_reload)


def test_a_sighup_received_while_starting_is_applied_once_the_fleet_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "c.yaml"
    # A dry run serves no metrics, and a reload of a file that names a port is still applied.
    head = f"dataset: {{uri: '{DATASET}'}}\nmetrics: {{port: 9464}}\nprofiles:\n"
    # Started with a profile that sends at most one message an hour, the run reaches its three
    # messages only if the edit (a profile sending every 10 ms) is applied: the duration is a
    # guard that ends the run if it is not, not a pace the test waits for.
    config.write_text(head + "  idle: {interval_s: 3600, min_records: 1, max_records: 1}\n")
    edited = head + "  fast: {interval_s: 0.01, min_records: 1, max_records: 1}\n"
    early = EditedWhileStarting(config, edited)
    args = ["run", "--config", str(config), "--dry-run", "--max-messages", "3"]
    code = main([*args, "--duration", "60", "--log-format", "json"], early=early)
    out, err = capsys.readouterr()
    events = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    names = [e["event"] for e in events]
    assert names.index("reload_requested") < names.index("fleet_starting")
    reloaded = events[names.index("config_reloaded")]
    assert (reloaded["added"], reloaded["removed"]) == (["fast"], ["idle"])
    assert code == 0
    profiles = [json.loads(line)["headers"]["profile"] for line in out.splitlines()]
    assert profiles.count("fast") >= 2
