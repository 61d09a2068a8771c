"""Soak: the seed's three presets for 10 minutes on a real broker; RSS at start and at end.

    .venv/bin/python -m benchmarks.soak [--minutes 10]

Runs the CLI as a subprocess (the real run path, its own process so RSS is its own) against a
Tansu broker on loopback, samples the process's resident set size every 5 s from /proc, stops it
with SIGTERM and checks the summary's accounting. "Start" is the first sample after a 30 s warm-up
(imports, dataset load, librdkafka's buffers and the first histogram buckets are all in by then);
the figure of merit is growth from there to the end (target: under 5%). Writes
benchmarks/results/soak.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from realservices import create_topic, start_tansu

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
WARMUP_S = 30.0
SAMPLE_EVERY_S = 5.0


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    args = parser.parse_args()
    duration_s = args.minutes * 60

    broker = start_tansu()
    try:
        topic = "soak"
        create_topic(broker.bootstrap, topic, partitions=3)
        with tempfile.TemporaryDirectory() as tmp:
            cfg = Path(tmp) / "config.yaml"
            cfg.write_text(
                f"kafka: {{bootstrap_servers: '{broker.bootstrap}', topic: {topic}}}\n"
                f"dataset: {{uri: '{ROOT / 'data' / 'transactions.csv'}'}}\n"
                "stats_interval_s: 60\n"
                "profiles:\n  high: {preset: high}\n  normal: {preset: normal}\n"
                "  low: {preset: low}\n"
            )
            summary_path = Path(tmp) / "summary.json"
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "supervisor",
                    "run",
                    "--config",
                    str(cfg),
                    "--summary",
                    str(summary_path),
                    "--log-format",
                    "json",
                ],
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                started = time.monotonic()
                samples: list[tuple[float, int]] = []
                while (elapsed := time.monotonic() - started) < duration_s:
                    if proc.poll() is not None:
                        raise RuntimeError(f"the supervisor exited early ({proc.returncode})")
                    samples.append((round(elapsed, 1), rss_bytes(proc.pid)))
                    time.sleep(SAMPLE_EVERY_S)  # sampling period of a measurement, not a sync
                samples.append((round(time.monotonic() - started, 1), rss_bytes(proc.pid)))
                proc.send_signal(signal.SIGTERM)
                code = proc.wait(timeout=60)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            summary = json.loads(summary_path.read_text())
    finally:
        broker.stop()

    after_warmup = [s for s in samples if s[0] >= WARMUP_S]
    start_rss, end_rss = after_warmup[0][1], samples[-1][1]
    peak_rss = max(rss for _, rss in after_warmup)
    growth = (end_rss - start_rss) / start_rss * 100
    total = summary["total"]
    result: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "duration_s": duration_s,
        "exit_code": code,
        "rss_mb": {
            "start_after_warmup": round(start_rss / 2**20, 1),
            "end": round(end_rss / 2**20, 1),
            "peak": round(peak_rss / 2**20, 1),
        },
        "rss_growth_pct": round(growth, 2),
        "target": "rss growth < 5%",
        "met": growth < 5.0,
        "delivered": total["delivered"],
        "produced": total["produced"],
        "accounting_exact": total["produced"] == total["delivered"] and total["in_flight"] == 0,
        "samples": [(t, round(r / 2**20, 2)) for t, r in samples],
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "soak.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"soak {args.minutes:g} min, presets high/normal/low, exit {code}")
    print(f"  RSS after {WARMUP_S:.0f} s warm-up: {result['rss_mb']['start_after_warmup']} MB")
    print(f"  RSS at end:                 {result['rss_mb']['end']} MB")
    print(f"  RSS peak:                   {result['rss_mb']['peak']} MB")
    verdict = "met" if result["met"] else "NOT met"
    print(f"  growth:                     {growth:+.2f}% (target < 5%: {verdict})")
    print(f"  delivered {total['delivered']:,} of {total['produced']:,} produced")


if __name__ == "__main__":
    main()
