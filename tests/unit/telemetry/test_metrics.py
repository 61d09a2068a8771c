"""The metrics module: `Telemetry` served on a free loopback port, scraped with urllib."""

from __future__ import annotations

import json
import math
import socket

import pytest
from confluent_kafka import Producer
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from supervisor.telemetry.health import MetricsServer
from supervisor.telemetry.metrics import LibrdkafkaStats, Telemetry
from supervisor.telemetry.stats import DeliveryStats, ProfileStats
from tests.unit.telemetry.helpers import FakeClock, get


def scrape(server: MetricsServer) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of /metrics by (name, labels)."""
    status, content_type, body = get(server, "/metrics")
    assert status == 200
    assert content_type.startswith("text/plain")
    samples: list[Sample] = [
        s for family in text_string_to_metric_families(body) for s in family.samples
    ]
    return {(s.name, frozenset(s.labels.items())): s.value for s in samples}


def labels(**kv: str) -> frozenset[tuple[str, str]]:
    return frozenset(kv.items())


# --- /metrics ------------------------------------------------------------------------------------


def test_profile_counters_are_read_at_scrape_time(
    telemetry: Telemetry, server: MetricsServer
) -> None:
    high, low = ProfileStats("high"), ProfileStats("low")
    telemetry.watch({"high": high, "low": low})
    high.batches, high.produced, high.bytes = 5, 60, 6000
    high.delivered, high.failed, high.undelivered = 50, 2, 1
    high.behind_schedule, high.restarts, high.rejected = 3, 1, 4
    low.batches, low.produced, low.delivered = 1, 4, 4

    metrics = scrape(server)
    h = labels(profile="high", instance_id="pod-1")
    assert metrics[("streaming_producer_batches_total", h)] == 5
    assert metrics[("streaming_producer_messages_produced_total", h)] == 60
    assert metrics[("streaming_producer_messages_delivered_total", h)] == 50
    assert metrics[("streaming_producer_messages_failed_total", h)] == 2
    assert metrics[("streaming_producer_messages_undelivered_total", h)] == 1
    assert metrics[("streaming_producer_messages_rejected_total", h)] == 4
    assert metrics[("streaming_producer_bytes_produced_total", h)] == 6000
    assert metrics[("streaming_producer_ticks_behind_schedule_total", h)] == 3
    assert metrics[("streaming_producer_profile_restarts_total", h)] == 1
    assert metrics[("streaming_producer_messages_in_flight", h)] == 7
    low_labels = labels(profile="low", instance_id="pod-1")
    assert metrics[("streaming_producer_messages_in_flight", low_labels)] == 0

    high.produced += 10  # no re-registration: the next scrape reads the live counters
    assert scrape(server)[("streaming_producer_messages_produced_total", h)] == 70


def test_fraud_and_event_time_counters_by_profile_and_scenario(
    telemetry: Telemetry, server: MetricsServer
) -> None:
    attack, plain = ProfileStats("attack"), ProfileStats("plain")
    attack.labels = DeliveryStats("attack", produced=9, delivered=6, failed=1, undelivered=1)
    attack.occurrences["card-testing"] = 2
    attack.fraud_events["card-testing"] = 11
    attack.late, attack.reordered, attack.duplicates = 3, 4, 5
    telemetry.watch({"attack": attack, "plain": plain})

    metrics = scrape(server)
    a = labels(profile="attack", instance_id="pod-1")
    by_scenario = labels(profile="attack", scenario="card-testing", instance_id="pod-1")
    assert metrics[("streaming_producer_fraud_occurrences_total", by_scenario)] == 2
    assert metrics[("streaming_producer_fraud_events_total", by_scenario)] == 11
    assert metrics[("streaming_producer_late_events_total", a)] == 3
    assert metrics[("streaming_producer_reordered_events_total", a)] == 4
    assert metrics[("streaming_producer_duplicate_events_total", a)] == 5
    assert metrics[("streaming_producer_label_messages_produced_total", a)] == 9
    assert metrics[("streaming_producer_label_messages_delivered_total", a)] == 6
    assert metrics[("streaming_producer_label_messages_failed_total", a)] == 2  # + purged
    plain_labels = labels(profile="plain", instance_id="pod-1")
    assert ("streaming_producer_label_messages_produced_total", plain_labels) not in metrics
    assert metrics[("streaming_producer_late_events_total", plain_labels)] == 0


def test_in_flight_never_goes_negative_while_writers_race(
    telemetry: Telemetry, server: MetricsServer
) -> None:
    stats = ProfileStats("p", produced=10, delivered=12)  # reports counted before the batch
    telemetry.watch({"p": stats})

    assert (
        scrape(server)[
            ("streaming_producer_messages_in_flight", labels(profile="p", instance_id="pod-1"))
        ]
        == 0
    )


def test_publish_delay_histogram_counts_every_message_of_a_batch(
    telemetry: Telemetry, server: MetricsServer
) -> None:
    stats = ProfileStats("high")
    stats.publish_delay.observe_many(0.003, 1000)
    stats.publish_delay.observe_many(0.5, 10)
    telemetry.watch({"high": stats})

    metrics = scrape(server)
    base = labels(profile="high", instance_id="pod-1")
    assert metrics[("streaming_producer_publish_delay_seconds_count", base)] == 1010
    assert metrics[("streaming_producer_publish_delay_seconds_sum", base)] == pytest.approx(8.0)
    le = {
        float(dict(lbls)["le"]): value
        for (name, lbls), value in metrics.items()
        if name == "streaming_producer_publish_delay_seconds_bucket"
    }
    assert le[max(b for b in le if b < 0.5)] == 1000


def test_latency_histogram_matches_the_stats_histogram(
    telemetry: Telemetry, server: MetricsServer
) -> None:
    stats = ProfileStats("high")
    for seconds in (0.002, 0.004, 0.004, 0.25, 3.0):
        stats.latency.observe(seconds)
    telemetry.watch({"high": stats})

    metrics = scrape(server)
    base = {"profile": "high", "instance_id": "pod-1"}
    buckets = {
        float(dict(lbls)["le"]): value
        for (name, lbls), value in metrics.items()
        if name == "streaming_producer_delivery_latency_seconds_bucket"
    }
    expected = dict(stats.latency.buckets())
    assert buckets.keys() == expected.keys()
    assert all(buckets[bound] == count for bound, count in expected.items())
    assert buckets[math.inf] == 5
    assert buckets[max(b for b in buckets if b <= 0.001)] == 0
    count = metrics[("streaming_producer_delivery_latency_seconds_count", labels(**base))]
    total = metrics[("streaming_producer_delivery_latency_seconds_sum", labels(**base))]
    assert count == 5
    assert total == pytest.approx(3.26)


def test_dataset_gauges_and_readiness_gauge(telemetry: Telemetry, server: MetricsServer) -> None:
    metrics = scrape(server)
    pod = labels(instance_id="pod-1")
    assert ("streaming_producer_dataset_rows", pod) not in metrics
    assert metrics[("streaming_producer_ready", pod)] == 0

    telemetry.dataset_loaded(rows=9994, invalid_rows=6)
    telemetry.readiness.broker_reachable = True

    metrics = scrape(server)
    assert metrics[("streaming_producer_dataset_rows", pod)] == 9994
    assert metrics[("streaming_producer_dataset_invalid_rows", pod)] == 6
    assert metrics[("streaming_producer_ready", pod)] == 1
    assert metrics[("streaming_producer_build_info", labels(instance_id="pod-1", version="0.1.0"))]


def test_instance_id_defaults_to_the_host_name() -> None:
    assert Telemetry(process_metrics=False).instance_id == socket.gethostname()


def test_process_metrics_are_included(server: MetricsServer) -> None:
    names = {name for name, _ in scrape(server)}
    assert "process_resident_memory_bytes" in names or "python_info" in names


def test_openmetrics_is_served_when_asked_for(server: MetricsServer) -> None:
    status, content_type, body = get(
        server, "/metrics", Accept="application/openmetrics-text; version=1.0.0"
    )
    assert status == 200
    assert content_type.startswith("application/openmetrics-text")
    assert body.endswith("# EOF\n")


# --- librdkafka statistics -----------------------------------------------------------------------

STATS_REPORT = {
    "name": "streaming-producer#producer-1",
    "type": "producer",
    "msg_cnt": 42,
    "msg_size": 4200,
    "msg_max": 100000,
    "brokers": {
        "kafka:19092/bootstrap": {
            "name": "kafka:19092/bootstrap",
            "nodeid": -1,
            "source": "configured",
            "state": "INIT",
            "rtt": {"cnt": 0, "avg": 0, "p99": 0},
        },
        "kafka:19092/1": {
            "name": "kafka:19092/1",
            "nodeid": 1,
            "source": "learned",
            "state": "UP",
            "req_timeouts": 2,
            "rtt": {"cnt": 10, "avg": 1500, "p99": 9000},
        },
        "kafka-2:19092/2": {
            "name": "kafka-2:19092/2",
            "nodeid": 2,
            "source": "learned",
            "state": "CONNECT",
            "req_timeouts": 0,
            "rtt": {"cnt": 0, "avg": 0, "p99": 0},
        },
        "GroupCoordinator": {"name": "GroupCoordinator", "nodeid": -1, "source": "logical"},
    },
}


def test_librdkafka_report_becomes_queue_and_broker_metrics(
    telemetry: Telemetry, server: MetricsServer, clock: FakeClock
) -> None:
    telemetry.librdkafka.update(json.dumps(STATS_REPORT))
    clock.now += 4

    metrics = scrape(server)
    pod = labels(instance_id="pod-1")
    b1 = labels(broker="kafka:19092/1", broker_id="1", instance_id="pod-1")
    b2 = labels(broker="kafka-2:19092/2", broker_id="2", instance_id="pod-1")
    assert metrics[("streaming_producer_librdkafka_queue_messages", pod)] == 42
    assert metrics[("streaming_producer_librdkafka_queue_bytes", pod)] == 4200
    assert metrics[("streaming_producer_librdkafka_queue_max_messages", pod)] == 100000
    assert metrics[("streaming_producer_librdkafka_stats_age_seconds", pod)] == 4
    assert metrics[("streaming_producer_librdkafka_brokers_up", pod)] == 1
    assert metrics[("streaming_producer_librdkafka_broker_up", b1)] == 1
    assert metrics[("streaming_producer_librdkafka_broker_up", b2)] == 0
    assert metrics[("streaming_producer_librdkafka_broker_rtt_avg_seconds", b1)] == 0.0015
    assert metrics[("streaming_producer_librdkafka_broker_rtt_p99_seconds", b1)] == 0.009
    assert ("streaming_producer_librdkafka_broker_rtt_avg_seconds", b2) not in metrics  # no sample
    assert metrics[("streaming_producer_librdkafka_broker_request_timeouts_total", b1)] == 2
    assert not [
        name for name, lbls in metrics if dict(lbls).get("broker", "").endswith("bootstrap")
    ]


def test_no_librdkafka_series_before_the_first_report(server: MetricsServer) -> None:
    names = {name for name, _ in scrape(server)}
    assert "streaming_producer_librdkafka_queue_messages" not in names
    assert "streaming_producer_librdkafka_stats_errors_total" in names


@pytest.mark.parametrize(
    "payload", ["", "not json", "[1, 2]", '{"msg_cnt": "many"}', '{"brokers": [1]}', "null"]
)
def test_unreadable_report_is_counted_never_raised(payload: str) -> None:
    stats = LibrdkafkaStats()
    stats.update(json.dumps(STATS_REPORT))
    before = stats.snapshot

    stats.update(payload)  # must not raise: it runs inside librdkafka's poll()

    assert stats.errors == 1
    assert stats.snapshot is before


def test_a_real_librdkafka_report_is_understood() -> None:
    """Field names checked against librdkafka itself (its in-process mock cluster)."""
    stats = LibrdkafkaStats()
    producer = Producer(
        {
            "test.mock.num.brokers": 1,
            "statistics.interval.ms": 100,
            "stats_cb": stats.update,
            "log_level": 0,
        }
    )
    producer.produce("t", b"x")
    producer.flush(10)
    for _ in range(100):  # bounded: each poll waits up to 0.1 s for the next report
        if stats.snapshot is not None and stats.snapshot.brokers_up:
            break
        producer.poll(0.1)
    snapshot = stats.snapshot
    assert stats.errors == 0
    assert snapshot is not None
    assert snapshot.queue_max_messages > 0
    assert [b.up for b in snapshot.brokers] == [True]
    assert snapshot.brokers[0].node_id == 1
