"""Throughput through the real `run` path against a confluent-kafka reference loop and kcat.

In-process: a `Config` with one saturated profile (batches of 1000) goes to
`supervisor.app.serve()` inside `asyncio.Runner(loop_factory=uvloop.new_event_loop)`, exactly as
the CLI runs it; a watcher task sets the stop Event once the fleet has produced N messages, and the
run is timed from the profile's first batch until `serve()` returns (its flush included). The
fleet is reached through a subclass of `Fleet` patched into `supervisor.app` that only remembers
the instance: nothing is added to the per-message path.

Series, on one broker per round, each on its own 3-partition topic, over the seed's message values
(data/transactions.csv, pre-serialized by `load_dataset`):
- ref:         `produce()` + `poll(0)` with a counting delivery callback, same producer config;
- ref+headers: the same plus the `profile` and `instance` headers the run path adds to every
               message;
- run keep:    the run path's fast path, `id: keep`, `timestamp: keep` (interval 100 us);
- run keep, no headers: the same with `headers: none`, to set beside ref (same messages, no
               header): its client CPU per message over ref's is the cost of the run path itself;
- run fresh/now: the fast path, `id: fresh`, `timestamp: now` (a UUID and a clock read spliced in);
- run card-testing: the stream path (`ProfileStream`) with a labelled card-testing scenario, as
               profiles/card-testing.yaml (fresh/now, Kafka timestamp = event time), ~1% of events
               fraud, labels on a side topic;
- run avro keep, run avro fresh/now: the fast path with `format: avro` (Confluent wire format
               through confluent-kafka's AvroSerializer, on a `mock://` registry): its client CPU
               per message is compared with the JSON series of the same rewrite, in each round;
- run event-time: the stream path with 5% late events, 5% out of order, 1% duplicates and the
               Kafka timestamp = event time (fresh/now);
- kcat:        `kcat -P -l FILE` of the same payloads, same properties: the C client's ceiling
               (its figure includes process start and connection, a few ms).
The two stream-path series tick every 4 ms (`SHAPED_INTERVAL_S`, why below) instead of every 100 us;
both run saturated all the same. Rounds interleave the series; the figure of a series is the
median over rounds, and each ratio is taken within a round (same broker, same minute) before the
median: to ref, and to run fresh/now, the fast path with the same id and timestamp rewrite.
"""

from __future__ import annotations

import asyncio
import os
import random
import resource
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import uvloop
from confluent_kafka import KafkaError, Message, Producer

from benchmarks.harness import (
    SEED_DATASET,
    Context,
    GroupResult,
    Table,
    Target,
    cpu_seconds,
    median,
    produce_all,
    seed_payloads,
    serve_watched,
)
from realservices import TansuBroker, start_tansu
from supervisor.config import PRODUCER_DEFAULTS, Config
from supervisor.fleet import LATENCY_SAMPLES_PER_S, Fleet

