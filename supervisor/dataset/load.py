"""Loading the dataset from where `dataset.location` says: an S3 object or a local file, read
as CSV, JSON Lines or Parquet (`columns.Reading.format_for`), CSV and JSON Lines gzipped or not.
"""

from __future__ import annotations

import gzip
import io
import zlib
from pathlib import Path
from typing import BinaryIO, Final, Literal, cast

import botocore.exceptions

from supervisor.dataset.columns import Format, Reading, format_of
from supervisor.dataset.location import DatasetLocation, LocalFile, S3Object, parse_location
from supervisor.dataset.model import Dataset
from supervisor.dataset.parse import parse_stream
from supervisor.dataset.s3 import S3Location, bad_endpoint, describe_failure, s3_client
from supervisor.errors import DatasetError

_READ_BUFFER = 1 << 20
_GZIP_MAGIC: Final = b"\x1f\x8b"
_PARQUET_MAGIC: Final = b"PAR1"
_SEVEN_COLUMNS: Final = Reading()


def load_dataset(
    location: DatasetLocation | str,
    *,
    s3: S3Location | None = None,
    on_invalid: Literal["skip", "fail"] = "skip",
    base_dir: Path | None = None,
    reading: Reading = _SEVEN_COLUMNS,
) -> Dataset:
    """Read and parse the dataset at `location` (a URI is parsed first, a relative path taken
    from `base_dir`) as `reading` says. A CSV or JSON Lines file is streamed, never held whole in
    memory (Parquet from S3 is: its index is at its end). Blocking: run it in a thread from async
    code. Every failure is a one-line `DatasetError`."""
    if isinstance(location, str):
        try:
            location = parse_location(location, base_dir=base_dir)
        except ValueError as exc:
            raise DatasetError(f"dataset {location}: {exc} — fix dataset.uri") from None
    if isinstance(location, S3Object):
        return _load_s3(location, s3 or S3Location(), on_invalid, reading)
    return _load_file(location, on_invalid, reading)


def parse_any(
    stream: BinaryIO, source: str, on_invalid: Literal["skip", "fail"], reading: Reading
) -> Dataset:
    """Parse `stream` in the format `reading` gives `source`; a gzipped CSV or JSON Lines stream
    (by its first bytes) is read through gzip, and a file whose name says no format but whose
    first bytes say Parquet is read as Parquet."""
    fmt = reading.format_for(source)
    peek = getattr(stream, "peek", None)
    first = peek(4)[:4] if peek is not None else b""
    if fmt == "parquet" or (
        first == _PARQUET_MAGIC and reading.format is None and format_of(source) is None
    ):
        from supervisor.dataset.parquet import parse_parquet  # pyarrow: imported when needed

        return parse_parquet(stream, source, on_invalid, reading)
    if first[:2] == _GZIP_MAGIC:
        try:
            with gzip.GzipFile(fileobj=stream, mode="rb") as unzipped:
                return _parse_text(cast(BinaryIO, unzipped), source, on_invalid, fmt, reading)
        except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
            raise DatasetError(
                f"dataset {source}: broken gzip data ({exc}) — compress the file again"
            ) from None
    return _parse_text(stream, source, on_invalid, fmt, reading)


def _parse_text(
    stream: BinaryIO,
    source: str,
    on_invalid: Literal["skip", "fail"],
    fmt: Format,
    reading: Reading,
) -> Dataset:
    if fmt == "jsonl":
        from supervisor.dataset.jsonl import parse_jsonl

        return parse_jsonl(stream, source, on_invalid, reading)
    return parse_stream(stream, source, on_invalid, reading)


def _load_file(
    location: LocalFile, on_invalid: Literal["skip", "fail"], reading: Reading
) -> Dataset:
    path = location.path
    try:
        with path.open("rb", buffering=_READ_BUFFER) as stream:
            return parse_any(stream, str(path), on_invalid, reading)
    except FileNotFoundError:
        problem = "file not found"
    except IsADirectoryError:
        problem = "is a directory, not a file"
    except PermissionError:
        problem = "permission denied"
    except OSError as exc:
        problem = f"cannot be read ({exc.strerror or exc})"
    raise DatasetError(f"dataset {path}: {problem} — fix dataset.uri")


def _load_s3(
    obj: S3Object, s3: S3Location, on_invalid: Literal["skip", "fail"], reading: Reading
) -> Dataset:
    try:
        client = s3_client(s3, connect_timeout_s=5, read_timeout_s=10, attempts=3)
    except ValueError as exc:
        raise DatasetError(f"dataset {obj}: {bad_endpoint(s3, exc)}") from None
    try:
        body = client.get_object(Bucket=obj.bucket, Key=obj.key)["Body"]
        # StreamingBody implements the raw stream protocol (readinto, tell); closing closes it.
        with io.BufferedReader(cast(io.RawIOBase, body), buffer_size=_READ_BUFFER) as stream:
            return parse_any(stream, str(obj), on_invalid, reading)
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
        raise DatasetError(f"dataset {obj}: {describe_failure(exc, obj, s3)}") from None
