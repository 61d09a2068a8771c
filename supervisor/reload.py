"""Live reload of the config file, on SIGHUP and (with `reload: watch`) when its content changes.

A reload re-reads and validates the whole file first; a file that fails validation, a dataset that
fails to load, or a change that cannot be applied live (the Kafka connection settings) is refused
with one log line and the running fleet keeps its current config. Otherwise `Fleet.apply` starts
added profiles, drains removed ones, restarts changed ones and leaves unchanged ones on their
schedule; the dataset is reloaded only when its settings changed.

Watching polls a digest of the file's content once a second rather than using inotify: content
polling sees every way a file gets replaced (editors' rename-over saves, Kubernetes ConfigMap
symlink swaps, bind mounts from the host) and costs one small read per second. New content is
applied once two checks in a row see it, so a save caught half written is not read (and refused)
before it is whole: a change takes one to two seconds to apply.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from pathlib import Path

from supervisor.config import Config
from supervisor.dataset import Dataset
from supervisor.errors import SupervisorError
from supervisor.fleet import Fleet, ReloadPlan
from supervisor.lifecycle import Stopped, in_thread
from supervisor.profile.feasibility import check_scenarios
from supervisor.telemetry.logs import get_logger

WATCH_EVERY_S = 1.0

_RESTART_ONLY: tuple[tuple[str, Callable[[Config], object]], ...] = (
    # The producer's connection, the bound metrics endpoint, and the instance id already in
    # every log line, header and metric are set up once, at start.
    ("kafka.bootstrap_servers or kafka.config", lambda c: c.kafka.producer_config()),
    ("metrics", lambda c: c.metrics),
    ("instance_id", lambda c: c.instance),
    ("shard", lambda c: c.shard),
    ("schema_registry", lambda c: c.schema_registry),
)


def _digest(path: Path) -> bytes | None:
    try:
        return hashlib.sha256(path.read_bytes()).digest()
    except OSError:  # mid-replacement, or gone for a moment
        return None


class Reloader:
    """Applies the config file at `path` to a running `fleet` whenever asked to."""

    def __init__(
        self,
        path: Path,
        fleet: Fleet,
        *,
        load: Callable[[Config], Awaitable[Dataset]],
    ) -> None:
        self.path = path
        self.fleet = fleet
        self.current = fleet.config
        self._load = load
        self._log = get_logger()
        self._digest = _digest(path)
        self._settling: bytes | None = None
        """Content seen changed at the last check, applied if the next check sees it again."""

    async def run(self, trigger: asyncio.Event, stop: asyncio.Event) -> None:
        """Reload each time `trigger` is set (SIGHUP), and on content changes when the current
        config says `reload: watch`; return when `stop` is set."""
        while not stop.is_set():
            watching = self.current.reload == "watch"
            waiters = [asyncio.ensure_future(trigger.wait()), asyncio.ensure_future(stop.wait())]
            try:
                await asyncio.wait(
                    waiters,
                    timeout=WATCH_EVERY_S if watching else None,
                    return_when=asyncio.FIRST_COMPLETED,
                )
            finally:
                for waiter in waiters:
                    waiter.cancel()
            if stop.is_set():
                return
            if trigger.is_set():
                trigger.clear()
                await self.reload(stop, reason="signal")
            elif watching:
                try:
                    digest = await in_thread(_digest, self.path, stop=stop, name="reload-watch")
                except Stopped:
                    return
                if digest is None or digest == self._digest:
                    self._settling = None
                elif digest == self._settling:  # the same new content a whole check later
                    await self.reload(stop, reason="file_changed")
                else:  # changed, maybe half written: applied once it holds still for a check
                    self._settling = digest

    async def reload(self, stop: asyncio.Event, *, reason: str) -> ReloadPlan | None:
        """Re-read the file and apply it; None when refused (or stopping meanwhile). Whatever goes
        wrong before the new config is applied is a refusal: the fleet keeps its current one."""
        self._settling = None
        try:
            return await self._reload(stop, reason)
        except Stopped:
            return None
        except SupervisorError as exc:
            self._refuse(reason, str(exc))
        except Exception as exc:  # noqa: BLE001 - a bad edit must never stop the daemon
            self._refuse(reason, f"{type(exc).__name__}: {_clip(str(exc))}")
        return None

    async def _reload(self, stop: asyncio.Event, reason: str) -> ReloadPlan | None:
        # On threads of their own: the path may be a pipe nobody writes to, which a stop must
        # still be able to leave behind.
        self._digest = await in_thread(_digest, self.path, stop=stop, name="reload-read")
        new = await in_thread(Config.from_yaml, self.path, stop=stop, name="reload-read")
        old = self.current
        changed = [name for name, read in _RESTART_ONLY if read(new) != read(old)]
        if changed:
            self._refuse(
                reason,
                f"{', '.join(changed)} changed: restart the process to apply"
                " (kafka.topic, profiles, the dataset and the rest reload live)",
            )
            return None
        dataset: Dataset | None = None
        if new.dataset != old.dataset:
            dataset = await self._load(new)
        check_scenarios(new, dataset or self.fleet.dataset)
        # A new format or topic registers its schema, a new dataset is serialized for the
        # formats in use: off the event loop, before anything changes.
        await in_thread(
            self.fleet.encodings.prepare,
            new,
            dataset or self.fleet.dataset,
            stop=stop,
            name="registry",
        )
        if stop.is_set():
            return None
        plan = await self.fleet.apply(new, dataset)
        self.current = new
        self._log.info(
            "config_reloaded",
            reason=reason,
            path=str(self.path),
            added=list(plan.added),
            removed=list(plan.removed),
            changed=list(plan.changed),
            unchanged=list(plan.unchanged),
            dataset_reloaded=plan.dataset_replaced,
        )
        return plan

    def _refuse(self, reason: str, error: str) -> None:
        self._log.error(
            "config_reload_refused",
            reason=reason,
            path=str(self.path),
            error=error,
            note="the fleet keeps running with its current config",
        )


def _clip(text: str, limit: int = 300) -> str:
    """One line of at most `limit` characters (a huge object must not flood the log)."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"
