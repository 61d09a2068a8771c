"""Rate curves: exact factors, integrals and tick placement for every schedule kind.

The properties compare `curve_for`'s curves with `reference_factor`, a direct transcription of the
schedules' definitions (the local wall clock read through `datetime` and `zoneinfo`, no
transition arithmetic), integrated numerically where an integral is checked. Wall starts are
drawn near daylight-saving changes as often as not, so the wall-clock kinds cross them.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from supervisor.config import (
    DIURNAL_CURVE,
    BurstSchedule,
    DiurnalSchedule,
    RampSchedule,
    Schedule,
    WindowsSchedule,
)
from supervisor.profile.schedule import DAY_S, FactorRange, RateCurve, curve_for

SCHEDULE: TypeAdapter[Schedule] = TypeAdapter(Schedule)
PROPERTY_SETTINGS = settings(
    deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow]
)
UTC = dt.UTC
TRANSITIONS = {
    "UTC": (),
    "Europe/Paris": ("2026-03-29T01:00", "2026-10-25T01:00"),
    "America/New_York": ("2026-03-08T07:00", "2026-11-01T06:00"),
    "Australia/Lord_Howe": ("2026-04-04T15:00", "2026-10-03T15:30"),  # 30-minute changes
    "America/St_Johns": ("2026-03-08T05:30", "2026-11-01T04:30"),  # UTC-03:30
}
"""Time zones, with their daylight-saving changes in 2026 (UTC)."""
START = dt.datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def schedule(**fields: Any) -> Schedule:
    return SCHEDULE.validate_python(fields)


def clock(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def local_time_of_day(wall_start: dt.datetime, t: float, zone: str) -> float:
    """Seconds since local midnight on the clock of `zone` at run time t: the UTC time of day
    plus the zone's offset at that moment (kept in small floats, so that it is continuous)."""
    offset = (wall_start + dt.timedelta(seconds=t)).astimezone(zoneinfo.ZoneInfo(zone)).utcoffset()
    assert offset is not None
    utc_midnight = wall_start.replace(hour=0, minute=0, second=0, microsecond=0)
    return ((wall_start - utc_midnight).total_seconds() + t + offset.total_seconds()) % DAY_S


def reference_factor(sched: Schedule, wall_start: dt.datetime, t: float) -> float:
    """The factor at run time t, as the schedule's definition says."""
    match sched:
        case RampSchedule(start=start, end=end, duration_s=duration):
            return end if t >= duration else start + (end - start) * t / duration
        case BurstSchedule(every_s=every, duration_s=duration, factor=factor):
            first = sched.first_burst_s
            in_burst = t >= first and (t - first) % every < duration
            return factor if in_burst else 1.0
        case DiurnalSchedule(day_length_s=length, curve=curve, start_hour=start_hour):
            if start_hour is not None:
                hour = (start_hour + 24 * t / length) % 24
            elif length == DAY_S:
                hour = local_time_of_day(wall_start, t, sched.timezone) / 3600
            else:
                at_start = local_time_of_day(wall_start, 0.0, sched.timezone) / 3600
                hour = (at_start + 24 * t / length) % 24
            h = int(hour)
            return curve[h] + (curve[(h + 1) % 24] - curve[h]) * (hour - h)
        case WindowsSchedule(windows=windows, default=default, timezone=zone):
            now = local_time_of_day(wall_start, t, zone)
            for window in windows:
                if any(start <= now < end for start, end in window.spans()):
                    return window.factor
            return default
    raise AssertionError(sched)


def numeric_integral(f: Callable[[float], float], a: float, b: float, cell: float) -> float:
    """The integral of a piecewise-linear f over [a, b], by trapezoids on cells no wider than
    `cell`, halved wherever f is not linear across one. Exact up to where f's jumps are placed,
    provided every run of f between two jumps is wider than a quarter `cell`."""

    def linear_part(left: float, right: float, f_left: float, f_right: float, depth: int) -> float:
        quarter = (right - left) / 4
        inner = [f(left + i * quarter) for i in (1, 2, 3)]
        straight = all(
            abs(value - (f_left + (f_right - f_left) * i / 4)) <= 1e-9 * (1 + abs(value))
            for i, value in zip((1, 2, 3), inner, strict=True)
        )
        if straight or depth == 40:
            return (right - left) * (f_left + f_right) / 2
        middle = left + 2 * quarter
        return linear_part(left, middle, f_left, inner[1], depth + 1) + linear_part(
            middle, right, inner[1], f_right, depth + 1
        )

    cells = max(1, math.ceil((b - a) / cell))
    edges = [a + (b - a) * i / cells for i in range(cells)] + [b]
    return sum(linear_part(lo, hi, f(lo), f(hi), 0) for lo, hi in itertools.pairwise(edges))


