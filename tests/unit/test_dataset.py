"""The dataset loader: messy but valid CSV, content errors, exact values and offsets, S3 errors."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from supervisor.dataset import (
    FIELDS,
    ID_SPAN,
    Dataset,
    InvalidRow,
    S3Location,
    load_dataset,
    parse_csv,
)
from supervisor.dataset import s3 as dataset_s3
from supervisor.errors import DatasetError, ExitCode

HEADER = ",".join(FIELDS)
ID = "6b65a6a4-8b81-48f6-b38a-088ca65ed389"
TS = "2026-01-11T10:00:00"
ROW = f"{ID},Card payment TESCO 2031,12.50,{TS},TESCO,debit,outgoing"


def csv_bytes(*lines: str, header: str = HEADER, newline: str = "\n") -> bytes:
    return newline.join((header, *lines, "")).encode()


def parse(data: bytes, **kwargs: Any) -> Dataset:
    return parse_csv(data, source="tx.csv", **kwargs)


def records(ds: Dataset) -> list[dict[str, Any]]:
    return [json.loads(value, parse_float=Decimal, parse_int=Decimal) for value in ds.values]


def error(data: bytes, **kwargs: Any) -> str:
    with pytest.raises(DatasetError) as caught:
        parse(data, **kwargs)
    assert caught.value.exit_code == ExitCode.BAD_INPUT
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("dataset tx.csv: ")
    return message


def write_rows(rows: Sequence[Sequence[str]], order: Sequence[int] = range(7)) -> bytes:
    """A CSV of `rows` (in `FIELDS` order) written by the csv module, columns in `order`.

    CRLF line ends: the writer quotes a field holding \\r or \\n only if the terminator has it.
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([FIELDS[i] for i in order])
    writer.writerows([row[i] for i in order] for row in rows)
    return out.getvalue().encode()


# --- values ------------------------------------------------------------------------------------


def test_a_plain_row_becomes_compact_json_of_the_seven_fields_in_order() -> None:
    ds = parse(csv_bytes(ROW))
    assert ds.values == (
        b'{"id":"6b65a6a4-8b81-48f6-b38a-088ca65ed389","description":"Card payment TESCO 2031",'
        b'"amount":12.50,"timestamp":"2026-01-11T10:00:00","merchant":"TESCO",'
        b'"operation_type":"debit","side":"outgoing"}',
    )
    assert (ds.source, len(ds), ds.rows_read, ds.invalid_count) == ("tx.csv", 1, 1, 0)
    assert ds.invalid_samples == ()
    assert ds.values[0][ID_SPAN[0] : ID_SPAN[1]] == ID.encode()
    assert ds.ts_spans.typecode == "I"
    assert ds.values[0][ds.ts_spans[0] : ds.ts_spans[1]] == TS.encode()


@pytest.mark.parametrize(
    ("written", "serialized"),
    [
        ("0.10", b"0.10"),
        ("12", b"12"),
        ("-0.00", b"-0.00"),
        ("007.50", b"7.50"),
        ("+5", b"5"),
        ("1e3", b"1E+3"),
        ("0.0000001", b"1E-7"),
        (" 3.25 ", b"3.25"),
        ("123456789012345678901234567890.123456789", b"123456789012345678901234567890.123456789"),
    ],
)
def test_amounts_are_json_numbers_written_exactly_from_the_decimal(
    written: str, serialized: bytes
) -> None:
    (value,) = parse(csv_bytes(f"{ID},x,{written},{TS},m,debit,outgoing")).values
    assert b'"amount":' + serialized + b',"timestamp"' in value
    assert json.loads(value, parse_float=Decimal)["amount"] == Decimal(written)


@pytest.mark.parametrize("amount", ["NaN", "Infinity", "-inf", "abc", "", "1,5"])
def test_amounts_that_are_not_finite_numbers_are_rejected(amount: str) -> None:
    data = csv_bytes(ROW, f'{ID},x,"{amount}",{TS},m,debit,outgoing')
    ds = parse(data)
    assert len(ds) == 1
    ((line, reason),) = [(row.line, row.reason) for row in ds.invalid_samples]
    assert line == 3
    assert reason.startswith("amount: ")
    assert repr(amount) in reason


