"""The counter fields' metadata drives the summary, the totals, /metrics and the stats line."""

from __future__ import annotations

from dataclasses import fields

from supervisor.telemetry.metrics import PREFIX, Telemetry
from supervisor.telemetry.stats import (
    COUNTERS,
    LABEL_COUNTERS,
    TOTALLED,
    DeliveryStats,
    ProfileStats,
    RateWindow,
    stats_line,
)


def counter_fields(cls: type[DeliveryStats]) -> set[str]:
    return {f.name for f in fields(cls) if "counter" in f.metadata}


def test_every_int_field_of_the_stats_is_a_described_counter() -> None:
    ints = {f.name for f in fields(ProfileStats) if f.type == "int" and f.name != "latency_every"}
    ints.discard("_countdown")
    assert counter_fields(ProfileStats) == ints == {name for name, _ in COUNTERS}


def test_summary_totals_and_metrics_agree_on_the_counters() -> None:
    counters = {name for name, _ in COUNTERS}
    entry = ProfileStats("p", labels=DeliveryStats("p")).snapshot(now=0.0)
    assert counters <= set(entry)
    assert counters <= set(TOTALLED)

    telemetry = Telemetry(instance_id="pod", process_metrics=False)
    telemetry.watch({"p": ProfileStats("p", labels=DeliveryStats("p"))})
    exported = {m.name for m in telemetry.collect() if m.type == "counter"}
    assert {f"{PREFIX}_{c.metric}" for _, c in COUNTERS} <= exported
    assert {f"{PREFIX}_{s.metric}" for _, s in LABEL_COUNTERS} <= exported
    # One family per counter, none left without a field behind it but the by-scenario ones.
    assert len(exported) == len(COUNTERS) + len(LABEL_COUNTERS) + 3  # fraud x2, stats errors


def test_the_counters_keep_their_metric_names_and_order() -> None:
    assert [c.metric for _, c in COUNTERS] == [
        "batches",
        "messages_produced",
        "messages_delivered",
        "messages_failed",
        "messages_undelivered",
        "messages_rejected",
        "bytes_produced",
        "ticks_behind_schedule",
        "profile_restarts",
        "late_events",
        "reordered_events",
        "duplicate_events",
    ]
    assert [s.metric for _, s in LABEL_COUNTERS] == [
        "label_messages_produced",
        "label_messages_delivered",
        "label_messages_failed",
    ]


def test_a_labels_entry_is_the_delivery_accounting_alone() -> None:
    labels = DeliveryStats("p", produced=5, bytes=100, delivered=2, failed=1, rejected=1)
    assert labels.delivery_snapshot() == {
        "produced": 5,
        "delivered": 2,
        "failed": 1,
        "undelivered": 0,
        "rejected": 1,
        "in_flight": 2,
    }


def test_stats_line_of_a_plain_profile() -> None:
    s = ProfileStats("p", batches=10, produced=100, delivered=90, failed=2, behind_schedule=1)
    s.late = 4  # not shown: the profile does not shape events
    s.latency.observe(0.5)
    assert stats_line(s, RateWindow(at=0.0), 10.0, shaped=False) == {
        "profile": "p",
        "batches": 10,
        "produced": 100,
        "delivered": 90,
        "failed": 2,
        "in_flight": 8,
        "behind_schedule": 1,
        "produced_per_s": 10.0,
        "delivered_per_s": 9.0,
        "batches_per_s": 1.0,
        "publish_delay_p99_ms": None,
        "latency_p50_ms": 500.0,
        "latency_p99_ms": 500.0,
    }


def test_stats_line_of_a_shaping_profile_ends_with_its_shaping_and_labels() -> None:
    labels = DeliveryStats("p", delivered=6)
    s = ProfileStats("p", late=1, reordered=2, duplicates=3, labels=labels)
    s.fraud_events.update({"velocity": 4, "card-testing": 5})
    line = stats_line(s, RateWindow(at=0.0), 1.0, shaped=True)
    assert list(line)[-7:] == [
        "latency_p50_ms",
        "latency_p99_ms",
        "late",
        "reordered",
        "duplicates",
        "fraud_events",
        "labels_delivered",
    ]
    assert (line["latency_p50_ms"], line["fraud_events"], line["labels_delivered"]) == (None, 9, 6)
    s.labels = None
    assert "labels_delivered" not in stats_line(s, RateWindow(at=0.0), 1.0, shaped=True)
