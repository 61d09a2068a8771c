"""The Kafka sink: one confluent-kafka `Producer` shared by every profile, and its delivery thread.

Why the synchronous `Producer` and not `confluent_kafka.aio.AIOProducer` (the seed's choice):
AIOProducer buffers messages in Python and hands them to librdkafka only when `batch_size` (1000)
messages are buffered or after `buffer_timeout` of *idleness*; at the seed's rates (~11 msg/s) a
buffer never fills and is never idle long enough, so messages sat seconds before being sent, and
awaiting one future per message through `asyncio.gather` costs a task and a thread hop each.
`benchmarks/producer_choice.py` measures both on the same broker; its figures are in the README
("Performance"). The design here keeps librdkafka's own batching and pays nothing per message
beyond `produce()`:

* enqueue: profile tasks call `produce()` on the event loop; it only copies the message into
  librdkafka's bounded queue (microseconds) and raises `BufferError` when that queue is full,
  which the caller treats as backpressure (`wait_for_space`), never as a crash;
* delivery: one dedicated thread blocks in `poll()` and runs the delivery reports as soon as
  librdkafka has them (so counters and the latency histogram are current within milliseconds),
  librdkafka's log lines and error events. Only that thread ever runs callbacks, so each counter
  has a single writer;
* shutdown: the same thread flushes within the shutdown budget, then purges what is left, so every
  produced message ends as delivered, failed or undelivered: none is unaccounted for.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from supervisor.config import REDACTED, is_secret_key
from supervisor.errors import ConfigError, KafkaUnavailableError
from supervisor.profile.pacing import sleep_or_stop
from supervisor.telemetry.logs import LIBRDKAFKA_LOGGER, RateLimitedLog, get_logger
from supervisor.telemetry.stats import DeliveryStats

DeliveryCallback = Callable[[KafkaError | None, Message], None]
Headers = list[tuple[str, str | bytes | None]]

_PURGED = frozenset({KafkaError._PURGE_QUEUE, KafkaError._PURGE_INFLIGHT})
_POLL_S = 0.1
FAILURE_LOG_EVERY_S = 5.0
"""At most one line per profile this often for failed or rejected messages."""
_SPACE_RECHECK_S = 0.05
_ERROR_LOG_EVERY_S = 30.0
_PROBE_KEY = "streaming.producer.probe"
"""A property librdkafka does not know: set after one user property, it makes the constructor
fail at once, before any client exists, unless that user property failed first."""


class MessageRejected(Exception):
    """The producer refused one message outright (e.g. larger than message.max.bytes): it never
    entered the queue, so it is neither produced nor failed; the profile counts it as rejected."""


class Sink(Protocol):
    """What a profile task needs from where its messages go."""

    def produce(
        self,
        topic: str,
        value: bytes,
        key: bytes | None,
        headers: Headers,
        on_delivery: DeliveryCallback,
        timestamp_ms: int = 0,
    ) -> None:
        """Enqueue one message; raise BufferError when the queue is full. `timestamp_ms` is its
        Kafka timestamp in Unix milliseconds; 0 lets the producer stamp it when produced."""

    async def wait_for_space(self, stop: asyncio.Event) -> None:
        """Return when the queue may take more messages, or when `stop` is set."""

    def reporter(self, stats: DeliveryStats, *, latency_every: int = 1) -> DeliveryCallback:
        """A delivery callback that updates `stats` from delivery reports, observing the latency
        of one delivery in `latency_every`."""


class ManagedSink(Sink, Protocol):
    """A sink as the app drives it for a whole run: `KafkaSink`, or `DryRunSink` for
    `run --dry-run`, which the app can therefore swap for one another."""

    def start(self) -> None:
        """Start serving deliveries; call from the event loop that will produce."""

    async def connect(
        self, topics: list[str], *, stop: asyncio.Event, timeout_s: float | None
    ) -> bool:
        """Wait until the destination is usable; False if `stop` was set meanwhile."""

    async def close(self, *, timeout_s: float, force: asyncio.Event) -> None:
        """Deliver what is pending within `timeout_s` (or until `force`), then account for the
        rest as undelivered."""


class _LibrdkafkaFilter(logging.Filter):
    """Drops librdkafka's per-attempt connection-failure lines: `KafkaSink` reports an outage
    once when it starts and once when it ends, instead of a line per reconnect attempt."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        return not (isinstance(args, tuple) and args and args[0] == "FAIL")


