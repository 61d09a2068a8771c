"""Pacing by absolute deadlines, driven by an injected clock."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
from collections.abc import Callable

import pytest
import uvloop
from pydantic import TypeAdapter

from supervisor.config import Schedule
from supervisor.lifecycle import sleep_or_stop
from supervisor.profile.pacing import Pacer, phase_s
from supervisor.profile.schedule import RateCurve, curve_for

WALL_START = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)


def curve(**schedule: object) -> RateCurve:
    return curve_for(TypeAdapter(Schedule).validate_python(schedule), wall_start=WALL_START)


BURSTS = {"kind": "burst", "every_s": 10, "duration_s": 2, "factor": 4, "offset_s": 0}
"""Four times the rate for the first 2 s of every 10 s."""


class FakeClock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_deadlines_are_absolute_so_work_time_does_not_drift() -> None:
    clock = FakeClock()
    pacer = Pacer(0.5, clock=clock)
    ticks = 0
    # Each batch takes 0.2 s of work; the pacer must still tick every 0.5 s exactly.
    while clock.now < 100.0 + 60.0:
        delay = pacer.next_at - clock.now
        if delay > 0:
            clock.now += delay
            continue
        lateness, behind = pacer.tick()
        assert lateness == pytest.approx(0.0)
        assert not behind
        ticks += 1
        clock.now += 0.2
    # 60 s / 0.5 s = 120 deadlines in [100, 160), plus the one at exactly 160 not reached.
    assert ticks == 120


def test_sleep_after_work_would_drift_but_pacer_does_not() -> None:
    clock = FakeClock()
    pacer = Pacer(1.0, clock=clock)
    starts = []
    for _ in range(10):
        clock.now += max(0.0, (pacer.next_at - clock.now))
        starts.append(clock.now)
        pacer.tick()
        clock.now += 0.3  # work
    assert starts == [100.0 + i for i in range(10)]


def test_a_tick_a_whole_interval_late_counts_as_behind_and_is_not_dropped() -> None:
    clock = FakeClock()
    pacer = Pacer(0.2, clock=clock)
    pacer.tick()  # on time, at 100.0
    clock.now += 0.75  # a stall: the deadlines 100.2, 100.4, 100.6 have passed
    results = []
    while (pacer.next_at - clock.now) <= 0:
        results.append(pacer.tick())
    lateness = [round(late, 6) for late, _ in results]
    behind = [b for _, b in results]
    assert lateness == [0.55, 0.35, 0.15]  # every missed tick still runs, in order
    assert behind == [True, True, False]
    assert pacer.next_at == pytest.approx(100.8)  # the schedule is unchanged


def test_slightly_late_tick_is_not_behind() -> None:
    clock = FakeClock()
    pacer = Pacer(0.5, clock=clock)
    clock.now += 0.003
    lateness, behind = pacer.tick()
    assert lateness == pytest.approx(0.003)
    assert not behind


@pytest.mark.parametrize("interval", [0.0, -1.0, float("nan")])
def test_interval_must_be_positive(interval: float) -> None:
    with pytest.raises(ValueError, match="interval_s"):
        Pacer(interval)


def test_sleep_or_stop_returns_at_once_when_stopped() -> None:
    async def scenario() -> tuple[bool, bool]:
        stop = asyncio.Event()
        asyncio.get_running_loop().call_soon(stop.set)
        woke = await sleep_or_stop(stop, 3600)  # would hang the test if stop were ignored
        return woke, await sleep_or_stop(asyncio.Event(), 0)

    assert asyncio.run(scenario()) == (True, False)


def on_time_deadlines(pacer: Pacer, clock: FakeClock, count: int) -> list[float]:
    """The run times of `count` ticks, each taken exactly at its deadline."""
    deadlines = []
    for _ in range(count):
        clock.now = pacer.next_at
        assert pacer.next_at == pacer.start + pacer.due_s
        deadlines.append(pacer.due_s)
        assert pacer.tick() == (0.0, False)
    return deadlines


def test_a_schedule_spaces_the_deadlines_by_work() -> None:
    clock = FakeClock()
    # Ticks 0.25 s apart in a burst, 1 s apart out of it.
    pacer = Pacer(1.0, clock=clock, curve=curve(**BURSTS))
    assert pacer.start == 100.0
    deadlines = on_time_deadlines(pacer, clock, 20)
    expected = [0.25 * i for i in range(8)] + [2.0 + i for i in range(8)] + [10, 10.25, 10.5, 10.75]
    assert deadlines == pytest.approx(expected, abs=1e-12)


def test_with_a_schedule_behind_means_past_the_following_deadline() -> None:
    clock = FakeClock()
    pacer = Pacer(1.0, clock=clock, curve=curve(**BURSTS))
    clock.now = 100.3  # in the burst: the deadlines 100.0 and 100.25 have passed
    results = [pacer.tick(), pacer.tick()]
    clock.now = 105.3  # out of it, 0.3 s late is less than a tick
    while pacer.next_at < 105.0:
        pacer.tick()
    results.append(pacer.tick())
    assert [(round(late, 9), behind) for late, behind in results] == [
        (0.3, True),  # less than interval_s late, but the following deadline has passed too
        (0.05, False),
        (0.3, False),
    ]


def test_a_schedule_starting_at_zero_waits_for_an_intervals_work() -> None:
    clock = FakeClock()
    ramp = curve(kind="ramp", **{"from": 0, "to": 1}, duration_s=100)
    pacer = Pacer(2.0, clock=clock, curve=ramp)  # factor t / 100: work t**2 / 200, 2 at t = 20
    assert pacer.due_s == pytest.approx(20.0)
    assert (pacer.next_at - clock.now) == pytest.approx(20.0)


def test_a_ramp_to_zero_ends_the_deadlines() -> None:
    clock = FakeClock()
    # Factor 1 - t / 4: 2 of work in all, the second interval's worth at t = 4 exactly.
    pacer = Pacer(1.0, clock=clock, curve=curve(kind="ramp", **{"from": 1, "to": 0}, duration_s=4))
    assert on_time_deadlines(pacer, clock, 3) == pytest.approx([0.0, 4 - math.sqrt(8), 4.0])
    assert pacer.next_at == math.inf
    assert (pacer.next_at - clock.now) == math.inf
    assert pacer.tick() == (0.0, False)
    assert pacer.next_at == math.inf


def test_no_schedule_or_factor_one_gives_the_same_deadlines() -> None:
    plain_clock, curved_clock = FakeClock(), FakeClock()
    plain = Pacer(0.3, clock=plain_clock)
    unit = Pacer(0.3, clock=curved_clock, curve=curve_for(None, wall_start=WALL_START))
    assert on_time_deadlines(plain, plain_clock, 1000) == on_time_deadlines(
        unit, curved_clock, 1000
    )


def test_a_profiles_phase_comes_from_its_name_alone_and_lies_within_its_interval() -> None:
    names = [f"p{i:03d}" for i in range(1000)]
    phases = [phase_s(name, 0.5) for name in names]
    assert phases == [phase_s(name, 0.5) for name in names]
    assert all(0.0 <= p < 0.5 for p in phases)
    # Stable across processes and Python versions (sha256, not hash()): shards and restarts agree.
    assert phase_s("normal", 1.0) == 0.43804314937767763
    assert phase_s("normal", 0.5) == 0.5 * phase_s("normal", 1.0)
    # Spread over the interval: every tenth of it holds about a tenth of the thousand profiles.
    tenths = [0] * 10
    for p in phases:
        tenths[int(p / 0.05)] += 1
    assert min(tenths) > 60, tenths
    assert max(tenths) < 140, tenths


@pytest.mark.parametrize("schedule", [None, BURSTS], ids=["constant", "burst"])
def test_a_lead_moves_when_the_ticks_happen_and_nothing_on_the_run_clock(
    schedule: dict[str, object] | None,
) -> None:
    def make(lead_s: float) -> tuple[Pacer, FakeClock]:
        clock = FakeClock()
        made = None if schedule is None else curve(**schedule)
        return Pacer(1.0, clock=clock, curve=made, lead_s=lead_s), clock

    plain, plain_clock = make(0.0)
    led, led_clock = make(0.375)
    assert led.start == plain.start + 0.375
    assert on_time_deadlines(led, led_clock, 40) == on_time_deadlines(plain, plain_clock, 40)
    assert led.next_at == plain.next_at + 0.375


@pytest.mark.parametrize("lead_s", [-0.1, 0.5, 0.7])
def test_a_lead_is_less_than_an_interval(lead_s: float) -> None:
    with pytest.raises(ValueError, match="lead_s"):
        Pacer(0.5, lead_s=lead_s)


@pytest.mark.parametrize(
    "loop_factory", [asyncio.new_event_loop, uvloop.new_event_loop], ids=["asyncio", "uvloop"]
)
def test_sleep_or_stop_without_a_deadline_waits_for_stop(
    loop_factory: Callable[[], asyncio.AbstractEventLoop],
) -> None:
    async def scenario() -> bool:
        stop = asyncio.Event()
        asyncio.get_running_loop().call_soon(stop.set)
        return await sleep_or_stop(stop, math.inf)

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        assert runner.run(scenario()) is True
