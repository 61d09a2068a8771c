"""Command line: the only module that touches argv, the environment, signals and the event loop
(the grammar of commands and options is `supervisor.arguments`)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import signal
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, cast

from supervisor.arguments import build_parser
from supervisor.config import Config
from supervisor.config.loading import Overrides, load_env, load_yaml
from supervisor.errors import ConfigError, DatasetError, ExitCode, SupervisorError
from supervisor.signals import EarlySignals
from supervisor.telemetry import logs

if TYPE_CHECKING:
    from supervisor.telemetry.console import LiveStatus

DEFAULT_CONFIG = Path("config.yaml")
HEALTH_PORT_ENV = "HEALTH_PORT"
"""Also serve /healthz, /readyz and /metrics on this port (see `_served_ports`)."""

ENV_ONLY_VARS = (
    "DATASET_URI",
    "PRODUCE_INTERVAL",
    "MIN_RECORDS_PER_BATCH",
    "MAX_RECORDS_PER_BATCH",
)
"""The original producer's variables read only without a config file (the others,
KAFKA_BOOTSTRAP_SERVERS, KAFKA_TOPIC, ENDPOINT_URL, KEY and SECRET, win over a file too)."""


def config_file(path: Path | None) -> Path | None:
    """The config file to read: the one given, else ./config.yaml if it exists, else none
    (the environment then defines one profile, as for the original producer)."""
    if path is not None:
        return path
    return DEFAULT_CONFIG if DEFAULT_CONFIG.exists() else None


def overrides(args: argparse.Namespace) -> Overrides:
    """What `run`'s quick-run flags set (nothing for the other commands)."""
    return Overrides(
        bootstrap_servers=getattr(args, "bootstrap_servers", None),
        topic=getattr(args, "topic", None),
        dataset_uri=getattr(args, "dataset", None),
        profiles=tuple(getattr(args, "profile", None) or ()),
        interval_s=getattr(args, "interval", None),
        min_records=getattr(args, "min", None),
        max_records=getattr(args, "max", None),
    )


def load_config(path: Path | None, changes: Overrides | None = None) -> Config:
    """The config from `config_file(path)`, or from the original producer's environment
    variables, with the command line's `changes` on top. Says which file was picked when none
    was named, and which of those variables a file makes it ignore."""
    found = config_file(path)
    if found is None:
        return load_env(overrides=changes)
    ignored = [var for var in ENV_ONLY_VARS if os.environ.get(var)]
    log = logs.get_logger()
    if ignored:
        log.warning(
            "environment_ignored",
            config=str(found),
            variables=ignored,
            note="a config file is in use; these apply only without one (pass the values in"
            " the file, or run where there is no config.yaml)",
        )
    elif path is None:
        log.info("config_found", config=str(found), note="./config.yaml, as no --config was given")
    return load_yaml(found, overrides=changes)


def _in_users_terms(message: str, args: argparse.Namespace) -> str:
    """An error message naming the knob the user actually set: without a config file the
    dataset comes from DATASET_URI, not `dataset.uri`."""
    if args.command in ("run", "check", "rate") and config_file(args.config) is None:
        return message.replace("dataset.uri", "DATASET_URI")
    return message


def _cmd_run(args: argparse.Namespace) -> int:
    from supervisor.summary_file import check_summary_path

    if args.summary is not None:  # checked now, not found unwritable at the end of a long run
        args.summary = check_summary_path(args.summary)
    args.config = config_file(args.config)  # kept: SIGHUP re-reads it
    changes = overrides(args)
    config = load_config(args.config, changes)
    # A reload re-reads the file alone: it would silently drop what the command line set.
    args.reloadable = args.config is not None and changes == Overrides()
    static = {"instance": config.instance}
    if not config.shard.split.alone:
        static["shard"] = str(config.shard.split)
    args.log_output = logs.configure(
        fmt=args.log_format, level="debug" if args.debug else "info", static=static
    )
    try:
        import uvloop

        loop_factory: Any = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop is a dependency everywhere but Windows
        loop_factory = None
    with _pid_file(args.pid_file), asyncio.Runner(loop_factory=loop_factory) as runner:
        return int(runner.run(_run(config, args)))