BATCH = 1000
INTERVAL_S = 1e-4
"""The shortest interval a profile may have: with batches of 1,000, 10 M msg/s asked, saturated."""
FLOOD_PROFILE: dict[str, Any] = {
    "interval_s": INTERVAL_S,
    "min_records": BATCH,
    "max_records": BATCH,
    "seed": 1,
}
SHAPED_INTERVAL_S = 0.004
"""The shaped series' ticks: 1,000 events every 4 ms, 250,000 msg/s nominal, above what the
stream path sustains, so they run saturated like the other run series (checked: behind schedule
on every tick) while their run clock, which scenario occurrences and every delay follow, still
advances: a saturated profile's run clock is its ticks' deadlines, 4 ms per batch of 1,000, so
it runs at achieved / nominal of real time. At `INTERVAL_S` it would crawl 100 us a batch and every
delayed message would wait for the stop. The timings below are set in that clock, as shares of
the stream: fraud events a share of events, delays a number of ticks."""
SHAPED: dict[str, dict[str, Any]] = {
    # card-testing.yaml at 250k msg/s: ~1% of events are fraud (an occurrence of 10-40 attempts,
    # 25 on average, every 0.01 s of run time, i.e. every 2,500 events), labelled on a side topic.
    "run card-testing": {
        "interval_s": SHAPED_INTERVAL_S,
        "id": "fresh",
        "timestamp": "now",
        "kafka_timestamp": "event",
        "scenario": {
            "kind": "card-testing",
            "every_s": 0.01,
            "min_attempts": 10,
            "max_attempts": 40,
            "min_amount": 0.5,
            "max_amount": 2.0,
            "window_s": 0.25,
        },
        "labels": {"topic": "{labels}", "delay_s": 0.1, "jitter_s": 0.05},
    },
    # Event-time shaping: 5% late (event time up to a minute old), 5% held back and sent out of
    # order (up to 50 ticks later), 1% duplicated (the copy up to 25 ticks later), Kafka timestamp
    # = event time.
    "run event-time": {
        "interval_s": SHAPED_INTERVAL_S,
        "id": "fresh",
        "timestamp": "now",
        "kafka_timestamp": "event",
        "late": {"fraction": 0.05, "max_delay_s": 60},
        "out_of_order": {"fraction": 0.05, "max_delay_s": 0.2},
        "duplicates": {"fraction": 0.01, "max_delay_s": 0.1},
    },
}
FORMATS: dict[str, dict[str, Any]] = {
    # Confluent wire-format Avro (confluent-kafka's AvroSerializer, schemas/transaction.avsc) on
    # an in-process mock registry: rows serialized once at start, ids and timestamps spliced.
    "run avro keep": {"id": "keep", "timestamp": "keep", "format": "avro"},
    "run avro fresh/now": {"id": "fresh", "timestamp": "now", "format": "avro"},
}
RUN_SERIES: dict[str, dict[str, Any]] = {
    "run keep": {"id": "keep", "timestamp": "keep"},
    "run keep, no headers": {"id": "keep", "timestamp": "keep", "headers": "none"},
    "run fresh/now": {"id": "fresh", "timestamp": "now"},
    **FORMATS,
    **SHAPED,
}
AVRO_OF: dict[str, str] = {"run avro keep": "run keep", "run avro fresh/now": "run fresh/now"}
"""Each Avro series and the JSON series it is compared with (CPU per message, same round)."""
SERIES = ("ref", "ref+headers", *RUN_SERIES, "kcat")


def producer_config(bootstrap: str) -> dict[str, Any]:
    """The sink's producer properties (supervisor.config.PRODUCER_DEFAULTS) for `bootstrap`."""
    return {**PRODUCER_DEFAULTS, "bootstrap.servers": bootstrap}


def _client_cpu_s() -> float:
    """CPU seconds of this process (all threads) and of its reaped children (kcat)."""
    me, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


# --------------------------------------------------------------------------------------------
# Reference: produce() + poll(0), no event loop
# --------------------------------------------------------------------------------------------


def reference(
    bootstrap: str, topic: str, payloads: list[bytes], *, headers: bool
) -> dict[str, Any]:
    producer = Producer(producer_config(bootstrap))
    counts = {"delivered": 0, "failed": 0}

    def count(err: KafkaError | None, _msg: Message) -> None:
        counts["failed" if err is not None else "delivered"] += 1

    # The headers the run path puts on every message of profile "flood" (supervisor.fleet).
    run_headers: list[tuple[str, str | bytes | None]] = [
        ("profile", b"flood"),
        ("instance", socket.gethostname().encode()),
    ]
    hdrs = run_headers if headers else None
    producer.produce(topic, b"{}")  # warm-up: connection and producer id, not timed
    producer.flush(15)
    cpu0 = _client_cpu_s()
    start = time.perf_counter()
    buffer_full = produce_all(producer, topic, payloads, count, hdrs)
    left = producer.flush(120)
    elapsed = time.perf_counter() - start
    cpu_s = _client_cpu_s() - cpu0
    producer.close()
    return {
        "messages": len(payloads),
        "delivered": counts["delivered"],
        "failed": counts["failed"] + left,
        "elapsed_s": round(elapsed, 3),
        "msg_per_s": counts["delivered"] / elapsed,
        "buffer_full": buffer_full,
        "client_cpu_s": cpu_s,
    }


