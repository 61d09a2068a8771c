"""The fleet's logic against a fake sink: sampling, headers, backpressure, supervision, stop."""

from __future__ import annotations

import asyncio
import functools
import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from supervisor.config import Config
from supervisor.dataset import FIELDS, Dataset, parse_csv
from supervisor.fleet import Fleet, RestartPolicy
from supervisor.sinks.contract import MessageRejected
from tests.fakes import FakeSink

CSV = (
    "id,description,amount,timestamp,merchant,operation_type,side\n"
    + "".join(
        f"{uuid.UUID(int=i + 1)},Card payment {i},{i}.5{i},2026-01-1{i}T10:00:00,Shop {i},"
        f"{'debit' if i % 2 else 'credit'},{'outgoing' if i % 2 else 'incoming'}\n"
        for i in range(8)
    )
).encode()

FAST = RestartPolicy(max_restarts=2, window_s=60, backoff_initial_s=0.001, backoff_max_s=0.001)


@pytest.fixture
def dataset() -> Dataset:
    return parse_csv(CSV, source="inline")


def make_config(**profiles: dict[str, Any]) -> Config:
    return Config.model_validate(
        {"kafka": {"topic": "tx"}, "profiles": profiles, "stats_interval_s": 3600}
    )


def stop_after(n: int, stop: asyncio.Event) -> Any:
    def hook(sink: FakeSink) -> None:
        if len(sink.sent) >= n:
            stop.set()

    return hook


async def run_fleet(
    config: Config, dataset: Dataset, sink: FakeSink, stop: asyncio.Event, **kw: Any
) -> Fleet:
    fleet = Fleet(config, dataset, sink, **kw)
    await asyncio.wait_for(fleet.run(stop), timeout=30)
    return fleet


async def run_until_sent(
    config: Config, dataset: Dataset, n: int, make_sink: Callable[..., FakeSink] = FakeSink
) -> tuple[Fleet, FakeSink]:
    """Run the fleet until the sink holds `n` messages, then acknowledge every one of them."""
    stop = asyncio.Event()
    sink = make_sink(on_produce=stop_after(n, stop))
    fleet = await run_fleet(config, dataset, sink, stop)
    sink.ack()
    return fleet, sink


def test_every_profile_streams_dataset_records_with_its_header(dataset: Dataset) -> None:
    config = make_config(
        high={"interval_s": 0.001, "min_records": 10, "max_records": 20},
        normal={"interval_s": 0.001, "min_records": 1, "max_records": 10, "topic": "other"},
        low={"interval_s": 0.001, "min_records": 1, "max_records": 5, "key": "merchant"},
    )

    fleet, sink = asyncio.run(run_until_sent(config, dataset, 600))
    by_profile: dict[str, list[Any]] = {}
    for item in sink.sent:
        by_profile.setdefault(dict(item.headers)["profile"].decode(), []).append(item)
    assert set(by_profile) == {"high", "normal", "low"}
    valid = set(dataset.values)
    for name, items in by_profile.items():
        stats = fleet.stats[name]
        assert stats.produced == len(items) == stats.delivered
        assert stats.bytes == sum(len(i.value) for i in items)
        lo, hi = config.profiles[name].min_records, config.profiles[name].max_records
        assert lo * stats.batches <= stats.produced <= hi * stats.batches
        assert all(i.value in valid for i in items)
        assert {i.topic for i in items} == {"other" if name == "normal" else "tx"}
    low_keys = {i.key for i in by_profile["low"]}
    assert low_keys <= {f"Shop {i}".encode() for i in range(8)}
    assert all(i.key is None for i in by_profile["high"])


def test_a_profile_chooses_its_headers(dataset: Dataset) -> None:
    velocity = {"kind": "velocity", "probability": 0.5}
    fast = {"interval_s": 0.001, "min_records": 5, "max_records": 5}
    config = make_config(
        every={**fast, "topic": "all", "id": "fresh", "scenario": velocity},
        own={**fast, "topic": "profile", "headers": "profile", "scenario": velocity},
        bare={**fast, "topic": "none", "headers": "none", "scenario": velocity},
        fast={**fast, "topic": "fast", "headers": "none"},
    )
    _, sink = asyncio.run(run_until_sent(config, dataset, 400))
    by_topic: dict[str, set[str]] = {}
    for item in sink.sent:
        by_topic.setdefault(item.topic, set()).add(str(item.headers))
    own = [("profile", b"own"), ("instance", config.instance.encode())]
    assert by_topic["profile"] == {str(own)}
    assert by_topic["none"] == by_topic["fast"] == {"None"}  # None, not an empty list
    assert str([("profile", b"every"), own[1], ("fraud", b"false")]) in by_topic["all"]


