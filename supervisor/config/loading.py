"""Reading a configuration: the YAML document (duplicate keys refused, no base-60 numbers),
`${VAR}` expansion, presets, the seed's environment overrides and the dataset path made absolute,
then validation. `Config.from_yaml` and `Config.from_env` are the public entry points.
"""

from __future__ import annotations

import importlib.resources
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml

from supervisor.config.messages import file_keys, unknown_key, validate
from supervisor.config.models import DEFAULT_DATASET_URI, Config, ProfileSettings
from supervisor.config.types import NAME_RE, Loc, key_path, none_as_empty, show
from supervisor.dataset.location import has_scheme, parse_location
from supervisor.errors import ConfigError

_ENV_REF_RE: Final = re.compile(
    r"\$\$\{|\$\{(?:(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^{}]*))?\})?"
)

_ENV_OVERRIDES: Final = (
    ("KAFKA_BOOTSTRAP_SERVERS", ("kafka", "bootstrap_servers")),
    ("KAFKA_TOPIC", ("kafka", "topic")),
    ("ENDPOINT_URL", ("dataset", "s3", "endpoint_url")),
    ("KEY", ("dataset", "s3", "access_key")),
    ("SECRET", ("dataset", "s3", "secret_key")),
    ("SHARD_INDEX", ("shard", "index")),
    ("SHARD_COUNT", ("shard", "count")),
)
_POD_ORDINAL_RE: Final = re.compile(r".-(?P<ordinal>[0-9]+)\Z")
"""A StatefulSet pod's name: the set's name, a dash, the pod's ordinal."""
_REGION_VARS: Final = ("AWS_REGION", "AWS_DEFAULT_REGION")
_SEED_PROFILE_VARS: Final = (
    ("PRODUCE_INTERVAL", "interval_s", "0.5"),
    ("MIN_RECORDS_PER_BATCH", "min_records", "1"),
    ("MAX_RECORDS_PER_BATCH", "max_records", "10"),
)


_FLAGS: Final = {"interval_s": "--interval", "min_records": "--min", "max_records": "--max"}


@dataclass(frozen=True, slots=True)
class Overrides:
    """What the command line sets (`run --bootstrap-servers ... --profile high`): it wins over
    the environment, which wins over the file. `profiles` names the profiles to run: each is the
    file's profile of that name, else the preset of that name; `interval_s`, `min_records` and
    `max_records` then apply to each of them, or, without `profiles`, define one profile named
    `cli` (`min_records` defaulting to 1 and `max_records` to `min_records`)."""

    bootstrap_servers: str | None = None
    topic: str | None = None
    dataset_uri: str | None = None
    profiles: tuple[str, ...] = ()
    interval_s: float | None = None
    min_records: int | None = None
    max_records: int | None = None

    def _profiles(self, raw: dict[Any, Any], notes: dict[Loc, str]) -> dict[Any, Any]:
        shape = {
            key: value
            for key, value in (
                ("interval_s", self.interval_s),
                ("min_records", self.min_records),
                ("max_records", self.max_records),
            )
            if value is not None
        }
        if not self.profiles and not shape:
            return raw
        if self.profiles:
            existing = raw.get("profiles")
            if not isinstance(existing, dict):
                existing = {}
            chosen = {
                name: {**(existing.get(name) or {"preset": name}), **shape}
                for name in self.profiles
            }
        else:
            shape.setdefault("min_records", 1)
            shape.setdefault("max_records", shape["min_records"])
            chosen = {"cli": shape}
        for name in chosen:
            for key in shape:
                notes[("profiles", name, key)] = f"from {_FLAGS[key]}"
        return {**raw, "profiles": chosen}

    def _connections(self, raw: dict[Any, Any], notes: dict[Loc, str]) -> dict[Any, Any]:
        for value, path, flag in (
            (self.bootstrap_servers, ("kafka", "bootstrap_servers"), "--bootstrap-servers"),
            (self.topic, ("kafka", "topic"), "--topic"),
        ):
            if value:
                raw = _set_in(raw, path, value)
                notes[path] = f"from {flag}"
        if self.dataset_uri:  # relative to the working directory, as a shell user means it
            raw = _resolve_dataset_uri(
                _set_in(raw, ("dataset", "uri"), self.dataset_uri), Path.cwd()
            )
            notes[("dataset", "uri")] = "from --dataset"
        return raw


def load_yaml(
    path: Path, env: Mapping[str, str] | None = None, overrides: Overrides | None = None
) -> Config:
    """`Config.from_yaml`: the config file at `path`, with `env` (default `os.environ`) and the
    command line's `overrides`."""
    env = os.environ if env is None else env
    overrides = overrides or Overrides()
    label = str(path)
    raw = _expand_env_refs(_read_mapping(path, label, config_file=True), env, label)
    notes: dict[Loc, str] = {}
    raw = overrides._profiles(raw, notes)
    raw = _apply_presets(raw, path.parent, env, label, notes)
    raw = _apply_env_overrides(raw, env, notes)
    raw = _resolve_dataset_uri(raw, path.parent)
    raw = overrides._connections(raw, notes)
    return validate(raw, label, notes).with_source(label)


def load_env(env: Mapping[str, str] | None = None, overrides: Overrides | None = None) -> Config:
    """`Config.from_env`: the original producer's single-profile mode, from `env` (default
    `os.environ`), with the command line's `overrides`."""
    env = os.environ if env is None else env
    overrides = overrides or Overrides()
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
    raw = overrides._profiles(raw, notes)
    raw = _apply_presets(raw, Path.cwd(), env, "command line", notes)
    raw = _apply_env_overrides(raw, env, notes)
    raw = _resolve_dataset_uri(raw, Path.cwd())
    raw = overrides._connections(raw, notes)
    return validate(raw, "environment", notes).with_source("environment")


