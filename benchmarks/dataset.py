"""Dataset load from S3, and time from start to the first delivered message.

Load: CSVs from `supervisor.dataset.synth.write_csv` (10,000 and 1,000,000 rows; cached under
benchmarks/.cache), and the largest size also as Parquet and JSON Lines (`synth.write`: the same
rows), uploaded to a moto S3 server; each load runs `supervisor.dataset.load_dataset` in a fresh
interpreter (`benchmarks.load_worker`), which reports the load + validate time (imports apart;
pyarrow, which only Parquet and JSON Lines import, is counted in the load) and its RSS: after the
imports, after the load with the Dataset alive, and the peak.

First message: a consumer is assigned to a fresh topic (from the beginning) and polling before
the CLI subprocess is spawned with one normal-preset profile over the 10,000-row dataset from S3;
the figure is spawn to the first record's arrival at that consumer (harness clock), so it includes
interpreter start, imports, the S3 download, validation, connection, the first batch, linger and
the broker's round trip. The CLI's own log timestamps split it into stages.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
import time
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from benchmarks.harness import (
    ROOT,
    Context,
    GroupResult,
    Table,
    Target,
    clean_env,
    config_document,
    median,
    stop_on_exit,
    synth_dataset,
)
from realservices import S3Server, start_s3, start_tansu

BUCKET = "bench"
FORMATS = (".csv", ".parquet", ".jsonl")
STAGES = ("fleet_starting", "dataset_loaded", "kafka_connected", "profile_started")


def run(ctx: Context) -> GroupResult:
    sizes = (10_000, 200_000) if ctx.quick else (10_000, 1_000_000)
    repeats = 1 if ctx.quick else 3
    result = GroupResult(
        "dataset",
        method=f"load_dataset in a fresh subprocess from moto S3 ({repeats} run(s) per size, "
        "median); first message: CLI subprocess + a consumer on the topic",
    )
    with contextlib.ExitStack() as stack:
        s3 = stop_on_exit(stack, start_s3())
        client = s3.client()
        client.create_bucket(Bucket=BUCKET)
        uris: dict[tuple[int, str], str] = {}
        for rows, suffix in [(rows, ".csv") for rows in sizes] + [
            (sizes[-1], suffix) for suffix in FORMATS[1:]
        ]:
            ctx.log(f"dataset: generating/uploading {rows:,} rows ({suffix})")
            path = synth_dataset(rows, suffix=suffix)
            client.upload_file(str(path), BUCKET, path.name)
            uris[rows, suffix] = f"s3://{BUCKET}/{path.name}"
        for suffix in FORMATS:  # warm-up: the bytecode cache, boto3's and pyarrow's lazy imports
            _load(uris[sizes[-1] if suffix != ".csv" else sizes[0], suffix], s3)
        loads = {key: [_load(uri, s3) for _ in range(repeats)] for key, uri in uris.items()}
        small_uri = uris[sizes[0], ".csv"]

        broker = stop_on_exit(stack, start_tansu())
        firsts: dict[str, list[dict[str, Any]]] = {"cached": [], "uncached": []}
        for i in range(repeats + 1):  # run 0 (bytecode cached) is a warm-up, not counted
            for mode in ("cached", "uncached") if i else ("cached",):
                ctx.log(f"dataset: first message, bytecode {mode}, {i}/{repeats}")
                first = _first_message(
                    ctx, broker.bootstrap, s3, small_uri, f"{mode}{i}", mode == "cached"
                )
                if i:
                    firsts[mode].append(first)

    table = Table(
        f"Dataset load + validate from S3 (fresh process, median of {repeats})",
        ["rows", "format", "load s", "rows/s", "import s", "RSS after imports MB",
         "RSS after load MB", "peak RSS MB"],
    )  # fmt: skip
    summary: dict[tuple[int, str], dict[str, float]] = {}
    for (rows, suffix), runs in loads.items():
        s = {key: median([r[key] for r in runs]) for key in runs[0] if key not in ("rows",)}
        summary[rows, suffix] = s
        table.add(
            rows,
            suffix.lstrip("."),
            s["load_s"],
            rows / s["load_s"],
            s["import_s"],
            s["rss_after_imports_mb"],
            s["rss_after_load_mb"],
            s["peak_rss_mb"],
        )
    first_table = Table(
        f"Start to first delivered message, 10,000 rows from S3 (median of {repeats})",
        [
            "bytecode (.pyc)",
            "spawn -> first record at consumer s",
            *(f"-> {s} s (log)" for s in STAGES),
        ],
    )
    for mode, runs in firsts.items():
        first_table.add(
            "cached" if mode == "cached" else "none (PYTHONDONTWRITEBYTECODE=1)",
            median([f["first_record_s"] for f in runs]),
            *(median([f["stages"][s] for f in runs]) for s in STAGES),
        )
    first_table.notes.append(
        "stage times are the CLI's log timestamps minus the spawn time: fleet_starting is the "
        "first line after imports and config"
    )
    result.tables += [table, first_table]
    result.data = {
        "loads": {f"{rows}{suffix}": runs for (rows, suffix), runs in loads.items()},
        "first_message": firsts,
        "bytecode_note": "cached: PYTHONPYCACHEPREFIX=benchmarks/.cache/pycache (as an install "
        "with compiled .pyc); none: every module compiled at start (PYTHONDONTWRITEBYTECODE=1 "
        "and no .pyc, as `uv sync` without --compile-bytecode under that variable)",
    }
    big = max(sizes)
    first_s = median([f["first_record_s"] for f in firsts["cached"]])
    cold_s = median([f["first_record_s"] for f in firsts["uncached"]])
    csv_s, parquet_s = summary[big, ".csv"]["load_s"], summary[big, ".parquet"]["load_s"]
    jsonl_s = summary[big, ".jsonl"]["load_s"]
    result.targets.append(
        Target(
            f"{big:,} rows of Parquet load faster than the CSV",
            "parquet < csv",
            f"{parquet_s:.2f} s vs {csv_s:.2f} s (JSON Lines {jsonl_s:.2f} s)",
            parquet_s < csv_s,
        )
    )
    if big == 1_000_000:
        s = summary[big, ".csv"]
        result.targets += [
            Target(
                "1M rows load + validate",
                "<= 5 s",
                f"{s['load_s']:.2f} s",
                s["load_s"] <= 5.0,
            ),
            Target(
                "1M rows load, peak RSS",
                "<= 500 MB",
                f"{s['peak_rss_mb']:.0f} MB (after load {s['rss_after_load_mb']:.0f} MB)",
                s["peak_rss_mb"] <= 500.0,
            ),
        ]
    else:
        result.targets.append(Target("1M rows load", "<= 5 s, <= 500 MB", "not run", None))
    result.targets.append(
        Target(
            "first message after start, 10k rows",
            "<= 1 s",
            f"{first_s:.2f} s with .pyc cached ({cold_s:.2f} s without)",
            first_s <= 1,
        )
    )
    return result


def _load(uri: str, s3: S3Server) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.load_worker", uri, s3.endpoint_url],
        cwd=ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"load_worker failed: {done.stderr[-2000:]}")
    data: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return data


def _first_message(
    ctx: Context, bootstrap: str, s3: S3Server, uri: str, label: str, bytecode_cache: bool
) -> dict[str, Any]:
    topic = ctx.new_topic(bootstrap, f"first-{label}")
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-first-{topic}",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 5,
            "fetch.queue.backoff.ms": 1,
        }
    )
    arrived: list[float] = []
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            for message in consumer.consume(num_messages=100, timeout=0.005):
                if message.error() is None:
                    arrived.append(time.monotonic())
                    done.set()
                    break

    thread = threading.Thread(target=poll, name="first-message-consumer", daemon=True)
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(3)])
        consumer.consume(num_messages=1, timeout=1.0)  # connected and fetching before the spawn
        cli = ctx.cli_run(
            f"first-{label}",
            config_document(
                bootstrap=bootstrap,
                topic=topic,
                profiles={"normal": {"preset": "normal", "seed": 1}},
                dataset_uri=uri,
                s3_endpoint=s3.endpoint_url,
            ),
            bytecode_cache=bytecode_cache,
        )
        thread.start()
        with cli:
            done.wait(timeout=60)
            first_s = arrived[0] - cli.spawned_mono if arrived else float("nan")
            cli.wait_for("profile_started")
            cli.terminate()
        stages = {stage: cli.event_time(stage) for stage in STAGES}
    finally:
        done.set()
        if thread.is_alive():
            thread.join()
        consumer.close()
    return {"first_record_s": round(first_s, 3), "stages": stages, "exit_code": cli.returncode}
