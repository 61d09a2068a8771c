"""The synthetic dataset: deterministic, valid and plausible."""

from __future__ import annotations

import csv
import io
import statistics
import uuid
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from supervisor.dataset import FIELDS, Reading, load_dataset, parse_csv
from supervisor.dataset.synth import DAYS, START, generate, write, write_csv

SHIPPED = Path(__file__).parents[2] / "data" / "transactions.csv"


@pytest.fixture(scope="module")
def rows() -> list[dict[str, str]]:
    return [dict(zip(FIELDS, row, strict=True)) for row in generate(10_000, seed=7)]


def test_the_same_seed_writes_the_same_bytes(tmp_path: Path) -> None:
    write_csv(tmp_path / "a.csv", rows=500, seed=3)
    write_csv(str(tmp_path / "b.csv"), rows=500, seed=3)
    write_csv(tmp_path / "c.csv", rows=500, seed=4)
    a, b, c = ((tmp_path / name).read_bytes() for name in ("a.csv", "b.csv", "c.csv"))
    assert a == b
    assert a != c


def test_the_file_has_the_header_then_one_lf_terminated_line_per_row(tmp_path: Path) -> None:
    path = tmp_path / "tx.csv"
    write_csv(path, rows=300, seed=1)
    data = path.read_bytes()
    assert data.startswith(b"id,description,amount,timestamp,merchant,operation_type,side\n")
    assert b"\r" not in data
    assert len(list(csv.reader(io.StringIO(data.decode())))) == 301
    assert [p.name for p in tmp_path.iterdir()] == ["tx.csv"]


def test_zero_rows_writes_only_the_header(tmp_path: Path) -> None:
    write_csv(tmp_path / "tx.csv", rows=0, seed=1)
    assert (tmp_path / "tx.csv").read_text() == ",".join(FIELDS) + "\n"


def test_negative_rows_are_refused_and_nothing_is_written(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="rows must be >= 0"):
        write_csv(tmp_path / "tx.csv", rows=-1, seed=1)
    assert list(tmp_path.iterdir()) == []


def test_every_row_loads_as_a_valid_transaction(tmp_path: Path) -> None:
    path = tmp_path / "tx.csv"
    write_csv(path, rows=5_000, seed=11)
    ds = parse_csv(path.read_bytes(), source=str(path), on_invalid="fail")
    assert (len(ds), ds.rows_read, ds.invalid_count) == (5_000, 5_000, 0)


def test_ids_are_unique_uuid4(rows: list[dict[str, str]]) -> None:
    ids = [uuid.UUID(row["id"]) for row in rows]
    assert {i.version for i in ids} == {4}
    assert len(set(ids)) == len(ids)
    assert [str(i) for i in ids] == [row["id"] for row in rows]


def test_timestamps_run_in_order_over_the_period(rows: list[dict[str, str]]) -> None:
    stamps = [datetime.fromisoformat(row["timestamp"]) for row in rows]
    assert stamps == sorted(stamps)
    assert START <= stamps[0] < START + timedelta(days=1)
    assert START + timedelta(days=DAYS - 1) <= stamps[-1] < START + timedelta(days=DAYS)
    assert all(
        row["timestamp"] == stamp.isoformat() for row, stamp in zip(rows, stamps, strict=True)
    )


def test_activity_follows_the_time_of_day(rows: list[dict[str, str]]) -> None:
    hours = Counter(datetime.fromisoformat(row["timestamp"]).hour for row in rows)
    assert hours[12] > 2 * hours[4]
    restaurants = Counter(
        datetime.fromisoformat(row["timestamp"]).hour
        for row in rows
        if row["merchant"] in ("PRET A MANGER", "Wagamama", "Nando's")
    )
    assert restaurants[12] + restaurants[13] > 3 * (restaurants[9] + restaurants[10])


def test_operation_types_and_sides_are_mixed_and_mostly_consistent(
    rows: list[dict[str, str]],
) -> None:
    pairs = Counter((row["operation_type"], row["side"]) for row in rows)
    assert pairs["debit", "outgoing"] > pairs["credit", "incoming"] > 500
    mismatched = pairs["debit", "incoming"] + pairs["credit", "outgoing"]
    assert 0 < mismatched < 0.01 * len(rows)


def test_amounts_have_two_decimals_and_a_plausible_spread_per_kind(
    rows: list[dict[str, str]],
) -> None:
    assert all(len(row["amount"].split(".")[1]) == 2 for row in rows)
    assert all(float(row["amount"]) > 0 for row in rows)

    def median(selected: list[dict[str, str]]) -> float:
        return statistics.median(float(row["amount"]) for row in selected)

    salaries = [row for row in rows if row["merchant"] in ("ACME GmbH", "Globex Ltd")]
    assert salaries
    assert all(row["operation_type"] == "credit" for row in salaries)
    assert median(salaries) > 1_000
    coffee = [row for row in rows if row["merchant"] in ("Starbucks", "PRET A MANGER")]
    assert median(coffee) < 50
    atm = [row for row in rows if "ATM withdrawal" in row["description"]]
    assert all(float(row["amount"]) % 10 == 0 for row in atm)


def test_descriptions_are_built_per_kind_and_name_the_merchant(rows: list[dict[str, str]]) -> None:
    assert all(row["merchant"] in row["description"] for row in rows)
    starts = Counter(row["description"].split(" ")[0] for row in rows)
    assert {"Card", "Contactless", "Online", "Direct", "Transfer", "ATM", "Refund"} <= set(starts)
    assert any("," in row["description"] for row in rows)  # some need CSV quoting
    assert any(not row["merchant"].isascii() for row in rows)


def test_the_shipped_dataset_is_the_generator_output_for_seed_42(tmp_path: Path) -> None:
    write_csv(tmp_path / "tx.csv", rows=10_000, seed=42)
    assert SHIPPED.read_bytes() == (tmp_path / "tx.csv").read_bytes()


@pytest.mark.parametrize("name", ["tx.csv.gz", "tx.jsonl", "tx.ndjson.gz", "tx.parquet"])
def test_every_format_loads_as_the_csv_does(tmp_path: Path, name: str) -> None:
    write_csv(tmp_path / "tx.csv", rows=400, seed=5)
    write(tmp_path / name, rows=400, seed=5)
    expected = load_dataset(str(tmp_path / "tx.csv"))
    loaded = load_dataset(str(tmp_path / name))
    assert loaded.values == expected.values
    assert loaded.ts_spans == expected.ts_spans


def test_a_card_column_leaves_the_seven_fields_as_they_were(tmp_path: Path) -> None:
    write_csv(tmp_path / "tx.csv", rows=300, seed=5)
    write(tmp_path / "cards.parquet", rows=300, seed=5, cards=20)
    keep = Reading(extra_columns="keep", entity="card_id")
    with_cards = load_dataset(str(tmp_path / "cards.parquet"), reading=keep)
    assert dict(with_cards.columns) == {"card_id": "string"}
    cards = with_cards.key_column("card_id")
    assert 10 < len(set(cards)) <= 20
    assert all(card.startswith(b"card-") for card in cards)
    plain = load_dataset(str(tmp_path / "cards.parquet"))
    assert plain.dropped == ("card_id",)
    assert plain.values == load_dataset(str(tmp_path / "tx.csv")).values
