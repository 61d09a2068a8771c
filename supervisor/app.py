"""One run of the supervisor, from a validated config to the run summary.

`serve` takes its shutdown triggers as parameters (`stop`: drain and exit; `force`: stop
flushing now), so tests drive a whole run without sending signals; the CLI wires SIGTERM/SIGINT
to them.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO

from supervisor.config import Config
from supervisor.dataset import Dataset, load_dataset
from supervisor.errors import ExitCode
from supervisor.fleet import Fleet
from supervisor.lifecycle import ShutdownBudget
from supervisor.profile.stream import check_scenarios
from supervisor.reload import Reloader
from supervisor.sinks.contract import ManagedSink
from supervisor.sinks.dryrun import DryRunSink
from supervisor.sinks.kafka import KafkaSink
from supervisor.telemetry.logs import get_logger
from supervisor.telemetry.metrics import Telemetry
from supervisor.telemetry.summary import RunSummary


async def load(config: Config, telemetry: Telemetry | None = None) -> Dataset:
    """Load and validate the dataset off the event loop, and log (and report) what was loaded."""
    log = get_logger()
    settings = config.dataset
    started = time.monotonic()
    dataset = await asyncio.to_thread(
        load_dataset, settings.location, s3=settings.s3.connection(), on_invalid=settings.on_invalid
    )
    for bad in dataset.invalid_samples:
        log.warning("dataset_row_skipped", line=bad.line, reason=bad.reason)
    if dataset.invalid_count > len(dataset.invalid_samples):
        log.warning(
            "dataset_rows_skipped",
            count=dataset.invalid_count,
            shown=len(dataset.invalid_samples),
        )
    log.info(
        "dataset_loaded",
        source=dataset.source,
        rows=len(dataset),
        invalid_rows=dataset.invalid_count,
        load_s=round(time.monotonic() - started, 3),
    )
    if telemetry is not None:
        telemetry.dataset_loaded(rows=len(dataset), invalid_rows=dataset.invalid_count)
    return dataset


async def serve(
    config: Config,
    *,
    stop: asyncio.Event,
    force: asyncio.Event,
    startup_timeout_s: float | None = None,
    summary_path: Path | None = None,
    config_path: Path | None = None,
    reload: asyncio.Event | None = None,
    telemetry: Telemetry | None = None,
    dry_run: BinaryIO | None = None,
    max_messages: int | None = None,
) -> tuple[ExitCode, dict[str, Any]]:
    """Run the fleet until `stop`; return the exit code and the run summary (all zeros when the
    run stopped before producing anything). Setting `reload` re-reads `config_path` and applies
    it to the running fleet (see `supervisor.reload`). With `dry_run`, messages are written there
    as JSON lines instead of to Kafka; with `max_messages`, the run stops after that many. `force`
    (a second signal) ends whatever stage of the stop is running."""
    log = get_logger()
    kafka = config.kafka
    sink = _sink(config, stop=stop, telemetry=telemetry, dry_run=dry_run)
    log.info(
        "fleet_starting",
        config=config.source,
        bootstrap_servers=sink.destination,
        topic=kafka.topic,
        profiles=list(config.profiles),
        producer_config=None if dry_run is not None else kafka.redacted_config(),
        max_messages=max_messages,
    )
    dataset = await load(config, telemetry)
    check_scenarios(config, dataset)
    fleet = Fleet(config, dataset, sink, max_messages=max_messages)
    if telemetry is not None:
        telemetry.watch(fleet.stats)
    started = fleet.clock()
    # One budget for the whole stop: shaped profiles' scheduled messages and the sink's flush
    # together end within shutdown_timeout_s of the first signal; a second one ends both at once.
    budget = ShutdownBudget(config.shutdown_timeout_s, force=force)
    async with budget.watching(stop):
        try:
            # Stopped during the load, or before Kafka answered: nothing was produced, and the
            # summary (all zeros) is still logged and written below.
            if not stop.is_set():
                sink.start()
            if not stop.is_set() and await sink.connect(
                fleet.topics(), stop=stop, timeout_s=startup_timeout_s
            ):
                if telemetry is not None:
                    telemetry.kafka_reachable(True)
                started = fleet.clock()
                async with asyncio.TaskGroup() as tg:
                    if config_path is not None and reload is not None:
                        reloader = Reloader(
                            config_path, fleet, load=partial(load, telemetry=telemetry)
                        )
                        tg.create_task(reloader.run(reload, stop), name="reload")
                    await fleet.run(stop, budget)
                in_flight = sum(s.in_flight for s in fleet.stats.values())
                log.info("fleet_draining", in_flight=in_flight, timeout_s=budget.remaining_s())
        finally:
            await sink.close(budget)

    now = fleet.clock()
    split = config.shard.split
    result = RunSummary.of(
        list(fleet.stats.values()),
        elapsed_s=now - started,
        now=now,
        shard=(split.index, split.count),
    )
    document = result.as_dict()
    for name, fields in result.profile_fields().items():
        log.info("profile_stopped", profile=name, **fields)
    log.info("fleet_stopped", **result.total_fields())
    if summary_path is not None:
        write_summary(summary_path, document)
    if fleet.crashed:
        return ExitCode.PROFILE_CRASHED, document
    if sink.reader_closed:
        return ExitCode.OK, document  # `--dry-run | head`: the reader had what it wanted
    shortfall = result.shortfall()
    if shortfall.incomplete:
        log.warning("messages_not_delivered", **shortfall)
        return ExitCode.UNDELIVERED, document
    return ExitCode.OK, document


def _sink(
    config: Config,
    *,
    stop: asyncio.Event,
    telemetry: Telemetry | None,
    dry_run: BinaryIO | None,
) -> ManagedSink:
    """Where the run's messages go: the dry run's output, or Kafka."""
    if dry_run is not None:
        return DryRunSink(dry_run, stop)
    kafka = config.kafka
    # Creating the producer validates every librdkafka property (ConfigError) before the dataset
    # load, which may take seconds; nothing is sent until the delivery thread starts.
    return KafkaSink(
        kafka.producer_config(),
        embedded=kafka.is_embedded,
        servers_label=kafka.bootstrap_servers,
        on_reachable=None if telemetry is None else telemetry.kafka_reachable,
        on_statistics=None if telemetry is None else telemetry.librdkafka.update,
    )


def write_summary(path: Path, summary: dict[str, Any]) -> None:
    """Write the summary atomically: a reader never sees a half-written file."""
    path = path.expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(summary, f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
