"""The join of what the run sent with the detector's alerts, and the scores.

An alert names a transaction id (and carries a time: its Kafka timestamp). Against the events
sent, each alert is exactly one of:

- **true**: the first alert on a fraud event, within `timeout_s` of its sent time; the event is
  *detected*, and so is its occurrence (an attack is caught when any of its events is);
- **late**: the first alert on a fraud event, after `timeout_s`: not a detection;
- **false**: the first alert on a legitimate event this run sent;
- **duplicate**: another alert on an event already alerted;
- **unknown**: an id this run never sent (or sent longer ago than `2 * timeout_s`: forgotten).

Precision is true / (true + false); recall is detected / fraud events sent. Time to detect is the
alert's time minus the event's sent time (`SentLog`), over true alerts.

Bounded memory: an event is remembered (its id and sent time, ~130 bytes) for `2 * timeout_s` after
it was sent (to the next `GENERATION_MS`), which is how long a late alert is still told apart from
an unknown one; the fraud events' scenario and occurrence, and the ids already alerted, expire with
it. Counts are kept,
never the events. Times to detect are kept exactly up to `SAMPLES` per scenario, then sampled
(reservoir), so percentiles stay exact on any run a test makes and approximate on a long one.

Not thread-safe: the evaluation's thread calls everything under its lock.
"""

from __future__ import annotations

import math
import random
from collections import deque
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any, Final

from supervisor.evaluation.ledger import SentBatch

SAMPLES: Final = 100_000
"""Times to detect kept exactly per scenario before sampling."""
TTD_BUCKETS_S: Final = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, math.inf)
"""Bounds of the time-to-detect histogram in the metrics (seconds)."""
GENERATION_MS: Final = 250
"""The span of one slice of the index of sent events: what expiry drops at once."""
UNKNOWN_GRACE_MS: Final = 2000
"""An alert naming an id not (yet) known waits this long for the batch that sent it to be indexed
(the detector can read a message before its batch's send has returned) before it is unknown."""


@dataclass(slots=True)
class ScenarioScore:
    """The counts of one scenario kind."""

    events: int = 0
    detected: int = 0
    occurrences: int = 0
    occurrences_detected: int = 0
    ttd_ms: list[int] = field(default_factory=list)
    ttd_seen: int = 0
    ttd_max_ms: int | None = None
    ttd_buckets: list[int] = field(default_factory=lambda: [0] * len(TTD_BUCKETS_S))
    ttd_sum_s: float = 0.0

    def observe(self, ttd_ms: int, rng: random.Random) -> None:
        self.ttd_seen += 1
        if len(self.ttd_ms) < SAMPLES:
            self.ttd_ms.append(ttd_ms)
        else:
            slot = rng.randrange(self.ttd_seen)
            if slot < SAMPLES:
                self.ttd_ms[slot] = ttd_ms
        if self.ttd_max_ms is None or ttd_ms > self.ttd_max_ms:
            self.ttd_max_ms = ttd_ms
        seconds = ttd_ms / 1000
        self.ttd_sum_s += seconds
        for i, bound in enumerate(TTD_BUCKETS_S):
            if seconds <= bound:
                self.ttd_buckets[i] += 1
                break

    def as_dict(self) -> dict[str, Any]:
        ordered = sorted(self.ttd_ms)
        return {
            "events": self.events,
            "detected": self.detected,
            "recall": _ratio(self.detected, self.events),
            "occurrences": self.occurrences,
            "occurrences_detected": self.occurrences_detected,
            "time_to_detect_ms": {
                "p50": _nearest_rank(ordered, 0.50),
                "p95": _nearest_rank(ordered, 0.95),
                "max": self.ttd_max_ms,
            },
        }