def test_fresh_ids_and_now_timestamps_are_rewritten(dataset: Dataset) -> None:
    config = make_config(
        p={
            "interval_s": 0.001,
            "min_records": 5,
            "max_records": 5,
            "id": "fresh",
            "timestamp": "now",
            "key": "id",
        }
    )

    async def scenario() -> FakeSink:
        stop = asyncio.Event()
        sink = FakeSink(on_produce=stop_after(50, stop))
        await run_fleet(config, dataset, sink, stop)
        return sink

    sink = asyncio.run(scenario())
    originals = {json.loads(v)["description"]: json.loads(v) for v in dataset.values}
    ids = set()
    for item in sink.sent:
        event = json.loads(item.value)
        assert tuple(event) == FIELDS
        assert uuid.UUID(event["id"]).version == 4
        assert item.key == event["id"].encode()
        ids.add(event["id"])
        original = originals[event["description"]]
        assert event["timestamp"] != original["timestamp"]
        assert event["timestamp"].endswith("+00:00")
        assert {k: v for k, v in event.items() if k not in ("id", "timestamp")} == {
            k: v for k, v in original.items() if k not in ("id", "timestamp")
        }
    assert len(ids) == len(sink.sent)  # a fresh id per emitted event


def test_queue_full_is_backpressure_and_loses_nothing(dataset: Dataset) -> None:
    config = make_config(p={"interval_s": 0.001, "min_records": 10, "max_records": 10})

    class DrainingSink(FakeSink):
        async def wait_for_space(self, stop: asyncio.Event) -> None:
            self.ack()  # the broker catches up while the profile waits

    fleet, sink = asyncio.run(
        run_until_sent(config, dataset, 200, functools.partial(DrainingSink, capacity=3))
    )
    stats = fleet.stats["p"]
    assert sink.buffer_errors > 0
    assert stats.produced == len(sink.sent) == stats.delivered
    assert stats.produced == 10 * stats.batches  # no message of a batch skipped
    # Each message's publish delay is recorded once, a segment between waits at a time.
    assert stats.publish_delay.count == stats.produced


def test_every_produced_message_has_a_publish_delay_on_either_path(dataset: Dataset) -> None:
    fast = {"interval_s": 0.001, "min_records": 5, "max_records": 5}
    config = make_config(
        plain=fast,
        shaped={
            **fast,
            "topic": "shaped",
            "id": "fresh",
            "out_of_order": {"fraction": 0.3, "max_delay_s": 0.01},
            "scenario": {"kind": "velocity", "probability": 0.5},
            "labels": {"topic": "labels", "delay_s": 0.01},
        },
    )
    fleet, _ = asyncio.run(run_until_sent(config, dataset, 600))
    for stats in fleet.stats.values():
        # Held-back and fraud events drained at the stop go out early: no delay for those.
        drained = stats.produced - stats.publish_delay.count
        assert 0 <= drained <= (stats.reordered + sum(stats.fraud_events.values()))
        assert stats.publish_delay.count > 0
    assert fleet.stats["plain"].publish_delay.count == fleet.stats["plain"].produced
    labels = fleet.stats["shaped"].labels
    assert labels is not None
    assert labels.produced > 0
    assert labels.publish_delay.count == 0  # labels: not a schedule of the profile's


def test_stop_while_waiting_for_space_returns_without_losing_count(dataset: Dataset) -> None:
    config = make_config(p={"interval_s": 0.001, "min_records": 5, "max_records": 5})

    async def scenario() -> tuple[Fleet, FakeSink]:
        stop = asyncio.Event()
        sink = FakeSink(capacity=2)
        fleet = Fleet(config, dataset, sink)
        task = asyncio.create_task(fleet.run(stop))
        await sink.full.wait()
        stop.set()
        await asyncio.wait_for(task, timeout=10)
        return fleet, sink

    fleet, sink = asyncio.run(scenario())
    stats = fleet.stats["p"]
    assert stats.produced == len(sink.sent) == 2
    assert stats.in_flight == 2
    assert stats.stopped_at is not None


def test_crashing_profile_restarts_and_others_keep_running(dataset: Dataset) -> None:
    config = make_config(
        flaky={"interval_s": 0.001, "min_records": 1, "max_records": 1},
        steady={"interval_s": 0.001, "min_records": 1, "max_records": 1},
    )
    crashes = {"left": 2, "after": 0}

    async def scenario() -> tuple[Fleet, FakeSink]:
        stop = asyncio.Event()

        def hook(sink: FakeSink) -> None:
            flaky = dict(sink.sent[-1].headers)["profile"] == b"flaky"
            if flaky and crashes["left"]:
                crashes["left"] -= 1
                raise RuntimeError("boom")
            if flaky:
                crashes["after"] += 1  # sent by the twice-restarted profile
            if len(sink.sent) >= 100 and crashes["after"] >= 3:
                stop.set()

        sink = FakeSink(on_produce=hook)
        fleet = await run_fleet(config, dataset, sink, stop, restart_policy=FAST)
        return fleet, sink

    fleet, _ = asyncio.run(scenario())
    assert fleet.crashed == []
    assert fleet.stats["flaky"].restarts == 2
    assert fleet.stats["flaky"].batches > 2
    assert fleet.stats["steady"].produced > 0


