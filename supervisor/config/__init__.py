"""Configuration: frozen settings models and the two ways to build them.

`Config.from_yaml(path)` reads a config file of named volume profiles; `Config.from_env()` is the
seed's single-profile mode, used when there is no config file. Both apply the seed's environment
overrides (`KAFKA_BOOTSTRAP_SERVERS`, `KAFKA_TOPIC`, `ENDPOINT_URL`, `KEY`, `SECRET`) and turn
every problem into one `ConfigError` line naming the file, the key path and what is wrong.

Secrets (the S3 keys and secret-like `kafka.config` properties) never appear in a repr, a
`model_dump` or an error message.
"""

from __future__ import annotations

import datetime as dt
import difflib
import importlib.resources
import itertools
import math
import os
import re
import reprlib
import socket
import types
import zoneinfo
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Final, Literal, TypeAlias, Union, get_args, get_origin

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from supervisor.dataset import S3Location
from supervisor.errors import ConfigError

KafkaValue: TypeAlias = str | int | float | bool
"""A librdkafka property value as it can be written in YAML."""

IdMode = Literal["keep", "fresh"]
"""`keep` sends the dataset's transaction id; `fresh` a new UUID4 per message."""

TimestampMode = Literal["keep", "now", "shift"]
"""`keep` sends the dataset's timestamp; `now` the time the message is produced; `shift` the
dataset's timestamp moved by one offset, so that the dataset's latest moment is the run's start:
every gap between records is kept, and every event time is in the past."""

KafkaTimestampMode = Literal["produce", "event"]
"""`produce`: Kafka's message timestamp is the time it was produced (librdkafka's default);
`event`: it is the event time written in the message value."""

ScenarioKind = Literal["card-testing", "amount-outlier", "velocity", "merchant-compromise"]
"""The labelled fraud scenarios a profile can inject."""

DIURNAL_CURVE: Final = (
    0.361, 0.227, 0.155, 0.124, 0.124, 0.185, 0.361, 0.67, 0.979, 1.185, 1.34, 1.494,
    1.7, 1.597, 1.391, 1.34, 1.391, 1.546, 1.752, 1.803, 1.597, 1.237, 0.876, 0.565,
)  # fmt: skip
"""Default `diurnal` factors at each hour of the day (00:00, 01:00, ...): a retail card-payment
day, quiet at night, peaking at lunch and in the early evening. They average 1.0, so a profile's
own rate is its daily mean."""

MessageKey = Literal[
    "id", "description", "amount", "timestamp", "merchant", "operation_type", "side"
]
"""The transaction fields a message can be keyed by."""

Loc: TypeAlias = tuple[object, ...]
"""A key path into the raw YAML document (mapping keys and list indices)."""

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

REDACTED: Final = "**********"
"""What a secret value is shown as (the same mask pydantic uses for `SecretStr`)."""

EMBEDDED: Final = "embedded"
"""The `bootstrap_servers` value selecting the in-process mock cluster."""

DEFAULT_DATASET_URI: Final = "data/transactions.csv"

_SECRET_KEY_PARTS: Final = ("password", "secret", "passphrase", "private.key")
_SECRET_KEYS: Final = frozenset({"sasl.jaas.config", "sasl.oauthbearer.config", "ssl.key.pem"})
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

_TOPIC_RE: Final = re.compile(r"[A-Za-z0-9._-]{1,249}")
_NAME_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_PLAIN_KEY_RE: Final = re.compile(r"[A-Za-z0-9_-]+")
_SCHEME_RE: Final = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
_ENV_REF_RE: Final = re.compile(
    r"\$\$\{|\$\{(?:(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^{}]*))?\})?"
)

_ENV_OVERRIDES: Final = (
    ("KAFKA_BOOTSTRAP_SERVERS", ("kafka", "bootstrap_servers")),
    ("KAFKA_TOPIC", ("kafka", "topic")),
    ("ENDPOINT_URL", ("dataset", "s3", "endpoint_url")),
    ("KEY", ("dataset", "s3", "access_key")),
    ("SECRET", ("dataset", "s3", "secret_key")),
)
_REGION_VARS: Final = ("AWS_REGION", "AWS_DEFAULT_REGION")
_SEED_PROFILE_VARS: Final = (
    ("PRODUCE_INTERVAL", "interval_s", "0.5"),
    ("MIN_RECORDS_PER_BATCH", "min_records", "1"),
    ("MAX_RECORDS_PER_BATCH", "max_records", "10"),
)


def is_secret_key(key: str) -> bool:
    """Whether a librdkafka property holds a secret (a password, key or credentials)."""
    lowered = key.lower()
    return lowered in _SECRET_KEYS or any(part in lowered for part in _SECRET_KEY_PARTS)


def _redact(config: Mapping[str, KafkaValue]) -> dict[str, KafkaValue]:
    return {key: REDACTED if is_secret_key(key) else value for key, value in config.items()}


def _check_topic(topic: str) -> str:
    if not _TOPIC_RE.fullmatch(topic) or topic in {".", ".."}:
        raise ValueError(
            f"invalid Kafka topic name {topic!r}: use 1-249 letters, digits, '.', '_' or '-'"
            " (and not '.' or '..')"
        )
    return topic


