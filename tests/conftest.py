"""Fixtures for real services: an S3 server and a Kafka-protocol broker (see realservices/).

``TEST_KAFKA_BOOTSTRAP_SERVERS`` points the whole suite at an external Kafka cluster (a real Apache
Kafka, e.g. from docker compose in CI); nothing is started then. Otherwise one Tansu broker with
memory storage serves the session (its memory is never freed: one per session, never per test).
"""

from __future__ import annotations

import logging
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from hypothesis import settings

from realservices import (
    S3Server,
    TansuBroker,
    create_topic,
    start_s3,
    start_tansu,
    wait_for_kafka,
)

EXTERNAL_KAFKA_ENV = "TEST_KAFKA_BOOTSTRAP_SERVERS"
INTEGRATION_DIR = Path(__file__).parent / "integration"
_TOPIC_UNSAFE = re.compile(r"[^a-zA-Z0-9._-]+")
logger = logging.getLogger(__name__)

# CI draws the same examples every run (a gate must not turn red on a new draw; the database of
# failures is not kept there either); a developer's runs draw afresh, which is where new cases
# are found. HYPOTHESIS_PROFILE=ci reproduces CI's draws.
settings.register_profile("ci", derandomize=True, database=None)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "default")
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test under tests/integration with ``integration``."""
    for item in items:
        if item.path.is_relative_to(INTEGRATION_DIR):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """One moto S3 server for the session; tests should use ``s3``, which resets it."""
    server = start_s3()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3(s3_server: S3Server) -> S3Server:
    """The session's S3 server, emptied: no bucket, no object."""
    s3_server.reset()
    return s3_server


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """``bootstrap.servers`` of the session's Kafka: external if configured, else a Tansu broker."""
    external = os.environ.get(EXTERNAL_KAFKA_ENV, "").strip()
    if external:
        wait_for_kafka(external, timeout_s=30)
        yield external
        return
    broker = start_tansu()
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


@pytest.fixture
def topic(kafka_bootstrap: str, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh topic with 3 partitions, unique to this test; deleted afterwards (best effort)."""
    test_name = _TOPIC_UNSAFE.sub("-", request.node.name).strip("-")[:80]
    name = f"t-{test_name}-{uuid.uuid4().hex[:8]}"
    create_topic(kafka_bootstrap, name, partitions=3)
    yield name
    _delete_topic(kafka_bootstrap, name)


def _delete_topic(bootstrap: str, name: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    try:
        admin.delete_topics([name], operation_timeout=10, request_timeout=10)[name].result(
            timeout=15
        )
    except (KafkaException, TimeoutError) as exc:  # a uniquely named leftover is harmless
        logger.warning("could not delete topic %s: %s", name, exc)


@pytest.fixture
def durable_broker(request: pytest.FixtureRequest) -> Iterator[TansuBroker]:
    """A Tansu broker of its own with S3 storage: it keeps its data across kill() + restart()."""
    if os.environ.get(EXTERNAL_KAFKA_ENV, "").strip():
        pytest.skip(
            f"outage tests need a broker the tests can kill; {EXTERNAL_KAFKA_ENV} names an "
            "external cluster"
        )
    s3: S3Server = request.getfixturevalue("s3")
    broker = start_tansu(storage="s3://tansu/", s3=s3)
    try:
        yield broker
    finally:
        broker.stop()
