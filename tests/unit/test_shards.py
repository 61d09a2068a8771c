"""Shards: one config run by N processes, each at 1/N of the rates, from (seed, index).

The split itself (`supervisor.config.shard.Shard`, applied in `ProfileRunner.run`) is checked
here with an injected clock and dry runs; `tests/integration/test_shards.py` runs three shard
processes against a real broker.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter

from supervisor.config import Config, Scenario, Schedule, Shard
from supervisor.errors import ConfigError
from supervisor.profile.pacing import Pacer, phase_s
from supervisor.profile.schedule import curve_for
from supervisor.rates import rate_table

ROOT = Path(__file__).resolve().parents[2]
DATASET = ROOT / "data" / "transactions.csv"


class FrozenClock:
    def __call__(self) -> float:
        return 0.0


def deadlines(pacer: Pacer, n: int) -> list[float]:
    out = []
    for _ in range(n):
        out.append(pacer.next_at)
        pacer.tick()
    return out


@pytest.mark.parametrize(
    "schedule",
    [
        None,
        {"kind": "burst", "every_s": 10, "duration_s": 2, "factor": 4, "offset_s": 0},
        {"kind": "ramp", "from": 0, "to": 3, "duration_s": 20},
        {"kind": "ramp", "from": 1, "to": 0, "duration_s": 3},  # then no deadline: inf
    ],
    ids=["constant", "burst", "ramp-from-0", "ramp-to-0"],
)
@pytest.mark.parametrize("count", [2, 3, 7])
@pytest.mark.parametrize("name", [None, "normal"], ids=["no-phase", "phased"])
def test_the_shards_deadlines_together_are_the_single_instances(
    schedule: dict[str, Any] | None, count: int, name: str | None
) -> None:
    # Every shard of a profile takes the phase of its name (`phase_s`), as the single instance.
    lead = 0.0 if name is None else phase_s(name, 0.1)
    curve = None
    if schedule is not None:
        wall = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)
        curve = curve_for(TypeAdapter(Schedule).validate_python(schedule), wall_start=wall)
    single = deadlines(Pacer(0.1, clock=FrozenClock(), curve=curve, lead_s=lead), 60 * count)
    union: list[float] = []
    for index in range(count):
        pacer = Pacer(0.1, clock=FrozenClock(), curve=curve, stride=count, phase=index, lead_s=lead)
        mine = deadlines(pacer, 60)
        assert mine == single[index::count]  # the same floats, not merely close
        union += mine
    assert sorted(union) == single


def test_a_shard_is_behind_only_a_whole_shard_tick_late() -> None:
    now = [0.0]
    pacer = Pacer(0.1, clock=lambda: now[0], stride=3, phase=1)
    assert pacer.next_at == pytest.approx(0.1)
    now[0] = 0.35  # past the single instance's next deadline, not the shard's (0.4)
    assert pacer.tick() == (pytest.approx(0.25), False)
    now[0] = 0.75  # the shard's next is 0.7: at or past it, behind
    assert pacer.tick()[1] is True


def test_shard_zero_keeps_the_seed_and_every_other_shard_derives_its_own() -> None:
    assert Shard(0, 1).seed(42) == 42
    assert Shard(0, 3).seed(42) == 42
    seeds = {Shard(i, 8).seed(42) for i in range(8)}
    assert len(seeds) == 8
    assert Shard(2, 3).seed(42) == Shard(2, 5).seed(42)  # from (seed, index) alone
    assert Shard(2, 3).seed(42) != Shard(2, 3).seed(43)
    assert Shard(1, 2).seed(None) is None
    # Stable across processes and Python versions (sha256, not hash()).
    assert Shard(1, 2).seed(42) == 0xD7CADDC3F6C5A5FF


def test_a_shards_scenario_arrives_n_times_less_often_and_a_compromise_lasts_n_times_longer() -> (
    None
):
    scenario: Any = TypeAdapter(Scenario).validate_python
    every = scenario({"kind": "card-testing", "every_s": 2})
    assert Shard(1, 3).scenario(every).every_s == 6
    assert Shard(0, 1).scenario(every) is every
    chance = scenario({"kind": "velocity", "probability": 0.1})
    assert Shard(1, 3).scenario(chance) == chance  # the shards share the batches
    compromise = scenario({"kind": "merchant-compromise", "every_s": 60, "duration_s": 30})
    split = Shard(2, 4).scenario(compromise)
    assert (split.every_s, split.duration_s) == (240, 120)  # type: ignore[union-attr]


CONFIG = """
profiles:
  p: {interval_s: 1, min_records: 1, max_records: 2}