@dataclass(frozen=True)
class Case:
    """A schedule started at `wall_start`, looked at over run times [0, horizon_s]. No run of
    the factor between two jumps is shorter than `feature_s` (what `numeric_integral` needs)."""

    schedule: Schedule
    wall_start: dt.datetime
    horizon_s: float
    feature_s: float

    def curve(self) -> RateCurve:
        return curve_for(self.schedule, wall_start=self.wall_start)

    def reference(self, t: float) -> float:
        return reference_factor(self.schedule, self.wall_start, t)

    def high(self) -> float:
        return self.curve().stats().high


factors = st.one_of(st.just(0.0), st.floats(0.05, 20.0))
zones = st.sampled_from(sorted(TRANSITIONS))
changing_zones = st.sampled_from(sorted(zone for zone, changes in TRANSITIONS.items() if changes))


def wall_starts(zone: str, *, near_a_change: bool) -> st.SearchStrategy[dt.datetime]:
    """Up to 2.5 days before a change of `zone` (when near_a_change, else as often as not), or
    any moment of 2025-2027."""
    anywhere = st.datetimes(
        dt.datetime(2025, 1, 1), dt.datetime(2027, 12, 31), timezones=st.just(UTC)
    )
    if not TRANSITIONS[zone]:
        return anywhere
    changes = [dt.datetime.fromisoformat(iso).replace(tzinfo=UTC) for iso in TRANSITIONS[zone]]
    before_a_change = st.builds(
        lambda change, before: change - dt.timedelta(seconds=before),
        st.sampled_from(changes),
        st.floats(0.0, 2.5 * DAY_S),
    )
    return before_a_change if near_a_change else anywhere | before_a_change


@st.composite
def ramps(draw: st.DrawFn) -> Case:
    start, end = draw(factors), draw(factors)
    if start == end == 0:
        end = 1.0
    duration = draw(st.floats(1.0, 1e5))
    sched = schedule(kind="ramp", **{"from": start, "to": end}, duration_s=duration)
    return Case(sched, START, horizon_s=2 * duration, feature_s=duration)


@st.composite
def bursts(draw: st.DrawFn) -> Case:
    every = draw(st.floats(1.0, 1e4))
    duration = every * draw(st.floats(0.05, 0.95))
    offset = draw(st.none() | st.floats(0.0, 2 * every))
    sched = schedule(
        kind="burst", every_s=every, duration_s=duration, factor=draw(factors), offset_s=offset
    )
    assert isinstance(sched, BurstSchedule)
    horizon = sched.first_burst_s + 3 * every
    return Case(sched, START, horizon_s=horizon, feature_s=min(duration, every - duration))


@st.composite
def diurnals(draw: st.DrawFn, *, near_a_change: bool = False) -> Case:
    """Any diurnal day; near_a_change: a real-length one following the clock across a change."""
    curve = draw(st.lists(factors, min_size=24, max_size=24).filter(any))
    if near_a_change:
        length, start_hour, zone = float(DAY_S), None, draw(changing_zones)
    else:
        length = draw(st.just(float(DAY_S)) | st.floats(10.0, 1e5))
        start_hour = draw(st.none() | st.floats(0.0, 24.0, exclude_max=True))
        zone = draw(zones)
    sched = schedule(
        kind="diurnal", day_length_s=length, curve=curve, start_hour=start_hour, timezone=zone
    )
    start = draw(wall_starts(zone, near_a_change=near_a_change))
    return Case(sched, start, horizon_s=3 * length, feature_s=length / 24)


