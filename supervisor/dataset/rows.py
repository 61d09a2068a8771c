"""The one validation and encoding path every reader shares.

A reader (CSV, JSON Lines, Parquet) turns its file into rows of text and hands each to a `Rows`:
either already encoded (a reader's fast path, for rows it proved canonical), or as a record of
column -> text that `Rows` validates with pydantic in chunks, rejecting a row with the reason for
each of its faults. Either way every valid row is encoded once, by the codec, and `finish` makes
the `Dataset`. What a row must hold is `Transaction` plus the kept columns' types
(`columns.Columns`); how a rejected row is counted, sampled or made fatal is here alone.
"""

from __future__ import annotations

import operator
from array import array
from collections.abc import Callable, Sequence
from itertools import chain, compress
from typing import Annotated, Any, Final, Literal

from pydantic import BeforeValidator, Field, TypeAdapter, ValidationError, create_model

from supervisor.dataset import codec
from supervisor.dataset.columns import SEVEN, Columns, ColumnType
from supervisor.dataset.model import Dataset, InvalidRow, Transaction
from supervisor.errors import DatasetError

SAMPLES: Final = 10
"""Rejected rows kept with their reasons (the rest are counted)."""
_CHUNK_ROWS: Final = 10_000
"""Rows validated per pydantic call: bounds the model objects alive at once."""
_TRANSACTIONS: Final = TypeAdapter(list[Transaction])
_INT64: Final = 2**63


def _blank_as_none(value: object) -> object:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return value


_Blank = BeforeValidator(_blank_as_none)
_TYPES: Final[dict[ColumnType, Any]] = {
    "string": Annotated[str | None, _Blank],
    "int": Annotated[Annotated[int, Field(ge=-_INT64, lt=_INT64)] | None, _Blank],
    "float": Annotated[Annotated[float, Field(allow_inf_nan=False)] | None, _Blank],
    "bool": Annotated[bool | None, _Blank],
}


class _Schema:
    """What a row is validated against and how a valid one becomes its value."""

    def __init__(self, columns: Columns) -> None:
        self.names = columns.names
        if not columns.kept:
            self.adapter: TypeAdapter[list[Any]] = _TRANSACTIONS
            self.encode: Callable[[Any], tuple[bytes, int, int]] = codec.encode
            return
        # Kept columns become fields x0, x1... under their own names (any text can be a column's
        # name), so that a fault names the column as the file does.
        fields: dict[str, Any] = {
            f"x{i}": (_TYPES[kind], Field(default=None, alias=name))
            for i, (name, kind) in enumerate(columns.kept.items())
        }
        row = create_model("Row", __base__=Transaction, **fields)
        self.adapter = TypeAdapter(list[row])
        extras = codec.Extras(list(columns.kept))
        pick = operator.attrgetter(*fields)
        single = len(fields) == 1

        def encode(row: Any) -> tuple[bytes, int, int]:
            values = pick(row)
            return codec.encode(row, extras.encode((values,) if single else values))

        self.encode = encode