class KafkaSink:
    """A shared confluent-kafka Producer with a delivery thread (see the module docstring)."""

    def __init__(
        self,
        producer_config: Mapping[str, Any],
        *,
        embedded: bool,
        servers_label: str,
        on_reachable: Callable[[bool], None] | None = None,
        on_statistics: Callable[[str], None] | None = None,
    ) -> None:
        """`on_reachable(False)` is called when every broker is down and `on_reachable(True)`
        when they answer again; `on_statistics` receives librdkafka's statistics JSON every
        `statistics.interval.ms` (15 s unless the config sets it). Both run on the delivery
        thread."""
        self._log = get_logger()
        self._on_reachable = on_reachable
        self.servers_label = servers_label
        self.embedded = embedded
        rd_logger = logging.getLogger(LIBRDKAFKA_LOGGER)
        if not any(isinstance(f, _LibrdkafkaFilter) for f in rd_logger.filters):
            rd_logger.addFilter(_LibrdkafkaFilter())
        conf: dict[str, Any] = {
            **producer_config,
            "error_cb": self._on_error,
            "logger": rd_logger,
        }
        if on_statistics is not None:
            conf.setdefault("statistics.interval.ms", 15_000)
            conf["stats_cb"] = on_statistics
        if embedded:
            # librdkafka's in-process mock cluster: real Kafka protocol on a loopback port.
            conf["test.mock.num.brokers"] = 1
            conf.pop("bootstrap.servers", None)
        try:
            self._producer = Producer(conf)
        except (KafkaException, TypeError, ValueError) as exc:
            raise ConfigError(_config_problem(producer_config, exc)) from None
        self._connected = False
        self._last_error: str | None = None
        self._error_logs: dict[int, RateLimitedLog] = {}

        self._loop: asyncio.AbstractEventLoop | None = None
        self._space = asyncio.Event()
        self._waiting_for_space = False
        self._closing = threading.Event()
        self._forced = threading.Event()
        self._drain_deadline = 0.0
        self._done: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread: threading.Thread | None = None
        self._outage_since: float | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the delivery thread; call from the event loop that will produce."""
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._serve, name="kafka-delivery", daemon=True)
        self._thread.start()

    async def connect(
        self,
        topics: list[str],
        *,
        stop: asyncio.Event,
        timeout_s: float | None,
        retry_every_s: float = 5.0,
    ) -> bool:
        """Wait until the cluster answers a metadata request. Logs a calm line every
        `retry_every_s` while it does not; raises KafkaUnavailableError past `timeout_s`
        (None: keep trying). Returns False if `stop` was set meanwhile."""
        started = time.monotonic()
        while not stop.is_set():
            ask_s = 2.0
            if timeout_s is not None:
                ask_s = min(ask_s, max(0.1, timeout_s - (time.monotonic() - started)))
            try:
                metadata = await asyncio.to_thread(self._producer.list_topics, None, ask_s)
                if not metadata.brokers:
                    raise KafkaException(
                        KafkaError(KafkaError._TRANSPORT, "no brokers in metadata")
                    )
            except KafkaException as exc:
                # A refused login or TLS handshake is the real cause behind "transport failure".
                reason = self._last_error or _kafka_reason(exc)
                waited = time.monotonic() - started
                if timeout_s is not None and waited >= timeout_s:
                    fix = (
                        "check the credentials and security settings in kafka.config"
                        if self._last_error
                        else "check kafka.bootstrap_servers / KAFKA_BOOTSTRAP_SERVERS and that"
                        " the brokers are up"
                    )
                    raise KafkaUnavailableError(
                        f"Kafka at {self.servers_label} not usable after {waited:.0f}s"
                        f" ({reason}) — {fix}"
                    ) from None
                delay = retry_every_s
                if timeout_s is not None:
                    delay = min(delay, max(0.0, timeout_s - waited))
                self._log.warning(
                    "kafka_unreachable",
                    bootstrap_servers=self.servers_label,
                    reason=reason,
                    retry_in_s=round(delay, 1),
                )
                if await sleep_or_stop(stop, delay):
                    return False
                continue
            self._connected = True
            self._last_error = None
            brokers = sorted(f"{b.host}:{b.port}" for b in metadata.brokers.values())
            if self.embedded:
                self._log.info(
                    "kafka_embedded",
                    bootstrap_servers=",".join(brokers),
                    note="in-process mock cluster: nothing is persisted; it lives as long as this"
                    " process. Point a consumer at bootstrap_servers to read it.",
                )
            else:
                self._log.info(
                    "kafka_connected", bootstrap_servers=self.servers_label, brokers=brokers
                )
            for topic in sorted(set(topics)):
                meta = metadata.topics.get(topic)
                if self.embedded:
                    continue  # the mock cluster creates topics on first produce
                if meta is None or meta.error is not None:
                    self._log.warning(
                        "topic_not_found",
                        topic=topic,
                        note="relying on the broker's auto.create.topics.enable; otherwise"
                        " create it (kafka-topics --create --topic ...)",
                    )
                else:
                    self._log.info("topic_found", topic=topic, partitions=len(meta.partitions))
            return True
        return False

    async def close(self, *, timeout_s: float, force: asyncio.Event) -> None:
        """Flush what is queued within `timeout_s` (or until `force` is set), then purge the
        rest, whose delivery reports count it as undelivered."""
        self._drain_deadline = time.monotonic() + timeout_s
        self._closing.set()
        if self._thread is None:  # never started: drain on a worker thread instead
            self._thread = threading.Thread(target=self._serve, name="kafka-delivery", daemon=True)
            self._thread.start()
        done: asyncio.Future[Any] = asyncio.wrap_future(self._done)
        forced: asyncio.Future[Any] = asyncio.ensure_future(force.wait())
        try:
            await asyncio.wait({done, forced}, return_when=asyncio.FIRST_COMPLETED)
            if not done.done():
                self._forced.set()
            await done
        finally:
            forced.cancel()

    # -- hot path -------------------------------------------------------------------------------

    def produce(
        self,
        topic: str,
        value: bytes,
        key: bytes | None,
        headers: Headers,
        on_delivery: DeliveryCallback,
        timestamp_ms: int = 0,
    ) -> None:
        try:
            self._producer.produce(
                topic,
                value,
                key,
                on_delivery=on_delivery,
                headers=headers,
                timestamp=timestamp_ms,
            )
        except KafkaException as exc:
            raise MessageRejected(_kafka_reason(exc)) from None

    async def wait_for_space(self, stop: asyncio.Event) -> None:
        # The delivery thread sets `_space` after serving delivery reports while someone waits;
        # the short recheck covers a report served between BufferError and setting the flag.
        self._space.clear()
        self._waiting_for_space = True
        try:
            waiters: list[asyncio.Future[Any]] = [
                asyncio.ensure_future(self._space.wait()),
                asyncio.ensure_future(stop.wait()),
            ]
            try:
                await asyncio.wait(
                    waiters, timeout=_SPACE_RECHECK_S, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                for w in waiters:
                    w.cancel()
        finally:
            self._waiting_for_space = False

    def reporter(self, stats: DeliveryStats, *, latency_every: int = 1) -> DeliveryCallback:
        # Observing a latency costs about 0.3 µs a message, on the thread that competes with the
        # producing one for the GIL: above 1,000 msg/s a sample is as informative (the fleet
        # passes latency_every = rate / 1,000) and the throughput stays the producer's.
        failed = RateLimitedLog(
            self._log.bind(profile=stats.name), "delivery_failed", every_s=FAILURE_LOG_EVERY_S
        )
        latency = stats.latency
        countdown = 1

        def on_delivery(err: KafkaError | None, msg: Message) -> None:
            nonlocal countdown
            if err is None:
                stats.delivered += 1
                countdown -= 1
                if countdown == 0:
                    countdown = latency_every
                    seconds = msg.latency()
                    if seconds is not None:
                        latency.observe(seconds)
                if self._outage_since is not None:
                    self._recovered()
                return
            if err.code() in _PURGED:
                stats.undelivered += 1
                return
            stats.failed += 1
            failed(topic=msg.topic(), reason=err.str(), code=err.name())

        return on_delivery

    # -- delivery thread ------------------------------------------------------------------------

    def _serve(self) -> None:
        producer = self._producer
        try:
            while not self._closing.is_set():
                if producer.poll(_POLL_S) and self._waiting_for_space:
                    self._wake_space_waiter()
            while len(producer) and not self._forced.is_set():
                remaining = self._drain_deadline - time.monotonic()
                if remaining <= 0:
                    break
                producer.flush(min(_POLL_S, remaining))
            if len(producer):
                # Out of time: purge, then serve the purge reports so the counters are exact.
                producer.purge(in_queue=True, in_flight=True, blocking=True)
                deadline = time.monotonic() + 1.0
                while producer.poll(0) and time.monotonic() < deadline:
                    pass
        except BaseException as exc:  # noqa: BLE001 - handed to the coroutine awaiting _done
            self._done.set_exception(exc)
        else:
            self._done.set_result(None)

    def _wake_space_waiter(self) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._space.set)

    def _on_error(self, err: KafkaError) -> None:
        code = err.code()
        if code == KafkaError._ALL_BROKERS_DOWN:
            if self._on_reachable is not None:
                self._on_reachable(False)
            # Before the first connection `connect` reports unreachability itself.
            if self._outage_since is None and self._connected:
                self._outage_since = time.monotonic()
                self._log.warning(
                    "kafka_outage",
                    bootstrap_servers=self.servers_label,
                    reason=err.str(),
                    note="messages stay queued and are retried until message.timeout.ms",
                )
            return
        if code == KafkaError._TRANSPORT:
            self._log.debug("kafka_transport_error", reason=err.str())
            return
        if code in (KafkaError._AUTHENTICATION, KafkaError._SSL) or err.fatal():
            self._last_error = err.str()
        # The same error recurs on every reconnect attempt: one line per error code every
        # _ERROR_LOG_EVERY_S, with how often it recurred meanwhile.
        log = self._error_logs.get(code)
        if log is None:
            log = self._error_logs[code] = RateLimitedLog(
                self._log, "kafka_error", every_s=_ERROR_LOG_EVERY_S, level="warning"
            )
        log(code=err.name(), reason=err.str(), fatal=err.fatal())

    def _recovered(self) -> None:
        since = self._outage_since
        self._outage_since = None
        if self._on_reachable is not None:
            self._on_reachable(True)
        if since is not None:
            self._log.info(
                "kafka_recovered",
                bootstrap_servers=self.servers_label,
                outage_s=round(time.monotonic() - since, 1),
            )


def _config_problem(config: Mapping[str, Any], exc: Exception) -> str:
    """One line naming the kafka.config property librdkafka refused, as the config wrote it.

    librdkafka reports aliases by their canonical name (`linger.ms` as `queue.buffering.max.ms`)
    and stops at the first bad property; trying each property alone, followed by a probe key
    librdkafka does not know, finds the culprit without ever starting a client."""
    reason = _kafka_reason(exc) if isinstance(exc, KafkaException) else str(exc)
    for key, value in config.items():
        if key in ("bootstrap.servers", "client.id"):
            continue
        try:
            Producer({key: value, _PROBE_KEY: 1})
        except KafkaException as probe:
            if _PROBE_KEY in _kafka_reason(probe):
                continue
            shown = REDACTED if is_secret_key(key) else repr(value)
            return (
                f"kafka.config[{key!r}] = {shown}: {_kafka_reason(probe)} — fix or remove it"
                " (librdkafka's CONFIGURATION.md lists every property and its values)"
            )
        except (TypeError, ValueError) as probe:
            return f"kafka.config[{key!r}]: {probe} — fix or remove it"
    return f"kafka.config: {reason}"


def _kafka_reason(exc: KafkaException) -> str:
    arg = exc.args[0] if exc.args else exc
    return arg.str() if isinstance(arg, KafkaError) else str(arg)