@pytest.mark.parametrize("amount", ["1e999999", "-1E+400", "9" * 400])
def test_amounts_a_json_reader_would_read_as_infinity_are_rejected(amount: str) -> None:
    ds = parse(csv_bytes(ROW, f"{ID},x,{amount},{TS},m,debit,outgoing"))
    assert len(ds) == 1
    ((line, reason),) = [(row.line, row.reason) for row in ds.invalid_samples]
    assert line == 3
    assert reason.startswith("amount: beyond the range of a double")


def test_the_largest_amounts_a_double_holds_are_kept() -> None:
    for amount in ("9" * 300, "9" * 308 + ".5"):  # the first on the fast path, the second not
        (value,) = parse(csv_bytes(f"{ID},x,{amount},{TS},m,debit,outgoing")).values
        read = json.loads(value, parse_int=float)["amount"]  # as a reader of doubles would
        assert read == float(amount) < float("inf")


@pytest.mark.parametrize(
    ("written", "serialized"),
    [
        ("2026-01-11T10:00:00", "2026-01-11T10:00:00"),
        ("2026-01-11 10:00:00", "2026-01-11T10:00:00"),
        ("2026-01-11T10:00", "2026-01-11T10:00:00"),
        ("2026-01-11T10:00:00.250", "2026-01-11T10:00:00.250000"),
        ("2026-01-11T10:00:00.250000", "2026-01-11T10:00:00.250000"),
        ("2026-01-11T10:00:00.000000", "2026-01-11T10:00:00"),
        ("2026-01-11T10:00:00-05:30", "2026-01-11T10:00:00-05:30"),
        ("2026-01-11T10:00:00-00:00", "2026-01-11T10:00:00+00:00"),
        ("2026-01-11T10:00:00Z", "2026-01-11T10:00:00+00:00"),
        ("2026-01-11T10:00:00+01:00", "2026-01-11T10:00:00+01:00"),
        ("2026-01-11", "2026-01-11T00:00:00"),
    ],
)
def test_timestamps_are_iso_8601_written_back_with_isoformat(written: str, serialized: str) -> None:
    ds = parse(csv_bytes(f"{ID},x,1,{written},m,debit,outgoing"))
    assert records(ds)[0]["timestamp"] == serialized
    assert ds.values[0][ds.ts_spans[0] : ds.ts_spans[1]] == serialized.encode()


@pytest.mark.parametrize(
    "stamp", ["1700000000", "2026-02-30T10:00:00", "2026-01-11T24:00:00", "0000-01-01T00:00:00"]
)
def test_timestamps_that_are_not_iso_8601_datetimes_are_rejected(stamp: str) -> None:
    ds = parse(csv_bytes(ROW, f"{ID},x,1,{stamp},m,debit,outgoing"))
    assert ds.invalid_samples == (
        InvalidRow(3, f"timestamp: not an ISO 8601 datetime ({stamp!r})"),
    )


def test_ids_are_written_as_canonical_lower_case_uuids() -> None:
    spellings = [ID.upper(), ID.replace("-", ""), f"{{{ID}}}", f"urn:uuid:{ID}", f"  {ID} "]
    ds = parse(csv_bytes(*(f"{spelled},x,1,{TS},m,debit,outgoing" for spelled in spellings)))
    assert [value[ID_SPAN[0] : ID_SPAN[1]] for value in ds.values] == [ID.encode()] * 5


@pytest.mark.parametrize(
    ("field", "bad"),
    [
        ("id", "not-a-uuid"),
        ("description", "   "),
        ("merchant", ""),
        ("operation_type", "Debit"),
        ("side", "sideways"),
    ],
)
def test_each_field_is_validated(field: str, bad: str) -> None:
    row = [
        bad if name == field else cell for name, cell in zip(FIELDS, ROW.split(","), strict=True)
    ]
    (invalid,) = parse(write_rows([ROW.split(","), row])).invalid_samples
    assert invalid.line == 3
    assert invalid.reason.startswith(f"{field}: ")


