"""Prometheus metrics and the health endpoints, served on one port by a stdlib HTTP server.

Nothing here runs per message. The fleet's counters (`ProfileStats`) are read when Prometheus
scrapes, by a custom collector (`Telemetry.collect`), so the hot path pays nothing for metrics. The
same port answers the probes:

* `/metrics` — the Prometheus text format (OpenMetrics when the scraper asks for it);
* `/healthz` — liveness: 200 while the event loop keeps beating (`Heartbeat`), 503 once it has
  not beaten for `max_age_s` (a blocked or dead loop); it stays 200 while the fleet drains;
* `/readyz` — readiness: 200 once the dataset is loaded and Kafka answered, 503 with the reasons
  otherwise (`Readiness`), and 503 again while shutting down.

Threads: the server runs in a daemon thread and one short-lived thread per connection; the
counters it reads have their own writers (the event loop and the sink's delivery thread, see
`supervisor.telemetry.stats`) and are read without locks: a scrape may see a report a message old,
never a torn value. `LibrdkafkaStats.update` runs on the sink's delivery thread (librdkafka's
`stats_cb`) and swaps in an immutable snapshot, which the scrape thread reads.

Labels: every per-profile series carries `profile` and `instance_id` (the config's `instance_id`,
by default the host name, i.e. the pod or container name). It is deliberately not called
`instance`: Prometheus attaches its own `instance` (the scrape target) to every series and would
rename ours to `exported_instance`, or with `honor_labels` overwrite the target's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import socketserver
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Final, cast

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import CollectorRegistry
from prometheus_client.utils import floatToGoString

from supervisor import __version__
from supervisor.errors import ConfigError
from supervisor.lifecycle import Clock, sleep_or_stop
from supervisor.telemetry.stats import COUNTERS, LABEL_COUNTERS, Histogram, ProfileStats

PREFIX: Final = "streaming_producer"
DEFAULT_PORT: Final = 9464
"""The port the deploy files use (as OpenTelemetry's Prometheus exporter does by convention)."""
METRICS_PATH: Final = "/metrics"
HEALTH_PATH: Final = "/healthz"
READY_PATH: Final = "/readyz"

_PROFILE_LABELS: Final = ("profile", "instance_id")
_INSTANCE_LABELS: Final = ("instance_id",)
_BROKER_LABELS: Final = ("broker", "broker_id", "instance_id")
_BROKER_UP_STATES: Final = frozenset({"UP", "UPDATE"})
_REQUEST_TIMEOUT_S: Final = 10.0
_SERVE_POLL_S: Final = 0.2
_go_float = cast(Callable[[float], str], floatToGoString)  # untyped upstream
"""How prometheus_client writes a float (`+Inf`, `1e-05`...): bucket bounds match its own."""


# --- liveness and readiness ----------------------------------------------------------------------


class Heartbeat:
    """Proof that the event loop runs: `run()` beats every `interval_s` from a loop task, and
    `healthy()` (read by `/healthz` on another thread) is true while the last beat is at most
    `max_age_s` old. A new heartbeat counts as one beat, so a process is live while it starts.
    """

    def __init__(
        self, *, interval_s: float = 5.0, max_age_s: float = 30.0, clock: Clock = time.monotonic
    ) -> None:
        if not 0 < interval_s < max_age_s:
            raise ValueError(f"need 0 < interval_s < max_age_s, got {interval_s}, {max_age_s}")
        self.interval_s = interval_s
        self.max_age_s = max_age_s
        self._clock = clock
        self._last = clock()
        self.lag_s = 0.0
        """How late the last beat woke after its scheduled time: the event loop's latency."""

    def beat(self) -> None:
        self._last = self._clock()

    def age_s(self) -> float:
        """Seconds since the last beat."""
        return max(0.0, self._clock() - self._last)

    def healthy(self) -> bool:
        return self.age_s() <= self.max_age_s

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Beat from a task for as long as the block runs; the task is stopped and awaited on
        the way out, and an exception from the block propagates unchanged. Wrap the whole run,
        the drain included: the loop is alive (and must say so) while the fleet drains."""
        stop = asyncio.Event()
        task = asyncio.create_task(self.run(stop), name="heartbeat")
        try:
            yield
        finally:
            stop.set()
            await task

    async def run(self, stop: asyncio.Event) -> None:
        """Beat every `interval_s` until `stop` is set (see `running`)."""
        self.beat()
        while True:
            due = self._clock() + self.interval_s
            if await sleep_or_stop(stop, self.interval_s):
                return
            now = self._clock()
            self.lag_s = max(0.0, now - due)
            self._last = now


@dataclass(slots=True)
class Readiness:
    """The conditions `/readyz` reports, set by the app (and the sink, for Kafka outages).
    Plain attributes: each has one writer, and a bool is read whole by the server's thread."""

    dataset_loaded: bool = False
    broker_reachable: bool = False
    shutting_down: bool = False

    def problems(self) -> list[str]:
        """Why the process is not ready; empty when it is."""
        out = []
        if not self.dataset_loaded:
            out.append("dataset not loaded")
        if not self.broker_reachable:
            out.append("Kafka not reachable")
        if self.shutting_down:
            out.append("shutting down")
        return out

    def ready(self) -> bool:
        return not self.problems()


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
        heartbeat: Heartbeat | None = None,
        clock: Clock = time.monotonic,
        process_metrics: bool = True,
    ) -> None:
        self.instance_id = instance_id or socket.gethostname()
        self.heartbeat = heartbeat if heartbeat is not None else Heartbeat(clock=clock)
        self.readiness = Readiness()
        self.librdkafka = LibrdkafkaStats(clock=clock)
        self._profiles: Mapping[str, ProfileStats] = {}
        self._dataset: tuple[int, int] | None = None
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
            "From produce() to the broker's acknowledgement, as librdkafka measured it.",
            labels=_PROFILE_LABELS,
        )
        for stats in profiles:
            # The two writers race by design: clamp the transient negative (a delivery report
            # counted before its batch's `produced` was added).
            in_flight.add_metric([stats.name, instance], max(0, stats.in_flight))
            buckets, total = _histogram_buckets(stats.latency)
            latency.add_metric([stats.name, instance], buckets, total)
        yield in_flight
        yield latency
        yield from self._collect_scenarios(profiles, instance)

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


