"""The health endpoints and the HTTP server that also serves the metrics, on one port.

* `/metrics` — the Prometheus text format (OpenMetrics when the scraper asks for it), from the
  registry of `supervisor.telemetry.metrics.Telemetry`;
* `/healthz` — liveness: 200 while the event loop keeps beating (`Heartbeat`), 503 once it has
  not beaten for `max_age_s` (a blocked or dead loop); it stays 200 while the fleet drains;
* `/readyz` — readiness: 200 once the dataset is loaded and Kafka answered, 503 with the reasons
  otherwise (`Readiness`), and 503 again while shutting down.

Threads: the server runs in a daemon thread and one short-lived thread per connection. What it
reads (the heartbeat's last beat, the readiness flags, the counters behind the registry) has one
writer each elsewhere and is read without locks.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import socketserver
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Final, Protocol, cast

from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import CollectorRegistry

from supervisor import __version__
from supervisor.errors import ConfigError
from supervisor.lifecycle import Clock, sleep_or_stop

DEFAULT_PORT: Final = 9464
"""The port the deploy files use (as OpenTelemetry's Prometheus exporter does by convention)."""
METRICS_PATH: Final = "/metrics"
HEALTH_PATH: Final = "/healthz"
READY_PATH: Final = "/readyz"

_REQUEST_TIMEOUT_S: Final = 10.0
_SERVE_POLL_S: Final = 0.2


# --- liveness and readiness ----------------------------------------------------------------------


class Heartbeat:
    """Proof that the event loop runs: `run()` beats every `interval_s` from a loop task, and
    `healthy()` (read by `/healthz` on another thread) is true while the last beat is at most
    `max_age_s` old. A new heartbeat counts as one beat, so a process is live while it starts.
    """

    def __init__(
        self, *, interval_s: float = 5.0, max_age_s: float = 30.0, clock: Clock = time.monotonic
    ) -> None:
        if not 0 < interval_s < max_age_s:
            raise ValueError(f"need 0 < interval_s < max_age_s, got {interval_s}, {max_age_s}")
        self.interval_s = interval_s
        self.max_age_s = max_age_s
        self._clock = clock
        self._last = clock()
        self.lag_s = 0.0
        """How late the last beat woke after its scheduled time: the event loop's latency."""

    def beat(self) -> None:
        self._last = self._clock()

    def age_s(self) -> float:
        """Seconds since the last beat."""
        return max(0.0, self._clock() - self._last)

    def healthy(self) -> bool:
        return self.age_s() <= self.max_age_s

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Beat from a task for as long as the block runs; the task is stopped and awaited on
        the way out, and an exception from the block propagates unchanged. Wrap the whole run,
        the drain included: the loop is alive (and must say so) while the fleet drains."""
        stop = asyncio.Event()
        task = asyncio.create_task(self.run(stop), name="heartbeat")
        try:
            yield
        finally:
            stop.set()
            await task

    async def run(self, stop: asyncio.Event) -> None:
        """Beat every `interval_s` until `stop` is set (see `running`)."""
        self.beat()
        while True:
            due = self._clock() + self.interval_s
            if await sleep_or_stop(stop, self.interval_s):
                return
            now = self._clock()
            self.lag_s = max(0.0, now - due)
            self._last = now


@dataclass(slots=True)
class Readiness:
    """The conditions `/readyz` reports, set by the app (and the sink, for Kafka outages).
    Plain attributes: each has one writer, and a bool is read whole by the server's thread."""

    dataset_loaded: bool = False
    broker_reachable: bool = False
    shutting_down: bool = False

    def problems(self) -> list[str]:
        """Why the process is not ready; empty when it is."""
        out = []
        if not self.dataset_loaded:
            out.append("dataset not loaded")
        if not self.broker_reachable:
            out.append("Kafka not reachable")
        if self.shutting_down:
            out.append("shutting down")
        return out

    def ready(self) -> bool:
        return not self.problems()


# --- the HTTP server -----------------------------------------------------------------------------


class Served(Protocol):
    """What the server answers from: `Telemetry` (`supervisor.telemetry.metrics`)."""

    @property
    def registry(self) -> CollectorRegistry: ...

    @property
    def heartbeat(self) -> Heartbeat: ...

    @property
    def readiness(self) -> Readiness: ...


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    telemetry: Served

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN, a reverse DNS lookup that can hang for
        # seconds in a container without DNS; the name is only used for CGI, so skip it.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: Prometheus reuses its connection
    timeout = _REQUEST_TIMEOUT_S
    server_version = f"streaming-producer/{__version__}"

    def do_GET(self) -> None:
        self._respond(head=False)

    def do_HEAD(self) -> None:
        self._respond(head=True)

    def _respond(self, *, head: bool) -> None:
        telemetry = cast(_Server, self.server).telemetry
        path = self.path.split("?", 1)[0]
        content_type = "text/plain; charset=utf-8"
        if path == METRICS_PATH:
            encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
            status, body = HTTPStatus.OK, encoder(telemetry.registry)
        elif path == HEALTH_PATH:
            heartbeat = telemetry.heartbeat
            if heartbeat.healthy():
                status, body = HTTPStatus.OK, b"ok\n"
            else:
                status = HTTPStatus.SERVICE_UNAVAILABLE
                body = f"event loop silent for {heartbeat.age_s():.1f}s\n".encode()
        elif path == READY_PATH:
            problems = telemetry.readiness.problems()
            if not problems:
                status, body = HTTPStatus.OK, b"ready\n"
            else:
                status = HTTPStatus.SERVICE_UNAVAILABLE
                body = f"not ready: {', '.join(problems)}\n".encode()
        else:
            status = HTTPStatus.NOT_FOUND
            body = f"not found; try {METRICS_PATH}, {HEALTH_PATH} or {READY_PATH}\n".encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Silence the per-request access log: probes and scrapes would flood the logs."""


class MetricsServer:
    """Serves `telemetry` over HTTP on `host:port` from a daemon thread; `port=0` takes a free
    port (see `.port`). `start()` raises `ConfigError` when the address cannot be bound."""

    def __init__(self, telemetry: Served, *, host: str = "0.0.0.0", port: int = DEFAULT_PORT):
        self.telemetry = telemetry
        self.host = host
        self.port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        server_class = _Server6 if ":" in self.host else _Server
        try:
            server = server_class((self.host, self.port), _Handler)
        except OSError as exc:
            raise ConfigError(
                f"metrics: cannot listen on {self.host}:{self.port} ({exc.strerror or exc})"
                " — choose another metrics.port or metrics.host"
            ) from None
        server.telemetry = self.telemetry
        self.port = int(server.server_address[1])
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": _SERVE_POLL_S},
            name="metrics-http",
            daemon=True,
        )
        self._thread.start()

    @property
    def url(self) -> str:
        host = self.host if self.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"

    def close(self) -> None:
        """Stop serving and release the port; blocks up to ~0.2 s. Idempotent."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> MetricsServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
