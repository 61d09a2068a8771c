"""JSON Lines and Parquet datasets from S3 (moto) load, validate and report like the CSV; a
dataset with extra columns and an entity column runs card-testing per card, labels naming it."""

from __future__ import annotations

import io
import json
import uuid
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from realservices import S3Server, consume_all
from supervisor.dataset import FIELDS
from supervisor.dataset.synth import generate, header, write
from tests.integration.cli_process import CliProcess

BUCKET = "formats"
GOOD = 200
ENV_KEYS = {
    "KEY": "test-access-key",
    "SECRET": "test-secret-key",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def _bad(row: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows the validator rejects, each for one reason."""
    return [
        {**row, "id": "not-a-uuid"},
        {**row, "amount": "abc"},
        {**row, "timestamp": "yesterday"},
        {**row, "side": "sideways"},
    ]


def _rows(cards: int = 0) -> list[dict[str, Any]]:
    names = header(cards)
    return [dict(zip(names, row, strict=True)) for row in generate(GOOD, seed=11, cards=cards)]


def jsonl_file(rows: list[dict[str, Any]]) -> bytes:
    lines = [json.dumps(row, ensure_ascii=False) for row in rows]
    lines.insert(10, "{broken json")
    return ("\n".join(lines) + "\n").encode()


def parquet_file(rows: list[dict[str, Any]]) -> bytes:
    out = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), out)
    return out.getvalue()


FORMATS: dict[str, tuple[Callable[[list[dict[str, Any]]], bytes], str, list[int]]] = {
    # key suffix: (writer, what a rejected row is counted by, where the rejected rows are)
    ".jsonl": (jsonl_file, "line", [11, *range(GOOD + 2, GOOD + 6)]),
    ".parquet": (parquet_file, "row", list(range(GOOD + 1, GOOD + 5))),
}


def env(s3: S3Server) -> dict[str, str]:
    return {"ENDPOINT_URL": s3.endpoint_url, **ENV_KEYS}


@pytest.mark.parametrize("suffix", list(FORMATS))
def test_a_dataset_from_s3_loads_validates_and_reports_like_the_csv(
    tmp_path: Path,
    s3: S3Server,
    suffix: str,
    kafka_bootstrap: str,
    topic: str,
    cli_processes: list[CliProcess],
) -> None:
    writer, unit, rejected = FORMATS[suffix]
    rows = _rows()
    key = f"in/transactions{suffix}"
    s3.client().create_bucket(Bucket=BUCKET)
    s3.client().put_object(Bucket=BUCKET, Key=key, Body=writer(rows + _bad(rows[0])))
    config = tmp_path / "config.yaml"
    config.write_text(
        f"kafka: {{bootstrap_servers: '{kafka_bootstrap}', topic: {topic}}}\n"
        f"dataset: {{uri: 's3://{BUCKET}/{key}'}}\n"
        "profiles: {p: {interval_s: 0.01, min_records: 5, max_records: 5, seed: 1}}\n"
    )
    run = CliProcess(["run", "--config", str(config), "--max-messages", "40"], env=env(s3))
    cli_processes.append(run)
    assert run.wait() == 0, run.log()
    (loaded,) = run.named("dataset_loaded")
    assert (loaded["rows"], loaded["invalid_rows"]) == (GOOD, len(rejected))
    assert [e[unit] for e in run.named("dataset_row_skipped")] == rejected
    good = {row["id"]: row for row in rows}
    records = consume_all(kafka_bootstrap, topic)
    assert len(records) == 40
    for record in records:
        event = json.loads(record.value)
        assert tuple(event) == FIELDS
        assert event["merchant"] == good[event["id"]]["merchant"]

    check = CliProcess(["check", "--config", str(config)], env=env(s3))
    cli_processes.append(check)
    assert check.wait() == 0, check.log()
    (line,) = [line for line in check.output().splitlines() if "dataset " in line]
    assert f"{GOOD} valid rows of {GOOD + len(rejected)} read" in line
    assert f"{unit} {rejected[0]}: " in line


def test_card_testing_runs_per_card_and_the_labels_name_it(
    tmp_path: Path,
    s3: S3Server,
    kafka_bootstrap: str,
    new_topic: Callable[[str], str],
    cli_processes: list[CliProcess],
) -> None:
    events_topic, labels_topic = new_topic("cards"), new_topic("card-labels")
    path = tmp_path / "cards.parquet"
    write(path, rows=2000, seed=5, cards=300)
    s3.client().create_bucket(Bucket=BUCKET)
    s3.client().upload_file(str(path), BUCKET, "cards.parquet")
    config = tmp_path / "config.yaml"
    config.write_text(
        f"kafka: {{bootstrap_servers: '{kafka_bootstrap}', topic: {events_topic}}}\n"
        f"dataset: {{uri: 's3://{BUCKET}/cards.parquet', extra_columns: keep, entity: card_id}}\n"
        "profiles:\n"
        "  shop:\n"
        "    {interval_s: 0.01, min_records: 2, max_records: 2, seed: 7, id: fresh,\n"
        "     scenario: {kind: card-testing, every_s: 0.2, min_attempts: 3, max_attempts: 5,\n"
        "                window_s: 0.1},\n"
        f"     labels: {{topic: {labels_topic}, delay_s: 0.05}}}}\n"
    )
    run = CliProcess(["run", "--config", str(config), "--max-messages", "300"], env=env(s3))
    cli_processes.append(run)
    assert run.wait() == 0, run.log()
    (loaded,) = run.named("dataset_loaded")
    assert loaded["columns"] == {"card_id": "string"}

    events = [json.loads(r.value) for r in consume_all(kafka_bootstrap, events_topic)]
    assert all(list(event) == [*FIELDS, "card_id"] for event in events)
    by_id = {event["id"]: event for event in events}
    labels = [json.loads(r.value) for r in consume_all(kafka_bootstrap, labels_topic)]
    assert len(labels) >= 6
    cards: dict[str, set[str]] = defaultdict(set)
    merchants: dict[str, set[str]] = defaultdict(set)
    for label in labels:
        event = by_id[label["id"]]
        assert (label["entity"], label["entity_id"]) == ("card_id", event["card_id"])
        assert event["amount"] <= 2.0
        cards[label["scenario_id"]].add(label["entity_id"])
        merchants[label["scenario_id"]].add(event["merchant"])
    assert all(len(card) == 1 for card in cards.values())  # one stolen card per attack
    assert any(len(shops) > 1 for shops in merchants.values())  # tried at several merchants
    assert len({uuid.UUID(scenario) for scenario in cards}) == len(cards)
