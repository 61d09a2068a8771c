"""Reading a transactions JSON Lines file: one object per line, read into text columns a batch at
a time, then checked and encoded by `columnar` (and `rows` for the rest), as a CSV's rows are.

The first object's keys play the CSV header's part: they say which extra columns there are (keys
that only later objects have are not sent, and are named in the load's log). A value is read as
the text a CSV would hold: a number exactly as written (`12.50` stays `12.50`), `true`/`false`,
a string as it is; `null` or a missing key is an empty cell. A line that is not a JSON object, or
holds an array or object where a value should be, is a rejected row with its line number; blank
lines are skipped.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any, BinaryIO, Final, Literal

import pyarrow as pa

from supervisor.dataset.codec import FIELDS
from supervisor.dataset.columnar import add_columns
from supervisor.dataset.columns import Reading
from supervisor.dataset.model import Dataset
from supervisor.dataset.rows import Rows, clip

_BATCH_ROWS: Final = 65_536
_DECODER: Final = json.JSONDecoder(parse_float=str, parse_int=str, parse_constant=str)
_BOOLS: Final = {True: "true", False: "false"}


def parse_jsonl(
    lines: BinaryIO, source: str, on_invalid: Literal["skip", "fail"], reading: Reading
) -> Dataset:
    """Validate and serialize a JSON Lines file of transactions (see `parse.parse_csv`)."""
    batch = _Batch(source, on_invalid == "fail", reading)
    for number, line in enumerate(lines, 1):
        if line.isspace() or not line:
            continue
        try:
            text = line.decode()
        except UnicodeDecodeError as exc:
            batch.reject(number, f"byte {exc.object[exc.start : exc.start + 1]!r} is not UTF-8")
            continue
        try:
            record = _DECODER.decode(text.removeprefix("\ufeff") if number == 1 else text)
        except json.JSONDecodeError as exc:
            batch.reject(number, f"malformed JSON: {exc.msg} at column {exc.colno}")
            continue
        if not isinstance(record, dict):
            batch.reject(number, f"not a JSON object ({clip(text.strip())!r})")
            continue
        batch.add(number, record)
    return batch.finish()


class _Batch:
    """The rows read so far: column lists for the batch under way, handed to `columnar`."""

    def __init__(self, source: str, fail: bool, reading: Reading) -> None:
        self._source = source
        self._fail = fail
        self._reading = reading
        self._rows: Rows | None = None  # made once the first object gives the columns
        self._early: list[tuple[int, str]] = []  # rejections before it
        self._names: tuple[str, ...] = FIELDS
        self._known: frozenset[str] = frozenset()
        self._unsent: dict[str, None] = {}  # later objects' other keys, in order of appearance
        self._numbers: list[int] = []
        self._columns: list[list[Any]] = []

    def add(self, number: int, record: dict[str, Any]) -> None:
        if self._rows is None:
            self._start(list(record))
        if not self._known.issuperset(record):
            self._unsent.update(dict.fromkeys(k for k in record if k not in self._known))
        get = record.get
        for column, name in zip(self._columns, self._names, strict=True):
            column.append(get(name))
        self._numbers.append(number)
        if len(self._numbers) >= _BATCH_ROWS:
            self._flush()

    def reject(self, number: int, reason: str) -> None:
        if self._rows is None:
            self._early.append((number, reason))
            if self._fail:
                self._start(list(FIELDS))  # which reports it
            return
        if self._fail:
            self._flush()  # an earlier row's fault comes first
        self._rows.reject(number, reason)

    def finish(self) -> Dataset:
        rows = self._rows or self._start(list(FIELDS))
        self._flush()
        if self._unsent:
            dropped = (*rows.columns.dropped, *self._unsent)
            rows.columns = replace(rows.columns, dropped=dropped)
        pa.default_memory_pool().release_unused()  # what the batches took goes back to the system
        return rows.finish(empty="the file has no JSON objects")

    def _start(self, keys: list[str]) -> Rows:
        columns = self._reading.columns_of([*FIELDS, *keys], self._source)
        rows = self._rows = Rows(
            self._source, fail=self._fail, columns=columns, entity=self._reading.entity
        )
        self._names = rows.names
        self._known = frozenset((*FIELDS, *keys))
        self._columns = [[] for _ in self._names]
        for early in self._early:
            rows.reject(*early)
        self._early.clear()
        return rows

    def _flush(self) -> None:
        rows, numbers = self._rows, self._numbers
        if rows is None or not numbers:
            return
        bad: dict[int, str] = {}  # batch position -> why
        texts = {}
        for name, column in zip(self._names, self._columns, strict=True):
            try:
                texts[name] = pa.array(column, pa.string())
            except (pa.ArrowTypeError, pa.ArrowInvalid):  # not only strings and nulls
                texts[name] = pa.array(_texts(name, column, bad), pa.string())
        if bad and self._fail:  # the rows before the first bad one may fail first
            first = min(bad)
            add_columns(rows, {n: t.slice(0, first) for n, t in texts.items()}, numbers[:first])
            rows.reject(numbers[first], bad[first])  # raises
        if bad:
            keep = pa.array([i not in bad for i in range(len(numbers))])
            texts = {name: text.filter(keep) for name, text in texts.items()}
            for i, reason in sorted(bad.items()):
                rows.reject(numbers[i], reason)
            numbers = [n for i, n in enumerate(numbers) if i not in bad]
        add_columns(rows, texts, numbers)
        self._numbers = []
        self._columns = [[] for _ in self._names]


def _texts(name: str, values: list[Any], bad: dict[int, str]) -> list[str | None]:
    """`values` as text (`true`/`false` for booleans; numbers are text already); an array or
    object makes its row bad."""
    texts: list[str | None] = []
    for i, value in enumerate(values):
        if value is None or isinstance(value, str):
            texts.append(value)
        elif isinstance(value, bool):
            texts.append(_BOOLS[value])
        else:
            bad.setdefault(i, f"{name}: an array or object, not a value ({clip(value)!r})")
            texts.append(None)
    return texts
