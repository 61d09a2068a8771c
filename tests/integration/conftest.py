"""Fixtures shared by the integration tests that run the CLI as a subprocess."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.cli_process import CliProcess


@pytest.fixture
def cli_processes() -> Iterator[list[CliProcess]]:
    """Append every started CliProcess: each is stopped (and its pipes closed) at teardown."""
    started: list[CliProcess] = []
    yield started
    for proc in started:
        proc.stop()
