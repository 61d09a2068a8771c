"""A shaped stream's messages (`Outgoing`): what each is (late, reordered, duplicate, fraud, a
label), the headers and ground-truth label of a fraud event (`FraudTags`), and what is counted and
scheduled once the producer accepted them (`account`).
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable, Sequence
from typing import Final, NamedTuple

from supervisor.config import Labels
from supervisor.evaluation.ledger import FraudSent
from supervisor.formats.wire import Wire
from supervisor.profile.scenarios import Occurrence
from supervisor.sinks.contract import Headers
from supervisor.telemetry.stats import ProfileStats

LATE: Final = "late"
REORDERED: Final = "reordered"
DUPLICATE: Final = "duplicate"
LABEL: Final = "label"


class Outgoing(NamedTuple):
    """One message to produce, and the counters it adds to once the producer accepted it."""

    topic: str
    value: bytes
    key: bytes | None
    headers: Headers
    timestamp_ms: int
    """Kafka timestamp (Unix ms); 0 lets the producer stamp it."""
    tally: tuple[str, ...] = ()
    scenario: str | None = None
    """The scenario kind of a fraud event (counted in `fraud_events` once produced)."""
    occurrence: bytes | None = None
    """The occurrence id of a fraud event (an evaluated run records it: `FraudSent`), whatever
    headers the profile sends."""
    label: tuple[float, Outgoing] | None = None
    """The ground-truth label of a fraud event and the run time it is due: scheduled once the
    event itself was produced, so that no label ever names an event that was not sent."""


class FraudTags:
    """The headers of a fraud occurrence's events and the ground-truth label of each of them."""

    def __init__(
        self, labels: Labels | None, headers: Headers, rng: random.Random, *, tagged: bool
    ) -> None:
        """`tagged`: fraud events carry `fraud`, `scenario` and `scenario_id` headers after
        `headers`; otherwise `headers` alone, like every other message."""
        self._labels = labels
        self._base = headers
        self._tagged = tagged
        self._rng = rng
        self._by_occurrence: dict[bytes, Headers] = {}
        self.entity: str | None = None
        """The dataset's entity column: each label then names the event's (`entity`,
        `entity_id`)."""
        self.wire: Wire | None = None
        """What events and labels are written as (set by the stream's `use`)."""

    def headers(self, occurrence: Occurrence) -> Headers:
        if not self._tagged:
            return self._base
        headers = self._by_occurrence.get(occurrence.id)
        if headers is None:
            if len(self._by_occurrence) > 1024:  # occurrences are short-lived
                self._by_occurrence.clear()
            headers = self._by_occurrence[occurrence.id] = [
                *(self._base or ()),
                ("fraud", b"true"),
                ("scenario", occurrence.kind.encode()),
                ("scenario_id", occurrence.id),
            ]
        return headers

    def label(
        self,
        at_s: float,
        value: bytes,
        occurrence: Occurrence,
        entity_id: bytes | None,
        delay_s: float | None = None,
    ) -> tuple[float, Outgoing] | None:
        """The label of the fraud event `value` (of entity `entity_id`) due at run time `at_s`,
        and when it is due: `delay_s` after it, drawn here unless given (drawn already, in the
        tick's order)."""
        labels = self._labels
        if labels is None:
            return None
        wire = self.wire
        assert wire is not None
        event_id = wire.id_of(value)
        fields: dict[str, str | None] = {
            "id": event_id.decode(),
            "label": "fraud",
            "scenario": occurrence.kind,
            "scenario_id": occurrence.id.decode(),
        }
        if self.entity is not None:
            fields["entity"] = self.entity
            fields["entity_id"] = None if entity_id is None else entity_id.decode()
        label = wire.label(fields)
        delay = delay_s
        if delay is None:
            jitter = self._rng.uniform(0.0, labels.jitter_s) if labels.jitter_s else 0
            delay = labels.delay_s + jitter
        return at_s + delay, Outgoing(labels.topic, label, event_id, self._base, 0, (LABEL,))


def account(
    messages: Sequence[Outgoing],
    rejected: Sequence[int],
    stats: ProfileStats,
    special: Sequence[int] | None,
    fraud: list[FraudSent] | None,
    schedule: Callable[[float, Outgoing], None],
    id_of: Callable[[bytes], bytes],
) -> None:
    """`ProfileStream.produced`, apart from the class: its counting and label scheduling."""
    positions: Sequence[int] = range(len(messages)) if special is None else special
    for i in positions:
        if i >= len(messages):
            break
        if rejected and i in rejected:
            continue
        tally, scenario, occurrence, label = messages[i][5:]
        for kind in tally:
            if kind == LATE:
                stats.late += 1
            elif kind == REORDERED:
                stats.reordered += 1
            elif kind == DUPLICATE:
                stats.duplicates += 1
        if scenario is not None:
            stats.fraud_events[scenario] = stats.fraud_events.get(scenario, 0) + 1
            if fraud is not None:
                assert occurrence is not None
                fraud.append(FraudSent(id_of(messages[i].value), scenario, occurrence))
        if label is not None:
            schedule(*label)


class TimedQueue:
    """Messages scheduled on a profile's run clock, released in time order (ties in the order
    they were scheduled)."""

    def __init__(self) -> None:
        self._timed: list[tuple[float, int, Outgoing]] = []
        self._order = itertools.count()

    def next_due_s(self) -> float:
        """Run time of the earliest scheduled message (inf when none)."""
        return self._timed[0][0] if self._timed else float("inf")

    def due(self, upto_s: float) -> list[Outgoing]:
        """Remove and return, in order, the scheduled messages due at or before `upto_s`."""
        timed = self._timed
        out = []
        while timed and timed[0][0] <= upto_s:
            out.append(heapq.heappop(timed)[2])
        return out

    def pending(self) -> list[Outgoing]:
        """Remove and return every scheduled message (the profile is stopping: held-back events,
        duplicates, fraud events and labels all go out now rather than never)."""
        return self.due(float("inf"))

    def schedule(self, at_s: float, message: Outgoing) -> None:
        """Send `message` at run time `at_s` (after everything already due by then)."""
        heapq.heappush(self._timed, (at_s, next(self._order), message))
