"""Prometheus metrics: the `Telemetry` collector and librdkafka's statistics.

Nothing here runs per message. The fleet's counters (`ProfileStats`) are read when Prometheus
scrapes, by a custom collector (`Telemetry.collect`), so the hot path pays nothing for metrics.
`Telemetry` also holds what the probes report (`Heartbeat`, `Readiness`); the HTTP server that
serves /metrics, /healthz and /readyz on one port is `supervisor.telemetry.health.MetricsServer`.

Threads: a scrape runs `collect` on one of the HTTP server's connection threads; the counters it
reads have their own writers (the event loop and the sink's delivery thread, see
`supervisor.telemetry.stats`) and are read without locks: a scrape may see a report a message old,
never a torn value. `LibrdkafkaStats.update` runs on the sink's delivery thread (librdkafka's
`stats_cb`) and swaps in an immutable snapshot, which the scrape thread reads.

Labels: every per-profile series carries `profile` and `instance_id` (the config's `instance_id`,
by default the host name, i.e. the pod or container name). It is deliberately not called
`instance`: Prometheus attaches its own `instance` (the scrape target) to every series and would
rename ours to `exported_instance`, or with `honor_labels` overwrite the target's.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Final, Protocol, cast

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import CollectorRegistry
from prometheus_client.utils import floatToGoString

from supervisor import __version__
from supervisor.lifecycle import Clock
from supervisor.telemetry.health import Heartbeat, MetricsServer, Readiness
from supervisor.telemetry.stats import COUNTERS, LABEL_COUNTERS, Histogram, ProfileStats

__all__ = [
    "PREFIX",
    "BrokerStats",
    "Heartbeat",
    "LibrdkafkaSnapshot",
    "LibrdkafkaStats",
    "MetricsServer",
    "Readiness",
    "Telemetry",
]
"""`Heartbeat`, `Readiness` and `MetricsServer` live in `supervisor.telemetry.health`; they are
re-exported here for the callers that import them with `Telemetry`."""

PREFIX: Final = "streaming_producer"
_PROFILE_LABELS: Final = ("profile", "instance_id")
_INSTANCE_LABELS: Final = ("instance_id",)
_BROKER_LABELS: Final = ("broker", "broker_id", "instance_id")
_BROKER_UP_STATES: Final = frozenset({"UP", "UPDATE"})
_go_float = cast(Callable[[float], str], floatToGoString)  # untyped upstream
"""How prometheus_client writes a float (`+Inf`, `1e-05`...): bucket bounds match its own."""


class EvaluationSeries(Protocol):
    """What scores the detector under test, as the collector reads it at scrape time."""

    def collect(self, instance: str) -> Iterator[Metric]: ...


# --- librdkafka statistics -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BrokerStats:
    """One broker as librdkafka's statistics describe it."""

    name: str
    """`host:port/node_id`."""
    node_id: int
    state: str
    """librdkafka's connection state: UP, DOWN, CONNECT, INIT, ..."""
    rtt_avg_s: float | None
    """Average request round trip over the last statistics window; None without requests."""
    rtt_p99_s: float | None
    request_timeouts: int

    @property
    def up(self) -> bool:
        return self.state in _BROKER_UP_STATES


@dataclass(frozen=True, slots=True)
class LibrdkafkaSnapshot:
    """The parts of one librdkafka statistics report that the metrics expose."""

    at: float
    """When it arrived, on the monotonic clock."""
    queue_messages: int
    """`msg_cnt`: messages in the producer's queues, waiting to be sent or acknowledged."""
    queue_bytes: int
    """`msg_size`: their total size."""
    queue_max_messages: int
    """`msg_max`: the queue's capacity (`queue.buffering.max.messages`)."""
    brokers: tuple[BrokerStats, ...]
    """The cluster's brokers (learned from metadata); bootstrap and internal entries left out."""

    @property
    def brokers_up(self) -> int:
        return sum(b.up for b in self.brokers)


class LibrdkafkaStats:
    """Holds the latest librdkafka statistics report.

    Wiring: give the producer `stats_cb=stats.update` and a `statistics.interval.ms`; librdkafka
    then calls `update` with its JSON report from `poll()`, i.e. on the sink's delivery thread.
    `update` never raises (an exception in a callback would surface from `poll()` and end that
    thread): a report it cannot read is counted in `errors` and ignored.
    """

    def __init__(self, *, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self.snapshot: LibrdkafkaSnapshot | None = None
        self.errors = 0

    def update(self, stats_json: str) -> None:
        try:
            snapshot = _parse_librdkafka(json.loads(stats_json), self._clock())
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError):
            self.errors += 1
            return
        self.snapshot = snapshot

    def age_s(self) -> float | None:
        """Seconds since the last report; None before the first."""
        snapshot = self.snapshot
        return None if snapshot is None else max(0.0, self._clock() - snapshot.at)


