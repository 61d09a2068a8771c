"""Property: every number validation accepts is one the program can run with. Schedules, batch
sizes, delays and fraud parameters anywhere inside their bounds pace, tick and shape streams
without overflowing, exhausting memory or spinning; outside them, validation names the bound."""

from __future__ import annotations

import json
import math
import random
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from supervisor.config import ProfileSettings, Schedule
from supervisor.dataset import Dataset, load_dataset
from supervisor.profile.pacing import Pacer
from supervisor.profile.schedule import curve_for
from supervisor.profile.stream import ProfileStream
from tests.integration.cli_process import ROOT

WALL = datetime(2026, 6, 1, 12, tzinfo=UTC)
# Numbers from the tiny to the absurd, bounds included: validation keeps the runnable ones.
NUMBER = st.one_of(
    st.floats(min_value=0, max_value=1e12, allow_nan=False),
    st.sampled_from([0, 1e-9, 1e-4, 0.001, 1, 86400, 31_622_400, 31_622_401, 1e6, 1e300]),
)
COUNT = st.one_of(st.integers(0, 10**12), st.sampled_from([1, 1_000_000, 1_000_001]))
SCHEDULE = st.one_of(
    st.fixed_dictionaries(
        {"kind": st.just("ramp"), "from": NUMBER, "to": NUMBER, "duration_s": NUMBER}
    ),
    st.fixed_dictionaries(
        {"kind": st.just("burst"), "every_s": NUMBER, "duration_s": NUMBER, "factor": NUMBER}
    ),
    st.fixed_dictionaries({"kind": st.just("diurnal"), "day_length_s": NUMBER}),
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@settings(max_examples=300, deadline=None)
@given(schedule=SCHEDULE, interval=NUMBER)
def test_every_valid_schedule_paces(schedule: dict[str, Any], interval: float) -> None:
    try:
        parsed = TypeAdapter(Schedule).validate_python(schedule)
        ProfileSettings.model_validate({"interval_s": interval, "min_records": 1, "max_records": 1})
    except ValidationError:
        return  # refused with a message: what the bounds are for
    clock = FakeClock()
    pacer = Pacer(interval, clock=clock, curve=curve_for(parsed, wall_start=WALL))
    previous = -math.inf
    for _ in range(30):
        if pacer.next_at == math.inf:
            break
        assert pacer.due_s >= previous
        previous = pacer.due_s
        clock.now = max(clock.now, pacer.next_at)
        pacer.tick()


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return load_dataset(str(ROOT / "data" / "transactions.csv"))


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    records=st.tuples(COUNT, COUNT),
    late=NUMBER,
    held=NUMBER,
    copy=NUMBER,
    attempts=COUNT,
    window=NUMBER,
    factor=NUMBER,
)
def test_every_valid_shaped_profile_ticks_into_valid_json(
    dataset: Dataset,
    records: tuple[int, int],
    late: float,
    held: float,
    copy: float,
    attempts: int,
    window: float,
    factor: float,
) -> None:
    low, high = sorted(records)
    profile = {
        "interval_s": 1,
        "min_records": low,
        "max_records": min(high, 2000) if high <= 1_000_000 else high,
        "timestamp": "shift",
        "kafka_timestamp": "event",
        "late": {"fraction": 0.5, "max_delay_s": late},
        "out_of_order": {"fraction": 0.3, "max_delay_s": held},
        "duplicates": {"fraction": 0.2, "max_delay_s": copy},
        "scenario": {
            "kind": "card-testing",
            "probability": 1,
            "min_attempts": 1,
            "max_attempts": min(attempts, 500) if attempts <= 1_000_000 else attempts,
            "window_s": window,
            "max_amount": max(factor, 2.0) if factor <= 1e15 else factor,
        },
        "labels": {"topic": "labels", "delay_s": copy},
    }
    try:
        settings_ = ProfileSettings.model_validate(profile)
    except ValidationError:
        return
    stream = ProfileStream(
        "p", settings_, dataset, random.Random(1), topic="tx", headers=[], wall_start_s=1.8e9
    )
    for tick in range(3):
        for message in [*stream.tick(float(tick)), *stream.due(float(tick))]:
            json.loads(message.value, parse_constant=_refuse)
            assert message.timestamp_ms >= 0


def _refuse(constant: str) -> float:
    raise AssertionError(f"{constant} is not JSON")
