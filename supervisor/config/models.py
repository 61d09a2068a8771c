"""The settings models: Kafka, the dataset, the named profiles, metrics, and the whole `Config`
with its two constructors (`Config.from_yaml`, `Config.from_env`; see `supervisor.config.loading`).

Every model is frozen and refuses unknown keys. Secrets (the S3 keys and secret-like
`kafka.config` properties) never appear in a repr or a `model_dump`.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Final, Literal, get_args

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    field_serializer,
    field_validator,
    model_validator,
)

from supervisor.config.evaluation import EvaluationSettings
from supervisor.config.registry import MessageFormat, SchemaRegistrySettings
from supervisor.config.shard import ShardSettings
from supervisor.config.streams import (
    Duplicates,
    HeadersMode,
    IdMode,
    KafkaTimestampMode,
    Labels,
    LateEvents,
    MessageKey,
    OutOfOrder,
    Scenario,
    Schedule,
    TimestampMode,
)
from supervisor.config.types import (
    MAX_SECONDS,
    NAME_RE,
    Count,
    KafkaValue,
    Records,
    Seconds,
    Topic,
    none_as_empty,
    plain_number,
    show,
)
from supervisor.dataset import FIELDS, Dataset, S3Location, load_dataset
from supervisor.dataset.columns import ColumnType, Format, Reading
from supervisor.dataset.location import DatasetLocation, parse_location
from supervisor.redaction import is_secret_key, redact

PRODUCER_DEFAULTS: Final[Mapping[str, KafkaValue]] = MappingProxyType(
    {
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 5,
        "compression.type": "lz4",
        "client.id": "streaming-producer",
    }
)
"""Producer properties that `kafka.config` is laid over: durable, ordered, lightly batched."""


EMBEDDED: Final = "embedded"
"""The `bootstrap_servers` value selecting the in-process mock cluster."""

DEFAULT_DATASET_URI: Final = "data/transactions.csv"

_BOOTSTRAP_KEYS: Final = frozenset({"bootstrap.servers", "metadata.broker.list"})
# confluent-kafka's properties that take a Python callable.
_CALLBACK_KEYS: Final = frozenset(
    {
        "on_delivery",
        "error_cb",
        "throttle_cb",
        "stats_cb",
        "oauth_cb",
        "logger",
        "on_commit",
        "on_assign",
        "on_revoke",
        "on_lost",
    }
)


DEFAULT_SOURCE: Final = "<defaults>"
"""`Config.source` of a config built in code rather than by `from_yaml` or `from_env`."""


class S3Settings(BaseModel):
    """Credentials and endpoint for an `s3://` dataset (AWS S3 or MinIO)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    endpoint_url: str | None = None
    """S3 endpoint, e.g. `http://minio:9000` for MinIO; None for AWS. Env `ENDPOINT_URL` wins."""
    access_key: SecretStr | None = None
    """Access key id; None leaves it to boto3's credential chain. Env `KEY` wins."""
    secret_key: SecretStr | None = None
    """Secret access key. Env `SECRET` wins."""
    region: str | None = None
    """Region; when unset, env `AWS_REGION` or `AWS_DEFAULT_REGION`."""

    def connection(self) -> S3Location:
        """What the dataset loader needs to reach S3."""
        return S3Location(
            endpoint_url=self.endpoint_url,
            access_key=self.access_key,
            secret_key=self.secret_key,
            region=self.region,
        )


