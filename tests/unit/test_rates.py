"""`rate_table`: the seed's rate formula per profile and for the fleet, as an aligned table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from supervisor.config import Config
from supervisor.rates import rate_table

REPO = Path(__file__).resolve().parents[2]


def config(profiles: dict[str, dict[str, Any]], **top: Any) -> Config:
    return Config.model_validate({"profiles": profiles, **top})


def cells(table: str) -> dict[str, list[str]]:
    """Rows of the table by their first cell (the fleet row under "fleet"), split on 2+ spaces."""
    rows: dict[str, list[str]] = {}
    for line in table.splitlines():
        if not line or set(line) <= {"-", " "}:
            continue
        parts = [part for part in line.split("  ") if part.strip()]
        name = parts[0].strip()
        rows["fleet" if name.startswith("fleet") else name] = [p.strip() for p in parts[1:]]
    return rows


def test_seed_example_interval_half_second_one_to_ten_records_is_eleven_per_second() -> None:
    # The seed README: INTERVAL=0.5, MIN=1, MAX=10 -> 2 batches/s * 5.5 records = 11 records/s.
    rows = cells(
        rate_table(config({"normal": {"interval_s": 0.5, "min_records": 1, "max_records": 10}}))
    )

    assert rows["normal"][:5] == ["0.500", "1-10", "2.00", "11.00", "950,400"]
    assert rows["fleet"] == ["2.00", "11.00", "950,400"]


def test_repository_presets_and_the_fleet_total() -> None:
    table = rate_table(Config.from_yaml(REPO / "config.yaml", env={}))
    rows = cells(table)

    assert rows["high"][2:4] == ["5.00", "75.00"]
    assert rows["normal"][2:4] == ["2.00", "11.00"]
    assert rows["low"][2:4] == ["0.50", "1.50"]
    assert rows["fleet"][:2] == ["7.50", "87.50"]
    assert "fleet (3 profiles)" in table


def test_profile_topic_overrides_the_default_topic() -> None:
    table = rate_table(
        config(
            {
                "a": {"interval_s": 1, "min_records": 1, "max_records": 1},
                "b": {"interval_s": 1, "min_records": 1, "max_records": 1, "topic": "replay"},
            },
            kafka={"topic": "main"},
        )
    )
    rows = cells(table)

    assert rows["a"][-1] == "main"
    assert rows["b"][-1] == "replay"
    assert "fleet (2 profiles)" in table


def test_columns_are_aligned_and_numbers_right_aligned() -> None:
    table = rate_table(
        config(
            {
                "tiny": {"interval_s": 60, "min_records": 1, "max_records": 1},
                "a-much-longer-profile-name": {
                    "interval_s": 0.001,
                    "min_records": 100,
                    "max_records": 200,
                },
            }
        )
    )
    lines = table.splitlines()
    header, rule = lines[0], lines[1]

    assert table.endswith("\n")
    # Every column boundary in the rule is at the same place in every line.
    starts = [i for i, ch in enumerate(rule) if ch == "-" and (i == 0 or rule[i - 1] == " ")]
    for line in lines[2:]:
        if set(line) <= {"-", " "}:
            assert line == rule
    # records/s ends at the same column on every row: right-aligned numbers.
    records_end = header.index("records/s") + len("records/s")
    for line in lines[2:]:
        if not set(line) <= {"-", " "}:
            assert line[records_end - 1].isdigit()
    assert len(starts) == 7
    assert cells(table)["a-much-longer-profile-name"][3] == "150,000.00"
    assert cells(table)["tiny"][3] == "0.02"


@pytest.mark.parametrize("count", [1, 2])
def test_fleet_row_counts_profiles(count: int) -> None:
    profiles = {
        f"p{i}": {"interval_s": 1, "min_records": 2, "max_records": 4} for i in range(count)
    }
    table = rate_table(config(profiles))

    assert f"fleet ({count} profile{'s' if count > 1 else ''})" in table
    assert cells(table)["fleet"][1] == f"{3.0 * count:.2f}"