def _plain_number(value: object) -> object:
    """Refuse booleans (YAML reads yes/no/on/off as such, and pydantic's lax mode would take them
    as 1 and 0) and NaN or infinity, before pydantic's range checks see them."""
    if isinstance(value, bool):
        raise ValueError(f"must be a number, not {_show(value)}")
    if isinstance(value, float | str):
        try:
            number = float(value)
        except ValueError:
            return value  # pydantic reports what it is not
        if not math.isfinite(number):
            raise ValueError(f"must be a finite number (got {_show(value)})")
    return value


def _none_as_empty(value: object) -> object:
    # A section whose keys are all commented out parses as null: it means "all defaults".
    return {} if value is None else value


_Topic: TypeAlias = Annotated[str, AfterValidator(_check_topic)]
_Seconds: TypeAlias = Annotated[float, BeforeValidator(_plain_number), Field(gt=0)]
_Count: TypeAlias = Annotated[int, BeforeValidator(_plain_number)]


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

    def location(self) -> S3Location:
        """What the dataset loader needs to reach S3."""
        return S3Location(
            endpoint_url=self.endpoint_url,
            access_key=self.access_key,
            secret_key=self.secret_key,
            region=self.region,
        )


class DatasetSettings(BaseModel):
    """Where the transactions CSV is and what to do with rows that fail validation."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    uri: str = DEFAULT_DATASET_URI
    """`s3://bucket/key` or a local path; the loaders make a relative path absolute."""
    on_invalid: Literal["skip", "fail"] = "skip"
    """`skip` drops (and counts) invalid rows; `fail` refuses to start on the first one."""
    s3: Annotated[S3Settings, BeforeValidator(_none_as_empty)] = S3Settings()

    @field_validator("uri")
    @classmethod
    def _check_uri(cls, uri: str) -> str:
        if not uri.strip():
            raise ValueError("must not be empty: give s3://bucket/key or a local path")
        if "\x00" in uri:
            raise ValueError("must not contain a NUL character")
        scheme = _SCHEME_RE.match(uri)
        if scheme is None:
            return uri
        if scheme[1].lower() != "s3":
            raise ValueError(f"unsupported scheme {scheme[1]!r}: use s3://bucket/key or a path")
        bucket, _, key = uri[scheme.end() :].partition("/")
        if not bucket or not key:
            raise ValueError(f"{uri!r} must name a bucket and a key: s3://bucket/path/to.csv")
        return uri


class KafkaSettings(BaseModel):
    """The Kafka cluster, the default topic and librdkafka producer properties."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    bootstrap_servers: str = EMBEDDED
    """`host:port[,host:port...]`, or `embedded` for an in-process mock cluster.
    Env `KAFKA_BOOTSTRAP_SERVERS` wins."""
    topic: _Topic = "transactions"
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
                raise ValueError(f"property name {_show(key)} must be a string")
            if key in _BOOTSTRAP_KEYS:
                raise ValueError(f"{key!r} cannot be set here: use kafka.bootstrap_servers")
            if key in _CALLBACK_KEYS:
                raise ValueError(f"{key!r} is a callback and cannot be set from a config file")
            if not isinstance(value, str | int | float):  # bool is an int
                got = "" if is_secret_key(key) else f" (got {_show(value)})"
                raise ValueError(f"property {key!r} must be a string, number or boolean{got}")
        return config

    @field_serializer("config")
    def _serialize_config(self, config: dict[str, KafkaValue]) -> dict[str, KafkaValue]:
        return _redact(config)

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        for name, value in super().__repr_args__():
            yield name, _redact(value) if name == "config" else value

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
        return _redact(self.producer_config())


# --- rate schedules, event time, fraud scenarios ----------------------------------------------


def _check_timezone(name: str) -> str:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r}: use an IANA name such as 'UTC' or 'Europe/Paris'"
        ) from None
    return name


def _clock_time(value: object) -> object:
    """Accept `HH:MM` or `HH:MM:SS` (24:00 for the end of the day); refuse anything else."""
    if isinstance(value, dt.time):
        return value.hour * 3600 + value.minute * 60 + value.second
    if not isinstance(value, str) or not _CLOCK_RE.fullmatch(value.strip()):
        raise ValueError(f"must be a time of day as 'HH:MM' or 'HH:MM:SS' (got {_show(value)})")
    parts = [int(p) for p in value.strip().split(":")]
    hours, minutes, seconds = (*parts, 0) if len(parts) == 2 else parts
    total = hours * 3600 + minutes * 60 + seconds
    if minutes > 59 or seconds > 59 or total > 86400:
        raise ValueError(f"{value!r} is not a time of day (00:00 to 24:00)")
    return total


