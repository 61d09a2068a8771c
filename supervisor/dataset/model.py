"""The transaction model and the loaded dataset, shared read-only by every profile."""

from __future__ import annotations

import math
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal, TypeVar, cast
from uuid import UUID

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError

from supervisor.dataset import codec

_T = TypeVar("_T")


def _strip(value: object) -> object:
    return value.strip() if isinstance(value, str) else value


def _iso_datetime(value: object) -> object:
    """Accept ISO 8601 text only: pydantic on its own also reads digits as a Unix time."""
    if not isinstance(value, str):
        return value
    try:
        return datetime.fromisoformat(value.strip())
    except ValueError:
        raise PydanticCustomError("iso_datetime", "not an ISO 8601 datetime") from None


_Stripped = BeforeValidator(_strip)


def _within_float64(amount: Decimal) -> Decimal:
    """Refuse an amount a JSON reader would turn into infinity (e.g. `1e999999`, finite as a
    Decimal): consumers parse the value's numbers as doubles."""
    if math.isinf(float(amount)):
        raise PydanticCustomError("amount_range", "beyond the range of a double (about 1.8e308)")
    return amount


class Transaction(BaseModel):
    """One transaction as the CSV holds it; text is stripped of surrounding whitespace."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", str_strip_whitespace=True, str_min_length=1
    )

    id: Annotated[UUID, _Stripped]
    description: str
    amount: Annotated[Decimal, Field(allow_inf_nan=False), AfterValidator(_within_float64)]
    timestamp: Annotated[datetime, BeforeValidator(_iso_datetime)]
    merchant: str
    operation_type: Annotated[Literal["debit", "credit"], _Stripped]
    side: Annotated[Literal["outgoing", "incoming"], _Stripped]


@dataclass(frozen=True, slots=True)
class InvalidRow:
    """A rejected row: the line where its record starts (the header is line 1) and why."""

    line: int
    reason: str


@dataclass(frozen=True, eq=False)
class Dataset:
    """The valid rows as ready-made message values (see `supervisor.dataset.codec`), shared
    read-only by every profile; what is derived from them is computed once, here."""

    source: str
    values: tuple[bytes, ...] = field(repr=False)
    """Per row, compact UTF-8 JSON of exactly `FIELDS`, in that order."""
    ts_spans: array[int] = field(repr=False)
    """'I' array, two entries per row: start and end byte offsets of the timestamp text."""
    rows_read: int
    invalid_count: int
    invalid_samples: tuple[InvalidRow, ...]
    _derived: dict[str, Any] = field(default_factory=dict, init=False, repr=False)

    def __len__(self) -> int:
        return len(self.values)

    def derived(self, name: str, build: Callable[[], _T]) -> _T:
        """`build()` computed once per dataset under `name` and kept with it: the start-up check,
        every profile and every restart share one index instead of rebuilding it (seconds for a
        million rows). What is kept must be read-only."""
        if name not in self._derived:
            self._derived[name] = build()
        return cast(_T, self._derived[name])

    def key_column(self, field: str) -> Sequence[bytes]:
        """The UTF-8 text of `field` for every row, e.g. for Kafka keys; computed once per field."""
        if field not in codec.FIELDS:
            raise ValueError(f"unknown field {field!r}; expected one of {', '.join(codec.FIELDS)}")
        return self.derived(f"column:{field}", lambda: codec.column(self.values, field))

    def column(self, field: str) -> tuple[bytes, ...]:
        """The UTF-8 text of `field` for every row, computed afresh (not kept)."""
        return codec.column(self.values, field)

    def epochs(self) -> array[float]:
        """Each row's timestamp in Unix seconds (a timestamp without an offset is read as UTC);
        computed once, on first use."""
        spans = self.ts_spans

        def build() -> array[float]:
            return array(
                "d",
                (
                    codec.epoch_of(v[spans[2 * i] : spans[2 * i + 1]])
                    for i, v in enumerate(self.values)
                ),
            )

        return self.derived("epochs", build)
