"""Pacing by absolute deadlines on the monotonic clock.

Deadlines are `start + k * interval_s`, advanced by addition (`next_at += interval`) rather than by
sleeping `interval` after the work, so the time a batch takes never accumulates into drift: over any
run the number of ticks is elapsed / interval_s (±1). A tick that starts a whole interval or more
after its deadline means the profile cannot keep up (the broker or the queue holds it back, or the
rate is above what one core can produce): it still runs, at once, and is counted as behind
schedule, so a saturated profile catches up as fast as it can and says so, instead of dropping
ticks or hiding the shortfall.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

Clock = Callable[[], float]


class Pacer:
    """The deadline schedule of one profile."""

    __slots__ = ("_clock", "interval_s", "next_at")

    def __init__(self, interval_s: float, *, clock: Clock = time.monotonic) -> None:
        if not interval_s > 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s}")
        self.interval_s = interval_s
        self._clock = clock
        self.next_at = clock()

    def delay(self) -> float:
        """Seconds until the next deadline (negative when it has passed)."""
        return self.next_at - self._clock()

    def tick(self) -> tuple[float, bool]:
        """Consume the current deadline: return (lateness_s, behind) and schedule the next one.

        `behind` is true when the tick started an interval or more after its deadline.
        """
        lateness = max(0.0, self._clock() - self.next_at)
        self.next_at += self.interval_s
        return lateness, lateness >= self.interval_s


async def sleep_or_stop(stop: asyncio.Event, delay_s: float) -> bool:
    """Sleep up to `delay_s`, returning early (True) as soon as `stop` is set."""
    if stop.is_set():
        return True
    try:
        async with asyncio.timeout(delay_s):
            await stop.wait()
    except TimeoutError:
        return stop.is_set()
    return True