def test_all_faults_of_a_row_are_named_in_one_line() -> None:
    ds = parse(csv_bytes(ROW, f"{ID},,abc,{TS},m,credit,up"))
    (invalid,) = ds.invalid_samples
    assert invalid.reason.count("; ") == 2
    assert [part.split(":")[0] for part in invalid.reason.split("; ")] == [
        "description",
        "amount",
        "side",
    ]


# --- messy but valid input ---------------------------------------------------------------------


def test_bom_crlf_and_a_blank_trailing_line_load() -> None:
    data = b"\xef\xbb\xbf" + csv_bytes(ROW, ROW, newline="\r\n") + b"\r\n"
    ds = parse(data)
    assert (len(ds), ds.rows_read, ds.invalid_count) == (2, 2, 0)
    assert ds.values[0] == parse(csv_bytes(ROW)).values[0]


def test_quoted_commas_escaped_quotes_newlines_and_non_ascii_text_load() -> None:
    data = csv_bytes(
        f'{ID},"Booking Ryanair, ref ""AB12""",199.99,{TS},Ryanair,debit,outgoing',
        f'{ID},"two\r\nlines\nthree",1,{TS},"Café, 日本 🎉",credit,incoming',
        f"{ID},Contactless Żabka KRAKÓW,3.20,{TS},ファミリーマート,debit,outgoing",
    )
    assert [(r["description"], r["merchant"]) for r in records(parse(data))] == [
        ('Booking Ryanair, ref "AB12"', "Ryanair"),
        ("two\r\nlines\nthree", "Café, 日本 🎉"),
        ("Contactless Żabka KRAKÓW", "ファミリーマート"),
    ]
    assert all(b"\\u" not in value for value in parse(data).values)  # UTF-8, not \u escapes


def test_columns_may_come_in_any_order_with_extra_columns_and_spaces() -> None:
    header = " side ,note,operation_type,merchant,timestamp,amount,description,id"
    data = csv_bytes(
        f"outgoing,ignored,debit,TESCO,{TS},12.50,Card payment TESCO 2031,{ID}", header=header
    )
    assert parse(data).values == parse(csv_bytes(ROW)).values


def test_text_is_stripped_and_blank_lines_and_empty_rows_are_skipped() -> None:
    data = csv_bytes(
        "",
        f"{ID} ,  Card payment TESCO 2031\t, 12.50 , {TS} , TESCO , debit , outgoing ",
        ",,,,,,",
        "",
    )
    ds = parse(data)
    assert ds.values == parse(csv_bytes(ROW)).values
    assert (ds.rows_read, ds.invalid_count) == (1, 0)


@pytest.mark.parametrize(
    "space", [" ", "\t"] + [chr(c) for c in range(0x80, 0x110000) if chr(c).isspace()]
)
def test_every_kind_of_unicode_space_around_text_is_stripped(space: str) -> None:
    ds = parse(csv_bytes(f"{ID},{space}Card{space},1,{TS},{space}M{space},debit,outgoing"))
    assert [(r["description"], r["merchant"]) for r in records(ds)] == [("Card", "M")]


def test_control_characters_and_backslashes_are_json_escaped() -> None:
    ds = parse(csv_bytes(f'{ID},"a\tb\\\\c\x01",1,{TS},m\x7fn,debit,outgoing'))
    assert b'"description":"a\\tb\\\\\\\\c\\u0001"' in ds.values[0]
    assert records(ds)[0]["description"] == "a\tb\\\\c\x01"
    assert records(ds)[0]["merchant"] == "m\x7fn"


# --- invalid rows ------------------------------------------------------------------------------


