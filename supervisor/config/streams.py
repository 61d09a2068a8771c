"""What a profile's stream looks like beyond its batches: rate schedules, event-time disorder
(late, out-of-order and duplicate events), labelled fraud scenarios and their labels."""

from __future__ import annotations

import datetime as dt
import itertools
import re
import zoneinfo
from typing import Annotated, Final, Literal, TypeAlias

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from supervisor.config.types import (
    MAX_FACTOR,
    Delay,
    Factor,
    Fraction,
    Period,
    Records,
    Seconds,
    Topic,
    plain_number,
    show,
)

IdMode = Literal["keep", "fresh"]
"""`keep` sends the dataset's transaction id; `fresh` a new UUID4 per message."""

TimestampMode = Literal["keep", "now", "shift"]
"""`keep` sends the dataset's timestamp; `now` the time the message is produced; `shift` the
dataset's timestamp moved by one offset, so that the dataset's latest moment is the run's start:
every gap between records is kept, and every event time is in the past."""

KafkaTimestampMode = Literal["produce", "event"]
"""`produce`: Kafka's message timestamp is the time it was produced (librdkafka's default);
`event`: it is the event time written in the message value."""

HeadersMode = Literal["all", "profile", "none"]
"""Which headers a profile's messages carry. `all`: who sent it (`profile`, `instance`, and
`shard` for a shard of a fleet) and, on a profile injecting fraud, what it is (`fraud`, and on fraud
events `scenario` and `scenario_id`); `profile`: who sent it only; `none`: no header at all, the
cheapest to produce (each header costs the Python client about half a microsecond a message)."""

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
        raise ValueError(f"must be a time of day as 'HH:MM' or 'HH:MM:SS' (got {show(value)})")
    parts = [int(p) for p in value.strip().split(":")]
    hours, minutes, seconds = (*parts, 0) if len(parts) == 2 else parts
    total = hours * 3600 + minutes * 60 + seconds
    if minutes > 59 or seconds > 59 or total > 86400:
        raise ValueError(f"{value!r} is not a time of day (00:00 to 24:00)")
    return total


_CLOCK_RE: Final = re.compile(r"\d{1,2}:\d{2}(:\d{2})?")
_TimeZone: TypeAlias = Annotated[str, AfterValidator(_check_timezone)]
_ClockTime: TypeAlias = Annotated[int, BeforeValidator(_clock_time)]
"""Seconds since midnight, written `HH:MM[:SS]`."""


class _Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class RampSchedule(_Settings):
    """From `from` times the profile's rate to `to` times it, linearly over `duration_s`; `to`
    from then on."""

    kind: Literal["ramp"]
    start: Factor = Field(alias="from")
    end: Factor = Field(alias="to")
    duration_s: Period

    @model_validator(mode="after")
    def _check_not_silent(self) -> RampSchedule:
        if self.start == 0 and self.end == 0:
            raise ValueError("'from' and 'to' are both 0: the profile would never send")
        return self


class BurstSchedule(_Settings):
    """The profile's rate times `factor` for `duration_s` every `every_s`; its own rate in between.
    The first burst starts at `offset_s` (default: after one `every_s` at the normal rate)."""

    kind: Literal["burst"]
    every_s: Period
    duration_s: Period
    factor: Factor
    offset_s: Delay | None = None

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
    day_length_s: Period = 86400.0
    curve: Annotated[tuple[Factor, ...], Field(min_length=24, max_length=24)] = DIURNAL_CURVE
    start_hour: Annotated[float, BeforeValidator(plain_number), Field(ge=0, lt=24)] | None = None
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
    factor: Factor

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
    default: Factor = 1.0
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

    fraction: Fraction
    max_delay_s: Seconds


class OutOfOrder(_Settings):
    """A `fraction` of events is held back up to `max_delay_s` and sent after later ones."""

    fraction: Fraction
    max_delay_s: Seconds


class Duplicates(_Settings):
    """A `fraction` of events is sent twice, byte for byte (an at-least-once upstream); the copy
    follows the original after up to `max_delay_s` (0: right after it)."""

    fraction: Fraction
    max_delay_s: Delay = 0.0


class _Scenario(_Settings):
    every_s: Period | None = None
    """Mean seconds between occurrences (a Poisson process on the profile's clock); at least
    1 ms, so that a typo cannot plan millions of occurrences a second."""
    probability: Fraction | None = None
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
    min_attempts: Records = 10
    max_attempts: Records = 40
    min_amount: Annotated[float, BeforeValidator(plain_number), Field(gt=0, le=1e15)] = 0.5
    max_amount: Annotated[float, BeforeValidator(plain_number), Field(gt=0, le=1e15)] = 2.0
    window_s: Period = 30.0
    merchant: str | None = None
    """The merchant attacked; null picks one from a sampled debit at each occurrence."""
    per: Literal["merchant", "entity"] | None = None
    """`merchant`: many cards tried at one merchant (each event a debit with its own card);
    `entity`: one stolen card (the `dataset.entity` of a sampled debit) tried at many merchants,
    or at `merchant` when set. Null: `entity` when the dataset has one, else `merchant`."""

    @model_validator(mode="after")
    def _check_ranges(self) -> CardTesting:
        _check_range(self.min_attempts, self.max_attempts, ("min_attempts", "max_attempts"))
        _check_range(self.min_amount, self.max_amount, ("min_amount", "max_amount"))
        return self


class AmountOutlier(_Scenario):
    """One debit whose amount is `min_factor`..`max_factor` times its merchant's 99th-percentile
    amount in the dataset."""

    kind: Literal["amount-outlier"]
    min_factor: Annotated[float, BeforeValidator(plain_number), Field(ge=1, le=MAX_FACTOR)] = 5.0
    max_factor: Annotated[float, BeforeValidator(plain_number), Field(ge=1, le=MAX_FACTOR)] = 20.0

    @model_validator(mode="after")
    def _check_ranges(self) -> AmountOutlier:
        _check_range(self.min_factor, self.max_factor, ("min_factor", "max_factor"))
        return self


class Velocity(_Scenario):
    """A burst of `min_count`..`max_count` debits within `window_s`."""

    kind: Literal["velocity"]
    min_count: Records = 5
    max_count: Records = 20
    window_s: Period = 60.0

    @model_validator(mode="after")
    def _check_ranges(self) -> Velocity:
        _check_range(self.min_count, self.max_count, ("min_count", "max_count"))
        return self


class MerchantCompromise(_Scenario):
    """For `duration_s`, a `share` of the profile's events become debits at one merchant."""

    kind: Literal["merchant-compromise"]
    duration_s: Period = 300.0
    share: Annotated[float, BeforeValidator(plain_number), Field(gt=0, le=1)] = 0.3
    merchant: str | None = None
    """The compromised merchant; null picks one from a sampled debit at each occurrence."""


Scenario: TypeAlias = Annotated[
    CardTesting | AmountOutlier | Velocity | MerchantCompromise, Field(discriminator="kind")
]
"""A labelled fraud scenario injected into a profile's stream."""


class Labels(_Settings):
    """Ground truth on a side topic: `{id, label, scenario, scenario_id}` per fraud event,
    `delay_s` (+ up to `jitter_s`) after the event, as chargebacks arrive late."""

    topic: Topic
    delay_s: Delay = 60.0
    jitter_s: Delay = 0.0