@contextlib.contextmanager
def _pid_file(path: Path | None) -> Iterator[None]:
    """This process's id in `path` while it runs (removed at exit if it is still ours)."""
    if path is None:
        yield
        return
    pid = str(os.getpid())
    try:
        path.write_text(pid + "\n", encoding="ascii")
    except OSError as exc:
        raise ConfigError(
            f"cannot write --pid-file {path}: {exc.strerror or exc} — choose another path"
        ) from None
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            if path.read_text(encoding="ascii").strip() == pid:
                path.unlink()


async def _run(config: Config, args: argparse.Namespace) -> int:
    from supervisor.app import serve
    from supervisor.telemetry.metrics import MetricsServer, Telemetry

    log = logs.get_logger()
    stop, force, reload = asyncio.Event(), asyncio.Event(), asyncio.Event()
    # The metrics endpoint starts first so /healthz and /readyz answer during the dataset load.
    telemetry: Telemetry | None = None
    servers: list[MetricsServer] = []
    # A dry run serves nothing: stdout is for the messages. Its config keeps the file's `metrics`
    # all the same, or a SIGHUP would see them changed and refuse every reload.
    ports = [] if args.dry_run else _served_ports(config.metrics.port, os.environ)
    if ports:
        split = config.shard.split
        telemetry = Telemetry(instance_id=config.instance, shard=(split.index, split.count))
    for port in ports:
        assert telemetry is not None
        servers.append(MetricsServer(telemetry, host=config.metrics.host, port=port))
        servers[-1].start()
        log.info("metrics_serving", url=servers[-1].url, paths=["/metrics", "/healthz", "/readyz"])

    def on_signal(name: str) -> None:
        if telemetry is not None:
            telemetry.shutdown_started()
        if not stop.is_set():
            log.info("shutdown_requested", signal=name, note="draining; send again to stop now")
            stop.set()
        else:
            log.warning("shutdown_forced", signal=name)
            force.set()

    def on_hangup() -> None:
        if args.config is None:
            log.warning("reload_unavailable", note="no config file: running from the environment")
        elif not args.reloadable:
            log.warning("reload_unavailable", note="the command line sets part of the config")
        else:
            # Set until the reloader takes it: one asked for before the fleet runs (during the
            # start-up, the dataset load, the wait for Kafka) is applied once it does.
            log.info("reload_requested", signal="SIGHUP", path=str(args.config))
            reload.set()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig.name)
    loop.add_signal_handler(signal.SIGHUP, on_hangup)
    if args.early is not None:  # asked for while the process was starting
        args.early.replay(on_stop=on_signal, on_reload=on_hangup)
    if args.duration is not None:

        def on_duration() -> None:
            if not stop.is_set():
                log.info("duration_reached", duration_s=args.duration)
                if telemetry is not None:
                    telemetry.shutdown_started()
                stop.set()

        loop.call_later(args.duration, on_duration)
    status = _live_status(args)
    try:
        async with contextlib.AsyncExitStack() as stack:
            if telemetry is not None:  # beats through the drain too: the loop is alive then
                await stack.enter_async_context(telemetry.heartbeat.running())
            if status is not None:
                stack.enter_context(status)
            code, summary = await serve(
                config,
                stop=stop,
                force=force,
                startup_timeout_s=args.startup_timeout,
                summary_path=args.summary,
                config_path=args.config if args.reloadable else None,
                reload=reload,
                telemetry=telemetry,
                dry_run=sys.stdout.buffer if args.dry_run else None,
                max_messages=args.max_messages,
                log_output=args.log_output,
                watch=None if status is None else status.watch,
            )
    finally:
        for server in servers:
            await asyncio.to_thread(server.close)
    if args.log_output.for_people:
        from supervisor.telemetry.console import summary_table

        summary_table(summary, exit_code=code, stream=cast(TextIO, args.log_output))
    return code


def _live_status(args: argparse.Namespace) -> LiveStatus | None:
    """The refreshed-in-place status, only for a person at a terminal (and not when the dry
    run's messages go to that same terminal)."""
    if not (args.log_output.for_people and args.log_output.isatty()):
        return None
    if args.dry_run and sys.stdout.isatty():
        return None
    from supervisor.telemetry.console import LiveStatus

    return LiveStatus(sys.stderr)


