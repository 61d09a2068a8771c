"""Rows that arrive as columns (Parquet, JSON Lines): checked and encoded a column at a time.

A reader hands a batch of rows as one pyarrow text column per name of `Rows.names` (null where
a row has no value). Rows whose every field is already in the form `codec.encode` would write
(the CSV fast path's test, in RE2 and Arrow kernels rather than per row) are assembled by
`binary_join_element_wise` from the codec's own pieces (`codec.PLAIN_PIECES`, `Extras`); the rest
go to `Rows.defer`, the pydantic path every reader shares, which also names their faults. The
unit tests check both ways give the same bytes.
"""

from __future__ import annotations

from array import array
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from supervisor.dataset import codec
from supervisor.dataset.codec import FIELDS
from supervisor.dataset.rows import Rows

_SPACES: Final = r"\x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}"
"""The non-ASCII characters `str.strip()` removes, as an RE2 class body."""
_TEXT: Final = rf'^[^\x00-\x20"\\{_SPACES}](?:[^\x00-\x1f"\\]*[^\x00-\x20"\\{_SPACES}])?$'
"""Text the model keeps as it is (nothing to strip, not empty) and JSON writes verbatim."""
_UUID: Final = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
_AMOUNT: Final = r"^-?(?:0|[1-9][0-9]{0,299})(?:\.[0-9]{1,6})?$"
_TIMESTAMP: Final = (
    r"^[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])[T ]"
    r"(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{6})?"
    r"(?:[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])?$"
)
"""As the CSV fast path's, less what RE2 cannot say (no lookaround): `.000000` and `-00:00`,
which `isoformat()` never writes, are refused apart."""
_INT: Final = r"^-?(?:0|[1-9][0-9]{0,17})$"
"""An int written as `str(int)` does, within 64 bits."""
_FLOAT: Final = r"^-?[1-9][0-9]{0,8}(?:\.[0-9]{0,5}[1-9])?$|^-?0(?:\.0{0,3}[1-9][0-9]{0,5})?$"
"""A float `codec.literal` writes as it is: at most 15 significant digits, no exponent (`repr`
writes one below 1e-4)."""
_PATTERNS: Final[Mapping[str, str]] = {"string": _TEXT, "int": _INT, "float": _FLOAT}


def add_columns(rows: Rows, texts: Mapping[str, pa.Array], numbers: Sequence[int]) -> None:
    """Add one batch of rows, `texts[name]` the text of column `name` (pa.string, null for a
    missing value) for every name in `rows.names`; `numbers[i]` is row i's line or row number."""
    n = len(numbers)
    if n == 0:
        return
    canonical = _canonical(rows, texts)
    picked = {name: texts[name].filter(canonical) for name in rows.names}
    values, spans = _assemble(rows, picked)
    if len(values) == n:
        rows.add_many(values, spans)
        return
    slots: list[bytes | None] = [None] * n
    everywhere = array("I", bytes(8 * n))
    kept = np.flatnonzero(canonical.to_numpy(zero_copy_only=False))
    for j, i in enumerate(kept.tolist()):
        slots[i] = values[j]
        everywhere[2 * i] = spans[2 * j]
        everywhere[2 * i + 1] = spans[2 * j + 1]
    first = rows.add_many(slots, everywhere)
    left = np.flatnonzero(~canonical.to_numpy(zero_copy_only=False)).tolist()
    columns = {name: texts[name].take(left).to_pylist() for name in rows.names}
    for k, i in enumerate(left):
        record = {name: column[k] for name, column in columns.items() if column[k] is not None}
        rows.defer(numbers[i], record, first + i)


def text_columns(
    names: Sequence[str], records: list[list[str]], picks: Sequence[int]
) -> dict[str, pa.Array]:
    """Rows of text (a CSV's records) as the text columns `columnar.add_columns` takes: column
    `names[k]` is each record's field `picks[k]`."""
    if not records:
        return {name: pa.array([], pa.string()) for name in names}
    fields = list(zip(*records, strict=True))
    return {
        name: pa.array(fields[pick], pa.string()) for name, pick in zip(names, picks, strict=True)
    }


def _canonical(rows: Rows, texts: Mapping[str, pa.Array]) -> pa.BooleanArray:
    """Which rows the codec would write exactly as their text reads."""
    ts = texts["timestamp"]
    checks = [
        pc.match_substring_regex(texts["id"], _UUID),
        pc.match_substring_regex(texts["description"], _TEXT),
        pc.match_substring_regex(texts["amount"], _AMOUNT),
        pc.match_substring_regex(ts, _TIMESTAMP),
        pc.invert(pc.match_substring(ts, ".000000")),
        pc.invert(pc.ends_with(ts, "-00:00")),
        pc.is_in(pc.utf8_slice_codeunits(ts, 0, 10), value_set=_real_days(ts)),
        pc.match_substring_regex(texts["merchant"], _TEXT),
        pc.is_in(texts["operation_type"], value_set=pa.array(["debit", "credit"])),
        pc.is_in(texts["side"], value_set=pa.array(["outgoing", "incoming"])),
    ]
    for name, kind in rows.columns.kept.items():
        text = texts[name]
        check = (
            pc.is_in(text, value_set=pa.array(["true", "false"]))
            if kind == "bool"
            else pc.match_substring_regex(text, _PATTERNS[kind])
        )
        checks.append(pc.or_kleene(pc.is_null(text), check))  # null: sent as null
    mask = checks[0]
    for check in checks[1:]:
        mask = pc.and_kleene(mask, check)
    return pc.fill_null(mask, False)


def _real_days(ts: pa.Array) -> pa.Array:
    """The distinct `YYYY-MM-DD` prefixes of `ts` that are days of the calendar."""
    days = pc.unique(pc.utf8_slice_codeunits(ts, 0, 10)).to_pylist()
    return pa.array([day for day in days if day is not None and _is_day(day)], pa.string())


def _is_day(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return len(text) == 10


def _assemble(rows: Rows, t: Mapping[str, pa.Array]) -> tuple[list[bytes], array[int]]:
    """The values of canonical rows, and their timestamp spans, as `codec.encode_plain` makes
    them (plus the kept columns, as `codec.Extras` writes them)."""
    pieces = codec.PLAIN_PIECES
    ts = pc.replace_substring(t["timestamp"], " ", "T", max_replacements=1)
    parts: list[Any] = []
    for piece, name in zip(pieces, FIELDS, strict=False):
        column = pc.utf8_lower(t[name]) if name == "id" else ts if name == "timestamp" else t[name]
        parts += [piece.decode(), column]
    parts.append(pieces[-1].decode())
    keys = codec.Extras(list(rows.columns.kept)).key_bytes()
    for key, (name, kind) in zip(keys, rows.columns.kept.items(), strict=True):
        text = t[name]
        if kind == "string":
            text = pc.binary_join_element_wise('"', text, '"', "")
        parts += [key.decode(), pc.fill_null(text, "null")]
    parts += ["}", ""]  # the last argument is the separator
    joined = pc.binary_join_element_wise(*parts)
    start = pc.add(
        pc.add(pc.binary_length(t["description"]), pc.binary_length(t["amount"])),
        codec.PLAIN_TS_START,
    )
    end = pc.add(start, pc.binary_length(ts))
    spans = np.empty(2 * len(joined), dtype=np.uint32)
    spans[0::2] = start.to_numpy(zero_copy_only=False)
    spans[1::2] = end.to_numpy(zero_copy_only=False)
    return joined.cast(pa.binary()).to_pylist(), array("I", spans.tobytes())
