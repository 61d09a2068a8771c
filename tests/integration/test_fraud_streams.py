"""Realistic streams on real parts: labelled fraud, labels topic, event time, seeds, dry run.

The CLI runs as a subprocess against the session's Kafka (Tansu, or TEST_KAFKA_BOOTSTRAP_SERVERS)
and stops by itself with `--max-messages`; everything is read back from the broker.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from realservices import Record, consume_all
from supervisor.dataset import FIELDS
from tests.integration.cli_process import ROOT, CliProcess

DATASET = ROOT / "data" / "transactions.csv"


def write_config(path: Path, *, topic: str, profiles: str, bootstrap: str = "${BROKERS}") -> Path:
    path.write_text(
        f"""
kafka:
  bootstrap_servers: {bootstrap}
  topic: {topic}
dataset:
  uri: {DATASET}
stats_interval_s: 0.5
profiles:
{profiles}
"""
    )
    return path


def run_to_completion(args: list[str], kafka_bootstrap: str) -> CliProcess:
    proc = CliProcess(args, env={"BROKERS": kafka_bootstrap})
    try:
        assert proc.wait(timeout_s=120) == 0, proc.log()
    finally:
        proc.stop()
    return proc


def event_epoch(value: bytes) -> float:
    moment = datetime.fromisoformat(json.loads(value)["timestamp"])
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def test_labelled_fraud_stream_reconciles_with_its_summary_and_labels(
    tmp_path: Path, kafka_bootstrap: str, topic: str, new_topic: Any
) -> None:
    labels_topic = new_topic("labels")
    config = write_config(
        tmp_path / "config.yaml",
        topic=topic,
        profiles=f"""
  testing:
    interval_s: 0.01
    min_records: 5
    max_records: 10
    id: fresh
    timestamp: now
    kafka_timestamp: event
    key: merchant
    late: {{fraction: 0.1, max_delay_s: 300}}
    duplicates: {{fraction: 0.05}}
    out_of_order: {{fraction: 0.05, max_delay_s: 0.2}}
    schedule: {{kind: ramp, from: 0.5, to: 2, duration_s: 2}}
    scenario: {{kind: card-testing, probability: 0.05, window_s: 0.5}}
    labels: {{topic: {labels_topic}, delay_s: 0.3, jitter_s: 0.2}}
  compromise:
    interval_s: 0.02
    min_records: 5
    max_records: 10
    id: fresh
    timestamp: shift
    scenario: {{kind: merchant-compromise, probability: 0.1, duration_s: 0.5, share: 0.5}}
    labels: {{topic: {labels_topic}, delay_s: 0.1}}
  plain:
    interval_s: 0.05
    min_records: 1
    max_records: 3