@st.composite
def windows(draw: st.DrawFn, *, near_a_change: bool = False) -> Case:
    """1 to 3 windows on whole minutes, at least 10 minutes long and apart; maybe one wraps."""
    count = draw(st.integers(1, 3))
    slots = draw(st.lists(st.integers(0, 143), min_size=2 * count, max_size=2 * count, unique=True))
    minute = 60 * draw(st.integers(0, 9))
    bounds = sorted(600 * slot + minute for slot in slots)
    if draw(st.booleans()):  # pair them the other way round: the last window wraps
        bounds = bounds[1:] + bounds[:1]
    factor_list = [draw(factors) for _ in range(count)]
    default = draw(factors)
    if default == 0 and not any(factor_list):
        default = 1.0
    sched = schedule(
        kind="windows",
        windows=[
            {"from": clock(bounds[2 * i]), "to": clock(bounds[2 * i + 1]), "factor": f}
            for i, f in enumerate(factor_list)
        ],
        default=default,
        timezone=(zone := draw(changing_zones if near_a_change else zones)),
    )
    start = draw(wall_starts(zone, near_a_change=near_a_change))
    # A daylight-saving change can cut a window down to its last whole minutes: 60 s.
    return Case(sched, start, horizon_s=3 * DAY_S, feature_s=60.0)


cases = st.one_of(ramps(), bursts(), diurnals(), windows())
fractions = st.floats(0.0, 1.0)


# --- properties --------------------------------------------------------------------------------


def assert_factor_is_the_definition(case: Case, curve: RateCurve, t: float) -> None:
    # The reference reads the clock to the microsecond: at a jump, either side is right.
    around = [case.reference(t + d) for d in (-2e-6, 0.0, 2e-6)]
    assert min(around) - 1e-9 <= curve.factor(t) <= max(around) + 1e-9, t


@PROPERTY_SETTINGS
@given(case=cases, at=fractions)
def test_factor_is_the_schedules_definition(case: Case, at: float) -> None:
    assert_factor_is_the_definition(case, case.curve(), at * case.horizon_s)


