"""One profile's run: pace its ticks, build each tick's messages, send them through the send loop.

A plain profile takes the fast path: sampled rows, at most a fresh id and the current timestamp
spliced in, fixed headers (`EventBuilder`). A profile that shapes event time or injects fraud is
run by a `ProfileStream`, whose scheduled messages (held-back events, duplicates, fraud events,
labels) are merged with the ticks in run-time order. Either way every message goes out through
`Sender.send`, which owns backpressure, counting and `--max-messages`.

A runner is restartable: the fleet calls `run` again after a crash, with a fresh generator from
the profile's seed and the counters kept.

A shard of a fleet (`Shard`, from `shard:` in the config) takes its part of the profile here and
only here: its pacer keeps every `count`-th deadline, its generator is seeded from the profile's
seed and its index, its fraud scenario is thinned, and its messages carry a `shard` header (unless
the profile sends no headers, `headers: none`).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from itertools import repeat
from operator import itemgetter

import structlog

from supervisor.config import ProfileSettings, Shard
from supervisor.dataset import Dataset
from supervisor.evaluation.ledger import FraudSent, SentLog
from supervisor.formats.wire import Wire
from supervisor.lifecycle import Clock, ShutdownBudget, sleep_or_stop
from supervisor.profile.events import EventBuilder
from supervisor.profile.outgoing import DUPLICATE, LABEL, Outgoing
from supervisor.profile.pacing import Pacer, phase_s
from supervisor.profile.sampling import Sampler
from supervisor.profile.schedule import curve_for
from supervisor.profile.stream import ProfileStream
from supervisor.sinks.contract import Headers
from supervisor.sinks.sender import Channel, Row, Sender
from supervisor.telemetry.logs import get_logger
from supervisor.telemetry.stats import ProfileStats

_WHOLE = Shard()
"""A process that runs the whole config."""

_ROW = itemgetter(0, 1, 2, 3, 4)
"""An `Outgoing`'s topic, value, key, headers and timestamp: what the send loop produces."""


