"""Configuration: frozen settings models and the two ways to build them.

`Config.from_yaml(path)` reads a config file of named volume profiles; `Config.from_env()` is the
seed's single-profile mode, used when there is no config file. Both apply the seed's environment
overrides (`KAFKA_BOOTSTRAP_SERVERS`, `KAFKA_TOPIC`, `ENDPOINT_URL`, `KEY`, `SECRET`) and turn
every problem into one `ConfigError` line naming the file, the key path and what is wrong.

Secrets (the S3 keys and secret-like `kafka.config` properties) never appear in a repr, a
`model_dump` or an error message.
"""

from __future__ import annotations

import difflib
import importlib.resources
import math
import os
import re
import reprlib
import socket
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Final, Literal, TypeAlias, get_args, get_origin

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
from pydantic_core import ErrorDetails

from supervisor.dataset import S3Location
from supervisor.errors import ConfigError

KafkaValue: TypeAlias = str | int | float | bool
"""A librdkafka property value as it can be written in YAML."""

IdMode = Literal["keep", "fresh"]
"""`keep` sends the dataset's transaction id; `fresh` a new UUID4 per message."""

TimestampMode = Literal["keep", "now"]
"""`keep` sends the dataset's timestamp; `now` the time the message is produced."""

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

    @model_validator(mode="after")
    def _check_batch_range(self) -> ProfileSettings:
        if self.min_records > self.max_records:
            raise ValueError(
                f"min_records ({self.min_records}) is greater than max_records ({self.max_records})"
            )
        return self

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
    directories.append(Path(__file__).resolve().parent.parent / "profiles")  # a source checkout
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
    loc: Loc = error["loc"]
    kind = error["type"]
    if kind == "string_type" and len(loc) > 1 and loc[-1] == "[key]":  # a non-string key
        return _at(loc[:-2], f"key {_show(loc[-2])} must be a string — quote it")
    if kind == "invalid_key":
        return _at(loc[:-1], f"key {_show(loc[-1])} must be a string — quote it")
    if kind == "extra_forbidden":
        model = _model_at(loc[:-1])
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
    """The model class that validates the mapping at `loc`, if any."""
    current: object = Config
    for part in loc:
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(part) if isinstance(part, str) else None
            if field is None:
                return None
            current = field.annotation
        elif get_origin(current) is dict:
            current = get_args(current)[1]
        else:
            return None
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _file_keys(model: type[BaseModel]) -> list[str]:
    """The keys a config file may write in a mapping validated by `model`."""
    keys = [name for name in model.model_fields if not (model is Config and name == "source")]
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
