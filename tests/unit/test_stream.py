"""ProfileStream: event-time shaping, labelled fraud events, labels and reproducibility.

Driven tick by tick on its run clock (no event loop, no sleeps); the wall clock is a parameter.
"""

from __future__ import annotations

import hashlib
import json
import random
import uuid
from datetime import datetime
from typing import Any

import pytest

from supervisor.config import Config, ProfileSettings
from supervisor.dataset import FIELDS, Dataset, load_dataset, parse_csv
from supervisor.errors import DatasetError
from supervisor.evaluation.ledger import FraudSent
from supervisor.formats.wire import Wire
from supervisor.profile.feasibility import check_scenarios
from supervisor.profile.outgoing import DUPLICATE, LABEL, LATE, REORDERED, Outgoing
from supervisor.profile.stream import ProfileStream
from supervisor.sinks.contract import Headers
from supervisor.telemetry.stats import ProfileStats

WALL_START = 1_790_000_000.0  # 2026-09-22: a fixed "now" for the stream's wall clock
HEADERS = [("profile", b"p"), ("instance", b"i")]


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return load_dataset("data/transactions.csv")


def stream_of(
    dataset: Dataset,
    seed: int = 1,
    *,
    wall_start: float = WALL_START,
    headers: Headers = HEADERS,
    headers_mode: str = "all",
    wire: Wire | None = None,
    **settings: Any,
) -> ProfileStream:
    """A stream started at `wall_start`, its wall clock frozen 1000 s later; `headers` are the
    profile's own (the runner's: None with `headers: none`), `headers_mode` its `headers:`."""
    profile = ProfileSettings.model_validate(
        {"interval_s": 1, "min_records": 5, "max_records": 15, "headers": headers_mode, **settings}
    )
    return ProfileStream(
        "p",
        profile,
        dataset,
        random.Random(seed),
        topic="tx",
        headers=headers,
        wall_start_s=wall_start,
        wall_clock=lambda: wall_start + 1000.0,
        wire=wire,
    )


def sent(stream: ProfileStream, messages: list[Outgoing]) -> list[Outgoing]:
    """`messages`, as the fleet's sender handles them once produced: a fraud event's label is
    scheduled then."""
    for m in messages:
        if m.label is not None:
            stream.schedule(*m.label)
    return messages


def run(stream: ProfileStream, ticks: int, interval_s: float = 1.0) -> list[Outgoing]:
    """Every message in send order over `ticks` ticks, then what was still scheduled."""
    out: list[Outgoing] = []
    for k in range(ticks):
        at = k * interval_s
        out += sent(stream, stream.due(at))
        out += sent(stream, stream.tick(at))
    out += sent(stream, stream.pending())
    return out + stream.pending()


def epoch_of(value: bytes) -> float:
    return datetime.fromisoformat(json.loads(value)["timestamp"]).timestamp()


def test_plain_settings_send_the_sampled_rows_unchanged(dataset: Dataset) -> None:
    out = run(stream_of(dataset, kafka_timestamp="event"), 50)
    rows = set(dataset.values)
    assert out
    assert all(
        m.value in rows and m.headers == HEADERS and m.tally == () and m.scenario is None
        for m in out
    )
    # Kafka timestamps follow the (kept) event time of each row.
    assert all(m.timestamp_ms == round(epoch_of(m.value) * 1000) for m in out)


def test_shift_keeps_every_gap_and_maps_the_latest_row_to_the_start(dataset: Dataset) -> None:
    out = run(stream_of(dataset, timestamp="shift", kafka_timestamp="event"), 100)
    offset = WALL_START - max(dataset.epochs())
    assert all(epoch_of(m.value) <= WALL_START for m in out)
    by_id = {json.loads(v)["id"]: v for v in dataset.values}
    for m in out:
        original = by_id[json.loads(m.value)["id"]]
        assert epoch_of(m.value) == pytest.approx(epoch_of(original) + offset, abs=1e-3)
        assert m.timestamp_ms == round(epoch_of(m.value) * 1000)
        # Only the timestamp changed.
        changed = {k for k in FIELDS if json.loads(m.value)[k] != json.loads(original)[k]}
        assert changed == {"timestamp"}


def test_late_events_are_older_by_at_most_max_delay(dataset: Dataset) -> None:
    out = run(stream_of(dataset, timestamp="now", late={"fraction": 0.3, "max_delay_s": 600}), 200)
    now = WALL_START + 1000.0
    late = [m for m in out if LATE in m.tally]
    on_time = [m for m in out if LATE not in m.tally]
    assert 0.25 < len(late) / len(out) < 0.35
    assert all(now - 600 - 1e-3 <= epoch_of(m.value) < now for m in late)
    assert all(epoch_of(m.value) == pytest.approx(now, abs=1e-3) for m in on_time)