class ProfileRunner:
    """Runs one profile of the fleet until its `halt` (or the fleet's stop) is set."""

    def __init__(
        self,
        name: str,
        settings: ProfileSettings,
        topic: str,
        dataset: Dataset,
        *,
        sender: Sender,
        stats: ProfileStats,
        instance: str,
        fleet_stop: asyncio.Event,
        drain_budget: Callable[[], ShutdownBudget],
        clock: Clock = time.monotonic,
        sent_log: SentLog | None = None,
        shard: Shard = _WHOLE,
        wire: Wire | None = None,
    ) -> None:
        """`drain_budget()` is asked, once the profile stops, for the budget within which a shaped
        profile sends what it already scheduled. With `sent_log` (an evaluated run) each batch of
        events is recorded there, and the messages the producer would stamp carry the batch's send
        time as their Kafka timestamp instead, so a detector and the evaluation agree on it.
        `wire`: what its messages are written as (None: the dataset's JSON)."""
        self._sent_log = sent_log
        self._wire = wire
        self._next_wire: Wire | None = None
        self.name = name
        self.settings = settings
        self.topic = topic
        self.stats = stats
        self._dataset = dataset
        self._next_dataset: Dataset | None = None
        self._sender = sender
        self._fleet_stop = fleet_stop
        self._drain_budget = drain_budget
        self._clock = clock
        self._shard = shard
        self._headers: Headers = None
        if settings.headers != "none":  # `all`, `profile`: who sent it
            self._headers = [("profile", name.encode()), ("instance", instance.encode())]
            if not shard.alone:
                self._headers.append(("shard", str(shard).encode()))
        self._events = sender.channel(stats)
        self._labels: Channel | None = None
        if stats.labels is not None:
            self._labels = sender.channel(stats.labels, budgeted=False)
        self._log = get_logger()

    def use(self, dataset: Dataset, wire: Wire | None = None) -> None:
        """Sample `dataset` (written as `wire`) from the next tick on (a reload replaced it); the
        schedule goes on."""
        self._next_dataset = dataset
        self._next_wire = wire

    async def run(self, halt: asyncio.Event) -> None:
        """Run until `halt` or the fleet's stop; raises whatever a tick raises (the fleet's
        supervisor restarts the profile)."""
        settings, stats, shard = self.settings, self.stats, self._shard
        if settings.scenario is not None and not shard.alone:
            settings = settings.model_copy(update={"scenario": shard.scenario(settings.scenario)})
        rng = random.Random(shard.seed(settings.seed))
        # The run clock starts at the profile's phase (`phase_s`): the wall clock it maps onto
        # (a schedule's hours, a stream's event times) starts there too.
        lead_s = phase_s(self.name, settings.interval_s)
        wall_start = time.time() + lead_s
        curve = curve_for(settings.schedule, wall_start=datetime.fromtimestamp(wall_start, UTC))
        stats.stopped_at = None
        _log_start(self._log, self.topic, settings, shard.count)
        try:
            stream = None
            if settings.shapes_events:
                stream = ProfileStream(
                    self.name,
                    settings,
                    self._dataset,
                    rng,
                    topic=self.topic,
                    headers=self._headers,
                    wall_start_s=wall_start,
                    wire=self._wire,
                )
            # After the stream's setup (its scenario indexes the dataset): the first deadline is
            # not already late by it.
            pacer = Pacer(
                settings.interval_s,
                clock=self._clock,
                curve=curve,
                stride=shard.count,
                phase=shard.index,
                lead_s=lead_s,
            )
            if stream is not None:
                await self._run_stream(stream, pacer, halt)
            else:
                await self._run_sampled(rng, pacer, halt)
        finally:
            stats.stopped_at = self._clock()

    # -- pacing ---------------------------------------------------------------------------------

    async def _until(self, due: float, halt: asyncio.Event) -> bool:
        """Wait for monotonic time `due`; False when the profile is to stop instead."""
        delay = due - self._clock()
        if delay > 0:
            await sleep_or_stop(halt, delay)
        else:
            await asyncio.sleep(0)  # due already: still let the other profiles run
        # The fleet's stop is checked too: a profile already due does not start one more batch
        # before the fleet wakes up and halts it.
        return not (halt.is_set() or self._fleet_stop.is_set())

    def _tick(self, pacer: Pacer) -> Dataset | None:
        """Count one tick; return the dataset a reload swapped in since the last one, if any."""
        stats = self.stats
        lateness, behind = pacer.tick()
        stats.lateness.observe(lateness)
        if stats.first_batch_at is None:
            stats.first_batch_at = self._clock()
        stats.batches += 1
        if behind:
            stats.behind_schedule += 1
        swapped, self._next_dataset = self._next_dataset, None
        if swapped is not None:
            self._dataset, self._wire = swapped, self._next_wire
        return swapped

    # -- the fast path --------------------------------------------------------------------------

    async def _run_sampled(self, rng: random.Random, pacer: Pacer, halt: asyncio.Event) -> None:
        """Sampled rows, at most an id and timestamp rewrite, fixed headers."""
        send, events, budget = self._sender.send, self._events, self._sender.budget
        topic, headers = repeat(self.topic), repeat(self._headers)
        no_key, producer_time = repeat(None), repeat(0)
        sampler, builder = self._sampling(rng)
        sent_log, stamp = self._sent_log, 0
        while await self._until(pacer.next_at, halt):
            due = pacer.next_at  # the batch's scheduled time: its publish delay counts from it
            if self._tick(pacer) is not None:  # same schedule, new rows
                sampler, builder = self._sampling(rng)
            rows = sampler.draw()
            # The last batch under --max-messages: built for the rows that go out only, so that
            # its fresh ids are drawn as for a batch of that size.
            rows = rows[: budget.available(len(rows))]
            values, keys, ids = builder.build(rows)
            keyed = no_key if keys is None else keys
            if sent_log is not None:  # evaluated: one clock read per batch
                stamp = sent_log.clock_ms()
            batch = zip(topic, values, keyed, headers, producer_time, strict=False)
            sent = await send(events, batch, len(values), halt, stamp, due)
            if sent_log is not None:
                if ids is not None:  # the fresh ids spliced in: no slicing
                    sent_log.sent_ids(ids, sent.done, stamp)
                else:
                    sent_log.sent(values, sent.done, stamp, id_start=builder.id_start)
            if sent.done < len(values):  # stopped while waiting for space, or max_messages
                return

    def _sampling(self, rng: random.Random) -> tuple[Sampler, EventBuilder]:
        settings, dataset = self.settings, self._dataset
        sampler = Sampler(len(dataset), settings.min_records, settings.max_records, rng)
        builder = EventBuilder(
            dataset,
            id_mode=settings.id,
            # `shift` profiles run as a ProfileStream, never through here.
            timestamp_mode="now" if settings.timestamp == "now" else "keep",
            key_field=settings.key,
            rng=rng,
            wire=self._wire,
        )
        return sampler, builder

    # -- shaped streams -------------------------------------------------------------------------

    async def _run_stream(self, stream: ProfileStream, pacer: Pacer, halt: asyncio.Event) -> None:
        """Ticks and the stream's scheduled messages, merged in run-time order (a scheduled
        message due before the next tick goes first, whenever the loop gets to it), so a seeded
        run's sequence never depends on timing."""
        stream.occurrences = self.stats.occurrences  # kept across restarts, like every counter
        unsent: list[Outgoing] = []
        while True:
            tick_s = pacer.due_s
            timed_s = stream.next_due_s()
            if not await self._until(pacer.start + min(tick_s, timed_s), halt):
                break
            if timed_s <= tick_s:
                due = stream.due(min(self._clock() - pacer.start, tick_s))
                # Their publish delay counts from the earliest's scheduled time.
                unsent = await self._send_stream(stream, due, halt, pacer.start + timed_s)
            else:
                swapped = self._tick(pacer)
                if swapped is not None:  # same schedule, new rows
                    stream.use(swapped, self._wire)
                out = stream.tick(tick_s)  # events only: labels come due later, never at once
                unsent = list(
                    await self._send_part(
                        stream, self._events, out, halt, stream.special, pacer.start + tick_s
                    )
                )
            if unsent:
                break
        await self._drain(stream, unsent)

    async def _send_stream(
        self, stream: ProfileStream, out: Sequence[Outgoing], stop: asyncio.Event, due: float
    ) -> list[Outgoing]:
        """Send `out` (fraud labels on their own channel), scheduled for monotonic time `due`,
        have the stream account for what was produced, and return what was not sent (a stop, or
        `--max-messages` reached)."""
        events: Sequence[Outgoing] = out
        labels: list[Outgoing] = []
        if self._labels is not None and any(LABEL in m.tally for m in out):
            events = [m for m in out if LABEL not in m.tally]
            labels = [m for m in out if LABEL in m.tally]
        unsent = list(await self._send_part(stream, self._events, events, stop, due=due))
        if labels:
            assert self._labels is not None
            unsent += await self._send_part(stream, self._labels, labels, stop)
        return unsent

    async def _send_part(
        self,
        stream: ProfileStream,
        channel: Channel,
        messages: Sequence[Outgoing],
        stop: asyncio.Event,
        special: Sequence[int] | None = None,
        due: float | None = None,
    ) -> Sequence[Outgoing]:
        """`due`: the messages' scheduled time (none for what a stop drains early, or labels)."""
        sent_log = self._sent_log
        if sent_log is None or channel is self._labels:
            rows: map[Row] = map(_ROW, messages)
            sent = await self._sender.send(channel, rows, len(messages), stop, due=due)
            stream.produced(messages[: sent.done], sent.rejected, self.stats, special)
            return messages[sent.done :]
        stamp = sent_log.clock_ms()
        sent = await self._sender.send(
            channel, map(_ROW, messages), len(messages), stop, stamp, due
        )
        fraud: list[FraudSent] = []
        stream.produced(messages[: sent.done], sent.rejected, self.stats, special, fraud)
        if self.settings.duplicates is None:
            sent_log.sent_messages(messages, sent.done, stamp, fraud, stream.id_start)
        else:  # a copy is the same event again: its alert is timed from the original's send
            originals = [m for m in messages[: sent.done] if DUPLICATE not in m.tally]
            sent_log.sent_messages(originals, len(originals), stamp, fraud, stream.id_start)
        return messages[sent.done :]

    async def _drain(self, stream: ProfileStream, unsent: list[Outgoing]) -> None:
        """Stopping: what the profile already decided to send (held-back and duplicate events,
        scheduled fraud events) goes out now rather than never, within the shutdown budget and
        `--max-messages`; then the labels of every fraud event that was sent, so that the ground
        truth is complete for what a consumer received."""
        budget = self._drain_budget()
        leftovers = [*unsent, *stream.pending()]
        events = [m for m in leftovers if LABEL not in m.tally]
        dropped = len(await self._send_part(stream, self._events, events, budget.over))
        labels = [m for m in (*leftovers, *stream.pending()) if LABEL in m.tally]
        dropped_labels = 0
        if labels:
            assert self._labels is not None
            dropped_labels = len(await self._send_part(stream, self._labels, labels, budget.over))
        if dropped or dropped_labels:
            self._log.warning(
                "scheduled_messages_dropped",
                count=dropped + dropped_labels,
                labels=dropped_labels,
                reason="max_messages reached"
                if self._sender.budget.spent
                else "the producer queue stayed full for shutdown_timeout_s",
            )


def _log_start(
    log: structlog.typing.FilteringBoundLogger, topic: str, settings: ProfileSettings, shards: int
) -> None:
    log.info(
        "profile_started",
        topic=topic,
        interval_s=settings.interval_s,
        min_records=settings.min_records,
        max_records=settings.max_records,
        records_per_s=round(settings.records_per_s / shards, 2),
        seed=settings.seed,
        key=settings.key,
        id_mode=settings.id,
        timestamp_mode=settings.timestamp,
        schedule=None if settings.schedule is None else settings.schedule.kind,
        scenario=None if settings.scenario is None else settings.scenario.kind,
        format=settings.format,
    )
