"""The run summary: its document, its log fields and what decides exit code 3."""

from __future__ import annotations

import json

import pytest

from supervisor.telemetry.stats import DeliveryStats, ProfileStats
from supervisor.telemetry.summary import RunSummary


def delivered(name: str, n: int, *, labels: DeliveryStats | None = None) -> ProfileStats:
    return ProfileStats(name, batches=1, produced=n, delivered=n, labels=labels)


def test_the_document_has_the_elapsed_time_profiles_and_total() -> None:
    a = delivered("a", 3, labels=DeliveryStats("a", produced=2, delivered=2))
    a.occurrences["velocity"] = 1
    a.fraud_events["velocity"] = 2
    b = delivered("b", 4)
    document = RunSummary.of([a, b], elapsed_s=1.23456, now=9.0).as_dict()
    assert json.loads(json.dumps(document)) == document
    assert list(document) == ["elapsed_s", "profiles", "total"]
    assert document["elapsed_s"] == document["total"]["elapsed_s"] == 1.235
    assert list(document["profiles"]["a"]) == [
        "batches",
        "produced",
        "delivered",
        "failed",
        "undelivered",
        "rejected",
        "in_flight",
        "bytes",
        "behind_schedule",
        "restarts",
        "elapsed_s",
        "publish_delay_ms",
        "latency_ms",
        "tick_lateness_ms",
        "late",
        "reordered",
        "duplicates",
        "fraud_events",
        "scenarios",
        "labels",
    ]
    assert document["profiles"]["b"]["labels"] is None
    total = document["total"]
    assert (total["produced"], total["fraud_events"], total["labels"]["delivered"]) == (7, 2, 2)
    assert "scenarios" not in total
    assert "latency_ms" not in total
    assert "publish_delay_ms" not in total


def test_publish_delay_and_latency_are_apart_with_p50_p95_p99_and_max() -> None:
    a = delivered("a", 200)
    a.publish_delay.observe_many(0.002, 150)  # a batch produced 2 ms after its deadline
    a.publish_delay.observe_many(0.4, 50)  # and one that waited for the producer's queue
    for _ in range(200):
        a.latency.observe(0.02)
    entry = RunSummary.of([a], elapsed_s=1.0, now=1.0).as_dict()["profiles"]["a"]
    delay, latency = entry["publish_delay_ms"], entry["latency_ms"]
    assert list(delay) == list(latency) == ["p50", "p95", "p99", "max"]
    assert 2.0 <= delay["p50"] <= 2.6  # a bucket's upper bound: 10 buckets a decade
    assert delay["p95"] == delay["p99"] == delay["max"] == 400.0
    assert latency["p50"] == latency["max"] == 20.0
    assert a.publish_delay.count == 200
    assert a.publish_delay.sum == pytest.approx(0.002 * 150 + 0.4 * 50)


def test_the_document_is_a_copy() -> None:
    summary = RunSummary.of([delivered("a", 1)], elapsed_s=1.0, now=1.0)
    summary.as_dict()["profiles"]["a"]["latency_ms"]["p99"] = 1e9
    assert summary.as_dict()["profiles"]["a"]["latency_ms"]["p99"] is None


def test_total_labels_are_none_without_any_labelled_profile() -> None:
    summary = RunSummary.of([delivered("a", 1)], elapsed_s=1.0, now=1.0)
    assert summary.as_dict()["total"]["labels"] is None
    assert summary.total_fields()["labels"] is None


def test_log_fields_are_the_entries_flattened() -> None:
    a = delivered("a", 2, labels=DeliveryStats("a", produced=1, delivered=1))
    a.occurrences["velocity"] = 1
    a.fraud_events["velocity"] = 1
    a.latency.observe(0.25)
    summary = RunSummary.of([a], elapsed_s=1.0, now=1.0)
    fields = summary.profile_fields()["a"]
    assert fields["latency_ms_p99"] == 250.0
    assert fields["scenarios_velocity_occurrences"] == 1
    assert fields["scenarios_velocity_events"] == 1
    assert fields["labels_delivered"] == 1
    assert not any(isinstance(v, dict) for v in fields.values())
    total = summary.total_fields()
    assert (total["delivered"], total["labels_in_flight"], total["elapsed_s"]) == (2, 0, 1.0)


def test_no_shortfall_when_everything_was_delivered() -> None:
    a = delivered("a", 5, labels=DeliveryStats("a", produced=1, delivered=1))
    shortfall = RunSummary.of([a, delivered("b", 2)], elapsed_s=1.0, now=1.0).shortfall()
    assert dict(shortfall) == {
        "failed": 0,
        "undelivered": 0,
        "rejected": 0,
        "labels_failed": 0,
        "labels_undelivered": 0,
        "labels_rejected": 0,
    }
    assert not shortfall.incomplete


def test_shortfall_sums_events_and_labels_over_the_profiles() -> None:
    a = ProfileStats("a", produced=10, delivered=7, failed=2, undelivered=1, rejected=1)
    a.labels = DeliveryStats("a", produced=3, delivered=1, failed=1, undelivered=1, rejected=4)
    b = ProfileStats("b", produced=1, failed=1, labels=DeliveryStats("b", rejected=1))
    shortfall = RunSummary.of([a, b], elapsed_s=1.0, now=1.0).shortfall()
    assert dict(shortfall) == {
        "failed": 3,
        "undelivered": 1,
        "rejected": 1,
        "labels_failed": 1,
        "labels_undelivered": 1,
        "labels_rejected": 5,
    }
    assert shortfall.incomplete


def test_any_one_outcome_makes_the_run_incomplete() -> None:
    for events, labels in [
        (ProfileStats("p", produced=1, failed=1), None),
        (ProfileStats("p", produced=1, undelivered=1), None),
        (ProfileStats("p", rejected=1), None),
        (ProfileStats("p", produced=1), None),  # left in flight: not a field, still a shortfall
        (delivered("p", 1), DeliveryStats("p", produced=1)),  # a label left in flight
        (delivered("p", 1), DeliveryStats("p", rejected=1)),
    ]:
        events.labels = labels
        assert RunSummary.of([events], elapsed_s=1.0, now=1.0).shortfall().incomplete, events


def test_in_flight_labels_do_not_cancel_out_events_settled_twice() -> None:
    # Two writers race on the counters; a negative in_flight is still not a clean run.
    events = ProfileStats("p", produced=1, delivered=2, labels=DeliveryStats("p", produced=1))
    assert RunSummary.of([events], elapsed_s=1.0, now=1.0).shortfall().incomplete
