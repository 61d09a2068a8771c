"""Reading a configuration: the repository's config.yaml, presets, `${VAR}` expansion, env
overrides, seed mode, the YAML reader and its errors; any input gives a Config or a ConfigError."""

from __future__ import annotations

import math
import os
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from supervisor.config import (
    PRODUCER_DEFAULTS,
    BurstSchedule,
    Config,
    ProfileSettings,
    find_preset,
)
from supervisor.errors import ConfigError
from tests.unit.config.helpers import MINIMAL, REPO, load, load_error, write

# --- the repository's files -----------------------------------------------------------------------


def test_repository_config_runs_the_three_presets_on_embedded_defaults() -> None:
    config = Config.from_yaml(REPO / "config.yaml", env={})

    assert config.kafka.bootstrap_servers == "embedded"
    assert config.kafka.topic == "transactions"
    assert config.kafka.producer_config() == dict(PRODUCER_DEFAULTS)  # no bootstrap.servers
    assert config.dataset.uri == str(REPO / "data" / "transactions.csv")
    assert config.dataset.on_invalid == "skip"
    assert config.source == str(REPO / "config.yaml")
    assert config.shutdown_timeout_s == 10.0
    assert config.stats_interval_s == 10.0
    batches = {
        name: (p.interval_s, p.min_records, p.max_records) for name, p in config.profiles.items()
    }
    assert batches == {"high": (0.2, 10, 20), "normal": (0.5, 1, 10), "low": (2.0, 1, 5)}
    assert all(
        p.topic is None and p.seed is None and p.key is None for p in config.profiles.values()
    )


@pytest.mark.parametrize(
    ("name", "records_per_s"), [("high", 75.0), ("normal", 11.0), ("low", 1.5)]
)
def test_bundled_presets_match_the_seed(name: str, records_per_s: float) -> None:
    path = find_preset(name, REPO / "nowhere")
    first_line = path.read_text(encoding="utf-8").splitlines()[0]
    profile = ProfileSettings.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))

    assert profile.records_per_s == pytest.approx(records_per_s)
    assert first_line.startswith("#")
    assert "records/s" in first_line


def test_schedule_and_scenario_presets_are_what_their_comments_say() -> None:
    def preset(name: str) -> ProfileSettings:
        path = find_preset(name, REPO / "nowhere")
        return ProfileSettings.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))

    diurnal, burst, attack = preset("diurnal"), preset("burst"), preset("card-testing")
    assert diurnal.schedule is not None
    assert diurnal.schedule.kind == "diurnal"
    assert sum(diurnal.schedule.curve) / 24 == pytest.approx(1.0, abs=1e-3)
    assert diurnal.records_per_s * min(diurnal.schedule.curve) == pytest.approx(1.4, abs=0.05)
    assert burst.schedule == BurstSchedule(kind="burst", every_s=60, duration_s=10, factor=10)
    assert attack.scenario is not None
    assert attack.scenario.kind == "card-testing"
    assert attack.labels is not None
    assert attack.labels.topic == "fraud-labels"
    assert attack.kafka_timestamp == "event"


# --- presets --------------------------------------------------------------------------------------


def test_profile_keys_override_its_preset(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """
        profiles:
          burst: {preset: high, max_records: 30, seed: 7, topic: bursts}
        """,
    )

    burst = config.profiles["burst"]
    assert (burst.interval_s, burst.min_records, burst.max_records) == (0.2, 10, 30)
    assert (burst.seed, burst.topic) == (7, "bursts")


def test_a_preset_next_to_the_config_wins_over_the_bundled_one(tmp_path: Path) -> None:
    write(tmp_path, "interval_s: 3\nmin_records: 2\nmax_records: 4\n", "profiles/high.yaml")
    write(tmp_path, "interval_s: 9\nmin_records: 1\nmax_records: 1\n", "profiles/nightly.yaml")
    config = load(
        tmp_path,
        """
        profiles:
          high: {preset: high}
          nightly: {preset: nightly}
        """,
    )

    assert config.profiles["high"].interval_s == 3.0
    assert config.profiles["nightly"].interval_s == 9.0
    assert find_preset("nightly", tmp_path) == tmp_path / "profiles" / "nightly.yaml"


