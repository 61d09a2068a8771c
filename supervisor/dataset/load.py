"""Loading the dataset from where `dataset.location` says: an S3 object or a local file."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Literal, cast

import botocore.exceptions

from supervisor.dataset.location import DatasetLocation, LocalFile, S3Object, parse_location
from supervisor.dataset.model import Dataset
from supervisor.dataset.parse import parse_stream
from supervisor.dataset.s3 import S3Location, bad_endpoint, describe_failure, s3_client
from supervisor.errors import DatasetError

_READ_BUFFER = 1 << 20


def load_dataset(
    location: DatasetLocation | str,
    *,
    s3: S3Location | None = None,
    on_invalid: Literal["skip", "fail"] = "skip",
    base_dir: Path | None = None,
) -> Dataset:
    """Read and parse the dataset at `location` (a URI is parsed first, a relative path taken
    from `base_dir`). The file is streamed, never held whole in memory. Blocking: run it in a
    thread from async code. Every failure is a one-line `DatasetError`."""
    if isinstance(location, str):
        try:
            location = parse_location(location, base_dir=base_dir)
        except ValueError as exc:
            raise DatasetError(f"dataset {location}: {exc} — fix dataset.uri") from None
    if isinstance(location, S3Object):
        return _load_s3(location, s3 or S3Location(), on_invalid)
    return _load_file(location, on_invalid)


def _load_file(location: LocalFile, on_invalid: Literal["skip", "fail"]) -> Dataset:
    path = location.path
    try:
        with path.open("rb", buffering=_READ_BUFFER) as stream:
            return parse_stream(stream, str(path), on_invalid)
    except FileNotFoundError:
        problem = "file not found"
    except IsADirectoryError:
        problem = "is a directory, not a file"
    except PermissionError:
        problem = "permission denied"
    except OSError as exc:
        problem = f"cannot be read ({exc.strerror or exc})"
    raise DatasetError(f"dataset {path}: {problem} — fix dataset.uri")


def _load_s3(obj: S3Object, s3: S3Location, on_invalid: Literal["skip", "fail"]) -> Dataset:
    try:
        client = s3_client(s3, connect_timeout_s=5, read_timeout_s=10, attempts=3)
    except ValueError as exc:
        raise DatasetError(f"dataset {obj}: {bad_endpoint(s3, exc)}") from None
    try:
        body = client.get_object(Bucket=obj.bucket, Key=obj.key)["Body"]
        # StreamingBody implements the raw stream protocol (readinto, tell); closing closes it.
        with io.BufferedReader(cast(io.RawIOBase, body), buffer_size=_READ_BUFFER) as stream:
            return parse_stream(stream, str(obj), on_invalid)
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
        raise DatasetError(f"dataset {obj}: {describe_failure(exc, obj, s3)}") from None
