"""The Schema Registry client and serializer settings of a run, and its refusals as one line."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from confluent_kafka.schema_registry import SchemaRegistryClient

# The HTTP library the registry client uses (httpx2, else httpx): its errors are the registry's.
from confluent_kafka.schema_registry.common._httpx_compat import httpx
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import SerializationError

from supervisor.config.registry import SchemaRegistrySettings
from supervisor.errors import ConfigError, RegistryError
from supervisor.redaction import REDACTED, is_secret_key, url_password

_STRATEGIES: Final = {"topic": "TOPIC", "record": "RECORD", "topic_record": "TOPIC_RECORD"}

FAILURES: Final = (SchemaRegistryError, SerializationError, httpx.HTTPError, OSError, ValueError)
"""What registering, looking up or the first serialization can raise for a registry's reason."""


def client_for(settings: SchemaRegistrySettings, *, url: str | None = None) -> SchemaRegistryClient:
    """The client of `settings` (at `url` instead, when given: the dry run's mock). Raises
    ConfigError for a property the client refuses."""
    config = settings.client_config()
    if url is not None:
        config = {"url": url}
    try:
        return SchemaRegistryClient.new_client(config)
    except (ValueError, TypeError, OSError) as exc:
        raise ConfigError(f"schema_registry: {_masked(str(exc), settings)}") from None


def serializer_conf(settings: SchemaRegistrySettings, format: str) -> dict[str, Any]:
    """The serializer properties of `settings`, as confluent-kafka names them."""
    conf: dict[str, Any] = {
        "auto.register.schemas": settings.auto_register,
        "use.latest.version": settings.use_latest_version,
        "use.latest.with.metadata": settings.use_latest_with_metadata,
        "use.schema.id": settings.use_schema_id,
        "normalize.schemas": settings.normalize_schemas,
        "subject.name.strategy.type": _STRATEGIES[settings.subject_name_strategy],
    }
    if format == "protobuf":
        conf["use.deprecated.format"] = False
    return conf


def refused(
    exc: BaseException,
    shown_url: str,
    topic: str,
    format: str,
    what: str,
    secrets: Sequence[str] = (),
) -> RegistryError:
    """The one line saying why the registry at `shown_url` did not give a schema id, with
    `secrets` masked wherever the reason echoes them."""
    where = f"schema registry {shown_url}: topic {topic!r} ({format} {what} schema)"
    if isinstance(exc, SchemaRegistryError):
        status = exc.http_status_code
        if status == 404:
            hint = (
                "the subject has no such schema: register schemas/ (auto_register: true), or"
                " check subject_name_strategy"
            )
        elif status in (401, 403):
            hint = "not authorized: check schema_registry.basic_auth_user_info"
        elif status == 409:
            hint = "the schema is incompatible with the subject's versions (compatibility rules)"
        else:
            hint = "check the registry"
        message = f"{where}: refused: {exc.error_message} — {hint}"
        return RegistryError(_mask(message, secrets), status=status)
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    hint = "check schema_registry.url and that the registry is up"
    if isinstance(exc, SerializationError):  # the registry answered; the rows do not fit
        hint = (
            "the schema it gave does not fit the dataset's rows: register the schema of"
            " schemas/ with the dataset's kept columns (auto_register: true), or make the"
            " subject's version match it"
        )
    message = f"{where}: {reason} — {hint}"
    return RegistryError(_mask(message, secrets))


def secrets_of(settings: SchemaRegistrySettings) -> list[str]:
    """The secret values of `settings`, longest first (to mask a secret containing another)."""
    found = [url_password(settings.url) or ""]
    if settings.basic_auth_user_info is not None:
        user_info = settings.basic_auth_user_info.get_secret_value()
        found += [user_info, user_info.partition(":")[2]]
    found += [str(v) for k, v in settings.config.items() if is_secret_key(k)]
    return sorted({s for s in found if len(s) >= 4}, key=len, reverse=True)


def _masked(text: str, settings: SchemaRegistrySettings) -> str:
    return _mask(text, secrets_of(settings))


def _mask(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return text