def test_unknown_preset_lists_the_available_ones(tmp_path: Path) -> None:
    message = load_error(tmp_path, "profiles:\n  p: {preset: turbo}\n")

    assert "profiles.p.preset" in message
    assert "'turbo'" in message
    assert "available: burst, card-testing, diurnal, high, low, normal" in message


@pytest.mark.parametrize("name", ["../outside", "high/../../outside", "", ".hidden"])
def test_preset_names_cannot_leave_the_presets_folder(tmp_path: Path, name: str) -> None:
    write(tmp_path, "interval_s: 1\n", "outside.yaml")
    write(tmp_path, "interval_s: 1\n", "profiles/.hidden.yaml")

    with pytest.raises(ConfigError, match="unknown preset"):
        find_preset(name, tmp_path)


def test_preset_must_be_a_name(tmp_path: Path) -> None:
    message = load_error(tmp_path, "profiles:\n  p: {preset: [high]}\n")

    assert "profiles.p.preset: must be a preset name (got ['high'])" in message


def test_a_preset_cannot_use_a_preset(tmp_path: Path) -> None:
    preset = write(tmp_path, "preset: high\n", "profiles/chained.yaml")
    message = load_error(tmp_path, "profiles:\n  p: {preset: chained}\n")

    assert message == f"{preset}: preset: a preset cannot itself use a preset"


def test_unknown_key_in_a_preset_names_the_preset_file(tmp_path: Path) -> None:
    preset = write(tmp_path, "interval: 1\n", "profiles/typo.yaml")
    message = load_error(tmp_path, "profiles:\n  p: {preset: typo}\n")

    assert message.startswith(f"{preset}: interval: unknown key — did you mean 'interval_s'?")


def test_a_bad_value_from_a_preset_says_where_it_came_from(tmp_path: Path) -> None:
    preset = write(tmp_path, "interval_s: -1\nmin_records: 1\n", "profiles/bad.yaml")
    message = load_error(tmp_path, "profiles:\n  p: {preset: bad, max_records: 3}\n")

    assert f"profiles.p.interval_s (set by preset 'bad' in {preset}):" in message
    assert "must be at least 0.0001 (got -1)" in message


# --- ${VAR} expansion -----------------------------------------------------------------------------


def test_env_references_are_expanded_in_every_string(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """
        kafka:
          bootstrap_servers: ${KAFKA_HOST}:${KAFKA_PORT:-9092}
          topic: ${TOPIC:-tx}-events
          config: {sasl.username: "${USER_NAME}", client.id: "id-${EMPTY:-fallback}"}
        profiles:
          p: {interval_s: "${INTERVAL:-0.25}", min_records: "${MIN}", max_records: 5}
        """,
        env={"KAFKA_HOST": "broker", "USER_NAME": "alice", "EMPTY": "", "MIN": "2"},
    )

    assert config.kafka.bootstrap_servers == "broker:9092"
    assert config.kafka.topic == "tx-events"
    assert config.kafka.config == {"sasl.username": "alice", "client.id": "id-fallback"}
    assert (config.profiles["p"].interval_s, config.profiles["p"].min_records) == (0.25, 2)


def test_dollar_dollar_brace_is_a_literal(tmp_path: Path) -> None:
    config = load(tmp_path, MINIMAL + "kafka:\n  config: {sasl.username: 'a$${B}c'}\n")

    assert config.kafka.config["sasl.username"] == "a${B}c"


def test_a_variable_set_but_empty_is_used_without_a_default(tmp_path: Path) -> None:
    config = load(
        tmp_path, MINIMAL + "kafka:\n  config: {client.id: 'x${EMPTY}y'}\n", {"EMPTY": ""}
    )

    assert config.kafka.config["client.id"] == "xy"


def test_unset_variable_without_default_names_it_and_the_key(tmp_path: Path) -> None:
    message = load_error(tmp_path, MINIMAL + "kafka:\n  bootstrap_servers: ${KAFKA_HOST}\n")

    assert message == (
        f"{tmp_path / 'config.yaml'}: kafka.bootstrap_servers: environment variable KAFKA_HOST"
        " is not set and has no default (write ${KAFKA_HOST:-value} for one)"
    )


def test_malformed_reference_is_an_error(tmp_path: Path) -> None:
    message = load_error(tmp_path, MINIMAL + "kafka:\n  topic: ${1BAD}\n")

    assert "kafka.topic: malformed variable reference" in message


