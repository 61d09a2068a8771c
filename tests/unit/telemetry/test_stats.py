"""Counters, the latency histogram and the summary shape."""

from __future__ import annotations

import json

import pytest

from supervisor.telemetry.stats import (
    DeliveryStats,
    Histogram,
    ProfileStats,
    RateWindow,
)
from supervisor.telemetry.summary import RunSummary


def test_histogram_quantiles_tell_milliseconds_from_seconds() -> None:
    h = Histogram()
    for _ in range(990):
        h.observe(0.004)
    for _ in range(10):
        h.observe(3.2)
    p50, p99, p100 = h.quantile(0.5), h.quantile(0.99), h.quantile(1.0)
    assert p50 is not None
    assert 0.004 <= p50 < 0.0051
    assert p99 is not None
    assert 0.004 <= p99 < 0.0051
    assert p100 == pytest.approx(3.2)
    assert h.count == 1000
    assert h.buckets()[-1] == (float("inf"), 1000)


def test_empty_histogram_has_no_quantile() -> None:
    assert Histogram().quantile(0.5) is None


def test_in_flight_is_what_is_neither_delivered_failed_nor_undelivered() -> None:
    s = ProfileStats("high", produced=100, delivered=90, failed=3, undelivered=2)
    assert s.in_flight == 5


def deliver(s: DeliveryStats, latency_s: float | None) -> None:
    """A delivery as a sink reports it: the latency is measured only when asked for."""
    if s.record_delivered():
        s.record_latency(latency_s)


def test_delivery_outcomes_settle_what_is_in_flight() -> None:
    s = DeliveryStats("labels", produced=4)
    deliver(s, 0.002)
    s.record_failed()
    s.record_undelivered()
    assert (s.delivered, s.failed, s.undelivered, s.in_flight) == (1, 1, 1, 1)


def test_record_delivered_observes_one_latency_in_latency_every() -> None:
    s = DeliveryStats("p", latency_every=3)
    for i in range(9):
        deliver(s, 0.001 * (i + 1))
    assert s.delivered == 9
    assert s.latency.count == 3
    # The first delivery is observed, then every third: 1 ms, 4 ms and 7 ms.
    assert s.latency.sum == pytest.approx(0.001 + 0.004 + 0.007)


def test_a_sampled_delivery_without_a_latency_observes_nothing() -> None:
    s = DeliveryStats("p", latency_every=2)
    deliver(s, None)  # the sampled one: nothing to observe
    deliver(s, 0.5)  # not sampled
    deliver(s, 0.25)  # sampled
    assert s.delivered == 3
    assert (s.latency.count, s.latency.sum) == (1, 0.25)


def test_latency_every_must_be_positive() -> None:
    with pytest.raises(ValueError, match="latency_every"):
        DeliveryStats("p", latency_every=0)


def test_a_profile_is_its_events_delivery_accounting_and_labels_are_apart() -> None:
    s = ProfileStats("p", produced=3, labels=DeliveryStats("p", produced=1))
    deliver(s, None)
    assert isinstance(s, DeliveryStats)
    assert (s.in_flight, s.labels is not None and s.labels.in_flight) == (2, 1)


def test_elapsed_runs_from_first_batch_until_stopped() -> None:
    s = ProfileStats("low")
    assert s.elapsed_s(now=50.0) == 0.0
    s.first_batch_at = 10.0
    assert s.elapsed_s(now=12.5) == 2.5
    s.stopped_at = 14.0
    assert s.elapsed_s(now=99.0) == 4.0


def test_summary_has_profiles_and_totals_and_is_json() -> None:
    a = ProfileStats("a", batches=3, produced=30, delivered=29, failed=1, first_batch_at=0.0)
    b = ProfileStats("b", batches=2, produced=4, delivered=4, first_batch_at=1.0, stopped_at=2.0)
    a.stopped_at = 3.0
    out = RunSummary.of([a, b], elapsed_s=3.5, now=4.0).as_dict()
    assert json.loads(json.dumps(out)) == out
    assert out["elapsed_s"] == 3.5
    assert out["profiles"]["a"]["elapsed_s"] == 3.0
    assert out["profiles"]["b"]["elapsed_s"] == 1.0
    for key in ("batches", "produced", "delivered", "failed"):
        assert out["total"][key] == out["profiles"]["a"][key] + out["profiles"]["b"][key]
    assert out["total"]["in_flight"] == 0


def test_rate_window_reports_rates_since_last_line() -> None:
    s = ProfileStats("x")
    w = RateWindow(at=0.0)
    s.produced, s.delivered, s.batches = 100, 80, 10
    assert w.advance(s, now=10.0) == {
        "produced_per_s": 10.0,
        "delivered_per_s": 8.0,
        "batches_per_s": 1.0,
    }
    s.produced = 150
    assert w.advance(s, now=15.0)["produced_per_s"] == 10.0


def test_the_first_delivery_is_announced_once_whatever_the_latency_sampling() -> None:
    calls: list[int] = []
    stats = DeliveryStats("p", latency_every=3)
    stats.on_first_delivery = lambda: calls.append(stats.delivered)
    for _ in range(7):
        stats.record_delivered()
    assert calls == [1]