# --------------------------------------------------------------------------------------------
# The real run path, in-process
# --------------------------------------------------------------------------------------------


def run_path(bootstrap: str, topic: str, messages: int, profile: dict[str, Any]) -> dict[str, Any]:
    """`messages` through serve() with one profile named "flood" (`profile` over
    `FLOOD_PROFILE`), timed from its first batch until serve() returns."""
    document: dict[str, Any] = {
        "kafka": {"bootstrap_servers": bootstrap, "topic": topic},
        "dataset": {"uri": str(SEED_DATASET)},
        "profiles": {"flood": FLOOD_PROFILE | profile},
        "shutdown_timeout_s": 120,
    }
    if profile.get("format", "json") != "json":
        document["schema_registry"] = {"url": "mock://benchmark"}
    config = Config.model_validate(document).with_source("benchmarks.throughput")
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(_drive(config, messages))


async def _drive(config: Config, messages: int) -> dict[str, Any]:
    fleets: list[Fleet] = []

    class RememberedFleet(Fleet):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            fleets.append(self)

    cpu0: float | None = None

    async def watch(serving: asyncio.Future[Any]) -> None:
        """Until `messages` are produced (then serve_watched stops the run)."""
        nonlocal cpu0
        while not serving.done():
            stats = fleets[0].stats.get("flood") if fleets else None
            if cpu0 is None and stats is not None and stats.first_batch_at is not None:
                cpu0 = _client_cpu_s()  # the run has started (within the watcher's 5 ms)
            if stats is not None and stats.produced >= messages:
                return
            await asyncio.wait({serving}, timeout=0.005)  # the watcher's poll

    code, summary = await serve_watched(config, RememberedFleet, watch)
    ended = time.monotonic()
    cpu_s = _client_cpu_s() - (cpu0 or 0.0)
    stats = fleets[0].stats["flood"]
    if summary is None or stats.first_batch_at is None:
        raise RuntimeError(f"the run produced nothing (exit code {code})")
    elapsed = ended - stats.first_batch_at
    entry = summary["profiles"]["flood"]
    labels = entry["labels"] or {"produced": 0, "delivered": 0, "failed": 0, "undelivered": 0}
    settings = config.profiles["flood"]
    # Events and their labels are all messages the run put into Kafka; each count apart below.
    delivered = entry["delivered"] + labels["delivered"]
    return {
        "messages": entry["produced"] + labels["produced"],
        "delivered": delivered,
        "failed": entry["failed"] + entry["undelivered"] + labels["failed"] + labels["undelivered"],
        "elapsed_s": round(elapsed, 3),
        "msg_per_s": delivered / elapsed,
        "batches": entry["batches"],
        "behind_schedule": entry["behind_schedule"],
        "run_clock_s": round(entry["batches"] * settings.interval_s, 6),
        "events": entry["produced"],
        "labels": labels["produced"],
        "late": entry["late"],
        "reordered": entry["reordered"],
        "duplicates": entry["duplicates"],
        "fraud_events": entry["fraud_events"],
        "scenarios": entry["scenarios"],
        "exit_code": int(code),
        "latency_ms": entry["latency_ms"],
        "latency_samples": stats.latency.count,
        "latency_every": max(1, round(settings.records_per_s / LATENCY_SAMPLES_PER_S)),
        "client_cpu_s": cpu_s,
    }


# --------------------------------------------------------------------------------------------
# kcat, the C client's ceiling
# --------------------------------------------------------------------------------------------


def find_kcat() -> tuple[str | None, str]:
    """kcat's path, installing Debian's package when missing and running as root."""
    found = shutil.which("kcat")
    if found:
        return found, ""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return None, "kcat not installed (apt-get install kcat as root to add the C ceiling)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "kcat"]
    if subprocess.run(install, env=env, capture_output=True, check=False).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, check=False)
        subprocess.run(install, env=env, capture_output=True, check=False)
    found = shutil.which("kcat")
    return (found, "kcat installed with apt-get") if found else (None, "kcat install failed")


