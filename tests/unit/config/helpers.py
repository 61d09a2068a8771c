"""Writing and loading config files in a test's temporary folder."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from supervisor.config import Config
from supervisor.errors import ConfigError, ExitCode

REPO = Path(__file__).resolve().parents[3]
MINIMAL = """
profiles:
  only: {interval_s: 1, min_records: 1, max_records: 2}
"""


def write(directory: Path, text: str, name: str = "config.yaml") -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def load(directory: Path, text: str, env: dict[str, str] | None = None) -> Config:
    return Config.from_yaml(write(directory, text), env=env or {})


def load_error(directory: Path, text: str, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        load(directory, text, env)
    message = str(caught.value)
    assert "\n" not in message
    assert caught.value.exit_code is ExitCode.BAD_INPUT
    return message