class DatasetSettings(BaseModel):
    """Where the transactions dataset is, how to read it, what its messages carry beyond the seven
    fields, and what to do with rows that fail validation."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    uri: str = DEFAULT_DATASET_URI
    """`s3://bucket/key` or a local path; the loaders make a relative path absolute (against
    the config file's folder, or the working directory in seed mode)."""
    on_invalid: Literal["skip", "fail"] = "skip"
    """`skip` drops (and counts) invalid rows; `fail` refuses to start on the first one."""
    s3: Annotated[S3Settings, BeforeValidator(none_as_empty)] = S3Settings()
    format: Format | None = None
    """`csv`, `jsonl` or `parquet`; None: by the URI's extension (`.csv`, `.jsonl`/`.ndjson`,
    `.parquet`, each CSV or JSON Lines one also with `.gz`), CSV when it says nothing."""
    extra_columns: Literal["drop", "keep"] = "drop"
    """Columns beyond the seven fields: `drop` (named once in the load's log) or `keep`, sent
    after the seven in every message."""
    columns: Annotated[dict[str, ColumnType], BeforeValidator(none_as_empty)] = {}
    """Types of kept columns (`string`, `int`, `float`, `bool`), validated like the seven
    fields; a kept column not listed is a string."""
    entity: str | None = Field(default=None, min_length=1)
    """A kept column naming who a transaction belongs to (e.g. `card_id`): fraud scenarios then
    act on it (docs/realistic-streams.md)."""

    @field_validator("uri")
    @classmethod
    def _check_uri(cls, uri: str) -> str:
        parse_location(uri)  # raises ValueError with what is wrong
        return uri

    @model_validator(mode="after")
    def _check_columns(self) -> DatasetSettings:
        seven = [name for name in (*self.columns, self.entity) if name in FIELDS]
        if seven:
            raise ValueError(
                f"{seven[0]!r} is one of the seven fields, not an extra column: remove it from"
                " 'columns' / 'entity'"
            )
        if self.extra_columns == "drop" and (self.columns or self.entity):
            what = "'columns'" if self.columns else f"'entity: {self.entity}'"
            raise ValueError(
                f"{what} needs 'extra_columns: keep' (with 'drop', no extra column is sent)"
            )
        return self

    def reading(self) -> Reading:
        """What the dataset loader needs to read the file."""
        return Reading(
            format=self.format,
            extra_columns=self.extra_columns,
            types=MappingProxyType(dict(self.columns)),
            entity=self.entity,
        )

    @property
    def location(self) -> DatasetLocation:
        """`uri` parsed: an `S3Object` (`s3://`, any case of the scheme) or a `LocalFile`."""
        return parse_location(self.uri)

    def load(self) -> Dataset:
        """Read and validate the dataset these settings name (blocking: `load_dataset`)."""
        return load_dataset(
            self.location,
            s3=self.s3.connection(),
            on_invalid=self.on_invalid,
            reading=self.reading(),
        )


class KafkaSettings(BaseModel):
    """The Kafka cluster, the default topic and librdkafka producer properties."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    bootstrap_servers: str = EMBEDDED
    """`host:port[,host:port...]`, or `embedded` for an in-process mock cluster.
    Env `KAFKA_BOOTSTRAP_SERVERS` wins."""
    topic: Topic = "transactions"
    """Default topic of every profile. Env `KAFKA_TOPIC` wins."""
    config: dict[str, KafkaValue] = {}
    """librdkafka producer properties (security, tuning), laid over `PRODUCER_DEFAULTS`."""

    @field_validator("bootstrap_servers")
    @classmethod
    def _check_bootstrap(cls, servers: str) -> str:
        if not servers.strip():
            raise ValueError("must not be empty: give host:port[,host:port...] or 'embedded'")
        return servers

    @field_validator("config", mode="before")
    @classmethod
    def _check_config(cls, config: object) -> object:
        if not isinstance(config, dict):
            return config  # pydantic reports the wrong type
        for key, value in config.items():
            if not isinstance(key, str):
                raise ValueError(f"property name {show(key)} must be a string")
            if key in _BOOTSTRAP_KEYS:
                raise ValueError(f"{key!r} cannot be set here: use kafka.bootstrap_servers")
            if key in _CALLBACK_KEYS:
                raise ValueError(f"{key!r} is a callback and cannot be set from a config file")
            if not isinstance(value, str | int | float):  # bool is an int
                got = "" if is_secret_key(key) else f" (got {show(value)})"
                raise ValueError(f"property {key!r} must be a string, number or boolean{got}")
        return config

    @field_serializer("config")
    def _serialize_config(self, config: dict[str, KafkaValue]) -> dict[str, KafkaValue]:
        return redact(config)

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        for name, value in super().__repr_args__():
            yield name, redact(value) if name == "config" else value

    @property
    def is_embedded(self) -> bool:
        """Whether to run against the in-process mock cluster."""
        return self.bootstrap_servers == EMBEDDED

    def producer_config(self) -> dict[str, KafkaValue]:
        """The properties to build the producer with, secrets included: never log this."""
        config = {**PRODUCER_DEFAULTS, **self.config}
        if not self.is_embedded:
            config["bootstrap.servers"] = self.bootstrap_servers
        return config

    def redacted_config(self) -> dict[str, KafkaValue]:
        """`producer_config()` with secret values masked, for logs."""
        return redact(self.producer_config())


class ProfileSettings(BaseModel):
    """One named volume profile: every `interval_s`, send `min_records`..`max_records` records."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    interval_s: Annotated[float, BeforeValidator(plain_number), Field(ge=0.0001, le=MAX_SECONDS)]
    """Seconds between batches: at least 100 µs (10,000 batches a second), at most a year."""
    min_records: Records
    """Fewest records per batch."""
    max_records: Records
    """Most records per batch (at least `min_records`)."""
    topic: Topic | None = None
    """Topic for this profile; None uses `kafka.topic`."""
    seed: Count | None = None
    """Seed of this profile's random generator, for a reproducible stream; None is random."""
    key: Annotated[str, Field(min_length=1)] | None = None
    """The field used as the message key: one of the seven (`MessageKey`) or a kept extra column
    (e.g. `card_id`, checked against the dataset when it is loaded); None sends unkeyed
    messages."""
    id: IdMode = "keep"
    timestamp: TimestampMode = "keep"
    kafka_timestamp: KafkaTimestampMode = "produce"
    schedule: Schedule | None = None
    late: LateEvents | None = None
    out_of_order: OutOfOrder | None = None
    duplicates: Duplicates | None = None
    scenario: Scenario | None = None
    labels: Labels | None = None
    format: MessageFormat = "json"
    """How message values (and labels) are written: `json`, or Confluent wire-format `avro`,
    `protobuf`, `json-schema` (these need `schema_registry`)."""
    headers: HeadersMode = "all"

    @model_validator(mode="after")
    def _check_batch_range(self) -> ProfileSettings:
        if self.min_records > self.max_records:
            raise ValueError(
                f"min_records ({self.min_records}) is greater than max_records ({self.max_records})"
            )
        if self.labels is not None and self.scenario is None:
            raise ValueError("'labels' needs a 'scenario': only scenario events are labelled")
        return self

    @property
    def shapes_events(self) -> bool:
        """Whether anything beyond sampling and the id/timestamp rewrite is configured."""
        return any(
            (
                self.timestamp == "shift",
                self.kafka_timestamp == "event",
                self.late,
                self.out_of_order,
                self.duplicates,
                self.scenario,
            )
        )

    @property
    def records_per_s(self) -> float:
        """Average records per second, by the seed's formula: (min + max) / 2 / interval_s."""
        return (self.min_records + self.max_records) / 2 / self.interval_s


class MetricsSettings(BaseModel):
    """The HTTP endpoint serving /metrics (Prometheus), /healthz and /readyz."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    port: Annotated[int, BeforeValidator(plain_number), Field(ge=1, le=65535)] | None = None
    """TCP port; None (the default) serves nothing."""
    host: str = "0.0.0.0"
    """Bind address: 0.0.0.0 in containers, 127.0.0.1 for this host only."""


class Config(BaseModel):
    """The whole configuration: Kafka, the dataset and the named profiles to run."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kafka: Annotated[KafkaSettings, BeforeValidator(none_as_empty)] = KafkaSettings()
    dataset: Annotated[DatasetSettings, BeforeValidator(none_as_empty)] = DatasetSettings()
    profiles: Annotated[dict[str, ProfileSettings], BeforeValidator(none_as_empty)]
    """Profiles by name, each run as its own supervised task."""
    shutdown_timeout_s: Seconds = 10.0
    """Budget for draining and flushing on shutdown."""
    stats_interval_s: Annotated[
        float, BeforeValidator(plain_number), Field(ge=0.1, le=MAX_SECONDS)
    ] = 10.0
    """Seconds between per-profile summary log lines."""
    metrics: Annotated[MetricsSettings, BeforeValidator(none_as_empty)] = MetricsSettings()
    instance_id: str | None = Field(default=None, min_length=1, max_length=128)
    """This process's name in logs, message headers and metrics when several run side by side;
    None takes the host name (a container's or pod's name)."""
    reload: Literal["signal", "watch"] = "signal"
    """`signal`: re-read the config file on SIGHUP; `watch`: also whenever its content changes."""
    evaluation: EvaluationSettings | None = None
    """Score the detector under test from its alerts topic (docs/evaluation.md); None: off."""
    shard: Annotated[ShardSettings, BeforeValidator(none_as_empty)] = ShardSettings()
    """Which of several processes running this config this one is (see `config.shard`)."""
    schema_registry: SchemaRegistrySettings | None = None
    """The Schema Registry of `avro`, `protobuf` and `json-schema` profiles; None: JSON only."""

    _source: str = PrivateAttr(default=DEFAULT_SOURCE)

    @property
    def source(self) -> str:
        """Where this configuration came from (a file path or "environment"), for logs: set by
        the constructors, not a setting (a config file cannot write it)."""
        return self._source

    def with_source(self, source: str) -> Config:
        """This configuration, as coming from `source` (for a config built in code)."""
        config = self.model_copy()
        config._source = source
        return config

    @property
    def instance(self) -> str:
        """`instance_id`, or the host name."""
        return self.instance_id or socket.gethostname()

    def topics(self) -> list[str]:
        """Every topic the profiles write to: their own (or `kafka.topic`) and their labels'."""
        topics = set()
        for profile in self.profiles.values():
            topics.add(profile.topic or self.kafka.topic)
            if profile.labels is not None:
                topics.add(profile.labels.topic)
        return sorted(topics)

    @field_validator("profiles")
    @classmethod
    def _check_profiles(cls, profiles: dict[str, ProfileSettings]) -> dict[str, ProfileSettings]:
        if not profiles:
            raise ValueError("no profiles defined — add at least one under 'profiles:'")
        for name in profiles:
            if not NAME_RE.fullmatch(name):
                raise ValueError(
                    f"invalid profile name {name!r}: use up to 64 letters, digits, '_', '.' or '-',"
                    " starting with a letter or digit"
                )
        return profiles

    @model_validator(mode="after")
    def _check_keys(self) -> Config:
        seven = get_args(MessageKey)
        for name, profile in self.profiles.items():
            key = profile.key
            if key is not None and key not in seven and self.dataset.extra_columns != "keep":
                fields = ", ".join(repr(f) for f in seven)
                raise ValueError(
                    f"profiles.{name}.key: must be one of {fields}, or an extra column the"
                    f" messages keep (dataset.extra_columns: keep) (got {key!r})"
                )
        return self

    @model_validator(mode="after")
    def _check_formats(self) -> Config:
        formats: dict[str, tuple[str, str]] = {}  # topic -> (format, profile)
        for name, profile in self.profiles.items():
            if profile.format != "json" and self.schema_registry is None:
                raise ValueError(
                    f"profiles.{name}: format {profile.format} needs a 'schema_registry' section"
                    " with its url (mock://NAME for confluent-kafka's in-process mock)"
                )
            topics = [profile.topic or self.kafka.topic]
            if profile.labels is not None:
                topics.append(profile.labels.topic)
            for topic in topics:
                seen = formats.setdefault(topic, (profile.format, name))
                if seen[0] != profile.format:
                    raise ValueError(
                        f"topic {topic!r} would get {seen[0]} from profile {seen[1]!r} and"
                        f" {profile.format} from profile {name!r}: one topic, one format"
                        " (give one of them its own topic)"
                    )
        return self

    @model_validator(mode="after")
    def _check_evaluated_ids(self) -> Config:
        # An alert names a transaction by id: with `id: keep` a sampled row's id repeats, and an
        # alert could not say which of its sends it flags.
        if self.evaluation is not None:
            kept = [name for name, p in self.profiles.items() if p.id != "fresh"]
            if kept:
                raise ValueError(
                    f"evaluation needs every profile to send unique ids: set 'id: fresh' in"
                    f" {', '.join(repr(n) for n in kept)} (with 'id: keep' a sampled row's id"
                    " repeats, and an alert naming it could not be attributed)"
                )
        return self

    @classmethod
    def from_yaml(cls, path: str | Path, env: Mapping[str, str] | None = None) -> Config:
        """Load a config file: expand `${VAR}` references, apply presets and env overrides.

        `env` defaults to `os.environ`. Raises `ConfigError` with a one-line message.
        """
        from supervisor.config.loading import load_yaml  # loading builds on these models

        return load_yaml(Path(path), env)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Config:
        """The seed's mode, for when there is no config file: one profile named "default" from
        `PRODUCE_INTERVAL`, `MIN_RECORDS_PER_BATCH` and `MAX_RECORDS_PER_BATCH`, the dataset from
        `DATASET_URI` (relative to the working directory), plus the same env overrides.
        """
        from supervisor.config.loading import load_env

        return load_env(env)
