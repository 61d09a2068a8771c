"""Helpers of the telemetry tests: an injectable clock and a GET against the HTTP server."""

from __future__ import annotations

import urllib.error
import urllib.request

from supervisor.telemetry.health import MetricsServer

LOOPBACK = "127.0.0.1"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def get(server: MetricsServer, path: str, **headers: str) -> tuple[int, str, str]:
    """(status, content type, body) of a GET, error statuses included."""
    request = urllib.request.Request(server.url + path, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers["Content-Type"], error.read().decode()
