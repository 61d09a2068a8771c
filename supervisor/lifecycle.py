"""Stopping: the one shutdown budget, and a sleep that a stop cuts short.

A stop runs in stages: profiles stop scheduling, shaped profiles send what they already decided
to send (held-back events, duplicates, fraud events, labels), then the sink flushes what is in
flight. `shutdown_timeout_s` bounds all of them together, not each: `ShutdownBudget` is made once
per run (`supervisor.app.serve`), starts counting at the first stop request, and every stage waits
on the same `over` event, set when the deadline passes or at once when a second signal forces the
stop. What is not out by then is accounted for as undelivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

Clock = Callable[[], float]
_T = TypeVar("_T")


_BLOCKING = "blocking:"
"""The name prefix of `in_thread`'s threads."""


def blocking_work_left() -> bool:
    """Whether blocking work a stop left behind (`in_thread`) still runs: then the process must
    leave without the interpreter's shutdown, which would stop that daemon thread in the middle of
    whatever lock it holds (a TLS or resolver call) and abort."""
    return any(
        t.daemon and t.is_alive() and t.name.startswith(_BLOCKING) for t in threading.enumerate()
    )


class Stopped(Exception):
    """A stop was asked for while blocking work ran (`in_thread`): the work was abandoned."""


async def in_thread(fn: Callable[..., _T], *args: Any, stop: asyncio.Event, name: str) -> _T:
    """`fn(*args)` on a daemon thread of its own, for blocking work that may never end (a dataset
    that is a pipe nobody writes to, an S3 endpoint that accepts connections and never answers).
    Raises `Stopped` as soon as `stop` is set first: the thread is abandoned, and being a daemon it
    never holds the process at exit (asyncio's executor threads would)."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[_T] = loop.create_future()

    def settle(result: _T | None, exc: BaseException | None) -> None:
        if done.done():  # abandoned
            return
        if exc is None:
            done.set_result(result)  # type: ignore[arg-type]
        else:
            done.set_exception(exc)

    def work() -> None:
        result: _T | None = None
        error: BaseException | None = None
        try:
            result = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
            error = exc
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits any more
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=work, name=f"{_BLOCKING}{name}", daemon=True).start()
    stopped: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({done, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
    if done.done():
        return done.result()
    done.cancel()
    raise Stopped


async def sleep_or_stop(stop: asyncio.Event, delay_s: float) -> bool:
    """Sleep up to `delay_s` (`math.inf`: until stopped), returning early (True) as soon as `stop`
    is set."""
    if stop.is_set():
        return True
    if delay_s == math.inf:
        # Not asyncio.timeout(inf): that would hand the event loop a timer at an infinite time,
        # which works today with asyncio and uvloop alike but is nowhere promised.
        await stop.wait()
        return True
    try:
        async with asyncio.timeout(delay_s):
            await stop.wait()
    except TimeoutError:
        return stop.is_set()
    return True


async def first_of(*events: asyncio.Event, timeout_s: float | None = None) -> None:
    """Return when any of `events` is set, or after `timeout_s`."""
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


class ShutdownBudget:
    """`timeout_s` for the whole stop, from the moment it begins, and the force that ends it early.

    Wrap the run in `watching(stop)`: it begins the budget when `stop` is set (or when a stage
    calls `begin()` itself), then sets `over` at the deadline or as soon as `force` is set. Stages
    wait on `over`; `remaining_s()` and `deadline` bound blocking work (the sink's flush on its
    own thread).
    """

    def __init__(
        self, timeout_s: float, *, force: asyncio.Event, clock: Clock = time.monotonic
    ) -> None:
        self.timeout_s = timeout_s
        self.force = force
        self.over = asyncio.Event()
        """Set when the budget is spent or the stop was forced: every stage stops at once."""
        self._clock = clock
        self._begun = asyncio.Event()
        self._finished = asyncio.Event()
        self.deadline = math.inf
        """Monotonic time the budget runs out (inf until it begins)."""
        self._children: list[ShutdownBudget] = []

    def begin(self) -> None:
        """Start counting (idempotent): the stop must be over within `timeout_s` from now."""
        if not self._begun.is_set():
            self.deadline = self._clock() + self.timeout_s
            self._begun.set()

    def remaining_s(self) -> float:
        """Seconds left: all of `timeout_s` before the stop begins, 0 once it is over."""
        if self.over.is_set():
            return 0.0
        if not self._begun.is_set():
            return self.timeout_s
        return max(0.0, self.deadline - self._clock())

    def finish(self) -> None:
        """The run is done: end `watch`."""
        self._finished.set()

    @contextlib.asynccontextmanager
    async def watching(self, stop: asyncio.Event) -> AsyncIterator[ShutdownBudget]:
        """Watch the budget (`watch(stop)`) for as long as the block runs; the watch is finished
        and awaited on the way out, and an exception from the block propagates unchanged."""
        task = asyncio.create_task(self.watch(stop), name="shutdown-budget")
        try:
            yield self
        finally:
            self.finish()
            await task

    async def watch(self, stop: asyncio.Event) -> None:
        """Begin when `stop` is set; set `over` at the deadline or on `force`; end at `finish`."""
        await first_of(stop, self._begun, self._finished)
        if self._finished.is_set():
            return
        self.begin()
        await first_of(self.force, self._finished, timeout_s=self.remaining_s())
        if self.force.is_set() or not self._finished.is_set():
            self._expire()

    def limited(self, timeout_s: float) -> ShutdownBudget:
        """A budget begun now for a stop that is not the run's (a profile a reload removes): over
        after `timeout_s`, or with this one (a forced stop ends it too)."""
        child = ShutdownBudget(timeout_s, force=self.force, clock=self._clock)
        child.begin()
        if self.over.is_set():
            child.over.set()
            return child
        asyncio.get_running_loop().call_later(timeout_s, child.over.set)
        self._children = [c for c in self._children if not c.over.is_set()]
        self._children.append(child)
        return child

    def _expire(self) -> None:
        self.over.set()
        for child in self._children:
            child.over.set()
        self._children.clear()