class Rows:
    """The rows of one parse: values in file order, and rows awaiting pydantic in chunks.

    A row waiting for validation holds a `None` slot in `values` until its chunk is validated.
    """

    def __init__(
        self,
        source: str,
        *,
        fail: bool,
        columns: Columns = SEVEN,
        entity: str | None = None,
        unit: Literal["line", "row"] = "line",
    ) -> None:
        self.values: list[bytes | None] = []
        self.ts_spans = array("I")  # two per slot in `values`, as in `Dataset.ts_spans`
        self.columns = columns
        self.names = columns.names
        """The columns of a record passed to `defer`, in order: the seven, then the kept ones."""
        self._source = source
        self.fail = fail
        """Whether the first rejected row ends the load (`on_invalid: fail`)."""
        self._entity = entity
        self._unit = unit
        self._schema: _Schema | None = None  # built on the first row that needs it
        self._malformed = 0
        self._invalid_count = 0
        self._samples: list[InvalidRow] = []
        self._pending: list[tuple[int, int, dict[str, Any]]] = []  # (slot, number, record)
        self._rejected: list[InvalidRow] = []  # since the last flush

    def add_many(self, values: Sequence[bytes | None], ts_spans: array[int]) -> int:
        """Rows the reader encoded itself (canonical: `codec.encode` would give these bytes),
        in bulk (a reader may also append to `values` and `ts_spans` itself); a row to validate
        holds None (and two zero spans) until it is given to `defer` with its slot. Returns the
        slot of the first of them."""
        first = len(self.values)
        self.values += values
        self.ts_spans += ts_spans
        return first

    def defer(self, number: int, record: dict[str, Any], slot: int | None = None) -> None:
        """A row to validate, `record` mapping column names (`names`) to text (a column left out
        is missing); `number` is its line or row number for a rejection. `slot`: the place
        `add_many` kept for it; None appends it."""
        if slot is None:
            slot = len(self.values)
            self.values.append(None)
            self.ts_spans.extend((0, 0))
        self._pending.append((slot, number, record))
        if self.fail or len(self._pending) >= _CHUNK_ROWS:
            self._flush()

    def reject(self, number: int, reason: str) -> None:
        """A row the reader could not read at all (malformed), with why."""
        self._malformed += 1
        self._rejected.append(InvalidRow(number, reason, self._unit))
        if self.fail or len(self._rejected) >= _CHUNK_ROWS:
            self._flush()

    def finish(self, empty: str = "the file has a header but no data rows") -> Dataset:
        """The dataset; `empty` says what a file without a single row is, should it be one."""
        self._flush()
        source = self._source
        rows_read = len(self.values) + self._malformed
        if not rows_read:
            raise DatasetError(f"dataset {source}: {empty} — add transactions")
        values = tuple(filter(None, self.values))
        spans = self.ts_spans
        if len(values) < len(self.values):  # drop the spans of invalid rows
            twice = chain.from_iterable(zip(self.values, self.values, strict=True))
            spans = array("I", compress(spans, twice))
        if not values:
            first = "; ".join(f"{row.where}: {row.reason}" for row in self._samples[:3])
            raise DatasetError(f"dataset {source}: no valid rows; first errors: {first}")
        return Dataset(
            source=source,
            values=values,
            ts_spans=spans,
            rows_read=rows_read,
            invalid_count=self._invalid_count,
            invalid_samples=tuple(self._samples),
            columns=self.columns.kept,
            dropped=self.columns.dropped,
            entity=self._entity,
        )

    def _flush(self) -> None:
        pending, rejected = self._pending, self._rejected
        self._pending, self._rejected = [], []
        if pending:
            schema = self._schema = self._schema or _Schema(self.columns)
            try:
                valid = schema.adapter.validate_python([record for _, _, record in pending])
            except ValidationError as exc:
                reasons = _reasons(exc)
                rejected += (
                    InvalidRow(pending[i][1], reason, self._unit) for i, reason in reasons.items()
                )
                pending = [row for i, row in enumerate(pending) if i not in reasons]
                valid = schema.adapter.validate_python([record for _, _, record in pending])
            encode = schema.encode
            for (slot, _, _), row in zip(pending, valid, strict=True):
                value, start, end = encode(row)
                self.values[slot] = value
                self.ts_spans[2 * slot] = start
                self.ts_spans[2 * slot + 1] = end
        if rejected:
            rejected.sort(key=operator.attrgetter("line"))
            if self.fail:
                first = rejected[0]
                raise DatasetError(
                    f"dataset {self._source}: {first.where}: {first.reason} — fix the row, "
                    "or skip invalid rows with dataset.on_invalid: skip"
                )
            self._invalid_count += len(rejected)
            self._samples += rejected[: SAMPLES - len(self._samples)]


_ESCAPE_BREAKS = {
    code: repr(chr(code))[1:-1]
    for code in (*range(0x20), 0x7F, 0x85, 0x2028, 0x2029)
    if chr(code) not in " \t"
}
"""Control and line-break characters as their Python escapes, for messages that must stay one
line (`str.splitlines` also breaks on \x0b, \x0c, \x1c-\x1e, \x85, \u2028 and \u2029)."""


def _reasons(exc: ValidationError) -> dict[int, str]:
    """Map each failing row index of a list validation to one line naming its fields' faults."""
    reasons: dict[int, list[str]] = {}
    for error in exc.errors(include_url=False, include_context=False):
        index, *where = error["loc"]
        assert isinstance(index, int)
        name = ".".join(map(str, where)) or "row"
        # Pydantic quotes an offending character raw (`found `\n` at 1`): escape line breaks.
        message = (error["msg"][:1].lower() + error["msg"][1:]).translate(_ESCAPE_BREAKS)
        reasons.setdefault(index, []).append(f"{name}: {message} ({clip(error['input'])!r})")
    return {index: "; ".join(faults) for index, faults in reasons.items()}


def clip(value: object, limit: int = 40) -> object:
    """`value`, cut to `limit` characters when it is longer text."""
    if isinstance(value, str) and len(value) > limit:
        return value[: limit - 1] + "…"
    return value
