"""Live config reload through the real CLI on a real broker: SIGHUP, watch, refusal."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from pathlib import Path

from realservices import consume_all
from tests.integration.cli_process import ROOT, CliProcess, Event

DATASET = ROOT / "data" / "transactions.csv"


def config_text(bootstrap: str, topic: str, profiles: str, *, reload: str = "signal") -> str:
    return (
        f"kafka: {{bootstrap_servers: '{bootstrap}', topic: {topic}}}\n"
        f"dataset: {{uri: '{DATASET}'}}\n"
        f"stats_interval_s: 0.2\n"
        f"reload: {reload}\n"
        f"profiles:\n{profiles}"
    )


def replace(path: Path, text: str) -> None:
    """Write as editors and ConfigMaps do: a new file renamed over the old one."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def is_event(name: str) -> Callable[[Event], bool]:
    return lambda e: e.get("event") == name


ONE = "  one: {interval_s: 0.05, min_records: 1, max_records: 1}\n"


def start_run(cli_processes: list[CliProcess], cfg: Path, *args: str) -> CliProcess:
    proc = CliProcess(["run", "--config", str(cfg), *args])
    cli_processes.append(proc)
    return proc


def refused_reload(
    cli_processes: list[CliProcess], cfg: Path, text: str, edited: str
) -> tuple[CliProcess, Event]:
    """Run config `text`; once a profile started, rewrite it as `edited` and SIGHUP: the refusal."""
    cfg.write_text(text)
    proc = start_run(cli_processes, cfg)
    proc.wait_for(is_event("profile_started"))
    replace(cfg, edited)
    proc.signal(signal.SIGHUP)
    return proc, proc.wait_for(is_event("config_reload_refused"))


def test_sighup_applies_added_removed_and_changed_profiles_and_refuses_bad_files(
    tmp_path: Path, kafka_bootstrap: str, topic: str, cli_processes: list[CliProcess]
) -> None:
    cfg = tmp_path / "config.yaml"
    a = "  a: {interval_s: 0.05, min_records: 1, max_records: 2}\n"
    b = "  b: {interval_s: 0.05, min_records: 1, max_records: 2}\n"
    c = "  c: {interval_s: 0.05, min_records: 3, max_records: 3}\n"
    a_changed = "  a: {interval_s: 0.05, min_records: 2, max_records: 2}\n"
    keep = "  keep: {interval_s: 0.05, min_records: 1, max_records: 1}\n"
    cfg.write_text(config_text(kafka_bootstrap, topic, a + b + keep))
    summary = tmp_path / "summary.json"
    proc = start_run(cli_processes, cfg, "--summary", str(summary))
    proc.wait_for(lambda e: e.get("event") == "profile_stats" and e.get("delivered", 0) > 0)

    replace(cfg, config_text(kafka_bootstrap, topic, a_changed + c + keep))
    proc.signal(signal.SIGHUP)
    reloaded = proc.wait_for(is_event("config_reloaded"))
    assert reloaded["reason"] == "signal"
    assert reloaded["added"] == ["c"]
    assert reloaded["removed"] == ["b"]
    assert reloaded["changed"] == ["a"]
    assert reloaded["unchanged"] == ["keep"]
    assert reloaded["dataset_reloaded"] is False

    # A broken file is refused and the fleet keeps running on the config it has.
    replace(cfg, "profiles:\n  a: {interval_s: -1, min_records: 1, max_records: 1}\n")
    proc.signal(signal.SIGHUP)
    refused = proc.wait_for(is_event("config_reload_refused"))
    assert "profiles.a.interval_s" in refused["error"]
    n = len(proc.events)
    proc.wait_for(
        lambda e: (
            proc.events.index(e) > n
            and e.get("event") == "profile_stats"
            and e.get("profile") == "c"
            and e["delivered"] > 0
        )
    )

    assert proc.sigterm_and_wait() == 0, proc.log()
    result = json.loads(summary.read_text())
    assert set(result["profiles"]) == {"a", "b", "c", "keep"}  # b's counts survive its removal
    assert result["profiles"]["b"]["delivered"] > 0
    assert result["profiles"]["keep"]["restarts"] == 0
    records = consume_all(kafka_bootstrap, topic)
    assert len(records) == result["total"]["delivered"]
    by_profile: dict[str, int] = {}
    for r in records:
        name = r.headers["profile"].decode()
        by_profile[name] = by_profile.get(name, 0) + 1
    assert by_profile == {k: v["delivered"] for k, v in result["profiles"].items()}


def test_watch_mode_reloads_when_the_file_changes(
    tmp_path: Path, kafka_bootstrap: str, topic: str, cli_processes: list[CliProcess]
) -> None:
    cfg = tmp_path / "config.yaml"
    two = "  two: {interval_s: 0.05, min_records: 1, max_records: 1}\n"
    cfg.write_text(config_text(kafka_bootstrap, topic, ONE, reload="watch"))
    proc = start_run(cli_processes, cfg)
    proc.wait_for(lambda e: e.get("event") == "profile_started" and e.get("profile") == "one")

    other = tmp_path / "other.csv"
    other.write_bytes(DATASET.read_bytes()[: DATASET.read_bytes().index(b"\n", 5000) + 1])
    text = config_text(kafka_bootstrap, topic, ONE + two, reload="watch")
    replace(cfg, text.replace(str(DATASET), str(other)))
    reloaded = proc.wait_for(is_event("config_reloaded"))
    assert reloaded["reason"] == "file_changed"
    assert reloaded["added"] == ["two"]
    assert reloaded["unchanged"] == ["one"]
    assert reloaded["dataset_reloaded"] is True
    loads = proc.named("dataset_loaded")
    assert len(loads) == 2
    assert loads[1]["source"] == str(other)
    proc.wait_for(lambda e: e.get("event") == "profile_stats" and e.get("profile") == "two")

    assert proc.sigterm_and_wait() == 0, proc.log()


def test_kafka_connection_changes_are_refused_live(
    tmp_path: Path, kafka_bootstrap: str, topic: str, cli_processes: list[CliProcess]
) -> None:
    text = config_text(kafka_bootstrap, topic, ONE)
    edited = text.replace("kafka: {", "kafka: {config: {linger.ms: 50}, ")
    proc, refused = refused_reload(cli_processes, tmp_path / "config.yaml", text, edited)
    assert "restart the process" in refused["error"]
    assert proc.sigterm_and_wait() == 0, proc.log()


def test_a_dataset_that_fails_to_load_is_refused_and_the_fleet_keeps_going(
    tmp_path: Path, kafka_bootstrap: str, topic: str, cli_processes: list[CliProcess]
) -> None:
    text = config_text(kafka_bootstrap, topic, ONE)
    edited = text.replace(str(DATASET), str(tmp_path / "missing.csv"))
    proc, refused = refused_reload(cli_processes, tmp_path / "config.yaml", text, edited)
    assert "missing.csv" in refused["error"]
    n = len(proc.events)
    proc.wait_for(
        lambda e: (
            proc.events.index(e) >= n and e.get("event") == "profile_stats" and e["delivered"] > 0
        )
    )
    assert proc.sigterm_and_wait() == 0, proc.log()


def test_instance_id_changes_are_refused_live(
    tmp_path: Path, kafka_bootstrap: str, topic: str, cli_processes: list[CliProcess]
) -> None:
    text = config_text(kafka_bootstrap, topic, ONE)
    edited = "instance_id: renamed\n" + text
    proc, refused = refused_reload(cli_processes, tmp_path / "config.yaml", text, edited)
    assert refused["error"].startswith("instance_id changed")
    assert proc.sigterm_and_wait() == 0, proc.log()
