"""`format` and `schema_registry` in the config: what is refused, and secrets never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from supervisor.config import Config
from tests.unit.config.helpers import load_error

PROFILE = "{interval_s: 1, min_records: 1, max_records: 1"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            f"profiles:\n  p: {PROFILE}, format: avro}}\n",
            "profiles.p: format avro needs a 'schema_registry' section",
        ),
        (
            f"profiles:\n  p: {PROFILE}, format: xml}}\n",
            "profiles.p.format: must be 'json', 'avro', 'protobuf' or 'json-schema' (got 'xml')",
        ),
        (
            "schema_registry: {url: mock://x}\n"
            f"profiles:\n  a: {PROFILE}, format: avro}}\n  b: {PROFILE}, format: protobuf}}\n",
            "topic 'transactions' would get avro from profile 'a' and protobuf from profile 'b'",
        ),
        (
            f"schema_registry: {{url: 'kafka:8081'}}\nprofiles:\n  p: {PROFILE}}}\n",
            "schema_registry.url: 'kafka:8081' is not a registry URL",
        ),
        (
            "schema_registry: {url: mock://x, config: {url: http://y}}\n"
            f"profiles:\n  p: {PROFILE}}}\n",
            "'url' cannot be set here: use schema_registry.url",
        ),
        (
            "schema_registry: {url: mock://x, config: {ssl.ca.locaton: /ca}}\n"
            f"profiles:\n  p: {PROFILE}}}\n",
            "unknown Schema Registry client property 'ssl.ca.locaton'",
        ),
        (
            "schema_registry: {url: mock://x, use_latest_version: true}\n"
            f"profiles:\n  p: {PROFILE}}}\n",
            "use_latest_version needs auto_register: false",
        ),
        (
            f"schema_registry: {{url: mock://x, use_schema_id: 3}}\nprofiles:\n  p: {PROFILE}}}\n",
            "use_schema_id needs auto_register: false",
        ),
        (
            "schema_registry: {url: mock://x, auto_register: false, use_schema_id: 3,"
            " use_latest_version: true}\n"
            f"profiles:\n  p: {PROFILE}}}\n",
            "choose one of use_latest_version and use_schema_id",
        ),
    ],
)
def test_bad_format_settings_are_one_line(tmp_path: Path, text: str, expected: str) -> None:
    message = load_error(tmp_path, text)
    assert expected in message, message
    assert "\n" not in message


def test_registry_secrets_never_show() -> None:
    config = Config.model_validate(
        {
            "schema_registry": {
                "url": "https://bob:urlpass@sr.example:8081",
                "basic_auth_user_info": "alice:authpass",
                "config": {"ssl.key.password": "keypass", "bearer.auth.token": "tokenpass"},
            },
            "profiles": {"p": {"interval_s": 1, "min_records": 1, "max_records": 1}},
        }
    )
    registry = config.schema_registry
    assert registry is not None
    shown = " ".join(
        (repr(config), str(config.model_dump()), config.model_dump_json(), str(registry.redacted()))
    )
    for secret in ("urlpass", "authpass", "keypass", "tokenpass"):
        assert secret not in shown
    client = registry.client_config()
    assert client["basic.auth.user.info"] == "alice:authpass"
    assert client["url"] == "https://bob:urlpass@sr.example:8081"