def _int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"not a number: {value!r}")
    return int(value)


def _rtt_s(rtt: object, key: str) -> float | None:
    # librdkafka reports microseconds over the last statistics window, zeros when it saw none.
    if not isinstance(rtt, dict) or not _int(rtt.get("cnt", 0)):
        return None
    return _int(rtt[key]) / 1e6


def _parse_librdkafka(report: object, at: float) -> LibrdkafkaSnapshot:
    if not isinstance(report, dict):
        raise TypeError("statistics report is not a JSON object")
    brokers = []
    raw_brokers = report.get("brokers") or {}
    if not isinstance(raw_brokers, dict):
        raise TypeError("'brokers' is not an object")
    for entry in raw_brokers.values():
        if not isinstance(entry, dict):
            continue
        node_id = _int(entry.get("nodeid", -1))
        if node_id < 0 or entry.get("source") not in ("learned", "configured"):
            continue  # bootstrap connections and internal/logical brokers
        rtt = entry.get("rtt")
        brokers.append(
            BrokerStats(
                name=str(entry.get("name", node_id)),
                node_id=node_id,
                state=str(entry.get("state", "UNKNOWN")),
                rtt_avg_s=_rtt_s(rtt, "avg"),
                rtt_p99_s=_rtt_s(rtt, "p99"),
                request_timeouts=_int(entry.get("req_timeouts", 0)),
            )
        )
    brokers.sort(key=lambda b: b.node_id)
    return LibrdkafkaSnapshot(
        at=at,
        queue_messages=_int(report.get("msg_cnt", 0)),
        queue_bytes=_int(report.get("msg_size", 0)),
        queue_max_messages=_int(report.get("msg_max", 0)),
        brokers=tuple(brokers),
    )


# --- the collector -------------------------------------------------------------------------------


def _histogram_buckets(histogram: Histogram) -> tuple[list[tuple[str, float]], float]:
    """Prometheus buckets (cumulative, ending at +Inf) and the sum of `histogram`.

    `Histogram.count` is not used: the delivery thread may observe between reading the buckets
    and reading the count, and Prometheus requires `_count` to equal the +Inf bucket, which is
    therefore taken as the count (prometheus_client derives `_count` from it).
    """
    buckets = [(_go_float(bound), float(count)) for bound, count in histogram.buckets()]
    return buckets, histogram.sum


