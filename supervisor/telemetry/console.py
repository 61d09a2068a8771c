"""The terminal: compact log lines, a live status and a summary table, for a person watching.

Only used when stderr is a terminal (or `--log-format console`); off a terminal the logs stay the
JSON lines that containers, files and the test suite read, unchanged. The compact line leads with
the time and the profile, leaves out what never changes (the instance id, the producer's
defaults), and rewords librdkafka's own lines; the live status and the summary table are drawn with
`rich`, imported only here.
"""

from __future__ import annotations

import logging
import re
import time
from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TextIO

import structlog

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.live import Live

    from supervisor.telemetry.stats import ProfileStats

_DIM, _BOLD, _RESET = "\x1b[2m", "\x1b[1m", "\x1b[0m"
_LEVEL_COLOUR = {"warning": "\x1b[33m", "error": "\x1b[31m", "critical": "\x1b[1;31m"}
_PROFILE_COLOUR = "\x1b[36m"

# Keys never worth a terminal column: constant for the whole run, or already said by the line.
_ALWAYS_HIDDEN = frozenset({"timestamp", "level", "event", "profile", "logger", "instance"})
# Per event, the fields a person wants on a terminal (the JSON line keeps them all).
_SHOWN: Mapping[str, tuple[str, ...]] = {
    "fleet_starting": ("config", "bootstrap_servers", "max_messages"),
    "profile_started": ("topic", "records_per_s", "schedule", "scenario", "seed"),
    "profile_stats": (
        "delivered",
        "delivered_per_s",
        "latency_p99_ms",
        "failed",
        "behind_schedule",
        "fraud_events",
        "labels_delivered",
    ),
    "dataset_loaded": ("source", "rows", "invalid_rows", "load_s"),
    "kafka_embedded": ("bootstrap_servers",),
    "metrics_serving": ("url",),
    "fleet_draining": ("in_flight",),
}
_HIDDEN_WHEN_ZERO = frozenset(
    {"behind_schedule", "invalid_rows", "fraud_events", "labels_delivered", "failed"}
)
# Lines the summary table says better at exit.
_SUMMARISED = frozenset({"profile_stopped", "fleet_stopped"})
# librdkafka: "MOCK [streaming-producer#producer-1] [thrd:app]: text" -> "text"
_RDKAFKA_PREFIX = re.compile(r"^[A-Z_]+ \[[^\]]*\] \[[^\]]*\]: ")


def quiet_librdkafka(record: logging.LogRecord) -> bool:
    """A logging filter for the terminal: librdkafka's notice that the mock cluster replaced
    bootstrap.servers goes (the `kafka_embedded` line says it, with the address to use)."""
    return not (record.name == "librdkafka" and "Mock cluster enabled" in record.getMessage())


class CompactRenderer:
    """A structlog renderer: `HH:MM:SS profile  event  key=value ...`, short enough to read."""

    def __init__(self, *, colours: bool, debug: bool = False, summarised: bool = True) -> None:
        self._colours, self._debug, self._summarised = colours, debug, summarised

    def __call__(self, _logger: object, _name: str, event: structlog.typing.EventDict) -> str:
        name = str(event.get("event", ""))
        level = str(event.get("level", "info"))
        if event.get("logger") == "librdkafka":
            name = "kafka: " + _RDKAFKA_PREFIX.sub("", name)
        elif self._summarised and name in _SUMMARISED:
            raise structlog.DropEvent
        shown = None if self._debug else _SHOWN.get(name)
        keys = [k for k in event if k not in _ALWAYS_HIDDEN] if shown is None else shown
        fields = [
            (k, v)
            for k in keys
            if (v := event.get(k)) is not None
            and v != {}
            and not (v == 0 and k in _HIDDEN_WHEN_ZERO)
            and k != "exception"
        ]
        stamp = str(event.get("timestamp", ""))[11:19] or time.strftime("%H:%M:%S")
        profile = str(event.get("profile", ""))
        colour = _LEVEL_COLOUR.get(level, "")
        parts = [
            self._paint(stamp, _DIM),
            self._paint(f"{profile:<8}", _PROFILE_COLOUR) if profile else " " * 8,
            self._paint(name, colour + _BOLD if colour else _BOLD),
        ]
        if colour:
            parts.insert(1, self._paint(level.upper(), colour))
        text = " ".join(parts)
        if fields:
            text += "  " + " ".join(f"{k}={_value(v)}" for k, v in fields)
        exc = event.get("exception")
        if exc:
            text += "\n" + str(exc)
        return text

    def _paint(self, text: str, code: str) -> str:
        return f"{code}{text}{_RESET}" if self._colours and code else text


