"""The fleet: one supervised asyncio task per profile, all in one TaskGroup, sharing one dataset
and one sink.

A profile task samples its batch on its own RNG, builds the messages from the pre-serialized
dataset and enqueues them without awaiting anything per message; delivery reports (on the sink's
delivery thread) update its counters. A profile that raises is logged and restarted with
exponential backoff, up to `RestartPolicy.max_restarts` within `window_s`; past that the whole fleet
stops gracefully and `Fleet.crashed` names the profile (the CLI exits non-zero). Other profiles keep
running while one backs off.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from supervisor.config import Config, ProfileSettings
from supervisor.dataset import Dataset
from supervisor.profile.events import EventBuilder
from supervisor.profile.pacing import Clock, Pacer, sleep_or_stop
from supervisor.profile.sampling import Sampler
from supervisor.profile.schedule import curve_for
from supervisor.profile.stream import DUPLICATE, LABEL, LATE, REORDERED, Outgoing, ProfileStream
from supervisor.sinks.kafka import (
    FAILURE_LOG_EVERY_S,
    DeliveryCallback,
    Headers,
    MessageRejected,
    Sink,
)
from supervisor.telemetry.logs import RateLimitedLog, get_logger
from supervisor.telemetry.stats import DeliveryStats, ProfileStats, RateWindow, stats_line

LATENCY_SAMPLES_PER_S = 1000
"""Delivery latencies observed per second and profile, at most (see `KafkaSink.reporter`)."""


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    """How a crashing profile is restarted."""

    max_restarts: int = 5
    window_s: float = 60.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0


@dataclass(frozen=True, slots=True)
class ReloadPlan:
    """What applying a new config changes, by profile name."""

    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[str, ...]
    unchanged: tuple[str, ...]
    dataset_replaced: bool


@dataclass(slots=True)
class _Running:
    settings: ProfileSettings
    topic: str
    halt: asyncio.Event
    task: asyncio.Task[None]


class Fleet:
    """Runs every profile of a config until `stop` is set; `apply` changes the set live."""

    def __init__(
        self,
        config: Config,
        dataset: Dataset,
        sink: Sink,
        *,
        clock: Clock = time.monotonic,
        restart_policy: RestartPolicy | None = None,
        max_messages: int | None = None,
    ) -> None:
        self.config = config
        self.instance = config.instance
        self.dataset = dataset
        self.sink = sink
        self.clock = clock
        self.restart_policy = restart_policy or RestartPolicy()
        self._remaining = max_messages
        """Messages `max_messages` still allows (labels not counted); None: no limit."""
        self._reserved = 0
        """Messages reserved by `_take` and not yet settled."""
        self.stats: dict[str, ProfileStats] = {}
        """Every profile that ran in this process, including ones a reload removed."""
        self.crashed: list[str] = []
        self._reporters: dict[str, DeliveryCallback] = {}
        self._label_reporters: dict[str, DeliveryCallback] = {}
        for name, settings in config.profiles.items():  # in the summary even if never started
            self._stats_of(name, settings)
        self._running: dict[str, _Running] = {}
        self._tg: asyncio.TaskGroup | None = None
        self._stop = asyncio.Event()
        self._log = get_logger()

    def topics(self) -> list[str]:
        """Every topic some profile writes to, labels topics included."""
        return self.config.topics()

    def running(self) -> list[str]:
        """Names of the profiles currently scheduled."""
        return list(self._running)

    async def run(self, stop: asyncio.Event) -> None:
        """Run every profile until `stop` is set (or a profile exhausts its restarts, which sets
        it); return once every profile has stopped enqueueing. Delivery of what is still in
        flight is the sink's to finish (`KafkaSink.close`)."""
        self._stop = stop
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
            for name, settings in self.config.profiles.items():
                self._start(name, settings, self.config)
            reporter = tg.create_task(self._report(stop), name="stats")
            await stop.wait()
            for running in self._running.values():
                running.halt.set()
            reporter.cancel()
        self._tg = None
        self._running.clear()

    async def apply(self, config: Config, dataset: Dataset | None = None) -> ReloadPlan:
        """Switch to `config` (and `dataset`, when given) while running: added profiles start,
        removed ones stop (each finishes the batch it is enqueuing), changed ones restart with
        their new settings, and unchanged ones carry on with their schedule untouched; if a new
        dataset is given they sample it from their next batch on."""
        if self._tg is None or self._stop.is_set():
            raise RuntimeError("the fleet is not running")
        old = {name: (r.settings, r.topic) for name, r in self._running.items()}
        new = {name: (p, self._topic_of(p, config)) for name, p in config.profiles.items()}
        plan = ReloadPlan(
            added=tuple(n for n in new if n not in old),
            removed=tuple(n for n in old if n not in new),
            changed=tuple(n for n in new if n in old and new[n] != old[n]),
            unchanged=tuple(n for n in new if n in old and new[n] == old[n]),
            dataset_replaced=dataset is not None,
        )
        if dataset is not None:
            self.dataset = dataset
        stopping = [self._running.pop(n) for n in (*plan.removed, *plan.changed)]
        for running in stopping:
            running.halt.set()
        await asyncio.gather(*(r.task for r in stopping))
        self.config = config
        for name in (*plan.changed, *plan.added):
            self._start(name, config.profiles[name], config)
        return plan

    @staticmethod
    def _topic_of(settings: ProfileSettings, config: Config) -> str:
        return settings.topic or config.kafka.topic

    def _stats_of(self, name: str, settings: ProfileSettings) -> ProfileStats:
        stats = self.stats.get(name)
        if stats is None:
            stats = self.stats[name] = ProfileStats(name)
            every = max(1, round(settings.records_per_s / LATENCY_SAMPLES_PER_S))
            self._reporters[name] = self.sink.reporter(stats, latency_every=every)
        if settings.labels is not None and stats.labels is None:
            stats.labels = DeliveryStats(name)
            self._label_reporters[name] = self.sink.reporter(stats.labels)
        return stats

    def _start(self, name: str, settings: ProfileSettings, config: Config) -> None:
        assert self._tg is not None
        self._stats_of(name, settings)
        halt = asyncio.Event()
        topic = self._topic_of(settings, config)
        task = self._tg.create_task(
            self._supervise(name, settings, topic, halt), name=f"profile:{name}"
        )
        self._running[name] = _Running(settings, topic, halt, task)

    async def _supervise(
        self, name: str, settings: ProfileSettings, topic: str, halt: asyncio.Event
    ) -> None:
        structlog.contextvars.bind_contextvars(profile=name)
        policy = self.restart_policy
        stats = self.stats[name]
        crashes: deque[float] = deque()
        while True:
            try:
                await self._run_profile(name, settings, topic, stats, halt)
                return
            except Exception:  # noqa: BLE001 - supervision: any crash of a profile is restarted
                now = self.clock()
                crashes.append(now)
                while crashes and now - crashes[0] > policy.window_s:
                    crashes.popleft()
                if len(crashes) > policy.max_restarts:
                    self._log.error(
                        "profile_gave_up",
                        restarts=stats.restarts,
                        window_s=policy.window_s,
                        exc_info=True,
                    )
                    self.crashed.append(name)
                    self._stop.set()
                    return
                backoff = min(
                    policy.backoff_max_s, policy.backoff_initial_s * 2 ** (len(crashes) - 1)
                )
                self._log.error("profile_crashed", restart_in_s=backoff, exc_info=True)
                if await sleep_or_stop(halt, backoff):
                    return
                stats.restarts += 1
                self._log.info("profile_restarted", restarts=stats.restarts)

    async def _run_profile(
        self,
        name: str,
        settings: ProfileSettings,
        topic: str,
        stats: ProfileStats,
        halt: asyncio.Event,
    ) -> None:
        # `halt` stops this profile (a reload, or the fleet stopping: `run` sets every halt once
        # it wakes up); the fleet's stop is checked as well so that a profile already due does
        # not start one more batch in between.
        rng = random.Random(settings.seed)
        headers: Headers = [("profile", name.encode()), ("instance", self.instance.encode())]
        wall_start = time.time()
        curve = curve_for(settings.schedule, wall_start=datetime.fromtimestamp(wall_start, UTC))
        pacer = Pacer(settings.interval_s, clock=self.clock, curve=curve)
        stats.stopped_at = None
        self._log.info(
            "profile_started",
            topic=topic,
            interval_s=settings.interval_s,
            min_records=settings.min_records,
            max_records=settings.max_records,
            records_per_s=round(settings.records_per_s, 2),
            seed=settings.seed,
            key=settings.key,
            id_mode=settings.id,
            timestamp_mode=settings.timestamp,
            schedule=None if settings.schedule is None else settings.schedule.kind,
            scenario=None if settings.scenario is None else settings.scenario.kind,
        )
        try:
            if settings.shapes_events:
                stream = ProfileStream(
                    name,
                    settings,
                    self.dataset,
                    rng,
                    topic=topic,
                    headers=headers,
                    wall_start_s=wall_start,
                )
                await self._run_stream(stream, pacer, stats, halt)
            else:
                await self._run_sampled(settings, topic, headers, rng, pacer, stats, halt)
        finally:
            stats.stopped_at = self.clock()

    async def _until(self, due: float, halt: asyncio.Event) -> bool:
        """Wait for monotonic time `due`; False when the profile is to stop instead."""
        delay = due - self.clock()
        if delay > 0:
            await sleep_or_stop(halt, delay)
        else:
            await asyncio.sleep(0)  # due already: still let the other profiles run
        return not (halt.is_set() or self._stop.is_set())

    def _tick(self, pacer: Pacer, stats: ProfileStats) -> None:
        lateness, behind = pacer.tick()
        stats.lateness.observe(lateness)
        if stats.first_batch_at is None:
            stats.first_batch_at = self.clock()
        stats.batches += 1
        if behind:
            stats.behind_schedule += 1

    async def _run_sampled(
        self,
        settings: ProfileSettings,
        topic: str,
        headers: Headers,
        rng: random.Random,
        pacer: Pacer,
        stats: ProfileStats,
        halt: asyncio.Event,
    ) -> None:
        """The fast path: sampled rows, at most an id and timestamp rewrite, fixed headers."""
        fleet_stop = self._stop
        sink = self.sink
        produce = sink.produce
        dataset = self.dataset
        sampler, builder = self._sampling(dataset, settings, rng)
        on_delivery = self._reporters[stats.name]
        rejected = RateLimitedLog(self._log, "message_rejected", every_s=FAILURE_LOG_EVERY_S)
        while await self._until(pacer.next_at, halt):
            self._tick(pacer, stats)
            if self.dataset is not dataset:  # replaced by a reload: same schedule, new rows
                dataset = self.dataset
                sampler, builder = self._sampling(dataset, settings, rng)
            rows = sampler.draw()
            taken = self._take(len(rows))
            if taken < len(rows):  # max_messages: the last batch
                rows = rows[:taken]
            values, keys = builder.build(rows)
            for j, value in enumerate(values):
                key = None if keys is None else keys[j]
                while True:
                    # Counted before the enqueue: its delivery report (on the delivery
                    # thread) can then never make in_flight negative, even for a moment.
                    stats.produced += 1
                    try:
                        produce(topic, value, key, headers, on_delivery)
                    except BufferError:  # librdkafka's queue is full: backpressure
                        stats.produced -= 1
                        await sink.wait_for_space(halt)
                        if halt.is_set() or fleet_stop.is_set():
                            self._settle(taken, j)
                            return
                        continue
                    except MessageRejected as exc:
                        stats.produced -= 1
                        stats.rejected += 1
                        rejected(topic=topic, reason=str(exc))
                    else:
                        stats.bytes += len(value)
                    break
            self._settle(taken, taken)

    async def _run_stream(
        self, stream: ProfileStream, pacer: Pacer, stats: ProfileStats, halt: asyncio.Event
    ) -> None:
        """A profile shaping event time or injecting fraud: ticks and the stream's scheduled
        messages, merged in run-time order (a scheduled message due before the next tick goes
        first, whenever the loop gets to it), so a seeded run's sequence never depends on timing.
        """
        stream.occurrences = stats.occurrences  # kept across restarts, like every counter
        dataset = self.dataset
        send = self._sender(stream, stats)
        unsent: list[Outgoing] = []
        while True:
            tick_s = pacer.due_s
            timed_s = stream.next_due_s()
            if not await self._until(pacer.start + min(tick_s, timed_s), halt):
                break
            if timed_s <= tick_s:
                out = stream.due(min(self.clock() - pacer.start, tick_s))
            else:
                self._tick(pacer, stats)
                if self.dataset is not dataset:  # replaced by a reload: same schedule, new rows
                    dataset = self.dataset
                    stream.use(dataset)
                out = stream.tick(tick_s)
            sent = await send(out, halt)
            if sent < len(out):
                unsent = out[sent:]
                break
        # Stopping: what the profile already decided to send (held-back and duplicate events,
        # scheduled fraud events) goes out now rather than never, within the shutdown budget and
        # `max_messages`; then the labels of every fraud event that was sent, so that the ground
        # truth is complete for what a consumer received.
        budget = asyncio.Event()
        timer = asyncio.get_running_loop().call_later(self.config.shutdown_timeout_s, budget.set)
        try:
            leftovers = [*unsent, *stream.pending()]
            events = [m for m in leftovers if LABEL not in m.tally]
            sent = await send(events, budget)
            labels = [m for m in (*leftovers, *stream.pending()) if LABEL in m.tally]
            sent_labels = await send(labels, budget)
        finally:
            timer.cancel()
        dropped = len(events) - sent + len(labels) - sent_labels
        if dropped:
            self._log.warning(
                "scheduled_messages_dropped",
                count=dropped,
                labels=len(labels) - sent_labels,
                reason="max_messages reached"
                if self._remaining == 0
                else "the producer queue stayed full for shutdown_timeout_s",
            )

    def _sender(
        self, stream: ProfileStream, stats: ProfileStats
    ) -> Callable[[list[Outgoing], asyncio.Event], Awaitable[int]]:
        """A coroutine function producing a list of messages with backpressure, counting each
        into `stats` (labels into `stats.labels`) and scheduling the label of each fraud event
        produced; it returns how many messages it got through before `stop` was set while the
        queue was full, or `max_messages` ran out."""
        sink = self.sink
        produce = sink.produce
        on_delivery = self._reporters[stream.name]
        labels = stats.labels
        on_label = self._label_reporters.get(stream.name)
        rejected = RateLimitedLog(self._log, "message_rejected", every_s=FAILURE_LOG_EVERY_S)

        async def send(messages: list[Outgoing], stop: asyncio.Event) -> int:
            limited = self._remaining is not None  # else no reservation to make per message
            target: DeliveryStats
            for i, m in enumerate(messages):
                target, callback = stats, on_delivery
                tallies = m.tally
                if tallies and LABEL in tallies:  # not counted against max_messages
                    assert labels is not None
                    assert on_label is not None
                    target, callback = labels, on_label
                elif limited and not self._take(1):
                    return i
                while True:
                    target.produced += 1
                    try:
                        produce(m.topic, m.value, m.key, m.headers, callback, m.timestamp_ms)
                    except BufferError:
                        target.produced -= 1
                        await sink.wait_for_space(stop)
                        if stop.is_set():
                            if limited and target is stats:
                                self._settle(1, 0)
                            return i
                        continue
                    except MessageRejected as exc:
                        target.produced -= 1
                        target.rejected += 1
                        rejected(topic=m.topic, reason=str(exc))
                    else:
                        target.bytes += len(m.value)
                        for tally in tallies:
                            _count(stats, tally)
                        if m.scenario is not None:
                            fraud = stats.fraud_events
                            fraud[m.scenario] = fraud.get(m.scenario, 0) + 1
                        if m.label is not None:
                            stream.schedule(*m.label)
                    break
                if limited and target is stats:
                    self._settle(1, 1)
            return len(messages)

        return send

    def _take(self, wanted: int) -> int:
        """Reserve up to `wanted` messages of `max_messages` (all of them without a limit);
        `_settle` says how many of them were used."""
        if self._remaining is None:
            return wanted
        taken = min(wanted, self._remaining)
        self._remaining -= taken
        self._reserved += taken
        return taken

    def _settle(self, taken: int, used: int) -> None:
        """Account for a reservation: `used` of the `taken` messages were produced (or refused),
        the rest go back. The fleet stops once `max_messages` are all used: not before, so that a
        profile blocked on backpressure with its reservation is not cut short by another one."""
        if self._remaining is None:
            return
        self._reserved -= taken
        self._remaining += taken - used
        if self._remaining == 0 and self._reserved == 0:
            self._stop.set()

    @staticmethod
    def _sampling(
        dataset: Dataset, settings: ProfileSettings, rng: random.Random
    ) -> tuple[Sampler, EventBuilder]:
        sampler = Sampler(len(dataset), settings.min_records, settings.max_records, rng)
        builder = EventBuilder(
            dataset,
            id_mode=settings.id,
            # `shift` profiles run as a ProfileStream, never through here.
            timestamp_mode="now" if settings.timestamp == "now" else "keep",
            key_field=settings.key,
            rng=rng,
        )
        return sampler, builder

    async def _report(self, stop: asyncio.Event) -> None:
        windows: dict[str, RateWindow] = {}
        while not await sleep_or_stop(stop, self.config.stats_interval_s):
            now = self.clock()
            for name, running in self._running.items():
                s = self.stats[name]
                window = windows.setdefault(name, RateWindow(s.first_batch_at or now))
                shaped = running.settings.shapes_events
                self._log.info("profile_stats", **stats_line(s, window, now, shaped=shaped))


def _count(stats: ProfileStats, tally: str) -> None:
    if tally == LATE:
        stats.late += 1
    elif tally == REORDERED:
        stats.reordered += 1
    elif tally == DUPLICATE:
        stats.duplicates += 1
