"""The command line's quick-run flags over a config file, the environment, or neither."""

from __future__ import annotations

from pathlib import Path

import pytest

from supervisor.config.loading import Overrides, load_env, load_yaml
from supervisor.errors import ConfigError

REPO = Path(__file__).resolve().parents[3]


def test_flags_pick_profiles_of_the_file_and_win_over_file_and_environment() -> None:
    config = load_yaml(
        REPO / "config.yaml",
        env={"KAFKA_BOOTSTRAP_SERVERS": "env:9092", "KAFKA_TOPIC": "from-env"},
        overrides=Overrides(bootstrap_servers="cli:9092", profiles=("low",), max_records=9),
    )
    assert list(config.profiles) == ["low"]
    assert config.profiles["low"].max_records == 9
    assert config.profiles["low"].interval_s == 2.0  # the file's preset, kept
    assert config.kafka.bootstrap_servers == "cli:9092"
    assert config.kafka.topic == "from-env"  # not set on the command line


def test_without_a_file_a_profile_name_is_a_preset_and_the_dataset_is_relative_to_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_env(
        env={},
        overrides=Overrides(dataset_uri="tx.csv", profiles=("high", "normal"), topic="t"),
    )
    assert list(config.profiles) == ["high", "normal"]
    assert config.profiles["high"].records_per_s == 75.0
    assert str(config.dataset.location) == str(tmp_path / "tx.csv")
    assert config.kafka.topic == "t"


def test_an_interval_alone_defines_one_profile_named_cli() -> None:
    config = load_env(env={}, overrides=Overrides(interval_s=0.1, min_records=2))
    assert list(config.profiles) == ["cli"]
    profile = config.profiles["cli"]
    assert (profile.interval_s, profile.min_records, profile.max_records) == (0.1, 2, 2)


def test_an_unknown_profile_name_lists_the_presets() -> None:
    with pytest.raises(ConfigError, match=r"unknown preset 'nosuch' \(available: .*card-testing"):
        load_env(env={}, overrides=Overrides(profiles=("nosuch",)))
