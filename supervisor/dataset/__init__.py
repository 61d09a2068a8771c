"""The transaction dataset: read once from S3 or a local CSV, validated, and kept pre-serialized.

Each valid row becomes the exact bytes of its Kafka message value, so the hot path never touches
pydantic or json: it splices a fresh id (at `ID_SPAN`) and timestamp (at `Dataset.ts_spans`) into
the stored bytes. The parsed models are dropped after load.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import math
import operator
import re
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from itertools import chain, compress
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, BinaryIO, Final, Literal, cast
from uuid import UUID

import boto3
import botocore.exceptions
from botocore.config import Config
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    TypeAdapter,
    ValidationError,
)
from pydantic_core import PydanticCustomError

from supervisor.errors import DatasetError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

FIELDS: tuple[str, ...] = (
    "id",
    "description",
    "amount",
    "timestamp",
    "merchant",
    "operation_type",
    "side",
)
ID_SPAN = (7, 43)
"""Every value starts with b'{"id":"' followed by the 36-character id."""

_SAMPLES = 10
_CHUNK_ROWS = 10_000
"""Rows validated per pydantic call: bounds the model objects alive at once."""
_READ_BUFFER = 1 << 20
_TS_MARK = b',"timestamp":"'


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


_TRANSACTIONS = TypeAdapter(list[Transaction])
_JSON = json.JSONEncoder(ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class InvalidRow:
    """A rejected row: the line where its record starts (the header is line 1) and why."""

    line: int
    reason: str


@dataclass(frozen=True, slots=True)
class S3Location:
    """How to reach S3 or MinIO; keys left None fall back to boto3's default credential chain."""

    endpoint_url: str | None = None
    access_key: SecretStr | None = None
    secret_key: SecretStr | None = None
    region: str | None = None


@dataclass(frozen=True, eq=False)
class Dataset:
    """The valid rows as ready-made message values, shared read-only by every producer."""

    source: str
    values: tuple[bytes, ...] = field(repr=False)
    """Per row, compact UTF-8 JSON of exactly `FIELDS`, in that order."""
    ts_spans: array[int] = field(repr=False)
    """'I' array, two entries per row: start and end byte offsets of the timestamp text."""
    rows_read: int
    invalid_count: int
    invalid_samples: tuple[InvalidRow, ...]
    _key_columns: dict[str, tuple[bytes, ...]] = field(default_factory=dict, init=False, repr=False)
    _epochs: list[array[float]] = field(default_factory=list, init=False, repr=False)

    def __len__(self) -> int:
        return len(self.values)

    def key_column(self, field: str) -> Sequence[bytes]:
        """The UTF-8 text of `field` for every row, e.g. for Kafka keys; computed once per field."""
        if field not in FIELDS:
            raise ValueError(f"unknown field {field!r}; expected one of {', '.join(FIELDS)}")
        column = self._key_columns.get(field)
        if column is None:
            column = self._key_columns[field] = self.column(field)
        return column

    def column(self, field: str) -> tuple[bytes, ...]:
        """The UTF-8 text of `field` for every row, computed afresh (not kept)."""
        if field not in FIELDS:
            raise ValueError(f"unknown field {field!r}; expected one of {', '.join(FIELDS)}")
        return _column(self.values, field)

    def epochs(self) -> array[float]:
        """Each row's timestamp in Unix seconds (a timestamp without an offset is read as UTC);
        computed once, on first use."""
        cached = self._epochs
        if not cached:
            spans = self.ts_spans
            cached.append(
                array(
                    "d",
                    (_epoch(v[spans[2 * i] : spans[2 * i + 1]]) for i, v in enumerate(self.values)),
                )
            )
        return cached[0]


def _epoch(text: bytes) -> float:
    moment = datetime.fromisoformat(text.decode())
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _column(values: Sequence[bytes], field: str) -> tuple[bytes, ...]:
    """`field_text` of `field` in each value."""
    return tuple(field_text(value, field) for value in values)


def field_span(value: bytes, field: str) -> tuple[int, int]:
    """Start and end offsets of the JSON literal of `field` in one pre-serialized value."""
    # Keys are found by their quoted name: a quote inside a JSON string is always escaped.
    key = _FIELD_KEYS[field]
    start = value.index(key) + len(key)
    return start, value.index(_NEXT_KEYS[field], start)


