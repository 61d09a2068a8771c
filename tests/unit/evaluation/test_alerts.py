"""The evaluation's final listening window against the run's shutdown budget, and its metrics."""

from __future__ import annotations

import asyncio
import threading

from prometheus_client import generate_latest

from supervisor.config import Config
from supervisor.config.evaluation import EvaluationSettings
from supervisor.evaluation import Evaluation
from supervisor.evaluation.alerts import consumer_config
from supervisor.evaluation.ledger import wall_ms
from supervisor.lifecycle import ShutdownBudget
from supervisor.telemetry.metrics import Telemetry


def listening(timeout_s: float = 30) -> Evaluation:
    """An evaluation whose reader is a stand-in thread that only waits to be stopped, having just
    sent an event: its final window would last `timeout_s`."""
    evaluation = Evaluation(EvaluationSettings(alerts_topic="alerts", timeout_s=timeout_s), {})
    thread = threading.Thread(target=evaluation._stop.wait, daemon=True)
    thread.start()
    evaluation._thread = thread
    evaluation.sent.last_ms = wall_ms()
    return evaluation


def test_a_second_signal_ends_the_final_window_at_once() -> None:
    evaluation = listening(timeout_s=3600)

    async def main() -> None:
        stop, force = asyncio.Event(), asyncio.Event()
        budget = ShutdownBudget(3600, force=force)
        async with budget.watching(stop):
            stop.set()
            finishing = asyncio.ensure_future(evaluation.finish(budget))
            await asyncio.sleep(0)  # let it start listening
            assert not finishing.done()
            force.set()
            await asyncio.wait_for(finishing, timeout=10)

    asyncio.run(main())
    assert evaluation._thread is None


def test_the_final_window_ends_with_the_shutdown_budget() -> None:
    evaluation = listening(timeout_s=3600)

    async def main() -> None:
        stop = asyncio.Event()
        budget = ShutdownBudget(0.01, force=asyncio.Event())
        async with budget.watching(stop):
            stop.set()
            await asyncio.wait_for(evaluation.finish(budget), timeout=10)

    asyncio.run(main())
    assert evaluation._thread is None


def test_metrics_expose_the_scores_by_outcome_and_scenario() -> None:
    evaluation = Evaluation(EvaluationSettings(alerts_topic="alerts"), {})
    evaluation._scorer.true_alerts = 3
    evaluation._scorer.false_alerts = 1
    telemetry = Telemetry(instance_id="pod-1", process_metrics=False)
    telemetry.watch_evaluation(evaluation)
    text = generate_latest(telemetry.registry).decode()
    assert (
        'streaming_producer_evaluation_alerts_total{instance_id="pod-1",outcome="true"} 3.0' in text
    )
    assert 'streaming_producer_evaluation_precision{instance_id="pod-1"} 0.75' in text


def test_the_reader_shares_the_producers_connection_settings_only() -> None:
    config = Config.model_validate(
        {
            "kafka": {
                "bootstrap_servers": "k:9092",
                "config": {"security.protocol": "SASL_SSL", "linger.ms": 50, "acks": 1},
            },
            "profiles": {"a": {"interval_s": 1, "min_records": 1, "max_records": 1, "id": "fresh"}},
            "evaluation": {"alerts_topic": "alerts"},
            "instance_id": "pod-1",
        }
    )
    conf = consumer_config(config)
    assert conf["bootstrap.servers"] == "k:9092"
    assert conf["security.protocol"] == "SASL_SSL"
    assert "linger.ms" not in conf
    assert "acks" not in conf