def test_invalid_rows_are_counted_and_sampled_with_the_line_where_they_start() -> None:
    data = csv_bytes(
        ROW,  # line 2
        f'{ID},"a description\nover three\nlines",1,{TS},m,debit,outgoing',  # lines 3-5
        f"{ID},x,abc,{TS},m,debit,outgoing",  # line 6
        "",  # line 7
        f"{ID},x,1,{TS},m,debit",  # line 8: six columns
        f'{ID},"x" y,1,{TS},m,debit,outgoing',  # line 9: malformed quoting
        ROW,  # line 10
    )
    ds = parse(data)
    assert (len(ds), ds.rows_read, ds.invalid_count) == (3, 6, 3)
    assert [row.line for row in ds.invalid_samples] == [6, 8, 9]
    assert ds.invalid_samples[0].reason == "amount: input should be a valid decimal ('abc')"
    assert ds.invalid_samples[1].reason == "6 columns where the header has 7"
    assert ds.invalid_samples[2].reason.startswith("malformed CSV: ")


def test_only_the_first_ten_invalid_rows_are_kept_as_samples() -> None:
    bad = f"{ID},x,oops,{TS},m,debit,outgoing"
    ds = parse(csv_bytes(*([bad] * 15), ROW))
    assert ds.invalid_count == 15
    assert [row.line for row in ds.invalid_samples] == list(range(2, 12))


def test_invalid_reasons_clip_long_input() -> None:
    ds = parse(csv_bytes(ROW, f"{ID},x,{'9' * 30}x{'9' * 30},{TS},m,debit,outgoing"))
    (invalid,) = ds.invalid_samples
    assert len(invalid.reason) < 100
    assert "…" in invalid.reason


@pytest.mark.parametrize(
    ("bad_line", "reason"),
    [
        (f"{ID},x,abc,{TS},m,debit,outgoing", "amount: input should be a valid decimal ('abc')"),
        (f"{ID},x,1,{TS},m,debit", "6 columns where the header has 7"),
    ],
)
def test_with_on_invalid_fail_the_first_invalid_row_is_fatal(bad_line: str, reason: str) -> None:
    message = error(
        csv_bytes(ROW, ROW, bad_line, f"{ID},x,1,nope,m,debit,outgoing"), on_invalid="fail"
    )
    assert f"line 4: {reason}" in message
    assert "on_invalid" in message


def test_with_on_invalid_fail_a_clean_file_loads() -> None:
    assert len(parse(csv_bytes(ROW, ROW), on_invalid="fail")) == 2


def test_on_invalid_must_be_skip_or_fail() -> None:
    with pytest.raises(ValueError, match="on_invalid"):
        parse(csv_bytes(ROW), on_invalid="ignore")


# --- files that cannot be a dataset ------------------------------------------------------------


@pytest.mark.parametrize("data", [b"", b"\xef\xbb\xbf", b"\n\n\r\n"])
def test_an_empty_file_is_fatal(data: bytes) -> None:
    assert "the file is empty" in error(data)


def test_a_header_without_rows_is_fatal() -> None:
    assert "header but no data rows" in error(csv_bytes("", ""))


def test_a_missing_column_is_named() -> None:
    message = error(csv_bytes("1,2,3", header="id,description,amount,timestamp,merchant,side"))
    assert "missing column(s) operation_type" in message
    assert "'id,description,amount,timestamp,merchant,side'" in message


def test_a_repeated_column_is_named() -> None:
    assert "column(s) amount appear more than once" in error(csv_bytes(header=HEADER + ",amount"))


def test_bytes_that_are_not_utf8_are_located() -> None:
    data = csv_bytes(ROW) + f"{ID},caf".encode() + b"\xe9,1,{TS},m,debit,outgoing\n"
    offset = data.index(b"\xe9")
    assert f"line 3: byte b'\\xe9' at offset {offset} is not UTF-8" in error(data)


def test_bad_utf8_is_located_on_a_continuation_line_of_a_quoted_field() -> None:
    data = csv_bytes(ROW, f'{ID},"first line') + f'caf\xe9 2",1,{TS},m,debit,outgoing\n'.encode(
        "latin-1"
    )
    offset = data.index(b"\xe9")
    assert f"line 4: byte b'\\xe9' at offset {offset} is not UTF-8" in error(data)


def test_bad_utf8_in_the_header_is_located() -> None:
    assert "line 1: byte b'\\xff' at offset 3 is not UTF-8" in error(b"id,\xff\n")


