"""`run_checks` without servers: the embedded cluster, a local dataset, config errors, redaction.
(Checks against a real broker and S3 server are in tests/integration/test_check.py.)"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from supervisor.checks import config_check_failed, run_checks
from supervisor.config import REDACTED, Config
from supervisor.dataset.synth import write, write_csv
from supervisor.errors import ConfigError, ExitCode

PROFILES = {"only": {"interval_s": 1, "min_records": 1, "max_records": 3}}


def run(config: Config) -> tuple[int, list[str]]:
    out = io.StringIO()
    code = run_checks(config, out=out, timeout_s=2)
    return code, out.getvalue().splitlines()


def local_config(path: Path, **top: Any) -> Config:
    return Config.model_validate({"dataset": {"uri": str(path)}, "profiles": PROFILES, **top})


def test_embedded_cluster_and_a_local_dataset_need_nothing_else(tmp_path: Path) -> None:
    csv = tmp_path / "t.csv"
    write_csv(csv, rows=50, seed=1)

    code, lines = run(local_config(csv))

    assert code == ExitCode.OK
    assert lines == [
        "✓ config   <defaults>: 1 profile (only), 2.00 records/s in all, to transactions",
        "✓ kafka    embedded: an in-process mock cluster, nothing to reach",
        f"✓ dataset  {csv}: 50 valid rows of 50 read",
        "all 3 checks passed",
    ]


def test_missing_local_dataset_fails_with_exit_2(tmp_path: Path) -> None:
    code, lines = run(local_config(tmp_path / "nope.csv"))

    assert code == ExitCode.BAD_INPUT
    assert lines[2] == f"✗ dataset  {tmp_path / 'nope.csv'}: file not found — fix dataset.uri"
    assert lines[-1] == "1 of 3 checks failed"


def test_invalid_librdkafka_property_fails_the_kafka_check(tmp_path: Path) -> None:
    csv = tmp_path / "t.csv"
    write_csv(csv, rows=5, seed=1)
    config = local_config(
        csv, kafka={"bootstrap_servers": "127.0.0.1:1", "config": {"no.such.property": 1}}
    )

    code, lines = run(config)

    assert code == ExitCode.BAD_INPUT
    assert lines[1].startswith("✗ kafka    kafka.config: ")
    assert "no.such.property" in lines[1]


def test_an_embedded_cluster_still_has_its_librdkafka_properties_checked(tmp_path: Path) -> None:
    """`check` and `run` agree: a property `run` would refuse fails the check in embedded mode."""
    csv = tmp_path / "t.csv"
    write_csv(csv, rows=5, seed=1)
    config = local_config(csv, kafka={"config": {"linger.ms": "soon"}})

    code, lines = run(config)

    assert code == ExitCode.BAD_INPUT
    assert lines[1].startswith("✗ kafka    kafka.config['linger.ms'] = 'soon': ")


def test_a_config_that_did_not_load_is_one_failed_check() -> None:
    out = io.StringIO()

    code = config_check_failed(ConfigError("config.yaml: profiles: no profiles defined"), out=out)

    assert code == ExitCode.BAD_INPUT
    assert out.getvalue() == (
        "✗ config   config.yaml: profiles: no profiles defined\n1 of 1 checks failed\n"
    )


def test_secrets_are_masked_in_every_line(tmp_path: Path) -> None:
    secret = "hunter2-the-password"
    # A dataset path holding the secret stands in for any server message that echoes one.
    csv = tmp_path / secret / "t.csv"
    config = Config.model_validate(
        {
            "dataset": {"uri": str(csv), "s3": {"secret_key": secret, "access_key": "AKIAXXXX"}},
            "kafka": {"config": {"sasl.password": secret}},
            "profiles": PROFILES,
        }
    )

    code, lines = run(config)

    assert code == ExitCode.BAD_INPUT
    text = "\n".join(lines)
    assert secret not in text
    assert f"{tmp_path}/{REDACTED}/t.csv" in text


@pytest.mark.parametrize("short", ["1", "abc"])
def test_short_values_are_not_treated_as_secrets(tmp_path: Path, short: str) -> None:
    csv = tmp_path / "t.csv"
    write_csv(csv, rows=5, seed=1)
    config = local_config(csv, kafka={"config": {"ssl.key.password": short}})

    code, lines = run(config)

    assert code == ExitCode.OK
    assert REDACTED not in "\n".join(lines)


def test_scenarios_are_checked_against_the_dataset(tmp_path: Path) -> None:
    csv = tmp_path / "t.csv"
    write_csv(csv, rows=200, seed=1)

    def with_scenario(**scenario: Any) -> Config:
        profile = {**PROFILES["only"], "scenario": {"every_s": 60, **scenario}}
        return Config.model_validate({"dataset": {"uri": str(csv)}, "profiles": {"only": profile}})

    code, lines = run(with_scenario(kind="card-testing"))
    assert code == ExitCode.OK
    assert lines[3] == "✓ fraud    the dataset supports the scenarios card-testing"

    code, lines = run(with_scenario(kind="merchant-compromise", merchant="lidl"))
    assert code == ExitCode.BAD_INPUT
    assert lines[3].startswith("✗ fraud    profiles.only.scenario.merchant: ")
    assert "did you mean 'LIDL'?" in lines[3]
    assert lines[-1] == "1 of 4 checks failed"


@pytest.mark.parametrize(
    ("dataset", "said"),
    [
        ({}, "50 valid rows of 50 read; not sent: card_id"),
        ({"extra_columns": "keep"}, "50 valid rows of 50 read; also sent: card_id (string)"),
    ],
)
def test_the_dataset_line_says_which_extra_columns_are_sent(
    tmp_path: Path, dataset: dict[str, Any], said: str
) -> None:
    path = tmp_path / "cards.parquet"
    write(path, rows=50, seed=1, cards=5)
    config = Config.model_validate({"dataset": {"uri": str(path), **dataset}, "profiles": PROFILES})
    code, lines = run(config)
    assert code == ExitCode.OK
    assert f"✓ dataset  {path}: {said}" in lines
