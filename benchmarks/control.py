"""`python -m benchmarks.control OUT_JSON INTERVAL_S [...]`: the machine's own timer lateness.

A control for the tick-lateness figures: a bare uvloop process that does nothing but wake on
absolute deadlines (one task per interval, the same `asyncio.timeout` + `Event.wait` sleep as
`supervisor.profile.pacing.sleep_or_stop`) and records how late each wake-up was in the same
bucketed `supervisor.telemetry.stats.Histogram`. No Kafka, no dataset, no logging. Run beside the
supervisor under test, it shows how much of a late tick the machine (scheduler, other tenants,
VM wake-up) accounts for. Stops on SIGTERM and writes p50/p99/max per interval to OUT_JSON.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from pathlib import Path

import uvloop

from supervisor.telemetry.stats import Histogram


async def _pace(interval_s: float, histogram: Histogram, stop: asyncio.Event) -> None:
    next_at = time.monotonic()
    while not stop.is_set():
        delay = next_at - time.monotonic()
        if delay > 0:
            try:
                async with asyncio.timeout(delay):
                    await stop.wait()
                return
            except TimeoutError:
                pass
        histogram.observe(max(0.0, time.monotonic() - next_at))
        next_at += interval_s


async def _run(intervals: list[float]) -> dict[float, Histogram]:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    histograms = {interval: Histogram() for interval in intervals}
    async with asyncio.TaskGroup() as tg:
        for interval, histogram in histograms.items():
            tg.create_task(_pace(interval, histogram, stop))
    return histograms


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 3)


def main() -> int:
    out, intervals = Path(sys.argv[1]), [float(arg) for arg in sys.argv[2:]]
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        histograms = runner.run(_run(intervals))
    figures = {
        str(interval): {
            "ticks": h.count,
            "p50": _ms(h.quantile(0.5)),
            "p99": _ms(h.quantile(0.99)),
            "max": _ms(h.max),
        }
        for interval, h in histograms.items()
    }
    out.write_text(json.dumps(figures), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
