"""Where a dataset is: an S3 object or a local file, parsed once from the URI a user wrote.

`parse_location` is the only place a dataset URI is read. The config validates `dataset.uri` with
it and keeps the typed value (`DatasetSettings.location`); `run`, `check` and a reload all load
from that value, so `S3://bucket/key` (schemes are case-insensitive, RFC 3986) is an S3 object
everywhere, never a file name.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TypeAlias

_SCHEME_RE: Final = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")


@dataclass(frozen=True, slots=True)
class S3Object:
    """An object in S3 or MinIO."""

    bucket: str
    key: str

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


@dataclass(frozen=True, slots=True)
class LocalFile:
    """A file on this machine (absolute once resolved against the config file's folder)."""

    path: Path

    def __str__(self) -> str:
        return str(self.path)


DatasetLocation: TypeAlias = S3Object | LocalFile


def has_scheme(uri: str) -> bool:
    """Whether `uri` starts with a `scheme://` (and so is not a local path)."""
    return _SCHEME_RE.match(uri) is not None


def parse_location(uri: str, *, base_dir: Path | None = None) -> DatasetLocation:
    """The location `uri` names: `s3://bucket/key` (any case of the scheme) or a local path,
    `~` expanded and, when relative, taken from `base_dir` (default: the working directory).

    Raises ValueError with a one-line reason a user can act on.
    """
    if not uri.strip():
        raise ValueError("must not be empty: give s3://bucket/key or a local path")
    if "\x00" in uri:
        raise ValueError("must not contain a NUL character")
    scheme = _SCHEME_RE.match(uri)
    if scheme is None:
        base = (base_dir or Path.cwd()).absolute()
        return LocalFile(Path(os.path.normpath(base / os.path.expanduser(uri))))
    if scheme[1].lower() != "s3":
        raise ValueError(f"unsupported scheme {scheme[1]!r}: use s3://bucket/key or a path")
    bucket, _, key = uri[scheme.end() :].partition("/")
    if not bucket or not key:
        raise ValueError(f"{uri!r} must name a bucket and a key: s3://bucket/path/to.csv")
    return S3Object(bucket, key)