"""


def load(tmp_path: Path, text: str, env: dict[str, str]) -> Config:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return Config.from_yaml(path, env)


@pytest.mark.parametrize(
    ("shard", "env", "expected"),
    [
        ("", {}, Shard(0, 1)),
        ("shard: {index: 2, count: 3}", {}, Shard(2, 3)),
        ("", {"SHARD_INDEX": "1", "SHARD_COUNT": "2"}, Shard(1, 2)),
        ("shard: {index: 0, count: 3}", {"SHARD_INDEX": "2"}, Shard(2, 3)),  # env wins
        ("shard: {count: 3}", {"JOB_COMPLETION_INDEX": "1", "POD_NAME": "x-2"}, Shard(1, 3)),
        ("shard: {count: 3}", {"POD_NAME": "streaming-producer-2"}, Shard(2, 3)),
        ("", {"SHARD_COUNT": "4", "POD_NAME": "streaming-producer-3"}, Shard(3, 4)),
        (
            "shard: {count: 3}",
            {"HOSTNAME": "streaming-producer-1", "KUBERNETES_SERVICE_HOST": "10.0.0.1"},
            Shard(1, 3),
        ),
        ("shard: {count: 3}", {"SHARD_INDEX": "", "POD_NAME": "sp-0"}, Shard(0, 3)),
    ],
)
def test_the_index_comes_from_the_config_the_environment_or_the_pod(
    tmp_path: Path, shard: str, env: dict[str, str], expected: Shard
) -> None:
    assert load(tmp_path, CONFIG + shard, env).shard.split == expected


@pytest.mark.parametrize(
    ("shard", "env", "message"),
    [
        ("shard: {count: 3}", {}, "shard: count is 3 but this process's shard index is unknown"),
        # A host name outside a pod is never taken for an ordinal (ip-10-0-0-2 is not shard 2).
        ("shard: {count: 3}", {"HOSTNAME": "ip-10-0-0-2"}, "shard index is unknown"),
        ("shard: {index: 3, count: 3}", {}, "shard: index 3 is out of range for count 3"),
        ("shard: {index: 1}", {}, "index 1 is out of range for count 1"),
        ("shard: {count: 3}", {"POD_NAME": "sp-5"}, "index 5 is out of range for count 3"),
        ("shard: {count: 0, index: 0}", {}, "shard.count"),
        ("shard: {count: 2, index: -1}", {}, "shard.index"),
        ("shard: {count: 2, idx: 1}", {}, "shard.idx: unknown key"),
    ],
)
def test_a_missing_or_out_of_range_index_is_a_clear_startup_error(
    tmp_path: Path, shard: str, env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        load(tmp_path, CONFIG + shard, env)


def test_rate_shows_the_fleet_and_each_shard(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        "profiles:\n  high: {preset: high}\n  low: {preset: low}\nshard: {index: 1, count: 3}\n",
        {},
    )
    lines = rate_table(config).splitlines()
    assert lines[-2].split()[-3:] == ["5.50", "76.50", "6,609,600"]
    assert lines[-1].startswith("each shard (1/3)")
    assert lines[-1].split()[-3:] == ["1.83", "25.50", "2,203,200"]


# -- dry runs -------------------------------------------------------------------------------------

PLAIN = f"""
instance_id: golden
dataset: {{uri: {DATASET}}}
profiles:
  plain: {{interval_s: 0.001, min_records: 1, max_records: 20, seed: 11, id: fresh, key: id}}
"""
SHAPED = f"""
instance_id: golden
dataset: {{uri: {DATASET}}}
profiles:
  shaped:
    interval_s: 0.004
    min_records: 1
    max_records: 20
    seed: 12
    id: fresh
    late: {{fraction: 0.05, max_delay_s: 60}}
    out_of_order: {{fraction: 0.05, max_delay_s: 0.01}}
    duplicates: {{fraction: 0.02}}
    scenario:
      {{kind: card-testing, every_s: 0.05, min_attempts: 2, max_attempts: 4, window_s: 0.02}}
    labels: {{topic: labels, delay_s: 0.01}}
