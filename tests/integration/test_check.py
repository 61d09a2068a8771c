"""`run_checks` against real servers: a Kafka-protocol broker (Tansu, or the external cluster) and
an S3 server (moto), both started by the fixtures in tests/conftest.py."""

from __future__ import annotations

import io
import uuid
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient

from realservices import S3Server, free_port
from supervisor.checks import run_checks
from supervisor.config import Config
from supervisor.dataset.synth import write_csv
from supervisor.errors import ExitCode

BUCKET = "transactions"
KEY = "in/transactions.csv"
SECRET = "s3cr3t-" + uuid.uuid4().hex
BAD_ROWS = (
    "not-a-uuid,Card payment,1.00,2026-01-11T10:00:00,Shop,debit,outgoing\n"
    f"{uuid.uuid4()},Card payment,abc,2026-01-11T10:00:00,Shop,debit,outgoing\n"
)


@pytest.fixture
def dataset_csv(tmp_path: Path) -> bytes:
    path = tmp_path / "good.csv"
    write_csv(path, rows=200, seed=3)
    return path.read_bytes()


def upload(s3: S3Server, body: bytes, *, bucket: str = BUCKET, key: str = KEY) -> None:
    client = s3.client()
    try:
        client.create_bucket(Bucket=bucket)
        client.put_object(Bucket=bucket, Key=key, Body=body)
    finally:
        client.close()


def make_config(s3: S3Server | str, bootstrap: str, topic: str, **dataset: Any) -> Config:
    endpoint_url = s3 if isinstance(s3, str) else s3.endpoint_url
    return Config.model_validate(
        {
            "kafka": {"bootstrap_servers": bootstrap, "topic": topic},
            "dataset": {
                "uri": f"s3://{BUCKET}/{KEY}",
                "s3": {
                    "endpoint_url": endpoint_url,
                    "access_key": "testing",
                    "secret_key": SECRET,
                    "region": "us-east-1",
                },
                **dataset,
            },
            "profiles": {
                "high": {"interval_s": 0.2, "min_records": 10, "max_records": 20},
                "low": {"interval_s": 2, "min_records": 1, "max_records": 5},
            },
        }
    ).with_source("test.yaml")


def check(config: Config, *, timeout_s: float = 5) -> tuple[int, list[str]]:
    out = io.StringIO()
    code = run_checks(config, out=out, timeout_s=timeout_s)
    print(out.getvalue())  # shown by pytest when a test fails
    lines = out.getvalue().splitlines()
    assert SECRET not in out.getvalue()
    return code, lines


def line(lines: list[str], name: str) -> str:
    found = [text for text in lines if text[2:].split(" ", 1)[0] == name]
    assert len(found) == 1, lines
    return found[0]


def test_everything_in_place_passes(
    s3: S3Server, dataset_csv: bytes, kafka_bootstrap: str, topic: str
) -> None:
    upload(s3, dataset_csv)

    code, lines = check(make_config(s3, kafka_bootstrap, topic))

    assert code == ExitCode.OK, lines
    assert [text[0] for text in lines[:-1]] == ["✓"] * 5
    assert line(lines, "config").endswith(
        "test.yaml: 2 profiles (high, low), 76.50 records/s in all, to " + topic
    )
    assert f"{kafka_bootstrap}: 1 broker" in line(lines, "kafka")
    assert line(lines, "topic").startswith(f"✓ topic    {topic}: 3 partitions, each with a leader")
    assert f"{len(dataset_csv):,} bytes" in line(lines, "s3")
    assert line(lines, "dataset").endswith(f"s3://{BUCKET}/{KEY}: 200 valid rows of 200 read")
    assert lines[-1] == "all 5 checks passed"


def test_missing_bucket_fails_s3_and_skips_the_dataset(
    s3: S3Server, kafka_bootstrap: str, topic: str
) -> None:
    code, lines = check(make_config(s3, kafka_bootstrap, topic))

    assert code == ExitCode.BAD_INPUT
    assert line(lines, "s3").startswith(f"✗ s3       s3://{BUCKET}/{KEY}: bucket '{BUCKET}'")
    assert "does not exist at http://127.0.0.1:" in line(lines, "s3")
    assert line(lines, "dataset").startswith("✗ dataset  ")
    assert "not loaded, the S3 check failed" in line(lines, "dataset")
    assert line(lines, "kafka").startswith("✓")
    assert lines[-1] == "2 of 5 checks failed"


