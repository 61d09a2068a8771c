"""The small pieces every settings model shares: annotated field types, their validators, secret
redaction, and how keys and values are written in messages."""

from __future__ import annotations

import math
import re
import reprlib
from typing import Annotated, Final, TypeAlias

from pydantic import AfterValidator, BeforeValidator, Field

KafkaValue: TypeAlias = str | int | float | bool
"""A librdkafka property value as it can be written in YAML."""

Loc: TypeAlias = tuple[object, ...]
"""A key path into the raw YAML document (mapping keys and list indices)."""

NAME_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
"""A profile or preset name."""

_TOPIC_RE: Final = re.compile(r"[A-Za-z0-9._-]{1,249}")
_PLAIN_KEY_RE: Final = re.compile(r"[A-Za-z0-9_-]+")


def _check_topic(topic: str) -> str:
    if not _TOPIC_RE.fullmatch(topic) or topic in {".", ".."}:
        raise ValueError(
            f"invalid Kafka topic name {topic!r}: use 1-249 letters, digits, '.', '_' or '-'"
            " (and not '.' or '..')"
        )
    return topic


def plain_number(value: object) -> object:
    """Refuse booleans (YAML reads yes/no/on/off as such, and pydantic's lax mode would take them
    as 1 and 0) and NaN or infinity, before pydantic's range checks see them."""
    if isinstance(value, bool):
        raise ValueError(f"must be a number, not {show(value)}")
    if isinstance(value, float | str):
        try:
            number = float(value)
        except ValueError:
            return value  # pydantic reports what it is not
        if not math.isfinite(number):
            raise ValueError(f"must be a finite number (got {show(value)})")
    return value


def none_as_empty(value: object) -> object:
    """A section whose keys are all commented out parses as null: it means "all defaults"."""
    return {} if value is None else value


# Every number has the bounds of what the program can do, said in the error when crossed: beyond
# them a tick, a schedule or a timestamp would overflow, exhaust memory or spin.
MAX_SECONDS: Final = 366 * 86400
"""The longest duration or delay (a year): event times stay dates, timers stay timers."""
MIN_PERIOD_S: Final = 0.001
"""The shortest schedule period, window or duration: a timer's resolution."""
MAX_RECORDS: Final = 1_000_000
"""The most records a batch (or a fraud occurrence) may hold: memory, not a wish."""
MAX_FACTOR: Final = 1_000_000.0
"""The largest multiple of a profile's rate a schedule may ask for."""

Topic: TypeAlias = Annotated[str, AfterValidator(_check_topic)]
Seconds: TypeAlias = Annotated[float, BeforeValidator(plain_number), Field(gt=0, le=MAX_SECONDS)]
Period: TypeAlias = Annotated[
    float, BeforeValidator(plain_number), Field(ge=MIN_PERIOD_S, le=MAX_SECONDS)
]
"""A schedule's duration, period or window: at least a millisecond, at most a year."""
Count: TypeAlias = Annotated[int, BeforeValidator(plain_number)]
Records: TypeAlias = Annotated[int, BeforeValidator(plain_number), Field(ge=1, le=MAX_RECORDS)]
Factor: TypeAlias = Annotated[float, BeforeValidator(plain_number), Field(ge=0, le=MAX_FACTOR)]
"""A multiple of the profile's own rate: 0 pauses it, 1 is its configured rate."""
Fraction: TypeAlias = Annotated[float, BeforeValidator(plain_number), Field(ge=0, le=1)]
Delay: TypeAlias = Annotated[float, BeforeValidator(plain_number), Field(ge=0, le=MAX_SECONDS)]


def key_path(loc: Loc) -> str:
    """A key path as written in messages: `profiles.high.interval_s`, `kafka.config['a.b']`."""
    text = ""
    for part in loc:
        if isinstance(part, str) and _PLAIN_KEY_RE.fullmatch(part):
            text += f".{part}" if text else part
        else:
            text += f"[{show(part)}]"
    return text


def show(value: object) -> str:
    """A short YAML-flavoured rendering of a value for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    shortener = reprlib.Repr()
    shortener.maxstring = shortener.maxother = 60
    shortener.maxlevel = 2
    return shortener.repr(value)