def test_out_of_order_events_are_held_back_within_the_bound(dataset: Dataset) -> None:
    stream = stream_of(dataset, out_of_order={"fraction": 0.2, "max_delay_s": 3})
    sent_at: dict[bytes, float] = {}
    planned_at: dict[bytes, float] = {}
    for k in range(300):
        for m in stream.due(float(k)):
            sent_at[m.value] = float(k)
            assert REORDERED in m.tally
        batch_values = [m.value for m in stream.tick(float(k))]
        for v in batch_values:
            sent_at.setdefault(v, float(k))
        # Everything drawn this tick: sent now, or scheduled within the bound.
        assert stream.next_due_s() <= k + 3 or stream.next_due_s() == float("inf")
        for v in batch_values:
            planned_at.setdefault(v, float(k))
    held = [v for v, t in sent_at.items() if v not in planned_at or t > planned_at[v]]
    assert held, "nothing was reordered"
    assert 0.15 < len(held) / len(sent_at) < 0.25


def test_duplicates_are_exact_copies(dataset: Dataset) -> None:
    out = run(stream_of(dataset, id="fresh", duplicates={"fraction": 0.1}), 200)
    copies = [m for m in out if m.tally == (DUPLICATE,)]
    originals = {m.value: m for m in out if m.tally != (DUPLICATE,)}
    assert 0.07 < len(copies) / len(originals) < 0.13
    for copy in copies:
        original = originals[copy.value]  # fresh ids: a copy's value matches only its original
        assert (copy.key, copy.headers, copy.timestamp_ms) == (
            original.key,
            original.headers,
            original.timestamp_ms,
        )


def test_fraud_events_are_labelled_and_their_labels_follow_after_the_delay(
    dataset: Dataset,
) -> None:
    stream = stream_of(
        dataset,
        timestamp="now",
        key="id",
        scenario={"kind": "card-testing", "probability": 0.2, "window_s": 5},
        labels={"topic": "labels", "delay_s": 30},
    )
    timeline: list[tuple[float, Outgoing]] = []
    for k in range(200):
        timeline += [(float(k), m) for m in sent(stream, stream.due(float(k)))]
        timeline += [(float(k), m) for m in sent(stream, stream.tick(float(k)))]
    fraud = [(t, m) for t, m in timeline if m.scenario is not None]
    labels = [(t, m) for t, m in timeline if m.tally == (LABEL,)]
    normal = [m for _, m in timeline if not m.tally and m.scenario is None]
    assert fraud
    assert labels
    assert normal
    assert all(dict(m.headers)["fraud"] == b"false" for m in normal)
    by_id: dict[str, tuple[float, Outgoing]] = {}
    for t, m in fraud:
        headers = dict(m.headers)
        assert headers["fraud"] == b"true"
        assert headers["scenario"] == b"card-testing"
        value = json.loads(m.value)
        assert list(value) == list(FIELDS)  # the seed's seven fields, nothing more
        assert 0.5 <= float(value["amount"]) <= 2.0
        assert m.key == value["id"].encode()
        by_id[value["id"]] = (t, m)
    for t, label in labels:
        assert label.topic == "labels"
        body = json.loads(label.value)
        event_t, event = by_id[body["id"]]
        assert body == {
            "id": body["id"],
            "label": "fraud",
            "scenario": "card-testing",
            "scenario_id": dict(event.headers)["scenario_id"].decode(),
        }
        assert t >= event_t + 30 - 1  # released on the first tick at or after its due time
    # Each occurrence hits one merchant; every fraud event of this run has its label pending
    # or sent.
    pending = sent(stream, stream.pending())
    pending += stream.pending()  # the labels of the fraud events just sent
    pending_fraud = [m for m in pending if m.scenario is not None]
    pending_labels = [m for m in pending if m.tally == (LABEL,)]
    assert len(labels) + len(pending_labels) == len(fraud) + len(pending_fraud)
    merchants: dict[bytes, set[str]] = {}
    for m in [m for _, m in fraud] + pending_fraud:
        merchants.setdefault(dict(m.headers)["scenario_id"], set()).add(
            json.loads(m.value)["merchant"]
        )
    assert all(len(names) == 1 for names in merchants.values())
    assert stream.occurrences["card-testing"] == len(merchants)


def test_merchant_compromise_rewrites_batch_positions(dataset: Dataset) -> None:
    stream = stream_of(
        dataset,
        id="fresh",
        scenario={
            "kind": "merchant-compromise",
            "probability": 1.0,
            "duration_s": 1000,
            "share": 0.5,
            "merchant": "LIDL",
        },
    )
    out = run(stream, 100)
    fraud = [m for m in out if m.tally == () and m.scenario == "merchant-compromise"]
    assert 0.4 < len(fraud) / len(out) < 0.6
    assert {json.loads(m.value)["merchant"] for m in fraud} == {"LIDL"}
    assert len({dict(m.headers)["scenario_id"] for m in fraud}) == 1


