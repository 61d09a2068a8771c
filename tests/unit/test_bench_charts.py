"""`make bench` draws its charts from the results document: what is there is drawn, what is
missing or failed is left out, and a results file from before a figure existed still draws."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.charts import main, write_charts

PNG = b"\x89PNG\r\n\x1a\n"


def _lateness(p50: float, p99: float) -> dict[str, float]:
    return {"p50": p50, "p99": p99, "max": p99 * 2}


def document(*, cpu: bool = True) -> dict[str, Any]:
    series = {"ref": 3.8, "ref+headers": 5.1, "run keep": 5.7, "run card-testing": 8.2, "kcat": 1.7}
    summary = {
        name: {"msg_per_s": 1e6 / us, "ratio": 3.8 / us}
        | ({"client_cpu_us_per_msg": us} if cpu else {})
        for name, us in series.items()
    }
    profiles = {
        name: {"tick_lateness_ms": _lateness(1.0, 12.0), "latency_ms": _lateness(6.0, 20.0)}
        for name in ("high/high", "normal/normal", "low/low")
    }
    runs = {
        n: {"median_profile_lateness_p99_ms": 3.0 * int(n), "worst_profile_lateness_p99_ms": 9.0}
        for n in ("1", "10", "1000")
    }
    return {
        "meta": {"mode": "quick", "started": "2026-12-03T00:00:00+00:00", "machine": {"cpus": 2}},
        "groups": {
            "throughput": {"data": {"summary": summary}},
            "presets": {"data": {"profiles": profiles}},
            "scale": {"data": {"runs": runs}},
        },
    }


def test_every_chart_is_drawn_beside_the_results(tmp_path: Path) -> None:
    results = tmp_path / "bench.json"
    written = write_charts(document(), results)
    assert [p.name for p in written] == [
        "bench-throughput.png",
        "bench-timing.png",
        "bench-latency.png",
    ]
    for path in written:
        assert path.read_bytes().startswith(PNG)


def test_missing_and_failed_groups_are_left_out(tmp_path: Path) -> None:
    doc = document()
    del doc["groups"]["presets"]
    doc["groups"]["throughput"] = {"error": "RuntimeError: broker did not start"}
    written = write_charts(doc, tmp_path / "bench.json")
    # Timing still has its scale panel; throughput failed and latency comes from presets alone.
    assert [p.name for p in written] == ["bench-timing.png"]


def test_an_older_file_without_cpu_figures_still_draws(tmp_path: Path) -> None:
    written = write_charts(document(cpu=False), tmp_path / "old.json")
    assert (tmp_path / "old-throughput.png") in written


def test_the_command_redraws_a_results_file(tmp_path: Path, capsys: Any) -> None:
    import json

    results = tmp_path / "latest.json"
    results.write_text(json.dumps(document()))
    assert main([str(results)]) == 0
    assert capsys.readouterr().out.split() == [
        str(tmp_path / f"latest-{name}.png") for name in ("throughput", "timing", "latency")
    ]
