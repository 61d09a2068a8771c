"""End to end on real parts: S3 (moto) -> the CLI as a subprocess -> Kafka (Tansu or external)."""

from __future__ import annotations

import json
import signal
import socket
import uuid
from pathlib import Path

import pytest

from realservices import S3Server, consume_all
from supervisor.dataset import FIELDS
from supervisor.dataset.synth import write_csv
from tests.integration.cli_process import CliProcess

BUCKET = "transactions"
BAD_ROWS = [
    "not-a-uuid,Card payment,1.00,2026-01-11T10:00:00,Shop,debit,outgoing",
    f"{uuid.uuid4()},Card payment,abc,2026-01-11T10:00:00,Shop,debit,outgoing",
    f"{uuid.uuid4()},Card payment,NaN,2026-01-11T10:00:00,Shop,debit,outgoing",
    f"{uuid.uuid4()},Card payment,1.00,yesterday,Shop,debit,outgoing",
    f"{uuid.uuid4()},Card payment,1.00,2026-01-11T10:00:00,Shop,refund,outgoing",
    f"{uuid.uuid4()},,1.00,2026-01-11T10:00:00,Shop,debit,sideways",
]


@pytest.fixture
def dataset_csv(tmp_path: Path) -> bytes:
    path = tmp_path / "good.csv"
    write_csv(path, rows=300, seed=7)
    return path.read_bytes() + ("\n".join(BAD_ROWS) + "\n").encode()


@pytest.fixture
def uploaded(s3: S3Server, dataset_csv: bytes) -> str:
    client = s3.client()
    client.create_bucket(Bucket=BUCKET)
    client.put_object(Bucket=BUCKET, Key="in/transactions.csv", Body=dataset_csv)
    return f"s3://{BUCKET}/in/transactions.csv"


def good_rows(csv_bytes: bytes) -> dict[str, dict[str, object]]:
    import csv
    import io

    reader = csv.DictReader(io.StringIO(csv_bytes.decode()))
    return {row["id"]: row for row in reader if row["id"] and row["description"]}


def test_three_presets_stream_from_s3_and_stop_cleanly_on_sigterm(
    tmp_path: Path,
    s3: S3Server,
    uploaded: str,
    dataset_csv: bytes,
    kafka_bootstrap: str,
    topic: str,
    cli_processes: list[CliProcess],
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        f"""
kafka:
  bootstrap_servers: ${{BROKERS}}
  topic: {topic}
dataset:
  uri: {uploaded}
stats_interval_s: 0.5
profiles:
  high: {{preset: high}}
  normal: {{preset: normal}}
  low: {{preset: low}}
"""
    )
    summary_path = tmp_path / "summary.json"
    proc = CliProcess(
        ["run", "--config", str(config), "--summary", str(summary_path)],
        env={
            "BROKERS": kafka_bootstrap,
            "ENDPOINT_URL": s3.endpoint_url,
            "KEY": "test-access-key",
            "SECRET": "test-secret-key",
            "AWS_DEFAULT_REGION": "us-east-1",
        },
    )
    cli_processes.append(proc)

    loaded = proc.wait_for(lambda e: e.get("event") == "dataset_loaded")
    assert loaded["rows"] == 300
    assert loaded["invalid_rows"] == len(BAD_ROWS)
    skipped = proc.named("dataset_row_skipped")
    assert [e["line"] for e in skipped] == list(range(302, 302 + len(BAD_ROWS)))

    # Run until every profile has had deliveries acknowledged, then ask it to stop.
    delivered: set[str] = set()
    proc.wait_for(
        lambda e: (
            e.get("event") == "profile_stats"
            and e["delivered"] > 0
            and (delivered.add(e["profile"]) or delivered == {"high", "normal", "low"})
        )
    )
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0, proc.log()

    summary = json.loads(summary_path.read_text())
    assert set(summary["profiles"]) == {"high", "normal", "low"}
    for name, entry in summary["profiles"].items():
        assert entry["produced"] == entry["delivered"] > 0, name
        assert entry["failed"] == entry["undelivered"] == entry["in_flight"] == 0, name
        assert entry["batches"] > 0, name
    total = summary["total"]
    assert total["delivered"] == sum(p["delivered"] for p in summary["profiles"].values())

    records = consume_all(kafka_bootstrap, topic)
    assert len(records) == total["delivered"]
    good = good_rows(dataset_csv)
    per_profile: dict[str, int] = {}
    for record in records:
        event = json.loads(record.value)
        assert tuple(event) == FIELDS
        assert isinstance(event["amount"], int | float)
        source = good[event["id"]]  # one of the good rows, unchanged
        assert event["description"] == source["description"]
        assert event["merchant"] == source["merchant"]
        assert event["operation_type"] == source["operation_type"]
        assert record.headers["instance"] == socket.gethostname().encode()
        profile = record.headers["profile"].decode()
        per_profile[profile] = per_profile.get(profile, 0) + 1
    assert per_profile == {n: e["delivered"] for n, e in summary["profiles"].items()}

    stopped = proc.named("fleet_stopped")
    assert len(stopped) == 1
    assert stopped[0]["delivered"] == total["delivered"]
    assert "test-secret-key" not in "\n".join(proc.lines)


def test_an_upper_case_s3_scheme_is_read_from_s3_by_run_and_check(
    tmp_path: Path,
    s3: S3Server,
    uploaded: str,
    kafka_bootstrap: str,
    topic: str,
    cli_processes: list[CliProcess],
) -> None:
    """URI schemes are case-insensitive: `S3://bucket/key` is the S3 object, never a file."""
    shouting = "S3://" + uploaded.removeprefix("s3://")
    config = tmp_path / "config.yaml"
    config.write_text(
        f"kafka: {{bootstrap_servers: '{kafka_bootstrap}', topic: {topic}}}\n"
        f"dataset: {{uri: '{shouting}'}}\n"
        "profiles: {p: {interval_s: 0.01, min_records: 5, max_records: 5}}\n"
    )
    env = {
        "ENDPOINT_URL": s3.endpoint_url,
        "KEY": "test-access-key",
        "SECRET": "test-secret-key",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    run = CliProcess(["run", "--config", str(config), "--max-messages", "20"], env=env)
    cli_processes.append(run)
    assert run.wait() == 0, run.log()
    (loaded,) = run.named("dataset_loaded")
    assert (loaded["source"], loaded["rows"]) == (uploaded, 300)
    assert len(consume_all(kafka_bootstrap, topic)) == 20

    check = CliProcess(["check", "--config", str(config)], env=env)
    cli_processes.append(check)
    assert check.wait() == 0, check.log()
    lines = check.output().splitlines()
    assert any(line.startswith(f"✓ s3       {uploaded} at ") for line in lines), lines
