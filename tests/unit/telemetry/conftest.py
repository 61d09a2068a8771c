"""Fixtures of the telemetry tests: an injectable clock, a `Telemetry`, and its HTTP server on a
free loopback port."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from supervisor.telemetry.health import Heartbeat, MetricsServer
from supervisor.telemetry.metrics import Telemetry
from tests.unit.telemetry.helpers import LOOPBACK, FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def telemetry(clock: FakeClock) -> Telemetry:
    return Telemetry(instance_id="pod-1", heartbeat=Heartbeat(clock=clock), clock=clock)


@pytest.fixture
def server(telemetry: Telemetry) -> Iterator[MetricsServer]:
    with MetricsServer(telemetry, host=LOOPBACK, port=0) as running:
        yield running