@pytest.mark.parametrize(
    "field", ['"' + "x" * 200_000 + '"', "x" * 200_000, '"unclosed\n' + "x\n" * 100_000]
)
def test_an_absurdly_long_field_is_fatal_and_named(field: str) -> None:
    message = error(csv_bytes(ROW, f"{ID},{field},1,{TS},m,debit,outgoing"))
    assert "line 3: a field is longer than 131072 characters" in message


def test_a_file_of_invalid_rows_is_fatal_and_shows_the_first_errors() -> None:
    message = error(csv_bytes(*(f"{ID},x,bad{i},{TS},m,debit,outgoing" for i in range(5))))
    assert message.startswith("dataset tx.csv: no valid rows; first errors: line 2: amount: ")
    assert "line 4: amount" in message
    assert "line 5" not in message


def test_a_malformed_header_is_fatal() -> None:
    assert "malformed CSV header" in error(b'"id,x\n')


# --- offsets and splicing ----------------------------------------------------------------------

# Python's strip() and pydantic's agree but on \x1c-\x1f, which pydantic keeps: left out.
_CHARS = st.characters(codec="utf-8", exclude_characters="\x1c\x1d\x1e\x1f")
_TRICKY = st.sampled_from(
    [" ", ",", '"', "\n", "\r", "\\", "\t", "\x00", "\xa0", "\u3000", "é", "🎉"]
)
_PRINTABLE = st.characters(codec="utf-8", categories=["L", "N", "P", "S", "Zs"])


def _mostly(
    usual: st.SearchStrategy[str], unusual: st.SearchStrategy[str]
) -> st.SearchStrategy[str]:
    """`usual` six times in seven: most rows then suit the fast path, the rest test the other."""
    return st.integers(0, 6).flatmap(lambda pick: unusual if pick == 0 else usual)


_OFFSETS = st.builds(
    timezone, st.integers(-23 * 60 - 59, 23 * 60 + 59).map(lambda m: timedelta(minutes=m))
)
_TEXT = _mostly(st.text(_PRINTABLE, max_size=20), st.text(_CHARS | _TRICKY, max_size=20))
_ROWS = st.lists(
    st.tuples(
        _mostly(st.uuids().map(str), st.uuids().map(lambda u: f" {u} ".upper())),
        _TEXT,
        _mostly(
            st.sampled_from(["12.50", "0.10", "-0", "7", "-3.000001"]),
            st.decimals(allow_nan=False, allow_infinity=False).map(str)
            | st.sampled_from(["1e3", "007.5", "0.0000001", "x"]),
        ),
        _mostly(
            st.datetimes(timezones=st.none() | _OFFSETS).map(datetime.isoformat),
            st.datetimes(timezones=st.none() | _OFFSETS).map(lambda t: t.isoformat(sep=" "))
            | st.sampled_from(
                [
                    "2026-02-29T10:00:00",
                    "2026-01-11",
                    "1700000000",
                    "2026-01-11T10:00:00.000000",
                    "2026-01-11T10:00:00-00:00",
                    "2026-01-11T10:00:00Z",
                    "2026-01-11T10:00:00.5",
                ]
            ),
        ),
        _TEXT,
        _mostly(st.sampled_from(["debit", "credit"]), st.sampled_from([" credit", "other"])),
        _mostly(st.sampled_from(["outgoing", "incoming"]), st.sampled_from(["incoming ", ""])),
    ),
    min_size=1,
    max_size=8,
)


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=300)
@given(rows=_ROWS, order=st.permutations(range(7)))
def test_every_row_gives_the_same_value_whatever_the_column_order(
    rows: list[tuple[str, ...]], order: list[int]
) -> None:
    """Rows in `FIELDS` order may take the regex fast path; any other order takes csv + pydantic."""
    assume(order != list(range(7)))
    in_order, shuffled = _outcome(write_rows(rows)), _outcome(write_rows(rows, order))
    if isinstance(in_order, str) or isinstance(shuffled, str):
        assert shuffled == in_order
    else:
        assert shuffled.values == in_order.values
        assert shuffled.ts_spans == in_order.ts_spans
        assert shuffled.invalid_samples == in_order.invalid_samples


