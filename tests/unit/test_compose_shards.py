"""deploy/compose/shards.yaml, laid over compose.yaml: three shards of one config."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from supervisor.config import Config, Shard
from tests.unit.test_deploy_files import (
    COMPOSE_CONFIG,
    compose_schema,
    environment,
    interpolate,
    services,
)

ROOT = Path(__file__).resolve().parents[2]
SHARDS = ROOT / "deploy" / "compose" / "shards.yaml"


def overlay() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(SHARDS.read_text(encoding="utf-8"))
    return document


def merged_environment(name: str) -> dict[str, str]:
    """A shard's environment after `docker compose -f compose.yaml -f shards.yaml` (an
    overlay's environment entries are merged into the base service's, key by key)."""
    env = environment(name) if name in services() else {}
    extra = overlay()["services"][name].get("environment", {})
    return {**env, **{k: interpolate(str(v), {}) for k, v in extra.items()}}


def test_the_overlay_matches_the_compose_specification_schema() -> None:
    schema = compose_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    document = json.loads(json.dumps(overlay()))  # anchors resolved
    assert [e.message for e in validator.iter_errors(document)] == []


def test_each_shard_service_is_its_own_shard_of_the_compose_config() -> None:
    shards = overlay()["services"]
    count = len(shards)
    assert set(shards) == {"supervisor", *(f"supervisor-{i}" for i in range(1, count))}
    seen = set()
    for name in shards:
        env = merged_environment(name)
        if name != "supervisor":  # the shards beyond 0 repeat the supervisor's settings
            assert env.items() >= environment("supervisor").items()
            service = shards[name]
            assert service["image"] == services()["supervisor"]["image"]
            assert "ports" not in service
            assert service["healthcheck"]["test"] == services()["supervisor"]["healthcheck"]["test"]
            assert service["volumes"] == services()["supervisor"]["volumes"]
        config = Config.from_yaml(COMPOSE_CONFIG, env)
        seen.add(config.shard.split)
    assert seen == {Shard(i, count) for i in range(count)}
