"""Command line: the only module that touches argv, the environment, signals and the event loop."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from supervisor import __version__
from supervisor.config import Config, MetricsSettings
from supervisor.errors import ConfigError, DatasetError, ExitCode, SupervisorError
from supervisor.telemetry import logs

DEFAULT_CONFIG = Path("config.yaml")
HEALTH_PORT_ENV = "HEALTH_PORT"
"""Also serve /healthz, /readyz and /metrics on this port (see `_served_ports`)."""

EPILOG = """exit codes:
  0  stopped on request, every message delivered
  1  internal error (a bug: run again with --debug for the traceback)
  2  bad config, dataset or environment; nothing was sent
  3  stopped, but messages failed or were left undelivered
  4  Kafka unreachable within --startup-timeout
  5  a profile kept crashing past its restart limit
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="streaming-producer",
        description="Stream transactions sampled from a dataset into Kafka, one task per profile.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--debug", action="store_true", help="debug logs, and a traceback with any error"
    )
    common.add_argument(
        "--log-format",
        choices=("auto", "json", "console"),
        default="auto",
        help="log format on stderr (auto: console on a terminal, JSON lines otherwise)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser(
        "run",
        parents=[common],
        help="run every profile of the config until SIGTERM/SIGINT",
        description="Run every profile of the config until SIGTERM or SIGINT. The first signal"
        " stops scheduling and flushes what is in flight (up to shutdown_timeout_s); a second"
        " one stops flushing at once and reports what was left undelivered. SIGHUP re-reads the"
        " config file and applies it live (so does any change to it with `reload: watch`).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument(
        "--config",
        type=Path,
        help="config file (default ./config.yaml; without one, the seed's environment variables"
        " PRODUCE_INTERVAL, MIN_RECORDS_PER_BATCH, MAX_RECORDS_PER_BATCH define one profile)",
    )
    run.add_argument("--summary", type=Path, help="write a JSON run summary here at exit")
    run.add_argument(
        "--startup-timeout",
        type=_positive_float,
        metavar="SECONDS",
        help="give up (exit 4) if Kafka is unreachable this long at start (default: keep trying)",
    )
    run.add_argument(
        "--dry-run",
        action="store_true",
        help="write the messages to stdout as JSON lines (topic, key, headers, timestamp, value)"
        " instead of sending them to Kafka; no broker needed",
    )
    run.add_argument(
        "--max-messages",
        type=_positive_int,
        metavar="N",
        help="stop after N messages (all profiles together; fraud labels not counted), then"
        " drain and exit",
    )
    run.set_defaults(handler=_cmd_run)

    check = sub.add_parser(
        "check",
        parents=[common],
        help="check the config, Kafka, S3 and the dataset, one line per check",
        description="Validate the config, reach Kafka (brokers, topics including labels topics,"
        " partitions), reach S3 (object, size), load the dataset (valid and invalid rows) and"
        " check it has the rows the profiles' fraud scenarios need, printing one ✓/✗ line per"
        " check with secrets redacted. Exit 0 only when every check passes.",
    )
    check.add_argument("--config", type=Path, help="config file (default ./config.yaml)")
    check.add_argument(
        "--timeout",
        type=_positive_float,
        default=10.0,
        metavar="SECONDS",
        help="how long to wait for Kafka and S3 (default 10)",
    )
    check.set_defaults(handler=_cmd_check)

    rate = sub.add_parser(
        "rate",
        parents=[common],
        help="print each profile's and the fleet's batches/s and records/s (and schedule)",
    )
    rate.add_argument("--config", type=Path, help="config file (default ./config.yaml)")
    rate.set_defaults(handler=_cmd_rate)

    gen = sub.add_parser(
        "generate-dataset",
        parents=[common],
        help="write a realistic synthetic transactions CSV",
    )
    gen.add_argument("--rows", type=_positive_int, default=10_000, help="rows (default 10000)")
    gen.add_argument("--seed", type=int, default=42, help="RNG seed (default 42)")
    gen.add_argument("--out", type=Path, required=True, help="output CSV path")
    gen.set_defaults(handler=_cmd_generate)
    return parser


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def config_file(path: Path | None) -> Path | None:
    """The config file to read: the one given, else ./config.yaml if it exists, else none
    (seed mode: the environment defines one profile)."""
    if path is not None:
        return path
    return DEFAULT_CONFIG if DEFAULT_CONFIG.exists() else None


