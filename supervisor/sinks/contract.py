"""What a sink is: where the send loop puts messages, and how it reports what became of them.

A sink speaks the domain, not its client library. The send loop (`supervisor.sinks.sender`) asks
a sink once per stream of messages for a `Reporter` bound to that stream's `DeliveryStats`, and
passes it back with every message; the sink then reports each accepted message exactly once, as
delivered (with its latency when known), failed, or undelivered (given up at shutdown), through
`DeliveryStats.record_*`. The Kafka sink translates librdkafka's delivery reports; the dry-run
sink reports a line written out as delivered. One contract suite (tests/integration/
test_sink_contract.py) holds every sink to it, the fake used by unit tests included.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Protocol, TypeAlias

if TYPE_CHECKING:
    from supervisor.lifecycle import ShutdownBudget
    from supervisor.telemetry.stats import DeliveryStats

Headers: TypeAlias = list[tuple[str, str | bytes | None]] | None
"""A message's headers, in order; None (not an empty list) when it has none."""

Reporter: TypeAlias = object
"""A sink's handle for one stream's `DeliveryStats`, made once by `Sink.reporter` and passed back
with each of its messages; opaque to everyone but the sink that made it."""

FAILURE_LOG_EVERY_S = 5.0
"""At most one line per profile this often for failed or rejected messages."""


class MessageRejected(Exception):
    """The sink refused one message outright (e.g. larger than message.max.bytes): it never
    entered the queue, so it is neither produced nor failed; the send loop counts it rejected."""


class Sink(Protocol):
    """What the send loop needs from where its messages go."""

    def reporter(self, stats: DeliveryStats) -> Reporter:
        """The handle to pass with each message whose outcome `stats` counts."""

    def produce(
        self,
        topic: str,
        value: bytes,
        key: bytes | None,
        headers: Headers,
        report: Reporter,
        timestamp_ms: int = 0,
    ) -> None:
        """Enqueue one message; raise BufferError when the queue is full (backpressure) and
        MessageRejected when this message can never be accepted. `timestamp_ms` is its Kafka
        timestamp in Unix milliseconds; 0 lets the sink stamp it when produced."""

    async def wait_for_space(self, stop: asyncio.Event) -> None:
        """Return when the queue may take more messages, or when `stop` is set."""


class ManagedSink(Sink, Protocol):
    """A sink as the app drives it for a whole run: Kafka, or the dry run's standard output."""

    destination: str
    """Where messages go, for logs (`bootstrap_servers`, or "dry-run")."""

    @property
    def reader_closed(self) -> bool:
        """Whether the run ended because the reader of the output went away (`--dry-run | head`):
        the ordinary end of such a run, not a failure, although its unwritten lines are
        undelivered."""

    def start(self) -> None:
        """Start serving deliveries; call from the event loop that will produce."""

    async def connect(
        self, topics: list[str], *, stop: asyncio.Event, timeout_s: float | None
    ) -> bool:
        """Wait until the destination is usable; False if `stop` was set meanwhile."""

    async def close(self, budget: ShutdownBudget) -> None:
        """Deliver what is pending until `budget.over`, then report the rest undelivered."""
