"""Fakes for unit tests of logic only; integration tests use the real broker."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from supervisor.sinks.kafka import DeliveryCallback, Headers
from supervisor.telemetry.stats import DeliveryStats


@dataclass
class Sent:
    topic: str
    value: bytes
    key: bytes | None
    headers: Headers
    on_delivery: DeliveryCallback
    timestamp_ms: int = 0


class FakeMessage:
    def __init__(self, sent: Sent) -> None:
        self._sent = sent

    def topic(self) -> str:
        return self._sent.topic

    def latency(self) -> float:
        return 0.002


@dataclass
class FakeSink:
    """An in-memory sink with a bounded queue; `ack()` plays the broker's acknowledgements.

    `on_produce` runs after each accepted message (tests use it to stop a run or to fail)."""

    capacity: int = 1_000_000
    queue: list[Sent] = field(default_factory=list)
    sent: list[Sent] = field(default_factory=list)
    on_produce: Callable[[FakeSink], None] | None = None
    space: asyncio.Event = field(default_factory=asyncio.Event)
    buffer_errors: int = 0
    full: asyncio.Event = field(default_factory=asyncio.Event)

    def produce(
        self,
        topic: str,
        value: bytes,
        key: bytes | None,
        headers: Headers,
        on_delivery: DeliveryCallback,
        timestamp_ms: int = 0,
    ) -> None:
        if len(self.queue) >= self.capacity:
            self.buffer_errors += 1
            self.full.set()
            raise BufferError("Local: Queue full")
        item = Sent(topic, value, key, headers, on_delivery, timestamp_ms)
        self.queue.append(item)
        self.sent.append(item)
        if self.on_produce is not None:
            self.on_produce(self)

    async def wait_for_space(self, stop: asyncio.Event) -> None:
        self.space.clear()
        waiters = [asyncio.ensure_future(self.space.wait()), asyncio.ensure_future(stop.wait())]
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        for w in waiters:
            w.cancel()

    def reporter(self, stats: DeliveryStats, *, latency_every: int = 1) -> DeliveryCallback:
        def on_delivery(err: object, msg: object) -> None:
            if err is None:
                stats.delivered += 1
            else:
                stats.failed += 1

        return on_delivery  # type: ignore[return-value]

    def ack(self, n: int | None = None) -> int:
        """Acknowledge the oldest `n` queued messages (all by default)."""
        n = len(self.queue) if n is None else n
        done, self.queue = self.queue[:n], self.queue[n:]
        for item in done:
            item.on_delivery(None, FakeMessage(item))  # type: ignore[arg-type]
        if done:
            self.space.set()
        return len(done)
