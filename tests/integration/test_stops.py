"""Every blocking stage honours a stop, and a reload never takes the daemon down: a dataset that
never ends (a pipe nobody writes to), an S3 endpoint that accepts connections and never answers,
a config nested deeper than the parser can follow. The real CLI, with the embedded cluster."""

from __future__ import annotations

import json
import os
import signal
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from supervisor.errors import ExitCode
from tests.integration.cli_process import ROOT, CliProcess, Event

DATASET = ROOT / "data" / "transactions.csv"
EXIT_TIMEOUT_S = 30
"""Generous: without the fix these runs never end, or end a minute later."""


def is_event(name: str) -> Callable[[Event], bool]:
    return lambda event: event.get("event") == name


def write_config(tmp_path: Path, uri: str | Path) -> Path:
    config = tmp_path / "config.yaml"
    config.write_text(
        f"dataset: {{uri: '{uri}'}}\n"
        "stats_interval_s: 0.2\n"
        "profiles: {p: {interval_s: 0.05, min_records: 1, max_records: 5}}\n"
    )
    return config


def run(cli_processes: list[CliProcess], config: Path, tmp_path: Path, **env: str) -> CliProcess:
    proc = CliProcess(
        ["run", "--config", str(config), "--summary", str(tmp_path / "summary.json")], env=env
    )
    cli_processes.append(proc)
    return proc


@pytest.fixture
def silent_s3() -> Iterator[str]:
    """An endpoint that accepts TCP connections and never answers a byte."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)  # connections complete in the backlog; nobody ever reads them
        yield f"http://127.0.0.1:{server.getsockname()[1]}"


def test_sigterm_during_a_dataset_load_that_never_ends_exits_at_once(
    tmp_path: Path, cli_processes: list[CliProcess]
) -> None:
    fifo = tmp_path / "transactions.csv"
    os.mkfifo(fifo)
    proc = run(cli_processes, write_config(tmp_path, fifo), tmp_path)
    proc.wait_for(is_event("fleet_starting"))

    code = proc.sigterm_and_wait(EXIT_TIMEOUT_S)

    assert code == ExitCode.OK, proc.log()
    assert proc.named("dataset_load_abandoned")
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["total"]["produced"] == 0


def test_sigterm_while_s3_never_answers_exits_at_once(
    tmp_path: Path, cli_processes: list[CliProcess], silent_s3: str
) -> None:
    config = write_config(tmp_path, "s3://bucket/transactions.csv")
    proc = run(
        cli_processes, config, tmp_path, ENDPOINT_URL=silent_s3, KEY="k", SECRET="s-3cret-8Hq"
    )
    proc.wait_for(is_event("fleet_starting"))

    code = proc.sigterm_and_wait(EXIT_TIMEOUT_S)

    assert code == ExitCode.OK, proc.log()
    assert proc.named("dataset_load_abandoned")


def streaming(tmp_path: Path, cli_processes: list[CliProcess]) -> tuple[CliProcess, Path]:
    config = write_config(tmp_path, DATASET)
    proc = run(cli_processes, config, tmp_path)
    proc.wait_for(lambda e: e.get("event") == "profile_stats" and e["delivered"] > 0)
    return proc, config


def stats_after(proc: CliProcess, event: Event) -> Event:
    """A stats line logged after `event`: the fleet is still streaming."""
    index = proc.events.index(event)
    return proc.wait_for(
        lambda e: e.get("event") == "profile_stats" and proc.events.index(e) > index
    )


def test_a_reload_to_a_dataset_that_never_ends_leaves_the_fleet_streaming_and_stoppable(
    tmp_path: Path, cli_processes: list[CliProcess]
) -> None:
    proc, config = streaming(tmp_path, cli_processes)
    fifo = tmp_path / "never.csv"
    os.mkfifo(fifo)
    config.write_text(config.read_text().replace(str(DATASET), str(fifo)))
    proc.signal(signal.SIGHUP)
    requested = proc.wait_for(is_event("reload_requested"))
    stats_after(proc, requested)

    code = proc.sigterm_and_wait(EXIT_TIMEOUT_S)

    assert code == ExitCode.OK, proc.log()
    assert proc.named("fleet_stopped")


def test_a_reload_nested_too_deep_is_refused_and_the_fleet_keeps_going(
    tmp_path: Path, cli_processes: list[CliProcess]
) -> None:
    proc, config = streaming(tmp_path, cli_processes)
    depth = 20_000
    config.write_text(config.read_text() + "x: " + "[" * depth + "]" * depth + "\n")
    proc.signal(signal.SIGHUP)
    refused = proc.wait_for(is_event("config_reload_refused"))
    assert len(refused["error"]) < 1000
    stats_after(proc, refused)

    code = proc.sigterm_and_wait(EXIT_TIMEOUT_S)

    assert code == ExitCode.OK, proc.log()
    assert proc.named("fleet_stopped")
