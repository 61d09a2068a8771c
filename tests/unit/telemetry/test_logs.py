"""The rate-limited log: one line per period, counting what it skipped."""

from __future__ import annotations

import structlog
from structlog.testing import capture_logs

from supervisor.telemetry.logs import RateLimitedLog


def test_recurring_event_is_logged_once_per_period_with_the_skipped_count() -> None:
    with capture_logs() as lines:
        log = RateLimitedLog(structlog.get_logger(), "delivery_failed", every_s=3600)
        for i in range(50):
            log(reason=f"r{i}")
    assert len(lines) == 1
    assert lines[0]["event"] == "delivery_failed"
    assert lines[0]["reason"] == "r0"
    assert lines[0]["suppressed_since_last_line"] == 0
    assert lines[0]["log_level"] == "error"


def test_next_line_counts_what_was_suppressed_and_level_is_kept() -> None:
    with capture_logs() as lines:
        log = RateLimitedLog(structlog.get_logger(), "kafka_error", every_s=0, level="warning")
        log(code="A")
        log(code="B")
    assert [(line["code"], line["log_level"]) for line in lines] == [
        ("A", "warning"),
        ("B", "warning"),
    ]
    with capture_logs() as lines:
        log = RateLimitedLog(structlog.get_logger(), "e", every_s=3600)
        log()
        log()
        log()
        log._last -= 7200  # the period has passed
        log()
    assert [line["suppressed_since_last_line"] for line in lines] == [0, 2]
