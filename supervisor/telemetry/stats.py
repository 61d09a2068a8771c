"""Per-profile counters, the delivery-latency histogram, and what derives from the counters.

Threading: a `ProfileStats` (and the `DeliveryStats` of its labels) has two writers that never
touch the same field. The event loop (the profile task) writes `batches`, `produced`, `bytes`,
`rejected`, `behind_schedule`, the tick lateness and the publish delay; the sink's delivery
thread writes `delivered`, `failed`, `undelivered` and the latency histogram from delivery
reports (`record_*`). Readers
(stats lines, the summary) may see a report a message old, never a torn value, and the final
summary is read after the delivery thread has stopped.
"""

from __future__ import annotations

import enum
import math
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, Final, Literal

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

    def observe_many(self, seconds: float, count: int) -> None:
        """`count` observations of the same duration (a batch of messages sharing it)."""
        self._counts[bisect_left(_BOUNDS, seconds)] += count
        self.count += count
        self.sum += seconds * count
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


class Section(enum.IntEnum):
    """The parts of a profile's summary entry, in their order there. A counter says which part
    it belongs to; within a part, counter fields come in declaration order (a `DeliveryStats`
    field before a `ProfileStats` one), then the derived entries (`_DERIVED`)."""

    WORK = enum.auto()
    """What the schedule asked for: batches."""
    DELIVERY = enum.auto()
    """The delivery accounting, all of a labels entry (`DeliveryStats.delivery_snapshot`)."""
    PROGRESS = enum.auto()
    """Bytes, ticks behind schedule, restarts, and the run's timings."""
    SHAPING = enum.auto()
    """Event-time shaping and fraud injection."""


Line = Literal["always", "shaped"]
"""Which periodic `profile_stats` lines show an entry: every profile's, or only those of profiles
shaping event time or injecting fraud."""


@dataclass(frozen=True, slots=True)
class LabelSeries:
    """A delivery counter as the labels of a profile export it, apart from its events'."""

    metric: str
    """Prometheus name, without the `streaming_producer_` prefix and the `_total` suffix."""
    help: str
    plus: tuple[str, ...] = ()
    """Other counters added into this one (label `failed` includes `undelivered`)."""
    line: bool = False
    """Shown as `labels_<name>` in a shaping profile's `profile_stats` line."""


@dataclass(frozen=True, slots=True)
class Counter:
    """What a counter field means and where it shows: the one place a counter is named."""

    section: Section
    metric: str
    """Prometheus name, without the `streaming_producer_` prefix and the `_total` suffix."""
    help: str
    line: Line | None = None
    labels: LabelSeries | None = None
    """Also exported for a profile's labels (a `DeliveryStats` field only)."""


_COUNTER: Final = "counter"
"""The key of a field's `Counter` in its dataclass metadata."""


def counter(
    section: Section,
    *,
    metric: str,
    help: str,
    line: Line | None = None,
    labels: LabelSeries | None = None,
) -> Any:
    """A counter field (an int starting at 0) described by a `Counter`, from which the summary,
    its totals, the Prometheus counters and the `profile_stats` line are derived."""
    spec = Counter(section, metric, help, line, labels)
    return field(default=0, metadata={_COUNTER: spec})