_CLOCK_RE: Final = re.compile(r"\d{1,2}:\d{2}(:\d{2})?")
_Factor: TypeAlias = Annotated[float, BeforeValidator(_plain_number), Field(ge=0)]
"""A multiple of the profile's own rate: 0 pauses it, 1 is its configured rate."""
_Fraction: TypeAlias = Annotated[float, BeforeValidator(_plain_number), Field(ge=0, le=1)]
_Delay: TypeAlias = Annotated[float, BeforeValidator(_plain_number), Field(ge=0)]
_TimeZone: TypeAlias = Annotated[str, AfterValidator(_check_timezone)]
_ClockTime: TypeAlias = Annotated[int, BeforeValidator(_clock_time)]
"""Seconds since midnight, written `HH:MM[:SS]`."""


class _Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class RampSchedule(_Settings):
    """From `from` times the profile's rate to `to` times it, linearly over `duration_s`; `to`
    from then on."""

    kind: Literal["ramp"]
    start: _Factor = Field(alias="from")
    end: _Factor = Field(alias="to")
    duration_s: _Seconds

    @model_validator(mode="after")
    def _check_not_silent(self) -> RampSchedule:
        if self.start == 0 and self.end == 0:
            raise ValueError("'from' and 'to' are both 0: the profile would never send")
        return self


class BurstSchedule(_Settings):
    """The profile's rate times `factor` for `duration_s` every `every_s`; its own rate in between.
    The first burst starts at `offset_s` (default: after one `every_s` at the normal rate)."""

    kind: Literal["burst"]
    every_s: _Seconds
    duration_s: _Seconds
    factor: _Factor
    offset_s: _Delay | None = None

    @model_validator(mode="after")
    def _check_fits(self) -> BurstSchedule:
        if self.duration_s >= self.every_s:
            raise ValueError(
                f"duration_s ({self.duration_s:g}) must be shorter than every_s ({self.every_s:g})"
            )
        return self

    @property
    def first_burst_s(self) -> float:
        return self.every_s if self.offset_s is None else self.offset_s


class DiurnalSchedule(_Settings):
    """A day's curve of factors, one per hour, linear in between; `day_length_s` compresses the
    day (60 plays a whole day in a minute). `start_hour` is where in the day the run starts:
    null follows the wall clock in `timezone` (for a real-length day)."""

    kind: Literal["diurnal"]
    day_length_s: _Seconds = 86400.0
    curve: Annotated[tuple[_Factor, ...], Field(min_length=24, max_length=24)] = DIURNAL_CURVE
    start_hour: Annotated[float, BeforeValidator(_plain_number), Field(ge=0, lt=24)] | None = None
    timezone: _TimeZone = "UTC"

    @model_validator(mode="after")
    def _check_not_silent(self) -> DiurnalSchedule:
        if not any(self.curve):
            raise ValueError("every factor of 'curve' is 0: the profile would never send")
        return self


class TimeWindow(_Settings):
    """A time-of-day range with its own factor; `to` before `from` wraps past midnight."""

    start: _ClockTime = Field(alias="from")
    end: _ClockTime = Field(alias="to")
    factor: _Factor

    @model_validator(mode="after")
    def _check_range(self) -> TimeWindow:
        if self.start == self.end:
            raise ValueError("'from' and 'to' are the same time: the window is empty")
        return self

    def spans(self) -> list[tuple[int, int]]:
        """The window as [start, end) second ranges within one day (two when it wraps)."""
        if self.start < self.end:
            return [(self.start, self.end)]
        return [(self.start, 86400), (0, self.end)]


class WindowsSchedule(_Settings):
    """Wall-clock windows (in `timezone`) with their own factors, e.g. business hours; `default`
    outside every window."""

    kind: Literal["windows"]
    windows: Annotated[tuple[TimeWindow, ...], Field(min_length=1)]
    default: _Factor = 1.0
    timezone: _TimeZone = "UTC"

    @model_validator(mode="after")
    def _check_windows(self) -> WindowsSchedule:
        spans = sorted(
            (start, end, i) for i, w in enumerate(self.windows) for start, end in w.spans()
        )
        for (_, end, a), (start, _, b) in itertools.pairwise(spans):
            if start < end:
                first, second = sorted((a, b))
                raise ValueError(f"windows[{first}] and windows[{second}] overlap")
        if self.default == 0 and not any(w.factor for w in self.windows):
            raise ValueError("every factor is 0: the profile would never send")
        return self


Schedule: TypeAlias = Annotated[
    RampSchedule | BurstSchedule | DiurnalSchedule | WindowsSchedule, Field(discriminator="kind")
]
"""How a profile's rate changes over time, as a factor of its own rate."""


class LateEvents(_Settings):
    """A `fraction` of events carry an event time up to `max_delay_s` older than it would be."""

    fraction: _Fraction
    max_delay_s: _Seconds


class OutOfOrder(_Settings):
    """A `fraction` of events is held back up to `max_delay_s` and sent after later ones."""

    fraction: _Fraction
    max_delay_s: _Seconds


class Duplicates(_Settings):
    """A `fraction` of events is sent twice, byte for byte (an at-least-once upstream); the copy
    follows the original after up to `max_delay_s` (0: right after it)."""

    fraction: _Fraction
    max_delay_s: _Delay = 0.0


