"""A sink for trying a config without Kafka.

`DryRunSink` (`run --dry-run`) writes every message to a binary stream (stdout) as one JSON line
instead of producing it, keys in this order:

    {"topic":"tx","key":"Café du Port","headers":{"profile":"high","instance":"a1"},
     "timestamp":null,"value":{"id":"...","amount":32.24,...}}

so a config can be tried with `streaming-producer run --dry-run | jq .value.amount`. `key` and
header values are text (null when absent), `timestamp` is the Kafka timestamp in Unix milliseconds
(null when the producer would stamp the message itself), and `value` is the message value embedded
as JSON, byte for byte (a non-JSON format's value decoded by its deserializer, given as `decoder`).

Lines are written out once per event-loop iteration (sooner in a burst), so a reader sees each
line promptly while a burst of messages costs one write per 64 KiB rather than one per message.
A line counts as delivered once it is written to the operating system, the dry-run counterpart of
a broker's acknowledgement, not when it is buffered: otherwise a reader that goes away would leave
a buffer-full of lines counted as delivered that nobody can ever read.

"""

from __future__ import annotations

import asyncio
import contextvars
import json
import os
from collections.abc import Callable
from typing import BinaryIO, cast

from supervisor.lifecycle import ShutdownBudget
from supervisor.sinks.contract import Headers, Reporter
from supervisor.telemetry.logs import get_logger
from supervisor.telemetry.stats import DeliveryStats

_quote = json.JSONEncoder(ensure_ascii=False).encode
"""A str as a JSON string (the encoder's fast path), non-ASCII text left readable as UTF-8."""