@dataclass(slots=True, eq=False)
class DeliveryStats:
    """Delivery accounting of one stream of messages (a profile's events, or its fraud labels).

    Every message the producer accepted ends in exactly one of `delivered`, `failed` or
    `undelivered`; until then it is `in_flight`. The `record_*` methods are called by the sink's
    delivery thread, once per delivery report.
    """

    name: str
    produced: int = counter(
        Section.DELIVERY,
        metric="messages_produced",
        help="Messages a profile handed to librdkafka's queue (accepted by produce()).",
        line="always",
        labels=LabelSeries(
            "label_messages_produced", "Fraud label messages handed to the producer."
        ),
    )
    """Accepted into the producer's queue (the send loop counts it)."""
    bytes: int = counter(
        Section.PROGRESS,
        metric="bytes_produced",
        help="Bytes of message values a profile produced.",
    )
    delivered: int = counter(
        Section.DELIVERY,
        metric="messages_delivered",
        help="Messages the broker acknowledged.",
        line="always",
        labels=LabelSeries(
            "label_messages_delivered",
            "Fraud label messages the broker acknowledged.",
            line=True,
        ),
    )
    failed: int = counter(
        Section.DELIVERY,
        metric="messages_failed",
        help="Messages whose delivery failed (a delivery report error).",
        line="always",
        labels=LabelSeries(
            "label_messages_failed",
            "Fraud label messages whose delivery failed, or were purged unsent at shutdown.",
            plus=("undelivered",),
        ),
    )
    undelivered: int = counter(
        Section.DELIVERY,
        metric="messages_undelivered",
        help="Messages purged unsent at shutdown because the flush deadline passed.",
    )
    """Purged at shutdown because the flush deadline passed (or a second signal forced exit)."""
    rejected: int = counter(
        Section.DELIVERY,
        metric="messages_rejected",
        help="Messages the producer refused before queueing them (e.g. over message.max.bytes).",
    )
    """Refused by the producer before entering its queue (e.g. over message.max.bytes): not
    part of `produced`."""
    latency: Histogram = field(default_factory=Histogram)
    """Enqueue to acknowledgement, as librdkafka measured it (`Message.latency()`): OpenMessaging
    Benchmark's publish latency; a broker (or network) behind shows here."""
    publish_delay: Histogram = field(default_factory=Histogram)
    """A message's scheduled time (its tick's deadline, or the run time the stream scheduled it
    for) to its `produce()` call, one observation per message, recorded by the send loop a batch
    at a time (`Sender.send`): OpenMessaging Benchmark's publish delay; a producer behind (a busy
    event loop, a full queue) shows here."""
    latency_every: int = 1
    """Observe the latency of one delivery in this many (a setting, not a counter): above about
    1,000 msg/s a sample is as informative and the delivery thread stays cheap."""
    _countdown: int = field(default=1, init=False, repr=False)
    """Deliveries until the next latency observation; only `record_delivered` touches it."""
    on_first_delivery: Callable[[], None] | None = field(default=None, repr=False)
    """Called once, on the delivery thread, when the first message is acknowledged (the fleet
    logs `first_delivered`); it must only hand over to the event loop."""

    def __post_init__(self) -> None:
        if self.latency_every < 1:
            raise ValueError(f"latency_every must be at least 1, got {self.latency_every}")

    @property
    def in_flight(self) -> int:
        """Produced but not yet acknowledged, failed or purged."""
        return self.produced - self.delivered - self.failed - self.undelivered

    def record_delivered(self) -> bool:
        """One message acknowledged. Returns whether to observe its latency (`record_latency`):
        one delivery in `latency_every`, so a sink measures only those. Runs once per message on
        the delivery thread: two integer updates and a comparison, nothing allocated."""
        self.delivered += 1
        self._countdown -= 1
        if self._countdown:
            return False
        self._countdown = self.latency_every
        if self.delivered == 1 and self.on_first_delivery is not None:  # the first delivery
            self.on_first_delivery()  # always comes here: `_countdown` starts at 1
        return True

    def record_latency(self, latency_s: float | None) -> None:
        """The enqueue-to-acknowledgement latency of a delivery `record_delivered` chose (None:
        the sink could not measure it)."""
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
        return {e.name: e.read(self, 0.0) for e in DELIVERY_ENTRIES}


@dataclass(slots=True, eq=False)
class ProfileStats(DeliveryStats):
    """Counters of one profile: its events' delivery accounting and what its ticks did."""

    batches: int = counter(
        Section.WORK, metric="batches", help="Batches (ticks) a profile has sent.", line="always"
    )
    behind_schedule: int = counter(
        Section.PROGRESS,
        metric="ticks_behind_schedule",
        help="Ticks that started at or after the next tick's deadline:"
        " the profile could not keep up.",
        line="always",
    )
    restarts: int = counter(
        Section.PROGRESS,
        metric="profile_restarts",
        help="Times a crashed profile task was restarted.",
    )
    first_batch_at: float | None = None
    stopped_at: float | None = None
    lateness: Histogram = field(default_factory=Histogram)
    """How late each tick started after its deadline."""
    late: int = counter(
        Section.SHAPING,
        metric="late_events",
        help="Messages sent with an event time made older on purpose (late:).",
        line="shaped",
    )
    """Produced with an event time older than it would have been (`late:`)."""
    reordered: int = counter(
        Section.SHAPING,
        metric="reordered_events",
        help="Messages held back and sent after later ones on purpose (out_of_order:).",
        line="shaped",
    )
    """Produced after later events, having been held back (`out_of_order:`)."""
    duplicates: int = counter(
        Section.SHAPING,
        metric="duplicate_events",
        help="Exact copies of earlier messages sent on purpose.",
        line="shaped",
    )
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
        entry: dict[str, Any] = {e.name: e.read(self, now) for e in PROFILE_ENTRIES}
        entry["labels"] = None if self.labels is None else self.labels.delivery_snapshot()
        return entry


# --- what derives from the counters --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Entry:
    """One entry of a profile's summary: a counter field, or a value derived from the stats."""

    name: str
    section: Section
    read: Callable[[Any, float], Any]
    """(stats, now) -> the value; a `DELIVERY` entry reads a `DeliveryStats`, any other a
    `ProfileStats`."""
    counter: Counter | None = None
    """The field's description; None for a derived entry."""
    totalled: bool = True
    """Summed over the profiles into the summary's total."""
    line: Line | None = None


