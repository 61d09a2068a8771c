"""An example detector under test: a card-testing rule writing alerts for `evaluation` to score.

Card testing is a fraudster trying stolen cards with many small debits at one merchant within
seconds. This rule keeps, per merchant, the small debits (amount <= --max-amount) seen in the last
--window-s seconds; when there are --min-attempts of them, it alerts on each one not alerted yet:

    {"transaction_id": "<the event's id>", "rule": "card-testing", "merchant": "...", "attempts": 3}

keyed by the id. Run it next to streaming-producer with an `evaluation:` section naming the same
alerts topic (docs/evaluation.md walks through it):

    python examples/card_testing_detector.py --bootstrap-servers localhost:9092 \
        --topic transactions --alerts-topic fraud-alerts

It needs only confluent-kafka. It reads the events topic's partitions from their end (pass
--from-beginning to replay it), and stops on SIGINT or SIGTERM. Small on purpose: a stand-in for a
real detector, not one.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from collections import deque
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    Consumer,
    KafkaException,
    Producer,
    TopicPartition,
)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--bootstrap-servers", required=True)
    parser.add_argument("--topic", default="transactions", help="the events topic to watch")
    parser.add_argument("--alerts-topic", default="fraud-alerts")
    parser.add_argument("--max-amount", type=float, default=2.0, help="a 'small' debit (<=)")
    parser.add_argument("--min-attempts", type=int, default=3, help="small debits that alert")
    parser.add_argument("--window-s", type=float, default=30.0, help="within this many seconds")
    parser.add_argument("--from-beginning", action="store_true", help="replay the topic")
    return parser.parse_args(argv)


class CardTestingRule:
    """Per merchant, the small debits of the last `window_s` seconds."""

    def __init__(self, max_amount: float, min_attempts: int, window_s: float) -> None:
        self.max_amount, self.min_attempts, self.window_s = max_amount, min_attempts, window_s
        self._recent: dict[str, deque[tuple[float, str]]] = {}
        self._alerted: dict[str, float] = {}

    def see(self, event: dict[str, Any], now: float) -> list[dict[str, Any]]:
        """The alerts `event` raises (seen at monotonic time `now`)."""
        if event.get("operation_type") != "debit" or float(event["amount"]) > self.max_amount:
            return []
        merchant = str(event["merchant"])
        recent = self._recent.setdefault(merchant, deque())
        recent.append((now, str(event["id"])))
        while recent and recent[0][0] < now - self.window_s:
            recent.popleft()
        for seen_id, at in list(self._alerted.items()):  # forget alerted ids out of every window
            if at < now - self.window_s:
                del self._alerted[seen_id]
        if len(recent) < self.min_attempts:
            return []
        alerts = []
        for _, event_id in recent:
            if event_id not in self._alerted:
                self._alerted[event_id] = now
                alerts.append(
                    {
                        "transaction_id": event_id,
                        "rule": "card-testing",
                        "merchant": merchant,
                        "attempts": len(recent),
                    }
                )
        return alerts


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    stopping = False

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    common = {"bootstrap.servers": args.bootstrap_servers}
    consumer = Consumer(
        {**common, "group.id": "card-testing-detector", "enable.auto.commit": False}
    )
    producer = Producer({**common, "linger.ms": 5})
    start = OFFSET_BEGINNING if args.from_beginning else OFFSET_END
    while not stopping:  # the events topic may not exist until the producer creates it
        try:
            shown = consumer.list_topics(args.topic, timeout=5).topics.get(args.topic)
        except KafkaException:
            shown = None
        if shown is not None and shown.error is None and shown.partitions:
            consumer.assign([TopicPartition(args.topic, p, start) for p in shown.partitions])
            break
        time.sleep(1)
    rule = CardTestingRule(args.max_amount, args.min_attempts, args.window_s)
    alerts = 0
    print(f"watching {args.topic}, alerting to {args.alerts_topic}", file=sys.stderr, flush=True)
    try:
        while not stopping:
            for message in consumer.consume(500, timeout=0.2):
                if message.error() is not None:
                    continue
                try:
                    event = json.loads(message.value() or b"")
                except ValueError:
                    continue
                for alert in rule.see(event, time.monotonic()):
                    key = alert["transaction_id"].encode()
                    producer.produce(args.alerts_topic, json.dumps(alert).encode(), key)
                    alerts += 1
            producer.poll(0)
    finally:
        producer.flush(10)
        consumer.close()
        print(f"stopped after {alerts} alerts", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
