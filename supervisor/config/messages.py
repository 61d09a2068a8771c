"""Turning pydantic's `ValidationError` into one `ConfigError` line a person editing YAML can act
on: the key path as written in the file, where a value came from (a preset, an env var), "did you
mean" for a typo, and never a secret value."""

from __future__ import annotations

import difflib
import types
from collections.abc import Mapping
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from supervisor.config.models import Config, ProfileSettings
from supervisor.config.types import Loc, key_path, show
from supervisor.errors import ConfigError
from supervisor.redaction import is_secret_key


def validate(raw: dict[Any, Any], label: str, notes: Mapping[Loc, str]) -> Config:
    """`raw` as a `Config`, or a `ConfigError` starting with `label` (the file, "environment")
    describing the first problem; `notes` say where a value came from, by key path."""
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        # An unknown key (a typo) usually also makes a required one missing: report the cause.
        errors = sorted(exc.errors(include_url=False), key=lambda e: e["type"] != "extra_forbidden")
        message = f"{label}: {_describe(errors[0], notes)}"
        if len(errors) > 1:
            more = len(errors) - 1
            message += f" (+{more} more problem{'s' if more > 1 else ''})"
        # Chained for --debug without pydantic's own text: it shows each input value, which may
        # be a secret, and builds that text from the whole value before truncating it (minutes
        # for a YAML alias bomb, whose value is a billion items).
        raise ConfigError(message) from ConfigProblems(errors)


class ConfigProblems(Exception):
    """Every problem pydantic found, by key path and message, without the input values."""

    def __init__(self, errors: list[ErrorDetails]) -> None:
        shown = [f"{key_path(e['loc']) or '<top>'}: {e['msg']} [{e['type']}]" for e in errors[:50]]
        if len(errors) > 50:
            shown.append(f"... and {len(errors) - 50} more")
        super().__init__(f"{len(errors)} problem(s):\n" + "\n".join(shown))


def _explain(error: ErrorDetails) -> str:
    """What a pydantic error type means for someone editing YAML."""
    ctx = error.get("ctx", {})
    match error["type"]:
        case "greater_than":
            return f"must be greater than {ctx['gt']}"
        case "greater_than_equal":
            return f"must be at least {ctx['ge']}"
        case "less_than_equal":
            return f"must be at most {ctx['le']:,}"
        case "less_than":
            return f"must be less than {ctx['lt']:,}"
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
        message = unknown_key(error["ctx"]["tag"], expected).replace("unknown key", "unknown kind")
        return _at((*loc, "kind"), message)
    if kind == "union_tag_not_found":
        kinds = ", ".join(_tagged_members(_unwrap(_annotation_at(loc))))
        return _at(loc, f"missing required key 'kind' (one of: {kinds})")
    if kind == "string_type" and len(loc) > 1 and loc[-1] == "[key]":  # a non-string key
        return _at(loc[:-2], f"key {show(loc[-2])} must be a string — quote it")
    if kind == "invalid_key":
        return _at(loc[:-1], f"key {show(loc[-1])} must be a string — quote it")
    if kind == "extra_forbidden":
        model = _resolve(error["loc"][:-1])[1]
        expected = file_keys(model) if model else []
        return _at(loc, unknown_key(loc[-1], expected))
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
        message += f" (got {show(error['input'])})"
    return _at(loc, message, notes.get(loc))


def _at(loc: Loc, message: str, note: str | None = None) -> str:
    origin = f" ({note})" if note else ""
    return f"{key_path(loc)}{origin}: {message}" if loc else message


def unknown_key(key: object, expected: list[str]) -> str:
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


def file_keys(model: type[BaseModel]) -> list[str]:
    """The keys a config file may write in a mapping validated by `model`."""
    keys = [field.alias or name for name, field in model.model_fields.items()]
    if model is ProfileSettings:
        keys.append("preset")
    return keys


def _is_secret_loc(loc: Loc) -> bool:
    if loc[:2] == ("dataset", "s3"):
        return len(loc) == 2 or loc[2] in {"access_key", "secret_key"}
    if loc[:2] == ("kafka", "config"):
        return len(loc) == 2 or (isinstance(loc[2], str) and is_secret_key(loc[2]))
    return False
