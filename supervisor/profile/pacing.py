"""Pacing by absolute deadlines on the monotonic clock.

Deadlines are `start + k * interval_s`, advanced by addition rather than by sleeping `interval`
after the work, so the time a batch takes never accumulates into drift: over any run the number of
ticks is elapsed / interval_s (±1). A tick that starts at or after the deadline following its own
means the profile cannot keep up (the broker or the queue holds it back, or the rate is above what
one core can produce): it still runs, at once, and is counted as behind schedule, so a saturated
profile catches up as fast as it can and says so, instead of dropping ticks or hiding the shortfall.

With a rate schedule (a `RateCurve`, see `supervisor.profile.schedule`) the deadlines are spaced by
work instead of time: each comes when the integral of the rate factor since the previous one reaches
`interval_s`. Without one, or with the constant factor 1, the pacer keeps the plain addition.

A shard of a fleet (`supervisor.config.shard`) keeps every `stride`-th of those deadlines, from
deadline number `phase` on: the shards' deadlines together are the single instance's, each one
computed the same way.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from supervisor.lifecycle import Clock

if TYPE_CHECKING:
    from supervisor.profile.schedule import RateCurve


class Pacer:
    """The deadline schedule of one profile.

    `start` is the monotonic time the pacer was built; `next_at` the current deadline, and
    `due_s` the same as run time (seconds since `start`), the time base of a `RateCurve`.

    The first deadline is `start` itself, unless the curve's factor is 0 there (a ramp from 0, a
    paused window): then it is the first moment one interval's work has been done, like every
    later deadline. A deadline is `math.inf` once the curve has stopped for good (a ramp to 0)
    with less than an interval's work left.
    """

    __slots__ = ("_clock", "_curve", "_due_s", "_stride", "interval_s", "next_at", "start")

    def __init__(
        self,
        interval_s: float,
        *,
        clock: Clock = time.monotonic,
        curve: RateCurve | None = None,
        stride: int = 1,
        phase: int = 0,
    ) -> None:
        if not interval_s > 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s}")
        if not 0 <= phase < stride:
            raise ValueError(f"need 0 <= phase < stride, got phase {phase}, stride {stride}")
        self.interval_s = interval_s
        self._stride = stride
        self._clock = clock
        self._curve = None if curve is None or curve.constant == 1.0 else curve
        self.start = clock()
        self._due_s = 0.0
        if self._curve is not None and not self._curve.factor(0.0) > 0:
            self._due_s = self._curve.advance(0.0, interval_s)
        for _ in range(phase):
            self._advance()
        self.next_at = self.start + self._due_s

    @property
    def due_s(self) -> float:
        """The current deadline as run time: seconds after `start`."""
        return self._due_s

    def tick(self) -> tuple[float, bool]:
        """Consume the current deadline: return (lateness_s, behind) and schedule the next one.

        `behind` is true when the tick started at or after the next deadline (without a schedule:
        an interval, or a shard's `stride` intervals, or more late), i.e. the profile is at least
        a whole tick short.
        """
        now = self._clock()
        lateness = max(0.0, now - self.next_at)
        for _ in range(self._stride):
            self._advance()
        self.next_at = self.start + self._due_s
        return lateness, now >= self.next_at

    def _advance(self) -> None:
        """Move `_due_s` to the single instance's next deadline."""
        if self._curve is None:
            self._due_s += self.interval_s
        else:
            self._due_s = self._curve.advance(self._due_s, self.interval_s)