def field_text(value: bytes, field: str) -> bytes:
    """The text of `field` in one pre-serialized value: a JSON number as written, a JSON string
    unescaped (e.g. for a Kafka key)."""
    start, end = field_span(value, field)
    literal = value[start:end]
    if literal[:1] != b'"':
        return literal
    if b"\\" not in literal:
        return literal[1:-1]
    return cast(str, json.loads(literal)).encode()


_FIELD_KEYS: Final = {f: f'"{f}":'.encode() for f in FIELDS}
_NEXT_KEYS: Final = {
    f: f',"{FIELDS[i + 1]}":'.encode() if i + 1 < len(FIELDS) else b"}"
    for i, f in enumerate(FIELDS)
}


def parse_csv(data: bytes, *, source: str, on_invalid: Literal["skip", "fail"] = "skip") -> Dataset:
    """Validate and serialize a CSV of transactions; `source` names it in errors and logs.

    Invalid rows are counted and skipped, or with `on_invalid="fail"` the first one raises
    `DatasetError`. So does a file that cannot be a dataset: empty, not UTF-8, a required column
    missing, a field over csv's size limit, or no valid row at all.
    """
    return _parse(io.BytesIO(data), source, on_invalid)


def _parse(lines: BinaryIO, source: str, on_invalid: Literal["skip", "fail"]) -> Dataset:
    """`parse_csv` reading a stream line by line (split on b"\\n" only, as line numbers count)."""
    if on_invalid not in ("skip", "fail"):
        raise ValueError(f"on_invalid must be 'skip' or 'fail', got {on_invalid!r}")
    number, header = _read_header(lines, source)
    rows = _Rows(source, header, fail=on_invalid == "fail")
    canonical = _CANONICAL_ROW.fullmatch if header == list(FIELDS) else None
    field_limit = csv.field_size_limit()  # longer lines go to csv, which enforces it
    values, spans = rows.values, rows.ts_spans
    real_dates: dict[bytes, bool] = {}  # the regex checks ranges, this the calendar
    for line in lines:
        number += 1
        if not line.isascii():
            try:
                line.decode()
            except UnicodeDecodeError as exc:
                raise _not_utf8(source, number, lines, exc) from None
        match = canonical(line) if canonical and len(line) <= field_limit else None
        if match:
            id_, quoted, plain, amount, day, clock, quoted_m, plain_m, operation, side = (
                match.groups()
            )
            real = real_dates.get(day)
            if real is None:
                real = real_dates[day] = _is_date(day)
            if real:
                description = quoted or plain
                values.append(
                    b"".join(
                        (
                            b'{"id":"', id_.lower(),
                            b'","description":"', description,
                            b'","amount":', amount,
                            b',"timestamp":"', day, b"T", clock,
                            b'","merchant":"', quoted_m or plain_m,
                            b'","operation_type":"', operation,
                            b'","side":"', side,
                            b'"}',
                        )
                    )
                )  # fmt: skip
                start = _FAST_TS_START + len(description) + len(amount)
                spans.append(start)
                spans.append(start + _FAST_DAY_T + len(clock))
                continue
        number = rows.parse(line, lines, number)
    return rows.finish()


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
            f"{_clip(','.join(header), 120)!r} — the first line must name {','.join(FIELDS)}"
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
    """A CSV line in `FIELDS` order that the model accepts and `_serialize` would copy verbatim.

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
_FAST_TS_START = (
    len(b'{"id":"') + 36 + len(b'","description":"') + len(b'","amount":') + len(_TS_MARK)
)
"""Where the timestamp of a fast-path value starts, less its description and amount lengths."""
_FAST_DAY_T = len("2026-01-11T")


def _is_date(text: bytes) -> bool:
    """Whether `YYYY-MM-DD` is a day of the calendar (not 2026-02-30, nor year 0)."""
    try:
        date.fromisoformat(text.decode())
    except ValueError:
        return False
    return True


class _Rows:
    """The rows of one parse: values in file order, and rows awaiting pydantic in chunks.

    A row off the fast path holds a `None` slot in `values` until its chunk is validated.
    """

    def __init__(self, source: str, header: list[str], *, fail: bool) -> None:
        self.values: list[bytes | None] = []
        self.ts_spans = array("I")  # two per slot in `values`, as in `Dataset.ts_spans`
        self._source = source
        self._fail = fail
        self._width = len(header)
        self._pick = operator.itemgetter(*(header.index(name) for name in FIELDS))
        self._malformed = 0
        self._invalid_count = 0
        self._samples: list[InvalidRow] = []
        self._pending: list[tuple[int, int, dict[str, str]]] = []  # (slot, line, record)
        self._rejected: list[InvalidRow] = []  # since the last flush

    def parse(self, first: bytes, rest: BinaryIO, line: int) -> int:
        """Parse the record starting at `line` with the csv module; return its last line number."""
        reader = csv.reader(chain((first.decode(),), map(bytes.decode, rest)), strict=True)
        try:
            row = next(reader)
        except UnicodeDecodeError as exc:  # on a continuation line
            raise _not_utf8(self._source, line + reader.line_num, rest, exc) from None
        except csv.Error as exc:
            if "field limit" in str(exc):
                raise DatasetError(
                    f"dataset {self._source}: line {line}: a field is longer than "
                    f"{csv.field_size_limit()} characters (an unclosed quote?) — fix the file"
                ) from None
            self._reject(line, f"malformed CSV: {exc}")
        else:
            if not any(row):  # a blank line, or only commas
                pass
            elif len(row) != self._width:
                self._reject(line, f"{len(row)} columns where the header has {self._width}")
            else:
                self._pending.append(
                    (len(self.values), line, dict(zip(FIELDS, self._pick(row), strict=True)))
                )
                self.values.append(None)
                self.ts_spans.extend((0, 0))
                if self._fail or len(self._pending) >= _CHUNK_ROWS:
                    self._flush()
        return line + reader.line_num - 1

    def finish(self) -> Dataset:
        self._flush()
        source = self._source
        rows_read = len(self.values) + self._malformed
        if not rows_read:
            raise DatasetError(
                f"dataset {source}: the file has a header but no data rows — add transactions"
            )
        values = tuple(filter(None, self.values))
        spans = self.ts_spans
        if len(values) < len(self.values):  # drop the spans of invalid rows
            twice = chain.from_iterable(zip(self.values, self.values, strict=True))
            spans = array("I", compress(spans, twice))
        if not values:
            first = "; ".join(f"line {row.line}: {row.reason}" for row in self._samples[:3])
            raise DatasetError(f"dataset {source}: no valid rows; first errors: {first}")
        return Dataset(
            source=source,
            values=values,
            ts_spans=spans,
            rows_read=rows_read,
            invalid_count=self._invalid_count,
            invalid_samples=tuple(self._samples),
        )

    def _reject(self, line: int, reason: str) -> None:
        self._malformed += 1
        self._rejected.append(InvalidRow(line, reason))
        if self._fail or len(self._rejected) >= _CHUNK_ROWS:
            self._flush()

    def _flush(self) -> None:
        pending, rejected = self._pending, self._rejected
        self._pending, self._rejected = [], []
        try:
            valid = _TRANSACTIONS.validate_python([record for _, _, record in pending])
        except ValidationError as exc:
            reasons = _reasons(exc)
            rejected += (InvalidRow(pending[i][1], reason) for i, reason in reasons.items())
            pending = [row for i, row in enumerate(pending) if i not in reasons]
            valid = _TRANSACTIONS.validate_python([record for _, _, record in pending])
        for (slot, _, _), transaction in zip(pending, valid, strict=True):
            value = self.values[slot] = _serialize(transaction)
            # The marker cannot occur earlier: a quote inside a JSON string is always escaped.
            start = self.ts_spans[2 * slot] = value.index(_TS_MARK) + len(_TS_MARK)
            self.ts_spans[2 * slot + 1] = value.index(b'"', start)
        if rejected:
            rejected.sort(key=operator.attrgetter("line"))
            if self._fail:
                first = rejected[0]
                raise DatasetError(
                    f"dataset {self._source}: line {first.line}: {first.reason} — fix the row, "
                    "or skip invalid rows with dataset.on_invalid: skip"
                )
            self._invalid_count += len(rejected)
            self._samples += rejected[: _SAMPLES - len(self._samples)]


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
        reasons.setdefault(index, []).append(f"{name}: {message} ({_clip(error['input'])!r})")
    return {index: "; ".join(faults) for index, faults in reasons.items()}


def _serialize(t: Transaction) -> bytes:
    """The message value: compact JSON of `FIELDS` in order; the amount exactly as a number."""
    return (
        f'{{"id":"{t.id}","description":{_JSON.encode(t.description)},"amount":{t.amount},'
        f'"timestamp":"{t.timestamp.isoformat()}","merchant":{_JSON.encode(t.merchant)},'
        f'"operation_type":"{t.operation_type}","side":"{t.side}"}}'
    ).encode()


def _clip(value: object, limit: int = 40) -> object:
    if isinstance(value, str) and len(value) > limit:
        return value[: limit - 1] + "…"
    return value


def load_dataset(
    uri: str,
    *,
    s3: S3Location | None = None,
    on_invalid: Literal["skip", "fail"] = "skip",
    base_dir: Path | None = None,
) -> Dataset:
    """Read `uri`, ``s3://bucket/key`` or a file path (relative to `base_dir` if given); parse it.

    The file is streamed, never held whole in memory. Blocking: run it in a thread from async
    code. Every failure is a one-line `DatasetError`.
    """
    if uri.startswith("s3://"):
        return _load_s3(uri, s3 or S3Location(), on_invalid)
    path = Path(uri).expanduser()
    if base_dir is not None:
        path = base_dir / path
    try:
        with path.open("rb", buffering=_READ_BUFFER) as stream:
            return _parse(stream, str(path), on_invalid)
    except FileNotFoundError:
        problem = "file not found"
    except IsADirectoryError:
        problem = "is a directory, not a file"
    except PermissionError:
        problem = "permission denied"
    except OSError as exc:
        problem = f"cannot be read ({exc.strerror or exc})"
    raise DatasetError(f"dataset {path}: {problem} — fix dataset.uri")


def s3_client(
    s3: S3Location, *, connect_timeout_s: float, read_timeout_s: float, attempts: int
) -> S3Client:
    """A boto3 S3 client for `s3` with bounded timeouts and retries (raises ValueError for a
    malformed endpoint)."""
    return boto3.client(
        "s3",
        endpoint_url=s3.endpoint_url,
        region_name=s3.region,
        aws_access_key_id=s3.access_key.get_secret_value() if s3.access_key else None,
        aws_secret_access_key=s3.secret_key.get_secret_value() if s3.secret_key else None,
        config=Config(
            connect_timeout=connect_timeout_s,
            read_timeout=read_timeout_s,
            retries={"max_attempts": attempts, "mode": "standard"},
        ),
    )


def _load_s3(uri: str, s3: S3Location, on_invalid: Literal["skip", "fail"]) -> Dataset:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not bucket or not key:
        raise DatasetError(f"dataset {uri}: expected s3://bucket/key — fix dataset.uri")
    where = s3.endpoint_url or "AWS S3"
    try:
        client = s3_client(s3, connect_timeout_s=5, read_timeout_s=10, attempts=3)
    except ValueError as exc:
        raise DatasetError(f"dataset {uri}: bad S3 endpoint {where!r} ({exc}) — fix it") from None
    try:
        body = client.get_object(Bucket=bucket, Key=key)["Body"]
        # StreamingBody implements the raw stream protocol (readinto, tell); closing closes it.
        with io.BufferedReader(cast(io.RawIOBase, body), buffer_size=_READ_BUFFER) as stream:
            return _parse(stream, uri, on_invalid)
    except botocore.exceptions.ClientError as exc:
        raise DatasetError(f"dataset {uri}: {_s3_problem(exc, bucket, key, where)}") from None
    except botocore.exceptions.NoCredentialsError:
        raise DatasetError(
            f"dataset {uri}: no S3 credentials found — set the S3 access key and secret"
        ) from None
    except botocore.exceptions.ConnectionError as exc:
        raise DatasetError(
            f"dataset {uri}: cannot reach S3 at {where} ({exc}) — start it or fix the endpoint"
        ) from None
    except botocore.exceptions.BotoCoreError as exc:  # timeouts and broken transfers included
        raise DatasetError(f"dataset {uri}: reading from S3 at {where} failed ({exc})") from None


def _s3_problem(exc: botocore.exceptions.ClientError, bucket: str, key: str, where: str) -> str:
    error = exc.response.get("Error", {})
    code = error.get("Code", "")
    if code == "NoSuchBucket":
        return f"bucket {bucket!r} does not exist at {where} — create it or fix dataset.uri"
    if code == "NoSuchKey":
        return f"no object {key!r} in bucket {bucket!r} at {where} — upload it or fix dataset.uri"
    if code == "404":  # a bare status: S3 names what is missing
        return f"{where} answered 404 with no S3 error — is it an S3 endpoint? Check it"
    if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403"):
        return (
            f"access denied by {where} ({code}) — check the S3 access key, secret and bucket policy"
        )
    message = error.get("Message") or exc
    return f"S3 error {code or 'unknown'} at {where}: {message} — check the S3 settings"
