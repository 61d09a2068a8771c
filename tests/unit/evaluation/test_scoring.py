"""The join of sent events with alerts, on hand-made batches and times (no Kafka, no clock)."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest

from supervisor.config import Config
from supervisor.dataset import Dataset
from supervisor.evaluation.ledger import FraudSent, SentBatch, SentLog
from supervisor.evaluation.scoring import GENERATION_MS, UNKNOWN_GRACE_MS, Scorer
from supervisor.fleet import Fleet
from tests.fakes import FakeSink
from tests.unit.test_fleet import dataset  # noqa: F401 - a fixture


def uid(n: int) -> bytes:
    return str(uuid.UUID(int=n)).encode()


def batch(at_ms: int, ids: list[int], fraud: dict[int, tuple[str, int]] | None = None) -> SentBatch:
    marks = [FraudSent(uid(i), kind, uid(1000 + o)) for i, (kind, o) in (fraud or {}).items()]
    return SentBatch(at_ms, [uid(i) for i in ids], marks)


def test_each_alert_is_true_late_false_duplicate_or_unknown() -> None:
    scorer = Scorer(timeout_s=1)
    scorer.index(
        [
            batch(0, [1, 2, 3, 4], {1: ("card-testing", 1), 2: ("card-testing", 1)}),
            batch(100, [5, 6], {5: ("velocity", 2), 6: ("velocity", 3)}),
        ]
    )
    scorer.alert(uid(1), 250, 250)  # true, 250 ms
    scorer.alert(uid(1), 260, 260)  # duplicate
    scorer.alert(uid(2), 1001, 1001)  # first on a fraud event, past the timeout: late
    scorer.alert(uid(3), 300, 300)  # false
    scorer.alert(uid(5), 1100, 1100)  # true, exactly at the timeout
    scorer.alert(uid(99), 300, 300)  # waits for its id...
    scorer.alert(None, 300, 300)  # names nothing
    scorer.settle(300 + UNKNOWN_GRACE_MS)  # ...in vain: unknown
    entry = scorer.snapshot()
    assert entry == {
        "timeout_s": 1.0,
        "events": 6,
        "fraud_events": 4,
        "alerts": 7,
        "true_alerts": 2,
        "false_alerts": 1,
        "late_alerts": 1,
        "duplicate_alerts": 1,
        "unknown_alerts": 1,
        "unreadable_alerts": 1,
        "precision": round(2 / 3, 6),
        "recall": 0.5,
        "scenarios": {
            "card-testing": {
                "events": 2,
                "detected": 1,
                "recall": 0.5,
                "occurrences": 1,
                "occurrences_detected": 1,
                "time_to_detect_ms": {"p50": 250, "p95": 250, "max": 250},
            },
            "velocity": {
                "events": 2,
                "detected": 1,
                "recall": 0.5,
                "occurrences": 2,
                "occurrences_detected": 1,
                "time_to_detect_ms": {"p50": 1000, "p95": 1000, "max": 1000},
            },
        },
    }


def test_an_alert_read_before_its_batch_was_recorded_is_judged_once_it_is() -> None:
    scorer = Scorer(timeout_s=5)
    scorer.alert(uid(7), 40, 40)
    scorer.settle(50)
    scorer.index([batch(10, [7], {7: ("velocity", 1)})])
    scorer.settle(60)
    assert scorer.true_alerts == 1
    assert scorer.unknown_alerts == 0


def test_percentiles_are_nearest_rank() -> None:
    scorer = Scorer(timeout_s=100)
    scorer.index([batch(0, list(range(1, 21)), dict.fromkeys(range(1, 21), ("velocity", 1)))])
    for i in range(1, 21):
        scorer.alert(uid(i), i * 10, i * 10)
    ttd = scorer.snapshot()["scenarios"]["velocity"]["time_to_detect_ms"]
    assert ttd == {"p50": 100, "p95": 190, "max": 200}


def test_memory_is_bounded_what_is_kept_expires_after_twice_the_timeout() -> None:
    scorer = Scorer(timeout_s=1)
    for t in range(0, 10_000, 100):  # 10 s of batches of 10 events, one fraud each
        ids = list(range(t, t + 10))
        scorer.index([batch(t, ids, {t: ("velocity", t)})])
        scorer.alert(uid(t + 1), t + 50, t + 50)  # a false alert on each batch
        scorer.expire(t)
    # Two seconds of batches remembered (to a slice of the index, plus the current batch), not
    # ten: 10 events and one fraud event, alert and occurrence a batch.
    kept = (2000 + GENERATION_MS) // 100 + 1
    assert 2000 // 100 * 10 <= scorer.remembered <= kept * 10
    assert len(scorer._fraud) <= kept
    assert len(scorer._alerted) <= kept
    assert len(scorer._occurrences) <= kept
    assert scorer.events == 1000
    assert scorer.false_alerts == 100
    # An alert on an event forgotten is unknown.
    scorer.alert(uid(0), 10_000, 10_000)
    scorer.settle(None)
    assert scorer.unknown_alerts == 1


def test_an_id_sent_twice_is_attributed_to_its_first_send() -> None:
    scorer = Scorer(timeout_s=1)
    scorer.index([batch(0, [1], {1: ("velocity", 1)}), batch(500, [1])])  # a duplicate copy
    scorer.alert(uid(1), 800, 800)
    assert scorer.snapshot()["scenarios"]["velocity"]["time_to_detect_ms"]["max"] == 800


def test_sent_log_records_ids_per_batch_and_hands_them_over_once() -> None:
    log = SentLog(clock_ms=lambda: 5)
    values = [b'{"id":"' + uid(i) + b'","amount":1}' for i in range(3)]
    log.sent(values, 2, at_ms=5)
    log.sent(values, 0, at_ms=6)  # nothing went out: nothing recorded
    assert log.take() == [SentBatch(5, [uid(0), uid(1)], ())]
    assert log.take() == []
    assert log.last_ms == 5


def test_evaluation_needs_fresh_ids_in_every_profile() -> None:
    profiles = {
        "a": {"interval_s": 1, "min_records": 1, "max_records": 1, "id": "fresh"},
        "b": {"interval_s": 1, "min_records": 1, "max_records": 1},
    }
    with pytest.raises(ValueError, match="set 'id: fresh' in 'b'"):
        Config.model_validate({"profiles": profiles, "evaluation": {"alerts_topic": "alerts"}})
    with pytest.raises(ValueError, match="alerts_topic"):
        Config.model_validate({"profiles": profiles, "evaluation": {"topic": "alerts"}})


def test_an_evaluated_fleet_records_every_event_it_sent_with_its_kafka_timestamp(
    dataset: Dataset,  # noqa: F811
) -> None:
    profile = {"interval_s": 0.001, "min_records": 1, "max_records": 4, "id": "fresh"}
    config = Config.model_validate(
        {
            "kafka": {"topic": "tx"},
            "profiles": {
                "plain": profile,
                "shaped": {**profile, "scenario": {"kind": "velocity", "probability": 0.5}},
            },
            "stats_interval_s": 3600,
            "evaluation": {"alerts_topic": "alerts"},
        }
    )

    async def main() -> tuple[FakeSink, list[SentBatch]]:
        stop = asyncio.Event()
        sink = FakeSink(on_produce=lambda s: stop.set() if len(s.sent) >= 400 else None)
        log = SentLog(clock_ms=lambda: 1_700_000_000_000)
        await asyncio.wait_for(Fleet(config, dataset, sink, sent_log=log).run(stop), 30)
        return sink, log.take()

    sink, batches = asyncio.run(main())
    recorded = [i for b in batches for i in b.ids]
    assert sorted(recorded) == sorted(json.loads(m.value)["id"].encode() for m in sink.sent)
    assert {m.timestamp_ms for m in sink.sent} == {1_700_000_000_000}
    fraud = {f.id for b in batches for f in b.fraud}
    sent_fraud = {
        json.loads(m.value)["id"].encode()
        for m in sink.sent
        if dict(m.headers).get("fraud") == b"true"
    }
    assert fraud == sent_fraud
    assert fraud
