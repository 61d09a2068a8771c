"""One vocabulary for what librdkafka reports, shared by `run` (the Kafka sink) and `check`.

Whoever meets a Kafka problem words it here, so a user reads the same line for the same fault:
a refused property names itself as the config wrote it, a refused login points at the security
settings, an unreachable cluster at the bootstrap servers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from confluent_kafka import KafkaError, KafkaException, Producer

from supervisor.config import REDACTED, is_secret_key

CREDENTIAL_ERRORS: Final = frozenset(
    {KafkaError._AUTHENTICATION, KafkaError._SSL, KafkaError.SASL_AUTHENTICATION_FAILED}
)
"""Errors meaning a broker was reached and refused the client's credentials or TLS."""
TRANSPORT_ERRORS: Final = frozenset({KafkaError._TRANSPORT, KafkaError._RESOLVE})
"""Errors meaning no broker could be reached at all (refused, unresolvable, timed out)."""
FIX_SERVERS: Final = (
    "check kafka.bootstrap_servers / KAFKA_BOOTSTRAP_SERVERS and that the brokers are up"
)
FIX_CREDENTIALS: Final = "check the credentials and security settings in kafka.config"
_PROBE_KEY: Final = "streaming.producer.probe"
"""A property librdkafka does not know: set after one user property, it makes the constructor
fail at once, before any client exists, unless that user property failed first."""


def reason(exc: KafkaException) -> str:
    """librdkafka's own words for `exc`."""
    arg = exc.args[0] if exc.args else exc
    return arg.str() if isinstance(arg, KafkaError) else str(arg)


def config_problem(config: Mapping[str, Any], exc: Exception) -> str:
    """One line naming the kafka.config property librdkafka refused, as the config wrote it.

    librdkafka reports aliases by their canonical name (`linger.ms` as `queue.buffering.max.ms`)
    and stops at the first bad property; trying each property alone, followed by a probe key
    librdkafka does not know, finds the culprit without ever starting a client."""
    why = reason(exc) if isinstance(exc, KafkaException) else str(exc)
    for key, value in config.items():
        if key in ("bootstrap.servers", "client.id"):
            continue
        try:
            Producer({key: value, _PROBE_KEY: 1})
        except KafkaException as probe:
            if _PROBE_KEY in reason(probe):
                continue
            shown = REDACTED if is_secret_key(key) else repr(value)
            return (
                f"kafka.config[{key!r}] = {shown}: {reason(probe)} — fix or remove it"
                " (librdkafka's CONFIGURATION.md lists every property and its values)"
            )
        except (TypeError, ValueError) as probe:
            return f"kafka.config[{key!r}]: {probe} — fix or remove it"
    return f"kafka.config: {why}"
