"""The dry-run sink (its JSON lines, flushing, a closed reader) and the message limit, driven
directly through the `Sink` contract the fleet relies on."""

from __future__ import annotations

import asyncio
import errno
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from supervisor.sinks.dryrun import DryRunSink
from supervisor.sinks.kafka import Headers
from supervisor.telemetry.stats import ProfileStats
from tests.fakes import close_within

VALUE = (
    '{"id":"00000000-0000-0000-0000-000000000001","description":"Card \\"payment\\"\\n",'
    '"amount":32.24,"merchant":"Café Ünïcode ☕"}'
).encode()
HEADERS: Headers = [("profile", b"high"), ("instance", b"a1")]
REPO = Path(__file__).resolve().parents[2]


class CountingStream(io.BytesIO):
    """An in-memory output that counts its writes and flushes."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0
        self.flushes = 0

    def write(self, data: Any) -> int:
        self.writes += 1
        return super().write(data)

    def flush(self) -> None:
        self.flushes += 1
        super().flush()


class TrickleStream(io.BytesIO):
    """An output taking at most 10 bytes a write, as an unbuffered stdout may when a signal
    interrupts a write."""

    def write(self, data: Any) -> int:
        return super().write(bytes(data[:10]))


class FailingStream(io.BytesIO):
    """An output whose flushes fail as on a full disk."""

    def flush(self) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")


@dataclass
class Pipe:
    """A real pipe: a buffered binary stream on its write end, as stdout is when piped, and its
    read end, non-blocking so that reading too early fails instead of hanging."""

    read_fd: int
    out: BinaryIO
    reader_open: bool = True

    def read(self) -> bytes:
        return os.read(self.read_fd, 1 << 20)

    def close_reader(self) -> None:
        """What `| head` does once it has its lines."""
        os.close(self.read_fd)
        self.reader_open = False


@pytest.fixture
def pipe() -> Iterator[Pipe]:
    read_fd, write_fd = os.pipe()
    os.set_blocking(read_fd, False)
    pipe = Pipe(read_fd, open(write_fd, "wb"))  # noqa: SIM115 - closed below, after the test
    try:
        yield pipe
    finally:
        pipe.out.close()  # must not raise, even once the reader is gone
        if pipe.reader_open:
            os.close(read_fd)


def dry_run_lines(*messages: dict[str, Any]) -> list[bytes]:
    """The lines a DryRunSink writes for `messages` (keyword arguments of `produce`)."""

    async def scenario() -> bytes:
        out = io.BytesIO()
        sink = DryRunSink(out, asyncio.Event())
        on_delivery = sink.reporter(ProfileStats("p"))
        for message in messages:
            sink.produce(report=on_delivery, **message)
        await close_within(sink, 1)
        return out.getvalue()

    return asyncio.run(scenario()).splitlines(keepends=True)


def test_a_line_has_the_documented_shape_with_the_value_embedded_byte_for_byte() -> None:
    [line] = dry_run_lines(
        {
            "topic": "tx",
            "value": VALUE,
            "key": b"Shop 1",
            "headers": HEADERS,
            "timestamp_ms": 1_767_225_600_123,
        }
    )
    record = json.loads(line)
    assert list(record) == ["topic", "key", "headers", "timestamp", "value"]
    assert record == {
        "topic": "tx",
        "key": "Shop 1",
        "headers": {"profile": "high", "instance": "a1"},
        "timestamp": 1_767_225_600_123,
        "value": json.loads(VALUE),
    }
    assert line.endswith(b',"value":' + VALUE + b"}\n")


def test_text_fields_are_json_escaped_and_non_ascii_kept_readable() -> None:
    headers: Headers = [
        ("profile", 'Café "high"\n'.encode()),
        ("note", "tab\there ☕"),
        ("empty", None),
        ("raw", b"\xff\xfe"),
    ]
    [line] = dry_run_lines(
        {
            "topic": 'odd"topic\\',
            "value": VALUE,
            "key": 'Müller "&" Söhne'.encode(),
            "headers": headers,
        }
    )
    assert line.count(b"\n") == 1
    assert "Müller".encode() in line  # UTF-8 as is, not \u escapes: grep finds it
    record = json.loads(line)
    assert record["topic"] == 'odd"topic\\'
    assert record["key"] == 'Müller "&" Söhne'
    assert record["headers"] == {
        "profile": 'Café "high"\n',
        "note": "tab\there ☕",
        "empty": None,
        "raw": "\\xff\\xfe",
    }
    assert record["value"]["merchant"] == "Café Ünïcode ☕"


@pytest.mark.parametrize(
    ("key", "timestamp_ms", "shown_key", "shown_timestamp"),
    [
        (None, 0, None, None),
        (b"acct-42", 0, "acct-42", None),
        (None, 1_700_000_000_123, None, 1_700_000_000_123),
    ],
)
def test_key_and_timestamp_are_null_when_absent(
    key: bytes | None, timestamp_ms: int, shown_key: str | None, shown_timestamp: int | None
) -> None:
    [line] = dry_run_lines(
        {"topic": "tx", "value": VALUE, "key": key, "headers": [], "timestamp_ms": timestamp_ms}
    )
    record = json.loads(line)
    assert (record["key"], record["timestamp"]) == (shown_key, shown_timestamp)


def test_lines_are_written_and_delivered_once_per_loop_iteration() -> None:
    async def scenario() -> None:
        out = CountingStream()
        sink = DryRunSink(out, asyncio.Event())
        stats = ProfileStats("p")
        on_delivery = sink.reporter(stats)
        for _ in range(100):
            sink.produce("tx", VALUE, None, HEADERS, on_delivery)
        assert (out.writes, stats.delivered) == (0, 0)  # delivered means written out
        await asyncio.sleep(0)
        assert (out.writes, out.flushes, stats.delivered) == (1, 1, 100)
        sink.produce("tx", VALUE, None, HEADERS, on_delivery)
        await asyncio.sleep(0)
        assert (out.writes, out.flushes, stats.delivered) == (2, 2, 101)
        assert len(out.getvalue().splitlines()) == 101

    asyncio.run(scenario())


def test_a_burst_is_written_out_before_the_loop_iteration_ends() -> None:
    [line] = dry_run_lines({"topic": "tx", "value": VALUE, "key": None, "headers": HEADERS})
    per_write = -(-DryRunSink.FLUSH_AT_BYTES // len(line))  # lines reaching FLUSH_AT_BYTES
    burst = 2 * per_write + per_write // 2

    async def scenario() -> None:
        out = CountingStream()
        sink = DryRunSink(out, asyncio.Event())
        stats = ProfileStats("p")
        on_delivery = sink.reporter(stats)
        for _ in range(burst):
            sink.produce("tx", VALUE, None, HEADERS, on_delivery)
        assert (out.writes, stats.delivered) == (2, 2 * per_write)  # without yielding
        await asyncio.sleep(0)
        assert (out.writes, stats.delivered) == (3, burst)
        assert out.getvalue() == line * burst

    asyncio.run(scenario())


def test_a_partial_write_is_completed() -> None:
    async def scenario() -> None:
        out = TrickleStream()
        sink = DryRunSink(out, asyncio.Event())
        stats = ProfileStats("p")
        sink.produce("tx", VALUE, None, HEADERS, sink.reporter(stats))
        await close_within(sink, 1)
        assert stats.delivered == 1
        assert json.loads(out.getvalue())["value"] == json.loads(VALUE)

    asyncio.run(scenario())


def test_a_reader_sees_the_lines_without_waiting_for_close(pipe: Pipe) -> None:
    async def scenario() -> None:
        sink = DryRunSink(pipe.out, asyncio.Event())
        on_delivery = sink.reporter(ProfileStats("p"))
        for _ in range(3):
            sink.produce("tx", VALUE, None, HEADERS, on_delivery)
        await asyncio.sleep(0)
        assert len(pipe.read().splitlines()) == 3

    asyncio.run(scenario())


def test_close_flushes_what_is_buffered() -> None:
    async def scenario() -> None:
        out = CountingStream()
        sink = DryRunSink(out, asyncio.Event())
        stats = ProfileStats("p")
        sink.produce("tx", VALUE, None, HEADERS, sink.reporter(stats))
        assert await sink.connect(["tx"], stop=asyncio.Event(), timeout_s=None)
        await close_within(sink, 1)
        assert (out.flushes, stats.delivered) == (1, 1)

    asyncio.run(scenario())


def test_a_closed_reader_stops_the_run_and_its_unwritten_lines_are_undelivered(
    pipe: Pipe,
) -> None:
    async def scenario() -> None:
        stop = asyncio.Event()
        sink = DryRunSink(pipe.out, stop)
        stats = ProfileStats("p")
        on_delivery = sink.reporter(stats)
        sink.produce("tx", VALUE, None, HEADERS, on_delivery)
        sink.produce("tx", VALUE, None, HEADERS, on_delivery)
        await asyncio.sleep(0)
        assert len(pipe.read().splitlines()) == 2
        pipe.close_reader()  # `| head -2` exits
        sink.produce("tx", VALUE, None, HEADERS, on_delivery)
        assert not stop.is_set()  # still in the sink's buffer
        await asyncio.sleep(0)  # the write meets the closed pipe
        assert stop.is_set()
        assert (stats.delivered, stats.undelivered, stats.failed) == (2, 1, 0)
        with pytest.raises(BufferError):
            sink.produce("tx", VALUE, None, HEADERS, on_delivery)
        await asyncio.wait_for(sink.wait_for_space(stop), timeout=1)
        await close_within(sink, 1)
        assert stats.delivered + stats.undelivered == 3

    asyncio.run(scenario())


def test_a_closed_reader_met_in_a_burst_does_not_escape_produce(pipe: Pipe) -> None:
    pipe.close_reader()
    big = b'{"pad":"' + b"x" * DryRunSink.FLUSH_AT_BYTES + b'"}'  # written out at once

    async def scenario() -> None:
        stop = asyncio.Event()
        sink = DryRunSink(pipe.out, stop)
        stats = ProfileStats("p")
        sink.produce("tx", big, None, HEADERS, sink.reporter(stats))
        assert stop.is_set()
        assert (stats.delivered, stats.undelivered) == (0, 1)
        await asyncio.sleep(0)
        await close_within(sink, 1)

    asyncio.run(scenario())


def test_other_write_errors_stop_the_run_and_count_as_failed() -> None:
    async def scenario() -> None:
        stop = asyncio.Event()
        sink = DryRunSink(FailingStream(), stop)
        stats = ProfileStats("p")
        on_delivery = sink.reporter(stats)
        for _ in range(3):
            sink.produce("tx", VALUE, None, HEADERS, on_delivery)
        await asyncio.sleep(0)
        assert stop.is_set()
        assert (stats.delivered, stats.undelivered, stats.failed) == (0, 0, 3)
        await close_within(sink, 1)

    asyncio.run(scenario())


HEAD_SCRIPT = """
import asyncio, json, sys
from supervisor.sinks.dryrun import DryRunSink
from supervisor.telemetry.logs import configure
from supervisor.telemetry.stats import ProfileStats
from tests.fakes import close_within