def find_preset(name: str, config_dir: Path) -> Path:
    """The file of preset `name`: `<config_dir>/profiles/NAME.yaml`, else the bundled one (the
    wheel's `supervisor/_presets`, or `profiles/` of a source checkout).

    Raises `ConfigError` listing the available preset names when there is none.
    """
    directories = _preset_dirs(config_dir)
    if NAME_RE.fullmatch(name):
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
                f"found duplicate key {show(key)}",
                key_node.start_mark,
            )
        seen.add(key)
    return loader.construct_mapping(node)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _without_sexagesimal(loader: type[yaml.SafeLoader]) -> None:
    """Read `10:30` as the string it looks like: YAML 1.1 (PyYAML) makes it the base-60 number
    630, a trap for the times of day in `windows` schedules; YAML 1.2 dropped the rule.

    Why not `yamlcore` (PyYAML's YAML 1.2 core schema, 0.0.4)? Its `CoreLoader` drops merge keys
    (`<<: *base` becomes a key named "<<"; the tests pin merge keys), and its YAML 1.2
    booleans read `yes`/`on` as text, so `kafka.config: {enable.idempotence: yes}`, which
    works today, would reach librdkafka as "yes" and be refused. Taking just its number rules
    would mean two number schemas in one loader. The patterns below are PyYAML's own, minus one
    alternative each, and the tests pin the behaviour.
    """
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


MAX_CONFIG_BYTES = 4 * 1024 * 1024
"""The largest config file or preset read: thousands of profiles fit in far less."""


def _read_mapping(path: Path, label: str, *, config_file: bool = False) -> dict[Any, Any]:
    """Read and parse a YAML file that must hold a mapping (an empty file is an empty one): a
    regular file of at most `MAX_CONFIG_BYTES` (a pipe would hold the read forever, a huge file
    the memory)."""
    try:
        info = path.stat()  # before opening: opening a pipe waits for a writer
        if not stat.S_ISREG(info.st_mode):
            what = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
            raise ConfigError(f"{label}: {what} — give the path of a YAML file")
        if info.st_size > MAX_CONFIG_BYTES:
            raise ConfigError(
                f"{label}: {info.st_size:,} bytes; a config file is at most"
                f" {MAX_CONFIG_BYTES:,} — split the profiles over presets or processes"
            )
        with path.open("rb") as file:
            text = file.read(MAX_CONFIG_BYTES + 1).decode("utf-8-sig")
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
                f"{label}: {key_path(loc)}: malformed variable reference — write ${{NAME}} or"
                " ${NAME:-default}, or $${ for a literal ${"
            )
        value = env.get(name)
        if default is not None and not value:
            return default
        if value is None:
            raise ConfigError(
                f"{label}: {key_path(loc)}: environment variable {name} is not set and has no"
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
        where = key_path(("profiles", name, "preset"))
        if not isinstance(preset_name, str):
            raise ConfigError(f"{label}: {where}: must be a preset name (got {show(preset_name)})")
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
    allowed = file_keys(ProfileSettings)
    allowed.remove("preset")
    for key in preset:
        if key == "preset":
            raise ConfigError(f"{label}: preset: a preset cannot itself use a preset")
        if key not in allowed:
            raise ConfigError(f"{label}: {key_path((key,))}: {unknown_key(key, allowed)}")
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
    child = none_as_empty(data.get(head))
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
    return _shard_index_from_pod(raw, env, notes)


def _shard_index_from_pod(
    raw: dict[Any, Any], env: Mapping[str, str], notes: dict[Loc, str]
) -> dict[Any, Any]:
    """`shard.count` without `shard.index`: take the index Kubernetes gives the pod, an Indexed
    Job's `JOB_COMPLETION_INDEX`, else a StatefulSet's ordinal at the end of `POD_NAME` (the
    downward API's metadata.name) or, inside a pod (`KUBERNETES_SERVICE_HOST` set), of
    `HOSTNAME` (a pod's host name is its name). Other host names (`ip-10-0-0-5`) are not
    taken for an ordinal."""
    index_path = ("shard", "index")
    if _get_in(raw, ("shard", "count")) is None or _get_in(raw, index_path) is not None:
        return raw
    if env.get("JOB_COMPLETION_INDEX"):
        notes[index_path] = "from JOB_COMPLETION_INDEX"
        return _set_in(raw, index_path, env["JOB_COMPLETION_INDEX"])
    names = ("POD_NAME", "HOSTNAME") if env.get("KUBERNETES_SERVICE_HOST") else ("POD_NAME",)
    for var in names:
        match = _POD_ORDINAL_RE.search(env.get(var, ""))
        if match is not None:
            notes[index_path] = f"from {var}={env[var]}"
            return _set_in(raw, index_path, match["ordinal"])
    return raw


def _resolve_dataset_uri(raw: dict[Any, Any], base_dir: Path) -> dict[Any, Any]:
    """Make a relative local dataset path (the default included) absolute against `base_dir`."""
    uri = _get_in(raw, ("dataset", "uri"))
    if uri is None:
        uri = DEFAULT_DATASET_URI
    if not isinstance(uri, str) or has_scheme(uri):
        return raw  # remote, or not a string and reported by validation
    try:
        location = parse_location(uri, base_dir=base_dir)
    except ValueError:
        return raw  # reported by validation
    return _set_in(raw, ("dataset", "uri"), str(location))
