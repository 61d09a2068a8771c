"""The transaction model and the loaded dataset, shared read-only by every profile."""

from __future__ import annotations

import math
from array import array
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from types import MappingProxyType
from typing import Annotated, Any, Literal, TypeVar, cast
from uuid import UUID

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError

from supervisor.dataset import codec
from supervisor.dataset.columns import ColumnType

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
    """A rejected row: where it is and why. In a CSV or JSON Lines file, `line` is the line where
    its record starts (a CSV header is line 1); in Parquet it is the row's number (from 1)."""

    line: int
    reason: str
    unit: Literal["line", "row"] = "line"

    @property
    def where(self) -> str:
        """`line 12` or `row 12`."""
        return f"{self.unit} {self.line}"


_NO_COLUMNS: Mapping[str, ColumnType] = MappingProxyType({})


@dataclass(frozen=True, eq=False)
class Dataset:
    """The valid rows as ready-made message values (see `supervisor.dataset.codec`), shared
    read-only by every profile; what is derived from them is computed once, here.

    `columns` is the contract for whoever describes a message (a schema, the docs): the kept
    extra columns, name -> type, in the order every value carries them after the seven `FIELDS`.
    """

    source: str
    values: tuple[bytes, ...] = field(repr=False)
    """Per row, compact UTF-8 JSON of `FIELDS` in that order, then the kept `columns`."""
    ts_spans: array[int] = field(repr=False)
    """'I' array, two entries per row: start and end byte offsets of the timestamp text."""
    rows_read: int
    invalid_count: int
    invalid_samples: tuple[InvalidRow, ...]
    columns: Mapping[str, ColumnType] = field(default_factory=lambda: _NO_COLUMNS)
    """The kept extra columns (`dataset.extra_columns: keep`), by name, with their types:
    `string`, `int`, `float` or `bool` (each JSON `null` where the row's cell was empty)."""
    dropped: tuple[str, ...] = ()
    """The dataset's extra columns that no message carries (`dataset.extra_columns: drop`)."""
    entity: str | None = None
    """The kept column naming who a transaction belongs to (`dataset.entity`, e.g. a card), or
    None: fraud scenarios then act on merchants and rows alone."""
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
        """The UTF-8 text of `field` (one of the seven or a kept column) for every row, e.g. for
        Kafka keys (empty for a kept column's null); computed once per field."""
        if field not in codec.FIELDS and field not in self.columns:
            known = ", ".join((*codec.FIELDS, *self.columns))
            raise ValueError(f"unknown field {field!r}; expected one of {known}")
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
