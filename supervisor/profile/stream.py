"""What one profile sends when it shapes event time or injects labelled fraud.

A plain profile (sampling plus the id/timestamp rewrite) goes through the fleet's fast path. A
profile with any of `timestamp: shift`, `kafka_timestamp: event`, `late`, `out_of_order`,
`duplicates` or `scenario` is run by a `ProfileStream`, which turns each tick into the messages to
send now and keeps the ones due later in a timed queue: held-back (out-of-order) events, delayed
duplicates, the scheduled events of a fraud occurrence and the labels that follow fraud events.

Everything is decided on the profile's own RNG, in a fixed order, and timed on the profile's run
clock (seconds since its start, from the pacer's deadlines, never from when a tick happened to
run): with a `seed`, two runs emit the same sequence; only wall-clock timestamps differ.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from itertools import repeat

from supervisor.config import ProfileSettings
from supervisor.dataset import Dataset
from supervisor.dataset.codec import epoch_ms, iso_timestamp
from supervisor.errors import DatasetError
from supervisor.evaluation.ledger import FraudSent
from supervisor.formats.wire import JsonWire, Wire
from supervisor.profile.draws import draw, release
from supervisor.profile.events import fresh_uuids, id_slices
from supervisor.profile.outgoing import LATE, FraudTags, Outgoing, TimedQueue, account
from supervisor.profile.sampling import Sampler
from supervisor.profile.scenarios import Occurrence, ScenarioPlanner
from supervisor.sinks.contract import Headers
from supervisor.telemetry.stats import ProfileStats


class ProfileStream(TimedQueue):
    """The messages of one profile, tick by tick, and the ones it scheduled for later."""

    def __init__(
        self,
        name: str,
        settings: ProfileSettings,
        dataset: Dataset,
        rng: random.Random,
        *,
        topic: str,
        headers: Headers,
        wall_start_s: float,
        wall_clock: Callable[[], float] = time.time,
        wire: Wire | None = None,
    ) -> None:
        """`wire`: what the values (and labels) are written as; None: the dataset's JSON."""
        self.name = name
        self._settings = settings
        self._rng = rng
        self._topic = topic
        self._wall_start = wall_start_s
        self._wall_clock = wall_clock
        self._key = settings.key
        self._event_ts = settings.kafka_timestamp == "event"
        scenario = settings.scenario
        # `headers: all` says on each event of a fraud-injecting profile whether it is fraud;
        # `profile` and `none` send the profile's own headers (or none) on every message.
        tagged = scenario is not None and settings.headers == "all" and headers is not None
        plain: Headers = [*(headers or ()), ("fraud", b"false")] if tagged else headers
        self._plain_headers = plain
        self._tags = FraudTags(settings.labels, headers, rng, tagged=tagged)
        self.special: list[int] = []
        """Positions, in the last `tick`'s messages, of those late, duplicated or fraud: the only
        ones `produced` has anything to count or schedule for."""
        super().__init__()
        self.occurrences: dict[str, int] = {}
        """Occurrences started, by scenario kind (counted when planned)."""
        self.use(dataset, wire)

    def use(self, dataset: Dataset, wire: Wire | None = None) -> None:
        """Sample `dataset` (written as `wire`, None: its JSON) from the next tick on (a reload
        replaced it). Raises DatasetError when its rows cannot support the profile's scenario."""
        settings = self._settings
        self._dataset = dataset
        self._entity = self._tags.entity = dataset.entity
        # Each row's entity (its card) as text, for the labels: computed once per dataset.
        self._entity_ids = None if dataset.entity is None else dataset.key_column(dataset.entity)
        self._wire = wire = JsonWire(dataset) if wire is None else wire
        self._tags.wire = wire
        self.id_start = wire.id_start
        """Where each value's id starts (for the evaluation's ledger)."""
        needs_epochs = settings.timestamp != "now" and (
            settings.timestamp == "shift"
            or settings.late is not None
            or self._event_ts
            or settings.scenario is not None
        )
        self._epochs = dataset.epochs() if needs_epochs else None
        # Keys of the fields a tick leaves alone come from the dataset's column (computed once,
        # shared with the fast path), not from parsing each value.
        self._keys = None if settings.key is None else dataset.key_column(settings.key)
        self._shift = 0.0
        if settings.timestamp == "shift":
            # The dataset's latest moment becomes the run's start: every gap between records is
            # kept and every event time is in the past (brokers refuse timestamps too far in the
            # future: log.message.timestamp.after.max.ms is one hour by default since Kafka 4.0).
            assert self._epochs is not None
            self._shift = self._wall_start - max(self._epochs)
        self._sampler = Sampler(len(dataset), settings.min_records, settings.max_records, self._rng)
        self._planner: ScenarioPlanner | None = None
        if settings.scenario is not None:
            # Its own generator, seeded from the profile's: which occurrences happen never
            # depends on how they interleave with the ticks, which a wall-clock schedule moves.
            planner_rng = random.Random(self._rng.getrandbits(64))
            try:
                self._planner = ScenarioPlanner(settings.scenario, dataset, planner_rng)
            except DatasetError as exc:
                raise DatasetError(f"profiles.{self.name}.{exc}") from None

    def produced(
        self,
        messages: Sequence[Outgoing],
        rejected: Sequence[int],
        stats: ProfileStats,
        special: Sequence[int] | None = None,
        fraud: list[FraudSent] | None = None,
    ) -> None:
        """Account for `messages`, which the producer accepted (but the positions `rejected`):
        count what each is (late, reordered, duplicate, fraud) and schedule the label of each
        fraud event, now that the event itself is out. `special`, when given, lists the only
        positions that can carry any of that (`self.special` after a tick), so that a tick's
        plain events cost nothing here. `fraud`, when given (an evaluated run), gets each fraud
        event produced."""
        account(messages, rejected, stats, special, fraud, self.schedule, self._wire.id_of)

    # -- one tick -------------------------------------------------------------------------------

    def tick(self, at_s: float) -> list[Outgoing]:
        """The batch due at run time `at_s`, as messages to send now; schedules the rest.

        Built a batch at a time, as the fast path builds its batches: a message's random draws
        (late, its label's jitter, out of order, duplicate) are taken first, in the order one
        message at a time would take them, then the values, keys and Kafka timestamps of the whole
        batch in comprehensions, and only the few late, fraud, held-back or duplicated messages
        one by one. A seed's sequence is the same, byte for byte, as when every message was built
        in turn (tests/unit/test_stream.py's golden streams)."""
        settings = self._settings
        rng = self._rng
        now_s = self._wall_clock()
        rows = self._sampler.draw()
        n = len(rows)
        plan = self._planner.tick(at_s, n) if self._planner is not None else None
        for occurrence in plan.started if plan is not None else ():
            # A tick running late (a saturated profile) moves its occurrences' event times along:
            # fraud events are never stamped older than the traffic around them.
            self._start(occurrence, max(0.0, now_s - (self._wall_start + at_s)))
        replaced = plan.replaced if plan is not None else {}
        fresh = settings.id == "fresh"
        ids = fresh_uuids(rng, n if fresh else len(replaced))
        fresh_ids = id_slices(ids, n) if fresh else None
        draws = draw(settings, rng, at_s, n, replaced)
        late = draws.late
        if replaced:
            rows = list(rows)
            for j, (row, _) in replaced.items():
                rows[j] = row

        # The whole batch, as if nothing were late or fraud.
        wire, epochs, offset = self._wire, self._epochs, self._shift
        now = settings.timestamp == "now"
        now_text = iso_timestamp(now_s) if now else None
        texts: list[bytes] | None = None  # each message's timestamp text (shift)
        if settings.timestamp == "shift":
            assert epochs is not None
            texts = [iso_timestamp(epochs[r] + offset) for r in rows]
            new_ids: Sequence[bytes | None] = [None] * n if fresh_ids is None else fresh_ids
            splice = wire.splice
            built = [splice(r, i, t) for r, i, t in zip(rows, new_ids, texts, strict=True)]
        else:
            built = wire.splice_batch(rows, fresh_ids, now_text)
        event_ts = self._event_ts
        stamps: list[int] | None = None  # Kafka timestamps; None: 0 for every message
        if event_ts:
            if now:
                stamps = [epoch_ms(now_s)] * n
            else:
                assert epochs is not None
                stamps = [epoch_ms(epochs[r] + offset) for r in rows]
        key_field, keys = self._key, self._keys
        keyed: list[bytes | None] | None = None
        if keys is not None:
            if key_field == "id" and fresh_ids is not None:
                keyed = list(fresh_ids)
            elif key_field == "timestamp" and (now_text is not None or texts is not None):
                keyed = [now_text] * n if texts is None else list(texts)
            else:
                keyed = [keys[r] for r in rows]
        plain_headers = self._plain_headers
        new = tuple.__new__
        topic = self._topic
        # Each Outgoing by tuple.__new__ directly (a NamedTuple's own __new__ is a Python call).
        out: list[Outgoing] = [
            new(Outgoing, (topic, v, k, plain_headers, t, (), None, None, None))
            for v, k, t in zip(
                built,
                repeat(None) if keyed is None else keyed,
                repeat(0) if stamps is None else stamps,
                strict=False,
            )
        ]

        # The messages that differ: late (their own event time), fraud (id, headers, label).
        fraud_ids = {j: ids[36 * k : 36 * k + 36] for k, j in enumerate(sorted(replaced))}
        for j in sorted({*late, *replaced}):
            row = rows[j]
            new_id = ids[36 * j : 36 * j + 36] if fresh else fraud_ids.get(j)
            ts = now_text if texts is None else texts[j]
            epoch = now_s if now else (0.0 if epochs is None else epochs[row] + offset)
            ts_ms = out[j][4]
            tally: tuple[str, ...] = ()
            if j in late:
                epoch -= late[j]
                ts = iso_timestamp(epoch)
                ts_ms = epoch_ms(epoch) if event_ts else 0
                tally = (LATE,)
            value = wire.splice(row, new_id, ts)
            headers = plain_headers
            scenario = occurrence_id = label = None
            fraud = replaced.get(j)
            if fraud is not None:
                occurrence = fraud[1]
                headers = self._tags.headers(occurrence)
                scenario, occurrence_id = occurrence.kind, occurrence.id
                label = self._tags.label(
                    at_s, value, occurrence, self._entity_of(row), draws.label_delay.get(j)
                )
            key = _key_of(key_field, keys, row, new_id, ts)
            out[j] = new(
                Outgoing,
                (topic, value, key, headers, ts_ms, tally, scenario, occurrence_id, label),
            )
        out, self.special = release(at_s, out, draws, replaced.keys(), self.schedule)
        return out

    def _entity_of(self, row: int) -> bytes | None:
        """The entity (card) of `row` as text, None without an entity or for an empty cell."""
        ids = self._entity_ids
        return None if ids is None else ids[row] or None

    def _row_epoch(self, row: int) -> float:
        epochs = self._epochs
        return 0.0 if epochs is None else epochs[row] + self._shift

    def _start(self, occurrence: Occurrence, lag_s: float) -> None:
        """Schedule the events of a fraud occurrence, each built from its real row."""
        if not occurrence.follow_up:
            self.occurrences[occurrence.kind] = self.occurrences.get(occurrence.kind, 0) + 1
        if not occurrence.events:
            return
        headers = self._tags.headers(occurrence)
        ids = fresh_uuids(self._rng, len(occurrence.events))
        # The occurrence is as compact in event time as on the run clock: it starts at the run's
        # wall-clock time (`now`), or at its first row's own (shifted) time (`keep`, `shift`).
        if self._settings.timestamp == "now":
            start = self._wall_start + occurrence.start_s + lag_s
        else:
            start = self._row_epoch(occurrence.events[0].row)
        for k, event in enumerate(occurrence.events):
            row = event.row
            epoch = start + (event.at_s - occurrence.start_s)
            ts = iso_timestamp(epoch)
            new_id = ids[36 * k : 36 * k + 36]
            changes: dict[str, bytes] = {}
            if event.amount is not None:
                changes["amount"] = event.amount
            entity_id = self._entity_of(row)
            if event.entity is not None:  # another card than the row's
                assert self._entity is not None
                changes[self._entity] = event.entity
                entity_id = _text_of(event.entity)
            if changes:  # re-serialized in a binary format (see Wire.rewritten)
                value = self._wire.rewritten(row, new_id, ts, changes)
            else:
                value = self._wire.splice(row, new_id, ts)
            key = _key_of(self._key, self._keys, row, new_id, ts)
            if self._key in changes:
                key = _text_of(changes[self._key]) or b""
            message = Outgoing(
                self._topic,
                value,
                key,
                headers,
                epoch_ms(epoch) if self._event_ts else 0,
                scenario=occurrence.kind,
                occurrence=occurrence.id,
                label=self._tags.label(event.at_s, value, occurrence, entity_id),
            )
            self.schedule(event.at_s, message)


def _text_of(literal: bytes) -> bytes | None:
    """The text of a JSON literal (a string unquoted), None for `null`."""
    decoded = json.loads(literal)
    if decoded is None:
        return None
    return (decoded if isinstance(decoded, str) else literal.decode()).encode()


def _key_of(
    field: str | None,
    keys: Sequence[bytes] | None,
    row: int,
    new_id: bytes | None,
    ts: bytes | None,
) -> bytes | None:
    """The key of a tick's message: the rewritten id or timestamp when keyed by it, else the
    dataset's column."""
    if keys is None:
        return None
    if field == "id" and new_id is not None:
        return new_id
    if field == "timestamp" and ts is not None:
        return ts
    return keys[row]