def _outcome(data: bytes) -> Dataset | str:
    try:
        return parse(data)
    except DatasetError as exc:
        return str(exc)


@settings(deadline=None, max_examples=300)
@given(text=_TEXT)
def test_any_description_round_trips_to_the_value_json(text: str) -> None:
    data = write_rows([(ID, text, "1", TS, "m", "debit", "outgoing")])
    if text.strip():
        assert [row["description"] for row in records(parse(data))] == [text.strip()]
    else:
        assert "line 2: description: " in error(data)


def test_splicing_a_fresh_id_and_timestamp_yields_valid_json() -> None:
    data = csv_bytes(
        ROW,
        f'{ID},"Booking Ryanair, ref ""AB12""",199.99,2026-01-11 10:00:00,Ryanair,debit,outgoing',
        f'{ID},"two\nlines é",1,2026-01-11T10:00:00.5+01:00,"Café 日本 🎉",credit,incoming',
        f"{ID.upper()},  spaced  ,1e3,2026-01-11,m,debit,outgoing",
    )
    ds = parse(data)
    assert len(ds) == 4
    spans = ds.ts_spans
    assert len(spans) == 2 * len(ds)
    for i, (value, original) in enumerate(zip(ds.values, records(ds), strict=True)):
        new_id = str(uuid.UUID(int=i, version=4)).encode()
        new_ts = b"2030-12-31T23:59:59.123456"
        start, end = spans[2 * i], spans[2 * i + 1]
        spliced = value[: ID_SPAN[0]] + new_id + value[ID_SPAN[1] : start] + new_ts + value[end:]
        assert json.loads(spliced, parse_float=Decimal) == original | {
            "id": new_id.decode(),
            "timestamp": new_ts.decode(),
        }


def test_spans_stay_aligned_when_rows_in_between_are_invalid() -> None:
    data = csv_bytes(
        ROW, f"{ID},x,bad,{TS},m,debit,outgoing", f"{ID}, y ,2,{TS}Z,m,debit,outgoing", ROW
    )
    ds = parse(data)
    assert [v[ds.ts_spans[2 * i] : ds.ts_spans[2 * i + 1]] for i, v in enumerate(ds.values)] == [
        TS.encode(),
        (TS + "+00:00").encode(),
        TS.encode(),
    ]


# --- key columns -------------------------------------------------------------------------------


def test_key_column_gives_the_raw_text_of_a_field_per_row() -> None:
    ds = parse(csv_bytes(ROW, f'{ID.upper()},"say ""hi"", 日本",0.10,{TS},"Café",credit,incoming'))
    assert ds.key_column("id") == (ID.encode(), ID.encode())
    assert ds.key_column("amount") == (b"12.50", b"0.10")
    assert ds.key_column("description") == (
        b"Card payment TESCO 2031",
        'say "hi", 日本'.encode(),
    )
    assert ds.key_column("merchant")[1] == "Café".encode()
    assert ds.key_column("timestamp") == (TS.encode(), TS.encode())
    assert ds.key_column("side") is ds.key_column("side")


def test_key_column_refuses_an_unknown_field() -> None:
    with pytest.raises(ValueError, match="unknown field 'amout'"):
        parse(csv_bytes(ROW)).key_column("amout")


def test_the_repr_of_a_dataset_leaves_out_the_values() -> None:
    ds = parse(csv_bytes(*([ROW] * 1000)))
    assert len(repr(ds)) < 300
    assert "rows_read=1000" in repr(ds)


# --- local files -------------------------------------------------------------------------------


def test_a_local_file_is_loaded_relative_to_base_dir(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "tx.csv").write_bytes(csv_bytes(ROW, ROW))
    ds = load_dataset("data/tx.csv", base_dir=tmp_path)
    assert ds.source == str(tmp_path / "data" / "tx.csv")
    assert ds.values == parse(csv_bytes(ROW, ROW)).values
    assert load_dataset(str(tmp_path / "data" / "tx.csv")).values == ds.values