class _Scenario(_Settings):
    every_s: Annotated[float, BeforeValidator(_plain_number), Field(ge=0.001)] | None = None
    """Mean seconds between occurrences (a Poisson process on the profile's clock); at least
    1 ms, so that a typo cannot plan millions of occurrences a second."""
    probability: _Fraction | None = None
    """Chance that an occurrence starts at each batch."""

    @model_validator(mode="after")
    def _check_occurrence(self) -> _Scenario:
        if (self.every_s is None) == (self.probability is None):
            raise ValueError(
                "set exactly one of 'every_s' (mean seconds between occurrences)"
                " or 'probability' (chance per batch)"
            )
        return self


def _check_range(low: float, high: float, names: tuple[str, str]) -> None:
    if low > high:
        raise ValueError(f"{names[0]} ({low:g}) is greater than {names[1]} ({high:g})")


class CardTesting(_Scenario):
    """Many small debits at one merchant within seconds: a fraudster checking stolen cards."""

    kind: Literal["card-testing"]
    min_attempts: _Count = Field(default=10, ge=1)
    max_attempts: _Count = Field(default=40, ge=1)
    min_amount: Annotated[float, BeforeValidator(_plain_number), Field(gt=0)] = 0.5
    max_amount: Annotated[float, BeforeValidator(_plain_number), Field(gt=0)] = 2.0
    window_s: _Seconds = 30.0
    merchant: str | None = None
    """The merchant attacked; null picks one from a sampled debit at each occurrence."""

    @model_validator(mode="after")
    def _check_ranges(self) -> CardTesting:
        _check_range(self.min_attempts, self.max_attempts, ("min_attempts", "max_attempts"))
        _check_range(self.min_amount, self.max_amount, ("min_amount", "max_amount"))
        return self


class AmountOutlier(_Scenario):
    """One debit whose amount is `min_factor`..`max_factor` times its merchant's 99th-percentile
    amount in the dataset."""

    kind: Literal["amount-outlier"]
    min_factor: Annotated[float, BeforeValidator(_plain_number), Field(ge=1)] = 5.0
    max_factor: Annotated[float, BeforeValidator(_plain_number), Field(ge=1)] = 20.0

    @model_validator(mode="after")
    def _check_ranges(self) -> AmountOutlier:
        _check_range(self.min_factor, self.max_factor, ("min_factor", "max_factor"))
        return self


class Velocity(_Scenario):
    """A burst of `min_count`..`max_count` debits within `window_s`."""

    kind: Literal["velocity"]
    min_count: _Count = Field(default=5, ge=1)
    max_count: _Count = Field(default=20, ge=1)
    window_s: _Seconds = 60.0

    @model_validator(mode="after")
    def _check_ranges(self) -> Velocity:
        _check_range(self.min_count, self.max_count, ("min_count", "max_count"))
        return self


class MerchantCompromise(_Scenario):
    """For `duration_s`, a `share` of the profile's events become debits at one merchant."""

    kind: Literal["merchant-compromise"]
    duration_s: _Seconds = 300.0
    share: Annotated[float, BeforeValidator(_plain_number), Field(gt=0, le=1)] = 0.3
    merchant: str | None = None
    """The compromised merchant; null picks one from a sampled debit at each occurrence."""


Scenario: TypeAlias = Annotated[
    CardTesting | AmountOutlier | Velocity | MerchantCompromise, Field(discriminator="kind")
]
"""A labelled fraud scenario injected into a profile's stream."""


class Labels(_Settings):
    """Ground truth on a side topic: `{id, label, scenario, scenario_id}` per fraud event,
    `delay_s` (+ up to `jitter_s`) after the event, as chargebacks arrive late."""

    topic: _Topic
    delay_s: _Delay = 60.0
    jitter_s: _Delay = 0.0


class ProfileSettings(BaseModel):
    """One named volume profile: every `interval_s`, send `min_records`..`max_records` records."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    interval_s: _Seconds
    """Seconds between batches."""
    min_records: _Count = Field(ge=1)
    """Fewest records per batch."""
    max_records: _Count
    """Most records per batch (at least `min_records`)."""
    topic: _Topic | None = None
    """Topic for this profile; None uses `kafka.topic`."""
    seed: _Count | None = None
    """Seed of this profile's random generator, for a reproducible stream; None is random."""
    key: MessageKey | None = None
    """Transaction field used as the message key; None sends unkeyed messages."""
    id: IdMode = "keep"
    timestamp: TimestampMode = "keep"
    kafka_timestamp: KafkaTimestampMode = "produce"
    schedule: Schedule | None = None
    late: LateEvents | None = None
    out_of_order: OutOfOrder | None = None
    duplicates: Duplicates | None = None
    scenario: Scenario | None = None
    labels: Labels | None = None

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

    port: Annotated[int, BeforeValidator(_plain_number), Field(ge=1, le=65535)] | None = None
    """TCP port; None (the default) serves nothing."""
    host: str = "0.0.0.0"
    """Bind address: 0.0.0.0 in containers, 127.0.0.1 for this host only."""