def _served_ports(metrics_port: int | None, env: Mapping[str, str]) -> list[int]:
    """`metrics.port`, and env `HEALTH_PORT` when set to another port: the container image sets
    it, so that its health check and Kubernetes' probes find /healthz and /readyz whatever the
    config says about metrics."""
    ports = [] if metrics_port is None else [metrics_port]
    text = env.get(HEALTH_PORT_ENV, "").strip()
    if text:
        if not text.isdigit() or not 1 <= int(text) <= 65535:
            raise ConfigError(f"{HEALTH_PORT_ENV}: {text!r} is not a TCP port (1-65535)")
        if int(text) not in ports:
            ports.append(int(text))
    return ports


def _cmd_check(args: argparse.Namespace) -> int:
    from supervisor.checks import config_check_failed, run_checks

    out = cast(TextIO, _Stdout())
    try:
        config = load_config(args.config, overrides(args))
    except ConfigError as exc:
        return config_check_failed(exc, out=out)
    return run_checks(config, out=out, timeout_s=args.timeout)


def _cmd_rate(args: argparse.Namespace) -> int:
    from supervisor.rates import rate_table

    _Stdout().write(rate_table(load_config(args.config)))
    return ExitCode.OK


def _cmd_schema(args: argparse.Namespace) -> int:
    from supervisor.formats.schemas import Column, label_schema, transaction_schema

    if args.label:
        text = label_schema(args.format)
    else:
        columns: tuple[Column, ...] = ()
        settings = load_config(args.config, overrides(args)).dataset
        if settings.extra_columns == "keep":  # which columns, the dataset says
            columns = tuple(settings.load().columns.items())
        text = transaction_schema(args.format, columns)
        if columns and args.format != "protobuf":
            text = json.dumps(json.loads(text), indent=2, ensure_ascii=False) + "\n"
    _Stdout().write(text)
    return ExitCode.OK


class _Stdout(io.TextIOBase):
    """Standard output for a command's report, whose reader may go away early (`check | head`):
    the rest is then discarded quietly (stdout pointed at the null device, so that the
    interpreter's last flush does not fail either), and the command still ends with its own exit
    code."""

    def __init__(self) -> None:
        self._gone = False

    def write(self, text: str) -> int:
        if not self._gone:
            try:
                sys.stdout.write(text)
            except BrokenPipeError:
                self._leave()
        return len(text)

    def flush(self) -> None:
        if not self._gone:
            try:
                sys.stdout.flush()
            except BrokenPipeError:
                self._leave()

    def _leave(self) -> None:
        self._gone = True
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)


def _cmd_generate(args: argparse.Namespace) -> int:
    from supervisor.dataset.synth import generate, header, write

    cards = args.cards or 0
    if str(args.out) == "-":  # stdout, as the usual convention goes; logs stay on stderr
        import csv

        writer = csv.writer(sys.stdout, lineterminator="\n")
        try:
            writer.writerow(header(cards))
            writer.writerows(generate(args.rows, args.seed, cards=cards))
            sys.stdout.flush()
        except BrokenPipeError:  # `| head`: the reader had what it wanted
            with contextlib.suppress(OSError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return ExitCode.OK
    try:
        write(args.out, rows=args.rows, seed=args.seed, cards=cards)
    except OSError as exc:
        raise DatasetError(
            f"cannot write {args.out}: {exc.strerror or exc} — choose another --out path"
        ) from None
    logs.get_logger().info("dataset_written", path=str(args.out), rows=args.rows, seed=args.seed)
    return ExitCode.OK


def main(argv: Sequence[str] | None = None, *, early: EarlySignals | None = None) -> int:
    """The command line (`supervisor.__main__` installs `early` before importing this)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.early = early
    if early is not None and args.command != "run":  # no event loop to hand signals to
        code = early.release()
        if code is not None:
            return code
    logs.configure(fmt=args.log_format, level="debug" if args.debug else "info")
    log = logs.get_logger()
    try:
        code = int(_HANDLERS[args.command](args))
    except SupervisorError as exc:
        error = _in_users_terms(str(exc), args)
        log.error("fatal", error=error, exit_code=int(exc.exit_code), exc_info=args.debug)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        log.critical(
            "internal_error",
            error=f"{type(exc).__name__}: {exc}",
            hint="this is a bug; run again with --debug for the traceback",
            exc_info=args.debug,
        )
        return ExitCode.INTERNAL
    if sys.stderr is not None:  # None when the process was started without one
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.flush()
    return code


_HANDLERS = {
    "run": _cmd_run,
    "check": _cmd_check,
    "rate": _cmd_rate,
    "schema": _cmd_schema,
    "generate-dataset": _cmd_generate,
}
