"""A profile configured for 100,000 msg/s: interval_s 0.01, batches of exactly 1,000.

CLI subprocess (`python -m supervisor run`) on its own Tansu broker (a high-volume run: the
broker's memory storage never frees). Achieved rate = produced / (elapsed_s + interval_s): N
batches cover N intervals, the last one starting at elapsed_s after the first. The delivered rate
and the CPU of the process over the window are reported beside it.
"""

from __future__ import annotations

import contextlib
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
    stop_on_exit,
)
from realservices import start_tansu

INTERVAL_S = 0.01
BATCH = 1000
TARGET_PER_S = BATCH / INTERVAL_S


def run(ctx: Context) -> GroupResult:
    duration_s = 8.0 if ctx.quick else 30.0
    result = GroupResult(
        "rate",
        method=f"CLI subprocess, one profile at {TARGET_PER_S:,.0f} msg/s for {duration_s:g} s; "
        "its own Tansu",
    )
    with contextlib.ExitStack() as stack:
        broker = stop_on_exit(stack, start_tansu())
        topic = ctx.new_topic(broker.bootstrap, "rate")
        profile = {"interval_s": INTERVAL_S, "min_records": BATCH, "max_records": BATCH, "seed": 1}
        document = config_document(
            bootstrap=broker.bootstrap, topic=topic, profiles={"fast": profile}
        )
        cli = stack.enter_context(ctx.cli_run("rate", document))
        cli.wait_for("profile_started")
        time.sleep(1.0)
        meter = UsageMeter(cli.pid)
        time.sleep(duration_s)  # the measured window
        usage = meter.read()
        stop_s = cli.terminate()
    entry = cli.summary()["profiles"]["fast"]
    elapsed = entry["elapsed_s"]
    achieved = entry["produced"] / (elapsed + INTERVAL_S)
    delivered = entry["delivered"] / (elapsed + INTERVAL_S)
    deviation = achieved / TARGET_PER_S - 1
    _, error = cadence_error(entry, INTERVAL_S)
    data: dict[str, Any] = {
        "target_per_s": TARGET_PER_S,
        "achieved_per_s": round(achieved, 1),
        "delivered_per_s": round(delivered, 1),
        "deviation": round(deviation, 5),
        "cadence_error": round(error, 2),
        "cpu_pct": round(usage.cpu_pct, 2),
        "rss_mb": usage.rss_mb,
        "sigterm_to_exit_s": round(stop_s, 3),
        "exit_code": cli.returncode,
        "summary": entry,
    }
    result.data = data
    table = Table(
        f"100,000 msg/s profile (interval 0.01 s x {BATCH:,} records), {elapsed:.1f} s",
        [
            "target msg/s",
            "achieved msg/s",
            "deviation %",
            "delivered msg/s",
            "behind schedule",
            "lateness p99 ms",
            "latency p50 ms",
            "latency p99 ms",
            "CPU %",
            "RSS MB",
        ],
    )
    table.add(
        TARGET_PER_S,
        achieved,
        100 * deviation,
        delivered,
        entry["behind_schedule"],
        entry["tick_lateness_ms"]["p99"],
        entry["latency_ms"]["p50"],
        entry["latency_ms"]["p99"],
        usage.cpu_pct,
        usage.rss_mb,
    )
    result.tables.append(table)
    result.targets.append(
        Target(
            "100k msg/s profile",
            "within 1% of target",
            f"{achieved:,.0f} msg/s ({100 * deviation:+.2f}%), delivered {delivered:,.0f}",
            abs(deviation) <= 0.01,
        )
    )
    return result