def test_yaml_anchors_aliases_and_merge_keys_work(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """
        profiles:
          a: &base {interval_s: "${I:-2}", min_records: 1, max_records: 2}
          b: {<<: *base, max_records: 9}
          c: *base
        """,
        env={"I": "4"},
    )

    assert [p.interval_s for p in config.profiles.values()] == [4.0, 4.0, 4.0]
    assert config.profiles["b"].max_records == 9


def test_alias_bombs_and_self_references_stay_cheap(tmp_path: Path) -> None:
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    levels += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    bomb = "bomb:\n" + "\n".join(f"  {level}" for level in levels) + "\n"
    assert "bomb: unknown key" in load_error(tmp_path, MINIMAL + bomb)
    assert "loop: unknown key" in load_error(tmp_path, MINIMAL + "loop: &loop [*loop]\n")


def test_the_debug_cause_names_every_problem_without_the_values(tmp_path: Path) -> None:
    """--debug prints the ConfigError's cause: pydantic's own text would show each input value (a
    secret, or a billion items of an alias bomb, built in minutes before being truncated)."""
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    levels += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    bomb = "bomb:\n" + "\n".join(f"  {level}" for level in levels) + "\n"
    secret = "kafka:\n  bootstrap_servers: b:9092\n  config: {sasl.password: [hunter2-secret]}\n"
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, MINIMAL + bomb + secret)
    cause = caught.value.__cause__
    assert cause is not None
    assert not isinstance(cause, ValidationError)
    text = str(cause)
    assert text.splitlines() == [
        "2 problem(s):",
        "bomb: Extra inputs are not permitted [extra_forbidden]",
        "kafka.config: Value error, property 'sasl.password' must be a string, number or boolean"
        " [value_error]",
    ]


# --- environment overrides ------------------------------------------------------------------------


SEED_ENV = {
    "KAFKA_BOOTSTRAP_SERVERS": "kafka:19092",
    "KAFKA_TOPIC": "payments",
    "ENDPOINT_URL": "http://minio:9000",
    "KEY": "minioadmin",
    "SECRET": "minio-secret-value",
}


def test_seed_env_vars_win_over_the_file(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        MINIMAL
        + textwrap.dedent("""
        kafka: {bootstrap_servers: localhost:9092, topic: transactions}
        dataset:
          uri: s3://bucket/transactions.csv
          s3: {endpoint_url: http://localhost:9000, access_key: a, secret_key: b}
        """),
        env=SEED_ENV,
    )

    assert config.kafka.bootstrap_servers == "kafka:19092"
    assert config.kafka.producer_config()["bootstrap.servers"] == "kafka:19092"
    assert config.kafka.topic == "payments"
    s3 = config.dataset.s3
    assert s3.endpoint_url == "http://minio:9000"
    assert s3.access_key is not None
    assert s3.access_key.get_secret_value() == "minioadmin"
    assert s3.secret_key is not None
    assert s3.secret_key.get_secret_value() == "minio-secret-value"


def test_empty_env_vars_do_not_override(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        MINIMAL + "kafka: {bootstrap_servers: 'localhost:9092', topic: t}\n",
        env=dict.fromkeys(SEED_ENV, ""),
    )

    assert (config.kafka.bootstrap_servers, config.kafka.topic) == ("localhost:9092", "t")
    assert config.dataset.s3.access_key is None


def test_env_overrides_fill_null_sections(tmp_path: Path) -> None:
    config = load(tmp_path, MINIMAL + "kafka:\ndataset:\n", env={"KAFKA_TOPIC": "t2"})

    assert config.kafka.topic == "t2"
    assert config.dataset.uri == str(tmp_path / "data" / "transactions.csv")


