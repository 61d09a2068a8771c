"""Message formats: every layout's values, spliced or re-serialized, read back by confluent-kafka's
official deserializers through its in-process mock registry, and by the schemas of schemas/."""

from __future__ import annotations

import io
import json
import random
import uuid
from typing import Any

import fastavro
import jsonschema
import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.schema_registry.json_schema import JSONDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from supervisor.config import Config
from supervisor.dataset import Dataset, Reading, parse_csv
from supervisor.errors import ExitCode, RegistryError
from supervisor.formats.encodings import Encodings
from supervisor.formats.registry import serializer_conf
from supervisor.formats.schemas import schema_file, transaction_schema
from supervisor.formats.topic import layout_of
from supervisor.formats.wire import Wire
from supervisor.profile.events import fresh_uuids, id_slices

FORMATS = ("avro", "protobuf", "json-schema")
NOW = b"2026-12-03T04:07:05.123+00:00"
HEADER = "id,description,amount,timestamp,merchant,operation_type,side\n"
ROWS = (
    f"{uuid.UUID(int=1)},Coffee,3.50,2026-01-11T10:00:00,Café du Port,debit,outgoing\n"
    f'{uuid.UUID(int=2)},"Refund, ""quoted"" ☕",0,2026-01-11T10:00:01.5+02:00,Shop,credit,'
    "incoming\n"
    f"{uuid.UUID(int=3)},{'long text ' * 30},1e3,2026-01-11,M,debit,outgoing\n"
)


@pytest.fixture
def dataset() -> Dataset:
    return parse_csv((HEADER + ROWS).encode(), source="formats.csv")


def config_for(format: str, registry: str = "mock://unit", **extra: Any) -> Config:
    return Config.model_validate(
        {
            "schema_registry": {"url": registry, **extra},
            "profiles": {
                "p": {
                    "interval_s": 1,
                    "min_records": 1,
                    "max_records": 1,
                    "format": format,
                    "topic": "tx",
                    "scenario": {"kind": "amount-outlier", "every_s": 1},
                    "labels": {"topic": "tx-labels"},
                }
            },
        }
    )


def prepared(format: str, dataset: Dataset, **extra: Any) -> tuple[Encodings, Wire]:
    config = config_for(format, **extra)
    encodings = Encodings(config.schema_registry)
    encodings.prepare(config, dataset)
    return encodings, encodings.wire(config.profiles["p"], "tx", dataset)


def row_fields(dataset: Dataset, row: int) -> dict[str, Any]:
    fields: dict[str, Any] = json.loads(dataset.values[row])
    fields["amount"] = float(fields["amount"])
    return fields


def official_decode(encodings: Encodings, format: str, value: bytes, topic: str = "tx") -> Any:
    """The value read back by the official deserializer of its format."""
    client = encodings._client  # the registry the values were written with
    assert client is not None
    ctx = SerializationContext(topic, MessageField.VALUE)
    if format == "avro":
        return AvroDeserializer(client)(value, ctx)
    if format == "json-schema":
        return JSONDeserializer(None, schema_registry_client=client)(value, ctx)
    decode = encodings.decoder(topic)  # ProtobufDeserializer with the message class
    assert decode is not None
    return json.loads(decode(value))


@pytest.mark.parametrize("format", FORMATS)
def test_every_row_round_trips_through_the_official_deserializer(
    format: str, dataset: Dataset
) -> None:
    encodings, wire = prepared(format, dataset)
    for row in range(len(dataset)):
        value = wire.splice(row, None, None)
        assert value[0] == 0  # Confluent framing: magic byte, then the schema id
        assert official_decode(encodings, format, value) == row_fields(dataset, row)


@pytest.mark.parametrize("format", FORMATS)
def test_fresh_ids_and_now_are_spliced_into_decodable_values(format: str, dataset: Dataset) -> None:
    encodings, wire = prepared(format, dataset)
    rows = [2, 0, 1, 1]
    ids = id_slices(fresh_uuids(random.Random(1), len(rows)), len(rows))
    for spliced_ids, ts in ((ids, NOW), (ids, None), (None, NOW), (None, None)):
        values = wire.splice_batch(rows, spliced_ids, ts)
        for k, (row, value) in enumerate(zip(rows, values, strict=True)):
            expected = row_fields(dataset, row)
            if spliced_ids is not None:
                expected["id"] = spliced_ids[k].decode()
            if ts is not None:
                expected["timestamp"] = ts.decode()
            assert official_decode(encodings, format, value) == expected
            assert wire.id_of(value) == expected["id"].encode()
            assert value == wire.splice(row, expected["id"].encode(), ts)