def test_a_local_file_is_parsed_like_bytes(tmp_path: Path) -> None:
    data = csv_bytes(
        ROW, f'{ID},"a\nb",1,{TS},m,debit,outgoing', f"{ID},x,bad,{TS},m,debit,outgoing"
    )
    (tmp_path / "tx.csv").write_bytes(data)
    from_file = load_dataset(str(tmp_path / "tx.csv"))
    from_bytes = parse(data)
    assert (from_file.values, from_file.ts_spans) == (from_bytes.values, from_bytes.ts_spans)
    assert from_file.invalid_samples == from_bytes.invalid_samples


def test_bad_utf8_offsets_are_exact_in_a_streamed_file(tmp_path: Path) -> None:
    data = csv_bytes(*([ROW] * 15_000)) + b"bad \xc3\x28\n"  # past the 1 MiB read buffer
    (tmp_path / "tx.csv").write_bytes(data)
    with pytest.raises(DatasetError, match=rf"line 15002: byte b'\\xc3' at offset {len(data) - 3}"):
        load_dataset(str(tmp_path / "tx.csv"))


@pytest.mark.parametrize(
    ("make", "problem"),
    [(lambda path: None, "file not found"), (Path.mkdir, "is a directory, not a file")],
)
def test_local_read_errors_name_the_path(
    tmp_path: Path, make: Callable[[Path], object], problem: str
) -> None:
    path = tmp_path / "tx.csv"
    make(path)
    with pytest.raises(DatasetError) as caught:
        load_dataset(str(path))
    assert str(caught.value) == f"dataset {path}: {problem} — fix dataset.uri"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "tx.csv"
    path.write_bytes(csv_bytes(ROW))
    path.chmod(0)
    with pytest.raises(DatasetError, match="permission denied"):
        load_dataset(str(path))


# --- S3 ------------------------------------------------------------------------------------------

ENDPOINT = "http://127.0.0.1:9000"
LOCATION = S3Location(
    endpoint_url=ENDPOINT,
    access_key=SecretStr("AKIA-SHOULD-NOT-LEAK"),
    secret_key=SecretStr("secret-should-not-leak"),
    region="eu-west-1",
)


@pytest.fixture
def stubbed_s3(monkeypatch: pytest.MonkeyPatch) -> tuple[Stubber, dict[str, Any]]:
    """A real S3 client answering from a Stubber; returns it and the kwargs the loader used."""
    client = boto3.session.Session().client(
        "s3",
        region_name="eu-west-1",
        endpoint_url=ENDPOINT,
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    stubber = Stubber(client)
    used: dict[str, Any] = {}

    def make_client(service: str, **kwargs: Any) -> Any:
        used.update(kwargs, service=service)
        return client

    monkeypatch.setattr(dataset_s3.boto3, "client", make_client)
    stubber.activate()
    return stubber, used


def _body(data: bytes) -> StreamingBody:
    return StreamingBody(io.BytesIO(data), len(data))


def test_an_s3_object_is_streamed_and_parsed(stubbed_s3: tuple[Stubber, dict[str, Any]]) -> None:
    stubber, used = stubbed_s3
    data = csv_bytes(ROW, f'{ID},"a\nb",1,{TS},m,debit,outgoing')
    stubber.add_response(
        "get_object", {"Body": _body(data)}, {"Bucket": "transactions", "Key": "in/tx.csv"}
    )
    ds = load_dataset("s3://transactions/in/tx.csv", s3=LOCATION)
    assert ds.source == "s3://transactions/in/tx.csv"
    assert ds.values == parse(data).values
    assert used["service"] == "s3"
    assert used["endpoint_url"] == ENDPOINT
    assert used["region_name"] == "eu-west-1"
    assert used["aws_access_key_id"] == "AKIA-SHOULD-NOT-LEAK"
    assert used["aws_secret_access_key"] == "secret-should-not-leak"
    config = used["config"]
    assert (config.connect_timeout, config.read_timeout) == (5, 10)
    assert config.retries == {"max_attempts": 3, "mode": "standard"}


def test_without_keys_boto3_falls_back_to_its_default_chain(
    stubbed_s3: tuple[Stubber, dict[str, Any]],
) -> None:
    stubber, used = stubbed_s3
    stubber.add_response("get_object", {"Body": _body(csv_bytes(ROW))})
    load_dataset("s3://transactions/tx.csv")
    assert used["aws_access_key_id"] is None
    assert used["aws_secret_access_key"] is None
    assert used["endpoint_url"] is None


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        (
            "NoSuchBucket",
            404,
            f"bucket 'transactions' does not exist at {ENDPOINT} — create it or fix dataset.uri",
        ),
        ("NoSuchKey", 404, f"no object 'tx.csv' in bucket 'transactions' at {ENDPOINT}"),
        ("404", 404, f"{ENDPOINT} answered 404 with no S3 error — is it an S3 endpoint?"),
        ("AccessDenied", 403, f"access denied by {ENDPOINT} (AccessDenied)"),
        ("InvalidAccessKeyId", 403, "access denied by"),
        ("SignatureDoesNotMatch", 403, "access denied by"),
        ("SlowDown", 503, f"S3 error SlowDown at {ENDPOINT}: try later"),
    ],
)
def test_s3_errors_name_the_culprit_and_never_the_keys(
    stubbed_s3: tuple[Stubber, dict[str, Any]], code: str, status: int, expected: str
) -> None:
    stubber, _ = stubbed_s3
    stubber.add_client_error(
        "get_object", service_error_code=code, service_message="try later", http_status_code=status
    )
    with pytest.raises(DatasetError) as caught:
        load_dataset("s3://transactions/tx.csv", s3=LOCATION)
    message = str(caught.value)
    assert message.startswith("dataset s3://transactions/tx.csv: ")
    assert expected in message
    assert "SHOULD-NOT-LEAK" not in message
    assert "should-not-leak" not in message


