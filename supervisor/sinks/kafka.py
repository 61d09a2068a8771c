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
from typing import Any

import structlog
from confluent_kafka import KafkaError, KafkaException, Message, Producer
from confluent_kafka.admin._metadata import ClusterMetadata

from supervisor.errors import ConfigError, KafkaUnavailableError
from supervisor.lifecycle import ShutdownBudget, first_of, sleep_or_stop
from supervisor.sinks import kafka_errors
from supervisor.sinks.contract import (
    FAILURE_LOG_EVERY_S,
    Headers,
    MessageRejected,
    Reporter,
)
from supervisor.sinks.kafka_handover import Handover
from supervisor.sinks.kafka_health import ClusterHealth, LogRelay
from supervisor.telemetry.logs import LIBRDKAFKA_LOGGER, RateLimitedLog, get_logger
from supervisor.telemetry.stats import DeliveryStats

DeliveryCallback = Callable[[KafkaError | None, Message], None]
"""librdkafka's delivery report callback: the Kafka sink's `Reporter`."""

_PURGED = frozenset({KafkaError._PURGE_QUEUE, KafkaError._PURGE_INFLIGHT})
_POLL_S = 0.1
_SPACE_RECHECK_S = 0.05
_ERROR_LOG_EVERY_S = 30.0


