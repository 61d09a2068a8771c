"""One run of the supervisor, from a validated config to the run summary.

`serve` takes its shutdown triggers as parameters (`stop`: drain and exit; `force`: stop
flushing now), so tests drive a whole run without sending signals; the CLI wires SIGTERM/SIGINT
to them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO

from supervisor.config import Config
from supervisor.dataset import Dataset
from supervisor.errors import ConfigError, ExitCode
from supervisor.evaluation import Evaluation
from supervisor.evaluation.alerts import consumer_config
from supervisor.fleet import Fleet
from supervisor.formats.encodings import Encodings
from supervisor.lifecycle import ShutdownBudget, Stopped, in_thread
from supervisor.profile.feasibility import check_scenarios
from supervisor.reload import Reloader
from supervisor.sinks.contract import ManagedSink
from supervisor.sinks.dryrun import DryRunSink
from supervisor.sinks.kafka import KafkaSink
from supervisor.summary_file import write_summary
from supervisor.telemetry.logs import LogOutput, get_logger
from supervisor.telemetry.metrics import Telemetry
from supervisor.telemetry.stats import ProfileStats
from supervisor.telemetry.summary import RunSummary


async def load(
    config: Config, *, stop: asyncio.Event, telemetry: Telemetry | None = None
) -> Dataset:
    """Load and validate the dataset off the event loop, and log (and report) what was loaded.
    Raises `Stopped` when `stop` is set first: a load that never ends (a pipe, an S3 endpoint
    that never answers) does not hold a stop up."""
    log = get_logger()
    settings = config.dataset
    started = time.monotonic()
    dataset = await in_thread(settings.load, stop=stop, name="dataset-load")
    for bad in dataset.invalid_samples:
        log.warning("dataset_row_skipped", **{bad.unit: bad.line}, reason=bad.reason)
    if dataset.invalid_count > len(dataset.invalid_samples):
        log.warning(
            "dataset_rows_skipped",
            count=dataset.invalid_count,
            shown=len(dataset.invalid_samples),
        )
    if dataset.dropped:
        log.info(
            "dataset_columns_not_sent",
            count=len(dataset.dropped),
            columns=", ".join(dataset.dropped),
            fix="dataset.extra_columns: keep sends them",
        )
    log.info(
        "dataset_loaded",
        source=dataset.source,
        rows=len(dataset),
        invalid_rows=dataset.invalid_count,
        load_s=round(time.monotonic() - started, 3),
        **({"columns": dict(dataset.columns)} if dataset.columns else {}),
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
    log_output: LogOutput | None = None,
    watch: Callable[[Mapping[str, ProfileStats]], None] | None = None,
) -> tuple[ExitCode, dict[str, Any]]:
    """Run the fleet until `stop`; return the exit code and the run summary (all zeros when the
    run stopped before producing anything). Setting `reload` re-reads `config_path` and applies
    it to the running fleet (see `supervisor.reload`). With `dry_run`, messages are written there
    as JSON lines instead of to Kafka; with `max_messages`, the run stops after that many. `force`
    (a second signal) ends whatever stage of the stop is running. The summary counts the log lines
    `log_output` could not write (`log_lines_dropped`), when there were any. `watch` is handed the
    fleet's live counters once they exist (the terminal's status view)."""
    log = get_logger()
    kafka = config.kafka
    registry = config.schema_registry
    encodings = Encodings(registry, dry_run=dry_run is not None)
    sink = _sink(config, stop=stop, telemetry=telemetry, dry_run=dry_run, encodings=encodings)
    log.info(
        "fleet_starting",
        config=config.source,
        bootstrap_servers=sink.destination,
        topic=kafka.topic,
        profiles=list(config.profiles),
        producer_config=None if dry_run is not None else kafka.redacted_config(),
        schema_registry=None if registry is None else registry.redacted(),
        max_messages=max_messages,
    )
    evaluation = _evaluation(config, dry_run=dry_run is not None)
    try:
        dataset = await load(config, stop=stop, telemetry=telemetry)
        check_scenarios(config, dataset)
        await _prepare(encodings, config, dataset, stop=stop)
    except Stopped:
        log.info("dataset_load_abandoned", note="stopped while the dataset was loading")
        return _conclude(
            RunSummary.of([ProfileStats(n) for n in config.profiles], elapsed_s=0, now=0),
            summary_path,
            crashed=False,
            reader_closed=False,
            log_output=log_output,
            evaluation=None,
        )
    sent_log = None if evaluation is None else evaluation.sent
    fleet = Fleet(
        config, dataset, sink, max_messages=max_messages, sent_log=sent_log, encodings=encodings
    )
    if telemetry is not None:
        telemetry.watch(fleet.stats)
    if watch is not None:
        watch(fleet.stats)
    if telemetry is not None and evaluation is not None:
        telemetry.watch_evaluation(evaluation)
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
                if evaluation is not None:
                    evaluation.start()
                async with asyncio.TaskGroup() as tg:
                    if evaluation is not None:
                        interval_s = config.stats_interval_s
                        tg.create_task(evaluation.report(stop, interval_s), name="evaluation")
                    if config_path is not None and reload is not None:
                        reloader = Reloader(
                            config_path, fleet, load=partial(load, stop=stop, telemetry=telemetry)
                        )
                        tg.create_task(reloader.run(reload, stop), name="reload")
                    await fleet.run(stop, budget)
                in_flight = sum(s.in_flight for s in fleet.stats.values())
                log.info("fleet_draining", in_flight=in_flight, timeout_s=budget.remaining_s())
        finally:
            await sink.close(budget)
            encodings.close()
            if evaluation is not None:  # alerts on what was sent, within what is left of budget
                await evaluation.finish(budget)

    now = fleet.clock()
    split = config.shard.split
    result = RunSummary.of(
        list(fleet.stats.values()),
        elapsed_s=now - started,
        now=now,
        shard=(split.index, split.count),
    )
    return _conclude(
        result,
        summary_path,
        crashed=bool(fleet.crashed),
        reader_closed=sink.reader_closed,
        log_output=log_output,
        evaluation=evaluation,
    )


def _conclude(
    result: RunSummary,
    summary_path: Path | None,
    *,
    crashed: bool,
    reader_closed: bool,
    log_output: LogOutput | None,
    evaluation: Evaluation | None,
) -> tuple[ExitCode, dict[str, Any]]:
    """Log the final counters, write the summary, and say how the run ends."""
    log = get_logger()
    document = result.as_dict()
    if log_output is not None and log_output.dropped:
        document["log_lines_dropped"] = log_output.dropped
    if evaluation is not None:
        document["evaluation"] = evaluation.summary()
        log.info("evaluation_stopped", **evaluation.line())
    for name, fields in result.profile_fields().items():
        log.info("profile_stopped", profile=name, **fields)
    log.info("fleet_stopped", **result.total_fields())
    if summary_path is not None:
        try:
            write_summary(summary_path, document)
        except OSError as exc:
            log.error(
                "summary_not_written",
                path=str(summary_path),
                reason=exc.strerror or str(exc),
                note="the summary is the fleet_stopped and profile_stopped lines above",
            )
    if crashed:
        return ExitCode.PROFILE_CRASHED, document
    if reader_closed:
        return ExitCode.OK, document  # `--dry-run | head`: the reader had what it wanted
    shortfall = result.shortfall()
    if shortfall.incomplete:
        log.warning("messages_not_delivered", **shortfall)
        return ExitCode.UNDELIVERED, document
    return ExitCode.OK, document


async def _prepare(
    encodings: Encodings, config: Config, dataset: Dataset, *, stop: asyncio.Event
) -> None:
    """Register or look up the schemas of non-JSON profiles and serialize the dataset for them,
    off the event loop (a registry that never answers does not hold a stop up)."""
    if all(p.format == "json" for p in config.profiles.values()):
        return
    started = time.monotonic()
    ready = await in_thread(encodings.prepare, config, dataset, stop=stop, name="registry")
    log = get_logger()
    for topic in ready:
        log.info("schema_ready", **topic, prepare_s=round(time.monotonic() - started, 3))


def _evaluation(config: Config, *, dry_run: bool) -> Evaluation | None:
    """The run's evaluation of the detector under test, when configured and there is a cluster
    for the detector to read and write."""
    settings = config.evaluation
    if settings is None:
        return None
    if dry_run:
        get_logger().warning("evaluation_off", reason="a dry run sends nothing to a detector")
        return None
    if config.kafka.is_embedded:
        raise ConfigError(
            "evaluation needs a Kafka cluster the detector can reach: set kafka.bootstrap_servers"
            " (the embedded mock cluster lives inside this process)"
        )
    return Evaluation(settings, consumer_config(config))


def _sink(
    config: Config,
    *,
    stop: asyncio.Event,
    telemetry: Telemetry | None,
    dry_run: BinaryIO | None,
    encodings: Encodings,
) -> ManagedSink:
    """Where the run's messages go: the dry run's output (non-JSON values decoded), or Kafka."""
    if dry_run is not None:
        framed = any(p.format != "json" for p in config.profiles.values())
        return DryRunSink(dry_run, stop, decoder=encodings.decoder if framed else None)
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