def load_config(path: Path | None) -> Config:
    """The config from `config_file(path)`, or from the seed's environment variables."""
    found = config_file(path)
    return Config.from_env() if found is None else Config.from_yaml(found)


def _cmd_run(args: argparse.Namespace) -> int:
    args.config = config_file(args.config)  # kept: SIGHUP re-reads it
    config = load_config(args.config)
    if args.dry_run:  # stdout is for the messages; nothing listens on the metrics port
        config = config.model_copy(update={"metrics": MetricsSettings()})
    static = {"instance": config.instance}
    if not config.shard.split.alone:
        static["shard"] = str(config.shard.split)
    logs.configure(fmt=args.log_format, level="debug" if args.debug else "info", static=static)
    try:
        import uvloop

        loop_factory: Any = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop is a dependency everywhere but Windows
        loop_factory = None
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return int(runner.run(_run(config, args)))


async def _run(config: Config, args: argparse.Namespace) -> int:
    from supervisor.app import serve
    from supervisor.telemetry.metrics import MetricsServer, Telemetry

    log = logs.get_logger()
    stop, force, reload = asyncio.Event(), asyncio.Event(), asyncio.Event()
    # The metrics endpoint starts first so /healthz and /readyz answer during the dataset load.
    telemetry: Telemetry | None = None
    servers: list[MetricsServer] = []
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
        else:
            log.info("reload_requested", signal="SIGHUP", path=str(args.config))
            reload.set()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig.name)
    loop.add_signal_handler(signal.SIGHUP, on_hangup)
    try:
        async with contextlib.AsyncExitStack() as stack:
            if telemetry is not None:  # beats through the drain too: the loop is alive then
                await stack.enter_async_context(telemetry.heartbeat.running())
            code, _ = await serve(
                config,
                stop=stop,
                force=force,
                startup_timeout_s=args.startup_timeout,
                summary_path=args.summary,
                config_path=args.config,
                reload=reload,
                telemetry=telemetry,
                dry_run=sys.stdout.buffer if args.dry_run else None,
                max_messages=args.max_messages,
            )
    finally:
        for server in servers:
            await asyncio.to_thread(server.close)
    return code


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

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        return config_check_failed(exc, out=sys.stdout)
    return run_checks(config, out=sys.stdout, timeout_s=args.timeout)


def _cmd_rate(args: argparse.Namespace) -> int:
    from supervisor.rates import rate_table

    sys.stdout.write(rate_table(load_config(args.config)))
    return ExitCode.OK


def _cmd_generate(args: argparse.Namespace) -> int:
    from supervisor.dataset.synth import write_csv

    try:
        write_csv(args.out, rows=args.rows, seed=args.seed)
    except OSError as exc:
        raise DatasetError(
            f"cannot write {args.out}: {exc.strerror or exc} — choose another --out path"
        ) from None
    logs.get_logger().info("dataset_written", path=str(args.out), rows=args.rows, seed=args.seed)
    return ExitCode.OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `streaming-producer` console script and `python -m supervisor`."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logs.configure(fmt=args.log_format, level="debug" if args.debug else "info")
    log = logs.get_logger()
    try:
        code = int(args.handler(args))
    except SupervisorError as exc:
        log.error("fatal", error=str(exc), exit_code=int(exc.exit_code), exc_info=args.debug)
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
    sys.stderr.flush()
    return code
