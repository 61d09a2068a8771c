"""Fixtures shared by the integration tests that run the CLI as a subprocess."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from realservices import create_topic
from tests.conftest import _delete_topic
from tests.integration.cli_process import CliProcess


@pytest.fixture
def cli_processes() -> Iterator[list[CliProcess]]:
    """Append every started CliProcess: each is stopped (and its pipes closed) at teardown."""
    started: list[CliProcess] = []
    yield started
    for proc in started:
        proc.stop()


@pytest.fixture
def new_topic(kafka_bootstrap: str) -> Iterator[Any]:
    """A factory of fresh single-partition topics (one partition: produce order is kept)."""
    made: list[str] = []

    def make(prefix: str) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:10]}"
        create_topic(kafka_bootstrap, name, partitions=1)
        made.append(name)
        return name

    yield make
    for name in made:
        _delete_topic(kafka_bootstrap, name)
