"""The CLI plus two hooks: `python -m benchmarks.probe POOLED_JSON run --config ...`.

It runs `supervisor.cli.main` unchanged, with:
- `supervisor.app.build_summary` wrapped so that, when the run summary is built (once, at exit,
  after the delivery thread has stopped), the tick-lateness and delivery-latency histograms of all
  profiles are also merged and written to POOLED_JSON. The summary has per-profile quantiles only;
  with many profiles the pooled p99 is the figure wanted;
- SIGUSR1 starting the measured window: every profile's tick-lateness histogram is set aside and
  a fresh one started, so the summary and the pooled figures describe the steady state from then
  on (the set-aside ones are merged back into `tick_lateness_whole_run_ms`). The fleet is reached
  through a `Fleet` subclass that only remembers its instance and when its stop was set;
- each profile's cadence error, `batches - (elapsed / interval_s + 1)` with elapsed from its first
  batch to the fleet's stop (not to the profile's own `stopped_at`, which with 1,000 profiles
  comes up to ~0.1 s after the stop, as the profiles wake one after another: time that has no
  deadline in it, and which the summary's `elapsed_s` counts).
Nothing is added to the per-message or per-tick path.
"""

from __future__ import annotations

import asyncio
import json
import math
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any
from unittest import mock

import supervisor.app
from supervisor import cli
from supervisor.fleet import Fleet
from supervisor.telemetry.stats import Histogram, ProfileStats
from supervisor.telemetry.summary import RunSummary


def pooled(histograms: list[Histogram]) -> dict[str, float | int | None]:
    """p50/p99/p999/max in ms of the union of `histograms` (same buckets as Histogram)."""
    count = sum(h.count for h in histograms)
    if not count:
        return {"count": 0, "p50": None, "p99": None, "p999": None, "max": None}
    high = max(h.max for h in histograms)
    bounds = [bound for bound, _ in histograms[0].buckets()]
    cumulative = [0] * len(bounds)
    for h in histograms:
        for i, (_, seen) in enumerate(h.buckets()):
            cumulative[i] += seen

    def quantile(q: float) -> float:
        rank = max(1, math.ceil(q * count))
        i = next(i for i, seen in enumerate(cumulative) if seen >= rank)
        return round(min(bounds[i], high) * 1000, 3)

    return {
        "count": count,
        "p50": quantile(0.5),
        "p99": quantile(0.99),
        "p999": quantile(0.999),
        "max": round(high * 1000, 3),
    }


def main() -> int:
    out = Path(sys.argv[1])
    fleets: list[Fleet] = []
    set_aside: list[Histogram] = []
    stopped: list[float] = []

    class RememberedFleet(Fleet):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            fleets.append(self)

        async def run(self, stop: asyncio.Event, budget: Any = None) -> None:
            async def mark() -> None:
                await stop.wait()
                stopped.append(time.monotonic())

            marker = asyncio.get_running_loop().create_task(mark())
            try:
                await super().run(stop, budget)
            finally:
                marker.cancel()

    def start_window(_signum: int, _frame: FrameType | None) -> None:
        for fleet in fleets:
            for stats in fleet.stats.values():
                set_aside.append(stats.lateness)
                stats.lateness = Histogram()

    build_summary = RunSummary.of

    def summary_and_pool(profiles: list[ProfileStats], **kwargs: Any) -> RunSummary:
        document = build_summary(profiles, **kwargs)
        lateness = [p.lateness for p in profiles]
        figures = {
            "tick_lateness_ms": pooled(lateness),
            "tick_lateness_whole_run_ms": pooled(lateness + set_aside),
            "latency_ms": pooled([p.latency for p in profiles]),
            "window_reset": bool(set_aside),
            "cadence_errors": cadence_errors(profiles),
        }
        out.write_text(json.dumps(figures), encoding="utf-8")
        return document

    def cadence_errors(profiles: list[ProfileStats]) -> dict[str, float]:
        if not fleets or not stopped:
            return {}
        config, stop_at = fleets[0].config, min(stopped)
        out = {}
        for stats in profiles:
            settings = config.profiles.get(stats.name)
            if settings is None or stats.first_batch_at is None:
                continue
            end = min(stop_at, stats.stopped_at or stop_at)
            expected = (end - stats.first_batch_at) / settings.interval_s + 1
            out[stats.name] = round(stats.batches - expected, 3)
        return out

    signal.signal(signal.SIGUSR1, start_window)
    with (
        mock.patch.object(supervisor.app, "Fleet", RememberedFleet),
        mock.patch.object(RunSummary, "of", summary_and_pool),
    ):
        return cli.main(sys.argv[2:])


if __name__ == "__main__":
    raise SystemExit(main())
