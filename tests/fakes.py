"""Fakes for unit tests of logic only; integration tests use the real broker."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

from supervisor.lifecycle import ShutdownBudget, first_of
from supervisor.sinks.contract import Headers, ManagedSink, Reporter
from supervisor.telemetry.stats import DeliveryStats


@dataclass
class Sent:
    topic: str
    value: bytes
    key: bytes | None
    headers: Headers
    report: DeliveryStats
    timestamp_ms: int = 0


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

    def reporter(self, stats: DeliveryStats) -> Reporter:
        return stats

    def produce(
        self,
        topic: str,
        value: bytes,
        key: bytes | None,
        headers: Headers,
        report: Reporter,
        timestamp_ms: int = 0,
    ) -> None:
        if len(self.queue) >= self.capacity:
            self.buffer_errors += 1
            self.full.set()
            raise BufferError("Local: Queue full")
        item = Sent(topic, value, key, headers, cast(DeliveryStats, report), timestamp_ms)
        self.queue.append(item)
        self.sent.append(item)
        if self.on_produce is not None:
            self.on_produce(self)

    async def wait_for_space(self, stop: asyncio.Event) -> None:
        self.space.clear()
        await first_of(self.space, stop)

    def ack(self, n: int | None = None) -> int:
        """Acknowledge the oldest `n` queued messages (all by default)."""
        n = len(self.queue) if n is None else n
        done, self.queue = self.queue[:n], self.queue[n:]
        for item in done:
            if item.report.record_delivered():
                item.report.record_latency(0.002)
        if done:
            self.space.set()
        return len(done)


async def close_within(
    sink: ManagedSink, timeout_s: float, force: asyncio.Event | None = None
) -> None:
    """Close `sink` as a run's stop does: within a shutdown budget of `timeout_s` that `force`
    (when given and set) cuts short."""
    budget = ShutdownBudget(timeout_s, force=force or asyncio.Event())
    async with budget.watching(budget.force):
        budget.begin()
        await sink.close(budget)
