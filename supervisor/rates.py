"""`streaming-producer rate`: the rates a config asks for, per profile and for the whole fleet.

By the seed's formula ("Production Rate Calculation"): batches/s = 1 / interval_s, and records/s =
batches/s * (min_records + max_records) / 2 (`ProfileSettings.records_per_s`). These are the
rates the schedule aims at; `ticks_behind_schedule` in the metrics says when a run falls short.
The rates are the whole fleet's: a config with `shard: {count: N}` is run by N processes, each at
1/N of every profile's rate, and the table ends with one shard's figures.

A profile with a `schedule` runs at its rate times the schedule's factor: the table shows the
factor's range and mean, and its records/day is the mean's (for a ramp, the rate it ends at).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from supervisor.config import Config, RampSchedule
from supervisor.profile.schedule import curve_for

_HEADER = (
    "profile",
    "interval_s",
    "records/batch",
    "batches/s",
    "records/s",
    "records/day",
    "topic",
    "schedule",
)
_LEFT = frozenset({0, 6, 7})
"""Columns aligned left (text); the rest are numbers, aligned right."""


def _number(value: float, digits: int) -> str:
    return f"{value:,.{digits}f}"


def rate_table(config: Config) -> str:
    """An aligned text table of each profile's rates and the fleet's total (ends with a newline)."""
    rows: list[Sequence[str]] = [_HEADER]
    batches_total = records_total = daily_total = 0.0
    now = datetime.now(UTC)
    for name, settings in config.profiles.items():
        batches = 1 / settings.interval_s
        records = settings.records_per_s
        schedule, mean = "", 1.0
        if settings.schedule is not None:
            factors = curve_for(settings.schedule, wall_start=now).stats()
            mean = (
                settings.schedule.end
                if isinstance(settings.schedule, RampSchedule)
                else factors.mean
            )
            schedule = f"{settings.schedule.kind} {factors}"
        batches_total += batches
        records_total += records
        daily_total += records * mean * 86_400
        rows.append(
            (
                name,
                _number(settings.interval_s, 3),
                f"{settings.min_records}-{settings.max_records}",
                _number(batches, 2),
                _number(records, 2),
                _number(records * mean * 86_400, 0),
                settings.topic or config.kafka.topic,
                schedule,
            )
        )
    count = len(config.profiles)
    rows.append(
        (
            f"fleet ({count} profile{'s' if count != 1 else ''})",
            "",
            "",
            _number(batches_total, 2),
            _number(records_total, 2),
            _number(daily_total, 0),
            "",
            "",
        )
    )
    shard = config.shard.split
    if not shard.alone:
        rows.append(
            (
                f"each shard (1/{shard.count})",
                "",
                "",
                _number(batches_total / shard.count, 2),
                _number(records_total / shard.count, 2),
                _number(daily_total / shard.count, 0),
                "",
                "",
            )
        )
    if not any(settings.schedule for settings in config.profiles.values()):
        rows = [row[:-1] for row in rows]  # no schedule column when nothing is scheduled
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]

    def line(row: Sequence[str]) -> str:
        cells = (
            cell.ljust(width) if i in _LEFT else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        )
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * width for width in widths)
    body = [line(row) for row in rows]
    totals = 1 if shard.alone else 2
    return "\n".join([body[0], rule, *body[1:-totals], rule, *body[-totals:]]) + "\n"