@pytest.mark.parametrize("format", FORMATS)
def test_an_amount_rewrite_is_serialized_again(format: str, dataset: Dataset) -> None:
    encodings, wire = prepared(format, dataset)
    new_id = str(uuid.UUID(int=99)).encode()
    value = wire.rewritten(1, new_id, NOW, {"amount": b"98765.43"})
    expected = {**row_fields(dataset, 1), "id": new_id.decode(), "timestamp": NOW.decode()}
    assert official_decode(encodings, format, value) == {**expected, "amount": 98765.43}


@pytest.mark.parametrize("format", FORMATS)
def test_labels_have_their_own_schema_and_decode(format: str, dataset: Dataset) -> None:
    encodings, wire = prepared(format, dataset)
    fields: dict[str, str | None] = {
        "id": str(uuid.UUID(int=5)),
        "label": "fraud",
        "scenario": "x",
        "scenario_id": "y",
    }
    decoded = official_decode(encodings, format, wire.label(fields), topic="tx-labels")
    # Without an entity: absent (Protobuf, JSON Schema) or null (Avro's union default).
    assert {k: v for k, v in decoded.items() if v is not None} == fields
    assert set(decoded) - set(fields) <= {"entity", "entity_id"}
    # With one: the card, or its empty cell (null; absent in Protobuf).
    carded = {**fields, "entity": "card_id", "entity_id": "card-000042"}
    assert official_decode(encodings, format, wire.label(carded), topic="tx-labels") == carded
    blank = {**fields, "entity": "card_id", "entity_id": None}
    decoded = official_decode(encodings, format, wire.label(blank), topic="tx-labels")
    assert decoded.get("entity_id") is None
    assert decoded["entity"] == "card_id"


def test_avro_values_decode_with_schemas_transaction_avsc(dataset: Dataset) -> None:
    _, wire = prepared("avro", dataset)
    schema = fastavro.parse_schema(json.loads(schema_file("transaction.avsc")))
    for row in range(len(dataset)):
        value = wire.splice(row, None, NOW)
        decoded = fastavro.schemaless_reader(io.BytesIO(value[5:]), schema, None)
        assert decoded == {**row_fields(dataset, row), "timestamp": NOW.decode()}


def test_json_schema_values_validate_against_schemas_transaction_schema_json(
    dataset: Dataset,
) -> None:
    _, wire = prepared("json-schema", dataset)
    schema = json.loads(schema_file("transaction.schema.json"))
    for row in range(len(dataset)):
        decoded = json.loads(wire.splice(row, None, NOW)[5:])
        jsonschema.validate(decoded, schema)
        assert decoded == {**row_fields(dataset, row), "timestamp": NOW.decode()}


@pytest.mark.parametrize("strategy", ["topic", "record", "topic_record"])
def test_the_subject_follows_the_naming_strategy(strategy: str, dataset: Dataset) -> None:
    encodings, _ = prepared("avro", dataset, subject_name_strategy=strategy)
    assert encodings._client is not None
    subjects = set(encodings._client.get_subjects())
    expected = {
        "topic": {"tx-value", "tx-labels-value"},
        "record": {"streaming_producer.Transaction", "streaming_producer.Label"},
        "topic_record": {"tx-streaming_producer.Transaction", "tx-labels-streaming_producer.Label"},
    }[strategy]
    assert subjects == expected


def test_a_schema_the_registry_does_not_have_is_refused_in_one_line(dataset: Dataset) -> None:
    config = config_for("avro", auto_register=False)
    with pytest.raises(RegistryError) as caught:
        Encodings(config.schema_registry).prepare(config, dataset)
    message = str(caught.value)
    assert "\n" not in message
    assert "mock://unit" in message
    assert "'tx'" in message
    assert "auto_register" in message
    assert caught.value.exit_code == ExitCode.BAD_INPUT
    assert caught.value.status == 404


def test_an_unreachable_registry_is_one_line_without_the_password(dataset: Dataset) -> None:
    config = config_for(
        "avro",
        registry="http://alice:pa55word@127.0.0.1:9",
        config={"max.retries": 0, "timeout": 2},
    )
    with pytest.raises(RegistryError) as caught:
        Encodings(config.schema_registry).prepare(config, dataset)
    message = str(caught.value)
    assert "\n" not in message
    assert "pa55word" not in message
    assert "127.0.0.1:9" in message
    assert "schema_registry.url" in message


