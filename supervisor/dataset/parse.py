"""Reading a transactions CSV: validated row by row, each valid row encoded once by the codec.

Rows like the generator's (a file of exactly the seven columns) take a fast path (one regex, no
pydantic) proven equal to the general path (csv module, then `rows.Rows`: pydantic in chunks) by
the unit tests; every fault is reported per row with its line number and reason, or, for a file
that cannot be a dataset, as one `DatasetError` line.
"""

from __future__ import annotations

import codecs
import csv
import io
import operator
import re
from datetime import date
from itertools import chain
from typing import BinaryIO, Literal

from supervisor.dataset import codec
from supervisor.dataset.codec import FIELDS
from supervisor.dataset.columns import Reading
from supervisor.dataset.model import Dataset
from supervisor.dataset.rows import Rows, clip
from supervisor.errors import DatasetError

_SEVEN_COLUMNS = Reading()


def parse_csv(
    data: bytes,
    *,
    source: str,
    on_invalid: Literal["skip", "fail"] = "skip",
    reading: Reading = _SEVEN_COLUMNS,
) -> Dataset:
    """Validate and serialize a CSV of transactions; `source` names it in errors and logs.

    Invalid rows are counted and skipped, or with `on_invalid="fail"` the first one raises
    `DatasetError`. So does a file that cannot be a dataset: empty, not UTF-8, a required column
    missing, a field over csv's size limit, or no valid row at all.
    """
    return parse_stream(io.BytesIO(data), source, on_invalid, reading)


def parse_stream(
    lines: BinaryIO,
    source: str,
    on_invalid: Literal["skip", "fail"],
    reading: Reading = _SEVEN_COLUMNS,
) -> Dataset:
    """`parse_csv` reading a stream line by line (split on b"\\n" only, as line numbers count)."""
    if on_invalid not in ("skip", "fail"):
        raise ValueError(f"on_invalid must be 'skip' or 'fail', got {on_invalid!r}")
    number, header = _read_header(lines, source)
    columns = reading.columns_of(header, source)
    rows = Rows(source, fail=on_invalid == "fail", columns=columns, entity=reading.entity)
    if header != list(FIELDS):  # other columns, or another order: a column at a time
        _by_columns(lines, number, rows, header, source)
        return rows.finish()
    reader = _Records(rows, header, source)
    canonical = _CANONICAL_ROW.fullmatch
    field_limit = csv.field_size_limit()  # longer lines go to csv, which enforces it
    values, spans = rows.values, rows.ts_spans  # appended to inline: no call per row
    real_dates: dict[bytes, bool] = {}  # the regex checks ranges, this the calendar
    for line in lines:
        number += 1
        if not line.isascii():
            try:
                line.decode()
            except UnicodeDecodeError as exc:
                raise _not_utf8(source, number, lines, exc) from None
        match = canonical(line) if len(line) <= field_limit else None
        if match:
            id_, quoted, plain, amount, day, clock, quoted_m, plain_m, operation, side = (
                match.groups()
            )
            real = real_dates.get(day)
            if real is None:
                real = real_dates[day] = _is_date(day)
            if real:
                value, start, end = codec.encode_plain(
                    id_.lower(),
                    quoted or plain,
                    amount,
                    day,
                    clock,
                    quoted_m or plain_m,
                    operation,
                    side,
                )
                values.append(value)
                spans.append(start)
                spans.append(end)
                continue
        number = reader.parse(line, lines, number)
    return rows.finish()


def _field_too_long(source: str, line: int) -> DatasetError:
    """csv's field size limit reached: most often a quote that is never closed."""
    return DatasetError(
        f"dataset {source}: line {line}: a field is longer than {csv.field_size_limit()}"
        " characters (an unclosed quote?) — fix the file"
    )


def _not_utf8(source: str, line: int, stream: BinaryIO, exc: UnicodeDecodeError) -> DatasetError:
    """The error for a line, the last one read from `stream`, that failed to decode."""
    offset = stream.tell() - len(exc.object) + exc.start
    byte = exc.object[exc.start : exc.start + 1]
    return DatasetError(
        f"dataset {source}: line {line}: byte {byte!r} at offset {offset} is not UTF-8 "
        "— save the file as UTF-8"
    )


def _read_header(lines: BinaryIO, source: str) -> tuple[int, list[str]]:
    """Read the header row: return the number of its last line and its stripped column names."""
    first = next(lines, b"").removeprefix(codecs.BOM_UTF8)
    reader = csv.reader(map(bytes.decode, chain((first,), lines)), strict=True)
    try:
        header = next((row for row in reader if any(row)), None)
    except csv.Error as exc:
        raise DatasetError(f"dataset {source}: malformed CSV header ({exc}) — fix it") from None
    except UnicodeDecodeError as exc:
        raise _not_utf8(source, reader.line_num + 1, lines, exc) from None
    if header is None:
        raise DatasetError(f"dataset {source}: the file is empty — expected a CSV with a header")
    names = [name.strip() for name in header]
    missing = [name for name in FIELDS if name not in names]
    if missing:
        raise DatasetError(
            f"dataset {source}: missing column(s) {', '.join(missing)} in header "
            f"{clip(','.join(header), 120)!r} — the first line must name {','.join(FIELDS)}"
        )
    repeated = [name for name in FIELDS if names.count(name) > 1]
    if repeated:
        raise DatasetError(
            f"dataset {source}: column(s) {', '.join(repeated)} appear more than once in the "
            "header — keep one of each"
        )
    return reader.line_num, names