class DryRunSink:
    """Writes each message to `out` as a JSON line (see the module docstring).

    Lines are gathered in the sink's own buffer and written out once per event-loop iteration,
    or as soon as `FLUSH_AT_BYTES` are pending, whatever the buffering of `out`: stdout is
    unbuffered under PYTHONUNBUFFERED=1 (as in our container image), and writing there line by
    line would cost a system call per message.

    Every method runs on the event loop thread, delivery reports included: there is no delivery
    thread, so the counters of a `ProfileStats` still have a single writer each.

    When writing fails, the output is abandoned: the pending lines are reported, `stop` is set
    (a closed output ends the run) and further messages are refused with BufferError, which the
    fleet treats as backpressure until it halts. A closed reader (`| head -3`, BrokenPipeError)
    is the ordinary end of such a run: its pending lines count as undelivered, like the messages
    a Kafka run purges at shutdown (whether some of their bytes reached the reader before it
    closed is unknowable). Any other error (a full disk) counts them as failed and is logged as
    an error, since output was lost.
    """

    FLUSH_AT_BYTES = 64 * 1024
    """A Linux pipe's capacity: a bigger write would only wait for the reader."""

    def __init__(
        self,
        out: BinaryIO,
        stop: asyncio.Event,
        *,
        decoder: Callable[[str], Callable[[bytes], bytes] | None] | None = None,
    ) -> None:
        """`out` stays open: its owner closes it. `stop` is set once `out` can take no more
        lines. `decoder(topic)`, when given, turns that topic's values into JSON (None: they
        are JSON already)."""
        self._out = out
        self._decoder = decoder
        self._decoders: dict[str, Callable[[bytes], bytes] | None] = {}
        self._stop = stop
        self._pending = bytearray()
        self._reports: list[DeliveryStats] = []
        """Who counts each line in `_pending`, in order."""
        self._scheduled: asyncio.Handle | None = None
        self._abandoned = False
        self.reader_closed = False
        """Whether the run ended because the reader closed the output (`| head`): the ordinary
        end of a piped dry run, not a failure, although its unwritten lines are undelivered."""
        self._log = get_logger()
        self.destination = "dry-run"

    def start(self) -> None:
        """Nothing to start: lines are written as they are produced."""

    async def connect(
        self, topics: list[str], *, stop: asyncio.Event, timeout_s: float | None
    ) -> bool:
        """Nothing to connect to: ready at once."""
        return True

    async def close(self, budget: ShutdownBudget) -> None:
        """Write out the pending lines. A blocking write cannot be abandoned half-way, so the
        budget does not bound it."""
        self._flush()

    def produce(
        self,
        topic: str,
        value: bytes,
        key: bytes | None,
        headers: Headers,
        report: Reporter,
        timestamp_ms: int = 0,
    ) -> None:
        """Buffer one line; `value` must be one compact JSON document (what the fleet's
        `EventBuilder` makes), as it is embedded without being parsed."""
        if self._abandoned:
            raise BufferError("the dry-run output is closed")
        if self._decoder is not None:
            if topic not in self._decoders:
                self._decoders[topic] = self._decoder(topic)
            decode = self._decoders[topic]
            if decode is not None:
                value = decode(value)
        self._pending += _line(topic, value, key, headers, timestamp_ms)
        self._reports.append(cast(DeliveryStats, report))
        if len(self._pending) >= self.FLUSH_AT_BYTES:
            self._flush()
        elif self._scheduled is None:
            self._scheduled = asyncio.get_running_loop().call_soon(self._flush)

    async def wait_for_space(self, stop: asyncio.Event) -> None:
        """There is always space until the output is abandoned, and never again after: then
        wait for `stop` rather than return at once, which would spin the caller's retries."""
        if self._abandoned:
            await stop.wait()

    def reporter(self, stats: DeliveryStats) -> Reporter:
        """The stats themselves: a line written out is delivered, one lost to a closed reader
        undelivered, one lost to a write error failed. No latency is observed: without a broker
        there is no acknowledgement delay to measure."""
        return stats

    def _flush(self) -> None:
        """Write the pending lines out and report them: delivered, or lost with the output."""
        if self._scheduled is not None:  # flushing now leaves nothing for a later flush
            self._scheduled.cancel()
            self._scheduled = None
        if not self._reports:
            return
        data, self._pending = self._pending, bytearray()
        reports, self._reports = self._reports, []
        try:
            view = memoryview(data)
            while view:  # an unbuffered `out` may take part of it (a signal interrupted it)
                view = view[self._out.write(view) :]
            self._out.flush()
        except OSError as exc:
            self._abandon(exc, reports)
        else:
            for stats in reports:
                stats.record_delivered()

    def _abandon(self, exc: OSError, reports: list[DeliveryStats]) -> None:
        self._abandoned = True
        self._discard_output()
        reader_closed = self.reader_closed = isinstance(exc, BrokenPipeError)
        for stats in reports:
            if reader_closed:
                stats.record_undelivered()
            else:
                stats.record_failed()
        self._stop.set()
        # The output is every profile's: log outside the context of the one whose line met it.
        quiet = contextvars.Context()
        if reader_closed:
            quiet.run(
                self._log.info,
                "dry_run_output_closed",
                undelivered=len(reports),
                note="stopping the run",
            )
        else:
            quiet.run(
                self._log.error, "dry_run_output_failed", reason=str(exc), failed=len(reports)
            )

    def _discard_output(self) -> None:
        """Point the output's file descriptor at the null device, as CPython's documentation
        advises after a BrokenPipeError: what is still in the stream's own buffer then drains
        there, so neither its owner's close nor the interpreter's final flush of stdout fails
        again ("Exception ignored ... BrokenPipeError")."""
        try:
            fd = self._out.fileno()
        except OSError:  # io.UnsupportedOperation: no file descriptor, nothing left to flush to
            return
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, fd)
        finally:
            os.close(devnull)


def _line(
    topic: str, value: bytes, key: bytes | None, headers: Headers, timestamp_ms: int
) -> bytes:
    # Spelled out rather than encoding a dict: three times faster, and the value goes in as is.
    fields = ",".join([f"{_quote(name)}:{_json_text(data)}" for name, data in headers or ()])
    envelope = (
        f'{{"topic":{_quote(topic)},"key":{_json_text(key)},"headers":{{{fields}}},'
        f'"timestamp":{timestamp_ms or "null"},"value":'
    )
    return b"".join((envelope.encode(), value, b"}\n"))


def _json_text(data: str | bytes | None) -> str:
    """`data` as a JSON string, or null; invalid UTF-8 shows as \\xNN escapes rather than
    failing the message."""
    if data is None:
        return "null"
    if isinstance(data, bytes):
        data = data.decode("utf-8", "backslashreplace")
    return _quote(data)
