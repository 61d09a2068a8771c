"""The seed's three presets through the CLI: cadence, tick lateness, delivery latency, CPU and
memory, and SIGTERM to exit.

CLI subprocesses (`python -m supervisor run --config ... --summary ...`), the most honest shape
for CPU and RSS: one per preset (high, normal, low) plus one running all three together, as the
shipped config.yaml does, all at once on one Tansu broker, each to its own topic. Once every
profile of every process has logged `profile_started` (startup excluded) plus one second, CPU time
is sampled from /proc/PID/stat (all threads, librdkafka's included) over the measured window; RSS
is read at its end. Then each process gets SIGTERM in turn and the time to its exit is measured
by the harness (wait on the child). Cadence, lateness and latency come from each run's summary:
batches vs elapsed_s / interval_s + 1, `tick_lateness_ms` and `latency_ms` (librdkafka's
msg.latency(): enqueue to acknowledgement). The summary's quantiles are upper bounds of log-spaced
buckets (10 per decade), so a p99 of "5.0" means somewhere in (3.98, 5.0] ms.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.harness import (
    ROOT,
    CliRun,
    Context,
    GroupResult,
    Table,
    Target,
    Usage,
    UsageMeter,
    cadence_error,
    clean_env,
    config_document,
    stop_on_exit,
    stop_process,
)
from realservices import start_tansu
from supervisor.config import Config

PRESETS = ("high", "normal", "low")
PROCESSES: dict[str, tuple[str, ...]] = {
    "high": ("high",),
    "normal": ("normal",),
    "low": ("low",),
    "all three": PRESETS,
}


def _start_control(out: Path, interval_s: float) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "benchmarks.control", str(out), str(interval_s)],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        env=clean_env(),
    )


def run(ctx: Context) -> GroupResult:
    duration_s = 8.0 if ctx.quick else 60.0
    result = GroupResult(
        "presets",
        method=f"CLI subprocesses, {duration_s:g} s measured window after startup; "
        "figures from --summary, /proc/PID/stat and a SIGTERM timed by the harness",
    )
    runs: dict[str, CliRun] = {}
    usage: dict[str, Usage] = {}
    shutdown: dict[str, dict[str, Any]] = {}
    intervals: dict[str, dict[str, float]] = {}
    with contextlib.ExitStack() as stack:
        broker = stop_on_exit(stack, start_tansu())
        for label, presets in PROCESSES.items():
            tag = label.replace(" ", "-")
            topic = ctx.new_topic(broker.bootstrap, tag)
            document = config_document(
                bootstrap=broker.bootstrap,
                topic=topic,
                profiles={p: {"preset": p, "seed": i} for i, p in enumerate(presets)},
            )
            cli = ctx.cli_run(f"presets-{tag}", document)
            config = Config.from_yaml(cli.config_path, env={})
            intervals[label] = {n: p.interval_s for n, p in config.profiles.items()}
            runs[label] = stack.enter_context(cli)
        for label, cli in runs.items():
            cli.wait_for("profile_started", count=len(PROCESSES[label]))
        time.sleep(1.0)  # past the first batch's connection and producer-id setup
        meters = {label: UsageMeter(cli.pid) for label, cli in runs.items()}
        controls = {
            preset: _start_control(ctx.path(f"control-{preset}.json"), intervals[preset][preset])
            for preset in PRESETS
        }
        for process in controls.values():
            stack.callback(stop_process, process)
        ctx.log(f"presets: measuring {duration_s:g} s")
        time.sleep(duration_s)  # the measured window
        usage = {label: meter.read() for label, meter in meters.items()}
        for process in controls.values():
            stop_process(process)
        for label, cli in runs.items():
            seconds = cli.terminate()
            shutdown[label] = {
                "sigterm_to_exit_s": round(seconds, 3),
                "sigterm_to_fleet_stopped_s": cli.event_time("fleet_stopped", since_sigterm=True),
                "exit_code": cli.returncode,
            }

    summaries = {label: cli.summary() for label, cli in runs.items()}
    control = {
        preset: json.loads(ctx.path(f"control-{preset}.json").read_text(encoding="utf-8"))
        for preset in PRESETS
    }
    cadence = Table(
        f"Cadence and tick lateness: presets over {duration_s:g} s (CLI --summary)",
        [
            "process",
            "profile",
            "interval s",
            "elapsed s",
            "batches",
            "expected",
            "error",
            "behind",
            "lateness p50 ms",
            "p99 ms",
            "max ms",
        ],
    )
    floor = Table(
        "Control: timer lateness of a bare uvloop process (no Kafka) beside the presets, same "
        "window",
        ["interval s", "ticks", "lateness p50 ms", "p99 ms", "max ms"],
    )
    for preset, figures in control.items():
        for interval, c in figures.items():
            floor.add(f"{float(interval):g} ({preset})", c["ticks"], c["p50"], c["p99"], c["max"])
    floor.notes.append(
        "what the machine itself (scheduler, VM wake-up, other load) adds to a timer; a preset's "
        "lateness well above it is the supervisor's own"
    )
    latency = Table(
        "Delivery latency, enqueue to ack (librdkafka msg.latency(), CLI --summary)",
        ["process", "profile", "delivered", "failed+undelivered", "p50 ms", "p99 ms", "max ms"],
    )
    worst_error = worst_lateness = worst_latency = 0.0
    per_profile: dict[str, dict[str, Any]] = {}
    for label, summary in summaries.items():
        for name, entry in summary["profiles"].items():
            interval = intervals[label][name]
            expected, error = cadence_error(entry, interval)
            late, lat = entry["tick_lateness_ms"], entry["latency_ms"]
            cadence.add(
                label,
                name,
                interval,
                entry["elapsed_s"],
                entry["batches"],
                expected,
                error,
                entry["behind_schedule"],
                late["p50"],
                late["p99"],
                late["max"],
            )
            latency.add(
                label,
                name,
                entry["delivered"],
                entry["failed"] + entry["undelivered"],
                lat["p50"],
                lat["p99"],
                lat["max"],
            )
            worst_error = max(worst_error, abs(error))
            worst_lateness = max(worst_lateness, late["p99"] or 0.0)
            worst_latency = max(worst_latency, lat["p99"] or 0.0)
            per_profile[f"{label}/{name}"] = {
                "interval_s": interval,
                "expected_batches": round(expected, 2),
                "cadence_error": round(error, 2),
                **entry,
            }
    overhead = Table(
        f"Overhead: CPU of one core and memory over the {duration_s:g} s window (/proc/PID)",
        ["process", "CPU %", "CPU s", "window s", "RSS MB", "peak RSS MB"],
    )
    for label, u in usage.items():
        overhead.add(label, u.cpu_pct, u.cpu_s, u.window_s, u.rss_mb, u.peak_rss_mb)
    overhead.notes.append("CPU % of one core: 100 = one core busy; all threads of the process")
    stop = Table(
        "Shutdown: SIGTERM to process exit (harness clock), after the measured window",
        ["process", "SIGTERM -> exit s", "SIGTERM -> fleet_stopped s (log)", "exit code"],
    )
    for label, s in shutdown.items():
        stop.add(label, s["sigterm_to_exit_s"], s["sigterm_to_fleet_stopped_s"], s["exit_code"])
    result.tables += [cadence, floor, latency, overhead, stop]
    result.data = {
        "duration_s": duration_s,
        "profiles": per_profile,
        "usage": {
            label: {
                "cpu_pct": round(u.cpu_pct, 3),
                "cpu_s": round(u.cpu_s, 3),
                "window_s": round(u.window_s, 2),
                "rss_mb": u.rss_mb,
                "peak_rss_mb": u.peak_rss_mb,
            }
            for label, u in usage.items()
        },
        "shutdown": shutdown,
        "control_lateness_ms": control,
    }

    control_worst = max(
        (c["p99"] or 0.0 for figures in control.values() for c in figures.values()), default=0.0
    )
    single = [label for label in PROCESSES if label in PRESETS and label in usage]
    cpu_worst = max((usage[label].cpu_pct for label in single), default=None)
    rss_worst = max((usage[label].rss_mb for label in single), default=None)
    stop_worst = max((s["sigterm_to_exit_s"] for s in shutdown.values()), default=None)
    cpu_figures = ", ".join(f"{label} {usage[label].cpu_pct:.2f}%" for label in single)
    rss_figures = ", ".join(f"{label} {usage[label].rss_mb:.0f} MB" for label in single)
    stop_figures = ", ".join(f"{k} {v['sigterm_to_exit_s']:.2f} s" for k, v in shutdown.items())
    result.targets += [
        Target(
            "cadence at presets",
            "within +-1 batch",
            f"worst |error| {worst_error:.2f} batches",
            bool(summaries) and worst_error <= 1.0,
        ),
        Target(
            "tick lateness p99 at presets",
            "<= 5 ms",
            f"worst p99 {worst_lateness:g} ms (a bucket bound); bare-uvloop control on the same "
            f"machine: worst p99 {control_worst:g} ms",
            bool(summaries) and worst_lateness <= 5.0,
        ),
        Target(
            "delivery latency p99 at presets",
            "<= 50 ms",
            f"worst p99 {worst_latency:g} ms",
            bool(summaries) and worst_latency <= 50.0,
        ),
        Target(
            "CPU at presets (one process per preset)",
            "<= 2% of a core",
            cpu_figures or "-",
            None if cpu_worst is None else cpu_worst <= 2.0,
        ),
        Target(
            "RSS at presets (one process per preset)",
            "<= 100 MB",
            rss_figures or "-",
            None if rss_worst is None else rss_worst <= 100.0,
        ),
        Target(
            "SIGTERM to exit at presets",
            "<= 1 s",
            stop_figures or "-",
            None if stop_worst is None else stop_worst <= 1.0,
        ),
    ]
    return result
