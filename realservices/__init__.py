"""Real servers for the integration tests and the benchmarks: started, awaited, stopped by PID.

A Kafka-protocol broker (Tansu) and an S3 server (moto's), each bound to 127.0.0.1 on a free port.
See ``../shared/REAL-SERVICES.md`` for why these two and for their quirks.

Dev tooling shared by ``tests`` and ``benchmarks`` (neither imports the other): not part of the
``supervisor`` wheel or image, and no pytest in here.

- ``processes``: spawn, wait until ready, ``stop_process``, ``kill_process``, ``free_port``
- ``s3``: ``start_s3`` and ``S3Server``
- ``kafka``: ``start_tansu`` and ``TansuBroker``; ``create_topic``, ``consume_all`` for any cluster
"""

from realservices.kafka import (
    Record,
    TansuBroker,
    consume_all,
    create_topic,
    start_tansu,
    tansu_binary,
    wait_for_kafka,
)
from realservices.processes import (
    LOCALHOST,
    ServiceStartError,
    free_port,
    kill_process,
    stop_process,
)
from realservices.s3 import AWS_REGION, DUMMY_AWS_CREDENTIALS, S3Server, start_s3

__all__ = [
    "AWS_REGION",
    "DUMMY_AWS_CREDENTIALS",
    "LOCALHOST",
    "Record",
    "S3Server",
    "ServiceStartError",
    "TansuBroker",
    "consume_all",
    "create_topic",
    "free_port",
    "kill_process",
    "start_s3",
    "start_tansu",
    "stop_process",
    "tansu_binary",
    "wait_for_kafka",
]
