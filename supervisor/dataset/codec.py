"""The record codec: the one owner of a message value's byte layout.

Every valid dataset row is serialized once, at load, to compact UTF-8 JSON of `FIELDS` in that
order:

    {"id":"<36-char uuid>","description":"...","amount":12.5,"timestamp":"2026-01-11T10:00:00",
     "merchant":"...","operation_type":"debit","side":"outgoing"}

A dataset that keeps extra columns (`dataset.extra_columns: keep`) appends them after the seven, in
the dataset's order, each as its JSON type (`null` for an empty cell):

    {"id":"...", ..., "side":"outgoing","card_id":"4111-0001","mcc":5411}

The id always sits at `ID_SPAN`; the timestamp text's offsets differ per row and are recorded at
load (`Dataset.ts_spans`); both come before any extra column, so splicing them never depends on
what follows. A field is found by its quoted key (a quote inside a JSON string is always escaped,
so `"name":` occurs only as a key) and ends where its JSON literal does.

Everything that reads or rewrites a value's bytes goes through this module: writing the kept
columns (`Extras`), picking a field's text (keys, entities), splicing a fresh id and a new
timestamp, replacing the amount or another field, telling a debit, and writing or reading
timestamp text. No JSON encoding, dict or pydantic per message.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Final, Protocol, cast
from uuid import UUID

FIELDS: Final[tuple[str, ...]] = (
    "id",
    "description",
    "amount",
    "timestamp",
    "merchant",
    "operation_type",
    "side",
)
ID_PREFIX: Final = b'{"id":"'
"""How every value starts: the 36-character id follows."""
ID_SPAN: Final = (len(ID_PREFIX), len(ID_PREFIX) + 36)
"""Where the id text is in every value."""
TS_MARK: Final = b',"timestamp":"'
"""What precedes the timestamp text; it cannot occur earlier, as a quote inside a JSON string is
always escaped."""
_ID_END: Final = ID_SPAN[1]
_DEBIT: Final = b',"operation_type":"debit","side":"outgoing"'
"""What every debit value holds: the two enum literals, serialized verbatim (followed by the end
of the value, or by the extra columns)."""
_FIELD_KEYS: Final = {f: f'"{f}":'.encode() for f in FIELDS}
_JSON: Final = json.JSONEncoder(ensure_ascii=False)


# --- writing values ------------------------------------------------------------------------------


class Record(Protocol):
    """A validated transaction (`supervisor.dataset.model.Transaction`), as the codec reads it."""

    @property
    def id(self) -> UUID: ...
    @property
    def description(self) -> str: ...
    @property
    def amount(self) -> Decimal: ...
    @property
    def timestamp(self) -> datetime: ...
    @property
    def merchant(self) -> str: ...
    @property
    def operation_type(self) -> str: ...
    @property
    def side(self) -> str: ...


def encode(t: Record, extras: str = "") -> tuple[bytes, int, int]:
    """A validated transaction as its message value, with the offsets of its timestamp text;
    `extras` is its kept columns as `Extras.encode` writes them."""
    value = (
        f'{{"id":"{t.id}","description":{_JSON.encode(t.description)},"amount":{t.amount},'
        f'"timestamp":"{t.timestamp.isoformat()}","merchant":{_JSON.encode(t.merchant)},'
        f'"operation_type":"{t.operation_type}","side":"{t.side}"{extras}}}'
    ).encode()
    start = value.index(TS_MARK) + len(TS_MARK)
    return value, start, value.index(b'"', start)


def encode_plain(
    id_: bytes,
    description: bytes,
    amount: bytes,
    day: bytes,
    clock: bytes,
    merchant: bytes,
    operation: bytes,
    side: bytes,
) -> tuple[bytes, int, int]:
    """`encode` for a row whose text fields need no JSON escaping and whose fields are already in
    their canonical form (the CSV reader's fast path): the value and its timestamp offsets."""
    value = b"".join(
        (
            ID_PREFIX, id_,
            b'","description":"', description,
            b'","amount":', amount,
            TS_MARK, day, b"T", clock,
            b'","merchant":"', merchant,
            b'","operation_type":"', operation,
            b'","side":"', side,
            b'"}',
        )
    )  # fmt: skip
    start = PLAIN_TS_START + len(description) + len(amount)
    return value, start, start + len(day) + 1 + len(clock)


PLAIN_PIECES: Final = (
    ID_PREFIX,
    b'","description":"',
    b'","amount":',
    TS_MARK,
    b'","merchant":"',
    b'","operation_type":"',
    b'","side":"',
    b'"',
)
"""What an `encode_plain` value holds before each of the seven fields' text, and after the last
(then come the kept columns, then `}`): for a reader that assembles whole columns at once."""
PLAIN_TS_START: Final = (
    len(ID_PREFIX) + 36 + len(b'","description":"') + len(b'","amount":') + len(TS_MARK)
)
"""Where the timestamp of an `encode_plain` value starts, less its description and amount."""


class Extras:
    """Writes the kept columns of a row, in order, after the seven fields: the one place their
    JSON is made (`encode` takes it as text)."""

    __slots__ = ("_keys", "names")

    def __init__(self, names: Sequence[str]) -> None:
        self.names = tuple(names)
        self._keys = tuple(f",{_JSON.encode(name)}:" for name in self.names)

    def encode(self, values: Sequence[str | int | float | bool | None]) -> str:
        """The kept columns' `,"name":literal` text for one row's typed values."""
        return "".join(key + literal(v) for key, v in zip(self._keys, values, strict=True))

    def key_bytes(self) -> tuple[bytes, ...]:
        """Each column's `,"name":` as bytes, for a reader that assembles values itself."""
        return tuple(key.encode() for key in self._keys)


def literal(value: str | int | float | bool | None) -> str:
    """One kept column's value as a JSON literal; a float as `repr` writes it, less a trailing
    `.0` (so 12 stays 12)."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return _JSON.encode(value)
    if isinstance(value, float):
        return repr(value).removesuffix(".0")
    return str(value)


# --- reading values ------------------------------------------------------------------------------


def field_span(value: bytes, field: str) -> tuple[int, int]:
    """Start and end offsets of the JSON literal of `field` (one of the seven or a kept column)
    in one value."""
    # Keys are found by their quoted name: a quote inside a JSON string is always escaped.
    key = _FIELD_KEYS.get(field) or f"{_JSON.encode(field)}:".encode()
    start = value.index(key) + len(key)
    if value[start] != 0x22:  # a number, true, false or null: up to the next comma or the end
        comma = value.find(b",", start)
        return start, comma if comma >= 0 else len(value) - 1
    end = value.index(b'"', start + 1)
    while _escaped(value, end):
        end = value.index(b'"', end + 1)
    return start, end + 1


def _escaped(value: bytes, quote: int) -> bool:
    """Whether the quote at `quote` is escaped (an odd run of backslashes before it)."""
    before = quote
    while value[before - 1] == 0x5C:
        before -= 1
    return (quote - before) % 2 == 1


def field_text(value: bytes, field: str) -> bytes:
    """The text of `field` in one value: a JSON number as written, a JSON string unescaped (e.g.
    for a Kafka key)."""
    start, end = field_span(value, field)
    literal = value[start:end]
    if literal[:1] != b'"':
        return literal
    if b"\\" not in literal:
        return literal[1:-1]
    return cast(str, json.loads(literal)).encode()


def field_literal(value: bytes, field: str) -> bytes:
    """The JSON literal of `field` in one value, as written (a string with its quotes)."""
    start, end = field_span(value, field)
    return value[start:end]


def column(values: Sequence[bytes], field: str) -> tuple[bytes, ...]:
    """`field_text` of `field` in each value (a kept column's `null` reads as empty text)."""
    texts = tuple(field_text(value, field) for value in values)
    return texts if field in FIELDS else tuple(b"" if t == b"null" else t for t in texts)


def id_of(value: bytes) -> bytes:
    """The id text of a value."""
    return value[ID_SPAN[0] : _ID_END]


def is_debit(value: bytes) -> bool:
    """Whether the value is an outgoing debit."""
    return _DEBIT in value


def amount_of(value: bytes) -> float:
    return float(field_text(value, "amount"))


def epoch_of(text: bytes) -> float:
    """A value's timestamp text in Unix seconds (a timestamp without an offset is read as UTC)."""
    moment = datetime.fromisoformat(text.decode())
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


# --- rewriting values ----------------------------------------------------------------------------


def splice(value: bytes, ts_start: int, ts_end: int, id_: bytes | None, ts: bytes | None) -> bytes:
    """`value` (whose timestamp text spans [ts_start, ts_end)) with its id and/or timestamp text
    replaced; None keeps the row's."""
    if ts is not None:
        value = value[:ts_start] + ts + value[ts_end:]
    if id_ is not None:
        value = ID_PREFIX + id_ + value[_ID_END:]
    return value


def with_id(value: bytes, id_: bytes) -> bytes:
    """`value` with its id text replaced by `id_` (36 bytes)."""
    return ID_PREFIX + id_ + value[_ID_END:]


def with_field(value: bytes, field: str, literal: bytes) -> bytes:
    """`value` with the JSON literal of `field` replaced by `literal` (an amount-outlier's
    amount, a fraud event's card). Every byte after it moves by the difference in length, so
    splice the id and timestamp at the dataset's offsets first, or not at all."""
    start, end = field_span(value, field)
    return b"".join((value[:start], literal, value[end:]))


def splice_batch(
    values: Sequence[bytes],
    spans: Sequence[int],
    rows: Sequence[int],
    ids: Sequence[bytes] | None,
    ts: bytes | None,
    prefix: bytes = ID_PREFIX,
) -> list[bytes]:
    """The values of `rows`, each with its id taken from `ids` (one 36-byte id per row, in order)
    and its timestamp text replaced by `ts` (the same for all), either or both None to keep the
    row's.

    The per-batch form of `splice`, for the fast path: one comprehension, no call per message.
    `prefix` is what precedes the id in every value (a Confluent wire layout passes its own).
    """
    id_end = len(prefix) + 36
    if ids is None:
        if ts is None:
            return [values[i] for i in rows]
        return [values[i][: spans[2 * i]] + ts + values[i][spans[2 * i + 1] :] for i in rows]
    if ts is None:
        return [prefix + n + values[i][id_end:] for i, n in zip(rows, ids, strict=True)]
    return [
        prefix + n + values[i][id_end : spans[2 * i]] + ts + values[i][spans[2 * i + 1] :]
        for i, n in zip(rows, ids, strict=True)
    ]


# --- timestamp text ------------------------------------------------------------------------------


def now_timestamp() -> bytes:
    """The current UTC time as ISO 8601 with milliseconds and an explicit offset."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").encode()


def epoch_ms(epoch_s: float) -> int:
    """A Unix time in whole milliseconds, as `iso_timestamp` writes it (truncated, after rounding
    to the microsecond so that float noise such as .4239999 still reads .424)."""
    return round(epoch_s * 1_000_000) // 1000


def iso_timestamp(epoch_s: float) -> bytes:
    """A Unix time as `now_timestamp()` writes it: UTC, milliseconds, explicit offset; the same
    millisecond as `epoch_ms`, so a Kafka timestamp and the value's text always agree."""
    ms = epoch_ms(epoch_s)
    moment = datetime.fromtimestamp(ms // 1000, UTC).replace(microsecond=ms % 1000 * 1000)
    return moment.isoformat(timespec="milliseconds").encode()
