"""HEALTH_PORT: the container's health endpoint, whatever the config says about metrics."""

from __future__ import annotations

import pytest

from supervisor.cli import _served_ports
from supervisor.errors import ConfigError


@pytest.mark.parametrize(
    ("metrics_port", "env", "ports"),
    [
        (None, {}, []),
        (9464, {}, [9464]),
        (None, {"HEALTH_PORT": "9464"}, [9464]),  # the image, a config without metrics
        (9464, {"HEALTH_PORT": "9464"}, [9464]),  # one endpoint, not two
        (8000, {"HEALTH_PORT": "9464"}, [8000, 9464]),  # the config's port is served too
        (None, {"HEALTH_PORT": " "}, []),
    ],
)
def test_the_health_port_is_served_with_or_without_metrics(
    metrics_port: int | None, env: dict[str, str], ports: list[int]
) -> None:
    assert _served_ports(metrics_port, env) == ports


@pytest.mark.parametrize("value", ["http", "0", "70000", "-1"])
def test_a_bad_health_port_is_a_config_error(value: str) -> None:
    with pytest.raises(ConfigError, match=f"HEALTH_PORT: '{value}' is not a TCP port"):
        _served_ports(None, {"HEALTH_PORT": value})