""",
    )
    summary_path = tmp_path / "summary.json"
    proc = run_to_completion(
        ["run", "--config", str(config), "--summary", str(summary_path), "--max-messages", "3000"],
        kafka_bootstrap,
    )

    summary = json.loads(summary_path.read_text())
    profiles = summary["profiles"]
    events = consume_all(kafka_bootstrap, topic)
    labels = consume_all(kafka_bootstrap, labels_topic)
    assert len(events) == summary["total"]["delivered"] == summary["total"]["produced"] == 3000
    assert summary["total"]["labels"]["delivered"] == len(labels)

    by_profile: dict[str, list[Record]] = {}
    for record in events:
        assert tuple(json.loads(record.value)) == FIELDS  # the seed's seven fields
        by_profile.setdefault(record.headers["profile"].decode(), []).append(record)
    assert {name: len(rs) for name, rs in by_profile.items()} == {
        name: entry["delivered"] for name, entry in profiles.items()
    }

    # Ground truth: every fraud event has exactly one label, and every label one fraud event.
    fraud = {json.loads(r.value)["id"]: r for r in events if r.headers.get("fraud") == b"true"}
    assert "fraud" not in by_profile["plain"][0].headers
    assert all(r.headers["fraud"] in (b"true", b"false") for r in by_profile["testing"])
    label_bodies = [json.loads(r.value) for r in labels]
    assert sorted(b["id"] for b in label_bodies) == sorted(fraud)
    for body, record in zip(label_bodies, labels, strict=True):
        event = fraud[body["id"]]
        assert record.key == body["id"].encode()
        assert body["label"] == "fraud"
        assert body["scenario"] == event.headers["scenario"].decode()
        assert body["scenario_id"] == event.headers["scenario_id"].decode()

    for name, kind in (("testing", "card-testing"), ("compromise", "merchant-compromise")):
        mine = [r for r in fraud.values() if r.headers["profile"] == name.encode()]
        entry = profiles[name]
        assert entry["fraud_events"] == len(mine) > 0
        assert entry["scenarios"][kind]["events"] == len(mine)
        ids = {r.headers["scenario_id"] for r in mine}
        assert 0 < len(ids) <= entry["scenarios"][kind]["occurrences"]
        if kind == "card-testing":  # each occurrence hits one merchant, with small amounts
            merchants: dict[bytes, set[str]] = {}
            for r in mine:
                value = json.loads(r.value)
                assert 0.5 <= value["amount"] <= 2.0
                merchants.setdefault(r.headers["scenario_id"], set()).add(value["merchant"])
            assert all(len(m) == 1 for m in merchants.values())

    testing = by_profile["testing"]
    # Kafka timestamps follow the event time written in the value (late events included).
    mismatched = [
        (r.timestamp_ms, json.loads(r.value)["timestamp"])
        for r in testing
        if r.timestamp_ms != round(event_epoch(r.value) * 1000)
    ]
    assert mismatched == []
    # Exact duplicates: the same bytes, key and headers, as many as the summary says.
    repeats = Counter((r.value, r.key) for r in testing)
    assert sum(n - 1 for n in repeats.values()) == profiles["testing"]["duplicates"] > 0
    assert profiles["testing"]["late"] > 0
    assert profiles["testing"]["reordered"] > 0
    # `shift`: the dataset's timeline moved to the run's start, gaps kept.
    shifted = [event_epoch(r.value) for r in by_profile["compromise"]]
    started = datetime.fromisoformat(proc.named("profile_started")[0]["timestamp"]).timestamp()
    # The dataset's latest moment is the run's start: all in the past, within its ~30 days.
    assert started - 86_400 * 40 < min(shifted) <= max(shifted) <= started + 1
    # The periodic stats lines carry the shaping counters of shaped profiles only.
    lines = proc.named("profile_stats")
    testing_lines = [e for e in lines if e["profile"] == "testing"]
    assert testing_lines
    assert all("fraud_events" in e and "labels_delivered" in e for e in testing_lines)
    assert all("late" not in e for e in lines if e["profile"] == "plain")
    assert proc.named("scheduled_messages_dropped") == [] or all(
        e["labels"] == 0 for e in proc.named("scheduled_messages_dropped")
    )


SEEDED = """
  a:
    interval_s: 0.01
    min_records: 1
    max_records: 20
    seed: 42
    id: fresh
    timestamp: now
    key: id
    late: {fraction: 0.2, max_delay_s: 60}
    duplicates: {fraction: 0.1, max_delay_s: 0.05}
    out_of_order: {fraction: 0.1, max_delay_s: 0.05}
    scenario: {kind: velocity, probability: 0.1, window_s: 0.1}
  b:
    interval_s: 0.02
    min_records: 5
    max_records: 5
    seed: 7
    scenario: {kind: amount-outlier, every_s: 0.1}