class Config(BaseModel):
    """The whole configuration: Kafka, the dataset and the named profiles to run."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kafka: Annotated[KafkaSettings, BeforeValidator(_none_as_empty)] = KafkaSettings()
    dataset: Annotated[DatasetSettings, BeforeValidator(_none_as_empty)] = DatasetSettings()
    profiles: Annotated[dict[str, ProfileSettings], BeforeValidator(_none_as_empty)]
    """Profiles by name, each run as its own supervised task."""
    shutdown_timeout_s: _Seconds = 10.0
    """Budget for draining and flushing on shutdown."""
    stats_interval_s: _Seconds = 10.0
    """Seconds between per-profile summary log lines."""
    metrics: Annotated[MetricsSettings, BeforeValidator(_none_as_empty)] = MetricsSettings()
    instance_id: str | None = Field(default=None, min_length=1, max_length=128)
    """This process's name in logs, message headers and metrics when several run side by side;
    None takes the host name (a container's or pod's name)."""
    reload: Literal["signal", "watch"] = "signal"
    """`signal`: re-read the config file on SIGHUP; `watch`: also whenever its content changes."""
    source: str = "<defaults>"
    """Where this configuration came from (a file path or "environment"), for logs."""

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
            if not _NAME_RE.fullmatch(name):
                raise ValueError(
                    f"invalid profile name {name!r}: use up to 64 letters, digits, '_', '.' or '-',"
                    " starting with a letter or digit"
                )
        return profiles

    @classmethod
    def from_yaml(cls, path: str | Path, env: Mapping[str, str] | None = None) -> Config:
        """Load a config file: expand `${VAR}` references, apply presets and env overrides.

        `env` defaults to `os.environ`. Raises `ConfigError` with a one-line message.
        """
        env = os.environ if env is None else env
        path = Path(path)
        label = str(path)
        raw = _expand_env_refs(_read_mapping(path, label, config_file=True), env, label)
        if "source" in raw:
            raise ConfigError(f"{label}: source: unknown key (the loader sets it)")
        notes: dict[Loc, str] = {}
        raw = _apply_presets(raw, path.parent, env, label, notes)
        raw = _apply_env_overrides(raw, env, notes)
        raw = _resolve_dataset_uri(raw, path.parent)
        return _validate({**raw, "source": label}, label, notes)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Config:
        """The seed's mode, for when there is no config file: one profile named "default" from
        `PRODUCE_INTERVAL`, `MIN_RECORDS_PER_BATCH` and `MAX_RECORDS_PER_BATCH`, the dataset from
        `DATASET_URI` (relative to the working directory), plus the same env overrides.
        """
        env = os.environ if env is None else env
        notes: dict[Loc, str] = {}
        profile: dict[str, str] = {}
        for var, key, default in _SEED_PROFILE_VARS:
            profile[key] = env.get(var) or default
            if env.get(var):
                notes[("profiles", "default", key)] = f"from {var}"
        raw: dict[Any, Any] = {
            "profiles": {"default": profile},
            "dataset": {"uri": env.get("DATASET_URI") or DEFAULT_DATASET_URI},
        }
        if env.get("DATASET_URI"):
            notes[("dataset", "uri")] = "from DATASET_URI"
        raw = _apply_env_overrides(raw, env, notes)
        raw = _resolve_dataset_uri(raw, Path.cwd())
        return _validate({**raw, "source": "environment"}, "environment", notes)


def find_preset(name: str, config_dir: Path) -> Path:
    """The file of preset `name`: `<config_dir>/profiles/NAME.yaml`, else the bundled one (the
    wheel's `supervisor/_presets`, or `profiles/` of a source checkout).

    Raises `ConfigError` listing the available preset names when there is none.
    """
    directories = _preset_dirs(config_dir)
    if _NAME_RE.fullmatch(name):
        for directory in directories:
            candidate = directory / f"{name}.yaml"
            if candidate.is_file():
                return candidate
    available = sorted({file.stem for d in directories for file in d.glob("*.yaml")})
    raise ConfigError(f"unknown preset {name!r} (available: {', '.join(available) or 'none'})")


def _preset_dirs(config_dir: Path) -> list[Path]:
    directories = [config_dir / "profiles"]
    bundled = importlib.resources.files("supervisor") / "_presets"  # a wheel install
    if isinstance(bundled, Path):
        directories.append(bundled)
    directories.append(Path(__file__).resolve().parents[2] / "profiles")  # a source checkout
    return directories


# --- reading -------------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """`yaml.SafeLoader` that rejects a key written twice in one mapping instead of keeping the
    last one silently (merge keys, `<<: *anchor`, may still be overridden)."""


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[object] = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(key_node, yaml.ScalarNode):
            continue
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping",
                node.start_mark,
                f"found duplicate key {_show(key)}",
                key_node.start_mark,
            )
        seen.add(key)
    return loader.construct_mapping(node)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _without_sexagesimal(loader: type[yaml.SafeLoader]) -> None:
    """Read `09:30` as the string it looks like: YAML 1.1 (PyYAML) makes it the base-60 number
    570, a trap for the times of day in `windows` schedules; YAML 1.2 dropped the rule."""
    resolvers = {
        first: [(tag, regexp) for tag, regexp in entries if tag not in _NUMBER_TAGS]
        for first, entries in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    loader.yaml_implicit_resolvers = resolvers
    for tag, pattern in _NUMBER_PATTERNS.items():
        loader.add_implicit_resolver(tag, re.compile(pattern, re.X), list("-+0123456789."))


_NUMBER_TAGS: Final = ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")
# PyYAML's own patterns for these tags, minus the sexagesimal alternatives.
_NUMBER_PATTERNS: Final = {
    "tag:yaml.org,2002:int": r"""^(?:[-+]?0b[0-1_]+
        |[-+]?0[0-7_]+
        |[-+]?(?:0|[1-9][0-9_]*)
        |[-+]?0x[0-9a-fA-F_]+)$""",
    "tag:yaml.org,2002:float": r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?
        |\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
}
_without_sexagesimal(_Loader)


def _read_mapping(path: Path, label: str, *, config_file: bool = False) -> dict[Any, Any]:
    """Read and parse a YAML file that must hold a mapping (an empty file is an empty one)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        if config_file:
            raise ConfigError(
                f"config file {label!r} not found — pass --config PATH or create it"
                " (see config.yaml in the repository)"
            ) from None
        raise ConfigError(f"file {label!r} not found") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{label}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start})"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read {label!r}: {exc.strerror or exc}") from None
    try:
        data = yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{label}:{mark.line + 1}:{mark.column + 1}" if mark else label
        problem = exc.problem or exc.context
        if exc.context and exc.problem and exc.problem.startswith("but "):
            problem = f"{exc.context}, {exc.problem}"  # "expected a single document..., but..."
        raise ConfigError(f"{where}: invalid YAML: {problem}") from exc
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        raise ConfigError(
            f"{label}:{line}:{column}: invalid YAML: character #x{exc.character:04x}: {exc.reason}"
        ) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{label}: invalid YAML: {' '.join(str(exc).split())}") from exc
    except (ValueError, LookupError, TypeError, AttributeError) as exc:
        # PyYAML lets scalars it cannot convert escape as these: `!!int abc`, `!!timestamp x`,
        # `!!bool x`, an integer of more than 4300 digits...
        raise ConfigError(f"{label}: invalid YAML: cannot convert a value: {exc}") from exc
    except RecursionError:
        raise ConfigError(f"{label}: invalid YAML: nested too deeply") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{label}: must be a mapping of settings (got {type(data).__name__})")
    return data