def kcat_library_dir(work_dir: Path) -> Path:
    """A directory holding `librdkafka.so.1` -> the wheel's librdkafka: Debian's own is too old
    for Tansu (see REAL-SERVICES.md)."""
    import confluent_kafka

    libs = Path(confluent_kafka.__file__).resolve().parent.parent / "confluent_kafka.libs"
    library = next(libs.glob("librdkafka*.so*"))
    directory = work_dir / "kcat-lib"
    directory.mkdir(exist_ok=True)
    link = directory / "librdkafka.so.1"
    if not link.exists():
        link.symlink_to(library)
    return directory


def kcat(
    binary: str, lib_dir: Path, bootstrap: str, topic: str, payload_file: Path, messages: int
) -> dict[str, Any]:
    argv = [binary, "-P", "-b", bootstrap, "-t", topic, "-l", str(payload_file)]
    for key, value in producer_config(bootstrap).items():
        if key != "bootstrap.servers":
            argv += ["-X", f"{key}={str(value).lower() if isinstance(value, bool) else value}"]
    env = {**os.environ, "LD_LIBRARY_PATH": str(lib_dir)}
    cpu0 = _client_cpu_s()
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, check=False)
    elapsed = time.perf_counter() - start
    cpu_s = _client_cpu_s() - cpu0
    failed = done.stderr.count("Delivery failed") if done.returncode == 0 else messages
    delivered = messages - failed
    return {
        "messages": messages,
        "delivered": delivered,
        "failed": failed,
        "elapsed_s": round(elapsed, 3),
        "msg_per_s": delivered / elapsed,
        "exit_code": done.returncode,
        "stderr_tail": done.stderr[-300:],
        "client_cpu_s": cpu_s,
    }


def kcat_version(binary: str, lib_dir: Path) -> str:
    env = {**os.environ, "LD_LIBRARY_PATH": str(lib_dir)}
    out = subprocess.run([binary, "-V"], env=env, capture_output=True, text=True, check=False)
    lines = [line.strip() for line in out.stdout.splitlines() if "version" in line.lower()]
    return "; ".join(lines) or out.stdout.strip()[:100]


# --------------------------------------------------------------------------------------------
# Group
# --------------------------------------------------------------------------------------------


def _series(
    series: str,
    bootstrap: str,
    topic: str,
    payloads: list[bytes],
    payload_file: Path,
    labels_topic: str | None,
) -> dict[str, Any]:
    if series == "ref":
        return reference(bootstrap, topic, payloads, headers=False)
    if series == "ref+headers":
        return reference(bootstrap, topic, payloads, headers=True)
    if series in RUN_SERIES:
        profile = dict(RUN_SERIES[series])
        if "labels" in profile:
            assert labels_topic is not None
            profile["labels"] = profile["labels"] | {"topic": labels_topic}
        return run_path(bootstrap, topic, len(payloads), profile)
    binary, _ = find_kcat()
    assert binary is not None
    return kcat(
        binary, kcat_library_dir(payload_file.parent), bootstrap, topic, payload_file, len(payloads)
    )


def _latency_note(runs: list[dict[str, Any]]) -> str:
    """Delivery latency p99 (the depth of librdkafka's queue when saturated), when the fleet's
    sampling (one delivery in `rate / LATENCY_SAMPLES_PER_S`) observed enough of them."""
    samples = min(x["latency_samples"] for x in runs)
    if samples < 100:
        return (
            f"latency: {samples} sample(s) a run, no p99 (1 delivery in "
            f"{runs[0]['latency_every']:,} observed at this nominal rate)"
        )
    p99 = median([x["latency_ms"]["p99"] or float("nan") for x in runs])
    return f"latency p99 {p99:.0f} ms (queue depth; >= {samples:,} samples a run)"


