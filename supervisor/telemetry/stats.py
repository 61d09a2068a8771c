"""Per-profile counters, delivery-latency histogram and the run summary.

Threading: a `ProfileStats` has two writers that never touch the same field. The event loop
(the profile task) writes `batches`, `produced`, `bytes`, `behind_schedule` and the tick lateness;
the sink's delivery thread writes `delivered`, `failed`, `undelivered` and the latency histogram
from librdkafka delivery reports. Readers (stats lines, the summary) may see a report a message
old, never a torn value, and the final summary is read after the delivery thread has stopped.
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
class ProfileStats:
    """Counters of one profile. `produced` counts messages librdkafka accepted into its queue."""

    name: str
    batches: int = 0
    produced: int = 0
    bytes: int = 0
    behind_schedule: int = 0
    delivered: int = 0
    failed: int = 0
    undelivered: int = 0
    """Purged at shutdown because the flush deadline passed (or a second signal forced exit)."""
    rejected: int = 0
    """Refused by the producer before entering its queue (e.g. over message.max.bytes): not
    part of `produced`."""
    restarts: int = 0
    first_batch_at: float | None = None
    stopped_at: float | None = None
    latency: Histogram = field(default_factory=Histogram)
    """Enqueue to acknowledgement, as librdkafka measured it (`Message.latency()`)."""
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
    labels: ProfileStats | None = None
    """The ground-truth label messages of this profile's fraud events (`labels:`), counted apart
    so that this profile's own counters reconcile with its topic."""

    @property
    def in_flight(self) -> int:
        """Produced but not yet acknowledged, failed or purged."""
        return self.produced - self.delivered - self.failed - self.undelivered

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
