"""`streaming-producer check`: is everything a run needs in place? One line per check, ✓ or ✗.

The checks, in order: the config (already validated when it was loaded); Kafka (a metadata
request within a bounded time: brokers, and every topic the profiles write to, with its
partitions); for an `s3://` dataset, the object (HEAD: it exists, its size); and the dataset itself,
loaded and validated exactly as `run` would (valid and invalid rows, the first reasons); and when
profiles inject fraud, whether the dataset has the rows their scenarios mutate (debits, the
merchant named); and for `avro`, `protobuf` or `json-schema` profiles, the Schema Registry (each
topic's schema looked up, never registered, and the dataset serialized with it).

Nothing is produced, and nothing is created: the metadata request asks for all topics, never for
one by name, since a broker with `auto.create.topics.enable` would create a topic asked for by
name. Every line goes through a redactor that masks the config's secrets (S3 keys, secret-like
`kafka.config` values), whatever a server's error message echoes back.

The exit code is 0 only when every check passed; otherwise 2 (bad config, dataset or environment),
or 4 when the only failure is Kafka being unreachable, as `run` would exit.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final, TextIO

import botocore.exceptions
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient

# Not re-exported by confluent_kafka.admin for type checkers: import from where they are defined.
from confluent_kafka.admin._config import ConfigResource
from confluent_kafka.admin._metadata import ClusterMetadata
from confluent_kafka.admin._resource import ResourceType

from supervisor.config import REDACTED, Config, is_secret_key
from supervisor.dataset import Dataset, S3Object, s3_client
from supervisor.dataset.s3 import bad_endpoint, describe_failure
from supervisor.errors import ConfigError, DatasetError, ExitCode, RegistryError
from supervisor.formats.encodings import Encodings
from supervisor.profile.feasibility import check_scenarios
from supervisor.redaction import url_password
from supervisor.sinks import kafka_errors

PASS: Final = "✓"
FAIL: Final = "✗"
DEFAULT_TIMEOUT_S: Final = 10.0
_NAME_WIDTH: Final = 8
_REASONS_SHOWN: Final = 3


@dataclass(frozen=True, slots=True)
class Check:
    """The outcome of one check."""

    name: str
    ok: bool
    detail: str
    exit_code: ExitCode = ExitCode.BAD_INPUT
    """What a failure of this check means for the process exit code."""


def run_checks(config: Config, *, out: TextIO, timeout_s: float = DEFAULT_TIMEOUT_S) -> int:
    """Run every check against `config`, writing one line per check to `out` as it completes
    (then a summary line); return the exit code: 0 only when all passed."""
    redact = _redactor(config)
    results: list[Check] = []
    for check in _checks(config, timeout_s):
        results.append(check)
        _write(out, check, redact)
    return _finish(out, results)


def config_check_failed(error: ConfigError, *, out: TextIO) -> int:
    """Report a config that did not load as the one failed check; return the exit code (2).
    `ConfigError` messages never hold a secret (see `supervisor.config`)."""
    check = Check("config", ok=False, detail=str(error), exit_code=error.exit_code)
    _write(out, check, str)
    return _finish(out, [check])


def _checks(config: Config, timeout_s: float) -> Iterator[Check]:
    yield _config_check(config)
    yield from _kafka_checks(config, timeout_s)
    location = config.dataset.location
    if isinstance(location, S3Object):
        s3 = _s3_check(config, location, timeout_s)
        yield s3
        if not s3.ok:
            yield Check("dataset", ok=False, detail=f"{location}: not loaded, the S3 check failed")
            return
    yield from _dataset_checks(config)


def _write(out: TextIO, check: Check, redact: Callable[[str], str]) -> None:
    mark = PASS if check.ok else FAIL
    out.write(f"{mark} {check.name:<{_NAME_WIDTH}} {redact(check.detail)}\n")
    out.flush()


def _finish(out: TextIO, results: list[Check]) -> int:
    failed = [check for check in results if not check.ok]
    if failed:
        out.write(f"{len(failed)} of {len(results)} checks failed\n")
    else:
        out.write(f"all {len(results)} checks passed\n")
    out.flush()
    codes = {check.exit_code for check in failed}
    if not codes:
        return ExitCode.OK
    # Kafka unreachable (4) only when nothing else failed: a bad input (2) comes first, as in run.
    return ExitCode.KAFKA_UNREACHABLE if codes == {ExitCode.KAFKA_UNREACHABLE} else min(codes)


def _redactor(config: Config) -> Callable[[str], str]:
    s3 = config.dataset.s3
    secrets = [key.get_secret_value() for key in (s3.access_key, s3.secret_key) if key is not None]
    secrets += [str(v) for k, v in config.kafka.config.items() if is_secret_key(k)]
    registry = config.schema_registry
    if registry is not None:
        secrets += [str(v) for k, v in registry.config.items() if is_secret_key(k)]
        if registry.basic_auth_user_info is not None:
            secrets.append(registry.basic_auth_user_info.get_secret_value())
        secrets += [p for p in (url_password(registry.url),) if p]
    # Longest first, so a secret containing another is masked whole; short values (a "1", a
    # "true") would mask unrelated text and are not secrets worth the name.
    secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def redact(text: str) -> str:
        for secret in secrets:
            text = text.replace(secret, REDACTED)
        return text

    return redact


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


# --- config --------------------------------------------------------------------------------------


def _config_check(config: Config) -> Check:
    profiles = config.profiles
    total = sum(p.records_per_s for p in profiles.values())
    topics = config.topics()
    shard = config.shard.split
    share = "" if shard.alone else f" (shard {shard}: {total / shard.count:,.2f} here)"
    return Check(
        "config",
        ok=True,
        detail=f"{config.source}: {_plural(len(profiles), 'profile')} ({', '.join(profiles)}),"
        f" {total:,.2f} records/s in all{share}, to {', '.join(topics)}",
    )


# --- Kafka ---------------------------------------------------------------------------------------


def _kafka_checks(config: Config, timeout_s: float) -> Iterator[Check]:
    kafka = config.kafka
    topics = config.topics()
    if kafka.is_embedded:
        # Nothing to reach, but the properties are librdkafka's to accept, as `run` asks it to.
        try:
            Producer({**kafka.producer_config(), "test.mock.num.brokers": 1, "log_level": 0})
        except (KafkaException, TypeError, ValueError) as exc:
            problem = kafka_errors.config_problem(kafka.producer_config(), exc)
            yield Check("kafka", ok=False, detail=problem)
            return
        yield Check(
            "kafka", ok=True, detail="embedded: an in-process mock cluster, nothing to reach"
        )
        return
    servers = kafka.bootstrap_servers
    errors: list[KafkaError] = []  # librdkafka's error events, for the reason of a failure
    conf: dict[str, Any] = {
        **kafka.producer_config(),
        # The check reports failures itself: no librdkafka log lines on stderr.
        "log_level": 0,
        "error_cb": errors.append,
    }
    try:
        admin = AdminClient(conf)
    except KafkaException as exc:
        yield Check("kafka", ok=False, detail=f"kafka.config: {kafka_errors.reason(exc)}")
        return
    except (TypeError, ValueError) as exc:
        yield Check("kafka", ok=False, detail=f"kafka.config: {exc}")
        return
    started = time.monotonic()
    try:
        # All topics, never one by name: asking for a missing topic by name makes a broker with
        # auto.create.topics.enable create it, and a check must not change the cluster.
        metadata = admin.list_topics(timeout=timeout_s)
        if not metadata.brokers:
            raise KafkaException(KafkaError(KafkaError._TRANSPORT, "no brokers in metadata"))
    except KafkaException as exc:
        waited = time.monotonic() - started
        admin.poll(0)  # serve the error events queued meanwhile: they say why
        refused = [e for e in errors if e.code() in kafka_errors.CREDENTIAL_ERRORS]
        if refused:  # the brokers answered, but refused the client: a config problem
            yield Check(
                "kafka",
                ok=False,
                detail=f"{servers}: {refused[-1].str()} — {kafka_errors.FIX_CREDENTIALS}",
            )
            return
        # "Connect to ... failed: Connection refused", "Failed to resolve 'kafka:19092'": more
        # telling than the metadata request's own "Broker transport failure".
        transport = [e.str() for e in errors if e.code() in kafka_errors.TRANSPORT_ERRORS]
        reason = transport[-1] if transport else kafka_errors.reason(exc)
        yield Check(
            "kafka",
            ok=False,
            detail=f"{servers}: unreachable within {waited:.0f}s ({reason})"
            f" — {kafka_errors.FIX_SERVERS}",
            exit_code=ExitCode.KAFKA_UNREACHABLE,
        )
        return
    brokers = sorted(metadata.brokers.values(), key=lambda b: b.id)
    listed = ", ".join(f"{b.id} at {b.host}:{b.port}" for b in brokers)
    yield Check(
        "kafka",
        ok=True,
        detail=f"{servers}: {_plural(len(brokers), 'broker')} ({listed}),"
        f" controller {metadata.controller_id}, cluster {metadata.cluster_id}",
    )
    for topic in topics:
        yield _topic_check(admin, metadata, topic, timeout_s)
    if config.evaluation is not None:  # where the detector under test writes its alerts
        yield _topic_check(admin, metadata, config.evaluation.alerts_topic, timeout_s)


def _topic_check(
    admin: AdminClient, metadata: ClusterMetadata, topic: str, timeout_s: float
) -> Check:
    shown = metadata.topics.get(topic)
    if shown is None:
        return _missing_topic_check(admin, metadata, topic, timeout_s)
    if shown.error is not None:
        return Check("topic", ok=False, detail=f"{topic}: {shown.error.str()}")
    partitions = shown.partitions
    leaderless = sorted(p.id for p in partitions.values() if p.leader < 0 or p.error is not None)
    if not partitions:
        return Check("topic", ok=False, detail=f"{topic}: no partitions")
    if leaderless:
        return Check(
            "topic",
            ok=False,
            detail=f"{topic}: partitions {leaderless} of {len(partitions)} have no leader"
            " — messages to them wait until one is elected",
        )
    replicas = min(len(p.replicas) for p in partitions.values())
    return Check(
        "topic",
        ok=True,
        detail=f"{topic}: {_plural(len(partitions), 'partition')}, each with a leader"
        f" (replication factor {replicas})",
    )


def _missing_topic_check(
    admin: AdminClient, metadata: ClusterMetadata, topic: str, timeout_s: float
) -> Check:
    create = (
        f"create it (kafka-topics.sh --bootstrap-server ... --create --topic {topic}"
        " --partitions 3)"
    )
    auto_create = _broker_setting(admin, metadata, "auto.create.topics.enable", timeout_s)
    if auto_create == "true":
        partitions = _broker_setting(admin, metadata, "num.partitions", timeout_s) or "?"
        return Check(
            "topic",
            ok=True,
            detail=f"{topic}: does not exist yet; the brokers create it on first produce"
            f" (auto.create.topics.enable=true, num.partitions={partitions})",
        )
    why = (
        "the brokers do not create topics (auto.create.topics.enable=false)"
        if auto_create == "false"
        else "the brokers' auto.create.topics.enable could not be read"
    )
    return Check(
        "topic",
        ok=False,
        detail=f"{topic}: does not exist ({_plural(len(metadata.topics), 'topic')} on the"
        f" cluster) and {why} — {create}",
    )


def _broker_setting(
    admin: AdminClient, metadata: ClusterMetadata, name: str, timeout_s: float
) -> str | None:
    """A broker configuration value read with DescribeConfigs; None when it cannot be read
    (not authorized, not supported by the server, or absent)."""
    broker = str(metadata.controller_id if metadata.controller_id >= 0 else min(metadata.brokers))
    resource = ConfigResource(ResourceType.BROKER, broker)
    try:
        future = admin.describe_configs([resource], request_timeout=timeout_s)[resource]
        entries = future.result(timeout=timeout_s)
    except (KafkaException, TimeoutError, ValueError):
        return None
    entry = entries.get(name)
    value = None if entry is None else entry.value
    return None if value is None else str(value).lower()


# --- S3 ------------------------------------------------------------------------------------------


def _s3_check(config: Config, obj: S3Object, timeout_s: float) -> Check:
    s3 = config.dataset.s3.connection()
    try:
        client = s3_client(
            s3, connect_timeout_s=min(timeout_s, 5.0), read_timeout_s=timeout_s, attempts=2
        )
    except ValueError as exc:
        return Check("s3", ok=False, detail=f"{obj}: {bad_endpoint(s3, exc)}")
    try:
        head = client.head_object(Bucket=obj.bucket, Key=obj.key)
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
        return Check(
            "s3", ok=False, detail=f"{obj}: {describe_failure(exc, obj, s3, client=client)}"
        )
    finally:
        client.close()
    size = int(head.get("ContentLength", 0))
    modified = head.get("LastModified")
    when = f", modified {modified:%Y-%m-%d %H:%M:%S %Z}".rstrip() if modified else ""
    if size == 0:
        return Check("s3", ok=False, detail=f"{obj} at {s3.where}: the object is empty")
    return Check("s3", ok=True, detail=f"{obj} at {s3.where}: {size:,} bytes{when}")


# --- the dataset ---------------------------------------------------------------------------------


def _dataset_checks(config: Config) -> Iterator[Check]:
    settings = config.dataset
    try:
        dataset = settings.load()
    except DatasetError as exc:  # "dataset <uri>: ...": the line already says "dataset"
        yield Check("dataset", ok=False, detail=str(exc).removeprefix("dataset "))
        return
    yield Check("dataset", ok=True, detail=_describe_dataset(dataset))
    kinds = sorted({p.scenario.kind for p in config.profiles.values() if p.scenario is not None})
    if kinds:
        try:
            check_scenarios(config, dataset)
        except DatasetError as exc:
            yield Check("fraud", ok=False, detail=str(exc))
        else:
            yield Check(
                "fraud", ok=True, detail=f"the dataset supports the scenarios {', '.join(kinds)}"
            )
    yield from _registry_checks(config, dataset)


# --- the Schema Registry -------------------------------------------------------------------------


def _registry_checks(config: Config, dataset: Dataset) -> Iterator[Check]:
    """Each schema a run would use, looked up (a check registers nothing)."""
    settings = config.schema_registry
    if settings is None or all(p.format == "json" for p in config.profiles.values()):
        return
    lookup = settings.model_copy(update={"auto_register": False})
    encodings = Encodings(lookup)
    try:
        ready = encodings.prepare(config, dataset)
    except ConfigError as exc:
        yield Check("registry", ok=False, detail=str(exc))
        return
    except RegistryError as exc:
        if exc.status == 404 and settings.auto_register:
            yield Check(
                "registry",
                ok=True,
                detail=f"{settings.shown_url}: reachable; a schema is not registered yet"
                " (auto_register: true registers it at start)",
            )
        else:
            yield Check("registry", ok=False, detail=str(exc))
        return
    finally:
        encodings.close()
    for topic in ready:
        yield Check(
            "registry",
            ok=True,
            detail=f"{settings.shown_url}: {topic['topic']}: {topic['format']} {topic['schema']}"
            f" schema id {topic['schema_id']}, the dataset serializes with it",
        )


def _describe_dataset(dataset: Dataset) -> str:
    detail = f"{dataset.source}: {_plural(len(dataset), 'valid row')} of {dataset.rows_read:,} read"
    if dataset.columns:
        kept = ", ".join(f"{name} ({kind})" for name, kind in dataset.columns.items())
        detail += f"; also sent: {kept}"
    if dataset.dropped:
        detail += f"; not sent: {', '.join(dataset.dropped)}"
    if not dataset.invalid_count:
        return detail
    first = "; ".join(
        f"{row.where}: {row.reason}" for row in dataset.invalid_samples[:_REASONS_SHOWN]
    )
    more = dataset.invalid_count - min(_REASONS_SHOWN, len(dataset.invalid_samples))
    return (
        f"{detail}; {_plural(dataset.invalid_count, 'invalid row')} skipped"
        f" (dataset.on_invalid: skip) — {first}{f' (+{more:,} more)' if more else ''}"
    )