# --- transforming the raw document ---------------------------------------------------------------


def _expand_env_refs(data: dict[Any, Any], env: Mapping[str, str], label: str) -> dict[Any, Any]:
    """A copy of `data` with `${VAR}`/`${VAR:-default}` expanded in every string value.

    Nodes shared through YAML aliases are expanded once and stay shared, so alias bombs and
    self-references cost no more than their text.
    """
    done: dict[int, object] = {}

    def walk(value: object, loc: Loc) -> object:
        if isinstance(value, str):
            return _expand_string(value, env, label, loc)
        if not isinstance(value, dict | list):
            return value
        if id(value) in done:
            return done[id(value)]
        if isinstance(value, dict):
            mapping: dict[Any, object] = {}
            done[id(value)] = mapping
            for key, item in value.items():
                mapping[key] = walk(item, (*loc, key))
            return mapping
        sequence: list[object] = []
        done[id(value)] = sequence
        sequence.extend(walk(item, (*loc, index)) for index, item in enumerate(value))
        return sequence

    expanded = walk(data, ())
    assert isinstance(expanded, dict)
    return expanded


def _expand_string(text: str, env: Mapping[str, str], label: str, loc: Loc) -> str:
    def replace(match: re.Match[str]) -> str:
        if match[0] == "$${":
            return "${"
        name, default = match["name"], match["default"]
        if name is None:
            raise ConfigError(
                f"{label}: {_path(loc)}: malformed variable reference — write ${{NAME}} or"
                " ${NAME:-default}, or $${ for a literal ${"
            )
        value = env.get(name)
        if default is not None and not value:
            return default
        if value is None:
            raise ConfigError(
                f"{label}: {_path(loc)}: environment variable {name} is not set and has no"
                f" default (write ${{{name}:-value}} for one)"
            )
        return value

    return _ENV_REF_RE.sub(replace, text)


def _apply_presets(
    raw: dict[Any, Any],
    config_dir: Path,
    env: Mapping[str, str],
    label: str,
    notes: dict[Loc, str],
) -> dict[Any, Any]:
    """Replace each profile's `preset: NAME` by the preset's settings under its own keys."""
    profiles = raw.get("profiles")
    if not isinstance(profiles, dict):
        return raw
    merged: dict[Any, object] = {}
    for name, profile in profiles.items():
        if not isinstance(profile, dict) or "preset" not in profile:
            merged[name] = profile
            continue
        preset_name = profile["preset"]
        where = _path(("profiles", name, "preset"))
        if not isinstance(preset_name, str):
            raise ConfigError(f"{label}: {where}: must be a preset name (got {_show(preset_name)})")
        try:
            preset_path = find_preset(preset_name, config_dir)
        except ConfigError as exc:
            raise ConfigError(f"{label}: {where}: {exc}") from None
        preset = _read_preset(preset_path, env)
        own = {key: value for key, value in profile.items() if key != "preset"}
        for key in preset.keys() - own.keys():
            notes[("profiles", name, key)] = f"set by preset {preset_name!r} in {preset_path}"
        merged[name] = {**preset, **own}
    return {**raw, "profiles": merged}


