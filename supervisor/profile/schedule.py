"""Rate schedules as exact curves of a rate factor over a profile's run time.

A schedule modulates a profile's rate as a *factor* of its own rate: 1 is the configured rate, 2
twice it, 0 pauses the profile. `curve_for` turns a `Schedule` into a `RateCurve`: the factor as an
exact piecewise-linear function of the run time t (seconds since the profile started).

The schedule changes how often batches come, never their size. Batch sizes keep the profile's
shape (`min_records`..`max_records`, what consumers see per poll), and a faster or slower rate is
more or fewer of those same batches. Tick k is due at the time t_k where the work since the
previous tick, the integral of the factor from t_(k-1) to t_k, equals `interval_s` (work is
measured in seconds at factor 1). So over any window the number of ticks is the integral of the
factor over it divided by `interval_s`, give or take one: a schedule keeps the pacer's exact
cadence, only time runs faster or slower through it. A constant factor 1 gives back the plain
schedule `start + k * interval_s`.

Everything is solved in closed form: the integral of a linear segment is a trapezoid, and the time
at which a given amount of work is done is the root of a quadratic. `RateCurve.advance` keeps its
place (the current segment) between calls, so a pacer's sequential ticks cost O(1) each whatever
the run's length, and periodic schedules repeat one period's segments instead of growing a list.

Wall-clock schedules (`windows`, and a real-length `diurnal` day that follows the clock) follow the
local time of day in their time zone across daylight-saving changes: the factor at an instant is
the one for the time its local clock shows. A 09:00-17:00 window is 09:00-17:00 local time on both
sides of a change; on the change day a window in the skipped hour is shorter, and one in the
repeated hour happens twice, as the local clock says.
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from supervisor.config import (
    BurstSchedule,
    DiurnalSchedule,
    RampSchedule,
    Schedule,
    WindowsSchedule,
)

DAY_S: Final = 86400
"""Seconds in a day of the local clock (a time-of-day pattern's period)."""

_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True, slots=True)
class FactorRange:
    """The lowest, mean and highest factor of a curve over one period (a ramp: over the ramp)."""

    low: float
    mean: float
    high: float

    def __str__(self) -> str:
        if self.low == self.high:
            return f"{self.mean:.3g}x"
        return f"{self.low:.3g}x-{self.high:.3g}x, mean {self.mean:.3g}x"


@dataclass(frozen=True, slots=True)
class _Segment:
    """The factor over positions [start, end) of a pattern: linear from f0 to f1."""

    start: float
    end: float
    """`math.inf` for the constant tail of a pattern that does not repeat."""
    f0: float
    f1: float
    slope: float
    work_before: float
    """The integral of the pattern from its position 0 to `start`."""

    def factor(self, x: float) -> float:
        return self.f0 + self.slope * (x - self.start)

    def work_to(self, x: float) -> float:
        """The integral of the pattern from position 0 to `x` (within this segment)."""
        d = x - self.start
        return self.work_before + (self.f0 + 0.5 * self.slope * d) * d


