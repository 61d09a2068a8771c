"""Scale in profiles: 1, 10, 100 and 1,000 profiles at the normal preset in one process.

CLI subprocess through `benchmarks.probe` (the CLI's own `main`, plus pooled histograms of all
profiles written at exit), one run per profile count on one Tansu broker. Each profile has its own
seed; all start together, as a config file's profiles do. Measured over the window after every
profile has logged `profile_started` (plus one second): CPU % of one core and RSS from /proc, the
cadence error of every profile (batches - (elapsed / interval + 1)), tick lateness pooled over
all profiles' ticks in that window (the probe restarts the lateness histograms on SIGUSR1 at its
start; the whole-run figure, startup included, is kept beside it), the median over profiles of
each profile's p99 (the target) and the worst single profile's p99, and pooled delivery latency. The
periodic `profile_stats` log (one line per profile every stats_interval_s, default 10 s) is left
on, as in production.
"""

from __future__ import annotations

import contextlib
import json
import signal
import time
from typing import Any

from benchmarks.harness import (
    Context,
    GroupResult,
    Table,
    Target,
    UsageMeter,
    cadence_error,
    config_document,
    median,
    stop_on_exit,
)
from realservices import start_tansu
from supervisor.config import Config


def run(ctx: Context) -> GroupResult:
    counts = (1, 10, 100) if ctx.quick else (1, 10, 100, 1000)
    duration_s = 6.0 if ctx.quick else 30.0
    result = GroupResult(
        "scale",
        method=f"CLI subprocess (benchmarks.probe), normal preset x N profiles, {duration_s:g} s "
        "window after startup; one Tansu for the group",
    )
    table = Table(
        f"Scale in profiles at the normal preset, {duration_s:g} s window",
        [
            "profiles",
            "CPU %",
            "RSS MB",
            "msg/s delivered",
            "cadence worst |err|",
            "beyond +-1",
            "lateness p50 ms",
            "p99 ms",
            "p99.9 ms",
            "max ms",
            "median profile p99 ms",
            "worst profile p99 ms",
            "whole-run p99 ms",
            "latency p99 ms (pooled)",
            "SIGTERM -> exit s",
        ],
    )
    rows: dict[int, dict[str, Any]] = {}
    with contextlib.ExitStack() as stack:
        broker = stop_on_exit(stack, start_tansu())
        for n in counts:
            ctx.log(f"scale: {n} profile(s)")
            rows[n] = _one(ctx, broker.bootstrap, n, duration_s)
            r = rows[n]
            table.add(
                n,
                r["cpu_pct"],
                r["rss_mb"],
                r["delivered_per_s"],
                r["cadence_worst_abs_error"],
                r["cadence_beyond_1"],
                r["pooled"]["tick_lateness_ms"]["p50"],
                r["pooled"]["tick_lateness_ms"]["p99"],
                r["pooled"]["tick_lateness_ms"]["p999"],
                r["pooled"]["tick_lateness_ms"]["max"],
                r["median_profile_lateness_p99_ms"],
                r["worst_profile_lateness_p99_ms"],
                r["pooled"]["tick_lateness_whole_run_ms"]["p99"],
                r["pooled"]["latency_ms"]["p99"],
                r["sigterm_to_exit_s"],
            )
    table.notes += [
        "tick lateness pooled over every tick of every profile in the measured window (steady "
        "state); whole-run p99 includes startup, when the first tick of each profile waits for "
        "the others to start",
        "lateness and latency quantiles are bucket upper bounds (10 buckets per decade)",
    ]
    result.tables.append(table)
    result.data = {"duration_s": duration_s, "runs": {str(n): r for n, r in rows.items()}}
    if 1000 in rows:
        pooled = rows[1000]["pooled"]
        p99 = pooled["tick_lateness_ms"]["p99"]
        whole = pooled["tick_lateness_whole_run_ms"]["p99"]
        worst = rows[1000]["worst_profile_lateness_p99_ms"]
        typical = rows[1000]["median_profile_lateness_p99_ms"]
        result.targets.append(
            Target(
                "tick lateness p99 at 1,000 profiles",
                "median over profiles of each one's p99 <= 20 ms",
                f"median profile p99 {typical:g} ms (steady-state pooled p99 {p99:g} ms, whole "
                f"run {whole:g} ms; worst single profile {worst:g} ms)",
                typical <= 20.0,
            )
        )
    else:
        result.targets.append(
            Target("tick lateness p99 at 1,000 profiles", "<= 20 ms", "not run (--quick)", None)
        )
    return result


def _one(ctx: Context, bootstrap: str, n: int, duration_s: float) -> dict[str, Any]:
    topic = ctx.new_topic(bootstrap, f"scale{n}")
    width = len(str(n - 1))
    profiles = {f"p{i:0{width}d}": {"preset": "normal", "seed": i} for i in range(n)}
    pooled_path = ctx.path(f"scale-{n}.pooled.json")
    cli = ctx.cli_run(
        f"scale-{n}",
        config_document(bootstrap=bootstrap, topic=topic, profiles=profiles),
        module_argv=("-m", "benchmarks.probe", str(pooled_path)),
    )
    config = Config.from_yaml(cli.config_path, env={})
    intervals = {name: p.interval_s for name, p in config.profiles.items()}
    with cli:
        cli.wait_for("profile_started", count=n, timeout_s=120)
        time.sleep(1.0)
        meter = UsageMeter(cli.pid)
        assert cli.process is not None
        cli.process.send_signal(signal.SIGUSR1)  # the probe: tick lateness from here on
        time.sleep(duration_s)  # the measured window
        usage = meter.read()
        stop_s = cli.terminate()
    summary = cli.summary()
    pooled = json.loads(pooled_path.read_text(encoding="utf-8"))
    # Up to the fleet's stop (benchmarks.probe); the summary's elapsed_s also counts each
    # profile's wake-up after it, up to ~0.1 s at 1,000 profiles.
    errors = list(pooled.get("cadence_errors", {}).values())
    if len(errors) != n:
        errors = [cadence_error(e, intervals[name])[1] for name, e in summary["profiles"].items()]
    lateness_p99 = [e["tick_lateness_ms"]["p99"] or 0.0 for e in summary["profiles"].values()]
    total = summary["total"]
    return {
        "cpu_pct": round(usage.cpu_pct, 3),
        "cpu_s": round(usage.cpu_s, 3),
        "window_s": round(usage.window_s, 2),
        "rss_mb": usage.rss_mb,
        "peak_rss_mb": usage.peak_rss_mb,
        "delivered": total["delivered"],
        "delivered_per_s": total["delivered"] / summary["elapsed_s"],
        "failed": total["failed"] + total["undelivered"],
        "behind_schedule": total["behind_schedule"],
        "cadence_worst_abs_error": round(max(abs(e) for e in errors), 2),
        "cadence_median_error": round(median(errors), 2),
        "cadence_beyond_1": sum(abs(e) > 1 for e in errors),
        "worst_profile_lateness_p99_ms": max(lateness_p99),
        "median_profile_lateness_p99_ms": median(lateness_p99),
        "pooled": pooled,
        "sigterm_to_exit_s": round(stop_s, 3),
        "exit_code": cli.returncode,
    }
