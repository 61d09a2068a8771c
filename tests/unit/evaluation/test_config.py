"""The `evaluation` section is validated like every other: one line naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from supervisor.config import Config
from supervisor.errors import ConfigError

FRESH = "profiles:\n  a: {interval_s: 1, min_records: 1, max_records: 1, id: fresh}\n"
KEPT = "profiles:\n  a: {interval_s: 1, min_records: 1, max_records: 1}\n"


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (
            FRESH + "evaluation: {alerts_topic: fraud-alerts, timeout: 3}\n",
            "evaluation.timeout: unknown key — did you mean 'timeout_s'?",
        ),
        (
            FRESH + "evaluation: {alerts_topic: fraud-alerts, timeout_s: soon}\n",
            "evaluation.timeout_s: must be a number (got 'soon')",
        ),
        (FRESH + "evaluation: {alerts_topic: 'no way'}\n", "invalid Kafka topic name 'no way'"),
        (
            KEPT + "evaluation: {alerts_topic: fraud-alerts}\n",
            "evaluation needs every profile to send unique ids: set 'id: fresh' in 'a'",
        ),
    ],
)
def test_bad_evaluation_sections_are_refused(tmp_path: Path, document: str, message: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(document)
    with pytest.raises(ConfigError) as caught:
        Config.from_yaml(path, env={})
    assert message in str(caught.value)


def test_defaults(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(FRESH + "evaluation: {alerts_topic: fraud-alerts}\n")
    evaluation = Config.from_yaml(path, env={}).evaluation
    assert evaluation is not None
    assert (evaluation.id_field, evaluation.timeout_s) == ("transaction_id", 30.0)
