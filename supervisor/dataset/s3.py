"""Reaching S3 or MinIO: the client, and one vocabulary of what went wrong.

`run` (reading the object) and `check` (asking for its head) meet the same failures: both turn a
botocore exception into one line through `describe_failure`, so a user reads the same words for
the same fault wherever they meet it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import boto3
import botocore.exceptions
from botocore.config import Config
from pydantic import SecretStr

from supervisor.dataset.location import S3Object
from supervisor.redaction import REDACTED, url_password, url_without_password

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_ACCESS_DENIED = frozenset({"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403"})
_MISSING = frozenset({"404", "NoSuchKey", "NotFound"})
_FIX_ENDPOINT = "(dataset.s3.endpoint_url, env ENDPOINT_URL)"


@dataclass(frozen=True, slots=True)
class S3Location:
    """How to reach S3 or MinIO; keys left None fall back to boto3's default credential chain."""

    endpoint_url: str | None = None
    access_key: SecretStr | None = None
    secret_key: SecretStr | None = None
    region: str | None = None

    @property
    def where(self) -> str:
        """The endpoint as messages name it, a password written into its URL masked."""
        return url_without_password(self.endpoint_url) if self.endpoint_url else "AWS S3"

    def scrub(self, text: str) -> str:
        """`text` (a message quoting the endpoint, such as botocore's) with the password of the
        endpoint URL masked."""
        password = url_password(self.endpoint_url) if self.endpoint_url else None
        return text.replace(password, REDACTED) if password else text


def s3_client(
    s3: S3Location, *, connect_timeout_s: float, read_timeout_s: float, attempts: int
) -> S3Client:
    """A boto3 S3 client for `s3` with bounded timeouts and retries (raises ValueError for a
    malformed endpoint: see `bad_endpoint`)."""
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


def bad_endpoint(s3: S3Location, exc: ValueError) -> str:
    """The line for an endpoint boto3 refused to build a client for."""
    return s3.scrub(f"bad S3 endpoint {s3.where!r} ({exc}) — fix it {_FIX_ENDPOINT}")


def describe_failure(
    exc: botocore.exceptions.BotoCoreError | botocore.exceptions.ClientError,
    obj: S3Object,
    s3: S3Location,
    *,
    client: S3Client | None = None,
) -> str:
    """One line naming what failed reaching `obj` and the fix (see `_describe`), with the
    endpoint's password masked wherever botocore quoted the URL."""
    return s3.scrub(_describe(exc, obj, s3, client=client))


def _describe(
    exc: botocore.exceptions.BotoCoreError | botocore.exceptions.ClientError,
    obj: S3Object,
    s3: S3Location,
    *,
    client: S3Client | None = None,
) -> str:
    """One line naming what failed reaching `obj` and the fix.

    Pass the `client` after a HEAD request: HEAD answers a bare 404 for a missing bucket and a
    missing key alike, and the client is then asked which it is. After a GET, a bare 404 means
    the endpoint is not S3 at all (S3 names what is missing).
    """
    where = s3.where
    if isinstance(exc, botocore.exceptions.ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        if code == "NoSuchBucket" or (
            code in _MISSING and client is not None and not _bucket_exists(client, obj.bucket)
        ):
            return f"bucket {obj.bucket!r} does not exist at {where} — create it or fix dataset.uri"
        if code == "NoSuchKey" or (code in _MISSING and client is not None):
            return (
                f"no object {obj.key!r} in bucket {obj.bucket!r} at {where} — upload it or fix"
                " dataset.uri"
            )
        if code == "404":
            return f"{where} answered 404 with no S3 error — is it an S3 endpoint? Check it"
        if code in _ACCESS_DENIED:
            return (
                f"access denied by {where} ({code}) — check the S3 access key, secret and bucket"
                " policy"
            )
        message = error.get("Message") or exc
        return f"S3 error {code or 'unknown'} at {where}: {message} — check the S3 settings"
    if isinstance(exc, botocore.exceptions.NoCredentialsError):
        return (
            "no S3 credentials found — set dataset.s3.access_key and secret_key (env KEY and"
            " SECRET)"
        )
    if isinstance(exc, botocore.exceptions.ConnectionError):
        return f"cannot reach S3 at {where} ({exc}) — start it or fix the endpoint {_FIX_ENDPOINT}"
    return f"reading from S3 at {where} failed ({exc})"  # timeouts and broken transfers included


def _bucket_exists(client: S3Client, bucket: str) -> bool:
    try:
        client.head_bucket(Bucket=bucket)
    except botocore.exceptions.ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        return code not in ("404", "NoSuchBucket", "NotFound")
    except botocore.exceptions.BotoCoreError:
        return True  # unknown: report the key as missing
    return True