def _read_preset(path: Path, env: Mapping[str, str]) -> dict[Any, Any]:
    label = str(path)
    preset = _expand_env_refs(_read_mapping(path, label), env, label)
    allowed = _file_keys(ProfileSettings)
    allowed.remove("preset")
    for key in preset:
        if key == "preset":
            raise ConfigError(f"{label}: preset: a preset cannot itself use a preset")
        if key not in allowed:
            raise ConfigError(f"{label}: {_path((key,))}: {_unknown_key(key, allowed)}")
    return preset


def _get_in(data: object, path: tuple[str, ...]) -> object:
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _set_in(data: dict[Any, Any], path: tuple[str, ...], value: object) -> dict[Any, Any]:
    """A copy of `data` with `value` at `path`; unchanged when a section on the way is not a
    mapping (validation then reports that section)."""
    head, *rest = path
    if not rest:
        return {**data, head: value}
    child = _none_as_empty(data.get(head))
    if not isinstance(child, dict):
        return data
    return {**data, head: _set_in(child, tuple(rest), value)}


def _apply_env_overrides(
    raw: dict[Any, Any], env: Mapping[str, str], notes: dict[Loc, str]
) -> dict[Any, Any]:
    """Let the seed's non-empty env vars win over the file; fill the S3 region from AWS's."""
    for var, path in _ENV_OVERRIDES:
        if env.get(var):
            raw = _set_in(raw, path, env[var])
            notes[path] = f"from {var}"
    region_path = ("dataset", "s3", "region")
    if _get_in(raw, region_path) is None:
        for var in _REGION_VARS:
            if env.get(var):
                raw = _set_in(raw, region_path, env[var])
                notes[region_path] = f"from {var}"
                break
    return raw


def _resolve_dataset_uri(raw: dict[Any, Any], base_dir: Path) -> dict[Any, Any]:
    """Make a relative local dataset path (the default included) absolute against `base_dir`."""
    uri = _get_in(raw, ("dataset", "uri"))
    if uri is None:
        uri = DEFAULT_DATASET_URI
    if not isinstance(uri, str) or not uri.strip() or "\x00" in uri or _SCHEME_RE.match(uri):
        return raw  # remote, or invalid and reported by validation
    absolute = os.path.normpath(os.path.join(base_dir.absolute(), os.path.expanduser(uri)))
    return _set_in(raw, ("dataset", "uri"), absolute)


# --- validation and its one-line errors ----------------------------------------------------------


def _validate(raw: dict[Any, Any], label: str, notes: Mapping[Loc, str]) -> Config:
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        # An unknown key (a typo) usually also makes a required one missing: report the cause.
        errors = sorted(exc.errors(include_url=False), key=lambda e: e["type"] != "extra_forbidden")
        message = f"{label}: {_describe(errors[0], notes)}"
        if len(errors) > 1:
            more = len(errors) - 1
            message += f" (+{more} more problem{'s' if more > 1 else ''})"
        raise ConfigError(message) from exc


def _explain(error: ErrorDetails) -> str:
    """What a pydantic error type means for someone editing YAML."""
    ctx = error.get("ctx", {})
    match error["type"]:
        case "greater_than":
            return f"must be greater than {ctx['gt']}"
        case "greater_than_equal":
            return f"must be at least {ctx['ge']}"
        case "finite_number":
            return "must be a finite number"
        case "int_type" | "int_parsing" | "int_from_float":
            return "must be a whole number"
        case "float_type" | "float_parsing":
            return "must be a number"
        case "string_type":
            return "must be a string — quote it"
        case "bool_type" | "bool_parsing":
            return "must be true or false"
        case "literal_error":
            return f"must be {ctx['expected']}"
        case "dict_type" | "model_type" | "model_attributes_type":
            return "must be a mapping"
        case _:
            return error["msg"][:1].lower() + error["msg"][1:]


def _describe(error: ErrorDetails, notes: Mapping[Loc, str]) -> str:
    """One error as `key.path (origin): problem (got value)`, never showing a secret."""
    loc, _ = _resolve(error["loc"])
    kind = error["type"]
    if kind == "union_tag_invalid":
        expected = [t.strip("'") for t in str(error["ctx"]["expected_tags"]).split(", ")]
        message = _unknown_key(error["ctx"]["tag"], expected).replace("unknown key", "unknown kind")
        return _at((*loc, "kind"), message)
    if kind == "union_tag_not_found":
        kinds = ", ".join(_tagged_members(_unwrap(_annotation_at(loc))))
        return _at(loc, f"missing required key 'kind' (one of: {kinds})")
    if kind == "string_type" and len(loc) > 1 and loc[-1] == "[key]":  # a non-string key
        return _at(loc[:-2], f"key {_show(loc[-2])} must be a string — quote it")
    if kind == "invalid_key":
        return _at(loc[:-1], f"key {_show(loc[-1])} must be a string — quote it")
    if kind == "extra_forbidden":
        model = _resolve(error["loc"][:-1])[1]
        expected = _file_keys(model) if model else []
        return _at(loc, _unknown_key(loc[-1], expected))
    if kind == "missing":
        if loc == ("profiles",):
            return _at(loc, "no profiles defined — add at least one under 'profiles:'")
        return _at(loc[:-1], f"missing required key {loc[-1]!r}")
    if kind == "value_error":
        return _at(loc, str(error.get("ctx", {})["error"]), notes.get(loc))
    if kind == "recursion_loop":
        return _at(loc, "refers to itself (a YAML alias inside its own anchor)")
    message = _explain(error)
    if not _is_secret_loc(loc):
        message += f" (got {_show(error['input'])})"
    return _at(loc, message, notes.get(loc))


