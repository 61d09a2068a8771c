"""Charts of a benchmark results file, written next to it (`make bench` calls `write_charts`).

    .venv/bin/python -m benchmarks.charts [RESULTS.json]   # redraw from a results file

Three PNGs, each drawn only when its groups are in the file:

- `<stem>-throughput.png`: client CPU per message and delivered msg/s by path (the run path's
  series against `produce()+poll(0)`, with and without headers, and kcat), from `throughput`;
- `<stem>-timing.png`: tick lateness (p50, p99) by preset, from `presets`, and by number of
  profiles (the median over profiles of each one's p99, and the worst), from `scale`;
- `<stem>-latency.png`: delivery latency percentiles (p50, p99, max) by preset, from `presets`.

Matplotlib draws off-screen (the Agg backend); it is a dev dependency, as `make bench` is.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from benchmarks.harness import RESULTS_DIR

REFERENCE = "#9e9e9e"
RUN = "#1f77b4"
SHAPED = "#ff7f0e"
DPI = 100
TARGET_MS = 20
"""The scale target: the median over 1,000 profiles of each one's tick-lateness p99."""


def write_charts(document: dict[str, Any], results: Path) -> list[Path]:
    """The charts of `document` as PNGs beside `results` (its stem, a suffix); the paths written."""
    groups = document.get("groups", {})
    subtitle = _subtitle(document.get("meta", {}))
    drawn: list[Path] = []
    for suffix, draw in (
        ("throughput", _throughput),
        ("timing", _timing),
        ("latency", _latency),
    ):
        figure = draw(groups)
        if figure is None:
            continue
        figure.text(0.01, 0.005, subtitle, fontsize=7, color="#555555", va="bottom")
        path = results.with_name(f"{results.stem}-{suffix}.png")
        figure.savefig(path, dpi=DPI)
        plt.close(figure)
        drawn.append(path)
    return drawn


def _ok(group: Any) -> bool:
    return isinstance(group, dict) and "error" not in group and "data" in group


def _subtitle(meta: dict[str, Any]) -> str:
    m = meta.get("machine", {})
    commit = str(meta.get("git", {}).get("commit") or "")[:10]
    return (
        f"{meta.get('mode', '?')} run {meta.get('started', '?')}, commit {commit}; "
        f"{m.get('cpus', '?')} CPUs ({m.get('cpu_model', '?')}), Python {m.get('python', '?')}, "
        f"librdkafka {m.get('librdkafka', '?')}; broker {m.get('broker', '?')}"
    )


def _throughput(groups: dict[str, Any]) -> Figure | None:
    group = groups.get("throughput")
    if not _ok(group) or not group["data"].get("summary"):
        return None
    summary: dict[str, dict[str, float]] = group["data"]["summary"]
    names = list(summary)
    cpu = [summary[n].get("client_cpu_us_per_msg", float("nan")) for n in names]
    if all(c != c for c in cpu):  # files from before CPU per message was recorded
        cpu = [0.0] * len(names)
    rate = [summary[n]["msg_per_s"] / 1000 for n in names]
    colours = [_colour(n) for n in names]
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 0.45 * len(names) + 2), sharey=True)
    _bars(left, names, cpu, colours, "client CPU per message (µs), lower is better", "{:.2f}")
    _bars(right, names, rate, colours, "delivered msg/s (thousands), higher is better", "{:.0f}")
    left.invert_yaxis()
    figure.suptitle(
        "Throughput by path: the run path against produce()+poll(0) and kcat "
        "(medians over rounds, one fresh broker each)",
        fontsize=10,
    )
    figure.tight_layout(rect=(0, 0.03, 1, 1))
    return figure


def _colour(series: str) -> str:
    if series.startswith(("ref", "kcat")):
        return REFERENCE
    return SHAPED if series in ("run card-testing", "run event-time") else RUN