class _FailingClient:
    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    def get_object(self, **_: str) -> Any:
        raise self.exc


class _FailingStream(io.RawIOBase):
    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        raise botocore.exceptions.ReadTimeoutError(endpoint_url=ENDPOINT)


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (
            botocore.exceptions.EndpointConnectionError(endpoint_url=ENDPOINT),
            f"cannot reach S3 at {ENDPOINT} (Could not connect",
        ),
        (botocore.exceptions.NoCredentialsError(), "no S3 credentials found"),
        (botocore.exceptions.ParamValidationError(report="bad"), "reading from S3 at"),
    ],
)
def test_s3_transport_errors_are_reported(
    monkeypatch: pytest.MonkeyPatch, exc: Exception, expected: str
) -> None:
    monkeypatch.setattr(dataset_s3.boto3, "client", lambda *a, **k: _FailingClient(exc))
    with pytest.raises(DatasetError, match=re.escape(expected)):
        load_dataset("s3://transactions/tx.csv", s3=LOCATION)


def test_a_transfer_broken_mid_object_is_reported(
    stubbed_s3: tuple[Stubber, dict[str, Any]],
) -> None:
    stubber, _ = stubbed_s3
    stubber.add_response("get_object", {"Body": StreamingBody(_FailingStream(), 100)})
    with pytest.raises(DatasetError, match=f"reading from S3 at {ENDPOINT} failed"):
        load_dataset("s3://transactions/tx.csv", s3=LOCATION)


@pytest.mark.parametrize("uri", ["s3://transactions", "s3://transactions/", "s3:///tx.csv"])
def test_an_s3_uri_needs_a_bucket_and_a_key(uri: str) -> None:
    with pytest.raises(DatasetError, match="must name a bucket and a key"):
        load_dataset(uri)


def test_a_bad_endpoint_url_is_reported() -> None:
    with pytest.raises(DatasetError, match="bad S3 endpoint 'not a url'"):
        load_dataset("s3://b/k", s3=S3Location(endpoint_url="not a url"))


def test_the_s3_location_repr_hides_the_keys() -> None:
    assert "SHOULD-NOT-LEAK" not in repr(LOCATION)
    assert "should-not-leak" not in repr(LOCATION)