def test_use_latest_version_writes_with_the_registered_schema(dataset: Dataset) -> None:
    encodings, wire = prepared("avro", dataset)  # registers the schema of schemas/
    client = encodings._client
    assert client is not None
    config = config_for("avro", auto_register=False, use_latest_version=True)
    latest = Encodings(config.schema_registry)
    latest._client = client  # the same mock registry
    latest.prepare(config, dataset)
    value = latest.wire(config.profiles["p"], "tx", dataset).splice(0, None, NOW)
    assert value == wire.splice(0, None, NOW)


def test_extra_columns_extend_the_schemas_after_the_seven_fields() -> None:
    columns = [("card_id", "string"), ("mcc", "int")]
    avro = json.loads(transaction_schema("avro", columns))
    assert [f["name"] for f in avro["fields"]][-3:] == ["side", "card_id", "mcc"]
    assert avro["fields"][-1] == {"name": "mcc", "type": ["null", "long"], "default": None}
    fastavro.parse_schema(avro)
    schema = json.loads(transaction_schema("json-schema", columns))
    assert schema["properties"]["mcc"] == {"type": ["integer", "null"]}
    assert "mcc" not in schema["required"]
    assert transaction_schema("avro") == schema_file("transaction.avsc")


@pytest.mark.parametrize("format", FORMATS)
def test_a_layout_with_extra_columns_keeps_id_and_timestamp_where_splices_write(
    format: str,
) -> None:
    layout = layout_of(format, [("card_id", "string"), ("mcc", "int")])
    client = SchemaRegistryClient.new_client({"url": "mock://columns"})
    registry = config_for(format).schema_registry
    assert registry is not None
    serialize = layout.serializer(client, serializer_conf(registry, format))
    ctx = SerializationContext("tx", MessageField.VALUE)
    fields = {
        "id": str(uuid.UUID(int=7)),
        "description": "Coffee",
        "amount": 3.5,
        "timestamp": "2026-01-11T10:00:00",
        "merchant": "Shop",
        "operation_type": "debit",
        "side": "outgoing",
        "card_id": "card-42",
        "mcc": 5411,
    }
    value = serialize(layout.record(fields), ctx)
    assert value is not None
    id_start = value.index(fields["id"].encode())
    start, end = layout.ts_span(value, id_start + 36)
    assert value[start:end] == layout.ts_field(b"2026-01-11T10:00:00")
    spliced = value[:start] + layout.ts_field(NOW) + value[end:]
    decoded = layout.decoder(client)(spliced, ctx)
    if format == "protobuf":
        decoded = json.loads(json.dumps(decoded))
        decoded["mcc"] = int(decoded["mcc"])  # int64 reads back as text in proto JSON
    assert decoded == {**fields, "timestamp": NOW.decode()}


def test_a_latest_version_laid_out_otherwise_is_refused_in_one_line(dataset: Dataset) -> None:
    config = config_for("avro", auto_register=False, use_latest_version=True)
    encodings = Encodings(config.schema_registry)
    encodings._client = client = SchemaRegistryClient.new_client({"url": "mock://latest"})
    reordered = json.loads(schema_file("transaction.avsc"))
    reordered["fields"].insert(0, reordered["fields"].pop(3))  # the timestamp first
    client.register_schema("tx-value", Schema(json.dumps(reordered), "AVRO"))
    with pytest.raises(RegistryError) as caught:
        encodings.prepare(config, dataset)
    message = str(caught.value)
    assert "\n" not in message
    assert "does not write the dataset as schemas/ does" in message


def test_use_schema_id_writes_with_that_registered_schema(dataset: Dataset) -> None:
    encodings, wire = prepared("avro", dataset)  # registers the schema of schemas/: id 1
    config = config_for("avro", auto_register=False, use_schema_id=1)
    chosen = Encodings(config.schema_registry)
    chosen._client = encodings._client  # the same mock registry
    chosen.prepare(config, dataset)
    value = chosen.wire(config.profiles["p"], "tx", dataset).splice(2, None, NOW)
    assert value == wire.splice(2, None, NOW)
    assert value[1:5] == (1).to_bytes(4, "big")