"""
GOLDEN = {
    # sha256 of `run --dry-run --max-messages 600` of these configs by the release before shards
    # (commit e64d12c), each topic's lines in order (`by_topic`): an unsharded run, and shard 0 of
    # 1, must not change by a byte.
    "plain": "7d2d2861e933862c465cf8a960b3fc2e5ecf40676c8a5b312d043e7941ede8dd",
    "shaped": "f830d7d6cf4e9134962cca910e8f6f85aa0d81cde1fa66b7320897fc82b33665",
}


def by_topic(out: bytes) -> bytes:
    """The dry run's lines grouped by topic, each topic's in their order. A seeded profile's
    sequence is per topic: when a loaded machine runs a tick late, labels come out in the same
    order, and so do events, but where labels fall between events can differ."""
    lines = out.splitlines(keepends=True)
    return b"".join(sorted(lines, key=lambda line: json.loads(line)["topic"]))


def dry_run(tmp_path: Path, text: str, messages: int = 600, name: str = "c.yaml") -> bytes:
    path = tmp_path / name
    path.write_text(text)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "SHARD_"))}
    env.pop("JOB_COMPLETION_INDEX", None)
    env.pop("POD_NAME", None)
    args = ["run", "--dry-run", "--max-messages", str(messages), "--config", str(path)]
    result = subprocess.run(
        [sys.executable, "-m", "supervisor", *args],
        capture_output=True,
        check=True,
        env=env,
        cwd=ROOT,
        timeout=60,
    )
    return result.stdout


@pytest.mark.parametrize("kind", ["plain", "shaped"])
@pytest.mark.parametrize("shard", ["", "shard: {index: 0, count: 1}\n"], ids=["unsharded", "0of1"])
def test_shard_zero_of_one_is_the_previous_release_byte_for_byte(
    tmp_path: Path, kind: str, shard: str
) -> None:
    text = (PLAIN if kind == "plain" else SHAPED) + shard
    assert hashlib.sha256(by_topic(dry_run(tmp_path, text))).hexdigest() == GOLDEN[kind]


def messages(out: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines()]


def test_shards_are_disjoint_and_each_repeats_its_own_sequence(tmp_path: Path) -> None:
    runs = {
        index: dry_run(tmp_path, SHAPED + f"shard: {{index: {index}, count: 3}}\n", 300)
        for index in range(3)
    }
    again = dry_run(tmp_path, SHAPED + "shard: {index: 1, count: 3}\n", 300)
    assert by_topic(again) == by_topic(runs[1])
    for index, out in runs.items():
        assert {m["headers"]["shard"] for m in messages(out)} == {f"{index}/3"}
        assert {m["headers"]["instance"] for m in messages(out)} == {"golden"}
    # Copies from `duplicates` repeat their original's id: count each id once per shard.
    per_shard = [
        {m["value"]["id"] for m in messages(out) if m["topic"] != "labels"} for out in runs.values()
    ]
    assert sum(len(s) for s in per_shard) == len(set().union(*per_shard))
    assert runs[0] != runs[1] != runs[2]


def test_the_summary_and_the_metrics_carry_the_shard() -> None:
    from prometheus_client import generate_latest

    from supervisor.telemetry.metrics import Telemetry
    from supervisor.telemetry.summary import RunSummary

    assert "shard" not in RunSummary.of([], elapsed_s=1, now=1).as_dict()
    sharded = RunSummary.of([], elapsed_s=1, now=1, shard=(2, 3)).as_dict()
    assert sharded["shard"] == {"index": 2, "count": 3}
    text = generate_latest(
        Telemetry(instance_id="i", shard=(2, 3), process_metrics=False).registry
    ).decode()
    assert 'streaming_producer_shard_info{instance_id="i",shard_count="3",shard_index="2"} 1.0' in (
        text
    )


def test_check_names_the_shard_and_its_share(tmp_path: Path) -> None:
    from supervisor.checks import _config_check

    config = load(tmp_path, "profiles:\n  high: {preset: high}\nshard: {index: 2, count: 3}\n", {})
    assert "75.00 records/s in all (shard 2/3: 25.00 here), to transactions" in (
        _config_check(config).detail
    )
    alone = load(tmp_path, "profiles:\n  high: {preset: high}\n", {})
    assert "75.00 records/s in all, to transactions" in _config_check(alone).detail
