"""The health endpoints and the HTTP server: a real server on a free loopback port."""

from __future__ import annotations

import asyncio
import socket
import urllib.request

import pytest

from supervisor.errors import ConfigError, ExitCode
from supervisor.telemetry.health import Heartbeat, MetricsServer
from supervisor.telemetry.metrics import Telemetry
from tests.unit.telemetry.helpers import LOOPBACK, FakeClock, get

# --- /healthz and /readyz ------------------------------------------------------------------------


def test_healthz_follows_the_heartbeat(
    telemetry: Telemetry, server: MetricsServer, clock: FakeClock
) -> None:
    assert get(server, "/healthz")[0] == 200  # a new heartbeat counts as a beat

    clock.now += telemetry.heartbeat.max_age_s + 1
    status, _, body = get(server, "/healthz")
    assert status == 503
    assert "event loop silent for 31.0s" in body

    telemetry.heartbeat.beat()
    assert get(server, "/healthz")[0] == 200


def test_readyz_names_what_is_missing(telemetry: Telemetry, server: MetricsServer) -> None:
    status, _, body = get(server, "/readyz")
    assert status == 503
    assert body == "not ready: dataset not loaded, Kafka not reachable\n"

    telemetry.dataset_loaded(rows=1, invalid_rows=0)
    assert get(server, "/readyz")[2] == "not ready: Kafka not reachable\n"

    telemetry.kafka_reachable(True)
    assert get(server, "/readyz")[:3:2] == (200, "ready\n")

    telemetry.kafka_reachable(False)  # an outage, from the sink's delivery thread
    assert get(server, "/readyz")[:3:2] == (503, "not ready: Kafka not reachable\n")

    telemetry.kafka_reachable(True)
    telemetry.shutdown_started()
    assert get(server, "/readyz")[:3:2] == (503, "not ready: shutting down\n")


def test_unknown_path_is_404_and_head_has_no_body(server: MetricsServer) -> None:
    assert get(server, "/nope")[0] == 404
    request = urllib.request.Request(server.url + "/healthz", method="HEAD")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
        assert int(response.headers["Content-Length"]) == 3
        assert response.read() == b""


def test_query_strings_are_ignored(server: MetricsServer) -> None:
    assert get(server, "/healthz?verbose=1")[0] == 200


def test_heartbeat_beats_while_running_and_its_task_ends_with_the_block() -> None:
    clock = FakeClock()
    heartbeat = Heartbeat(interval_s=0.01, max_age_s=1.0, clock=clock)
    clock.now += 5
    assert not heartbeat.healthy()

    async def main() -> None:
        async with heartbeat.running():
            await asyncio.sleep(0)  # the heartbeat task's first beat
            assert heartbeat.healthy()
        assert [t for t in asyncio.all_tasks() if t.get_name() == "heartbeat"] == []

    asyncio.run(main())


def test_an_error_in_the_block_propagates_unchanged() -> None:
    async def main() -> None:
        async with Heartbeat().running():
            raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        asyncio.run(main())


def test_heartbeat_measures_how_late_the_loop_woke() -> None:
    stop = asyncio.Event()
    # The clock's readings: construction, the first beat, the first deadline's base, the wake-up
    # half a second past that deadline (a blocked loop), the next deadline's base.
    readings = iter([1000.0, 1000.0, 1000.0, 1000.51, 1000.51])

    def clock() -> float:
        value = next(readings)
        if value > 1000.5:
            stop.set()  # one late wake-up is all this test needs
        return value

    heartbeat = Heartbeat(interval_s=0.01, max_age_s=1.0, clock=clock)
    asyncio.run(heartbeat.run(stop))

    assert heartbeat.lag_s == pytest.approx(0.5)


def test_heartbeat_rejects_an_interval_not_below_max_age() -> None:
    with pytest.raises(ValueError, match="interval_s < max_age_s"):
        Heartbeat(interval_s=30, max_age_s=30)


# --- the server's lifecycle ----------------------------------------------------------------------


def test_a_taken_port_is_a_config_error(telemetry: Telemetry, server: MetricsServer) -> None:
    second = MetricsServer(telemetry, host=LOOPBACK, port=server.port)
    with pytest.raises(ConfigError, match=r"metrics: cannot listen on 127\.0\.0\.1:\d+") as caught:
        second.start()
    assert caught.value.exit_code is ExitCode.BAD_INPUT


def test_close_releases_the_port_and_is_idempotent(telemetry: Telemetry) -> None:
    server = MetricsServer(telemetry, host=LOOPBACK, port=0)
    server.start()
    port = server.port
    assert get(server, "/healthz")[0] == 200

    server.close()
    server.close()

    with socket.create_server((LOOPBACK, port)):  # free again
        pass


def test_url_of_a_wildcard_bind_points_at_loopback(telemetry: Telemetry) -> None:
    assert MetricsServer(telemetry, host="0.0.0.0", port=9464).url == "http://127.0.0.1:9464"
