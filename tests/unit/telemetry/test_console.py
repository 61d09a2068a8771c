"""The terminal's compact lines and summary table (the JSON lines are tested in test_logs)."""

from __future__ import annotations

import io

import pytest
import structlog

from supervisor.telemetry.console import CompactRenderer, summary_table


def render(**event: object) -> str:
    line = CompactRenderer(colours=False)(None, "info", event)
    assert isinstance(line, str)
    return line


def test_a_line_leads_with_time_and_profile_and_leaves_constants_out() -> None:
    line = render(
        event="profile_stats",
        profile="high",
        instance="vm",
        level="info",
        timestamp="2026-12-02T20:51:15.1Z",
        delivered=763,
        delivered_per_s=76.3,
        latency_p99_ms=8.86,
        failed=0,
        behind_schedule=0,
        batches=80,
    )
    assert line == (
        "20:51:15 high     profile_stats  delivered=763 delivered_per_s=76.3 latency_p99_ms=8.86"
    )


def test_warnings_say_so_and_librdkafka_lines_lose_their_prefix() -> None:
    line = render(
        event="MOCK [streaming-producer#producer-1] [thrd:app]: something odd",
        logger="librdkafka",
        level="warning",
        timestamp="2026-12-02T20:51:15Z",
    )
    assert line == "20:51:15 WARNING          kafka: something odd"


def test_the_final_counters_are_left_to_the_summary_table() -> None:
    with pytest.raises(structlog.DropEvent):
        render(event="fleet_stopped", produced=3)


def test_the_summary_table_names_each_profile_and_the_outcome() -> None:
    out = io.StringIO()
    entry = {"delivered": 1419, "failed": 0, "undelivered": 0, "elapsed_s": 19.0}
    summary = {
        "elapsed_s": 19.2,
        "profiles": {"high": {**entry, "latency_ms": {"p50": 6.3, "p99": 8.9}}, "low": entry},
        "total": {**entry, "delivered": 2838},
    }
    summary_table(summary, exit_code=0, stream=out)
    text = out.getvalue()
    assert "high" in text
    assert "2,838" in text
    assert "every message delivered after 19.2 s (exit code 0)" in text
