"""The service fixtures work: produce and read back from Kafka, S3 get/put, a broker outage."""

from __future__ import annotations

from contextlib import closing

from confluent_kafka import KafkaError, Message, Producer

from realservices import Record, S3Server, TansuBroker, consume_all, create_topic

FLUSH_TIMEOUT_S = 30


def _produce(bootstrap: str, topic: str, count: int, *, prefix: str = "") -> dict[bytes, Message]:
    """Produce ``count`` keyed messages with headers (acks=all, idempotent); return the reports."""
    reports: dict[bytes, Message] = {}
    errors: list[KafkaError] = []

    def on_delivery(err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            errors.append(err)
        else:
            key = msg.key()
            assert key is not None
            reports[key] = msg

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})
    try:
        for i in range(count):
            producer.produce(
                topic,
                key=f"{prefix}key-{i}".encode(),
                value=f'{{"n": {i}}}'.encode(),
                headers={"source": b"test", "seq": str(i).encode()},
                on_delivery=on_delivery,
            )
        assert producer.flush(FLUSH_TIMEOUT_S) == 0, "messages still undelivered after flush"
    finally:
        producer.close()
    assert errors == []
    assert len(reports) == count
    return reports


def _as_expected(topic: str, reports: dict[bytes, Message]) -> list[tuple[object, ...]]:
    """What reading the topic must give back for the delivered ``reports``, comparably ordered."""
    rows = []
    for key, msg in reports.items():
        seq = key.decode().rsplit("-", 1)[1]
        rows.append(
            (
                topic,
                msg.partition(),
                msg.offset(),
                key,
                f'{{"n": {seq}}}'.encode(),
                {"source": b"test", "seq": seq.encode()},
            )
        )
    return sorted(rows, key=lambda row: (row[1], row[2]))


def _as_rows(records: list[Record]) -> list[tuple[object, ...]]:
    return [(r.topic, r.partition, r.offset, r.key, r.value, r.headers) for r in records]


def test_consume_all_returns_exactly_what_was_produced(kafka_bootstrap: str, topic: str) -> None:
    reports = _produce(kafka_bootstrap, topic, 60)

    records = consume_all(kafka_bootstrap, topic)

    assert _as_rows(records) == _as_expected(topic, reports)
    assert {r.partition for r in records} <= {0, 1, 2}
    assert all(r.timestamp_ms > 0 for r in records)


def test_consume_all_of_an_empty_topic_is_empty(kafka_bootstrap: str, topic: str) -> None:
    assert consume_all(kafka_bootstrap, topic) == []


def test_s3_put_then_get(s3: S3Server) -> None:
    with closing(s3.client()) as client:
        client.create_bucket(Bucket="datasets")
        client.put_object(Bucket="datasets", Key="dir/tx.csv", Body=b"id,amount\n1,9.99\n")

        body = client.get_object(Bucket="datasets", Key="dir/tx.csv")["Body"].read()

        assert body == b"id,amount\n1,9.99\n"
        assert [b["Name"] for b in client.list_buckets()["Buckets"]] == ["datasets"]


def test_s3_reset_forgets_everything(s3: S3Server) -> None:
    with closing(s3.client()) as client:
        client.create_bucket(Bucket="to-forget")

        s3.reset()

        assert client.list_buckets()["Buckets"] == []


def test_durable_broker_keeps_messages_across_kill_and_restart(
    durable_broker: TansuBroker,
) -> None:
    bootstrap, port = durable_broker.bootstrap, durable_broker.port
    create_topic(bootstrap, "outage", partitions=3)
    before = _produce(bootstrap, "outage", 40, prefix="before-")

    durable_broker.kill()
    assert durable_broker.process.returncode is not None
    durable_broker.restart()

    assert (durable_broker.bootstrap, durable_broker.port) == (bootstrap, port)
    assert _as_rows(consume_all(bootstrap, "outage")) == _as_expected("outage", before)
    # And it still takes writes after the outage.
    after = _produce(bootstrap, "outage", 10, prefix="after-")
    assert _as_rows(consume_all(bootstrap, "outage")) == _as_expected("outage", before | after)