def test_profile_past_its_restart_limit_stops_the_fleet(dataset: Dataset) -> None:
    config = make_config(
        broken={"interval_s": 0.001, "min_records": 1, "max_records": 1},
        steady={"interval_s": 0.001, "min_records": 1, "max_records": 1},
    )

    async def scenario() -> Fleet:
        stop = asyncio.Event()

        def hook(sink: FakeSink) -> None:
            if dict(sink.sent[-1].headers)["profile"] == b"broken":
                raise RuntimeError("always")

        return await run_fleet(
            config, dataset, FakeSink(on_produce=hook), stop, restart_policy=FAST
        )

    fleet = asyncio.run(scenario())
    assert fleet.crashed == ["broken"]
    assert fleet.stats["broken"].restarts == FAST.max_restarts


def test_seeded_profile_emits_the_same_sequence_every_run(dataset: Dataset) -> None:
    config = make_config(
        p={
            "interval_s": 0.001,
            "min_records": 1,
            "max_records": 10,
            "seed": 1234,
            "id": "fresh",
        }
    )

    async def scenario() -> list[bytes]:
        stop = asyncio.Event()
        sink = FakeSink(on_produce=stop_after(300, stop))
        await run_fleet(config, dataset, sink, stop)
        return [s.value for s in sink.sent[:300]]

    first, second = asyncio.run(scenario()), asyncio.run(scenario())
    assert first == second
    assert len(set(first)) == 300  # fresh ids: no two events alike


def test_apply_starts_added_stops_removed_restarts_changed_and_keeps_unchanged(
    dataset: Dataset,
) -> None:
    other_csv = CSV.replace(b"Card payment", b"Wire transfer")
    replacement = parse_csv(other_csv, source="inline-2")
    fast = {"interval_s": 0.001, "min_records": 1, "max_records": 3}
    before = make_config(keep=fast, change=fast, drop=fast)
    after = make_config(keep=fast, change={**fast, "max_records": 4}, add=fast)

    async def scenario() -> tuple[Any, FakeSink, int, int, Fleet, bool]:
        stop = asyncio.Event()
        sink = FakeSink()
        fleet = Fleet(before, dataset, sink)
        running = asyncio.create_task(fleet.run(stop))
        enough = asyncio.Event()
        target = {"n": 60}
        sink.on_produce = lambda s: enough.set() if len(s.sent) >= target["n"] else None
        await enough.wait()
        keep_task = fleet._running["keep"].task  # the unchanged profile's task: must survive
        before_apply = len(sink.sent)
        plan = await fleet.apply(after, replacement)
        mark = len(sink.sent)
        enough.clear()
        target["n"] = mark + 60
        await enough.wait()
        same_task = fleet._running["keep"].task is keep_task
        stop.set()
        await asyncio.wait_for(running, timeout=10)
        return plan, sink, before_apply, mark, fleet, same_task

    plan, sink, before_apply, mark, fleet, same_task = asyncio.run(scenario())
    assert plan.added == ("add",)
    assert plan.removed == ("drop",)
    assert plan.changed == ("change",)
    assert plan.unchanged == ("keep",)
    assert plan.dataset_replaced
    assert same_task  # no restart, so no gap in its schedule
    later = sink.sent[mark:]
    profiles_later = {dict(i.headers)["profile"].decode() for i in later}
    assert "drop" not in profiles_later
    assert "add" in profiles_later
    assert all(i.value in set(replacement.values) for i in later)  # every profile switched
    assert all(i.value in set(dataset.values) for i in sink.sent[:before_apply])
    # A removed profile's counters stay in the summary.
    assert fleet.stats["drop"].produced > 0
    assert fleet.stats["drop"].stopped_at is not None
    assert not fleet._running  # all halted after stop


def test_apply_refuses_when_not_running(dataset: Dataset) -> None:
    config = make_config(p={"interval_s": 1, "min_records": 1, "max_records": 1})
    fleet = Fleet(config, dataset, FakeSink())
    with pytest.raises(RuntimeError, match="not running"):
        asyncio.run(fleet.apply(config))


