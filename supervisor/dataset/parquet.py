"""Reading a transactions Parquet file: each batch of rows turned into text columns by Arrow, then
checked and encoded by `columnar` (and `rows` for the rest), as a CSV's rows are.

A column of any scalar type is read as the text the CSV would hold: numbers and decimals as
Arrow writes them (decimals exactly, floats as their shortest text), booleans `true`/`false`,
timestamps in ISO 8601 as `datetime.isoformat()` writes them (a zone-aware one in UTC, `+00:00`).
A rejected row is reported by its row number, from 1.
"""

from __future__ import annotations

import shutil
import tempfile
from typing import BinaryIO, Final, Literal, cast

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from supervisor.dataset.codec import FIELDS
from supervisor.dataset.columnar import add_columns
from supervisor.dataset.columns import Reading
from supervisor.dataset.model import Dataset
from supervisor.dataset.rows import Rows
from supervisor.errors import DatasetError

_SPOOL_CHUNK: Final = 1 << 20
_BATCH_ROWS: Final = 65_536
"""Rows converted at once: bounds the Arrow memory alive beside the values."""


def parse_parquet(
    stream: BinaryIO, source: str, on_invalid: Literal["skip", "fail"], reading: Reading
) -> Dataset:
    """Validate and serialize a Parquet file of transactions (see `parse.parse_csv`)."""
    if stream.seekable():
        return _parse(stream, source, on_invalid, reading)
    # Its index is at its end: an S3 object is spooled to a temporary file first (not to memory:
    # a million rows are 56 MB of Parquet, held at the peak of the load).
    with tempfile.TemporaryFile() as spooled:
        shutil.copyfileobj(stream, spooled, _SPOOL_CHUNK)
        spooled.seek(0)
        return _parse(cast(BinaryIO, spooled), source, on_invalid, reading)


def _parse(
    stream: BinaryIO, source: str, on_invalid: Literal["skip", "fail"], reading: Reading
) -> Dataset:
    try:
        file = pq.ParquetFile(stream)
    except (pa.ArrowException, OSError) as exc:
        raise DatasetError(
            f"dataset {source}: not a Parquet file ({exc}) — check the file, or set dataset.format"
        ) from None
    names = file.schema_arrow.names
    missing = [name for name in FIELDS if name not in names]
    if missing:
        raise DatasetError(
            f"dataset {source}: missing column(s) {', '.join(missing)} among "
            f"{', '.join(names)} — the file must have {','.join(FIELDS)}"
        )
    columns = reading.columns_of(names, source)
    rows = Rows(
        source, fail=on_invalid == "fail", columns=columns, entity=reading.entity, unit="row"
    )
    number = 1
    try:
        # One thread: as fast here (the encoding waits on the decoding anyway), and a thread's
        # allocator cache is memory kept after the load (30 MB per 200k rows).
        batches = file.iter_batches(
            batch_size=_BATCH_ROWS, columns=list(rows.names), use_threads=False
        )
        for batch in batches:
            texts = {name: _text(batch.column(name), name, source) for name in rows.names}
            add_columns(rows, texts, range(number, number + batch.num_rows))
            number += batch.num_rows
    except (pa.ArrowException, OSError) as exc:
        raise DatasetError(f"dataset {source}: cannot read row {number} on ({exc})") from None
    pa.default_memory_pool().release_unused()  # what the batches took goes back to the system
    return rows.finish(empty="the file has no rows")


def _text(column: pa.Array, name: str, source: str) -> pa.Array:
    """`column` as the text a CSV would hold."""
    kind = column.type
    if pa.types.is_dictionary(kind):
        column = column.dictionary_decode()
        kind = column.type
    if pa.types.is_string(kind):
        return column
    if pa.types.is_timestamp(kind):
        return _iso(column)
    if pa.types.is_nested(kind):
        raise DatasetError(
            f"dataset {source}: column {name} holds {kind} values, not text or numbers — flatten it"
        )
    try:
        return column.cast(pa.string())
    except pa.ArrowException as exc:
        raise DatasetError(
            f"dataset {source}: column {name} of type {kind} cannot be read as text ({exc}) — "
            "store it as a string"
        ) from None


def _iso(column: pa.Array) -> pa.Array:
    """Timestamps as `datetime.isoformat()` writes them (with a space for the `T`, which the
    encoding puts back): no fraction when it is zero, else microseconds (nanoseconds
    truncated); a zone-aware one in UTC with `+00:00`. Arrow's casts, not `strftime`, which is
    thirty times slower."""
    unit, zone = column.type.unit, column.type.tz
    if zone is not None:
        column = column.cast(pa.timestamp(unit))  # the same instants, as UTC wall time
    text = column.cast(pa.timestamp("s"), safe=False).cast(pa.string())
    if unit != "s":
        micro = column.cast(pa.timestamp("us"), safe=False)
        fraction = pc.not_equal(
            pc.add(pc.multiply(pc.millisecond(micro), 1000), pc.microsecond(micro)), 0
        )
        text = pc.if_else(fraction, micro.cast(pa.string()), text)
    if zone is not None:
        text = pc.binary_join_element_wise(text, "+00:00", "")
    return text
