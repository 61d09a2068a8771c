"""Pacing by absolute deadlines, driven by an injected clock."""

from __future__ import annotations

import asyncio

import pytest

from supervisor.pacing import Pacer, sleep_or_stop


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
        delay = pacer.delay()
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
        clock.now += max(0.0, pacer.delay())
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
    while pacer.delay() <= 0:
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