KEPT = Reading(
    extra_columns="keep", types={"mcc": "int", "score": "float", "vip": "bool"}, entity="card_id"
)
KEPT_CSV = (
    "id,description,amount,timestamp,merchant,operation_type,side,card_id,mcc,score,vip\n"
    f"{uuid.UUID(int=1)},Coffee,3.50,2026-01-11T10:00:00,Café,debit,outgoing,card-1,5411,0.25,true\n"
    f"{uuid.UUID(int=2)},Refund,0,2026-01-11T10:00:01,Shop,credit,incoming,,,,\n"
    f"{uuid.UUID(int=3)},Tea,1e3,2026-01-11,M,debit,outgoing,card-3,-1,1e-3,false\n"
)


@pytest.fixture
def kept() -> Dataset:
    return parse_csv(KEPT_CSV.encode(), source="kept.csv", reading=KEPT)


def decoded_row(encodings: Encodings, format: str, value: bytes) -> dict[str, Any]:
    """A value read back, as JSON would carry it: Protobuf's absent optional fields (a kept
    column's empty cell) as null, its int64 (text in proto JSON) as a number."""
    decoded: dict[str, Any] = official_decode(encodings, format, value)
    if format == "protobuf":
        decoded = {**dict.fromkeys(KEPT.types), "card_id": None, **decoded}
        if decoded["mcc"] is not None:
            decoded["mcc"] = int(decoded["mcc"])
    return decoded


@pytest.mark.parametrize("format", FORMATS)
def test_kept_columns_go_out_in_every_format_typed_and_null_when_empty(
    format: str, kept: Dataset
) -> None:
    encodings, wire = prepared(format, kept)
    for row in range(len(kept)):
        assert decoded_row(encodings, format, wire.splice(row, None, None)) == row_fields(kept, row)
    second = decoded_row(encodings, format, wire.splice(1, None, NOW))
    assert [second[c] for c in ("card_id", "mcc", "score", "vip")] == [None] * 4
    assert decoded_row(encodings, format, wire.splice(0, None, None))["vip"] is True


@pytest.mark.parametrize("format", FORMATS)
def test_a_fraud_event_on_another_card_is_serialized_again_with_it(
    format: str, kept: Dataset
) -> None:
    encodings, wire = prepared(format, kept)
    new_id = str(uuid.UUID(int=77)).encode()
    value = wire.rewritten(2, new_id, NOW, {"card_id": b'"card-999"', "amount": b"0.01"})
    expected = {**row_fields(kept, 2), "id": new_id.decode(), "timestamp": NOW.decode()}
    assert decoded_row(encodings, format, value) == {
        **expected,
        "card_id": "card-999",
        "amount": 0.01,
    }
    assert wire.id_of(value) == new_id


@pytest.mark.parametrize("format", FORMATS)
def test_a_registered_version_without_the_kept_columns_is_refused(
    format: str, dataset: Dataset, kept: Dataset
) -> None:
    """`use_latest_version` on a subject whose latest version is the seven-field schema: the kept
    columns would be dropped from every message (Avro) or written under fields the schema does
    not know (Protobuf); refused at start, naming them."""
    encodings, _ = prepared(format, dataset)  # registers the seven-field schema
    config = config_for(format, auto_register=False, use_latest_version=True)
    latest = Encodings(config.schema_registry)
    latest._client = encodings._client  # the same mock registry
    with pytest.raises(RegistryError) as caught:
        latest.prepare(config, kept)
    message = str(caught.value)
    assert "\n" not in message
    if format == "json-schema":  # its serializer validates the first row against it
        assert "Additional properties are not allowed ('card_id', 'mcc'" in message
        assert "does not fit the dataset's rows" in message
    else:
        assert "has no field for the dataset's kept column(s) card_id, mcc, score, vip" in message
        assert "extra_columns: drop" in message
    # Once the extended schema is registered (a new version of the subject), it is written with.
    extended, wire = prepared(format, kept)
    again = Encodings(config.schema_registry)
    again._client = extended._client
    again.prepare(config, kept)
    value = again.wire(config.profiles["p"], "tx", kept).splice(0, None, NOW)
    assert value == wire.splice(0, None, NOW)


@pytest.mark.parametrize(
    ("format", "text"),
    [
        (
            "protobuf",
            'syntax = "proto3";\nmessage Transaction {\n  string id = 1;\n'
            "  optional string card_id = 8;\n}\n",
        ),
        (
            "avro",
            '{"type": "record", "name": "T", "fields": [{"name": "id", "type": "string"},'
            ' {"name": "card_id", "type": ["null", "string"]}]}',
        ),
    ],
)
def test_the_field_names_of_a_registered_schema_text(format: str, text: str) -> None:
    assert layout_of(format).field_names(text) == {"id", "card_id"}