def _shaping_note(runs: list[dict[str, Any]]) -> str:
    """What a shaped series actually did, summed over its rounds, and whether it was saturated."""
    events = sum(x["events"] for x in runs)
    behind, batches = sum(x["behind_schedule"] for x in runs), sum(x["batches"] for x in runs)
    speed = median([x["run_clock_s"] / x["elapsed_s"] for x in runs])
    parts = []
    fraud = sum(x["fraud_events"] for x in runs)
    if fraud:
        occurrences = sum(sum(k["occurrences"] for k in x["scenarios"].values()) for x in runs)
        parts.append(
            f"fraud {100 * fraud / events:.2f}% of events ({occurrences:,} occurrences), "
            f"{sum(x['labels'] for x in runs):,} labels"
        )
    for key in ("late", "reordered", "duplicates"):
        if any(x[key] for x in runs):
            parts.append(f"{key} {100 * sum(x[key] for x in runs) / events:.2f}%")
    parts.append(f"behind schedule on {behind:,} of {batches:,} ticks, run clock x{speed:.2f}")
    if behind < 0.95 * batches:
        parts.append("NOT saturated: the figure is the nominal rate, not the path's ceiling")
    return "; ".join(parts)


def run(ctx: Context) -> GroupResult:
    rounds, messages = (1, 100_000) if ctx.quick else (5, 400_000)
    result = GroupResult(
        "throughput",
        method="in-process serve() under uvloop (run path) vs produce()+poll(0) and kcat; "
        f"{rounds} round(s) of {messages:,} messages, one fresh Tansu per round",
    )
    values = seed_payloads()
    rng = random.Random(5)
    payloads = rng.choices(values, k=messages)
    payload_file = ctx.path("payloads.txt")
    payload_file.write_bytes(b"\n".join(payloads) + b"\n")
    binary, note = find_kcat()
    lib_dir = kcat_library_dir(ctx.work_dir) if binary else None
    if note:
        result.notes.append(note)
    if binary and lib_dir:
        result.data["kcat"] = {"path": binary, "version": kcat_version(binary, lib_dir)}
    else:
        result.notes.append("kcat series skipped")

    per_round: list[dict[str, dict[str, Any]]] = []
    for r in range(rounds):
        broker: TansuBroker = start_tansu()
        try:
            got: dict[str, dict[str, Any]] = {}
            order = SERIES[r % len(SERIES) :] + SERIES[: r % len(SERIES)]  # no series always last
            for series in order:
                if series == "kcat" and not (binary and lib_dir):
                    continue
                ctx.log(f"throughput round {r + 1}/{rounds}: {series}")
                tag = series.replace(" ", "-").replace("/", "-").replace(",", "")
                topic = ctx.new_topic(broker.bootstrap, tag)
                labels_topic = None
                if "labels" in RUN_SERIES.get(series, {}):
                    labels_topic = ctx.new_topic(broker.bootstrap, f"{tag}-labels")
                broker0 = cpu_seconds(broker.process.pid)
                got[series] = _series(
                    series, broker.bootstrap, topic, payloads, payload_file, labels_topic
                )
                broker_s = cpu_seconds(broker.process.pid) - broker0
                client_s = got[series]["client_cpu_s"]
                got[series]["client_cpu_us_per_msg"] = 1e6 * client_s / got[series]["messages"]
                got[series]["broker_cpu_us_per_msg"] = 1e6 * broker_s / got[series]["messages"]
            per_round.append(got)
        finally:
            broker.stop()

    result.data["rounds"] = per_round
    result.data["messages_per_series"] = messages
    result.data["payload_bytes_mean"] = round(sum(map(len, payloads)) / len(payloads), 1)
    table = Table(
        f"Throughput: {messages:,} messages per series, {rounds} round(s), "
        f"median (min-max) delivered msg/s; ratios within each round",
        [
            "series",
            "delivered msg/s",
            "min",
            "max",
            "ratio to ref",
            "ratio to run fresh/now",
            "failed",
            "client CPU us/msg",
            "CPU/msg to ref",
            "broker CPU us/msg",
            "notes",
        ],
    )
    summary: dict[str, dict[str, float]] = {}
    for series in SERIES:
        runs = [got[series] for got in per_round if series in got]
        if not runs:
            continue
        rates = [x["msg_per_s"] for x in runs]
        ratios = [
            got[series]["msg_per_s"] / got["ref"]["msg_per_s"] for got in per_round if series in got
        ]
        to_fresh = [
            got[series]["msg_per_s"] / got["run fresh/now"]["msg_per_s"]
            for got in per_round
            if series in got and "run fresh/now" in got
        ]
        cpu_to_ref = [
            got[series]["client_cpu_us_per_msg"] / got["ref"]["client_cpu_us_per_msg"]
            for got in per_round
            if series in got
        ]
        failed = sum(x["failed"] for x in runs)
        extra = ""
        if series in RUN_SERIES:
            extra = _latency_note(runs)
        if series in SHAPED:
            extra += "; " + _shaping_note(runs)
        summary[series] = {
            "msg_per_s": median(rates),
            "ratio": median(ratios),
            "ratio_to_fresh_now": median(to_fresh),
            "client_cpu_us_per_msg": median([x["client_cpu_us_per_msg"] for x in runs]),
            "cpu_to_ref": median(cpu_to_ref),
        }
        table.add(
            series,
            median(rates),
            min(rates),
            max(rates),
            median(ratios),
            median(to_fresh),
            failed,
            median([x["client_cpu_us_per_msg"] for x in runs]),
            median(cpu_to_ref),
            median([x["broker_cpu_us_per_msg"] for x in runs]),
            extra,
        )
    table.notes.append(
        "run card-testing and run event-time go through the stream path (ProfileStream) at "
        f"1,000 events every {1000 * SHAPED_INTERVAL_S:g} ms (saturated), the other run series "
        "through the fast path; their msg/s counts events and labels alike"
    )
    table.notes.append(
        f"payloads: {len(values):,} rows of data/transactions.csv, mean "
        f"{result.data['payload_bytes_mean']:.0f} B; producer: "
        + ", ".join(f"{k}={v}" for k, v in PRODUCER_DEFAULTS.items() if k != "client.id")
    )
    result.data["summary"] = summary
    result.tables.append(table)

    for avro, json_series in AVRO_OF.items():
        if avro not in summary or json_series not in summary:
            continue
        cpu_ratios = [
            got[avro]["client_cpu_us_per_msg"] / got[json_series]["client_cpu_us_per_msg"]
            for got in per_round
            if avro in got and json_series in got
        ]
        cpu = median(cpu_ratios) if cpu_ratios else None
        summary[avro]["cpu_ratio_to_json"] = cpu if cpu is not None else float("nan")
        result.targets.append(
            Target(
                f"Avro CPU per message, {json_series.removeprefix('run ')}",
                f"client CPU us/msg <= 1.15 x {json_series}",
                "-"
                if cpu is None
                else f"{cpu:.2f} x ({summary[avro]['client_cpu_us_per_msg']:.2f} vs"
                f" {summary[json_series]['client_cpu_us_per_msg']:.2f} us/msg)",
                None if cpu is None else cpu <= 1.15,
            )
        )

    bare = summary.get("run keep, no headers", {}).get("cpu_to_ref")
    keep = summary.get("run keep", {}).get("ratio")
    fresh = summary.get("run fresh/now", {}).get("ratio")
    result.targets += [
        Target(
            "throughput, id/timestamp keep",
            "ratio to ref >= 1.0",
            f"{keep:.2f} ({summary['run keep']['msg_per_s']:,.0f} msg/s)" if keep else "-",
            None if keep is None else keep >= 1.0,
        ),
        Target(
            "throughput, id fresh / timestamp now",
            "ratio to ref >= 0.6",
            f"{fresh:.2f} ({summary['run fresh/now']['msg_per_s']:,.0f} msg/s)" if fresh else "-",
            None if fresh is None else fresh >= 0.6,
        ),
        Target(
            "client CPU per message, headers: none",
            "<= 1.10 x produce()+poll(0)",
            f"{bare:.2f} x ({summary['run keep, no headers']['client_cpu_us_per_msg']:.2f} vs "
            f"{summary['ref']['client_cpu_us_per_msg']:.2f} us)"
            if bare
            else "-",
            None if bare is None else bare <= 1.10,
        ),
    ]
    return result
