"""The command line: subcommands, config discovery, and errors as one line with an exit code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from supervisor.cli import build_parser, load_config, main
from supervisor.dataset import parse_csv
from supervisor.errors import ExitCode


def test_help_documents_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["run", "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    for code in ExitCode:
        assert f"  {int(code)}  " in out


def test_generate_dataset_writes_a_valid_deterministic_file(tmp_path: Path) -> None:
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    assert main(["generate-dataset", "--rows", "250", "--seed", "9", "--out", str(a)]) == 0
    assert main(["generate-dataset", "--rows", "250", "--seed", "9", "--out", str(b)]) == 0
    assert a.read_bytes() == b.read_bytes()
    dataset = parse_csv(a.read_bytes(), source=str(a))
    assert len(dataset) == 250
    assert dataset.invalid_count == 0


def test_shipped_dataset_is_what_generate_dataset_makes(tmp_path: Path) -> None:
    out = tmp_path / "t.csv"
    assert main(["generate-dataset", "--rows", "10000", "--seed", "42", "--out", str(out)]) == 0
    shipped = Path(__file__).parents[2] / "data" / "transactions.csv"
    assert out.read_bytes() == shipped.read_bytes()


def test_without_config_file_the_seed_env_defines_one_profile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PRODUCE_INTERVAL", "0.2")
    monkeypatch.setenv("MIN_RECORDS_PER_BATCH", "10")
    monkeypatch.setenv("MAX_RECORDS_PER_BATCH", "20")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "broker:9092")
    monkeypatch.setenv("KAFKA_TOPIC", "tx")
    config = load_config(None)
    assert list(config.profiles) == ["default"]
    profile = config.profiles["default"]
    assert (profile.interval_s, profile.min_records, profile.max_records) == (0.2, 10, 20)
    assert config.kafka.bootstrap_servers == "broker:9092"
    assert config.kafka.topic == "tx"


def test_config_yaml_in_the_working_directory_is_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.yaml").write_text(
        "profiles:\n  only: {interval_s: 1, min_records: 1, max_records: 1}\n"
    )
    assert list(load_config(None).profiles) == ["only"]


def test_bad_config_is_one_json_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("profiles:\n  p: {interval_s: -1, min_records: 1, max_records: 1}\n")
    code = main(["run", "--config", str(bad), "--log-format", "json"])
    assert code == ExitCode.BAD_INPUT
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    event = json.loads(lines[0])
    assert event["event"] == "fatal"
    assert "profiles.p.interval_s" in event["error"]
    assert "Traceback" not in lines[0]


def test_invalid_librdkafka_property_is_a_config_error_with_its_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "kafka: {config: {no.such.property: 1}}\n"
        "profiles:\n  p: {interval_s: 1, min_records: 1, max_records: 1}\n"
    )
    assert main(["run", "--config", str(cfg), "--log-format", "json"]) == ExitCode.BAD_INPUT
    err = capsys.readouterr().err
    fatal = [json.loads(line) for line in err.splitlines() if '"fatal"' in line]
    assert len(fatal) == 1
    assert "no.such.property" in fatal[0]["error"]
    assert fatal[0]["error"].startswith("kafka.config[")
    assert "dataset_loaded" not in err  # refused before loading anything


def test_generate_dataset_to_an_unwritable_path_is_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "no" / "such" / "dir" / "t.csv"
    code = main(["generate-dataset", "--rows", "5", "--out", str(out), "--log-format", "json"])
    assert code == ExitCode.BAD_INPUT
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert str(out) in json.loads(line)["error"]


def test_rate_prints_each_profile_and_the_fleet_by_the_seed_formula(
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = Path(__file__).parents[2] / "config.yaml"
    assert main(["rate", "--config", str(config)]) == ExitCode.OK
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.strip()}
    assert rows["high"][4] == "75.00"  # (10 + 20) / 2 / 0.2
    assert rows["normal"][4] == "11.00"  # (1 + 10) / 2 / 0.5
    assert rows["low"][4] == "1.50"  # (1 + 5) / 2 / 2.0
    assert "87.50" in rows["fleet"]


def test_a_config_file_in_use_names_the_environment_variables_it_makes_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.yaml").write_text(
        "profiles:\n  only: {interval_s: 1, min_records: 1, max_records: 1}\n"
    )
    monkeypatch.setenv("PRODUCE_INTERVAL", "0.2")
    monkeypatch.setenv("DATASET_URI", "elsewhere.csv")
    code = main(["rate", "--log-format", "json"])
    assert code == 0
    (line,) = capsys.readouterr().err.strip().splitlines()
    event = json.loads(line)
    assert event["event"] == "environment_ignored"
    assert event["variables"] == ["DATASET_URI", "PRODUCE_INTERVAL"]


def test_without_a_config_file_a_dataset_error_names_dataset_uri_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATASET_URI", "missing.csv")
    code = main(["run", "--dry-run", "--log-format", "json"])
    assert code == ExitCode.BAD_INPUT
    fatal = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert fatal["error"].endswith("file not found — fix DATASET_URI")


def test_the_pid_file_is_removed_at_exit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        "dataset: {uri: %s}\nprofiles:\n  p: {interval_s: 0.01, min_records: 1, max_records: 1}\n"
        % (Path(__file__).parents[2] / "data" / "transactions.csv")
    )
    pid = tmp_path / "run.pid"
    args = ["run", "--config", str(config), "--dry-run", "--max-messages", "2"]
    code = main([*args, "--pid-file", str(pid), "--log-format", "json"])
    assert code == 0
    assert not pid.exists()
    assert '"event": "fleet_stopped"' in capsys.readouterr().err