class KafkaSink:
    """A shared confluent-kafka Producer with a delivery thread (see the module docstring)."""

    reader_closed = False
    """A broker never stops reading: only a dry run's reader can end a run that way."""

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
        self._health = ClusterHealth(servers_label, on_reachable)
        self.servers_label = servers_label
        self.destination = servers_label
        self.embedded = embedded
        conf: dict[str, Any] = {
            # librdkafka's idempotence lines are how a lost producer state shows (kafka_health).
            "debug": "eos",
            **producer_config,
            "error_cb": self._health.on_error,
            "logger": LogRelay(self._health, logging.getLogger(LIBRDKAFKA_LOGGER)),
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
            raise ConfigError(kafka_errors.config_problem(producer_config, exc)) from None
        self._handover = Handover(conf, servers_label)
        self._reported: list[DeliveryStats] = []
        """Every stats a reporter was made for: settled at close."""

        self._loop: asyncio.AbstractEventLoop | None = None
        self._space = asyncio.Event()
        self._waiting_for_space = False
        self._closing = threading.Event()
        self._forced = threading.Event()
        self._drain_deadline = 0.0
        self._done: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread: threading.Thread | None = None

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
                reason = self._health.last_error or kafka_errors.reason(exc)
                waited = time.monotonic() - started
                if timeout_s is not None and waited >= timeout_s:
                    fix = (
                        kafka_errors.FIX_CREDENTIALS
                        if self._health.last_error
                        else kafka_errors.FIX_SERVERS
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
            self._health.connected = True
            self._health.last_error = None
            _log_cluster(self._log, metadata, topics, self.embedded, self.servers_label)
            return True
        return False

    async def close(self, budget: ShutdownBudget) -> None:
        """Flush what is queued until the budget is over, then purge the rest, whose delivery
        reports count it as undelivered."""
        budget.begin()
        self._drain_deadline = budget.deadline
        self._closing.set()
        if self._thread is None:  # never started: drain on a worker thread instead
            self._thread = threading.Thread(target=self._serve, name="kafka-delivery", daemon=True)
            self._thread.start()
        done: asyncio.Future[Any] = asyncio.wrap_future(self._done)
        over: asyncio.Future[Any] = asyncio.ensure_future(budget.over.wait())
        try:
            await asyncio.wait({done, over}, return_when=asyncio.FIRST_COMPLETED)
            if not done.done():
                self._forced.set()
            await done
        finally:
            over.cancel()

    # -- hot path -------------------------------------------------------------------------------

    def produce(
        self,
        topic: str,
        value: bytes,
        key: bytes | None,
        headers: Headers,
        report: Reporter,
        timestamp_ms: int = 0,
    ) -> None:
        try:
            self._producer.produce(
                topic,
                value,
                key,
                # A `Reporter` this sink made (`reporter`): a DeliveryCallback. Not `cast()`,
                # which is a Python call per message.
                on_delivery=report,  # type: ignore[arg-type]
                headers=headers,
                timestamp=timestamp_ms,
            )
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            if isinstance(error, KafkaError) and error.fatal():
                # The producer is dead, not the message: wait (as for space) while the delivery
                # thread hands everything over to a new one (`Handover`).
                self._health.fatal(error)
                raise BufferError(error.str()) from None
            raise MessageRejected(kafka_errors.reason(exc)) from None

    async def wait_for_space(self, stop: asyncio.Event) -> None:
        # The delivery thread sets `_space` after serving delivery reports while someone waits;
        # the short recheck covers a report served between BufferError and setting the flag.
        self._space.clear()
        self._waiting_for_space = True
        try:
            await first_of(self._space, stop, timeout_s=_SPACE_RECHECK_S)
        finally:
            self._waiting_for_space = False

    def reporter(self, stats: DeliveryStats) -> DeliveryCallback:
        """librdkafka's delivery callback for messages counted by `stats`: it translates each
        report into the stats' outcome (runs on the delivery thread)."""
        failed = RateLimitedLog(
            self._log.bind(profile=stats.name), "delivery_failed", every_s=FAILURE_LOG_EVERY_S
        )
        delivered, latency = stats.record_delivered, stats.record_latency
        health, handover = self._health, self._handover
        self._reported.append(stats)

        def on_delivery(err: KafkaError | None, msg: Message) -> None:
            if err is None:
                if delivered():
                    latency(msg.latency())
                if health.troubled:
                    health.delivered()
                return
            if err.code() in _PURGED:
                if not (handover.active and handover.resend(msg, on_delivery)):
                    stats.record_undelivered()
                return
            stats.record_failed()
            failed(topic=msg.topic(), reason=err.str(), code=err.name())

        return on_delivery

    # -- delivery thread ------------------------------------------------------------------------

    def _serve(self) -> None:
        health = self._health
        try:
            while not self._closing.is_set():
                try:
                    if self._producer.poll(_POLL_S) and self._waiting_for_space:
                        self._wake_space_waiter()
                except KafkaException as exc:  # a fatal error surfacing from poll()
                    error = exc.args[0] if exc.args else None
                    if not (isinstance(error, KafkaError) and error.fatal()):
                        raise
                    health.fatal(error)
                if health.lost_state is not None:
                    self._handover.replace(self._producer, self._install, health.lost_state)
                    self._wake_space_waiter()  # a send waiting on the dead producer goes on
            producer = self._producer
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
            self._settle()
        except BaseException as exc:  # noqa: BLE001 - handed to the coroutine awaiting _done
            self._done.set_exception(exc)
        else:
            self._done.set_result(None)

    def _settle(self) -> None:
        """Nothing stays in flight at exit: a message whose purge report never came (a broker
        frozen mid-request) is counted undelivered, so the summary's counts add up."""
        for stats in self._reported:
            for _ in range(max(0, stats.in_flight)):
                stats.record_undelivered()

    def _install(self, producer: Producer) -> None:
        self._producer = producer
        self._health.replaced()

    def _wake_space_waiter(self) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._space.set)


def _log_cluster(
    log: structlog.typing.FilteringBoundLogger,
    metadata: ClusterMetadata,
    topics: list[str],
    embedded: bool,
    servers_label: str,
) -> None:
    """What `connect` found: the brokers, and whether each topic exists (the mock cluster creates
    topics on first produce)."""
    brokers = sorted(f"{b.host}:{b.port}" for b in metadata.brokers.values())
    if embedded:
        log.info(
            "kafka_embedded",
            bootstrap_servers=",".join(brokers),
            note="in-process mock cluster: nothing is persisted; it lives as long as this"
            " process. Point a consumer at bootstrap_servers to read it.",
        )
        return
    log.info("kafka_connected", bootstrap_servers=servers_label, brokers=brokers)
    for topic in sorted(set(topics)):
        meta = metadata.topics.get(topic)
        if meta is None or meta.error is not None:
            log.warning(
                "topic_not_found",
                topic=topic,
                note="relying on the broker's auto.create.topics.enable; otherwise"
                " create it (kafka-topics --create --topic ...)",
            )
        else:
            log.info("topic_found", topic=topic, partitions=len(meta.partitions))
