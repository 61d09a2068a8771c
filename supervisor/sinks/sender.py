"""The send loop: the one place that produces messages, waits on backpressure and counts.

As aiokafka's accumulator owns the wait for buffer space, `Sender.send` owns everything between a
batch of ready messages and the sink: `produce()` each one into the sink's bounded queue without
awaiting anything per message, treat `BufferError` as backpressure (wait for space, or give up
when told to stop), count a message `produced` before its enqueue (so its delivery report, on
another thread, can never make `in_flight` negative), count `bytes` after it, count and log a
message the sink refuses outright as `rejected`, keep within `--max-messages` (`MessageBudget`), and
record each message's publish delay (from its scheduled time to its `produce()`) a batch at a
time: the messages produced between two waits for space share one clock read.
Both the fast path and shaped streams send through it; delivery outcomes are the sink's to report
(`supervisor.sinks.contract`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import NamedTuple

import structlog

from supervisor.lifecycle import Clock
from supervisor.sinks.contract import (
    FAILURE_LOG_EVERY_S,
    Headers,
    MessageRejected,
    Reporter,
    Sink,
)
from supervisor.telemetry.logs import RateLimitedLog
from supervisor.telemetry.stats import DeliveryStats

Row = tuple[str, bytes, bytes | None, Headers, int]
"""One message as the loop produces it: topic, value, key, headers, Kafka timestamp (ms; 0: the
sink stamps it)."""


class MessageBudget:
    """`--max-messages`: how many more messages the whole fleet may produce (labels not counted).

    A send reserves what it wants (`take`), then says how much it used (`settle`). The budget is
    spent once every reservation is settled and nothing remains: only then is `on_spent` called
    (it stops the fleet), so a send blocked on backpressure holding a reservation is not cut short
    by another profile finishing the count.
    """

    __slots__ = ("_on_spent", "_remaining", "_reserved")

    def __init__(self, limit: int | None, *, on_spent: Callable[[], None]) -> None:
        self._remaining = limit
        self._reserved = 0
        self._on_spent = on_spent

    @property
    def limited(self) -> bool:
        return self._remaining is not None

    @property
    def spent(self) -> bool:
        return self._remaining == 0

    def available(self, wanted: int) -> int:
        """How many of `wanted` messages the budget would let through now (nothing reserved)."""
        return wanted if self._remaining is None else min(wanted, self._remaining)

    def take(self, wanted: int) -> int:
        """Reserve up to `wanted` messages (all of them without a limit)."""
        if self._remaining is None:
            return wanted
        taken = min(wanted, self._remaining)
        self._remaining -= taken
        self._reserved += taken
        return taken

    def settle(self, taken: int, used: int) -> None:
        """`used` of the `taken` messages were produced; the rest go back."""
        if self._remaining is None:
            return
        self._reserved -= taken
        self._remaining += taken - used
        if self._remaining == 0 and self._reserved == 0:
            self._on_spent()


class Channel(NamedTuple):
    """Where one stream of a profile's messages is counted: its events, or its fraud labels."""

    stats: DeliveryStats
    report: Reporter
    budgeted: bool
    """Whether its messages count against `--max-messages` (labels do not)."""
    rejected: RateLimitedLog


class Sent(NamedTuple):
    """What became of a send: the first `done` messages went through the loop (produced or
    rejected), the rest were not sent (a stop, or `--max-messages` reached)."""

    done: int
    rejected: tuple[int, ...] = ()
    """Positions, among the first `done`, of the messages the sink refused."""


class Sender:
    """Produces batches into one sink for the fleet's profiles (see the module docstring)."""

    __slots__ = ("_budget", "_clock", "_log", "_sink")

    def __init__(self, sink: Sink, budget: MessageBudget, *, clock: Clock = time.monotonic) -> None:
        self._sink = sink
        self._budget = budget
        self._clock = clock
        self._log = structlog.get_logger()

    @property
    def budget(self) -> MessageBudget:
        return self._budget

    def channel(self, stats: DeliveryStats, *, budgeted: bool = True) -> Channel:
        """A channel counting into `stats`; make it once per stream, not per batch."""
        rejected = RateLimitedLog(self._log, "message_rejected", every_s=FAILURE_LOG_EVERY_S)
        return Channel(stats, self._sink.reporter(stats), budgeted, rejected)

    async def send(
        self,
        channel: Channel,
        rows: Iterable[Row],
        count: int,
        stop: asyncio.Event,
        stamp_ms: int = 0,
        due: float | None = None,
    ) -> Sent:
        """Produce the `count` messages of `rows` in order, waiting for space while the sink's
        queue is full; stop early when `stop` is set while waiting, or when the budget allows
        fewer. `stamp_ms`, when not 0, is the Kafka timestamp of the rows that have none (an
        evaluated run stamps a batch with its send time, `supervisor.evaluation.ledger`). `due`,
        when given, is the rows' scheduled time on the clock: their publish delay is recorded
        into the channel's stats (`DeliveryStats.publish_delay`)."""
        budget = self._budget
        taken = budget.take(count) if channel.budgeted else count
        sink = self._sink
        produce = sink.produce
        stats, report = channel.stats, channel.report
        rejected: list[int] = []
        used = 0
        clock = self._clock
        since, base = (clock(), stats.produced) if due is not None else (0.0, 0)
        try:
            for topic, value, key, headers, timestamp_ms in rows:
                if used == taken:
                    break
                while True:
                    stats.produced += 1
                    try:
                        produce(topic, value, key, headers, report, timestamp_ms or stamp_ms)
                    except BufferError:  # the sink's queue is full: backpressure
                        stats.produced -= 1
                        if due is not None:  # the messages produced so far; the rest later
                            _delayed(stats, since - due, stats.produced - base)
                        await sink.wait_for_space(stop)
                        if due is not None:
                            since, base = clock(), stats.produced
                        if stop.is_set():
                            return Sent(used, tuple(rejected))
                        continue
                    except MessageRejected as exc:
                        stats.produced -= 1
                        stats.rejected += 1
                        rejected.append(used)
                        channel.rejected(topic=topic, reason=str(exc))
                    else:
                        stats.bytes += len(value)
                    break
                used += 1
            return Sent(used, tuple(rejected))
        finally:
            if channel.budgeted:  # a rejected message was not produced: its place goes back
                budget.settle(taken, used - len(rejected))
            if due is not None:
                _delayed(stats, since - due, stats.produced - base)


def _delayed(stats: DeliveryStats, delay_s: float, count: int) -> None:
    """`count` messages produced `delay_s` after their scheduled time (a timer waking up to a
    millisecond early makes it negative: on time)."""
    if count > 0:
        stats.publish_delay.observe_many(max(0.0, delay_s), count)
