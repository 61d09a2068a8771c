"""The evaluation's cost to the producing path: throughput with `evaluation:` on vs off.

In-process, as the throughput group (`benchmarks.throughput._drive`): one saturated profile through
`supervisor.app.serve()` under uvloop, timed from its first batch until the sink has flushed. With
evaluation on, the run also reads an (empty) alerts topic on its own thread, and every batch is
recorded in the `SentLog` and indexed by that thread (the per-message work the evaluation adds);
the final listening window (`timeout_s` after the last send) is excluded from the timing, through a
subclass of `Evaluation` patched into `supervisor.app` that notes when it begins. Judging alerts
is per alert, not per message, and alerts are few next to events: not measured here.

Series, interleaved, on one fresh Tansu per round, each on its own 3-partition topic:
- fast off / fast on: the fast path, `id: fresh`, `timestamp: now`;
- card-testing off / on: the stream path with a card-testing scenario (~1% of events fraud), as
  the throughput group's `run card-testing` without labels.
Each ratio on/off is taken within a round, then the median over rounds. A last table measures the
memory the evaluation keeps per event sent (tracemalloc over indexing 200,000 events).
"""

from __future__ import annotations

import asyncio
import time
import tracemalloc
import uuid
from typing import Any
from unittest import mock

import uvloop

import supervisor.app
from benchmarks import throughput
from benchmarks.harness import SEED_DATASET, Context, GroupResult, Table, Target, median
from realservices import TansuBroker, start_tansu
from supervisor.config import Config
from supervisor.evaluation import Evaluation
from supervisor.evaluation.ledger import SentLog
from supervisor.evaluation.scoring import Scorer
from supervisor.lifecycle import ShutdownBudget

CARD_TESTING = {
    key: value for key, value in throughput.SHAPED["run card-testing"].items() if key != "labels"
}
SERIES: dict[str, tuple[dict[str, Any], bool]] = {
    "fast off": ({"id": "fresh", "timestamp": "now"}, False),
    "fast on": ({"id": "fresh", "timestamp": "now"}, True),
    "card-testing off": (CARD_TESTING, False),
    "card-testing on": (CARD_TESTING, True),
}


def run_series(
    bootstrap: str, topic: str, alerts: str, messages: int, profile: dict[str, Any], on: bool
) -> dict[str, Any]:
    document: dict[str, Any] = {
        "kafka": {"bootstrap_servers": bootstrap, "topic": topic},
        "dataset": {"uri": str(SEED_DATASET)},
        "profiles": {"flood": throughput.FLOOD_PROFILE | profile},
        "shutdown_timeout_s": 120,
    }
    if on:
        document["evaluation"] = {"alerts_topic": alerts, "timeout_s": 30}
    config = Config.model_validate(document).with_source("benchmarks.evaluation")
    finished: list[float] = []
    remembered: list[int] = []

    class TimedEvaluation(Evaluation):
        async def finish(self, budget: ShutdownBudget) -> None:
            finished.append(time.monotonic())
            budget.force.set()  # the listening window is not the producing path's: skip it
            await super().finish(budget)
            remembered.append(self._scorer.remembered)

    with (
        mock.patch.object(supervisor.app, "Evaluation", TimedEvaluation),
        asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner,
    ):
        got = runner.run(throughput._drive(config, messages))
    if on:
        # Timed to the start of the final window (the sink flushed), not to serve()'s return.
        got["elapsed_s"] = round(got["elapsed_s"] - (time.monotonic() - finished[0]), 3)
        got["msg_per_s"] = got["delivered"] / got["elapsed_s"]
        got["remembered"] = remembered[0]
    return got


def bytes_per_event(events: int = 200_000, batch: int = 1000) -> float:
    """What the evaluation keeps per event sent (its id, sliced from the value by the `SentLog`,
    and the scorer's index entry), measured with tracemalloc."""
    values = [b'{"id":"' + str(uuid.UUID(int=i)).encode() + b'","amount":1}' for i in range(events)]
    tracemalloc.start()
    log, scorer = SentLog(), Scorer(timeout_s=30)
    before = tracemalloc.get_traced_memory()[0]
    for start in range(0, events, batch):
        log.sent(values[start : start + batch], batch, start)
        scorer.index(log.take())
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return used / events


def run(ctx: Context) -> GroupResult:
    rounds, messages = (1, 100_000) if ctx.quick else (5, 300_000)
    result = GroupResult(
        "evaluation",
        method="in-process serve() under uvloop, evaluation on vs off; "
        f"{rounds} round(s) of {messages:,} messages, one fresh Tansu per round",
    )
    names = list(SERIES)
    per_round: list[dict[str, dict[str, Any]]] = []
    for r in range(rounds):
        broker: TansuBroker = start_tansu()
        try:
            got: dict[str, dict[str, Any]] = {}
            order = names[r % len(names) :] + names[: r % len(names)]
            for series in order:
                ctx.log(f"evaluation round {r + 1}/{rounds}: {series}")
                tag = series.replace(" ", "-")
                topic = ctx.new_topic(broker.bootstrap, tag)
                alerts = ctx.new_topic(broker.bootstrap, f"{tag}-alerts", partitions=1)
                profile, on = SERIES[series]
                got[series] = run_series(broker.bootstrap, topic, alerts, messages, profile, on)
                cpu = got[series]["client_cpu_s"]
                got[series]["client_cpu_us_per_msg"] = 1e6 * cpu / got[series]["messages"]
            per_round.append(got)
        finally:
            broker.stop()
    result.data["rounds"] = per_round
    table = Table(
        f"Evaluation on vs off: {messages:,} messages per series, {rounds} round(s), median "
        "delivered msg/s; ratio on/off within each round",
        ["series", "delivered msg/s", "min", "max", "on/off", "client CPU us/msg", "failed"],
    )
    summary: dict[str, dict[str, float]] = {}
    for series in names:
        runs = [got[series] for got in per_round]
        rates = [x["msg_per_s"] for x in runs]
        off = series.replace(" on", " off")
        ratios = [got[series]["msg_per_s"] / got[off]["msg_per_s"] for got in per_round]
        summary[series] = {"msg_per_s": median(rates), "ratio_to_off": median(ratios)}
        table.add(
            series,
            median(rates),
            min(rates),
            max(rates),
            median(ratios),
            median([x["client_cpu_us_per_msg"] for x in runs]),
            sum(x["failed"] for x in runs),
        )
    per_event = bytes_per_event()
    summary["memory"] = {"bytes_per_event": per_event}
    table.notes.append(
        f"memory: {per_event:.0f} B kept per event sent, for 2 x timeout_s "
        "(at 10,000 msg/s and timeout_s 30: "
        f"{per_event * 10_000 * 60 / 1e6:.0f} MB)"
    )
    result.data["summary"] = summary
    result.tables.append(table)
    for path in ("fast", "card-testing"):
        ratio = summary[f"{path} on"]["ratio_to_off"]
        result.targets.append(
            Target(
                f"evaluation cost, {path} path",
                "on/off >= 0.90",
                f"{ratio:.2f} ({summary[f'{path} on']['msg_per_s']:,.0f} msg/s)",
                ratio >= 0.90,
            )
        )
    return result
