"""`python -m benchmarks` (`make bench`): the whole benchmark suite against real local servers.

Groups (`--only NAME`, repeatable or comma-separated; `--list` shows them):
  throughput       the run path (fast and stream paths) vs produce()+poll(0) and kcat, msg/s
  presets          cadence, tick lateness, delivery latency, CPU/RSS, SIGTERM->exit at the presets
  rate             one profile configured for 100,000 msg/s: achieved vs target
  schedule         burst, compressed diurnal day and ramp schedules: ticks per window vs integral
  scale            1, 10, 100, 1,000 profiles at the normal preset
  dataset          load + validate of 10k and 1M rows from S3; start to first message
  producer_choice  AIOProducer vs the sync Producer (benchmarks/producer_choice.py)
  evaluation       throughput with `evaluation:` on vs off, and its memory per event sent
  shards           1 vs 2 shard processes of one config at saturation, aggregate msg/s

Every group starts its own Tansu broker (and moto S3 server) on loopback and stops them by PID.
Prints one table per measurement and the targets met / not met, and writes
benchmarks/results/latest.json (or --out) with the machine's description, and beside it the
charts of `benchmarks.charts` (latest-throughput.png, -timing.png, -latency.png). `--quick` is a ~2
minute smoke run with shorter windows and smaller volumes: its figures are not the reference ones.
Timings are measurements, never assertions.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import (
    charts,
    dataset,
    evaluation,
    presets,
    producer_choice,
    rate,
    scale,
    schedule,
    shards,
    throughput,
)
from benchmarks.harness import (
    RESULTS_DIR,
    ROOT,
    Context,
    GroupResult,
    Table,
    load_average,
    machine,
)

GROUPS: dict[str, Callable[[Context], GroupResult]] = {
    "throughput": throughput.run,
    "presets": presets.run,
    "rate": rate.run,
    "schedule": schedule.run,
    "scale": scale.run,
    "dataset": dataset.run,
    "producer_choice": producer_choice.run,
    "evaluation": evaluation.run,
    "shards": shards.run,
}
ALIASES: dict[str, tuple[str, ...]] = {
    "cadence": ("presets", "rate", "schedule"),
    "latency": ("presets",),
    "overhead": ("presets",),
    "shutdown": ("presets",),
    "first_message": ("dataset",),
}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmark suite of streaming-producer against a real broker (Tansu) and S3.",
    )
    parser.add_argument("--quick", action="store_true", help="smoke run, about 2 minutes")
    parser.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help=f"run only these groups ({', '.join([*GROUPS, *ALIASES])}); repeatable",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=RESULTS_DIR / "latest.json",
        help="results file (default benchmarks/results/latest.json)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the work directory (configs, logs, summaries)"
    )
    parser.add_argument("--list", action="store_true", help="list the groups and exit")
    return parser.parse_args(argv)


def selected(only: list[str] | None) -> list[str]:
    if not only:
        return list(GROUPS)
    wanted: set[str] = set()
    for item in only:
        for name in filter(None, (n.strip() for n in item.split(","))):
            if name in GROUPS:
                wanted.add(name)
            elif name in ALIASES:
                wanted.update(ALIASES[name])
            else:
                raise SystemExit(f"unknown group {name!r}: choose from {', '.join(GROUPS)}")
    return [name for name in GROUPS if name in wanted]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list:
        print(__doc__.split("\n\n")[1] if __doc__ else "")
        return 0
    names = selected(args.only)
    started = time.monotonic()

    def log(message: str) -> None:
        print(f"[{time.monotonic() - started:7.1f}s] {message}", file=sys.stderr, flush=True)

    work_dir = Path(tempfile.mkdtemp(prefix="streaming-producer-bench-"))
    # In-process runs (throughput) log through structlog: into a file, not over the tables.
    from supervisor.telemetry import logs

    in_process_log = (work_dir / "in-process.log").open("w", encoding="utf-8")
    logs.configure(fmt="json", level="info", stream=in_process_log)
    ctx = Context(quick=args.quick, work_dir=work_dir, log=log)
    document: dict[str, Any] = {
        "meta": {
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
            "mode": "quick" if args.quick else "full",
            "groups": names,
            "machine": machine(),
            "git": git_state(),
            "load_average_at_start": load_average(),
        },
        "groups": {},
    }
    results: list[GroupResult] = []
    failures = 0
    try:
        for name in names:
            log(f"group {name}: start (load average {load_average()[0]:.2f})")
            t0 = time.monotonic()
            try:
                result = GROUPS[name](ctx)
            except Exception as exc:  # noqa: BLE001 - one failed group must not lose the others
                failures += 1
                log(f"group {name}: FAILED {type(exc).__name__}: {exc}")
                document["groups"][name] = {
                    "error": f"{type(exc).__name__}: {exc}",
                    "traceback": traceback.format_exc(),
                }
                continue
            result.seconds = time.monotonic() - t0
            results.append(result)
            document["groups"][name] = result.as_json() | {"load_average_after": load_average()}
            log(f"group {name}: done in {result.seconds:.0f} s")
    finally:
        in_process_log.close()
        if args.keep:
            log(f"work directory kept: {work_dir}")
        else:
            shutil.rmtree(work_dir, ignore_errors=True)

    document["meta"]["total_s"] = round(time.monotonic() - started, 1)
    document["meta"]["load_average_at_end"] = load_average()
    print_report(document, results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text(json.dumps(document, indent=2, default=str) + "\n", encoding="utf-8")
    tmp.replace(args.out)
    log(f"wrote {args.out}")
    for chart in charts.write_charts(document, args.out):
        log(f"wrote {chart}")
    return 1 if failures else 0


def git_state() -> dict[str, Any]:
    """The commit measured, and whether the working tree had changes on top of it."""

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=False
        )
        return done.stdout.strip() if done.returncode == 0 else ""

    return {"commit": git("rev-parse", "HEAD") or None, "dirty": bool(git("status", "--porcelain"))}


def print_report(document: dict[str, Any], results: list[GroupResult]) -> None:
    meta = document["meta"]
    m = meta["machine"]
    print(
        f"## streaming-producer benchmarks ({meta['mode']}, {meta['started']}, "
        f"{meta['total_s']:.0f} s)\n\n"
        f"{m['cpu_model']}, {m['cpus']} CPUs, {m['ram_mb']:,} MB RAM, {m['os']}; {m['python']}, "
        f"confluent-kafka {m['confluent_kafka']} (librdkafka {m['librdkafka']}), "
        f"uvloop {m['uvloop']}; {m['broker']}; commit {str(meta['git']['commit'])[:10]}"
        f"{' + local changes' if meta['git']['dirty'] else ''}; load average at start "
        f"{meta['load_average_at_start'][0]:.2f}, at end {meta['load_average_at_end'][0]:.2f}\n"
    )
    for result in results:
        print(f"## {result.name} ({result.seconds:.0f} s): {result.method}\n")
        for table in result.tables:
            print(table.render() + "\n")
        for note in result.notes:
            print(f"- {note}")
    for name, group in document["groups"].items():
        if "error" in group:
            print(f"## {name}: FAILED\n\n```\n{group['traceback']}```\n")
    targets = Table("Targets", ["group", "target", "goal", "figure", "verdict"])
    for result in results:
        for t in result.targets:
            targets.add(result.name, t.name, t.goal, t.figure, t.verdict)
    print(targets.render())


if __name__ == "__main__":
    raise SystemExit(main())