def test_a_seed_repeats_the_whole_sequence_but_wall_clock_timestamps(dataset: Dataset) -> None:
    settings: dict[str, Any] = {
        "id": "fresh",
        "timestamp": "now",
        "key": "merchant",
        "late": {"fraction": 0.1, "max_delay_s": 60},
        "out_of_order": {"fraction": 0.1, "max_delay_s": 2},
        "duplicates": {"fraction": 0.05, "max_delay_s": 1},
        "scenario": {"kind": "velocity", "every_s": 5},
        "labels": {"topic": "labels", "delay_s": 3, "jitter_s": 2},
    }

    def sequence(seed: int, wall: float) -> list[tuple[Any, ...]]:
        stream = stream_of(dataset, seed, wall_start=wall, **settings)
        return [
            (
                m.topic,
                {**json.loads(m.value), "timestamp": None},
                m.key,
                m.headers,
                m.tally,
                m.scenario,
            )
            for m in run(stream, 300)
        ]

    first, again = sequence(7, WALL_START), sequence(7, WALL_START + 86_400)
    assert first == again
    assert {t[-2][0] for t in first if t[-2]} >= {LATE, REORDERED, DUPLICATE, LABEL}
    assert any(t[-1] == "velocity" for t in first)
    assert sequence(8, WALL_START) != first


FRAUD_STREAM: dict[str, Any] = {
    "id": "fresh",
    "key": "id",
    "duplicates": {"fraction": 0.05, "max_delay_s": 1},
    "scenario": {"kind": "card-testing", "probability": 0.2, "window_s": 5},
    "labels": {"topic": "labels", "delay_s": 3},
}


@pytest.mark.parametrize("mode", ["profile", "none"])
def test_the_headers_setting_changes_the_headers_and_nothing_else(
    dataset: Dataset, mode: str
) -> None:
    def messages(mode: str) -> list[Outgoing]:
        own = None if mode == "none" else HEADERS  # as the runner passes them
        return run(stream_of(dataset, 3, headers=own, headers_mode=mode, **FRAUD_STREAM), 60)

    def bare(m: Outgoing) -> Outgoing:
        label = None if m.label is None else (m.label[0], m.label[1]._replace(headers=None))
        return m._replace(headers=None, label=label)

    tagged, chosen = messages("all"), messages(mode)
    assert [bare(m) for m in chosen] == [bare(m) for m in tagged]
    assert any(m.scenario for m in chosen)
    assert any(m.tally == (LABEL,) for m in chosen)
    # Fraud events, plain events and labels alike: the profile's own headers, or none.
    assert {str(m.headers) for m in chosen} == {str(None if mode == "none" else HEADERS)}


@pytest.mark.parametrize("mode", ["all", "none"])
def test_an_evaluated_run_records_fraud_occurrences_without_reading_headers(
    dataset: Dataset, mode: str
) -> None:
    own = None if mode == "none" else HEADERS
    stream = stream_of(dataset, 3, headers=own, headers_mode=mode, **FRAUD_STREAM)
    out = [m for m in run(stream, 60) if m.tally != (LABEL,)]
    fraud: list[FraudSent] = []
    stream.produced(out, (), ProfileStats("p"), None, fraud)
    events = [m for m in out if m.scenario is not None and DUPLICATE not in m.tally]
    assert fraud
    assert [f.occurrence for f in fraud] == [m.occurrence for m in events]
    if mode == "all":  # the same occurrence as the header says
        assert [f.occurrence for f in fraud] == [dict(m.headers)["scenario_id"] for m in events]


@pytest.mark.parametrize("mode", ["keep", "shift", "now"])
def test_an_occurrence_is_as_compact_in_event_time_as_on_the_run_clock(
    dataset: Dataset, mode: str
) -> None:
    stream = stream_of(
        dataset,
        timestamp=mode,
        scenario={"kind": "card-testing", "probability": 0.3, "window_s": 20},
    )
    by_occurrence: dict[bytes, list[float]] = {}
    for m in run(stream, 100):
        if m.scenario is not None:
            by_occurrence.setdefault(dict(m.headers)["scenario_id"], []).append(epoch_of(m.value))
    assert len(by_occurrence) > 5
    for epochs in by_occurrence.values():
        assert max(epochs) - min(epochs) <= 20 + 1e-3


# --- event times a dataset can support ---------------------------------------------------------