_DERIVED: Final = (
    Entry("in_flight", Section.DELIVERY, lambda s, _: s.in_flight, line="always"),
    Entry("elapsed_s", Section.PROGRESS, lambda s, now: round(s.elapsed_s(now), 3), totalled=False),
    Entry(
        "publish_delay_ms",
        Section.PROGRESS,
        lambda s, _: _quantiles_ms(s.publish_delay),
        totalled=False,
    ),
    Entry("latency_ms", Section.PROGRESS, lambda s, _: _quantiles_ms(s.latency), totalled=False),
    Entry(
        "tick_lateness_ms",
        Section.PROGRESS,
        lambda s, _: _quantiles_ms(s.lateness),
        totalled=False,
    ),
    Entry(
        "fraud_events", Section.SHAPING, lambda s, _: sum(s.fraud_events.values()), line="shaped"
    ),
    Entry("scenarios", Section.SHAPING, lambda s, _: _scenarios(s), totalled=False),
)
"""Entries computed from the stats rather than read from a field. `labels` (the labels'
`delivery_snapshot`, or None) closes every entry and is totalled apart."""


def _counter_entries(cls: type[DeliveryStats]) -> list[Entry]:
    out = []
    for f in fields(cls):
        spec = f.metadata.get(_COUNTER)
        if isinstance(spec, Counter):
            out.append(Entry(f.name, spec.section, _field_reader(f.name), spec, line=spec.line))
    return out


def _field_reader(name: str) -> Callable[[Any, float], Any]:
    """A reader of attribute `name` in the shape of `Entry.read`."""

    def read(stats: Any, _now: float) -> Any:
        return getattr(stats, name)

    return read


PROFILE_ENTRIES: Final[tuple[Entry, ...]] = tuple(
    sorted([*_counter_entries(ProfileStats), *_DERIVED], key=lambda e: e.section)
)
"""A profile's summary entry, in order (`labels` aside). The sort is stable: within a section,
counter fields in declaration order, then derived entries."""
DELIVERY_ENTRIES: Final[tuple[Entry, ...]] = tuple(
    e for e in PROFILE_ENTRIES if e.section is Section.DELIVERY
)
"""A labels entry, and the delivery part of a profile's: they read a `DeliveryStats`."""
TOTALLED: Final[tuple[str, ...]] = tuple(e.name for e in PROFILE_ENTRIES if e.totalled)
"""The entries the summary's total sums over the profiles."""
COUNTERS: Final[tuple[tuple[str, Counter], ...]] = tuple(
    (e.name, e.counter) for e in PROFILE_ENTRIES if e.counter is not None
)
"""(field, description) of every counter of a profile, in summary order."""
LABEL_COUNTERS: Final[tuple[tuple[str, LabelSeries], ...]] = tuple(
    (name, c.labels) for name, c in COUNTERS if c.labels is not None
)
"""(field, series) of every counter a profile's labels export."""


def _quantiles_ms(h: Histogram) -> dict[str, float | None]:
    def ms(v: float | None) -> float | None:
        return None if v is None else round(v * 1000, 3)

    return {
        "p50": ms(h.quantile(0.5)),
        "p95": ms(h.quantile(0.95)),
        "p99": ms(h.quantile(0.99)),
        "max": ms(h.max or None),
    }


def _scenarios(stats: ProfileStats) -> dict[str, dict[str, int]]:
    return {
        kind: {"occurrences": n, "events": stats.fraud_events.get(kind, 0)}
        for kind, n in stats.occurrences.items()
    }


def stats_line(
    stats: ProfileStats, window: RateWindow, now: float, *, shaped: bool
) -> dict[str, object]:
    """The fields of a profile's periodic `profile_stats` log line; `window` advances to `now`.
    `shaped`: the profile shapes event time or injects fraud, and its line shows those counters
    (and its labels' deliveries)."""
    out: dict[str, object] = {"profile": stats.name}
    out.update((e.name, e.read(stats, now)) for e in _LINE_ALWAYS)
    out.update(window.advance(stats, now))
    out["publish_delay_p99_ms"] = _ms_2(stats.publish_delay.quantile(0.99))
    out["latency_p50_ms"] = _ms_2(stats.latency.quantile(0.5))
    out["latency_p99_ms"] = _ms_2(stats.latency.quantile(0.99))
    if shaped:
        out.update((e.name, e.read(stats, now)) for e in _LINE_SHAPED)
        labels = stats.labels
        if labels is not None:
            out.update((f"labels_{name}", getattr(labels, name)) for name in _LINE_LABELS)
    return out


_LINE_ALWAYS: Final = tuple(e for e in PROFILE_ENTRIES if e.line == "always")
_LINE_SHAPED: Final = tuple(e for e in PROFILE_ENTRIES if e.line == "shaped")
_LINE_LABELS: Final = tuple(name for name, series in LABEL_COUNTERS if series.line)


def _ms_2(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


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
