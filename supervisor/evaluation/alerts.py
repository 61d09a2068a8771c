"""The evaluation at run time: the alerts topic's reader, its final window, its line and metrics.

`Evaluation` owns a `SentLog` (the producing path appends to it) and a `Scorer`. `start` begins,
right before the fleet produces, a reader on its own thread (never the event loop's, never in the
producing path's way): a confluent-kafka consumer *assigned* every partition of the alerts topic
from its beginning (no consumer group: a group join is slow, on Tansu especially, and needs no
offsets here), which skips alerts stamped before the run started. Each poll it indexes the batches
sent since the last one, judges the alerts read, and forgets what expired (`supervisor.evaluation.
scoring`).

At stop, `finish` keeps listening until every event sent had `timeout_s` for its alert, within the
run's `ShutdownBudget` (a second signal ends it at once), then stops the reader; `summary()` is the
run summary's `evaluation` entry.

Alert time: the alert message's Kafka timestamp (the detector's producer stamps it when it sends
the alert), or the time it was read when the message has none.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator, Mapping
from typing import Any, Final

from confluent_kafka import (
    OFFSET_BEGINNING,
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    KafkaException,
    Message,
    TopicPartition,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from supervisor.config import Config, KafkaValue
from supervisor.config.evaluation import EvaluationSettings
from supervisor.evaluation.ledger import SentLog, wall_ms
from supervisor.evaluation.scoring import TTD_BUCKETS_S, Scorer
from supervisor.lifecycle import ShutdownBudget, first_of, sleep_or_stop
from supervisor.telemetry.logs import RateLimitedLog, get_logger

POLL_S: Final = 0.1
"""How long one poll of the alerts topic waits: also how soon the reader sees its stop."""
_CONSUMER_PREFIXES: Final = ("security.", "sasl.", "ssl.", "socket.", "reconnect.", "client.dns")
"""The `kafka.config` properties a consumer shares with the producer: how to reach the cluster."""
_OUTCOMES: Final = ("true", "false", "late", "duplicate", "unknown", "unreadable")


def consumer_config(config: Config) -> dict[str, KafkaValue]:
    """The alerts reader's librdkafka properties: the producer's connection and security settings,
    none of its producing ones."""
    kafka = config.kafka
    shared = {k: v for k, v in kafka.config.items() if k.startswith(_CONSUMER_PREFIXES)}
    return {
        **shared,
        "bootstrap.servers": kafka.bootstrap_servers,
        "group.id": f"streaming-producer-evaluation-{config.instance}",  # never joined: assign()
        "enable.auto.commit": False,
        "fetch.wait.max.ms": 100,
        "client.id": "streaming-producer-evaluation",
    }


class Evaluation:
    """Scores the detector under test during a run (see the module docstring)."""

    def __init__(self, settings: EvaluationSettings, consumer_conf: Mapping[str, KafkaValue]):
        self.settings = settings
        self.sent = SentLog()
        self._conf = dict(consumer_conf)
        self._scorer = Scorer(settings.timeout_s)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._since_ms = 0
        self.before_start = 0
        """Alerts skipped for being stamped before the run started."""
        self._log = get_logger()

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Start reading alerts: from now on, alerts count."""
        self._since_ms = wall_ms()
        self._thread = threading.Thread(target=self._read, name="evaluation", daemon=True)
        self._thread.start()
        self._log.info(
            "evaluation_started",
            alerts_topic=self.settings.alerts_topic,
            id_field=self.settings.id_field,
            timeout_s=self.settings.timeout_s,
        )

    async def finish(self, budget: ShutdownBudget) -> None:
        """Listen for alerts on the events already sent until each had `timeout_s`, or until
        `budget` is over (a second signal: at once); then stop the reader and judge what waits."""
        thread = self._thread
        if thread is None:
            return
        last = self.sent.last_ms
        if last and thread.is_alive():
            wait_s = min((last + self._scorer.timeout_ms - wall_ms()) / 1000, budget.remaining_s())
            if wait_s > 0:
                self._log.info("evaluation_listening", timeout_s=round(wait_s, 3))
                await first_of(budget.over, timeout_s=wait_s)
        self._stop.set()
        await asyncio.to_thread(thread.join)
        self._thread = None

    async def report(self, stop: asyncio.Event, interval_s: float) -> None:
        """Log `evaluation_stats` every `interval_s` until `stop`."""
        while not await sleep_or_stop(stop, interval_s):
            self._log.info("evaluation_stats", **self.line())

    # -- the reader thread ----------------------------------------------------------------------

    def _read(self) -> None:
        topic = self.settings.alerts_topic
        errors = RateLimitedLog(self._log, "evaluation_consumer_error", every_s=5.0)
        consumer = Consumer({**self._conf, "error_cb": lambda e: errors(reason=e.str())})
        try:
            missing = RateLimitedLog(self._log, "alerts_topic_missing", every_s=30.0)
            while not self._stop.is_set():
                if self._assign(consumer, topic):
                    break
                missing(alerts_topic=topic, note="waiting for the detector to create it")
                self._stop.wait(1.0)
            while not self._stop.is_set():
                messages = consumer.consume(num_messages=1000, timeout=POLL_S)
                self._take(messages, errors)
            self._take([], errors)
        except Exception:  # noqa: BLE001 - the evaluation never takes the run down
            self._log.error("evaluation_failed", exc_info=True)
        finally:
            with self._lock:
                self._scorer.index(self.sent.take())
                self._scorer.settle(None)
            consumer.close()

    def _assign(self, consumer: Consumer, topic: str) -> bool:
        try:
            shown = consumer.list_topics(topic, timeout=5).topics.get(topic)
        except KafkaException:
            return False
        if shown is None or shown.error is not None or not shown.partitions:
            return False
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in shown.partitions])
        return True

    def _take(self, messages: list[Message], errors: RateLimitedLog) -> None:
        scorer, field, since = self._scorer, self.settings.id_field, self._since_ms
        with self._lock:
            scorer.index(self.sent.take())
            now = wall_ms()
            for message in messages:
                error = message.error()
                if error is not None:
                    errors(reason=error.str())
                    continue
                kind, stamp = message.timestamp()
                alert_ms = now if kind == TIMESTAMP_NOT_AVAILABLE or stamp <= 0 else stamp
                if alert_ms < since:
                    self.before_start += 1
                    continue
                scorer.alert(_alerted_id(message, field), alert_ms, now)
            scorer.settle(now)
            scorer.expire(now)

    # -- reading --------------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """The run summary's `evaluation` entry."""
        with self._lock:
            entry = self._scorer.snapshot()
        return {"alerts_topic": self.settings.alerts_topic, **entry}

    def line(self) -> dict[str, Any]:
        """The periodic line's fields: counts, precision, recall, per-scenario recall."""
        entry = self.summary()
        fields = {
            k: entry[k]
            for k in ("alerts", "true_alerts", "false_alerts", "unknown_alerts", "precision")
        }
        fields["recall"] = entry["recall"]
        for kind, score in entry["scenarios"].items():
            fields[f"recall_{kind}"] = score["recall"]
            fields[f"ttd_ms_p95_{kind}"] = score["time_to_detect_ms"]["p95"]
        with self._lock:
            fields["remembered_events"] = self._scorer.remembered
        return fields

    def collect(self, instance: str) -> Iterator[Metric]:
        """The evaluation's Prometheus series (read at scrape time)."""
        prefix = "streaming_producer_evaluation"
        with self._lock:
            s = self._scorer
            outcomes = (
                s.true_alerts,
                s.false_alerts,
                s.late_alerts,
                s.duplicate_alerts,
                s.unknown_alerts,
                s.unreadable_alerts,
            )
            scenarios = [
                (
                    kind,
                    score.events,
                    score.detected,
                    score.occurrences,
                    score.occurrences_detected,
                    list(score.ttd_buckets),
                    score.ttd_sum_s,
                )
                for kind, score in sorted(s.scenarios.items())
            ]
            judged = s.true_alerts + s.false_alerts
            precision = s.true_alerts / judged if judged else None
        alerts = CounterMetricFamily(
            f"{prefix}_alerts",
            "Alerts the detector under test wrote, by outcome (true, false, late, duplicate,"
            " unknown, unreadable).",
            labels=["outcome", "instance_id"],
        )
        for outcome, n in zip(_OUTCOMES, outcomes, strict=True):
            alerts.add_metric([outcome, instance], n)
        yield alerts
        labels = ["scenario", "instance_id"]
        events = CounterMetricFamily(
            f"{prefix}_fraud_events", "Fraud events sent, by scenario.", labels=labels
        )
        detected = CounterMetricFamily(
            f"{prefix}_detections",
            "Fraud events alerted within timeout_s, by scenario.",
            labels=labels,
        )
        occurrences = CounterMetricFamily(
            f"{prefix}_occurrences", "Fraud occurrences with an event sent.", labels=labels
        )
        caught = CounterMetricFamily(
            f"{prefix}_occurrences_detected",
            "Fraud occurrences with any event alerted within timeout_s.",
            labels=labels,
        )
        ttd = HistogramMetricFamily(
            f"{prefix}_time_to_detect_seconds",
            "From an event's send to its alert, over true alerts, by scenario.",
            labels=labels,
        )
        for kind, n_events, n_detected, n_occ, n_caught, buckets, total in scenarios:
            key = [kind, instance]
            events.add_metric(key, n_events)
            detected.add_metric(key, n_detected)
            occurrences.add_metric(key, n_occ)
            caught.add_metric(key, n_caught)
            cumulative, running = [], 0
            for bound, n in zip(TTD_BUCKETS_S, buckets, strict=True):
                running += n
                cumulative.append(("+Inf" if bound == float("inf") else str(bound), running))
            ttd.add_metric(key, cumulative, total)
        yield from (events, detected, occurrences, caught, ttd)
        gauge = GaugeMetricFamily(
            f"{prefix}_precision",
            "True alerts / (true + false alerts); NaN before any alert on a sent event.",
            labels=["instance_id"],
        )
        gauge.add_metric([instance], float("nan") if precision is None else precision)
        yield gauge


def _alerted_id(message: Message, field: str) -> bytes | None:
    """The transaction id an alert names: its key (`id_field: key`), or a top-level JSON field."""
    if field == "key":
        key = message.key()
        return key if isinstance(key, bytes) and key else None
    try:
        body = json.loads(message.value() or b"")
    except ValueError:
        return None
    value = body.get(field) if isinstance(body, dict) else None
    return value.encode() if isinstance(value, str) else None