def _value(v: object) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, list | tuple):
        return ",".join(str(x) for x in v)
    if isinstance(v, str) and (" " in v or not v):
        return repr(v)
    return str(v)


class LiveStatus:
    """A status table at the bottom of the terminal, refreshed in place while the fleet runs:
    per profile the delivery rate over the last seconds, delivered, failed, latency p99 and ticks
    behind schedule. Log lines scroll above it. Counters are read, never written."""

    WINDOW_S = 5.0

    def __init__(self, stream: TextIO) -> None:
        from rich.console import Console

        self._console: Console = Console(file=stream, stderr=True)
        self._stats: Mapping[str, ProfileStats] = {}
        self._history: dict[str, deque[tuple[float, int]]] = {}
        self._live: Live | None = None

    def watch(self, stats: Mapping[str, ProfileStats]) -> None:
        """Show these counters (the fleet's, live: profiles a reload adds appear)."""
        self._stats = stats

    def __enter__(self) -> LiveStatus:
        from rich.live import Live

        self._live = Live(
            get_renderable=self._render,
            console=self._console,
            refresh_per_second=2,
            transient=True,
            redirect_stdout=False,
            redirect_stderr=True,
        )
        self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)
            self._live = None

    def _render(self) -> RenderableType:
        from rich.table import Table
        from rich.text import Text

        if not self._stats:
            return Text("loading the dataset…", style="dim")
        now = time.monotonic()
        table = Table(
            box=None,
            header_style="bold",
            pad_edge=False,
            padding=(0, 2, 0, 0),
            caption="Ctrl-C drains and stops",
            caption_style="dim",
            caption_justify="left",
        )
        for column in ("profile", "msg/s", "delivered", "failed", "p99 ms", "behind"):
            table.add_column(column, justify="left" if column == "profile" else "right")
        for name, stats in list(self._stats.items()):
            p99 = stats.latency.quantile(0.99)
            table.add_row(
                Text(name, style="cyan"),
                f"{self._rate(name, stats.delivered, now):,.1f}",
                f"{stats.delivered:,}",
                Text(f"{stats.failed:,}", style="red" if stats.failed else ""),
                "-" if p99 is None else f"{p99 * 1000:.1f}",
                Text(f"{stats.behind_schedule:,}", style="yellow" if stats.behind_schedule else ""),
            )
        return table

    def _rate(self, name: str, delivered: int, now: float) -> float:
        history = self._history.setdefault(name, deque())
        history.append((now, delivered))
        while len(history) > 2 and now - history[1][0] >= self.WINDOW_S:
            history.popleft()
        then, before = history[0]
        return (delivered - before) / (now - then) if now > then else 0.0


def summary_table(summary: Mapping[str, Any], *, exit_code: int, stream: TextIO) -> None:
    """The run summary as a table a person reads, and what the exit code means."""
    from rich.console import Console
    from rich.table import Table

    console = Console(file=stream, stderr=True)
    table = Table(title=None, header_style="bold", box=None, padding=(0, 2, 0, 0))
    columns = ("profile", "delivered", "failed", "undelivered", "msg/s", "p50 ms", "p99 ms")
    for column in columns:
        table.add_column(column, justify="left" if column == "profile" else "right")
    profiles: Mapping[str, Mapping[str, Any]] = summary.get("profiles", {})
    for name, p in profiles.items():
        table.add_row(*_summary_row(name, p), style=None)
    total = summary.get("total", {})
    if len(profiles) > 1:
        table.add_row(*_summary_row("total", total, latency=False), style="bold")
    elapsed = float(summary.get("elapsed_s", 0.0))
    console.print()
    console.print(table)
    verdict = _VERDICT.get(exit_code, f"exit code {exit_code}")
    colour = "green" if exit_code == 0 else "yellow"
    console.print(f"[{colour}]{verdict}[/] after {elapsed:,.1f} s (exit code {exit_code})")


def _summary_row(
    name: str, p: Mapping[str, Any], *, latency: bool = True
) -> tuple[str, str, str, str, str, str, str]:
    elapsed = float(p.get("elapsed_s") or 0.0)
    rate = p.get("delivered", 0) / elapsed if elapsed > 0 else 0.0
    lat = p.get("latency_ms") or {}

    def ms(key: str) -> str:
        value = lat.get(key) if latency else None
        return "-" if value is None else f"{value:.1f}"

    return (
        name,
        f"{p.get('delivered', 0):,}",
        f"{p.get('failed', 0):,}",
        f"{p.get('undelivered', 0):,}",
        f"{rate:,.1f}",
        ms("p50"),
        ms("p99"),
    )


_VERDICT: Mapping[int, str] = {
    0: "every message delivered",
    3: "stopped with messages failed or undelivered",
    4: "Kafka unreachable",
    5: "a profile kept crashing",
}
