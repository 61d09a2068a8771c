"""Handing a dead producer's messages over to a new one (see `supervisor.sinks.kafka_health` for
when a producer is dead: the cluster forgot it, or librdkafka raised a fatal error).

The sink installs the new producer first, so the event loop produces into it from then on; the
old one's queue is then purged, and each purge report, instead of counting its message as
undelivered, produces it again into the new producer with its own key, headers, creation time and
delivery callback. What cannot be handed over within `HANDOVER_S` (or does not fit the new queue)
counts as undelivered, as at shutdown.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Final

from confluent_kafka import TIMESTAMP_CREATE_TIME, KafkaException, Message, Producer

from supervisor.telemetry.logs import get_logger

HANDOVER_S: Final = 5.0
"""How long a replaced producer's purge reports are served before what is left counts as lost."""
_POLL_S: Final = 0.1


class Handover:
    """Replaces the producer of one sink; `active` while the old one's purge reports are served
    (the delivery callback then calls `resend` rather than counting them undelivered)."""

    def __init__(self, conf: dict[str, Any], servers_label: str) -> None:
        self._conf = conf
        self._servers = servers_label
        self._log = get_logger()
        self._new: Producer | None = None
        self._resent = self._lost = 0
        self.active = False

    def replace(self, old: Producer, install: Callable[[Producer], None], why: str) -> None:
        """Create the new producer, `install` it, and hand the old one's messages over to it."""
        new = self._new = Producer(self._conf)
        install(new)
        queued = len(old)
        self.active, self._resent, self._lost = True, 0, 0
        try:
            deadline = time.monotonic() + HANDOVER_S
            while len(old) and time.monotonic() < deadline:
                # Again each round: the loop may have produced into `old` as it was replaced.
                old.purge(in_queue=True, in_flight=True, blocking=False)
                old.poll(_POLL_S)
        finally:
            self.active = False
        self._log.warning(
            "kafka_producer_replaced",
            bootstrap_servers=self._servers,
            reason=why,
            queued=queued,
            resent=self._resent,
            lost=self._lost + len(old),
            note="a new producer took over and resent what was queued; if the brokers lost"
            " storage, what they had acknowledged before is gone with it — check their volumes",
        )

    def resend(self, msg: Message, on_delivery: Callable[..., None]) -> bool:
        """Produce a replaced producer's message again, into the new one; False when it cannot
        take it (then the message counts as undelivered)."""
        kind, timestamp = msg.timestamp()
        assert self._new is not None
        try:
            self._new.produce(
                msg.topic() or "",
                msg.value(),
                msg.key(),
                on_delivery=on_delivery,
                headers=msg.headers(),
                timestamp=timestamp if kind == TIMESTAMP_CREATE_TIME else 0,
            )
        except (BufferError, KafkaException):
            self._lost += 1
            return False
        self._resent += 1
        return True
