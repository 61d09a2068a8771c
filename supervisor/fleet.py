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
from dataclasses import dataclass

import structlog

from supervisor.config import Config, ProfileSettings
from supervisor.dataset import Dataset
from supervisor.events import EventBuilder
from supervisor.logs import get_logger
from supervisor.pacing import Clock, Pacer, sleep_or_stop
from supervisor.sampling import Sampler
from supervisor.sink import DeliveryCallback, Headers, Sink
from supervisor.stats import ProfileStats, RateWindow


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    """How a crashing profile is restarted."""

    max_restarts: int = 5
    window_s: float = 60.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0


class Fleet:
    """Runs every profile of a config until `stop` is set."""

    def __init__(
        self,
        config: Config,
        dataset: Dataset,
        sink: Sink,
        *,
        clock: Clock = time.monotonic,
        restart_policy: RestartPolicy | None = None,
    ) -> None:
        self.config = config
        self.dataset = dataset
        self.sink = sink
        self.clock = clock
        self.restart_policy = restart_policy or RestartPolicy()
        self.stats = {name: ProfileStats(name) for name in config.profiles}
        self._reporters: dict[str, DeliveryCallback] = {
            name: sink.reporter(s) for name, s in self.stats.items()
        }
        self.crashed: list[str] = []
        self._log = get_logger()

    def topics(self) -> list[str]:
        """Every topic some profile writes to."""
        return sorted({p.topic or self.config.kafka.topic for p in self.config.profiles.values()})

    async def run(self, stop: asyncio.Event) -> None:
        """Run every profile until `stop` is set (or a profile exhausts its restarts, which sets
        it); return once every profile has stopped enqueueing. Delivery of what is still in
        flight is the sink's to finish (`KafkaSink.close`)."""
        async with asyncio.TaskGroup() as tg:
            for name, settings in self.config.profiles.items():
                tg.create_task(self._supervise(name, settings, stop), name=f"profile:{name}")
            reporter = tg.create_task(self._report(stop), name="stats")
            await stop.wait()
            reporter.cancel()

    async def _supervise(self, name: str, settings: ProfileSettings, stop: asyncio.Event) -> None:
        structlog.contextvars.bind_contextvars(profile=name)
        policy = self.restart_policy
        stats = self.stats[name]
        crashes: deque[float] = deque()
        while True:
            try:
                await self._run_profile(name, settings, stats, stop)
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
                    stop.set()
                    return
                backoff = min(
                    policy.backoff_max_s, policy.backoff_initial_s * 2 ** (len(crashes) - 1)
                )
                self._log.error("profile_crashed", restart_in_s=backoff, exc_info=True)
                if await sleep_or_stop(stop, backoff):
                    return
                stats.restarts += 1
                self._log.info("profile_restarted", restarts=stats.restarts)

    async def _run_profile(
        self, name: str, settings: ProfileSettings, stats: ProfileStats, stop: asyncio.Event
    ) -> None:
        clock = self.clock
        sink = self.sink
        produce = sink.produce
        rng = random.Random(settings.seed)
        sampler = Sampler(len(self.dataset), settings.min_records, settings.max_records, rng)
        builder = EventBuilder(
            self.dataset,
            id_mode=settings.id,
            timestamp_mode=settings.timestamp,
            key_field=settings.key,
            rng=rng,
        )
        topic = settings.topic or self.config.kafka.topic
        headers: Headers = [("profile", name.encode())]
        on_delivery = self._reporters[name]
        pacer = Pacer(settings.interval_s, clock=clock)
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
        )
        try:
            while True:
                delay = pacer.delay()
                if delay > 0:
                    if await sleep_or_stop(stop, delay):
                        return
                elif stop.is_set():
                    return
                else:
                    await asyncio.sleep(0)  # due already: still let the other profiles run
                lateness, behind = pacer.tick()
                stats.lateness.observe(lateness)
                if stats.first_batch_at is None:
                    stats.first_batch_at = clock()
                values, keys = builder.build(sampler.draw())
                sent = size = 0
                try:
                    for j, value in enumerate(values):
                        key = None if keys is None else keys[j]
                        while True:
                            try:
                                produce(topic, value, key, headers, on_delivery)
                                break
                            except BufferError:  # librdkafka's queue is full: backpressure
                                await sink.wait_for_space(stop)
                                if stop.is_set():
                                    return
                        sent += 1
                        size += len(value)
                finally:
                    stats.produced += sent
                    stats.bytes += size
                    stats.batches += 1
                if behind:
                    stats.behind_schedule += 1
        finally:
            stats.stopped_at = clock()

    async def _report(self, stop: asyncio.Event) -> None:
        interval = self.config.stats_interval_s
        windows = {name: RateWindow(self.clock()) for name in self.stats}
        while not await sleep_or_stop(stop, interval):
            now = self.clock()
            for name, s in self.stats.items():
                self._log.info(
                    "profile_stats",
                    profile=name,
                    batches=s.batches,
                    produced=s.produced,
                    delivered=s.delivered,
                    failed=s.failed,
                    in_flight=s.in_flight,
                    behind_schedule=s.behind_schedule,
                    **windows[name].advance(s, now),
                    latency_p50_ms=_ms(s.latency.quantile(0.5)),
                    latency_p99_ms=_ms(s.latency.quantile(0.99)),
                )


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)
