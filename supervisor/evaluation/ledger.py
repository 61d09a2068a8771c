"""What the producing path records for the evaluation: per batch, not per message.

A send appends one entry to a `SentLog`: the batch's send time (Unix ms, read once), the ids of its
messages and, for the fraud events among them, their scenario and occurrence. The fast path hands
over the fresh ids it spliced into the values (`EventBuilder.build`), the very objects; a shaped
stream's are 36-byte slices at the fixed offset of the profile's wire format (the codec's for
JSON, `supervisor.formats.wire`).
Nothing is parsed or hashed on the event loop: the evaluation's thread takes the entries (`take`)
and indexes them off the producing path. `collections.deque` appends and pops are atomic, so the
two threads share it without a lock.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from supervisor.dataset.codec import ID_SPAN

_ID_START = ID_SPAN[0]


class FraudSent(NamedTuple):
    """One fraud event sent: its id, scenario kind and occurrence id."""

    id: bytes
    kind: str
    occurrence: bytes


class SentBatch(NamedTuple):
    at_ms: int
    """When the send loop began producing the batch (Unix ms): the events' sent time."""
    ids: list[bytes]
    fraud: Sequence[FraudSent]


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


class SentLog:
    """Batches sent, appended by the producing path and taken by the evaluation's thread."""

    __slots__ = ("_batches", "clock_ms", "last_ms")

    def __init__(self, clock_ms: Callable[[], int] = wall_ms) -> None:
        self._batches: deque[SentBatch] = deque()
        self.clock_ms = clock_ms
        """The send time of a batch: read once per batch by its sender."""
        self.last_ms = 0
        """Send time of the latest batch (0: none yet)."""

    def sent(
        self,
        values: Sequence[bytes],
        count: int,
        at_ms: int,
        fraud: Sequence[FraudSent] = (),
        id_start: int = _ID_START,
    ) -> None:
        """The first `count` of `values` were produced in a batch sent at `at_ms`; each value's
        id is the 36 bytes at `id_start` (the JSON layout's by default)."""
        if count == 0:
            return
        s, e = id_start, id_start + 36
        ids = [v[s:e] for v in values] if count == len(values) else [v[s:e] for v in values[:count]]
        self._batches.append(SentBatch(at_ms, ids, fraud))
        self.last_ms = at_ms

    def sent_ids(self, ids: list[bytes], count: int, at_ms: int) -> None:
        """`sent` for a batch whose ids the builder already holds (the fast path's fresh ids):
        the first `count` of `ids` were produced, kept as they are, nothing sliced."""
        if count == 0:
            return
        self._batches.append(SentBatch(at_ms, ids if count == len(ids) else ids[:count], ()))
        self.last_ms = at_ms

    def sent_messages(
        self,
        messages: Sequence[Sequence[Any]],
        count: int,
        at_ms: int,
        fraud: Sequence[FraudSent] = (),
        id_start: int = _ID_START,
    ) -> None:
        """`sent` for rows whose value is their second item (a shaped stream's `Outgoing`)."""
        if count == 0:
            return
        s, e = id_start, id_start + 36
        ids = [m[1][s:e] for m in messages] if count == len(messages) else None
        if ids is None:
            ids = [m[1][s:e] for m in messages[:count]]
        self._batches.append(SentBatch(at_ms, ids, fraud))
        self.last_ms = at_ms

    def take(self) -> list[SentBatch]:
        """Remove and return every batch recorded so far (the evaluation's thread)."""
        batches = self._batches
        out = []
        while batches:
            out.append(batches.popleft())
        return out
