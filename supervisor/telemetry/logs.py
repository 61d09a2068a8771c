"""Logging: structlog configured once, for our events and for librdkafka's.

Logs go to stderr, as the original producer's `logging` setup did, so stdout stays free for data
(`run --dry-run`). The format is JSON lines when stderr is not a terminal (containers, files,
pipes) and compact lines on a terminal (`supervisor.telemetry.console`); `--log-format` forces
either. Event names are stable snake_case with key=value fields; a profile task binds
`profile=` through contextvars. librdkafka's own log lines arrive through the stdlib `logging`
module (the producer's `logger` property) and are rendered by the same processors.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
import time
from collections.abc import Mapping
from typing import Literal, TextIO

import structlog

from supervisor.telemetry.console import CompactRenderer, quiet_librdkafka

LogFormat = Literal["auto", "json", "console"]

LIBRDKAFKA_LOGGER = "librdkafka"

_DICT_TRACEBACKS = structlog.processors.ExceptionRenderer(
    structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
)
"""`--debug` tracebacks as JSON, without the frames' local variables: they hold the raw config and
the environment, secrets included (structlog's default `dict_tracebacks` shows them)."""


class LogOutput:
    """Where log lines go: whatever `sys.stderr` is at the time of the write, not at configure
    time (pytest and embedding applications swap it).

    A daemon keeps producing when it cannot log: a line that cannot be written (the reader of a
    pipe went away, a full disk, a closed stderr) is dropped and counted in `dropped`, never
    raised into the code that logged it. After a broken pipe the descriptor is pointed at the null
    device, so that the interpreter's own last flush of stderr does not fail again at exit.
    """

    def __init__(self) -> None:
        self.dropped = 0
        self.for_people = False
        """Whether its lines are for a person (the console format) rather than JSON."""

    def write(self, text: str) -> int:
        try:
            return sys.stderr.write(text)
        except (OSError, ValueError, AttributeError) as exc:  # closed, or None: no fd 2 at all
            self._failed(exc)
            return 0

    def flush(self) -> None:
        try:
            sys.stderr.flush()
        except (OSError, ValueError, AttributeError) as exc:
            self._failed(exc)

    def isatty(self) -> bool:
        try:
            return sys.stderr.isatty()
        except (ValueError, AttributeError):
            return False

    def _failed(self, exc: Exception) -> None:
        self.dropped += 1
        if isinstance(exc, BrokenPipeError):
            with contextlib.suppress(OSError, ValueError):
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stderr.fileno())
                os.close(devnull)


def configure(
    *,
    fmt: LogFormat = "auto",
    level: str = "info",
    stream: TextIO | None = None,
    static: Mapping[str, object] | None = None,
) -> LogOutput:
    """Configure structlog and the stdlib root logger to write to `stream` (stderr); `static`
    key/values (the instance id) go on every line, librdkafka's included. Returns the output:
    whether its lines are for a person (the console format) rather than JSON, and how many it
    could not write."""
    output = LogOutput()
    out: TextIO = stream if stream is not None else output  # type: ignore[assignment]
    as_json = fmt == "json" or (fmt == "auto" and not out.isatty())
    numeric_level = logging.getLevelNamesMapping()[level.upper()]

    fixed = dict(static or {})

    def add_static(
        _logger: object, _name: str, event: structlog.typing.EventDict
    ) -> structlog.typing.EventDict:
        for key, value in fixed.items():
            event.setdefault(key, value)
        return event

    shared: list[structlog.typing.Processor] = [
        add_static,
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    # JSON keeps non-ASCII text as it is ("—", not "\u2014"): the same objects, readable bytes.
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if as_json
        else CompactRenderer(colours=out.isatty(), debug=numeric_level <= logging.DEBUG)
    )
    tail: list[structlog.typing.Processor] = (
        [_DICT_TRACEBACKS, renderer]
        if as_json
        else [structlog.processors.format_exc_info, renderer]  # plain text: no frame locals
    )
    structlog.configure(
        processors=[*shared, structlog.processors.StackInfoRenderer(), *tail],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )

    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *tail],
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        )
    )
    if not as_json:
        handler.addFilter(quiet_librdkafka)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric_level)
    # Botocore's own INFO/DEBUG lines (credential lookups, retries) are noise unless debugging.
    for noisy in ("botocore", "boto3", "urllib3", "s3transfer"):
        logging.getLogger(noisy).setLevel(max(numeric_level, logging.WARNING))
    logging.raiseExceptions = False  # a handler that cannot write must not print about it
    output.for_people = not as_json
    return output


def get_logger(**initial: object) -> structlog.typing.FilteringBoundLogger:
    """A bound logger; `initial` key/values appear on every line it writes."""
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger(**initial)
    return logger


class RateLimitedLog:
    """An event that may recur many times a second (a failing delivery, a broker refusing every
    reconnect): logged at most once every `every_s`, each line counting the occurrences skipped
    since the previous one (`suppressed_since_last_line`). Each instance is used from one thread."""

    __slots__ = ("_event", "_every_s", "_last", "_level", "_log", "_suppressed")

    def __init__(
        self,
        log: structlog.typing.FilteringBoundLogger,
        event: str,
        *,
        every_s: float,
        level: Literal["warning", "error"] = "error",
    ) -> None:
        self._log, self._event, self._every_s, self._level = log, event, every_s, level
        self._last = -math.inf
        self._suppressed = 0

    def __call__(self, **fields: object) -> None:
        now = time.monotonic()
        if now - self._last < self._every_s:
            self._suppressed += 1
            return
        emit = self._log.error if self._level == "error" else self._log.warning
        emit(self._event, **fields, suppressed_since_last_line=self._suppressed)
        self._last, self._suppressed = now, 0
