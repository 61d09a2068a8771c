"""Cadence under rate schedules: a burst, a compressed diurnal day and a ramp, window by window.

In-process, as the throughput group runs the real path: one `Config` with four profiles, each on
its own 3-partition topic, goes to `supervisor.app.serve()` inside
`asyncio.Runner(loop_factory=uvloop.new_event_loop)` against a fresh Tansu. Every profile sends
exactly `RECORDS` records per tick (min_records == max_records) every `INTERVAL_S` at factor 1
(100 msg/s), `id: fresh`, `timestamp: now`, as the shipped burst and diurnal presets run:

- burst:        5x for 2 s every 10 s, the first burst at 10 s (the default offset);
- burst-stream: the same through the stream path (`timestamp: shift`, which adds or drops no
                message): the loop that merges ticks with a profile's timed messages;
- diurnal:      the default retail day compressed to `DAY_S` seconds, from 00:00
                (`start_hour: 0`);
- ramp:         from 0 (silence) to 5x over 40 s, then 5x.

The run lasts `duration_s` of each profile's own run time and is cut into `WINDOW_S` windows (one
compressed hour of the day; bursts fall on window edges). Expected ticks in a window [a, b) are
the integral of the schedule's factor over it divided by `INTERVAL_S`, computed here from the
schedule's definition (piecewise linear, exact trapezoids), not with
`supervisor.profile.schedule`; the product's own `RateCurve.integral` is checked against it and
the largest difference recorded.

Observed on each profile's run clock (seconds since its `Pacer` started):
- ticks due: the pacer's deadlines, its plan, free of event-loop lateness;
- ticks run: the fleet's monotonic clock when each tick starts, the moment its records go to
  `produce()` (`ProfileRunner._tick`, patched for the run, appends
  (deadline, now) to a list: one append per tick, nothing per message);
- records in Kafka: every record read back after the run, bucketed by its Kafka timestamp
  (CreateTime, stamped by librdkafka at `produce()`, millisecond resolution, taken as the middle of
  its millisecond), mapped onto the run clock with `time.time() - time.monotonic()` sampled in the
  same process. What a consumer counting records per window by timestamp sees.

A window's error is (observed - expected) in ticks. Ticks due fall within +-1 of the integral by
construction; lateness can carry a tick due just before an edge into the next window, so the
verdict allows, on top of +-1, one tick per tick carried across an edge by at most
`LATENESS_ALLOWANCE_S` (the suite's lateness target at 1,000 profiles, a fifth of a tick at 1x).
At 1x every deadline (0.1 s apart) falls on a 2 s edge, and which side of it a tick lands on is
the float rounding of the summed deadlines or a fraction of a millisecond of lateness: hence
errors of exactly +-1.00 in flat windows.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import math
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from unittest import mock

import uvloop

from benchmarks.harness import (
    SEED_DATASET,
    Context,
    GroupResult,
    Table,
    Target,
    median,
    percentile,
    serve_watched,
)
from realservices import consume_all, start_tansu
from supervisor.config import DIURNAL_CURVE, Config
from supervisor.dataset import Dataset
from supervisor.fleet import Fleet
from supervisor.profile.pacing import Pacer
from supervisor.profile.runner import ProfileRunner
from supervisor.profile.schedule import curve_for

INTERVAL_S = 0.1
RECORDS = 10
WINDOW_S = 2.0
DAY_S = 48.0
"""A compressed day: 2 s an hour, one `WINDOW_S` window per hour."""
LATENESS_ALLOWANCE_S = 0.020

BURST: dict[str, Any] = {"kind": "burst", "every_s": 10.0, "duration_s": 2.0, "factor": 5.0}
DIURNAL: dict[str, Any] = {"kind": "diurnal", "day_length_s": DAY_S, "start_hour": 0}
RAMP: dict[str, Any] = {"kind": "ramp", "from": 0.0, "to": 5.0, "duration_s": 40.0}
PROFILES: dict[str, dict[str, Any]] = {
    "burst": {"schedule": BURST},
    # The same burst through the stream path (ProfileStream, `ProfileRunner._run_stream`):
    # `timestamp: shift` shapes event time without adding or dropping a message, so the counts
    # stay exact.
    "burst-stream": {"schedule": BURST, "timestamp": "shift"},
    "diurnal": {"schedule": DIURNAL},
    "ramp": {"schedule": RAMP},
}


# --------------------------------------------------------------------------------------------
# The expected work: the schedule's factor integrated from its definition
# --------------------------------------------------------------------------------------------


def factor_points(schedule: Mapping[str, Any], horizon: float) -> list[tuple[float, float]]:
    """The factor over run times [0, horizon] as (t, factor) points joined by straight lines; a
    step is two points at the same t. Written from the config's documented meaning of each kind,
    independently of `supervisor.profile.schedule`."""
    kind = schedule["kind"]
    if kind == "burst":
        every, duration, factor = schedule["every_s"], schedule["duration_s"], schedule["factor"]
        first = schedule.get("offset_s", every)
        points = [(0.0, 1.0)]
        start = first
        while start < horizon:
            points += [(start, 1.0), (start, factor), (start + duration, factor)]
            points.append((start + duration, 1.0))
            start += every
        return [*points, (max(horizon, points[-1][0]), 1.0)]
    if kind == "diurnal":
        length = schedule["day_length_s"]
        curve = schedule.get("curve", DIURNAL_CURVE)
        hour_s = length / 24
        shift = schedule["start_hour"] * hour_s  # run time 0 is this far into the day
        points = []
        k = math.floor(shift / hour_s)
        while True:  # every hour mark from the one at or before run time 0 past the horizon
            t = k * hour_s - shift
            points.append((t, curve[k % 24]))
            if t > horizon:
                return points
            k += 1
    if kind == "ramp":
        start, end, duration = schedule["from"], schedule["to"], schedule["duration_s"]
        return [(0.0, start), (duration, end), (max(horizon, duration) + 1, end)]
    raise ValueError(f"no expected curve for schedule kind {kind!r}")


def integral(points: Sequence[tuple[float, float]], a: float, b: float) -> float:
    """The integral over [a, b] of the piecewise-linear function through `points`."""
    total = 0.0
    for (t0, f0), (t1, f1) in itertools.pairwise(points):
        lo, hi = max(a, t0), min(b, t1)
        if hi <= lo:
            continue
        slope = (f1 - f0) / (t1 - t0)
        total += (f0 + slope * (lo - t0) + f0 + slope * (hi - t0)) / 2 * (hi - lo)
    return total


# --------------------------------------------------------------------------------------------
# The run: serve() in-process, ticks recorded
# --------------------------------------------------------------------------------------------


def run_profiles(bootstrap: str, topics: Mapping[str, str], duration_s: float) -> dict[str, Any]:
    profiles = {
        name: {
            "interval_s": INTERVAL_S,
            "min_records": RECORDS,
            "max_records": RECORDS,
            "seed": i + 1,
            "id": "fresh",
            "timestamp": "now",
            "topic": topics[name],
            **settings,
        }
        for i, (name, settings) in enumerate(PROFILES.items())
    }
    config = Config.model_validate(
        {
            "kafka": {"bootstrap_servers": bootstrap, "topic": next(iter(topics.values()))},
            "dataset": {"uri": str(SEED_DATASET)},
            "profiles": profiles,
            "shutdown_timeout_s": 30,
        }
    ).with_source("benchmarks.schedule")
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(_drive(config, duration_s))


def wall_minus_monotonic() -> float:
    """`time.time() - time.monotonic()`, from the tightest of a few paired reads."""
    best = (math.inf, 0.0)
    for _ in range(20):
        m0 = time.monotonic()
        wall = time.time()
        m1 = time.monotonic()
        best = min(best, (m1 - m0, wall - (m0 + m1) / 2))
    return best[1]


async def _drive(config: Config, duration_s: float) -> dict[str, Any]:
    fleets: list[TickRecordingFleet] = []

    class TickRecordingFleet(Fleet):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.ticks: dict[str, list[tuple[float, float]]] = {}
            """Per profile: (deadline, started) of every tick, as run time."""
            self.starts: dict[str, float] = {}
            fleets.append(self)

    real_tick = ProfileRunner._tick

    def recording_tick(runner: ProfileRunner, pacer: Pacer) -> Dataset | None:
        fleet = fleets[0]
        name = runner.stats.name
        ticks = fleet.ticks.get(name)
        if ticks is None:
            ticks = fleet.ticks[name] = []
            fleet.starts[name] = pacer.start
        ticks.append((pacer.due_s, fleet.clock() - pacer.start))
        return real_tick(runner, pacer)

    async def watch(serving: asyncio.Future[Any]) -> None:
        # Every profile has ticked once (a ramp from 0 only after its first interval's work):
        # then run until the last one to start has covered `duration_s` of its run time.
        while not serving.done():
            if fleets and len(fleets[0].starts) == len(config.profiles):
                end = max(fleets[0].starts.values()) + duration_s + 0.25
                await asyncio.wait({serving}, timeout=max(0.0, end - time.monotonic()))
                return
            await asyncio.wait({serving}, timeout=0.01)

    offset_before = wall_minus_monotonic()
    with mock.patch.object(ProfileRunner, "_tick", recording_tick):
        code, summary = await serve_watched(config, TickRecordingFleet, watch)
    offset_after = wall_minus_monotonic()
    if summary is None or not fleets:
        raise RuntimeError(f"the run produced nothing (exit code {code})")
    fleet = fleets[0]
    return {
        "exit_code": int(code),
        "summary": summary,
        "ticks": fleet.ticks,
        "starts_wall": {name: start + offset_before for name, start in fleet.starts.items()},
        "clock_offset_drift_ms": round(1000 * (offset_after - offset_before), 3),
    }


# --------------------------------------------------------------------------------------------
# Windows
# --------------------------------------------------------------------------------------------


def count_in(times: Sequence[float], a: float, b: float) -> int:
    """How many of the sorted `times` fall in [a, b)."""
    return bisect.bisect_left(times, b) - bisect.bisect_left(times, a)


def analyse(
    name: str,
    ticks: Sequence[tuple[float, float]],
    record_times: Sequence[float],
    duration_s: float,
) -> dict[str, Any]:
    """Per-window expected vs observed ticks of one profile, and its worst errors."""
    schedule = PROFILES[name]["schedule"]
    edges = [WINDOW_S * k for k in range(int(duration_s / WINDOW_S + 1e-9) + 1)]
    horizon = edges[-1]
    points = factor_points(schedule, horizon)
    due = sorted(d for d, _ in ticks)
    run = sorted(r for _, r in ticks)
    records = sorted(record_times)
    # Ticks carried across an edge: due on one side of it, started on the other (late, or up to
    # a millisecond early: uvloop's timers count whole milliseconds).
    carried = [
        (bisect.bisect_right(edges, d) - 1, bisect.bisect_right(edges, r) - 1, r - d)
        for d, r in ticks
        if d < horizon and bisect.bisect_right(edges, d) != bisect.bisect_right(edges, r)
    ]
    windows: list[dict[str, Any]] = []
    for i, (a, b) in enumerate(itertools.pairwise(edges)):
        expected = integral(points, a, b) / INTERVAL_S
        excused = sum(
            1
            for w_due, w_run, late in carried
            if (w_due == i or w_run == i) and abs(late) <= LATENESS_ALLOWANCE_S
        )
        n_due, n_run = count_in(due, a, b), count_in(run, a, b)
        n_records = count_in(records, a, b)
        windows.append(
            {
                "from_s": a,
                "to_s": b,
                "mean_factor": round(expected * INTERVAL_S / (b - a), 4),
                "expected_ticks": round(expected, 3),
                "due_ticks": n_due,
                "run_ticks": n_run,
                "records": n_records,
                "due_error": round(n_due - expected, 3),
                "run_error": round(n_run - expected, 3),
                "records_error": round(n_records / RECORDS - expected, 3),
                "carried_in_or_out": excused,
                "within_target": abs(n_run - expected) <= 1 + excused,
            }
        )
    expected_total = integral(points, 0.0, horizon) / INTERVAL_S
    run_total = count_in(run, 0.0, horizon)
    lateness_ms = [1000 * (r - d) for d, r in ticks if d < horizon]
    product_curve = curve_for(_schedule_model(schedule), wall_start=datetime.now(UTC))
    disagreement = max(
        abs(product_curve.integral(a, b) - integral(points, a, b))
        for a, b in itertools.pairwise(edges)
    )
    return {
        "schedule": schedule,
        "windows": windows,
        "expected_ticks": round(expected_total, 3),
        "run_ticks": run_total,
        "due_ticks": count_in(due, 0.0, horizon),
        "records": count_in(records, 0.0, horizon),
        "total_error": round(run_total - expected_total, 3),
        "ratio": run_total / expected_total if expected_total else float("nan"),
        "records_ratio": count_in(records, 0.0, horizon) / RECORDS / expected_total,
        "worst_due_error": max(abs(w["due_error"]) for w in windows),
        "worst_run_error": max(abs(w["run_error"]) for w in windows),
        "worst_records_error": max(abs(w["records_error"]) for w in windows),
        "windows_outside_1": sum(abs(w["run_error"]) > 1 for w in windows),
        "windows_missed": sum(not w["within_target"] for w in windows),
        "ticks_carried_across_edges": len(carried),
        "lateness_ms": {
            "min": round(min(lateness_ms, default=float("nan")), 3),
            "p50": round(median(lateness_ms), 3),
            "p99": round(percentile(lateness_ms, 99), 3),
            "max": round(max(lateness_ms, default=float("nan")), 3),
        },
        "product_integral_disagreement": disagreement,
    }


def _schedule_model(schedule: Mapping[str, Any]) -> Any:
    """The config model of `schedule`, as a profile would hold it."""
    profile = {"interval_s": 1, "min_records": 1, "max_records": 1, "schedule": dict(schedule)}
    return Config.model_validate({"profiles": {"p": profile}}).profiles["p"].schedule


# --------------------------------------------------------------------------------------------
# Group
# --------------------------------------------------------------------------------------------


def run(ctx: Context) -> GroupResult:
    duration_s = 16.0 if ctx.quick else DAY_S
    result = GroupResult(
        "schedule",
        method=f"in-process serve() under uvloop, four scheduled profiles at once for "
        f"{duration_s:g} s of run time, {WINDOW_S:g} s windows; ticks recorded by the fleet, "
        "records read back from Tansu",
    )
    broker = start_tansu()
    try:
        topics = {name: ctx.new_topic(broker.bootstrap, f"schedule-{name}") for name in PROFILES}
        ctx.log(f"schedule: running {', '.join(PROFILES)} for {duration_s:g} s")
        got = run_profiles(broker.bootstrap, topics, duration_s)
        consumed = {
            name: consume_all(broker.bootstrap, topic, timeout_s=60)
            for name, topic in topics.items()
        }
    finally:
        broker.stop()

    analysis: dict[str, dict[str, Any]] = {}
    for name in PROFILES:
        start_wall = got["starts_wall"][name]
        # CreateTime is whole milliseconds: the record was stamped somewhere in that millisecond.
        times = [(r.timestamp_ms + 0.5) / 1000 - start_wall for r in consumed[name]]
        entry = got["summary"]["profiles"][name]
        analysis[name] = analyse(name, got["ticks"][name], times, duration_s) | {
            "consumed": len(consumed[name]),
            "produced": entry["produced"],
            "delivered": entry["delivered"],
            "behind_schedule": entry["behind_schedule"],
            "batches": entry["batches"],
        }
    result.data = {
        "duration_s": duration_s,
        "window_s": WINDOW_S,
        "interval_s": INTERVAL_S,
        "records_per_tick": RECORDS,
        "lateness_allowance_s": LATENESS_ALLOWANCE_S,
        "clock_offset_drift_ms": got["clock_offset_drift_ms"],
        "exit_code": got["exit_code"],
        "profiles": analysis,
    }

    names = list(PROFILES)
    windows = {n: analysis[n]["windows"] for n in names}
    per_window = Table(
        f"Ticks per {WINDOW_S:g} s window of run time: expected (the schedule's integral / "
        f"interval) -> run (ticks started), (error in ticks); {RECORDS} records a tick, "
        f"{RECORDS / INTERVAL_S:g} msg/s at 1x",
        ["window s", "burst x", *names[:2], "diurnal x", names[2], "ramp x", names[3]],
    )

    def cell(n: str, i: int) -> str:
        w = windows[n][i]
        flag = "" if w["within_target"] else " !"
        return f"{w['expected_ticks']:g} -> {w['run_ticks']} ({w['run_error']:+.2f}){flag}"

    for i in range(len(windows[names[0]])):
        w0 = windows[names[0]][i]
        per_window.add(
            f"{w0['from_s']:g}-{w0['to_s']:g}",
            w0["mean_factor"],
            cell(names[0], i),
            cell(names[1], i),
            windows[names[2]][i]["mean_factor"],
            cell(names[2], i),
            windows[names[3]][i]["mean_factor"],
            cell(names[3], i),
        )
    per_window.notes.append(
        "x: the schedule's mean factor over the window; ! marks a window outside +-1 tick even "
        f"after excusing ticks carried across an edge by <= {1000 * LATENESS_ALLOWANCE_S:g} ms "
        "of lateness (or earliness)"
    )
    summary = Table(
        f"Cadence under a schedule: {duration_s:g} s, {len(windows[names[0]])} windows of "
        f"{WINDOW_S:g} s; worst |error| per window in ticks, by observation point",
        [
            "schedule",
            "expected ticks",
            "ticks run",
            "total error",
            "ratio",
            "worst: due",
            "run",
            "records in Kafka",
            "windows > +-1",
            "carried across an edge",
            "start - deadline: min ms",
            "p50 ms",
            "p99 ms",
            "max ms",
            "consumed / produced",
        ],
    )
    for n in names:
        a = analysis[n]
        summary.add(
            f"{n} ({_describe(n)})",
            a["expected_ticks"],
            a["run_ticks"],
            f"{a['total_error']:+.2f}",
            a["ratio"],
            a["worst_due_error"],
            a["worst_run_error"],
            a["worst_records_error"],
            a["windows_outside_1"],
            a["ticks_carried_across_edges"],
            a["lateness_ms"]["min"],
            a["lateness_ms"]["p50"],
            a["lateness_ms"]["p99"],
            a["lateness_ms"]["max"],
            f"{a['consumed']:,} / {a['produced']:,}",
        )
    summary.notes += [
        "due: the pacer's deadlines (its plan, no event loop involved); run: when each tick "
        "started, i.e. called produce(); records in Kafka: records read back, by CreateTime",
        "total error / ratio: ticks run over the whole run - / over the integral over it (a tick "
        "due at 0 s makes +1 of it)",
        "start - deadline: exact, not bucketed; negative when uvloop's whole-millisecond timers "
        "woke the profile before its deadline (the pacer counts that as lateness 0)",
        f"largest |RateCurve.integral - this benchmark's integral| over a window: "
        f"{max(a['product_integral_disagreement'] for a in analysis.values()):.2e} work-seconds",
    ]
    result.tables += [summary, per_window]
    for n in names:
        a = analysis[n]
        result.targets.append(
            Target(
                f"cadence under a schedule: {n}",
                "every window within +-1 tick of the integral (+ lateness)",
                f"worst {a['worst_run_error']:.2f} ticks run, {a['worst_records_error']:.2f} "
                f"in Kafka; {a['windows_missed']} of {len(a['windows'])} windows out; "
                f"ratio {a['ratio']:.4f}",
                a["windows_missed"] == 0 and a["consumed"] == a["produced"],
            )
        )
    return result


def _describe(name: str) -> str:
    schedule = PROFILES[name]["schedule"]
    if name == "burst-stream":
        return "the same, stream path"
    kind = schedule["kind"]
    if kind == "burst":
        factor, duration, every = schedule["factor"], schedule["duration_s"], schedule["every_s"]
        return f"{factor:g}x {duration:g} s every {every:g} s"
    if kind == "diurnal":
        return f"day in {schedule['day_length_s']:g} s"
    return f"{schedule['from']:g}x to {schedule['to']:g}x in {schedule['duration_s']:g} s"
