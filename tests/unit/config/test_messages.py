"""One-line `ConfigError` messages: the key path, "did you mean", where a value came from, and
never a secret value."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.unit.config.helpers import MINIMAL, load_error

# --- one line naming the culprit ------------------------------------------------------------------


def test_a_scenario_more_often_than_every_millisecond_is_refused(tmp_path: Path) -> None:
    message = load_error(
        tmp_path,
        "profiles:\n  p: {interval_s: 1, min_records: 1, max_records: 1,"
        " scenario: {kind: velocity, every_s: 0.0000001}}\n",
    )
    assert "profiles.p.scenario.every_s: must be at least 0.001" in message


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        (
            "https://x/y.csv",
            "dataset.uri: unsupported scheme 'https': use s3://bucket/key or a path",
        ),
        ("HTTP://x/y.csv", "dataset.uri: unsupported scheme 'HTTP': use s3://bucket/key or a path"),
        (
            "S3://bucket",
            "dataset.uri: 'S3://bucket' must name a bucket and a key: s3://bucket/path/to.csv",
        ),
        (" ", "dataset.uri: must not be empty: give s3://bucket/key or a local path"),
        ("a\x00b", "dataset.uri: must not contain a NUL character"),
    ],
)
def test_a_bad_dataset_uri_says_what_is_wrong(tmp_path: Path, uri: str, expected: str) -> None:
    text = MINIMAL + f"dataset: {{uri: {json.dumps(uri)}}}\n"
    message = load_error(tmp_path, text)

    assert message == f"{tmp_path / 'config.yaml'}: {expected}"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "profiles:\n  high: {intervl_s: 1, min_records: 1, max_records: 2}\n",
            "profiles.high.intervl_s: unknown key — did you mean 'interval_s'? (expected one of:"
            " interval_s, min_records, max_records, topic, seed, key, id, timestamp,"
            " kafka_timestamp, schedule, late, out_of_order, duplicates, scenario, labels, format,"
            " headers, preset)",
        ),
        (
            "profiles:\n  p: {interval_s: 1, min_records: 1, max_records: 2, headers: fraud}\n",
            "profiles.p.headers: must be 'all', 'profile' or 'none' (got 'fraud')",
        ),
        (
            MINIMAL + "kafak: {}\n",
            "kafak: unknown key — did you mean 'kafka'? (expected one of: kafka, dataset,"
            " profiles, shutdown_timeout_s, stats_interval_s, metrics, instance_id, reload,"
            " evaluation, shard, schema_registry)",
        ),
        (
            MINIMAL + "dataset: {s3: {acess_key: x}}\n",
            "dataset.s3.acess_key: unknown key — did you mean 'access_key'?",
        ),
        (
            MINIMAL + "source: elsewhere\n",
            "source: unknown key (expected one of: kafka, dataset, profiles,"
            " shutdown_timeout_s, stats_interval_s, metrics, instance_id, reload, evaluation,"
            " shard, schema_registry)",
        ),
        (
            "profiles:\n  p: {interval_s: soon, min_records: 1, max_records: 2}\n",
            "profiles.p.interval_s: must be a number (got 'soon')",
        ),
        (
            "profiles:\n  p: {interval_s: 1, min_records: 1.5, max_records: 2}\n",
            "profiles.p.min_records: must be a whole number (got 1.5)",
        ),
        (
            "profiles:\n  p: {interval_s: yes, min_records: 1, max_records: 2}\n",
            "profiles.p.interval_s: must be a number, not true",
        ),
        (
            "profiles:\n  p: {interval_s: 0, min_records: 1, max_records: 2}\n",
            "profiles.p.interval_s: must be at least 0.0001 (got 0)",
        ),
        (
            "profiles:\n  low: {interval_s: -1, min_records: 1, max_records: 2}\n",
            "profiles.low.interval_s: must be at least 0.0001 (got -1)",
        ),
        (
            "profiles:\n  p: {interval_s: .nan, min_records: 1, max_records: 2}\n",
            "profiles.p.interval_s: must be a finite number (got nan)",
        ),
        (
            "profiles:\n  p: {interval_s: .inf, min_records: 1, max_records: 2}\n",
            "profiles.p.interval_s: must be a finite number (got inf)",
        ),
        (
            "profiles:\n  normal: {interval_s: 1, min_records: 12, max_records: 10}\n",
            "profiles.normal: min_records (12) is greater than max_records (10)",
        ),
        (
            "profiles:\n  p: {interval_s: 1, min_records: 0, max_records: 2}\n",
            "profiles.p.min_records: must be at least 1 (got 0)",
        ),
        (
            "profiles:\n  p: {interval_s: 1, min_records: 1}\n",
            "profiles.p: missing required key 'max_records'",
        ),
        (
            "profiles:\n  p: {interval_s: 1, min_records: 1, max_records: 2, key: user}\n",
            "profiles.p.key: must be one of 'id', 'description', 'amount', 'timestamp',"
            " 'merchant', 'operation_type', 'side', or an extra column the messages keep"
            " (dataset.extra_columns: keep) (got 'user')",
        ),
        ("profiles: {}\n", "profiles: no profiles defined — add at least one under 'profiles:'"),
        ("profiles:\n", "profiles: no profiles defined — add at least one under 'profiles:'"),
        ("kafka: {}\n", "profiles: no profiles defined — add at least one under 'profiles:'"),
        ("", "profiles: no profiles defined — add at least one under 'profiles:'"),
        ("profiles: [high]\n", "profiles: must be a mapping (got ['high'])"),
        (
            "profiles:\n  'bad name': {interval_s: 1, min_records: 1, max_records: 2}\n",
            "profiles: invalid profile name 'bad name'",
        ),
        (
            "profiles:\n  1: {interval_s: 1, min_records: 1, max_records: 2}\n",
            "profiles: key 1 must be a string — quote it",
        ),
        (MINIMAL + "kafka: {topic: 'a b'}\n", "kafka.topic: invalid Kafka topic name 'a b'"),
        (MINIMAL + "kafka: {topic: '..'}\n", "kafka.topic: invalid Kafka topic name '..'"),
        (MINIMAL + f"kafka: {{topic: {'t' * 250}}}\n", "kafka.topic: invalid Kafka topic name"),
        (MINIMAL + "kafka: {topic: 2024}\n", "kafka.topic: must be a string — quote it (got 2024)"),
        (
            "profiles:\n  p: {interval_s: 1, min_records: 1, max_records: 2, topic: 'tx/1'}\n",
            "profiles.p.topic: invalid Kafka topic name 'tx/1'",
        ),
        (
            MINIMAL + "kafka: {config: {bootstrap.servers: 'h:1'}}\n",
            "kafka.config: 'bootstrap.servers' cannot be set here: use kafka.bootstrap_servers",
        ),
        (
            MINIMAL + "kafka: {config: {metadata.broker.list: 'h:1'}}\n",
            "kafka.config: 'metadata.broker.list' cannot be set here",
        ),
        (
            MINIMAL + "kafka: {config: {error_cb: handler}}\n",
            "kafka.config: 'error_cb' is a callback and cannot be set from a config file",
        ),
        (
            MINIMAL + "kafka: {config: {linger.ms: [1]}}\n",
            "kafka.config: property 'linger.ms' must be a string, number or boolean (got [1])",
        ),
        (
            MINIMAL + "kafka: {bootstrap_servers: ' '}\n",
            "kafka.bootstrap_servers: must not be empty",
        ),
        (
            MINIMAL + "dataset: {uri: 'https://x/y.csv'}\n",
            "dataset.uri: unsupported scheme 'https'",
        ),
        (MINIMAL + "dataset: {uri: 's3://bucket'}\n", "dataset.uri: 's3://bucket' must name a"),
        (MINIMAL + "dataset: {on_invalid: drop}\n", "dataset.on_invalid: must be 'skip' or 'fail'"),
        (MINIMAL + "shutdown_timeout_s: 0\n", "shutdown_timeout_s: must be greater than 0 (got 0)"),
        (
            "profiles:\n  p: {interval_s: 0, min_records: 0, max_records: 2}\n",
            "profiles.p.interval_s: must be at least 0.0001 (got 0) (+1 more problem)",
        ),
        (
            "profiles:\n  p: {interval_s: 0, min_records: 0, max_records: x}\n",
            "(+2 more problems)",
        ),
    ],
)
def test_validation_errors_are_one_line_naming_the_culprit(
    tmp_path: Path, text: str, expected: str
) -> None:
    message = load_error(tmp_path, text)

    assert message.startswith(f"{tmp_path / 'config.yaml'}: ")
    assert expected in message


@pytest.mark.parametrize(
    "text",
    [
        MINIMAL + "dataset: {s3: {access_key: [hidden-1]}}\n",
        MINIMAL + "dataset: {s3: {secret_key: {v: hidden-1}}}\n",
        MINIMAL + "dataset: {s3: hidden-1}\n",
        MINIMAL + "kafka: {config: {sasl.password: [hidden-1]}}\n",
        MINIMAL + "kafka: {config: hidden-1}\n",
    ],
)
def test_errors_never_echo_secret_values(tmp_path: Path, text: str) -> None:
    message = load_error(tmp_path, text)

    assert "hidden-1" not in message
