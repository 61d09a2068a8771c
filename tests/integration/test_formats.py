"""Confluent wire formats end to end: the CLI as a subprocess -> Kafka (Tansu or external), with a
Schema Registry: confluent-kafka's in-process mock (`mock://`) by default, or a real one named by
SCHEMA_REGISTRY_URL (no registry server can be installed here: see docs/datasets-and-messages.md).

Each format's messages read back with the schemas of schemas/ (fastavro with transaction.avsc,
the class protoc generates from transaction.proto, jsonschema with transaction.schema.json) and with
confluent-kafka's official deserializer, into the dataset row's fields.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fastavro
import jsonschema
import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.schema_registry.json_schema import JSONDeserializer
from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext
from google.protobuf import json_format  # type: ignore[import-untyped]

from realservices import consume_all
from supervisor.dataset.synth import write_csv
from supervisor.formats.protobuf import message_class, transaction_file
from supervisor.formats.schemas import schema_file, schemas_dir
from tests.integration.cli_process import CliProcess

DATASET = Path(__file__).resolve().parents[2] / "data" / "transactions.csv"
REAL_REGISTRY = os.environ.get("SCHEMA_REGISTRY_URL")
MESSAGES = 30


@pytest.fixture(scope="module")
def rows() -> dict[str, dict[str, Any]]:
    with DATASET.open(encoding="utf-8", newline="") as f:
        return {row["id"]: row for row in csv.DictReader(f)}


def registry_url() -> str:
    return REAL_REGISTRY or f"mock://e2e-{uuid.uuid4().hex[:8]}"


def run_profile(
    tmp_path: Path, kafka_bootstrap: str, topic: str, format: str, cli: list[CliProcess]
) -> CliProcess:
    config = tmp_path / "config.yaml"
    config.write_text(
        f"kafka: {{bootstrap_servers: '{kafka_bootstrap}', topic: {topic}}}\n"
        f"dataset: {{uri: '{DATASET}'}}\n"
        f"schema_registry: {{url: '{registry_url()}'}}\n"
        "profiles:\n"
        f"  p: {{interval_s: 0.01, min_records: 3, max_records: 3, format: {format},"
        " timestamp: now}\n"
    )
    proc = CliProcess(["run", "--config", str(config), "--max-messages", str(MESSAGES)])
    cli.append(proc)
    assert proc.wait() == 0, proc.log()
    return proc


def official(format: str, topic: str, schema_id: int) -> Callable[[bytes], Any]:
    """The official deserializer of `format`: with the real registry its values went to, or a
    mock holding the schema of schemas/ under the same subject and id."""
    client = SchemaRegistryClient.new_client({"url": REAL_REGISTRY or "mock://reader"})
    if REAL_REGISTRY is None:
        schema = {
            "avro": Schema(schema_file("transaction.avsc"), "AVRO"),
            "json-schema": Schema(schema_file("transaction.schema.json"), "JSON"),
        }.get(format)
        if schema is not None:
            assert client.register_schema(f"{topic}-value", schema) == schema_id
    ctx = SerializationContext(topic, MessageField.VALUE)
    if format == "avro":
        avro = AvroDeserializer(client)
        return lambda value: avro(value, ctx)
    if format == "json-schema":
        js = JSONDeserializer(None, schema_registry_client=client)
        return lambda value: js(value, ctx)
    proto = ProtobufDeserializer(message_class(transaction_file()), {})
    return lambda value: json_format.MessageToDict(
        proto(value, ctx), preserving_proto_field_name=True
    )


@pytest.fixture(scope="module")
def protoc_transaction(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The message class protoc generates from schemas/transaction.proto."""
    out = tmp_path_factory.mktemp("protoc")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"--proto_path={schemas_dir()}",
            f"--python_out={out}",
            "transaction.proto",
        ],
        check=True,
        capture_output=True,
    )
    spec = importlib.util.spec_from_file_location("transaction_pb2", out / "transaction_pb2.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Transaction


def with_schema(format: str, value: bytes, protoc_class: Any = None) -> dict[str, Any]:
    """A value read with the schema of schemas/ alone (past the Confluent framing)."""
    if format == "avro":
        schema = fastavro.parse_schema(json.loads(schema_file("transaction.avsc")))
        return fastavro.schemaless_reader(io.BytesIO(value[5:]), schema, None)  # type: ignore[return-value]
    if format == "json-schema":
        decoded: dict[str, Any] = json.loads(value[5:])
        jsonschema.validate(decoded, json.loads(schema_file("transaction.schema.json")))
        return decoded
    assert value[5] == 0  # message indexes: the file's first message
    message = (protoc_class or message_class(transaction_file())).FromString(value[6:])
    return json_format.MessageToDict(message, preserving_proto_field_name=True)  # type: ignore[no-any-return]


@pytest.mark.parametrize("format", ["avro", "protobuf", "json-schema"])
def test_a_profile_sends_confluent_wire_format_that_decodes_into_the_rows_fields(
    format: str,
    tmp_path: Path,
    kafka_bootstrap: str,
    new_topic: Callable[[str], str],
    cli_processes: list[CliProcess],
    rows: dict[str, dict[str, Any]],
    protoc_transaction: Any,
) -> None:
    topic = new_topic(f"fmt-{format}")
    proc = run_profile(tmp_path, kafka_bootstrap, topic, format, cli_processes)
    (ready,) = proc.named("schema_ready")
    records = consume_all(kafka_bootstrap, topic)
    assert len(records) == MESSAGES
    decode = official(format, topic, ready["schema_id"])
    for record in records:
        value = record.value
        assert value is not None
        assert value[0] == 0
        assert int.from_bytes(value[1:5], "big") == ready["schema_id"]
        event = with_schema(format, value, protoc_transaction)
        assert decode(value) == event
        assert event["timestamp"].endswith("+00:00")  # timestamp: now, spliced
        row = rows[event["id"]]
        assert event == {**row, "amount": float(row["amount"]), "timestamp": event["timestamp"]}


def test_a_refusing_registry_stops_the_start_with_one_line_and_exit_2(
    tmp_path: Path, kafka_bootstrap: str, topic: str, cli_processes: list[CliProcess]
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        f"kafka: {{bootstrap_servers: '{kafka_bootstrap}', topic: {topic}}}\n"
        f"dataset: {{uri: '{DATASET}'}}\n"
        "schema_registry: {url: 'mock://empty', auto_register: false,"
        " basic_auth_user_info: 'alice:hunter22'}\n"
        "profiles: {p: {interval_s: 0.01, min_records: 1, max_records: 1, format: avro}}\n"
    )
    proc = CliProcess(["run", "--config", str(config), "--max-messages", "5"])
    cli_processes.append(proc)
    assert proc.wait() == 2, proc.log()
    assert "hunter22" not in "\n".join(proc.lines) + proc.output()
    check = CliProcess(["check", "--config", str(config)])
    cli_processes.append(check)
    assert check.wait() == 2, check.log()
    lines = check.output().splitlines()
    assert any(line.startswith("✗ registry") and "auto_register" in line for line in lines), lines


def test_a_reload_registers_new_topics_and_serializes_a_new_dataset(
    tmp_path: Path,
    kafka_bootstrap: str,
    new_topic: Callable[[str], str],
    cli_processes: list[CliProcess],
    rows: dict[str, dict[str, Any]],
) -> None:
    avro_topic, proto_topic = new_topic("reload-avro"), new_topic("reload-proto")
    other = tmp_path / "other.csv"
    write_csv(other, rows=50, seed=11)
    with other.open(encoding="utf-8", newline="") as f:
        other_rows = {row["id"]: row for row in csv.DictReader(f)}
    avro = (
        f"  a: {{interval_s: 0.02, min_records: 2, max_records: 2, format: avro,"
        f" topic: {avro_topic}}}\n"
    )
    proto = (
        f"  b: {{interval_s: 0.02, min_records: 2, max_records: 2, format: protobuf,"
        f" topic: {proto_topic}}}\n"
    )

    registry = registry_url()

    def text(dataset: Path, profiles: str) -> str:
        return (
            f"kafka: {{bootstrap_servers: '{kafka_bootstrap}'}}\n"
            f"dataset: {{uri: '{dataset}'}}\n"
            f"schema_registry: {{url: '{registry}'}}\n"
            f"stats_interval_s: 0.2\n"
            f"profiles:\n{profiles}"
        )

    config = tmp_path / "config.yaml"
    config.write_text(text(DATASET, avro))
    proc = CliProcess(["run", "--config", str(config)])
    cli_processes.append(proc)
    proc.wait_for(lambda e: e.get("event") == "profile_stats" and e.get("delivered", 0) > 0)
    replacement = tmp_path / "config.tmp"
    replacement.write_text(text(other, avro + proto))
    replacement.replace(config)
    proc.signal(signal.SIGHUP)
    reloaded = proc.wait_for(lambda e: e.get("event") == "config_reloaded")
    assert reloaded["added"] == ["b"]
    assert reloaded["dataset_reloaded"] is True
    proc.wait_for(
        lambda e: (
            e.get("event") == "profile_stats"
            and e.get("profile") == "b"
            and e.get("delivered", 0) > 4
        )
    )
    assert proc.sigterm_and_wait() == 0, proc.log()

    sources = [with_schema("avro", r.value) for r in consume_all(kafka_bootstrap, avro_topic)]
    assert all(e["id"] in rows or e["id"] in other_rows for e in sources)
    assert any(e["id"] in other_rows for e in sources)  # the new dataset, serialized on reload
    for record in consume_all(kafka_bootstrap, proto_topic):
        event = with_schema("protobuf", record.value)
        row = other_rows[event["id"]]
        assert event == {**row, "amount": float(row["amount"])}


@pytest.mark.skipif(REAL_REGISTRY is None, reason="needs a real registry: set SCHEMA_REGISTRY_URL")
def test_a_real_registry_refuses_an_incompatible_schema_with_one_line(
    tmp_path: Path, kafka_bootstrap: str, topic: str, cli_processes: list[CliProcess]
) -> None:
    """Compatibility rules are the registry's (the mock has none): a subject whose latest
    version has `id` as a long refuses schemas/transaction.avsc (409), and the run says so."""
    assert REAL_REGISTRY is not None
    client = SchemaRegistryClient.new_client({"url": REAL_REGISTRY})
    older = json.loads(schema_file("transaction.avsc"))
    older["fields"][0] = {"name": "id", "type": "long"}
    client.register_schema(f"{topic}-value", Schema(json.dumps(older), "AVRO"))
    config = tmp_path / "config.yaml"
    config.write_text(
        f"kafka: {{bootstrap_servers: '{kafka_bootstrap}', topic: {topic}}}\n"
        f"dataset: {{uri: '{DATASET}'}}\n"
        f"schema_registry: {{url: '{REAL_REGISTRY}'}}\n"
        "profiles: {p: {interval_s: 0.01, min_records: 1, max_records: 1, format: avro}}\n"
    )
    proc = CliProcess(["run", "--config", str(config), "--max-messages", "5"])
    cli_processes.append(proc)
    assert proc.wait() == 2, proc.log()
    (fatal,) = proc.named("fatal")
    assert "incompatible" in fatal["error"]