# --- the HTTP server -----------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    telemetry: Telemetry

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN, a reverse DNS lookup that can hang for
        # seconds in a container without DNS; the name is only used for CGI, so skip it.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: Prometheus reuses its connection
    timeout = _REQUEST_TIMEOUT_S
    server_version = f"streaming-producer/{__version__}"

    def do_GET(self) -> None:
        self._respond(head=False)

    def do_HEAD(self) -> None:
        self._respond(head=True)

    def _respond(self, *, head: bool) -> None:
        telemetry = cast(_Server, self.server).telemetry
        path = self.path.split("?", 1)[0]
        content_type = "text/plain; charset=utf-8"
        if path == METRICS_PATH:
            encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
            status, body = HTTPStatus.OK, encoder(telemetry.registry)
        elif path == HEALTH_PATH:
            heartbeat = telemetry.heartbeat
            if heartbeat.healthy():
                status, body = HTTPStatus.OK, b"ok\n"
            else:
                status = HTTPStatus.SERVICE_UNAVAILABLE
                body = f"event loop silent for {heartbeat.age_s():.1f}s\n".encode()
        elif path == READY_PATH:
            problems = telemetry.readiness.problems()
            if not problems:
                status, body = HTTPStatus.OK, b"ready\n"
            else:
                status = HTTPStatus.SERVICE_UNAVAILABLE
                body = f"not ready: {', '.join(problems)}\n".encode()
        else:
            status = HTTPStatus.NOT_FOUND
            body = f"not found; try {METRICS_PATH}, {HEALTH_PATH} or {READY_PATH}\n".encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Silence the per-request access log: probes and scrapes would flood the logs."""


class MetricsServer:
    """Serves `telemetry` over HTTP on `host:port` from a daemon thread; `port=0` takes a free
    port (see `.port`). `start()` raises `ConfigError` when the address cannot be bound."""

    def __init__(self, telemetry: Telemetry, *, host: str = "0.0.0.0", port: int = DEFAULT_PORT):
        self.telemetry = telemetry
        self.host = host
        self.port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        server_class = _Server6 if ":" in self.host else _Server
        try:
            server = server_class((self.host, self.port), _Handler)
        except OSError as exc:
            raise ConfigError(
                f"metrics: cannot listen on {self.host}:{self.port} ({exc.strerror or exc})"
                " — choose another metrics.port or metrics.host"
            ) from None
        server.telemetry = self.telemetry
        self.port = int(server.server_address[1])
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": _SERVE_POLL_S},
            name="metrics-http",
            daemon=True,
        )
        self._thread.start()

    @property
    def url(self) -> str:
        host = self.host if self.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"

    def close(self) -> None:
        """Stop serving and release the port; blocks up to ~0.2 s. Idempotent."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> MetricsServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