def _at(loc: Loc, message: str, note: str | None = None) -> str:
    origin = f" ({note})" if note else ""
    return f"{_path(loc)}{origin}: {message}" if loc else message


def _unknown_key(key: object, expected: list[str]) -> str:
    message = "unknown key"
    close = difflib.get_close_matches(str(key), expected, n=1)
    if close:
        message += f" — did you mean {close[0]!r}?"
    if expected:
        message += f" (expected one of: {', '.join(expected)})"
    return message


def _model_at(loc: Loc) -> type[BaseModel] | None:
    """The model class that validates the mapping at `loc` (a document path), if any."""
    return _resolve(loc)[1]


def _resolve(loc: Loc) -> tuple[Loc, type[BaseModel] | None]:
    """Walk a pydantic error location through the config models: return it as a path in the
    document (without the tags pydantic inserts for a tagged union such as `schedule`'s kind)
    and the model validating the mapping it ends at, if any."""
    current: object = Config
    path: list[object] = []
    for part in loc:
        current = _unwrap(current)
        members = _tagged_members(current)
        if members:
            current = members.get(part) if isinstance(part, str) else None
            if current is not None:
                continue  # a tag: not in the document
        path.append(part)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = _field_named(current, part)
            current = None if field is None else field.annotation
        elif get_origin(current) is dict:
            current = get_args(current)[1]
        elif get_origin(current) is tuple:
            current = get_args(current)[0]
        else:
            current = None
    current = _unwrap(current)
    model = current if isinstance(current, type) and issubclass(current, BaseModel) else None
    return tuple(path), model


def _annotation_at(loc: Loc) -> object:
    """The annotation of the field at document path `loc` (None when there is none)."""
    parent = _model_at(loc[:-1]) if loc else None
    field = None if parent is None else _field_named(parent, loc[-1])
    return None if field is None else field.annotation


def _unwrap(annotation: object) -> object:
    """`X` from `Annotated[X, ...]` and from `X | None`."""
    while True:
        if get_origin(annotation) is Annotated:
            annotation = get_args(annotation)[0]
            continue
        args = get_args(annotation)
        if get_origin(annotation) in (Union, types.UnionType) and type(None) in args:
            rest = tuple(a for a in args if a is not type(None))
            annotation = rest[0] if len(rest) == 1 else Union[rest]  # noqa: UP007
            continue
        return annotation


def _tagged_members(annotation: object) -> dict[str, type[BaseModel]]:
    """The models of a union discriminated by `kind`, by tag (empty for anything else)."""
    if get_origin(annotation) not in (Union, types.UnionType):
        return {}
    members: dict[str, type[BaseModel]] = {}
    for member in get_args(annotation):
        if (
            isinstance(member, type)
            and issubclass(member, BaseModel)
            and "kind" in member.model_fields
        ):
            for tag in get_args(member.model_fields["kind"].annotation):
                members[tag] = member
    return members


def _field_named(model: type[BaseModel], key: object) -> FieldInfo | None:
    for name, field in model.model_fields.items():
        if key in (name, field.alias):
            return field
    return None


def _file_keys(model: type[BaseModel]) -> list[str]:
    """The keys a config file may write in a mapping validated by `model`."""
    keys = [
        field.alias or name
        for name, field in model.model_fields.items()
        if not (model is Config and name == "source")
    ]
    if model is ProfileSettings:
        keys.append("preset")
    return keys


def _is_secret_loc(loc: Loc) -> bool:
    if loc[:2] == ("dataset", "s3"):
        return len(loc) == 2 or loc[2] in {"access_key", "secret_key"}
    if loc[:2] == ("kafka", "config"):
        return len(loc) == 2 or (isinstance(loc[2], str) and is_secret_key(loc[2]))
    return False


def _path(loc: Loc) -> str:
    """A key path as written in messages: `profiles.high.interval_s`, `kafka.config['a.b']`."""
    text = ""
    for part in loc:
        if isinstance(part, str) and _PLAIN_KEY_RE.fullmatch(part):
            text += f".{part}" if text else part
        else:
            text += f"[{_show(part)}]"
    return text


def _show(value: object) -> str:
    """A short YAML-flavoured rendering of a value for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    shortener = reprlib.Repr()
    shortener.maxstring = shortener.maxother = 60
    shortener.maxlevel = 2
    return shortener.repr(value)