async def main():
    stop = asyncio.Event()
    sink = DryRunSink(sys.stdout.buffer, stop)
    stats = ProfileStats("p")
    on_delivery = sink.reporter(stats)
    while not stop.is_set():  # a line at a time: it stays in a buffered stdout's buffer
        stats.produced += 1
        try:
            sink.produce("tx", b'{"n":1}', None, [], on_delivery)
        except BufferError:
            stats.produced -= 1
        await asyncio.sleep(0)
    await close_within(sink, 1)
    counts = {"delivered": stats.delivered, "undelivered": stats.undelivered}
    print(json.dumps({**counts, "in_flight": stats.in_flight}), file=sys.stderr)

configure(fmt="json")
asyncio.run(main())
"""


@pytest.mark.parametrize("unbuffered", ["", "1"], ids=["buffered", "unbuffered"])
def test_a_reader_closing_stdout_ends_the_process_quietly(unbuffered: str) -> None:
    """`run --dry-run | head -1`: no traceback, no "Exception ignored" from the final flush."""
    child = subprocess.Popen(
        [sys.executable, "-c", HEAD_SCRIPT],
        cwd=REPO,
        env={**os.environ, "PYTHONUNBUFFERED": unbuffered},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert child.stdout is not None
    assert child.stderr is not None
    first = child.stdout.readline()
    child.stdout.close()
    stderr = child.stderr.read().decode()
    child.stderr.close()
    assert child.wait(timeout=30) == 0, stderr
    assert json.loads(first)["value"] == {"n": 1}
    assert "Traceback" not in stderr
    assert "Exception ignored" not in stderr
    *logs, last = stderr.splitlines()
    assert any(json.loads(line)["event"] == "dry_run_output_closed" for line in logs)
    counts = json.loads(last)
    assert counts["undelivered"] >= 1
    assert counts["in_flight"] == 0
