"""Scale-out: 1 vs 2 shard processes of one saturating config, aggregate delivered msg/s.

One profile asks for far more than a process can send (batches of 1,000 every millisecond:
1,000,000 msg/s for the fleet, 500,000 for each of two shards), so every process runs flat out
(`keep` ids and timestamps: the fast path). Each round starts its own Tansu broker (its memory
storage never frees) and runs 1 or 2 shard processes side by side; rounds alternate 1, 2, 1, 2...
so that load from other jobs falls on both. A process's rate is delivered / elapsed_s from its
summary (first batch to stop); the fleet's is the sum of its processes'. The broker runs on the
same machine and takes its share of the cores.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from typing import Any

from benchmarks.harness import (
    Context,
    GroupResult,
    Table,
    UsageMeter,
    config_document,
    stop_on_exit,
)
from realservices import start_tansu

INTERVAL_S = 0.001
BATCH = 1000


def _round(ctx: Context, shards: int, window_s: float, label: str) -> dict[str, Any]:
    with contextlib.ExitStack() as stack:
        broker = stop_on_exit(stack, start_tansu())
        topic = ctx.new_topic(broker.bootstrap, label, partitions=6)
        profile = {"interval_s": INTERVAL_S, "min_records": BATCH, "max_records": BATCH, "seed": 1}
        runs = []
        for index in range(shards):
            document = config_document(
                bootstrap=broker.bootstrap, topic=topic, profiles={"flat-out": profile}
            )
            document["shard"] = {"index": index, "count": shards}
            runs.append(stack.enter_context(ctx.cli_run(f"{label}-{index}", document)))
        for run in runs:
            run.wait_for("profile_started")
        time.sleep(1.0)  # warm-up: connections, the first batches
        meters = [UsageMeter(run.pid) for run in runs]
        time.sleep(window_s)  # the measured window
        usage = [meter.read() for meter in meters]
        for run in runs:
            run.terminate()
    entries = [run.summary()["profiles"]["flat-out"] for run in runs]
    rates = [e["delivered"] / e["elapsed_s"] for e in entries]
    return {
        "shards": shards,
        "per_process_msg_s": [round(r) for r in rates],
        "fleet_msg_s": round(sum(rates)),
        "delivered": sum(e["delivered"] for e in entries),
        "failed": sum(e["failed"] + e["undelivered"] for e in entries),
        "cpu_percent": [round(u.cpu_pct, 1) for u in usage],
    }


def run(ctx: Context) -> GroupResult:
    window_s = 5.0 if ctx.quick else 10.0
    rounds = 1 if ctx.quick else 3
    result = GroupResult(
        "shards",
        method=f"1 vs 2 shard processes of one profile asking {BATCH / INTERVAL_S:,.0f} msg/s "
        f"(fast path), {window_s:g} s windows, {rounds} alternating rounds each, a Tansu broker "
        "per round on the same machine",
    )
    measured: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
    for k in range(rounds):
        for shards in (1, 2):
            ctx.log(f"shards: round {k + 1}, {shards} process(es)")
            measured[shards].append(_round(ctx, shards, window_s, f"shards{shards}-{k}"))
    table = Table(
        "Aggregate delivered msg/s at saturation",
        ["shard processes", "fleet msg/s (median)", "rounds", "per process", "CPU % per process"],
    )
    medians = {}
    for shards, rows in measured.items():
        medians[shards] = statistics.median(r["fleet_msg_s"] for r in rows)
        table.add(
            shards,
            medians[shards],
            ", ".join(f"{r['fleet_msg_s']:,}" for r in rows),
            "; ".join(", ".join(f"{x:,}" for x in r["per_process_msg_s"]) for r in rows),
            "; ".join(", ".join(str(c) for c in r["cpu_percent"]) for r in rows),
        )
    table.notes.append(f"2 processes / 1 process: {medians[2] / medians[1]:.2f}x")
    result.tables.append(table)
    result.data = {"rounds": measured, "median_fleet_msg_s": medians}
    return result
