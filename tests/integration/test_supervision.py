"""Supervision on real parts: one profile keeps raising while another streams to a real broker.

The run is the real `serve()` (real Kafka sink, real dataset, real fleet) in-process; the only
thing injected is the fault itself: the event builder of the `broken` profile raises. The restart
policy is shortened so the test does not wait out the production backoff (0.5 s doubling).
"""

from __future__ import annotations

import asyncio
import json
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from realservices import consume_all
from supervisor import app, fleet
from supervisor.config import Config
from supervisor.errors import ExitCode
from supervisor.profile.events import Batch
from supervisor.profile.runner import ProfileRunner
from tests.integration.cli_process import ROOT

FAST = fleet.RestartPolicy(max_restarts=3, window_s=60, backoff_initial_s=0.05, backoff_max_s=0.2)
BROKEN_TOPIC_SUFFIX = "-broken"


def run_serve(config: Config, summary: Path) -> ExitCode:
    async def scenario() -> ExitCode:
        stop, force = asyncio.Event(), asyncio.Event()
        code, _ = await app.serve(config, stop=stop, force=force, summary_path=summary)
        return code

    return asyncio.run(asyncio.wait_for(scenario(), timeout=60))


def test_a_crashing_profile_is_restarted_then_stops_the_fleet_with_exit_5(
    tmp_path: Path, kafka_bootstrap: str, topic: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    crashes: list[str] = []

    class BrokenBuilder:
        def build(self, indexes: list[int]) -> Batch:
            crashes.append("boom")
            raise RuntimeError("injected fault: the builder of profile 'broken' raises")

    real_sampling = ProfileRunner._sampling

    def sampling(runner: ProfileRunner, rng: Any) -> Any:
        sampler, builder = real_sampling(runner, rng)
        if runner.topic.endswith(BROKEN_TOPIC_SUFFIX):
            return sampler, BrokenBuilder()
        return sampler, builder

    monkeypatch.setattr(ProfileRunner, "_sampling", sampling)
    monkeypatch.setattr(app, "Fleet", partial(fleet.Fleet, restart_policy=FAST))

    config = Config.model_validate(
        {
            "kafka": {"bootstrap_servers": kafka_bootstrap, "topic": topic},
            "dataset": {"uri": str(ROOT / "data" / "transactions.csv")},
            "stats_interval_s": 3600,
            "profiles": {
                "steady": {"interval_s": 0.02, "min_records": 2, "max_records": 2},
                "broken": {
                    "interval_s": 0.02,
                    "min_records": 1,
                    "max_records": 1,
                    "topic": topic + BROKEN_TOPIC_SUFFIX,
                },
            },
        }
    )
    summary = tmp_path / "summary.json"
    code = run_serve(config, summary)

    assert code == ExitCode.PROFILE_CRASHED
    assert len(crashes) == FAST.max_restarts + 1  # the first run, then every restart
    result = json.loads(summary.read_text())
    broken, steady = result["profiles"]["broken"], result["profiles"]["steady"]
    assert broken["restarts"] == FAST.max_restarts
    assert broken["produced"] == 0
    # The other profile kept streaming meanwhile, and was drained cleanly at the end.
    assert steady["produced"] == steady["delivered"] > 0
    assert steady["in_flight"] == steady["undelivered"] == steady["failed"] == 0
    records = consume_all(kafka_bootstrap, topic)
    assert len(records) == steady["delivered"]
    assert {r.headers["profile"] for r in records} == {b"steady"}
