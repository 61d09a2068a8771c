"""Secrets never appear in logs, errors, reprs, summaries or metrics: the one place that says what
a secret is and how it is shown."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, TypeVar
from urllib.parse import urlsplit, urlunsplit

REDACTED: Final = "**********"
"""What a secret value is shown as (the same mask pydantic uses for `SecretStr`)."""

_SECRET_KEY_PARTS: Final = ("password", "secret", "passphrase", "private.key")
_SECRET_KEYS: Final = frozenset(
    {
        "sasl.jaas.config",
        "sasl.oauthbearer.config",
        "ssl.key.pem",
        "basic.auth.user.info",
        "bearer.auth.token",
    }
)
_V = TypeVar("_V")


def is_secret_key(key: str) -> bool:
    """Whether a librdkafka (or Schema Registry client) property holds a secret (a password, key
    or credentials)."""
    lowered = key.lower()
    return lowered in _SECRET_KEYS or any(part in lowered for part in _SECRET_KEY_PARTS)


def redact(config: Mapping[str, _V]) -> dict[str, _V | str]:
    """`config` with the values of secret properties masked."""
    return {key: REDACTED if is_secret_key(key) else value for key, value in config.items()}


def url_without_password(url: str) -> str:
    """`url` with a password written into it (`http://user:pass@host`) masked."""
    try:
        parts = urlsplit(url)
        password, port = parts.password, parts.port
    except ValueError:  # not a URL a password could be read from: shown as given
        return url
    if password is None:
        return url
    netloc = f"{parts.username}:{REDACTED}@{parts.hostname}"
    if port is not None:
        netloc += f":{port}"
    return urlunsplit(parts._replace(netloc=netloc))


def url_password(url: str) -> str | None:
    """The password written into `url`, if any (to mask it wherever the URL is quoted)."""
    try:
        return urlsplit(url).password or None
    except ValueError:
        return None
