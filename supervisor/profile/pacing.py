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

Profiles started together would fall due together, every interval, for the whole run: a thousand
profiles at the same preset made one burst of a thousand ticks a period (tick lateness p99 ~69 ms,
benchmarks/README.md). Each profile's run clock therefore starts `phase_s(name, interval_s)`
after its pacer is made: a fraction of an interval derived from the profile's name alone, the same
in every process and on every run, so the profiles' ticks spread over the interval. Only when the
ticks happen moves: the run clock, and everything timed on it (a rate schedule, a shaped stream's
scheduled messages), is the same as without it. Every shard of a profile takes the same phase
(it comes from the name, not the shard), so the shards' deadlines together are still exactly the
single instance's.
"""

from __future__ import annotations

import hashlib
import time
from typing import TYPE_CHECKING

from supervisor.lifecycle import Clock

if TYPE_CHECKING:
    from supervisor.profile.schedule import RateCurve


def phase_s(name: str, interval_s: float) -> float:
    """The phase of the profile `name`: a fraction of `interval_s` in [0, interval_s), from a
    stable hash of the name (sha256, not `hash()`, which differs between processes)."""
    digest = hashlib.sha256(f"streaming-producer phase of profile {name}".encode()).digest()
    lead = interval_s * (int.from_bytes(digest[:7], "big") >> 3) / 2**53  # exact, < 1
    return lead if lead < interval_s else 0.0  # a product rounded up to the interval itself


class Pacer:
    """The deadline schedule of one profile.

    `start` is the monotonic time the pacer was built plus `lead_s` (the profile's phase,
    `phase_s`): the origin of its run clock; `next_at` the current deadline, and `due_s` the same
    as run time (seconds since `start`), the time base of a `RateCurve`.

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
        lead_s: float = 0.0,
    ) -> None:
        if not interval_s > 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s}")
        if not 0 <= phase < stride:
            raise ValueError(f"need 0 <= phase < stride, got phase {phase}, stride {stride}")
        if not 0 <= lead_s < interval_s:
            raise ValueError(f"need 0 <= lead_s < interval_s, got {lead_s}, {interval_s}")
        self.interval_s = interval_s
        self._stride = stride
        self._clock = clock
        self._curve = None if curve is None or curve.constant == 1.0 else curve
        self.start = clock() + lead_s
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