@pytest.mark.parametrize(
    ("file_region", "env", "expected"),
    [
        (None, {"AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "us-east-1"}, "eu-west-1"),
        (None, {"AWS_DEFAULT_REGION": "us-east-1"}, "us-east-1"),
        ("ap-south-1", {"AWS_REGION": "eu-west-1"}, "ap-south-1"),
        (None, {}, None),
    ],
)
def test_region_falls_back_to_aws_env(
    tmp_path: Path, file_region: str | None, env: dict[str, str], expected: str | None
) -> None:
    region = "null" if file_region is None else file_region
    config = load(tmp_path, MINIMAL + f"dataset:\n  s3: {{region: {region}}}\n", env)

    assert config.dataset.s3.region == expected


def test_an_invalid_env_override_is_named(tmp_path: Path) -> None:
    message = load_error(tmp_path, MINIMAL, env={"KAFKA_TOPIC": "bad topic"})

    assert "kafka.topic (from KAFKA_TOPIC): invalid Kafka topic name 'bad topic'" in message


# --- seed mode ------------------------------------------------------------------------------------


def test_seed_mode_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = Config.from_env({})

    assert list(config.profiles) == ["default"]
    default = config.profiles["default"]
    assert (default.interval_s, default.min_records, default.max_records) == (0.5, 1, 10)
    assert default.records_per_s == pytest.approx(11.0)
    assert config.dataset.uri == str(tmp_path / "data" / "transactions.csv")
    assert config.kafka.bootstrap_servers == "embedded"
    assert config.source == "environment"


def test_seed_mode_reads_the_seed_env_vars() -> None:
    env = {
        **SEED_ENV,
        "PRODUCE_INTERVAL": "0.2",
        "MIN_RECORDS_PER_BATCH": "10",
        "MAX_RECORDS_PER_BATCH": "20",
        "DATASET_URI": "s3://transactions/transactions.csv",
    }
    config = Config.from_env(env)

    default = config.profiles["default"]
    assert (default.interval_s, default.min_records, default.max_records) == (0.2, 10, 20)
    assert config.dataset.uri == "s3://transactions/transactions.csv"
    assert config.kafka.bootstrap_servers == "kafka:19092"
    assert config.kafka.topic == "payments"
    assert config.dataset.s3.endpoint_url == "http://minio:9000"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"PRODUCE_INTERVAL": "fast"},
            "environment: profiles.default.interval_s (from PRODUCE_INTERVAL): must be a number"
            " (got 'fast')",
        ),
        (
            {"MIN_RECORDS_PER_BATCH": "12"},
            "environment: profiles.default: min_records (12) is greater than max_records (10)",
        ),
        (
            {"MAX_RECORDS_PER_BATCH": "0", "MIN_RECORDS_PER_BATCH": "0"},
            "environment: profiles.default.min_records (from MIN_RECORDS_PER_BATCH): must be at"
            " least 1 (got '0') (+1 more problem)",
        ),
    ],
)
def test_seed_mode_errors_name_the_env_var(env: dict[str, str], expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Config.from_env(env)

    assert str(caught.value) == expected


# --- reading the file -----------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as caught:
        Config.from_yaml(missing, env={})

    assert str(caught.value) == (
        f"config file '{missing}' not found — pass --config PATH or create it"
        " (see config.yaml in the repository)"
    )


def test_a_directory_is_not_a_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="a directory — give the path of a YAML file"):
        Config.from_yaml(tmp_path, env={})


