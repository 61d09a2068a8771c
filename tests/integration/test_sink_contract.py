"""One contract, two sinks: the fake used by unit tests and the real KafkaSink on a real broker.

If the fake drifts from what the Kafka sink does, the fleet's unit tests would prove nothing;
this suite keeps them honest.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from realservices import consume_all, free_port
from supervisor.sinks.dryrun import DryRunSink
from supervisor.sinks.kafka import KafkaSink
from supervisor.telemetry.stats import ProfileStats
from tests.fakes import FakeSink, close_within

SinkFactory = Callable[[dict[str, Any]], Any]


class KafkaUnderTest:
    """KafkaSink plus what the contract needs to observe it."""

    def __init__(self, bootstrap: str, extra: dict[str, Any]) -> None:
        self.sink = KafkaSink(
            {"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True, **extra},
            embedded=False,
            servers_label=bootstrap,
        )

    async def settle(self) -> None:
        await close_within(self.sink, 15)


class FakeUnderTest:
    def __init__(self, extra: dict[str, Any]) -> None:
        capacity = int(extra.get("queue.buffering.max.messages", 1_000_000))
        self.sink = FakeSink(capacity=capacity)

    async def settle(self) -> None:
        self.sink.ack()


class DryRunUnderTest:
    """The dry run's sink writing to memory: a line written out is a delivered message."""

    def __init__(self, extra: dict[str, Any]) -> None:
        self.out = io.BytesIO()
        self.sink = DryRunSink(self.out, asyncio.Event())

    async def settle(self) -> None:
        await close_within(self.sink, 15)


def _sink_under_test(request: pytest.FixtureRequest) -> Callable[..., Any]:
    if request.param == "fake":
        return FakeUnderTest
    if request.param == "dry-run":
        return DryRunUnderTest
    bootstrap: str = request.getfixturevalue("kafka_bootstrap")
    return lambda extra: KafkaUnderTest(bootstrap, extra)


@pytest.fixture(params=["fake", "kafka", "dry-run"])
def make_sink(request: pytest.FixtureRequest) -> Callable[..., Any]:
    """Every sink: the outcome of each message is reported exactly once, in domain terms."""
    return _sink_under_test(request)


@pytest.fixture(params=["fake", "kafka"])
def make_bounded_sink(request: pytest.FixtureRequest) -> Callable[..., Any]:
    """The sinks with a bounded queue (the dry run writes straight out: it has none to fill)."""
    return _sink_under_test(request)


def run(coro: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(coro())


def test_every_produced_message_gets_exactly_one_delivery_report(
    make_sink: Callable[..., Any], topic: str
) -> None:
    async def scenario() -> ProfileStats:
        under = make_sink({})
        if isinstance(under, KafkaUnderTest):
            under.sink.start()
        stats = ProfileStats("p")
        report = under.sink.reporter(stats)
        for i in range(500):
            under.sink.produce(topic, b'{"n":%d}' % i, None, [("profile", b"p")], report)
        stats.produced = 500
        await under.settle()
        return stats

    stats = run(scenario)
    assert stats.delivered == 500
    assert stats.failed == stats.undelivered == stats.in_flight == 0


def test_a_full_queue_raises_buffererror_and_stop_ends_the_wait(
    make_bounded_sink: Callable[..., Any], topic: str
) -> None:
    async def scenario() -> int:
        # Nothing serves delivery reports here (the Kafka sink's thread is not started), so the
        # queue cannot drain: the wait must end because of `stop`, not because space appeared.
        under = make_bounded_sink({"queue.buffering.max.messages": 5, "linger.ms": 10_000})
        stats = ProfileStats("p")
        report = under.sink.reporter(stats)
        accepted = 0
        for i in range(100):
            try:
                under.sink.produce(topic, b"%d" % i, None, [], report)
            except BufferError:
                break
            accepted += 1
        stop = asyncio.Event()
        asyncio.get_running_loop().call_soon(stop.set)
        await asyncio.wait_for(under.sink.wait_for_space(stop), timeout=10)
        stats.produced = accepted
        await under.settle()
        return accepted

    assert run(scenario) == 5  # accepted up to the bound, then BufferError (not 100)


def produce_to_nobody(topic: str, n: int) -> tuple[KafkaUnderTest, ProfileStats]:
    """A started KafkaSink whose bootstrap address nobody listens at, holding `n` messages."""
    nowhere = f"127.0.0.1:{free_port()}"
    under = KafkaUnderTest(nowhere, {"log_level": 0})
    under.sink.start()
    stats = ProfileStats("p")
    report = under.sink.reporter(stats)
    for i in range(n):
        under.sink.produce(topic, b"%d" % i, None, [], report)
    stats.produced = n
    return under, stats


def test_kafka_sink_purges_what_it_cannot_deliver_and_counts_it(topic: str) -> None:
    """Nobody listens at the bootstrap address: close() flushes until its budget runs out, then
    purges, and every message is accounted for as undelivered."""

    async def scenario() -> ProfileStats:
        under, stats = produce_to_nobody(topic, 50)
        await close_within(under.sink, 0.5)
        return stats

    stats = run(scenario)
    assert stats.undelivered == 50
    assert stats.delivered == stats.failed == stats.in_flight == 0


def test_kafka_sink_close_stops_flushing_at_once_when_forced(topic: str) -> None:
    async def scenario() -> ProfileStats:
        under, stats = produce_to_nobody(topic, 20)
        force = asyncio.Event()
        asyncio.get_running_loop().call_soon(force.set)
        # A one-hour budget: only `force` can end this close in time for the test's timeout.
        await asyncio.wait_for(close_within(under.sink, 3600, force), timeout=20)
        return stats

    stats = run(scenario)
    assert stats.undelivered == 20
    assert stats.in_flight == 0


def test_delivered_messages_carry_value_key_and_headers(kafka_bootstrap: str, topic: str) -> None:
    async def scenario() -> ProfileStats:
        under = KafkaUnderTest(kafka_bootstrap, {})
        under.sink.start()
        stats = ProfileStats("p")
        report = under.sink.reporter(stats)
        under.sink.produce(topic, b'{"a":1}', b"k1", [("profile", b"high")], report)
        stats.produced = 1
        await under.settle()
        return stats

    assert run(scenario).delivered == 1
    (record,) = consume_all(kafka_bootstrap, topic)
    assert (record.value, record.key, record.headers) == (b'{"a":1}', b"k1", {"profile": b"high"})