def test_shaped_profile_counts_what_it_sent_and_sends_what_it_scheduled_at_stop(
    dataset: Dataset,
) -> None:
    """A profile with fraud, labels, duplicates and held-back events: at stop its scheduled
    messages (labels due in an hour, held events) still go out, and every counter matches what
    the sink received."""
    config = make_config(
        p={
            "interval_s": 0.001,
            "min_records": 5,
            "max_records": 5,
            "id": "fresh",
            "scenario": {"kind": "velocity", "probability": 0.5, "window_s": 0.01},
            "labels": {"topic": "labels", "delay_s": 3600},
            "duplicates": {"fraction": 0.1},
            "out_of_order": {"fraction": 0.1, "max_delay_s": 3600},
        }
    )

    fleet, sink = asyncio.run(run_until_sent(config, dataset, 500))
    stats = fleet.stats["p"]
    assert stats.labels is not None
    events = [s for s in sink.sent if s.topic == "tx"]
    labels = [s for s in sink.sent if s.topic == "labels"]
    fraud = [s for s in events if dict(s.headers)["fraud"] == b"true"]
    assert stats.produced == stats.delivered == len(events)
    assert stats.labels.produced == stats.labels.delivered == len(labels)
    # Labels were due in an hour: all of them went out at stop, one per fraud event.
    assert sorted(json.loads(s.value)["id"].encode() for s in labels) == sorted(
        s.value[7:43] for s in fraud
    )
    assert stats.fraud_events == {"velocity": len(fraud)}
    assert fraud
    assert stats.occurrences["velocity"] == len({dict(s.headers)["scenario_id"] for s in fraud})
    assert stats.reordered > 0
    assert stats.duplicates > 0
    values = [s.value for s in events]
    assert len(values) - len(set(values)) == stats.duplicates
    summary = stats.snapshot(0.0)
    assert summary["scenarios"] == {
        "velocity": {"occurrences": stats.occurrences["velocity"], "events": len(fraud)}
    }
    assert summary["labels"]["delivered"] == len(labels)


def test_max_messages_is_exact_across_profiles_under_backpressure(dataset: Dataset) -> None:
    """Exactly N events over every profile, however the last batches interleave with a full
    queue; the labels of the fraud events among them are sent on top and not counted."""
    config = make_config(
        a={"interval_s": 0.001, "min_records": 7, "max_records": 13},
        b={"interval_s": 0.001, "min_records": 1, "max_records": 30, "id": "fresh"},
        c={
            "interval_s": 0.001,
            "min_records": 3,
            "max_records": 9,
            "scenario": {"kind": "amount-outlier", "probability": 0.5},
            "labels": {"topic": "labels", "delay_s": 3600},
        },
    )

    class SlowBroker(FakeSink):
        async def wait_for_space(self, stop: asyncio.Event) -> None:
            await asyncio.sleep(0)  # let the other profiles run into the full queue too
            self.ack()

    async def scenario() -> tuple[Fleet, FakeSink]:
        sink = SlowBroker(capacity=4)
        fleet = Fleet(config, dataset, sink, max_messages=1000)
        await asyncio.wait_for(fleet.run(asyncio.Event()), timeout=30)  # stops by itself
        sink.ack()
        return fleet, sink

    fleet, sink = asyncio.run(scenario())
    events = [s for s in sink.sent if s.topic == "tx"]
    labels = [s for s in sink.sent if s.topic == "labels"]
    fraud = [s for s in events if dict(s.headers).get("fraud") == b"true"]
    assert sink.buffer_errors > 0
    assert len(events) == 1000 == sum(s.produced for s in fleet.stats.values())
    assert fraud
    assert sorted(json.loads(s.value)["id"].encode() for s in labels) == sorted(
        s.value[7:43] for s in fraud
    )


def test_max_messages_counts_produced_messages_not_rejected_ones(dataset: Dataset) -> None:
    """--max-messages N is N messages sent: one the producer refuses outright (too large, say)
    does not use up a place."""
    config = make_config(
        a={"interval_s": 0.001, "min_records": 5, "max_records": 9},
        b={"interval_s": 0.001, "min_records": 1, "max_records": 4, "timestamp": "shift"},
    )

    class Refusing(FakeSink):
        offered = 0

        def produce(self, *args: Any, **kwargs: Any) -> None:
            self.offered += 1
            if self.offered % 3 == 0:
                raise MessageRejected("Broker: Message size too large")
            super().produce(*args, **kwargs)

    async def scenario() -> tuple[Fleet, Refusing]:
        sink = Refusing()
        fleet = Fleet(config, dataset, sink, max_messages=30)
        await asyncio.wait_for(fleet.run(asyncio.Event()), timeout=30)  # stops by itself
        sink.ack()
        return fleet, sink

    fleet, sink = asyncio.run(scenario())
    assert len(sink.sent) == 30 == sum(s.produced for s in fleet.stats.values())
    assert sum(s.rejected for s in fleet.stats.values()) > 0