class _Pattern:
    """Contiguous linear segments covering positions [0, period); repeated when period is finite.

    A pattern with an infinite period does not repeat: its last segment is a constant tail that
    never ends (a ramp's final factor, a constant curve).
    """

    __slots__ = ("_starts", "cycle_work", "period", "segments")

    def __init__(self, period: float, pieces: Sequence[tuple[float, float, float, float]]) -> None:
        """`pieces` are (start, end, f0, f1), contiguous from 0 to `period`."""
        segments = []
        work = 0.0
        for start, end, f0, f1 in pieces:
            slope = 0.0 if end == math.inf else (f1 - f0) / (end - start)
            segments.append(_Segment(start, end, f0, f1, slope, work))
            if end != math.inf:
                work += 0.5 * (f0 + f1) * (end - start)
        if period != math.inf and not work > 0:
            raise ValueError("a repeating pattern that does no work would never send")
        self.period = period
        self.segments = tuple(segments)
        self._starts = tuple(s.start for s in segments)
        self.cycle_work = work if period != math.inf else math.inf
        """The integral over one period (infinite for a pattern that does not repeat)."""

    @classmethod
    def constant(cls, factor: float) -> _Pattern:
        return cls(math.inf, [(0.0, math.inf, factor, factor)])

    def segment_index(self, x: float) -> int:
        return max(0, bisect.bisect_right(self._starts, x) - 1)

    def work_to(self, x: float) -> float:
        return self.segments[self.segment_index(x)].work_to(x)

    def stats(self) -> FactorRange:
        """The factor's range and mean over the finite segments: one period, or a ramp."""
        finite = [s for s in self.segments if s.end != math.inf]
        if not finite:
            factor = self.segments[0].f0
            return FactorRange(factor, factor, factor)
        last = finite[-1]
        values = [f for s in finite for f in (s.f0, s.f1)]
        low, high = min(values), max(values)
        mean = last.work_to(last.end) / last.end
        return FactorRange(low, min(max(low, mean), high), high)  # clamped: rounding


@dataclass(frozen=True, slots=True)
class _Piece:
    """The curve over run times [begin, end): `pattern`, with its position 0 at run time `origin`
    (and, when it repeats, at `origin + k * period` for every integer k)."""

    begin: float
    end: float
    pattern: _Pattern
    origin: float

    def cycle_start(self, k: int) -> float:
        return self.origin if k == 0 else self.origin + k * self.pattern.period

    def locate(self, t: float) -> tuple[int, float]:
        """The cycle k holding run time t, and t's position in the pattern."""
        period = self.pattern.period
        if period == math.inf:
            return 0, t - self.origin
        k = math.floor((t - self.origin) / period)
        x = t - self.cycle_start(k)
        if x < 0:  # the division rounded up across a cycle boundary
            k -= 1
        elif x >= period:
            k += 1
        else:
            return k, x
        return k, t - self.cycle_start(k)

    def factor(self, t: float) -> float:
        _, x = self.locate(t)
        return self.pattern.segments[self.pattern.segment_index(x)].factor(x)

    def integral(self, a: float, b: float) -> float:
        """The integral over [a, b], both within this piece."""
        ka, xa = self.locate(a)
        kb, xb = self.locate(b)
        within = self.pattern.work_to(xb) - self.pattern.work_to(xa)
        return within if ka == kb else (kb - ka) * self.pattern.cycle_work + within


class _PieceSource(Protocol):
    def piece_at(self, t: float) -> _Piece:
        """The piece holding run time t >= 0 (the next one when t is a piece's end)."""
        ...


class _FixedPieces:
    """A curve made of a few pieces known in advance, the last one never ending."""

    __slots__ = ("_begins", "_pieces")

    def __init__(self, *pieces: _Piece) -> None:
        self._pieces = pieces
        self._begins = tuple(p.begin for p in pieces)

    def piece_at(self, t: float) -> _Piece:
        return self._pieces[bisect.bisect_right(self._begins, t) - 1]