def test_missing_object_in_an_existing_bucket(
    s3: S3Server, dataset_csv: bytes, kafka_bootstrap: str, topic: str
) -> None:
    upload(s3, dataset_csv, key="elsewhere.csv")

    code, lines = check(make_config(s3, kafka_bootstrap, topic))

    assert code == ExitCode.BAD_INPUT
    assert f"no object '{KEY}' in bucket '{BUCKET}'" in line(lines, "s3")


def test_invalid_rows_are_reported_with_their_reasons(
    s3: S3Server, dataset_csv: bytes, kafka_bootstrap: str, topic: str
) -> None:
    upload(s3, dataset_csv + BAD_ROWS.encode())

    code, lines = check(make_config(s3, kafka_bootstrap, topic))

    assert code == ExitCode.OK
    dataset = line(lines, "dataset")
    assert (
        "200 valid rows of 202 read; 2 invalid rows skipped (dataset.on_invalid: skip)" in dataset
    )
    assert "line 202: id: " in dataset
    assert "line 203: amount: " in dataset


def test_invalid_rows_fail_the_check_when_the_config_refuses_them(
    s3: S3Server, dataset_csv: bytes, kafka_bootstrap: str, topic: str
) -> None:
    upload(s3, dataset_csv + BAD_ROWS.encode())

    code, lines = check(make_config(s3, kafka_bootstrap, topic, on_invalid="fail"))

    assert code == ExitCode.BAD_INPUT
    assert line(lines, "dataset").startswith(f"✗ dataset  s3://{BUCKET}/{KEY}: line 202:")


def test_missing_topic_fails_and_is_not_created_by_the_check(
    s3: S3Server, dataset_csv: bytes, kafka_bootstrap: str
) -> None:
    upload(s3, dataset_csv)
    missing = f"absent-{uuid.uuid4().hex[:8]}"

    code, lines = check(make_config(s3, kafka_bootstrap, missing))

    assert code == ExitCode.BAD_INPUT
    topic_line = line(lines, "topic")
    assert topic_line.startswith(f"✗ topic    {missing}: does not exist")
    assert f"--create --topic {missing}" in topic_line
    topics = AdminClient({"bootstrap.servers": kafka_bootstrap}).list_topics(timeout=10).topics
    assert missing not in topics


def test_unreachable_kafka_exits_4_when_nothing_else_failed(
    s3: S3Server, dataset_csv: bytes
) -> None:
    upload(s3, dataset_csv)
    nowhere = f"127.0.0.1:{free_port()}"

    code, lines = check(make_config(s3, nowhere, "transactions"), timeout_s=2)

    assert code == ExitCode.KAFKA_UNREACHABLE
    assert line(lines, "kafka").startswith(f"✗ kafka    {nowhere}: unreachable within ")
    assert "Connection refused" in line(lines, "kafka")  # librdkafka's reason, not just "failure"
    assert "check kafka.bootstrap_servers / KAFKA_BOOTSTRAP_SERVERS" in line(lines, "kafka")
    assert line(lines, "dataset").startswith("✓")
    assert lines[-1] == "1 of 4 checks failed"


def test_bad_input_outranks_unreachable_kafka(s3: S3Server) -> None:
    code, lines = check(make_config(s3, f"127.0.0.1:{free_port()}", "transactions"), timeout_s=2)

    assert code == ExitCode.BAD_INPUT
    assert [text[0] for text in lines[:-1]] == ["✓", "✗", "✗", "✗"]


def test_unreachable_s3_endpoint(kafka_bootstrap: str, topic: str) -> None:
    dead = f"http://127.0.0.1:{free_port()}"

    code, lines = check(make_config(dead, kafka_bootstrap, topic))

    assert code == ExitCode.BAD_INPUT
    assert f"cannot reach S3 at {dead}" in line(lines, "s3")
