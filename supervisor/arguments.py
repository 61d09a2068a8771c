"""The command line's grammar: every command, option and its help, for `supervisor.cli` to parse
argv with. Nothing here runs a command."""

from __future__ import annotations

import argparse
from pathlib import Path

from supervisor import __version__

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
        epilog="examples:\n"
        "  streaming-producer run                    # ./config.yaml\n"
        "  streaming-producer run --bootstrap-servers localhost:9092 --topic transactions \\\n"
        "      --dataset s3://bucket/transactions.csv --profile high --duration 60s\n\n" + EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument(
        "--config",
        type=Path,
        help="config file (default ./config.yaml; without one, the original producer's"
        " environment variables PRODUCE_INTERVAL, MIN_RECORDS_PER_BATCH, MAX_RECORDS_PER_BATCH"
        " and DATASET_URI define one profile)",
    )
    run.add_argument(
        "--pid-file",
        type=Path,
        metavar="PATH",
        help='write this process\'s id here while it runs (for `kill -HUP "$(cat PATH)"`)',
    )
    quick = run.add_argument_group(
        "quick runs (no YAML needed; with a config file, these win over it and over the"
        " environment)"
    )
    quick.add_argument(
        "--bootstrap-servers", metavar="HOST:PORT[,...]", help="Kafka brokers, or 'embedded'"
    )
    quick.add_argument("--topic", help="the topic of every profile that does not set its own")
    quick.add_argument(
        "--dataset", metavar="URI", help="s3://bucket/key or a CSV path (relative to here)"
    )
    quick.add_argument(
        "--profile",
        action="append",
        metavar="NAME",
        help="run this profile: the config file's of that name, else the preset (high, normal,"
        " low, diurnal, burst, card-testing); repeat for several",
    )
    quick.add_argument(
        "--interval", type=_positive_float, metavar="SECONDS", help="seconds between batches"
    )
    quick.add_argument("--min", type=_positive_int, metavar="N", help="fewest records a batch")
    quick.add_argument("--max", type=_positive_int, metavar="N", help="most records a batch")
    quick.add_argument(
        "--duration",
        type=_duration,
        metavar="TIME",
        help="stop after this long (90, 90s, 5m, 1h), then drain and exit",
    )
    run.add_argument(
        "--summary",
        type=Path,
        help="write a JSON run summary here at exit (the path is checked at start)",
    )
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
        help="stop after N messages produced (all profiles together; fraud labels and messages"
        " the producer rejects not counted), then drain and exit",
    )

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
        "--dataset", metavar="URI", help="check this dataset instead (as `run --dataset`)"
    )
    check.add_argument(
        "--timeout",
        type=_positive_float,
        default=10.0,
        metavar="SECONDS",
        help="how long to wait for Kafka and S3 (default 10)",
    )

    rate = sub.add_parser(
        "rate",
        parents=[common],
        help="print each profile's and the fleet's batches/s and records/s (and schedule)",
    )
    rate.add_argument("--config", type=Path, help="config file (default ./config.yaml)")

    schema = sub.add_parser(
        "schema",
        parents=[common],
        help="print the message schema a format writes, with the dataset's kept columns",
        description="Print the schema of the transaction messages (or, with --label, of the"
        " labels) in one format, as the program registers it: schemas/ extended with the"
        " dataset's kept extra columns (dataset.extra_columns: keep, the dataset is read to"
        " know them). For registering it by hand, when auto_register is false.",
    )
    schema.add_argument(
        "--format",
        required=True,
        choices=("avro", "protobuf", "json-schema"),
        help="the message format",
    )
    schema.add_argument("--config", type=Path, help="config file (default ./config.yaml)")
    schema.add_argument(
        "--dataset", metavar="URI", help="this dataset's columns instead (as `run --dataset`)"
    )
    schema.add_argument(
        "--label", action="store_true", help="the labels' schema (no dataset columns)"
    )

    gen = sub.add_parser(
        "generate-dataset",
        parents=[common],
        help="write a realistic synthetic transactions dataset (CSV, JSON Lines or Parquet)",
    )
    gen.add_argument("--rows", type=_positive_int, default=10_000, help="rows (default 10000)")
    gen.add_argument("--seed", type=int, default=42, help="RNG seed (default 42)")
    gen.add_argument(
        "--out",
        type=Path,
        required=True,
        help="output path, its format by extension (.csv, .jsonl, .ndjson, .parquet; .gz for"
        " CSV or JSON Lines; CSV otherwise), or - for CSV on stdout",
    )
    gen.add_argument(
        "--cards",
        type=_positive_int,
        default=None,
        help="add a card_id column drawn from this many cards (for dataset.entity)",
    )
    return parser


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _duration(text: str) -> float:
    units = {"s": 1.0, "m": 60.0, "h": 3600.0}
    number, unit = (text[:-1], text[-1]) if text[-1:] in units else (text, "s")
    try:
        value = float(number) * units[unit]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a duration: {text!r} (e.g. 90, 90s, 5m, 1h)"
        ) from None
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
