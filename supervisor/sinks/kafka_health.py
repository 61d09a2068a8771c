"""What librdkafka's error events and log lines say about the cluster, read on the delivery thread.

Three conditions matter to a run:

* an outage: every broker down (`_ALL_BROKERS_DOWN`), logged once when it starts and once when
  deliveries resume, readiness following both;
* a refused login or TLS handshake, kept as the reason `connect` gives for an unreachable cluster;
* a lost producer state: the cluster no longer knows this idempotent producer. A broker restarted
  on empty storage, or another cluster now answering at the same address, answers every produce
  request with UNKNOWN_PRODUCER_ID. librdkafka then drains and bumps the producer's epoch
  (KIP-360), which a real Kafka cluster accepts; when a bump does not help (the second bump still
  meets the error) or librdkafka raises a fatal error, the producer can never deliver again and
  must be replaced by a new instance (what Kafka's clients ask of an application after a fatal
  idempotence error). `lost_state` says so; the sink does the replacing.

The epoch bumps and UNKNOWN_PRODUCER_ID answers only appear in librdkafka's `eos` debug lines: the
sink enables that debug context, and `LogWatch` reads those lines before they are dropped (they are
shown only with `--debug`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Final

from confluent_kafka import KafkaError

from supervisor.telemetry.logs import RateLimitedLog, get_logger

_ERROR_LOG_EVERY_S: Final = 30.0
_BUMPS_BEFORE_LOST: Final = 2
"""Epoch bumps without a delivery in between after which the producer's state counts as lost."""


class ClusterHealth:
    """The cluster's condition as this producer sees it (see the module docstring)."""

    def __init__(self, servers_label: str, on_reachable: Callable[[bool], None] | None) -> None:
        self._servers = servers_label
        self._on_reachable = on_reachable
        self._log = get_logger()
        self._error_logs: dict[int, RateLimitedLog] = {}
        self.connected = False
        """Whether `connect` succeeded: before that, it reports unreachability itself."""
        self.last_error: str | None = None
        """The last refused login or fatal error: the real cause behind "transport failure"."""
        self.outage_since: float | None = None
        self.lost_state: str | None = None
        """Why the producer can no longer deliver (None while it can): the sink replaces it."""
        self._bumps = 0
        self.troubled = False
        """Whether a delivery has something to clear (an outage, epoch bumps): the one flag the
        delivery callback reads per message."""

    # -- librdkafka's error events ----------------------------------------------------------------

    def on_error(self, err: KafkaError) -> None:
        code = err.code()
        if code == KafkaError._ALL_BROKERS_DOWN:
            if self._on_reachable is not None:
                self._on_reachable(False)
            if self.outage_since is None and self.connected:
                self.outage_since = time.monotonic()
                self.troubled = True
                self._log.warning(
                    "kafka_outage",
                    bootstrap_servers=self._servers,
                    reason=err.str(),
                    note="messages stay queued and are retried until message.timeout.ms",
                )
            return
        if code == KafkaError._TRANSPORT:
            self._log.debug("kafka_transport_error", reason=err.str())
            return
        if code in (KafkaError._AUTHENTICATION, KafkaError._SSL) or err.fatal():
            self.last_error = err.str()
        if err.fatal():
            self.fatal(err)
        log = self._error_logs.get(code)
        if log is None:
            log = self._error_logs[code] = RateLimitedLog(
                self._log, "kafka_error", every_s=_ERROR_LOG_EVERY_S, level="warning"
            )
        log(code=err.name(), reason=err.str(), fatal=err.fatal())

    def fatal(self, err: KafkaError) -> None:
        """The producer raised a fatal error (e.g. the broker lost the idempotent producer's
        sequence): it can never deliver again, and is to be replaced."""
        if self.lost_state is None:
            self.lost_state = f"librdkafka raised a fatal error: {err.str()}"

    # -- librdkafka's eos debug lines -------------------------------------------------------------

    def on_epoch_bump(self) -> None:
        """librdkafka bumped the producer's epoch after UNKNOWN_PRODUCER_ID answers."""
        self._bumps += 1
        self.troubled = True
        if self._bumps >= _BUMPS_BEFORE_LOST and self.lost_state is None:
            self.lost_state = (
                "the cluster no longer knows this producer (UNKNOWN_PRODUCER_ID after"
                f" {self._bumps} epoch bumps)"
            )

    # -- deliveries -------------------------------------------------------------------------------

    def delivered(self) -> None:
        """A delivery succeeded while `troubled`: the outage is over, the producer is known."""
        self._bumps = 0
        self.troubled = False
        since = self.outage_since
        self.outage_since = None
        if self._on_reachable is not None:
            self._on_reachable(True)
        if since is not None:
            self._log.info(
                "kafka_recovered",
                bootstrap_servers=self._servers,
                outage_s=round(time.monotonic() - since, 1),
            )

    def replaced(self) -> None:
        """A new producer took over: its own state starts clean."""
        self.lost_state = None
        self._bumps = 0
        self.troubled = True  # readiness and `kafka_recovered` wait for its first delivery


class LogRelay:
    """The `logger` given to one producer: reads the lines `ClusterHealth` needs and relays the
    rest to the `librdkafka` logger, less the noise: per-attempt connection failures (an outage is
    reported once when it starts and once when it ends) and the `eos` debug lines the sink enabled,
    unless the run logs at debug level. One per producer, so that a line is read by the health of
    the producer that wrote it."""

    def __init__(self, health: ClusterHealth, logger: logging.Logger) -> None:
        self.health = health
        self._logger = logger

    def log(self, level: int, msg: str, *args: object) -> None:
        """What confluent-kafka calls: `msg` is "%s [%s] %s", `args` (facility, client, text)."""
        facility = args[0] if args else None
        if facility == "FAIL":
            return
        if facility == "DRAIN" and len(args) > 2 and "bumped epoch" in str(args[2]):
            self.health.on_epoch_bump()
        self._logger.log(level, msg, *args)