_UNICODE_SPACES = (
    "\x85\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B))) + "\u2028\u2029\u202f\u205f\u3000"
)
"""The non-ASCII characters `str.strip()` removes (Unicode White_Space)."""


def _canonical_row() -> re.Pattern[bytes]:
    """A CSV line in `FIELDS` order that the model accepts and `codec.encode` would copy verbatim.

    Rows like the generator's match in one regex call and are formatted without pydantic: a
    hyphenated UUID (lower-cased), text needing neither stripping nor JSON escaping (quoted only
    to hold commas), an amount `str(Decimal(...))` keeps as written (at most 300 integer digits:
    longer ones may overflow a double, which the model refuses), `YYYY-MM-DD[T ]HH:MM:SS` with
    the microseconds and offset `isoformat()` would write (the caller checks the calendar), and the
    exact literals. Anything else takes
    the general path (csv module, then pydantic), which also names the faults. The unit tests
    check that both paths give the same bytes.
    """
    spaces = [char.encode() for char in _UNICODE_SPACES]  # all bytes >= 0x80: nothing to escape
    by_width: dict[int, list[bytes]] = {}
    for space in spaces:
        by_width.setdefault(len(space), []).append(space)
    # A lookbehind must have a fixed width: one per UTF-8 length.
    no_space_before = b"".join(b"(?<!" + b"|".join(group) + b")" for group in by_width.values())

    def text(excluded: bytes) -> bytes:
        char = rb'[^\x00-\x1f"\\' + excluded + b"]"
        first = rb'[^\x00-\x20"\\' + excluded + b"]"
        return b"(?!" + b"|".join(spaces) + b")" + first + char + b"*+(?<! )" + no_space_before

    field = rb'(?:"(' + text(b"") + rb')"|(' + text(b",") + b"))"
    hex_ = b"[0-9a-fA-F]"
    return re.compile(
        b"(%s{8}-%s{4}-%s{4}-%s{4}-%s{12})," % ((hex_,) * 5)
        + field
        + rb",(-?(?:0|[1-9][0-9]{0,299})(?:\.[0-9]{1,6})?),"
        + rb"([0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01]))[T ]"
        + rb"((?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.(?!000000)[0-9]{6})?"
        + rb"(?:\+(?:[01][0-9]|2[0-3]):[0-5][0-9]|-(?!00:00)(?:[01][0-9]|2[0-3]):[0-5][0-9])?),"
        + field
        + rb",(debit|credit),(outgoing|incoming)\r?\n?"
    )


_CANONICAL_ROW = _canonical_row()


def _is_date(text: bytes) -> bool:
    """Whether `YYYY-MM-DD` is a day of the calendar (not 2026-02-30, nor year 0)."""
    try:
        date.fromisoformat(text.decode())
    except ValueError:
        return False
    return True


_BATCH_ROWS = 65_536


def _by_columns(lines: BinaryIO, number: int, rows: Rows, header: list[str], source: str) -> None:
    """Read the records after the header (which ends on line `number`) with one csv reader and
    hand them to `columnar` a batch at a time: the fast path of a file whose header is not the
    seven fields in order (extra columns, another order)."""
    from supervisor.dataset.columnar import add_columns, text_columns  # pyarrow: when needed

    width = len(header)
    picks = [header.index(name) for name in rows.names]
    fail = rows.fail
    numbers: list[int] = []
    records: list[list[str]] = []

    def flush() -> None:
        if numbers:
            add_columns(rows, text_columns(rows.names, records, picks), numbers)
            numbers.clear()
            records.clear()

    def reject(line: int, reason: str) -> None:
        if fail:
            flush()  # an earlier row's fault comes first
        rows.reject(line, reason)

    reader = csv.reader(map(bytes.decode, lines), strict=True)
    while True:
        start = number + reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except UnicodeDecodeError as exc:
            raise _not_utf8(source, number + reader.line_num + 1, lines, exc) from None
        except csv.Error as exc:
            if "field limit" in str(exc):
                raise _field_too_long(source, start) from None
            reject(start, f"malformed CSV: {exc}")
            continue
        if not any(row):  # a blank line, or only commas
            continue
        if len(row) != width:
            reject(start, f"{len(row)} columns where the header has {width}")
            continue
        numbers.append(start)
        records.append(row)
        if len(numbers) >= _BATCH_ROWS:
            flush()
    flush()


class _Records:
    """Reads, with the csv module, the records the fast path left, for `Rows` to validate."""

    def __init__(self, rows: Rows, header: list[str], source: str) -> None:
        self._rows = rows
        self._source = source
        self._width = len(header)
        self._names = rows.names
        self._pick = operator.itemgetter(*(header.index(name) for name in rows.names))

    def parse(self, first: bytes, rest: BinaryIO, line: int) -> int:
        """Parse the record starting at `line` with the csv module; return its last line number."""
        reader = csv.reader(chain((first.decode(),), map(bytes.decode, rest)), strict=True)
        try:
            row = next(reader)
        except UnicodeDecodeError as exc:  # on a continuation line
            raise _not_utf8(self._source, line + reader.line_num, rest, exc) from None
        except csv.Error as exc:
            if "field limit" in str(exc):
                raise _field_too_long(self._source, line) from None
            self._rows.reject(line, f"malformed CSV: {exc}")
        else:
            if not any(row):  # a blank line, or only commas
                pass
            elif len(row) != self._width:
                self._rows.reject(line, f"{len(row)} columns where the header has {self._width}")
            else:
                self._rows.defer(line, dict(zip(self._names, self._pick(row), strict=True)))
        return line + reader.line_num - 1