class Scorer:
    """Sent events and alerts, joined (see the module docstring)."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_ms = round(timeout_s * 1000)
        self._keep_ms = 2 * self.timeout_ms
        self._generations: deque[tuple[int, dict[bytes, int]]] = deque()
        """(start ms, id -> sent ms) of the events sent in each slice of `GENERATION_MS`, oldest
        first: indexing is one C-level `dict.update` per batch, expiry drops whole slices, and a
        lookup tries every slice (oldest first: an id sent twice is timed from its first send)."""
        self._fraud: dict[bytes, tuple[str, bytes]] = {}
        self._fraud_order: deque[tuple[int, bytes]] = deque()
        self._occurrences: dict[bytes, list[Any]] = {}
        """occurrence id -> [kind, latest sent ms, detected]."""
        self._alerted: dict[bytes, int] = {}
        """id -> sent ms of the events already alerted."""
        self._waiting: deque[tuple[int, bytes, int]] = deque()
        """(received ms, id, alert ms) of alerts naming an id not known yet."""
        self.scenarios: dict[str, ScenarioScore] = {}
        self.events = 0
        self.alerts = 0
        self.true_alerts = 0
        self.false_alerts = 0
        self.late_alerts = 0
        self.duplicate_alerts = 0
        self.unknown_alerts = 0
        self.unreadable_alerts = 0
        """Alerts without a usable id (not JSON, no such field): counted among `alerts` only."""
        self._rng = random.Random(0)

    # -- what was sent ----------------------------------------------------------------------------

    def index(self, batches: list[SentBatch]) -> None:
        """Know the events of `batches` (from `SentLog.take`)."""
        generations = self._generations
        for batch in batches:
            at = batch.at_ms
            if not generations or at - generations[-1][0] >= GENERATION_MS:
                generations.append((at, {}))
            generations[-1][1].update(zip(batch.ids, repeat(at)))
            self.events += len(batch.ids)
            for fraud in batch.fraud:
                self._fraud[fraud.id] = (fraud.kind, fraud.occurrence)
                self._fraud_order.append((at, fraud.id))
                score = self._score(fraud.kind)
                score.events += 1
                occurrence = self._occurrences.get(fraud.occurrence)
                if occurrence is None:
                    self._occurrences[fraud.occurrence] = [fraud.kind, at, False]
                    score.occurrences += 1
                else:
                    occurrence[1] = at

    def _sent_ms(self, id_: bytes) -> int | None:
        for _, generation in self._generations:
            at = generation.get(id_)
            if at is not None:
                return at
        return None

    def expire(self, now_ms: int) -> None:
        """Forget the events sent more than 2 * timeout_s before `now_ms` (a slice at a time)."""
        horizon = now_ms - self._keep_ms
        generations = self._generations
        dropped = False
        while len(generations) > 1 and generations[1][0] <= horizon:
            generations.popleft()
            dropped = True
        if not dropped:
            return
        oldest = generations[0][0] if generations else now_ms
        fraud, order = self._fraud, self._fraud_order
        while order and order[0][0] < oldest:
            fraud.pop(order.popleft()[1], None)
        self._alerted = {i: at for i, at in self._alerted.items() if at >= oldest}
        stale = [o for o, (_, last, _) in self._occurrences.items() if last < oldest]
        for occurrence in stale:
            del self._occurrences[occurrence]

    # -- alerts -----------------------------------------------------------------------------------

    def alert(self, id_: bytes | None, alert_ms: int, received_ms: int) -> None:
        """One alert naming `id_` (None: it names nothing readable), stamped `alert_ms`."""
        self.alerts += 1
        if id_ is None:
            self.unreadable_alerts += 1
            return
        sent_ms = self._sent_ms(id_)
        if sent_ms is None:
            self._waiting.append((received_ms, id_, alert_ms))
            return
        self._judge(id_, sent_ms, alert_ms)

    def settle(self, now_ms: int | None = None) -> None:
        """Judge the alerts waiting for their id to be known: now known, or waited long enough
        (every one of them when `now_ms` is None: the run is over)."""
        waiting = self._waiting
        kept: deque[tuple[int, bytes, int]] = deque()
        while waiting:
            received, id_, alert_ms = waiting.popleft()
            sent_ms = self._sent_ms(id_)
            if sent_ms is not None:
                self._judge(id_, sent_ms, alert_ms)
            elif now_ms is None or now_ms - received >= UNKNOWN_GRACE_MS:
                self.unknown_alerts += 1
            else:
                kept.append((received, id_, alert_ms))
        self._waiting = kept

    def _judge(self, id_: bytes, sent_ms: int, alert_ms: int) -> None:
        if id_ in self._alerted:
            self.duplicate_alerts += 1
            return
        self._alerted[id_] = sent_ms
        fraud = self._fraud.get(id_)
        if fraud is None:
            self.false_alerts += 1
            return
        kind, occurrence_id = fraud
        ttd = alert_ms - sent_ms
        if ttd > self.timeout_ms:
            self.late_alerts += 1
            return
        self.true_alerts += 1
        score = self.scenarios[kind]
        score.detected += 1
        score.observe(max(0, ttd), self._rng)
        occurrence = self._occurrences.get(occurrence_id)
        if occurrence is not None and not occurrence[2]:
            occurrence[2] = True
            score.occurrences_detected += 1

    def _score(self, kind: str) -> ScenarioScore:
        score = self.scenarios.get(kind)
        if score is None:
            score = self.scenarios[kind] = ScenarioScore()
        return score

    # -- reading ----------------------------------------------------------------------------------

    @property
    def remembered(self) -> int:
        """Events currently remembered (for the memory bound's tests and the stats line)."""
        return sum(len(generation) for _, generation in self._generations)

    def snapshot(self) -> dict[str, Any]:
        """The summary's `evaluation` entry."""
        fraud_events = sum(s.events for s in self.scenarios.values())
        detected = sum(s.detected for s in self.scenarios.values())
        return {
            "timeout_s": self.timeout_ms / 1000,
            "events": self.events,
            "fraud_events": fraud_events,
            "alerts": self.alerts,
            "true_alerts": self.true_alerts,
            "false_alerts": self.false_alerts,
            "late_alerts": self.late_alerts,
            "duplicate_alerts": self.duplicate_alerts,
            "unknown_alerts": self.unknown_alerts,
            "unreadable_alerts": self.unreadable_alerts,
            "precision": _ratio(self.true_alerts, self.true_alerts + self.false_alerts),
            "recall": _ratio(detected, fraud_events),
            "scenarios": {k: s.as_dict() for k, s in sorted(self.scenarios.items())},
        }


def _ratio(part: int, whole: int) -> float | None:
    return None if whole == 0 else round(part / whole, 6)


def _nearest_rank(ordered: list[int], q: float) -> int | None:
    """The nearest-rank percentile: the smallest value with at least q of them at or below it."""
    if not ordered:
        return None
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]