def dataset_at(*stamps: str) -> Dataset:
    rows = "".join(
        f"{uuid.UUID(int=i + 1)},Card,1.00,{stamp},Shop,debit,outgoing\n"
        for i, stamp in enumerate(stamps)
    )
    return parse_csv(
        ("id,description,amount,timestamp,merchant,operation_type,side\n" + rows).encode(),
        source="edge.csv",
    )


@pytest.mark.parametrize(
    ("profile", "stamps", "problem"),
    [
        ({"late": {"fraction": 0.5, "max_delay_s": 86400}}, ("0001-01-01T10:00:00",), "years 1"),
        ({"timestamp": "shift"}, ("0001-01-01T10:00:00", "9999-06-01T10:00:00"), "years 1"),
        ({"kafka_timestamp": "event"}, ("1969-07-20T20:17:00",), "before 1970"),
    ],
)
def test_event_times_beyond_what_can_be_written_are_refused_at_start(
    profile: dict[str, Any], stamps: tuple[str, ...], problem: str
) -> None:
    config = Config.model_validate(
        {"profiles": {"p": {"interval_s": 1, "min_records": 1, "max_records": 1, **profile}}}
    )
    with pytest.raises(DatasetError, match=f"profiles.p: the event times .*{problem}"):
        check_scenarios(config, dataset_at(*stamps))


def test_event_times_near_the_edges_but_inside_them_are_fine() -> None:
    config = Config.model_validate(
        {
            "profiles": {
                "p": {
                    "interval_s": 1,
                    "min_records": 1,
                    "max_records": 1,
                    "late": {"fraction": 1, "max_delay_s": 3600},
                    "kafka_timestamp": "event",
                }
            }
        }
    )
    check_scenarios(config, dataset_at("1970-01-01T02:00:00", "9999-12-01T00:00:00"))


# -- the seeded sequence, byte for byte -----------------------------------------------------------

SHAPED_STREAMS: dict[str, dict[str, Any]] = {
    # benchmarks/throughput.py's two stream-path series, at 1 s ticks of 5-15 events.
    "card-testing": {
        "id": "fresh",
        "timestamp": "now",
        "kafka_timestamp": "event",
        "key": "id",
        "scenario": {
            "kind": "card-testing",
            "every_s": 4,
            "min_attempts": 10,
            "max_attempts": 40,
            "min_amount": 0.5,
            "max_amount": 2.0,
            "window_s": 3,
        },
        "labels": {"topic": "labels", "delay_s": 2, "jitter_s": 1},
    },
    "event-time": {
        "id": "fresh",
        "timestamp": "now",
        "kafka_timestamp": "event",
        "late": {"fraction": 0.05, "max_delay_s": 60},
        "out_of_order": {"fraction": 0.05, "max_delay_s": 5},
        "duplicates": {"fraction": 0.01, "max_delay_s": 3},
    },
    "shifted": {
        "timestamp": "shift",
        "key": "merchant",
        "late": {"fraction": 0.1, "max_delay_s": 600},
        "duplicates": {"fraction": 0.05},
        "scenario": {"kind": "velocity", "probability": 0.2},
        "labels": {"topic": "labels", "delay_s": 1},
    },
    "compromise": {
        "id": "fresh",
        "kafka_timestamp": "event",
        "scenario": {"kind": "merchant-compromise", "every_s": 20, "duration_s": 10},
    },
}
SHAPED_GOLDEN: dict[str, str] = {
    "card-testing": "b54a30650fbe6d4f224ddbaa9daa1ac5b5fe37ac461ef69f2ca2a3a9eaec4148",
    "event-time": "68fd27daa0ffd751a09130f28e0462379cf607a44e823d5f634508b2d4969774",
    "shifted": "9ff254ac2de8ea173dae0e6fd1253beb50004412e4bc67642d0743a0cf3cb974",
    "compromise": "ba8cc346780feae303e868d2634a094b1488742db831c4d1ff33d965d6e6f4a9",
}
"""sha256 of each stream's messages over 300 ticks (`_digest`), as the stream path made them
before its per-message loop was reworked for speed (issue 14): the rework must not move a byte."""


def _digest(stream: ProfileStream) -> str:
    """Every field of every message, labels included, in send order."""
    digest = hashlib.sha256()
    for m in run(stream, 300):
        label = None if m.label is None else (round(m.label[0], 9), tuple(m.label[1]))
        digest.update(repr((*m[:8], label)).encode())
    return digest.hexdigest()


@pytest.mark.parametrize("kind", list(SHAPED_STREAMS))
def test_a_seeded_shaped_stream_is_the_same_byte_for_byte(dataset: Dataset, kind: str) -> None:
    assert _digest(stream_of(dataset, 5, **SHAPED_STREAMS[kind])) == SHAPED_GOLDEN[kind]
