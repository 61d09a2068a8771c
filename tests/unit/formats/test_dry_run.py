"""A dry run of non-JSON profiles shows each value decoded by its official deserializer, events
and labels alike, with every rewrite applied (fresh ids, now, re-serialized outlier amounts)."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any

import pytest

from supervisor.app import serve
from supervisor.config import Config
from supervisor.dataset import FIELDS

DATASET = Path(__file__).resolve().parents[3] / "data" / "transactions.csv"


def dry_run(config: Config, messages: int) -> list[dict[str, Any]]:
    async def run() -> bytes:
        out = io.BytesIO()
        code, _ = await serve(
            config, stop=asyncio.Event(), force=asyncio.Event(), dry_run=out, max_messages=messages
        )
        assert code == 0
        return out.getvalue()

    return [json.loads(line) for line in asyncio.run(run()).splitlines()]


@pytest.mark.parametrize("format", ["avro", "protobuf", "json-schema"])
def test_a_dry_run_shows_decoded_events_and_labels(format: str) -> None:
    config = Config.model_validate(
        {
            "dataset": {"uri": str(DATASET)},
            "schema_registry": {"url": "https://registry.invalid:8081"},  # a dry run never asks
            "profiles": {
                "p": {
                    "interval_s": 0.001,
                    "min_records": 5,
                    "max_records": 5,
                    "seed": 3,
                    "format": format,
                    "id": "fresh",
                    "timestamp": "now",
                    "scenario": {"kind": "amount-outlier", "every_s": 0.002},
                    "labels": {"topic": "labels", "delay_s": 0},
                }
            },
        }
    )
    lines = dry_run(config, 60)
    events = [line for line in lines if line["topic"] == "transactions"]
    labels = [line for line in lines if line["topic"] == "labels"]
    assert len(events) == 60
    assert labels
    fraud = {e["value"]["id"]: e for e in events if e["headers"]["fraud"] == "true"}
    for event in events:
        assert tuple(event["value"]) == FIELDS
        assert event["value"]["timestamp"].endswith("+00:00")
    for label in labels:
        # Without an entity, Avro writes the label's optional entity fields as null; the other
        # formats leave them out.
        present = {k for k, v in label["value"].items() if v is not None}
        assert present == {"id", "label", "scenario", "scenario_id"}
        assert label["value"]["id"] in fraud
        assert label["value"]["scenario"] == "amount-outlier"
