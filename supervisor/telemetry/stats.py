"""Per-profile counters, delivery-latency histogram and the run summary.

Threading: a `ProfileStats` (and the `DeliveryStats` of its labels) has two writers that never
touch the same field. The event loop (the profile task) writes `batches`, `produced`, `bytes`,
`rejected`, `behind_schedule` and the tick lateness; the sink's delivery thread writes `delivered`,
`failed`, `undelivered` and the latency histogram from delivery reports (`record_*`). Readers
(stats lines, the summary) may see a report a message old, never a torn value, and the final
summary is read after the delivery thread has stopped.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from dataclasses import dataclass, field
from typing import Any

# Log-spaced bucket upper bounds in seconds, 100 µs .. ~100 s, 10 per decade: a p99 read off
# this histogram is within ~26% of the true value, plenty to tell milliseconds from seconds.
_BOUNDS: tuple[float, ...] = tuple(10 ** (e / 10) for e in range(-40, 21))


class Histogram:
    """A fixed-bucket histogram of durations in seconds; O(log buckets) per observation."""

    __slots__ = ("_counts", "count", "max", "sum")

    def __init__(self) -> None:
        self._counts = [0] * (len(_BOUNDS) + 1)
        self.count = 0
        self.sum = 0.0
        self.max = 0.0

    def observe(self, seconds: float) -> None:
        self._counts[bisect_left(_BOUNDS, seconds)] += 1
        self.count += 1
        self.sum += seconds
        if seconds > self.max:
            self.max = seconds

    def quantile(self, q: float) -> float | None:
        """The upper bound of the bucket holding quantile `q` (capped at the max seen)."""
        if self.count == 0:
            return None
        rank = max(1, math.ceil(q * self.count))
        seen = 0
        for i, n in enumerate(self._counts):
            seen += n
            if seen >= rank:
                return min(_BOUNDS[i], self.max) if i < len(_BOUNDS) else self.max
        return self.max  # pragma: no cover - counts always sum to count

    def buckets(self) -> list[tuple[float, int]]:
        """Cumulative (upper bound, count) pairs, the last bound being +inf (Prometheus shape)."""
        out: list[tuple[float, int]] = []
        seen = 0
        for bound, n in zip((*_BOUNDS, math.inf), self._counts, strict=True):
            seen += n
            out.append((bound, seen))
        return out


@dataclass(slots=True, eq=False)
class DeliveryStats:
    """Delivery accounting of one stream of messages (a profile's events, or its fraud labels).

    Every message the producer accepted ends in exactly one of `delivered`, `failed` or
    `undelivered`; until then it is `in_flight`. The `record_*` methods are called by the sink's
    delivery thread, once per delivery report.
    """

    name: str
    produced: int = 0
    """Accepted into the producer's queue (the send loop counts it)."""
    bytes: int = 0
    delivered: int = 0
    failed: int = 0
    undelivered: int = 0
    """Purged at shutdown because the flush deadline passed (or a second signal forced exit)."""
    rejected: int = 0
    """Refused by the producer before entering its queue (e.g. over message.max.bytes): not
    part of `produced`."""
    latency: Histogram = field(default_factory=Histogram)
    """Enqueue to acknowledgement, as librdkafka measured it (`Message.latency()`)."""
    latency_every: int = 1
    """Observe the latency of one delivery in this many (a setting, not a counter): above about
    1,000 msg/s a sample is as informative and the delivery thread stays cheap."""
    _countdown: int = field(default=1, init=False, repr=False)
    """Deliveries until the next latency observation; only `record_delivered` touches it."""

    def __post_init__(self) -> None:
        if self.latency_every < 1:
            raise ValueError(f"latency_every must be at least 1, got {self.latency_every}")

    @property
    def in_flight(self) -> int:
        """Produced but not yet acknowledged, failed or purged."""
        return self.produced - self.delivered - self.failed - self.undelivered

    def record_delivered(self, latency_s: float | None) -> None:
        """One message acknowledged; its latency is observed one time in `latency_every` (None:
        none was measured, and the sample is skipped). Runs once per message on the delivery
        thread: two integer updates and a comparison, nothing allocated."""
        self.delivered += 1
        self._countdown -= 1
        if self._countdown == 0:
            self._countdown = self.latency_every
            if latency_s is not None:
                self.latency.observe(latency_s)

    def record_failed(self) -> None:
        """One message the broker (or the producer, after retries) gave up on."""
        self.failed += 1

    def record_undelivered(self) -> None:
        """One message purged unsent at shutdown."""
        self.undelivered += 1

    def delivery_snapshot(self) -> dict[str, int]:
        """The delivery accounting: all of a labels entry, part of a profile's."""
        return {
            "produced": self.produced,
            "delivered": self.delivered,
            "failed": self.failed,
            "undelivered": self.undelivered,
            "rejected": self.rejected,
            "in_flight": self.in_flight,
        }


@dataclass(slots=True, eq=False)
class ProfileStats(DeliveryStats):
    """Counters of one profile: its events' delivery accounting and what its ticks did."""

    batches: int = 0
    behind_schedule: int = 0
    restarts: int = 0
    first_batch_at: float | None = None
    stopped_at: float | None = None
    lateness: Histogram = field(default_factory=Histogram)
    """How late each tick started after its deadline."""
    late: int = 0
    """Produced with an event time older than it would have been (`late:`)."""
    reordered: int = 0
    """Produced after later events, having been held back (`out_of_order:`)."""
    duplicates: int = 0
    """Produced as an exact copy of an earlier message (`duplicates:`)."""
    occurrences: dict[str, int] = field(default_factory=dict)
    """Fraud scenario occurrences started, by scenario kind."""
    fraud_events: dict[str, int] = field(default_factory=dict)
    """Produced messages labelled fraud, by scenario kind: a detector's recall is the share of
    these it flags."""
    labels: DeliveryStats | None = None
    """The ground-truth label messages of this profile's fraud events (`labels:`), counted apart
    so that this profile's own counters reconcile with its topic."""

    def elapsed_s(self, now: float) -> float:
        """From the first batch until the profile stopped producing (or `now` while it runs)."""
        if self.first_batch_at is None:
            return 0.0
        end = self.stopped_at if self.stopped_at is not None else now
        return max(0.0, end - self.first_batch_at)

    def snapshot(self, now: float) -> dict[str, Any]:
        """The summary entry of this profile."""
        return {
            "batches": self.batches,
            **self.delivery_snapshot(),
            "bytes": self.bytes,
            "behind_schedule": self.behind_schedule,
            "restarts": self.restarts,
            "elapsed_s": round(self.elapsed_s(now), 3),
            "latency_ms": _quantiles_ms(self.latency),
            "tick_lateness_ms": _quantiles_ms(self.lateness),
            "late": self.late,
            "reordered": self.reordered,
            "duplicates": self.duplicates,
            "fraud_events": sum(self.fraud_events.values()),
            "scenarios": {
                kind: {"occurrences": n, "events": self.fraud_events.get(kind, 0)}
                for kind, n in self.occurrences.items()
            },
            "labels": None if self.labels is None else self.labels.delivery_snapshot(),
        }


_TOTALLED = (
    "batches",
    "produced",
    "delivered",
    "failed",
    "undelivered",
    "rejected",
    "in_flight",
    "bytes",
    "behind_schedule",
    "restarts",
    "late",
    "reordered",
    "duplicates",
    "fraud_events",
)


def _quantiles_ms(h: Histogram) -> dict[str, float | None]:
    def ms(v: float | None) -> float | None:
        return None if v is None else round(v * 1000, 3)

    return {"p50": ms(h.quantile(0.5)), "p99": ms(h.quantile(0.99)), "max": ms(h.max or None)}


def summary(profiles: list[ProfileStats], *, elapsed_s: float, now: float) -> dict[str, Any]:
    """The run summary written by `run --summary PATH` and logged at exit."""
    per_profile = {p.name: p.snapshot(now) for p in profiles}
    total: dict[str, Any] = {k: sum(s[k] for s in per_profile.values()) for k in _TOTALLED}
    labels = [s["labels"] for s in per_profile.values() if s["labels"] is not None]
    total["labels"] = {k: sum(entry[k] for entry in labels) for k in labels[0]} if labels else None
    total["elapsed_s"] = round(elapsed_s, 3)
    return {"elapsed_s": round(elapsed_s, 3), "profiles": per_profile, "total": total}


@dataclass(slots=True)
class RateWindow:
    """Rates of one profile since the previous periodic stats line."""

    at: float
    produced: int = 0
    delivered: int = 0
    batches: int = 0

    def advance(self, stats: ProfileStats, now: float) -> dict[str, float]:
        dt = max(now - self.at, 1e-9)
        rates = {
            "produced_per_s": round((stats.produced - self.produced) / dt, 1),
            "delivered_per_s": round((stats.delivered - self.delivered) / dt, 1),
            "batches_per_s": round((stats.batches - self.batches) / dt, 2),
        }
        self.at, self.produced, self.delivered, self.batches = (
            now,
            stats.produced,
            stats.delivered,
            stats.batches,
        )
        return rates