"""


def without_wall_clock(records: list[tuple[str, bytes, bytes | None, dict[str, bytes]]]) -> Any:
    return [
        (profile, {**json.loads(value), "timestamp": None}, key, headers)
        for profile, value, key, headers in records
    ]


def per_profile(records: list[tuple[str, bytes, bytes | None, dict[str, bytes]]]) -> Any:
    out: dict[str, list[Any]] = {}
    for record in without_wall_clock(records):
        out.setdefault(record[0], []).append(record)
    return out


def assert_same_prefixes(first: dict[str, list[Any]], second: dict[str, list[Any]]) -> None:
    """Each profile's sequence is the same up to where the shorter run stopped (runs stop on a
    message count over all profiles, so where each profile stops depends on timing)."""
    assert set(first) == set(second) == {"a", "b"}
    for name in first:
        n = min(len(first[name]), len(second[name]))
        assert n >= 100, (name, n)
        assert first[name][:n] == second[name][:n], name


def test_a_seed_repeats_each_profiles_sequence_on_kafka(
    tmp_path: Path, kafka_bootstrap: str, new_topic: Any
) -> None:
    runs = []
    for attempt in range(2):
        topic = new_topic(f"seeded{attempt}")
        config = write_config(tmp_path / f"config{attempt}.yaml", topic=topic, profiles=SEEDED)
        run_to_completion(
            ["run", "--config", str(config), "--max-messages", "2000"], kafka_bootstrap
        )
        runs.append(
            [
                (r.headers["profile"].decode(), r.value, r.key, r.headers)
                for r in consume_all(kafka_bootstrap, topic)
            ]
        )
    first, second = runs
    assert len(first) == len(second) == 2000
    assert_same_prefixes(per_profile(first), per_profile(second))
    # Not trivially equal: the wall-clock timestamps differ between the runs.
    assert [json.loads(v)["timestamp"] for _, v, _, _ in first] != [
        json.loads(v)["timestamp"] for _, v, _, _ in second
    ]


def dry_run(config: Path, *extra: str) -> tuple[list[dict[str, Any]], CliProcess]:
    proc = CliProcess(["run", "--config", str(config), "--dry-run", *extra])
    try:
        assert proc.wait(timeout_s=120) == 0, proc.log()
    finally:
        proc.stop()
    return [json.loads(line) for line in proc.stdout.splitlines()], proc


def test_dry_run_writes_json_lines_without_kafka_and_repeats_with_a_seed(tmp_path: Path) -> None:
    # Nothing listens on port 1: a dry run never contacts Kafka.
    config = write_config(
        tmp_path / "config.yaml", topic="tx", profiles=SEEDED, bootstrap="127.0.0.1:1"
    )
    lines, proc = dry_run(config, "--max-messages", "2000")
    again, _ = dry_run(config, "--max-messages", "2000")

    assert len(lines) == 2000
    for line in lines:
        assert list(line) == ["topic", "key", "headers", "timestamp", "value"]
        assert tuple(line["value"]) == FIELDS
        assert line["topic"] == "tx"
        assert line["headers"]["profile"] in ("a", "b")
    a_lines = [line for line in lines if line["headers"]["profile"] == "a"]
    assert all(line["key"] == line["value"]["id"] for line in a_lines)
    assert {line["headers"]["fraud"] for line in a_lines} == {"true", "false"}
    stopped = proc.named("fleet_stopped")[0]
    assert stopped["produced"] == stopped["delivered"] == 2000

    def records(lines: list[dict[str, Any]]) -> Any:
        return [
            (
                line["headers"]["profile"],
                json.dumps(line["value"]).encode(),
                None if line["key"] is None else line["key"].encode(),
                line["headers"],
            )
            for line in lines
        ]

    assert_same_prefixes(per_profile(records(lines)), per_profile(records(again)))


def test_dry_run_into_a_pipe_that_closes_ends_quietly(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "config.yaml", topic="tx", profiles=SEEDED, bootstrap="127.0.0.1:1"
    )
    script = f"{sys.executable} -m supervisor run --config {config} --dry-run | head -n 3"
    done = subprocess.run(
        ["bash", "-c", f"set -o pipefail; {script}; echo rc=${{PIPESTATUS[0]}} >&2"],
        cwd=ROOT,
        capture_output=True,
        timeout=120,
        check=False,
    )
    out = done.stdout.decode().splitlines()
    err = done.stderr.decode()
    assert len(out) == 3
    assert all(json.loads(line)["topic"] == "tx" for line in out)
    assert "rc=0" in err, err[-2000:]
    assert "Traceback" not in err
    assert "Exception ignored" not in err


def test_a_scenario_the_dataset_cannot_support_is_refused_before_sending(
    tmp_path: Path, kafka_bootstrap: str, topic: str
) -> None:
    config = write_config(
        tmp_path / "config.yaml",
        topic=topic,
        profiles="""
  p:
    interval_s: 0.01
    min_records: 1
    max_records: 2
    scenario: {kind: card-testing, every_s: 1, merchant: LIDLL}
""",
    )
    proc = CliProcess(["run", "--config", str(config)], env={"BROKERS": kafka_bootstrap})
    try:
        assert proc.wait(timeout_s=60) == 2, proc.log()
    finally:
        proc.stop()
    fatal = proc.named("fatal")
    assert len(fatal) == 1
    assert "profiles.p.scenario" in fatal[0]["error"]
    assert "LIDL" in fatal[0]["error"]  # the close match offered
    assert "Traceback" not in "\n".join(proc.lines)
    assert consume_all(kafka_bootstrap, topic) == []


def test_an_outlier_of_amounts_near_a_doubles_limit_is_still_valid_json(tmp_path: Path) -> None:
    """A p99 amount of 1e308 times a factor of 20 overflows a double: the event says the largest
    finite amount instead of `inf`, which no JSON reader accepts."""
    dataset = tmp_path / "huge.csv"
    dataset.write_text(
        "id,description,amount,timestamp,merchant,operation_type,side\n"
        + "".join(
            f"{uuid.UUID(int=i + 1)},Yacht,1e308,2026-01-1{i}T10:00:00,Broker,debit,outgoing\n"
            for i in range(5)
        )
    )
    config = tmp_path / "config.yaml"
    config.write_text(
        f"dataset: {{uri: '{dataset}'}}\n"
        "profiles: {p: {interval_s: 0.01, min_records: 1, max_records: 1, seed: 1,"
        " scenario: {kind: amount-outlier, probability: 1, min_factor: 10, max_factor: 20}}}\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "supervisor", "run", "--dry-run", "--max-messages", "40",
         "--config", str(config)],
        capture_output=True, cwd=ROOT, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()[-2000:]

    def refuse(constant: str) -> float:
        raise AssertionError(f"{constant} is not JSON")

    lines = result.stdout.decode().splitlines()
    amounts = [json.loads(line, parse_constant=refuse)["value"]["amount"] for line in lines]
    assert len(amounts) == 40
    assert all(math.isfinite(float(a)) for a in amounts)
    assert max(amounts) == sys.float_info.max  # the outliers, capped