def test_yaml_syntax_error_gives_line_and_column(tmp_path: Path) -> None:
    message = load_error(tmp_path, "profiles:\n  a: {interval_s: 1\n  b: 2\n")

    assert message.startswith(f"{tmp_path / 'config.yaml'}:3:")
    assert "invalid YAML: expected ',' or '}'" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: 1\n---\nb: 2\n", ":2:1: invalid YAML: expected a single document in the stream, but"),
        ("profiles:\n\tp: 1\n", ":2:1: invalid YAML: found character '\\t' that cannot start"),
        ("profiles: x\x00\n", ":1:12: invalid YAML: character #x0000: special characters are"),
    ],
)
def test_yaml_errors_point_at_the_spot(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in load_error(tmp_path, text)


def test_yaml_bad_tagged_value(tmp_path: Path) -> None:
    message = load_error(tmp_path, "profiles: !!int abc\n")

    assert "invalid YAML: cannot convert a value" in message


def test_duplicate_keys_are_errors(tmp_path: Path) -> None:
    message = load_error(
        tmp_path, MINIMAL + "  only: {interval_s: 2, min_records: 1, max_records: 2}\n"
    )

    assert ":4:3: invalid YAML: found duplicate key 'only'" in message


@pytest.mark.parametrize(("text", "kind"), [("- a\n- b\n", "list"), ("just text\n", "str")])
def test_the_document_must_be_a_mapping(tmp_path: Path, text: str, kind: str) -> None:
    message = load_error(tmp_path, text)

    assert message.endswith(f"must be a mapping of settings (got {kind})")


# --- YAML scalars ---------------------------------------------------------------------------------


def test_times_of_day_are_text_not_base_60_numbers(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """
        profiles:
          p:
            interval_s: 1
            min_records: 1
            max_records: 1
            schedule:
              kind: windows
              windows: [{from: 9:30, to: 10:30, factor: 2}, {from: 22:00, to: 06:00, factor: 0}]
        """,
    )

    schedule = config.profiles["p"].schedule
    assert schedule is not None
    assert schedule.kind == "windows"
    assert [(w.start, w.end) for w in schedule.windows] == [
        (9 * 3600 + 30 * 60, 10 * 3600 + 30 * 60),
        (22 * 3600, 6 * 3600),
    ]


def test_yaml_1_1_booleans_and_numbers_are_kept(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        MINIMAL + "kafka: {config: {enable.idempotence: yes, socket.nagle.disable: on,"
        " linger.ms: 1_000, retries: 0x10, batch.size: 1.5e+3}}\n",
    )

    assert config.kafka.config == {
        "enable.idempotence": True,
        "socket.nagle.disable": True,
        "linger.ms": 1000,
        "retries": 16,
        "batch.size": 1500.0,
    }


# --- properties -----------------------------------------------------------------------------------

KEYS = st.sampled_from(
    [
        "kafka",
        "dataset",
        "profiles",
        "high",
        "preset",
        "interval_s",
        "min_records",
        "max_records",
        "topic",
        "config",
        "bootstrap_servers",
        "uri",
        "s3",
        "access_key",
        "shutdown_timeout_s",
    ]
) | st.text(max_size=10)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(["high", "low", "${X}", "${UNSET}", "${X:-2}", "$${", "s3://b/k", "0.5"])
)
VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=5),
    max_leaves=30,
)
DOCUMENTS = st.dictionaries(KEYS, VALUES, max_size=6)
PROPERTY_SETTINGS = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


def check_loads_or_fails_cleanly(path: Path) -> None:
    """`from_yaml` returns a sound Config or raises a one-line ConfigError, nothing else."""
    try:
        config = Config.from_yaml(path, env={"X": "1"})
    except ConfigError as exc:
        message = str(exc)
    else:
        for profile in config.profiles.values():
            assert 1 <= profile.min_records <= profile.max_records
            assert math.isfinite(profile.interval_s)
            assert profile.interval_s > 0
        return
    assert "\n" not in message


@PROPERTY_SETTINGS
@given(document=DOCUMENTS)
def test_any_mapping_yields_a_config_or_a_config_error(
    tmp_path_factory: pytest.TempPathFactory, document: dict[Any, Any]
) -> None:
    path = tmp_path_factory.mktemp("doc") / "config.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")

    check_loads_or_fails_cleanly(path)


@PROPERTY_SETTINGS
@given(text=st.text(alphabet=st.sampled_from("ab:-{}[]&*!<>|'\"#%@`?,. \n\t$0")) | st.text())
def test_any_text_yields_a_config_or_a_config_error(
    tmp_path_factory: pytest.TempPathFactory, text: str
) -> None:
    path = tmp_path_factory.mktemp("text") / "config.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")

    check_loads_or_fails_cleanly(path)


def test_a_config_that_is_not_a_regular_file_is_refused_without_waiting(tmp_path: Path) -> None:
    fifo = tmp_path / "config.yaml"
    os.mkfifo(fifo)  # opening it would wait for a writer forever
    with pytest.raises(ConfigError, match="not a regular file — give the path of a YAML file"):
        Config.from_yaml(fifo)


def test_a_config_too_large_to_be_one_is_refused_before_it_is_read(tmp_path: Path) -> None:
    huge = tmp_path / "config.yaml"
    with huge.open("w") as f:
        f.write("profiles:\n")
        line = "  p{}: {{interval_s: 1, min_records: 1, max_records: 1}}\n"
        for i in range(100_000):
            f.write(line.format(i))
    with pytest.raises(ConfigError, match=r"bytes; a config file is at most 4,194,304"):
        Config.from_yaml(huge)