def _bars(
    axes: Axes,
    names: Sequence[str],
    values: Sequence[float],
    colours: Sequence[str],
    title: str,
    label: str,
) -> None:
    positions = range(len(names))
    axes.barh(positions, values, color=colours)
    axes.set_yticks(list(positions), list(names), fontsize=8)
    axes.set_title(title, fontsize=9)
    axes.tick_params(axis="x", labelsize=8)
    for y, value in zip(positions, values, strict=True):
        axes.text(value, y, " " + label.format(value), va="center", fontsize=7)
    axes.margins(x=0.18)


def _timing(groups: dict[str, Any]) -> Figure | None:
    presets, scale = groups.get("presets"), groups.get("scale")
    panels = [p for p in (presets, scale) if _ok(p)]
    if not panels:
        return None
    figure, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    column = iter(axes[0])
    if _ok(presets):
        profiles: dict[str, Any] = presets["data"]["profiles"]
        names = list(profiles)
        _grouped(
            next(column),
            names,
            {
                "p50": [profiles[n]["tick_lateness_ms"]["p50"] for n in names],
                "p99": [profiles[n]["tick_lateness_ms"]["p99"] for n in names],
            },
            "tick lateness by preset (ms): a tick's start after its due time",
            "profile / preset",
        )
    if _ok(scale):
        runs: dict[str, Any] = scale["data"]["runs"]
        counts = sorted(runs, key=int)
        _grouped(
            next(column),
            [f"{int(n):,}" for n in counts],
            {
                "median over profiles of p99": [
                    runs[n]["median_profile_lateness_p99_ms"] for n in counts
                ],
                "worst profile's p99": [runs[n]["worst_profile_lateness_p99_ms"] for n in counts],
            },
            "tick lateness by number of profiles (ms), normal preset",
            "profiles in one process",
        )
        axes[0][-1].axhline(TARGET_MS, color="#d62728", linestyle="--", linewidth=0.8)
        axes[0][-1].annotate(
            f"target: median p99 <= {TARGET_MS} ms",
            (0, TARGET_MS),
            textcoords="offset points",
            xytext=(0, 3),
            fontsize=7,
            color="#d62728",
        )
    figure.suptitle("Cadence: how late ticks start (lower is better)", fontsize=10)
    figure.tight_layout(rect=(0, 0.03, 1, 1))
    return figure


def _latency(groups: dict[str, Any]) -> Figure | None:
    presets = groups.get("presets")
    if not _ok(presets):
        return None
    profiles: dict[str, Any] = presets["data"]["profiles"]
    names = list(profiles)
    figure, axes = plt.subplots(figsize=(7.5, 4))
    _grouped(
        axes,
        names,
        {q: [profiles[n]["latency_ms"][q] for n in names] for q in ("p50", "p99", "max")},
        "delivery latency by preset (ms): produce() to the broker's acknowledgement",
        "profile / preset",
    )
    figure.tight_layout(rect=(0, 0.03, 1, 1))
    return figure


def _grouped(
    axes: Axes, names: Sequence[str], series: dict[str, list[float]], title: str, xlabel: str
) -> None:
    """One cluster of bars per name, one bar per series, each labelled with its value."""
    width = 0.8 / len(series)
    for i, (label, values) in enumerate(series.items()):
        xs = [x + (i - (len(series) - 1) / 2) * width for x in range(len(names))]
        heights = [v if v is not None else float("nan") for v in values]
        bars = axes.bar(xs, heights, width, label=label)
        axes.bar_label(bars, fmt="%.1f", fontsize=6, padding=1)
    axes.set_xticks(range(len(names)), names, fontsize=7, rotation=20)
    axes.set_title(title, fontsize=9)
    axes.set_xlabel(xlabel, fontsize=8)
    axes.tick_params(axis="y", labelsize=8)
    axes.legend(fontsize=7)
    axes.margins(y=0.15)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    results = Path(args[0]) if args else RESULTS_DIR / "latest.json"
    document = json.loads(results.read_text(encoding="utf-8"))
    for path in write_charts(document, results):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
