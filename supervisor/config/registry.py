"""The message format of a profile and the Schema Registry the non-JSON formats register with.

`format: json` (the default) sends the dataset's compact JSON as it always did; `avro`,
`protobuf` and `json-schema` send Confluent wire-format messages through confluent-kafka's own
Schema Registry serializers (`supervisor.formats`), which need `schema_registry`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any, Final, Literal, TypeAlias

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_serializer,
    field_validator,
    model_validator,
)

from supervisor.config.types import KafkaValue, show
from supervisor.redaction import REDACTED, is_secret_key, redact, url_without_password

MessageFormat: TypeAlias = Literal["json", "avro", "protobuf", "json-schema"]
"""How a profile's message values are written: plain JSON, or Confluent wire format."""

SubjectNameStrategy: TypeAlias = Literal["topic", "record", "topic_record"]
"""confluent-kafka's subject naming strategies: `{topic}-value`, `{record name}`,
`{topic}-{record name}`."""

CLIENT_PROPERTIES: Final = frozenset(
    {
        "ssl.ca.location",
        "ssl.certificate.location",
        "ssl.key.location",
        "ssl.key.password",
        "timeout",
        "max.retries",
        "retries.wait.ms",
        "retries.max.wait.ms",
        "cache.capacity",
        "bearer.auth.credentials.source",
        "bearer.auth.token",
        "bearer.auth.logical.cluster",
        "bearer.auth.identity.pool.id",
        "bearer.auth.client.id",
        "bearer.auth.client.secret",
        "bearer.auth.scope",
        "bearer.auth.issuer.endpoint.url",
    }
)
"""The `SchemaRegistryClient` properties `schema_registry.config` passes through (`url` and
`basic.auth.user.info` have their own keys)."""


class SchemaRegistrySettings(BaseModel):
    """Where the schemas of `avro`, `protobuf` and `json-schema` profiles are registered."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str
    """`http(s)://host:port` (comma-separated for several), or `mock://NAME` for
    confluent-kafka's in-process mock registry (tests, trials)."""
    basic_auth_user_info: SecretStr | None = None
    """`user:password` for HTTP basic authentication."""
    subject_name_strategy: SubjectNameStrategy = "topic"
    auto_register: bool = True
    """Register the schema of schemas/ at start (False: look it up, and refuse to start when the
    registry does not have it under the subject)."""
    use_latest_version: bool = False
    """Write with the subject's latest version instead (needs `auto_register: false`); its
    layout must match schemas/ (checked at start)."""
    use_latest_with_metadata: dict[str, str] | None = None
    """Write with the subject's latest version carrying this metadata (as `use_latest_version`)."""
    use_schema_id: Annotated[int, Field(ge=1)] | None = None
    """Write events with this registered schema id (as `use_latest_version`); labels are looked
    up."""
    normalize_schemas: bool = False
    config: dict[str, KafkaValue] = {}
    """Other `SchemaRegistryClient` properties: TLS files, timeouts, retries, bearer auth."""

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str) -> str:
        for part in url.split(","):
            if not part.strip().startswith(("http://", "https://", "mock://")):
                raise ValueError(
                    f"{url_without_password(part.strip())!r} is not a registry URL:"
                    " use http://host:port, https://host:port or mock://NAME"
                )
        return url

    @field_validator("config", mode="before")
    @classmethod
    def _check_config(cls, config: object) -> object:
        if not isinstance(config, dict):
            return config
        for key, value in config.items():
            if key in {"url", "basic.auth.user.info"}:
                raise ValueError(
                    f"{key!r} cannot be set here: use schema_registry.{key.replace('.', '_')}"
                )
            if key not in CLIENT_PROPERTIES:
                raise ValueError(
                    f"unknown Schema Registry client property {show(key)}"
                    f" (supported: {', '.join(sorted(CLIENT_PROPERTIES))})"
                )
            if not isinstance(value, str | int | float):
                got = "" if is_secret_key(key) else f" (got {show(value)})"
                raise ValueError(f"property {key!r} must be a string, number or boolean{got}")
        return config

    @model_validator(mode="after")
    def _check_choice(self) -> SchemaRegistrySettings:
        chosen = [
            name
            for name, on in (
                ("use_latest_version", self.use_latest_version),
                ("use_latest_with_metadata", self.use_latest_with_metadata is not None),
                ("use_schema_id", self.use_schema_id is not None),
            )
            if on
        ]
        if chosen and self.auto_register:
            raise ValueError(f"{chosen[0]} needs auto_register: false (they exclude)")
        if len(chosen) > 1:
            raise ValueError(f"choose one of {' and '.join(chosen)}: each picks the schema")
        return self

    @field_serializer("config")
    def _serialize_config(self, config: dict[str, KafkaValue]) -> dict[str, KafkaValue]:
        return redact(config)

    @field_serializer("url")
    def _serialize_url(self, url: str) -> str:
        return url_without_password(url)

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        for name, value in super().__repr_args__():
            if name == "config":
                yield name, redact(value)
            elif name == "url":
                yield name, url_without_password(value)
            else:
                yield name, value

    @property
    def shown_url(self) -> str:
        """`url` with any password in it masked, for logs and errors."""
        return url_without_password(self.url)

    def client_config(self) -> dict[str, Any]:
        """The `SchemaRegistryClient` configuration, secrets included: never log this."""
        config: dict[str, Any] = {"url": self.url, **self.config}
        if self.basic_auth_user_info is not None:
            config["basic.auth.user.info"] = self.basic_auth_user_info.get_secret_value()
        return config

    def redacted(self) -> dict[str, Any]:
        """What the client is configured with, secrets masked, for logs."""
        shown: dict[str, Any] = {"url": self.shown_url, **redact(self.config)}
        if self.basic_auth_user_info is not None:
            shown["basic.auth.user.info"] = REDACTED
        return shown
