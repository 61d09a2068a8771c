"""The fleet: one supervised task per profile, all in one TaskGroup, sharing one dataset and sink.

Each profile is run by a `ProfileRunner` (supervisor.profile.runner). The fleet supervises them:
a profile that raises is logged and restarted with exponential backoff, up to
`RestartPolicy.max_restarts` within `window_s`; past that the whole fleet stops gracefully and
`Fleet.crashed` names the profile (the CLI exits non-zero). Other profiles keep running while one
backs off. `apply` changes the set of profiles live (a reload); the fleet logs each profile's
counters every `stats_interval_s`.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass

import structlog

from supervisor.config import Config, ProfileSettings
from supervisor.dataset import Dataset
from supervisor.evaluation.ledger import SentLog
from supervisor.formats.encodings import Encodings
from supervisor.lifecycle import Clock, ShutdownBudget, sleep_or_stop
from supervisor.profile.runner import ProfileRunner
from supervisor.sinks.contract import Sink
from supervisor.sinks.sender import MessageBudget, Sender
from supervisor.telemetry.logs import get_logger
from supervisor.telemetry.stats import DeliveryStats, ProfileStats, RateWindow, stats_line

LATENCY_SAMPLES_PER_S = 1000
"""Delivery latencies observed per second and profile, at most (see `DeliveryStats`)."""


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

    @staticmethod
    def between(old: Config, new: Config, *, dataset_replaced: bool) -> ReloadPlan:
        before = {name: (p, _topic(p, old)) for name, p in old.profiles.items()}
        after = {name: (p, _topic(p, new)) for name, p in new.profiles.items()}
        return ReloadPlan(
            added=tuple(n for n in after if n not in before),
            removed=tuple(n for n in before if n not in after),
            changed=tuple(n for n in after if n in before and after[n] != before[n]),
            unchanged=tuple(n for n in after if n in before and after[n] == before[n]),
            dataset_replaced=dataset_replaced,
        )


def _topic(settings: ProfileSettings, config: Config) -> str:
    return settings.topic or config.kafka.topic


@dataclass(slots=True)
class _Running:
    runner: ProfileRunner
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
        sent_log: SentLog | None = None,
        encodings: Encodings | None = None,
    ) -> None:
        """`sent_log`: where profiles record what they send, when the run is evaluated.
        `encodings`: the wires of non-JSON profiles, prepared for `config` and `dataset` (and
        again before each `apply`); None: every profile sends JSON."""
        self.config = config
        self.encodings = encodings or Encodings(None)
        self._sent_log = sent_log
        self.dataset = dataset
        self.clock = clock
        self.restart_policy = restart_policy or RestartPolicy()
        self._stop = asyncio.Event()
        self._sender = Sender(sink, MessageBudget(max_messages, on_spent=self._spent), clock=clock)
        self.stats: dict[str, ProfileStats] = {}
        """Every profile that ran in this process, including ones a reload removed."""
        self.crashed: list[str] = []
        for name, settings in config.profiles.items():  # in the summary even if never started
            self._stats_of(name, settings)
        self._running: dict[str, _Running] = {}
        self._tg: asyncio.TaskGroup | None = None
        self._budget: ShutdownBudget | None = None
        self._log = get_logger()

    def topics(self) -> list[str]:
        """Every topic some profile writes to, labels topics included."""
        return self.config.topics()

    async def run(self, stop: asyncio.Event, budget: ShutdownBudget | None = None) -> None:
        """Run every profile until `stop` is set (or a profile exhausts its restarts, or
        `max_messages` are sent, which set it); return once every profile has stopped, shaped
        profiles having sent what they scheduled within `budget` (the run's shutdown budget;
        without one the fleet keeps its own of `shutdown_timeout_s`). Delivery of what is
        still in flight is the sink's to finish."""
        self._stop = stop
        if budget is None:
            budget = ShutdownBudget(self.config.shutdown_timeout_s, force=asyncio.Event())
            async with budget.watching(stop):
                await self.run(stop, budget)
            return
        self._budget = budget
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
        plan = ReloadPlan.between(self.config, config, dataset_replaced=dataset is not None)
        if dataset is not None:
            self.dataset = dataset
            for name in plan.unchanged:
                settings = config.profiles[name]
                wire = self.encodings.wire(settings, _topic(settings, config), dataset)
                self._running[name].runner.use(dataset, wire)
        stopping = [self._running.pop(n) for n in (*plan.removed, *plan.changed)]
        for running in stopping:
            running.halt.set()
        await asyncio.gather(*(r.task for r in stopping))
        self.config = config
        for name in (*plan.changed, *plan.added):
            self._start(name, config.profiles[name], config)
        return plan

    def _spent(self) -> None:
        """`max_messages` are all sent: the run is over."""
        self._stop.set()

    def _drain_budget(self) -> ShutdownBudget:
        """The budget a stopping profile drains within: the run's when the fleet stops, one of
        its own (of `shutdown_timeout_s`) when a reload stops it."""
        assert self._budget is not None
        if self._stop.is_set():
            return self._budget
        return self._budget.limited(self.config.shutdown_timeout_s)

    def _stats_of(self, name: str, settings: ProfileSettings) -> ProfileStats:
        stats = self.stats.get(name)
        if stats is None:
            stats = self.stats[name] = ProfileStats(name)
        # Observing a latency costs about 0.3 µs a message on the delivery thread, which competes
        # with the producing one for the GIL: above 1,000 msg/s a sample is as informative.
        stats.latency_every = max(1, round(settings.records_per_s / LATENCY_SAMPLES_PER_S))
        if settings.labels is not None and stats.labels is None:
            stats.labels = DeliveryStats(name)
        return stats

    def _start(self, name: str, settings: ProfileSettings, config: Config) -> None:
        assert self._tg is not None
        halt = asyncio.Event()
        stats = self._stats_of(name, settings)
        if stats.delivered == 0 and stats.on_first_delivery is None:
            loop = asyncio.get_running_loop()

            def announce(stats: ProfileStats = stats) -> None:  # on the delivery thread
                loop.call_soon_threadsafe(self._first_delivered, stats)

            stats.on_first_delivery = announce
        runner = ProfileRunner(
            name,
            settings,
            _topic(settings, config),
            self.dataset,
            sender=self._sender,
            stats=stats,
            instance=config.instance,
            fleet_stop=self._stop,
            drain_budget=self._drain_budget,
            clock=self.clock,
            sent_log=self._sent_log,
            shard=config.shard.split,
            wire=self.encodings.wire(settings, _topic(settings, config), self.dataset),
        )
        task = self._tg.create_task(self._supervise(runner, halt), name=f"profile:{name}")
        self._running[name] = _Running(runner, halt, task)

    async def _supervise(self, runner: ProfileRunner, halt: asyncio.Event) -> None:
        structlog.contextvars.bind_contextvars(profile=runner.name)
        policy = self.restart_policy
        stats = runner.stats
        crashes: deque[float] = deque()
        while True:
            try:
                await runner.run(halt)
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
                    self.crashed.append(runner.name)
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

    def _first_delivered(self, stats: ProfileStats) -> None:
        """Log a profile's first acknowledged message: messages are flowing."""
        since = None if stats.first_batch_at is None else self.clock() - stats.first_batch_at
        latency = stats.latency.max
        self._log.info(
            "first_delivered",
            profile=stats.name,
            after_s=None if since is None else round(since, 3),
            latency_ms=round(latency * 1000, 2) if latency else None,
        )

    async def _report(self, stop: asyncio.Event) -> None:
        windows: dict[str, RateWindow] = {}
        while not await sleep_or_stop(stop, self.config.stats_interval_s):
            now = self.clock()
            for name, running in list(self._running.items()):
                stats = self.stats[name]
                window = windows.setdefault(name, RateWindow(stats.first_batch_at or now))
                shaped = running.runner.settings.shapes_events
                self._log.info("profile_stats", **stats_line(stats, window, now, shaped=shaped))
                # A line is tens of microseconds: 1,000 profiles' lines in one go held every
                # tick due meanwhile back by ~60 ms (the scale benchmark's median p99); the
                # profiles' ticks run between the lines instead.
                await asyncio.sleep(0)
