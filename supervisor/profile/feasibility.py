"""What a dataset must support for a profile's fraud scenario and the event times it writes.

Checked before anything is sent (`run`, `check`, a reload), so that a profile never fails on every
tick instead: a scenario whose merchant has no debits, event times shifted or made late beyond
what a date or a Kafka timestamp can hold.
"""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime
from typing import Final

from supervisor.config import Config, ProfileSettings
from supervisor.dataset import FIELDS, Dataset
from supervisor.errors import DatasetError
from supervisor.profile.scenarios import ScenarioPlanner


def check_scenarios(config: Config, dataset: Dataset) -> None:
    """Raise DatasetError (naming the profile) if `dataset` cannot support a profile: its key (a
    field its messages carry), its fraud scenario (e.g. its merchant has no debits), or the event
    times it would write (see `_check_event_times`). Refused before anything is sent, by `run`,
    `check` and a reload."""
    for name, settings in config.profiles.items():
        key = settings.key
        if key is not None and key not in FIELDS and key not in dataset.columns:
            kept = ", ".join(dataset.columns) or "none"
            raise DatasetError(
                f"profiles.{name}.key: {key!r} is not a field of the messages of dataset"
                f" {dataset.source} (the seven fields, then its kept columns: {kept}) — key by"
                " one of them, or keep that column in the dataset"
            )
        if settings.scenario is not None:
            try:
                ScenarioPlanner(settings.scenario, dataset, random.Random(0))
            except DatasetError as exc:
                raise DatasetError(f"profiles.{name}.{exc}") from None
        _check_event_times(name, settings, dataset)


_FIRST_S: Final = datetime(1, 1, 2, tzinfo=UTC).timestamp()
_LAST_S: Final = datetime(9999, 12, 30, tzinfo=UTC).timestamp()


def _check_event_times(name: str, settings: ProfileSettings, dataset: Dataset) -> None:
    """The event times a profile writes must be dates (years 1 to 9999), and Kafka timestamps
    (`kafka_timestamp: event`) must not be before 1970: a dataset near those edges, shifted or
    made late, would otherwise fail on every tick."""
    timed = (
        settings.timestamp == "shift"
        or settings.late is not None
        or (settings.kafka_timestamp == "event" and settings.timestamp != "now")
    )
    if not timed or (settings.timestamp == "now" and settings.late is None):
        return
    epochs = dataset.epochs()
    shift = time.time() - max(epochs) if settings.timestamp == "shift" else 0.0
    late = settings.late.max_delay_s if settings.late is not None else 0.0
    first, last = min(epochs) + shift - late, max(epochs) + shift
    floor = 0.0 if settings.kafka_timestamp == "event" else _FIRST_S
    if first < floor or last > _LAST_S:
        reach = (
            "before 1970, which a Kafka timestamp cannot be"
            if floor == 0.0
            else ("outside the years 1 to 9999")
        )
        raise DatasetError(
            f"profiles.{name}: the event times it would write reach {reach}: the dataset's"
            f" timestamps run from {_when(min(epochs))} to {_when(max(epochs))}"
            + (f", late by up to {late:g}s" if late else "")
            + " — use a dataset with recent timestamps, or timestamp: now"
        )


def _when(epoch: float) -> str:
    try:
        return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d")
    except (OverflowError, ValueError, OSError):
        return f"{epoch:.0f}s from 1970"