@PROPERTY_SETTINGS
@given(case=windows(near_a_change=True) | diurnals(near_a_change=True), shift=fractions)
def test_wall_clock_schedules_follow_the_local_clock_across_a_change(
    case: Case, shift: float
) -> None:
    curve = case.curve()
    for step in range(int(case.horizon_s) // 300):  # every 5 minutes, for 3 days
        assert_factor_is_the_definition(case, curve, (step + shift) * 300)


@PROPERTY_SETTINGS
@given(case=cases, bounds=st.tuples(fractions, fractions))
def test_integral_matches_a_numerical_integration_of_the_definition(
    case: Case, bounds: tuple[float, float]
) -> None:
    a, b = sorted(x * case.horizon_s for x in bounds)
    expected = numeric_integral(case.reference, a, b, case.feature_s / 2)
    # The reference places a jump to the microsecond: allow that much per jump.
    tolerance = case.high() * (1e-7 * (b - a) + 1e-4)
    assert case.curve().integral(a, b) == pytest.approx(expected, abs=tolerance)


@PROPERTY_SETTINGS
@given(case=cases, points=st.lists(fractions, min_size=3, max_size=3))
def test_integral_is_additive(case: Case, points: list[float]) -> None:
    a, b, c = sorted(x * case.horizon_s for x in points)
    curve = case.curve()
    whole = curve.integral(a, c)
    assert curve.integral(a, b) + curve.integral(b, c) == pytest.approx(
        whole, rel=1e-9, abs=1e-9 * case.high() * case.horizon_s
    )


@PROPERTY_SETTINGS
@given(case=cases, at=fractions, share=st.floats(1e-6, 1.5))
def test_advance_is_the_inverse_of_the_integral(case: Case, at: float, share: float) -> None:
    curve = case.curve()
    t = at * case.horizon_s
    work = share * curve.integral(0.0, case.horizon_s)
    later = curve.advance(t, work)
    if later == math.inf:
        # Only a ramp to 0 runs out, and then the work left after t is less than asked.
        assert isinstance(case.schedule, RampSchedule)
        assert case.schedule.end == 0
        assert curve.integral(t, max(t, case.schedule.duration_s)) < work * (1 + 1e-9)
        return
    assert later >= t
    # Exact up to the resolution of a float time (at 1e5 s, 1.5e-11 s).
    assert curve.integral(t, later) == pytest.approx(
        work, rel=1e-9, abs=4 * math.ulp(later) * case.high()
    )
    # The smallest such time: the factor is not 0 all along just before it.
    assert curve.integral(later - (later - t) * 1e-3, later) > 0


@PROPERTY_SETTINGS
@given(
    case=cases,
    ticks=st.integers(1, 2000),
    bounds=st.tuples(fractions, fractions),
    scrambled=st.booleans(),
)
def test_ticks_in_any_window_are_its_integral_over_the_interval_within_one(
    case: Case, ticks: int, bounds: tuple[float, float], scrambled: bool
) -> None:
    curve = case.curve()
    interval = curve.integral(0.0, case.horizon_s) / ticks
    if scrambled:  # random look-ups in between must not disturb the sequential place
        curve.factor(case.horizon_s * 0.7)
    deadlines = [0.0 if curve.factor(0.0) > 0 else curve.advance(0.0, interval)]
    while deadlines[-1] <= case.horizon_s:
        deadlines.append(curve.advance(deadlines[-1], interval))
        if scrambled and deadlines[-1] < math.inf:
            curve.integral(0.0, deadlines[-1] / 3)
    a, b = sorted(x * case.horizon_s for x in bounds)
    count = sum(a <= t < b for t in deadlines)
    assert abs(count - curve.integral(a, b) / interval) <= 1 + 1e-6


@PROPERTY_SETTINGS
@given(case=cases)
def test_stats_bound_the_factor(case: Case) -> None:
    stats = case.curve().stats()
    assert 0 <= stats.low <= stats.mean <= stats.high
    samples = [case.reference(case.horizon_s * i / 500) for i in range(501)]
    assert stats.low - 1e-9 <= min(samples)
    assert max(samples) <= stats.high + 1e-9
    # The mean is over one period, or the ramp (not the wall clock's days: some are 23 hours).
    match case.schedule:
        case RampSchedule(duration_s=length) | DiurnalSchedule(day_length_s=length, timezone="UTC"):
            first = 0.0
        case BurstSchedule(every_s=length):
            first = case.schedule.first_burst_s
        case _:
            return
    mean = case.curve().integral(first, first + length) / length
    assert stats.mean == pytest.approx(mean, rel=1e-9)


# --- known values ------------------------------------------------------------------------------


def test_ramp_is_linear_then_holds_its_end() -> None:
    curve = curve_for(
        schedule(kind="ramp", **{"from": 0.5, "to": 1.5}, duration_s=100), wall_start=START
    )
    assert curve.factor(0) == 0.5
    assert curve.factor(50) == pytest.approx(1.0)
    assert curve.factor(100) == 1.5
    assert curve.factor(1e6) == 1.5
    assert curve.integral(0, 100) == pytest.approx(100.0)
    assert curve.integral(100, 110) == pytest.approx(15.0)
    assert curve.stats() == FactorRange(0.5, 1.0, 1.5)
    assert str(curve.stats()) == "0.5x-1.5x, mean 1x"


def test_ramp_from_zero_places_work_on_the_parabola() -> None:
    curve = curve_for(
        schedule(kind="ramp", **{"from": 0, "to": 1}, duration_s=100), wall_start=START
    )
    # factor t / 100: work t**2 / 200.
    assert curve.advance(0.0, 2.0) == pytest.approx(20.0, rel=1e-12)
    assert curve.advance(20.0, 6.0) == pytest.approx(40.0, rel=1e-12)
    assert curve.advance(90.0, 19.5) == pytest.approx(110.0, rel=1e-12)  # 9.5 on the ramp, 10 on


def test_a_ramp_to_zero_runs_out_of_work() -> None:
    curve = curve_for(
        schedule(kind="ramp", **{"from": 2, "to": 0}, duration_s=10), wall_start=START
    )
    assert curve.integral(0, 1e9) == pytest.approx(10.0)
    assert curve.advance(0.0, 10.0) == pytest.approx(10.0)
    assert curve.advance(0.0, 10.001) == math.inf
    assert curve.advance(9.0, 1.0) == math.inf
    assert curve.advance(10.0, 1e-9) == math.inf
    assert curve.advance(math.inf, 1.0) == math.inf
    assert str(curve.stats()) == "0x-2x, mean 1x"


def test_bursts_come_every_period_after_the_first() -> None:
    sched = schedule(kind="burst", every_s=60, duration_s=10, factor=5)
    curve = curve_for(sched, wall_start=START)
    assert [curve.factor(t) for t in (0, 59.9, 60, 69.9, 70, 119, 120, 125, 130)] == [
        1, 1, 5, 5, 1, 1, 5, 5, 1,
    ]  # fmt: skip
    assert curve.integral(0, 180) == pytest.approx(60 + 2 * (10 * 5 + 50))
    assert str(curve.stats()) == "1x-5x, mean 1.67x"


def test_a_burst_at_offset_zero_starts_the_run() -> None:
    sched = schedule(kind="burst", every_s=60, duration_s=10, factor=0, offset_s=0)
    curve = curve_for(sched, wall_start=START)
    assert curve.factor(0) == 0
    assert curve.factor(10) == 1
    assert curve.advance(0.0, 1.0) == pytest.approx(11.0)  # through the pause
    assert curve.advance(55.0, 6.0) == pytest.approx(71.0)  # 5 before the next pause, 1 after


def test_diurnal_interpolates_between_hour_points_and_wraps_at_midnight() -> None:
    curve_values = [float(h % 5) for h in range(24)]
    sched = schedule(kind="diurnal", day_length_s=24, curve=curve_values, start_hour=0)
    curve = curve_for(sched, wall_start=START)  # one run second per hour
    assert [curve.factor(h) for h in range(24)] == curve_values
    assert curve.factor(2.5) == pytest.approx(2.5)
    assert curve.factor(4.5) == pytest.approx(2.0)  # from 4 back down to 0
    assert curve.factor(23.5) == pytest.approx((3 + 0) / 2)  # 23:00 -> 00:00 wraps to curve[0]
    assert curve.factor(24) == 0.0
    assert curve.factor(24 * 7 + 13) == curve_values[13]


def test_diurnal_start_hour_is_where_the_run_starts() -> None:
    sched = schedule(kind="diurnal", day_length_s=240, start_hour=6.5)
    curve = curve_for(sched, wall_start=START)
    assert curve.factor(0) == pytest.approx((DIURNAL_CURVE[6] + DIURNAL_CURVE[7]) / 2)
    assert curve.factor(55) == pytest.approx(DIURNAL_CURVE[12])  # 5.5 hours of 10 s later
    assert str(curve.stats()) == "0.124x-1.8x, mean 1x"


def test_a_real_length_diurnal_day_follows_the_local_clock_across_a_change() -> None:
    sched = schedule(kind="diurnal", timezone="Europe/Paris")
    start = dt.datetime(2026, 3, 28, 12, 0, tzinfo=UTC)  # 13:00 CET
    curve = curve_for(sched, wall_start=start)
    assert curve.factor(0) == pytest.approx(DIURNAL_CURVE[13])
    assert curve.factor(DAY_S) == pytest.approx(DIURNAL_CURVE[14])  # 14:00 CEST a day later
    # Just before and after 01:00 UTC on the 29th, the clock jumps from 02:00 to 03:00.
    change = (dt.datetime(2026, 3, 29, 1, 0, tzinfo=UTC) - start).total_seconds()
    assert curve.factor(change - 1e-3) == pytest.approx(DIURNAL_CURVE[2], rel=1e-6)
    assert curve.factor(change) == pytest.approx(DIURNAL_CURVE[3])


def test_a_compressed_diurnal_day_starts_at_the_wall_clocks_place_in_its_day() -> None:
    sched = schedule(kind="diurnal", day_length_s=60, timezone="America/New_York")
    start = dt.datetime(2026, 1, 5, 11, 0, tzinfo=UTC)  # 06:00 EST
    curve = curve_for(sched, wall_start=start)
    assert curve.factor(0) == pytest.approx(DIURNAL_CURVE[6])
    assert curve.factor(15) == pytest.approx(DIURNAL_CURVE[12])  # a quarter of the day later
    assert curve.factor(60 * 1000 + 30) == pytest.approx(DIURNAL_CURVE[18])


def at(start: dt.datetime, iso: str) -> float:
    """The run time of the UTC moment `iso` for a run started at `start`."""
    return (dt.datetime.fromisoformat(iso).replace(tzinfo=UTC) - start).total_seconds()


def test_windows_are_local_hours_on_both_sides_of_the_paris_changes() -> None:
    sched = schedule(
        kind="windows",
        windows=[{"from": "09:00", "to": "17:00", "factor": 2}],
        default=0.5,
        timezone="Europe/Paris",
    )
    start = dt.datetime(2026, 3, 27, tzinfo=UTC)
    curve = curve_for(sched, wall_start=start)
    # Winter time (UTC+1): 09:00-17:00 is 08:00-16:00 UTC.
    assert curve.factor(at(start, "2026-03-28T07:59:59")) == 0.5
    assert curve.factor(at(start, "2026-03-28T08:00:00")) == 2
    assert curve.factor(at(start, "2026-03-28T15:30:00")) == 2
    assert curve.factor(at(start, "2026-03-28T16:00:00")) == 0.5
    # Summer time (UTC+2) from the 29th: 07:00-15:00 UTC.
    assert curve.factor(at(start, "2026-03-29T06:59:59")) == 0.5
    assert curve.factor(at(start, "2026-03-29T07:00:00")) == 2
    assert curve.factor(at(start, "2026-03-30T14:59:59")) == 2
    assert curve.factor(at(start, "2026-03-30T15:30:00")) == 0.5
    # The local days: 24 hours, then 23 hours on the change day, each with its 8 window hours.
    normal = curve.integral(at(start, "2026-03-27T23:00"), at(start, "2026-03-28T23:00"))
    short = curve.integral(at(start, "2026-03-28T23:00"), at(start, "2026-03-29T22:00"))
    assert normal == pytest.approx(3600 * (8 * 2 + 16 * 0.5))
    assert short == pytest.approx(3600 * (8 * 2 + 15 * 0.5))

    autumn = dt.datetime(2026, 10, 23, tzinfo=UTC)
    curve = curve_for(sched, wall_start=autumn)
    assert curve.factor(at(autumn, "2026-10-24T07:30:00")) == 2  # 09:30 CEST
    assert curve.factor(at(autumn, "2026-10-26T07:30:00")) == 0.5  # 08:30 CET
    assert curve.factor(at(autumn, "2026-10-26T08:30:00")) == 2  # 09:30 CET
    long = curve.integral(at(autumn, "2026-10-24T22:00"), at(autumn, "2026-10-25T23:00"))
    assert long == pytest.approx(3600 * (8 * 2 + 17 * 0.5))


def test_a_window_past_midnight_wraps_on_both_sides_of_the_new_york_changes() -> None:
    sched = schedule(
        kind="windows",
        windows=[{"from": "22:00", "to": "06:00", "factor": 3}],
        timezone="America/New_York",
    )
    start = dt.datetime(2026, 3, 6, tzinfo=UTC)
    curve = curve_for(sched, wall_start=start)
    expected = {
        "2026-03-07T02:59:59": 1,  # 21:59:59 EST
        "2026-03-07T03:00:00": 3,  # 22:00 EST
        "2026-03-07T10:59:59": 3,  # 05:59:59 EST
        "2026-03-07T11:00:00": 1,  # 06:00 EST
        "2026-03-09T01:59:59": 1,  # 21:59:59 EDT
        "2026-03-09T02:00:00": 3,  # 22:00 EDT
        "2026-03-09T09:59:59": 3,  # 05:59:59 EDT
        "2026-03-09T10:00:00": 1,  # 06:00 EDT
    }
    assert {iso: curve.factor(at(start, iso)) for iso in expected} == expected
    # The night of the change loses an hour of window: 22:00 EST to 06:00 EDT is 7 hours.
    night = curve.integral(at(start, "2026-03-08T00:00"), at(start, "2026-03-08T12:00"))
    assert night == pytest.approx(3600 * (7 * 3 + 5 * 1))

    autumn = dt.datetime(2026, 10, 30, tzinfo=UTC)
    curve = curve_for(sched, wall_start=autumn)
    assert curve.factor(at(autumn, "2026-10-31T01:59:59")) == 1  # 21:59:59 EDT
    assert curve.factor(at(autumn, "2026-10-31T02:00:00")) == 3  # 22:00 EDT
    assert curve.factor(at(autumn, "2026-11-02T02:59:59")) == 1  # 21:59:59 EST
    assert curve.factor(at(autumn, "2026-11-02T03:00:00")) == 3  # 22:00 EST
    # And the night it ends gains one: 22:00 EDT to 06:00 EST is 9 hours.
    night = curve.integral(at(autumn, "2026-11-01T00:00"), at(autumn, "2026-11-01T12:00"))
    assert night == pytest.approx(3600 * (9 * 3 + 3 * 1))


def test_a_window_may_end_at_midnight_either_way() -> None:
    for end in ("00:00", "24:00"):
        sched = schedule(kind="windows", windows=[{"from": "18:00", "to": end, "factor": 2}])
        curve = curve_for(sched, wall_start=dt.datetime(2026, 1, 5, tzinfo=UTC))
        assert [curve.factor(h * 3600) for h in (0, 17, 18, 23, 24)] == [1, 1, 2, 2, 1]
        assert curve.integral(0, DAY_S) == 3600 * (18 + 6 * 2)


def test_a_window_in_a_skipped_or_repeated_hour_lasts_what_the_clock_shows() -> None:
    def day_work(window: tuple[str, str], date: str) -> float:
        sched = schedule(
            kind="windows",
            windows=[{"from": window[0], "to": window[1], "factor": 1}],
            default=0,
            timezone="Europe/Paris",
        )
        start = dt.datetime.fromisoformat(date).replace(tzinfo=UTC)
        return curve_for(sched, wall_start=start).integral(0, DAY_S)

    # 2026-03-29: the clock skips from 02:00 to 03:00, so only 03:00-03:30 is left of the window.
    assert day_work(("02:30", "03:30"), "2026-03-29") == pytest.approx(1800)
    assert day_work(("02:30", "03:30"), "2026-03-28") == pytest.approx(3600)
    # 2026-10-25: the clock shows 02:00-03:00 twice.
    assert day_work(("02:00", "03:00"), "2026-10-25") == pytest.approx(7200)
    assert day_work(("02:00", "03:00"), "2026-10-26") == pytest.approx(3600)


def test_advance_stops_at_the_end_of_a_window_rather_than_the_start_of_the_next() -> None:
    sched = schedule(
        kind="windows", windows=[{"from": "01:00", "to": "02:00", "factor": 1}], default=0
    )
    start = dt.datetime(2026, 1, 5, tzinfo=UTC)
    curve = curve_for(sched, wall_start=start)
    assert curve.advance(0.0, 3600.0) == 7200.0
    assert curve.advance(0.0, 3600.5) == DAY_S + 3600.5
    assert curve.advance(0.0, 10 * 3600.0) == 9 * DAY_S + 7200.0


def test_advance_skips_whole_periods_in_one_step() -> None:
    sched = schedule(kind="burst", every_s=1, duration_s=0.5, factor=3, offset_s=0)
    curve = curve_for(sched, wall_start=START)  # 2 work per second
    assert curve.advance(0.25, 2e6) == pytest.approx(1e6 + 0.25, rel=1e-12)
    assert curve.advance(0.0, 2e6) == pytest.approx(1e6, rel=1e-12)


def test_no_drift_over_a_million_advances() -> None:
    constant = curve_for(None, wall_start=START)
    t = 0.0
    for _ in range(1_000_000):
        t = constant.advance(t, 0.1)
    assert t == pytest.approx(1_000_000 * 0.1, rel=1e-9)
    # 14 work per 10 s period, 28 ticks of 0.5 per period: every 28th tick ends a period.
    burst = curve_for(
        schedule(kind="burst", every_s=10, duration_s=2, factor=3, offset_s=0), wall_start=START
    )
    t = 0.0
    for k in range(1, 1_000_001):
        t = burst.advance(t, 0.5)
        if k % 28 == 0:
            assert t == pytest.approx(k // 28 * 10.0, rel=1e-9)


def test_no_schedule_is_the_constant_one() -> None:
    curve = curve_for(None, wall_start=START)
    assert curve.constant == 1.0
    assert curve.factor(123.4) == 1.0
    assert curve.integral(3, 10.5) == 7.5
    assert curve.advance(2.5, 0.5) == 3.0
    assert str(curve.stats()) == "1x"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda c: c.advance(0.0, 0.0), "work"),
        (lambda c: c.advance(0.0, -1.0), "work"),
        (lambda c: c.integral(2.0, 1.0), "order"),
        (lambda c: c.factor(-1.0), "run time"),
        (lambda c: c.advance(-1.0, 1.0), "run time"),
    ],
)
def test_out_of_domain_calls_are_refused(call: Callable[[RateCurve], object], message: str) -> None:
    curve = curve_for(schedule(kind="burst", every_s=2, duration_s=1, factor=3), wall_start=START)
    with pytest.raises(ValueError, match=message):
        call(curve)


def test_wall_start_must_be_aware() -> None:
    with pytest.raises(ValueError, match="aware"):
        curve_for(None, wall_start=dt.datetime(2026, 1, 1))