class Telemetry:
    """What the app and the sink report to, and what `/metrics`, `/healthz` and `/readyz` read.

    A prometheus_client collector (it has `collect`): the per-profile series come from the
    `ProfileStats` given to `watch()` and are read at scrape time. Create it before the dataset
    load so the probes answer during startup; the fleet's counters join when the fleet exists.
    """

    def __init__(
        self,
        *,
        instance_id: str | None = None,
        shard: tuple[int, int] = (0, 1),
        heartbeat: Heartbeat | None = None,
        clock: Clock = time.monotonic,
        process_metrics: bool = True,
    ) -> None:
        self.instance_id = instance_id or socket.gethostname()
        self.shard = shard
        """(index, count): which shard of the fleet this process is (`shard:` in the config)."""
        self.heartbeat = heartbeat if heartbeat is not None else Heartbeat(clock=clock)
        self.readiness = Readiness()
        self.librdkafka = LibrdkafkaStats(clock=clock)
        self._profiles: Mapping[str, ProfileStats] = {}
        self._dataset: tuple[int, int] | None = None
        self._evaluation: EvaluationSeries | None = None
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)
        if process_metrics:  # process_*, python_gc_*, python_info: CPU, memory, open files
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
            GCCollector(registry=self.registry)

    # -- what the app reports ---------------------------------------------------------------------

    def watch(self, profiles: Mapping[str, ProfileStats]) -> None:
        """Expose these counters (the fleet's `stats`, by profile name) from now on. The mapping
        is read at every scrape, so profiles a reload adds to it appear without another call."""
        self._profiles = profiles

    def watch_evaluation(self, evaluation: EvaluationSeries) -> None:
        """Expose the evaluation's series (`supervisor.evaluation`) from now on."""
        self._evaluation = evaluation

    def dataset_loaded(self, *, rows: int, invalid_rows: int) -> None:
        """Record the loaded dataset's size; the process can now be ready."""
        self._dataset = (rows, invalid_rows)
        self.readiness.dataset_loaded = True

    def kafka_reachable(self, reachable: bool) -> None:
        """Kafka answered (True), or all brokers went down (False). Any thread may call it."""
        self.readiness.broker_reachable = reachable

    def shutdown_started(self) -> None:
        """Not ready any more: the process is draining and will exit."""
        self.readiness.shutting_down = True

    # -- the collector ----------------------------------------------------------------------------

    def collect(self) -> Iterator[Metric]:
        instance = self.instance_id
        # One C-level copy under the GIL: the mapping may gain profiles meanwhile (a reload).
        profiles = list(self._profiles.values())
        for attribute, spec in COUNTERS:
            counter = CounterMetricFamily(
                f"{PREFIX}_{spec.metric}", spec.help, labels=_PROFILE_LABELS
            )
            for stats in profiles:
                counter.add_metric([stats.name, instance], getattr(stats, attribute))
            yield counter

        in_flight = GaugeMetricFamily(
            f"{PREFIX}_messages_in_flight",
            "Messages produced but not yet acknowledged, failed or purged.",
            labels=_PROFILE_LABELS,
        )
        latency = HistogramMetricFamily(
            f"{PREFIX}_delivery_latency_seconds",
            "From produce() to the broker's acknowledgement, as librdkafka measured it"
            " (publish latency: the broker's part).",
            labels=_PROFILE_LABELS,
        )
        delay = HistogramMetricFamily(
            f"{PREFIX}_publish_delay_seconds",
            "From a message's scheduled time (its tick's deadline) to its produce() call"
            " (publish delay: the producer's part).",
            labels=_PROFILE_LABELS,
        )
        for stats in profiles:
            # The two writers race by design: clamp the transient negative (a delivery report
            # counted before its batch's `produced` was added).
            in_flight.add_metric([stats.name, instance], max(0, stats.in_flight))
            buckets, total = _histogram_buckets(stats.latency)
            latency.add_metric([stats.name, instance], buckets, total)
            buckets, total = _histogram_buckets(stats.publish_delay)
            delay.add_metric([stats.name, instance], buckets, total)
        yield in_flight
        yield latency
        yield delay
        yield from self._collect_scenarios(profiles, instance)
        if self._evaluation is not None:
            yield from self._evaluation.collect(instance)

        yield from self._collect_process(instance)
        yield from self._collect_librdkafka(instance)

    def _collect_scenarios(self, profiles: list[ProfileStats], instance: str) -> Iterator[Metric]:
        labels = ["profile", "scenario", "instance_id"]
        occurrences = CounterMetricFamily(
            f"{PREFIX}_fraud_occurrences",
            "Fraud scenario occurrences a profile started, by scenario.",
            labels=labels,
        )
        events = CounterMetricFamily(
            f"{PREFIX}_fraud_events",
            "Messages labelled fraud a profile produced, by scenario: the denominator of a"
            " detector's recall.",
            labels=labels,
        )
        for stats in profiles:
            for kind, n in list(stats.occurrences.items()):
                occurrences.add_metric([stats.name, kind, instance], n)
            for kind, n in list(stats.fraud_events.items()):
                events.add_metric([stats.name, kind, instance], n)
        yield occurrences
        yield events
        with_labels = [(s.name, s.labels) for s in profiles if s.labels is not None]
        for attribute, series in LABEL_COUNTERS:
            counter = CounterMetricFamily(
                f"{PREFIX}_{series.metric}", series.help, labels=_PROFILE_LABELS
            )
            added = (attribute, *series.plus)
            for profile, label_stats in with_labels:
                value = sum(getattr(label_stats, name) for name in added)
                counter.add_metric([profile, instance], value)
            yield counter

    def _collect_process(self, instance: str) -> Iterator[Metric]:
        labels = [instance]
        info = GaugeMetricFamily(
            f"{PREFIX}_build_info",
            "Always 1; the labels carry the version.",
            labels=[*_INSTANCE_LABELS, "version"],
        )
        info.add_metric([instance, __version__], 1)
        yield info
        shard = GaugeMetricFamily(
            f"{PREFIX}_shard_info",
            "Always 1; the labels say which shard of how many this process is (0 of 1: alone).",
            labels=[*_INSTANCE_LABELS, "shard_index", "shard_count"],
        )
        shard.add_metric([instance, *map(str, self.shard)], 1)
        yield shard
        ready = GaugeMetricFamily(
            f"{PREFIX}_ready", "1 when /readyz answers 200.", labels=_INSTANCE_LABELS
        )
        ready.add_metric(labels, 1 if self.readiness.ready() else 0)
        yield ready
        lag = GaugeMetricFamily(
            f"{PREFIX}_event_loop_lag_seconds",
            "How late the event loop's last heartbeat woke after its scheduled time.",
            labels=_INSTANCE_LABELS,
        )
        lag.add_metric(labels, self.heartbeat.lag_s)
        yield lag
        if self._dataset is not None:
            rows, invalid = self._dataset
            gauge = GaugeMetricFamily(
                f"{PREFIX}_dataset_rows",
                "Valid transactions loaded, which the profiles sample from.",
                labels=_INSTANCE_LABELS,
            )
            gauge.add_metric(labels, rows)
            yield gauge
            gauge = GaugeMetricFamily(
                f"{PREFIX}_dataset_invalid_rows",
                "Rows of the dataset that failed validation and were skipped.",
                labels=_INSTANCE_LABELS,
            )
            gauge.add_metric(labels, invalid)
            yield gauge

    def _collect_librdkafka(self, instance: str) -> Iterator[Metric]:
        stats = self.librdkafka
        errors = CounterMetricFamily(
            f"{PREFIX}_librdkafka_stats_errors",
            "librdkafka statistics reports that could not be read.",
            labels=_INSTANCE_LABELS,
        )
        errors.add_metric([instance], stats.errors)
        yield errors
        snapshot = stats.snapshot
        if snapshot is None:  # statistics disabled, or no report yet
            return
        labels = [instance]
        for name, value, documentation in (
            (
                "librdkafka_stats_age_seconds",
                max(0.0, stats.age_s() or 0.0),
                "Seconds since librdkafka's last statistics report.",
            ),
            (
                "librdkafka_queue_messages",
                snapshot.queue_messages,
                "Messages in librdkafka's queues, waiting to be sent or acknowledged (msg_cnt).",
            ),
            (
                "librdkafka_queue_bytes",
                snapshot.queue_bytes,
                "Bytes of the messages in librdkafka's queues (msg_size).",
            ),
            (
                "librdkafka_queue_max_messages",
                snapshot.queue_max_messages,
                "Capacity of librdkafka's queue in messages (queue.buffering.max.messages).",
            ),
            (
                "librdkafka_brokers_up",
                snapshot.brokers_up,
                "Brokers of the cluster with an established connection.",
            ),
        ):
            gauge = GaugeMetricFamily(f"{PREFIX}_{name}", documentation, labels=_INSTANCE_LABELS)
            gauge.add_metric(labels, value)
            yield gauge

        up = GaugeMetricFamily(
            f"{PREFIX}_librdkafka_broker_up",
            "1 when librdkafka's connection to the broker is up.",
            labels=_BROKER_LABELS,
        )
        rtt_avg = GaugeMetricFamily(
            f"{PREFIX}_librdkafka_broker_rtt_avg_seconds",
            "Average request round trip to the broker over the last statistics window.",
            labels=_BROKER_LABELS,
        )
        rtt_p99 = GaugeMetricFamily(
            f"{PREFIX}_librdkafka_broker_rtt_p99_seconds",
            "99th percentile request round trip to the broker over the last statistics window.",
            labels=_BROKER_LABELS,
        )
        timeouts = CounterMetricFamily(
            f"{PREFIX}_librdkafka_broker_request_timeouts",
            "Requests to the broker that timed out.",
            labels=_BROKER_LABELS,
        )
        for broker in snapshot.brokers:
            broker_labels = [broker.name, str(broker.node_id), instance]
            up.add_metric(broker_labels, 1 if broker.up else 0)
            if broker.rtt_avg_s is not None:
                rtt_avg.add_metric(broker_labels, broker.rtt_avg_s)
            if broker.rtt_p99_s is not None:
                rtt_p99.add_metric(broker_labels, broker.rtt_p99_s)
            timeouts.add_metric(broker_labels, broker.request_timeouts)
        yield from (up, rtt_avg, rtt_p99, timeouts)
