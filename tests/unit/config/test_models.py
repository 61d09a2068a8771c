"""The settings models: provenance, the dataset's location, secret redaction, frozen models and
producer properties."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from supervisor.config import (
    PRODUCER_DEFAULTS,
    REDACTED,
    Config,
    KafkaSettings,
    MetricsSettings,
)
from supervisor.dataset.location import LocalFile, S3Object
from tests.unit.config.helpers import MINIMAL, load

# --- provenance -----------------------------------------------------------------------------------


def test_source_is_provenance_not_a_setting(tmp_path: Path) -> None:
    config = load(tmp_path, MINIMAL)

    assert config.source == str(tmp_path / "config.yaml")
    assert "source" not in Config.model_fields
    assert "source" not in config.model_dump()
    assert Config.model_validate(config.model_dump()).source == "<defaults>"


def test_copies_keep_the_source(tmp_path: Path) -> None:
    config = load(tmp_path, MINIMAL + "metrics: {port: 9100}\n")
    copy = config.model_copy(update={"metrics": MetricsSettings()})

    assert copy.metrics.port is None
    assert copy.source == config.source == str(tmp_path / "config.yaml")


def test_a_config_built_in_code_names_its_source() -> None:
    config = Config.model_validate(yaml.safe_load(MINIMAL))
    named = config.with_source("test.yaml")

    assert (config.source, named.source) == ("<defaults>", "test.yaml")
    assert named.profiles == config.profiles
    assert named != config


# --- the dataset's location -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("s3://bucket/key", S3Object("bucket", "key")),
        ("S3://bucket/key", S3Object("bucket", "key")),
        ("s3://transactions/in/tx.csv", S3Object("transactions", "in/tx.csv")),
    ],
)
def test_an_s3_uri_is_an_s3_object_in_any_case(
    tmp_path: Path, uri: str, expected: S3Object
) -> None:
    config = load(tmp_path, MINIMAL + f"dataset: {{uri: '{uri}'}}\n")

    assert config.dataset.uri == uri
    assert config.dataset.location == expected


def test_a_relative_path_is_a_local_file_next_to_the_config_file(tmp_path: Path) -> None:
    config = load(tmp_path, MINIMAL + "dataset: {uri: 'data/../in/tx.csv'}\n")

    assert config.dataset.uri == str(tmp_path / "in" / "tx.csv")
    assert config.dataset.location == LocalFile(tmp_path / "in" / "tx.csv")


def test_the_default_dataset_is_a_local_file_next_to_the_config_file(tmp_path: Path) -> None:
    config = load(tmp_path, MINIMAL)

    assert config.dataset.location == LocalFile(tmp_path / "data" / "transactions.csv")


def test_seed_mode_takes_a_relative_dataset_from_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = Config.from_env({"DATASET_URI": "tx.csv"})

    assert config.dataset.location == LocalFile(tmp_path / "tx.csv")


# --- secrets --------------------------------------------------------------------------------------

SECRETS_YAML = (
    MINIMAL
    + """
kafka:
  bootstrap_servers: broker:9093
  config:
    security.protocol: SASL_SSL
    sasl.username: alice
    sasl.password: kafka-pass-123
    sasl.oauthbearer.client.secret: oauth-secret-456
    ssl.key.password: key-pass-789
    sasl.jaas.config: jaas-000
dataset:
  uri: s3://b/k.csv
  s3: {access_key: access-abc, secret_key: secret-def}
"""
)
SECRET_VALUES = [
    "kafka-pass-123",
    "oauth-secret-456",
    "key-pass-789",
    "jaas-000",
    "access-abc",
    "secret-def",
]


def test_repr_str_and_dumps_hide_secrets(tmp_path: Path) -> None:
    config = load(tmp_path, SECRETS_YAML)
    shown = [
        repr(config),
        str(config),
        repr(config.kafka),
        str(config.kafka),
        str(config.model_dump()),
        config.model_dump_json(),
        str(config.kafka.redacted_config()),
    ]

    for text in shown:
        for secret in SECRET_VALUES:
            assert secret not in text
    assert "alice" in repr(config)
    assert config.kafka.redacted_config()["sasl.password"] == REDACTED
    assert config.kafka.redacted_config()["bootstrap.servers"] == "broker:9093"


def test_producer_config_carries_the_real_values(tmp_path: Path) -> None:
    config = load(tmp_path, SECRETS_YAML)
    producer = config.kafka.producer_config()

    assert producer["sasl.password"] == "kafka-pass-123"
    assert producer["acks"] == "all"
    assert producer["bootstrap.servers"] == "broker:9093"


def test_models_are_frozen(tmp_path: Path) -> None:
    config = load(tmp_path, MINIMAL)

    with pytest.raises(ValidationError, match="frozen"):
        config.profiles["only"].interval_s = 5  # type: ignore[misc]


def test_kafka_config_overrides_producer_defaults() -> None:
    kafka = KafkaSettings(config={"acks": 1, "linger.ms": 50})

    assert kafka.producer_config() == {**PRODUCER_DEFAULTS, "acks": 1, "linger.ms": 50}


def test_instance_defaults_to_the_host_name_and_can_be_set(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("profiles:\n  p: {interval_s: 1, min_records: 1, max_records: 1}\n")
    assert Config.from_yaml(path, env={}).instance == socket.gethostname()
    path.write_text(
        "instance_id: producer-7\nprofiles:\n  p: {interval_s: 1, min_records: 1, max_records: 1}\n"
    )
    assert Config.from_yaml(path, env={}).instance == "producer-7"