class _WallClockPieces:
    """A time-of-day pattern (period one day) following the local clock of a time zone.

    Between two changes of the zone's UTC offset the local time of day is the run time plus a
    constant, so the curve there is the pattern at a fixed origin. Run time is cut into days
    (`DAY_S` from the start, independent of local midnights), made when first needed, and each
    is one piece, or two when the offset changes inside it: this assumes no zone changes its
    offset twice within 24 hours, true of every tz database zone from 2010 to 2040 at least.
    The change itself is found by bisection on whole seconds, where the tz database puts every
    transition.
    """

    __slots__ = ("_chunk", "_pattern", "_pieces", "_start_frac", "_start_s", "_zone")

    def __init__(self, pattern: _Pattern, zone: zoneinfo.ZoneInfo, wall_start: dt.datetime) -> None:
        since_epoch = wall_start - _EPOCH  # exact, unlike timestamp()
        self._pattern = pattern
        self._zone = zone
        self._start_s = since_epoch.days * DAY_S + since_epoch.seconds
        self._start_frac = since_epoch.microseconds / 1e6
        self._chunk = -1
        self._pieces: tuple[_Piece, ...] = ()

    def piece_at(self, t: float) -> _Piece:
        chunk = int(t // DAY_S)
        if chunk != self._chunk:
            self._pieces = self._chunk_pieces(chunk)
            self._chunk = chunk
        pieces = self._pieces
        return pieces[-1] if t >= pieces[-1].begin else pieces[0]

    def _chunk_pieces(self, chunk: int) -> tuple[_Piece, ...]:
        begin = float(chunk * DAY_S)
        end = begin + DAY_S
        # Whole epoch seconds around the day: `low` is at or before its start, `high` after its
        # end; no transition lies between `low` and the start (transitions are whole seconds).
        low = self._start_s + chunk * DAY_S
        high = low + DAY_S + 1
        before = self._offset(low)
        if self._offset(high) == before:
            return (self._piece(begin, end, before),)
        while high - low > 1:  # the first whole second at the new offset
            middle = (low + high) // 2
            if self._offset(middle) == before:
                low = middle
            else:
                high = middle
        switch = (high - self._start_s) - self._start_frac
        if switch >= end:
            return (self._piece(begin, end, before),)
        return self._piece(begin, switch, before), self._piece(switch, end, self._offset(high))

    def _offset(self, epoch_s: int) -> int:
        """The zone's UTC offset, in seconds, at a moment given as seconds since the epoch."""
        offset = dt.datetime.fromtimestamp(epoch_s, self._zone).utcoffset()
        assert offset is not None  # an aware datetime's
        return int(offset.total_seconds())

    def _piece(self, begin: float, end: float, offset: int) -> _Piece:
        # Local time of day at run time t: (start_s + start_frac + offset + t) mod DAY_S.
        origin = -(((self._start_s + offset) % DAY_S) + self._start_frac)
        return _Piece(begin, end, self._pattern, origin)


class RateCurve:
    """A profile's rate factor as an exact piecewise-linear function of run time t >= 0.

    Built by `curve_for`. A curve remembers the segment its last `advance` ended in, so that a
    pacer's sequential calls cost O(1): give each pacer its own curve (sharing one is correct,
    only slower).
    """

    __slots__ = (
        "_a",
        "_b",
        "_cycle",
        "_fa",
        "_fb",
        "_index",
        "_piece",
        "_slope",
        "_source",
        "_stats",
        "constant",
    )

    # The cursor: the segment where the last `advance` ended, segment `_index` of cycle `_cycle`
    # of `_piece`, as run times [_a, _b) over which the factor goes from _fa to _fb.
    _piece: _Piece
    _cycle: int
    _index: int
    _a: float
    _b: float
    _fa: float
    _fb: float
    _slope: float

    def __init__(
        self, source: _PieceSource, stats: FactorRange, *, constant: float | None = None
    ) -> None:
        self._source = source
        self._stats = stats
        self.constant = constant
        """The factor, when the curve is constant; None otherwise."""
        self._seek(0.0)

    def factor(self, t: float) -> float:
        """The factor at run time t."""
        return self._piece_at(t).factor(t)

    def integral(self, a: float, b: float) -> float:
        """The integral of the factor over [a, b] (0 <= a <= b < inf): the work done between."""
        if b < a:
            raise ValueError(f"integral bounds out of order: {a} > {b}")
        total = 0.0
        piece = self._piece_at(a)
        while piece.end < b:
            total += piece.integral(a, piece.end)
            a = piece.end
            piece = self._source.piece_at(a)
        return total + piece.integral(a, b)

    def advance(self, t: float, work: float) -> float:
        """The smallest t' >= t with integral(t, t') == work (> 0); `math.inf` if none.

        The answer is infinite when the factor drops to 0 for good before enough work is done
        (a ramp to 0), and for t = `math.inf`.
        """
        if not work > 0:
            raise ValueError(f"work must be > 0, got {work}")
        if t == math.inf:
            return math.inf
        if not self._a <= t < self._b:
            if t == self._b:  # the usual way out of a segment: a tick due exactly at its end
                self._next_segment()
            else:
                self._seek(t)
        # What is left after whole cycles and segments were subtracted is the asked work up to
        # float rounding once it is this small: the answer is then where the walk stands, not
        # past a pause that begins there.
        rounding = work * 1e-12
        while True:
            if work <= rounding:
                return t
            slope = self._slope
            fx = self._fa + slope * (t - self._a)
            b = self._b
            if b == math.inf:  # the constant tail: slope is 0
                return t + work / fx if fx > 0 else math.inf
            available = 0.5 * (fx + self._fb) * (b - t)
            if work <= available:
                if slope == 0:
                    return min(b, t + work / fx)
                # fx * d + slope * d**2 / 2 == work, in the form that does not cancel.
                root = math.sqrt(max(0.0, fx * fx + 2.0 * slope * work))
                return min(b, t + 2.0 * work / (fx + root))
            work -= available
            if work <= 4.0 * math.ulp(b) * (fx + self._fb):
                # Less is left than this segment does in a few float steps at b: rounding of
                # the work summed so far. The answer is b, not the far side of a pause after it.
                return b
            t = b
            self._next_segment()
            if self._index == 0 and work > self._piece.pattern.cycle_work:
                work = self._skip_cycles(work)
                t = self._a

    def stats(self) -> FactorRange:
        """The factor's range and mean over one period of the schedule (a ramp: over the ramp)."""
        return self._stats

    def _piece_at(self, t: float) -> _Piece:
        if not t >= 0:
            raise ValueError(f"run time must be >= 0, got {t}")
        return self._source.piece_at(t)

    def _seek(self, t: float) -> None:
        piece = self._piece_at(t)
        k, x = piece.locate(t)
        self._enter(piece, k, piece.pattern.segment_index(x))

    def _enter(self, piece: _Piece, k: int, index: int) -> None:
        """Move the cursor to segment `index` of cycle k of `piece`, clipped to the piece."""
        segment = piece.pattern.segments[index]
        cycle_start = piece.cycle_start(k)
        a = cycle_start + segment.start
        b = cycle_start + segment.end
        fa = segment.f0
        fb = segment.f1
        if a < piece.begin:
            a = piece.begin
            fa = segment.factor(a - cycle_start)
        if b > piece.end:
            b = piece.end
            fb = segment.factor(b - cycle_start)
        self._piece = piece
        self._cycle = k
        self._index = index
        self._a = a
        self._b = b
        self._fa = fa
        self._fb = fb
        self._slope = segment.slope

    def _next_segment(self) -> None:
        piece = self._piece
        if self._b >= piece.end:
            self._seek(piece.end)
            return
        index = self._index + 1
        k = self._cycle
        if index == len(piece.pattern.segments):
            index = 0
            k += 1
        self._enter(piece, k, index)

    def _skip_cycles(self, work: float) -> float:
        """At the start of a cycle with more than a cycle's work to do: jump the whole cycles
        that fit in the piece, leaving between 0 (excluded) and one cycle's work to place."""
        piece = self._piece
        pattern = piece.pattern
        start = piece.cycle_start(self._cycle)
        if self._a != start:  # the piece begins mid-cycle: not a whole cycle ahead
            return work
        skip = math.ceil(work / pattern.cycle_work) - 1
        if piece.end != math.inf:
            skip = min(skip, math.floor((piece.end - start) / pattern.period))
        if skip > 0 and work - skip * pattern.cycle_work <= 0:  # rounding
            skip -= 1
        if skip <= 0:
            return work
        self._enter(piece, self._cycle + skip, 0)
        return work - skip * pattern.cycle_work


def curve_for(schedule: Schedule | None, *, wall_start: dt.datetime) -> RateCurve:
    """The rate curve of a profile started at `wall_start` (aware) with this schedule.

    No schedule is the constant factor 1. `wall_start` places the wall-clock schedules:
    `windows`, and `diurnal` without a `start_hour`. A real-length diurnal day then follows the
    local clock, daylight-saving changes included (its curve jumps an hour with the clock); a
    compressed one starts where the clock is in its day and then runs at its own pace.
    """
    if wall_start.utcoffset() is None:
        raise ValueError("wall_start must be timezone-aware")
    match schedule:
        case None:
            return _fixed(_Pattern.constant(1.0), constant=1.0)
        case RampSchedule(start=start, end=end, duration_s=duration):
            ramp = [(0.0, duration, start, end), (duration, math.inf, end, end)]
            return _fixed(_Pattern(math.inf, ramp))
        case BurstSchedule():
            return _burst(schedule)
        case DiurnalSchedule():
            return _diurnal(schedule, wall_start)
        case WindowsSchedule():
            return _windows(schedule, wall_start)


def _fixed(pattern: _Pattern, *, origin: float = 0.0, constant: float | None = None) -> RateCurve:
    """The curve that is `pattern` from run time 0 on."""
    return RateCurve(
        _FixedPieces(_Piece(0.0, math.inf, pattern, origin)), pattern.stats(), constant=constant
    )


def _burst(schedule: BurstSchedule) -> RateCurve:
    every, duration, factor = schedule.every_s, schedule.duration_s, schedule.factor
    cycle = _Pattern(every, [(0.0, duration, factor, factor), (duration, every, 1.0, 1.0)])
    first = schedule.first_burst_s
    if first == 0:
        return _fixed(cycle)
    source = _FixedPieces(
        _Piece(0.0, first, _Pattern.constant(1.0), 0.0), _Piece(first, math.inf, cycle, first)
    )
    return RateCurve(source, cycle.stats())


def _diurnal(schedule: DiurnalSchedule, wall_start: dt.datetime) -> RateCurve:
    length = schedule.day_length_s
    curve = schedule.curve
    hours = [length * h / 24 for h in range(24)] + [length]
    day = _Pattern(
        length,
        [(hours[h], hours[h + 1], curve[h], curve[(h + 1) % 24]) for h in range(24)],
    )
    if schedule.start_hour is not None:
        return _fixed(day, origin=-length * schedule.start_hour / 24)
    zone = zoneinfo.ZoneInfo(schedule.timezone)
    if length == DAY_S:
        return RateCurve(_WallClockPieces(day, zone, wall_start), day.stats())
    local = wall_start.astimezone(zone)
    time_of_day = local.hour * 3600 + local.minute * 60 + local.second + local.microsecond / 1e6
    return _fixed(day, origin=-length * time_of_day / DAY_S)


def _windows(schedule: WindowsSchedule, wall_start: dt.datetime) -> RateCurve:
    pieces: list[tuple[float, float, float, float]] = []
    position = 0.0
    spans = sorted((s, e, w.factor) for w in schedule.windows for s, e in w.spans() if s < e)
    for start, end, factor in spans:
        if start > position:
            pieces.append((position, start, schedule.default, schedule.default))
        pieces.append((start, end, factor, factor))
        position = end
    if position < DAY_S:
        pieces.append((position, DAY_S, schedule.default, schedule.default))
    day = _Pattern(DAY_S, pieces)
    zone = zoneinfo.ZoneInfo(schedule.timezone)
    return RateCurve(_WallClockPieces(day, zone, wall_start), day.stats())
