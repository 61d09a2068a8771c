"""The JSON Schema wire layout: confluent-kafka's `JSONSerializer` with
schemas/transaction.schema.json.

A value is the Confluent framing (magic byte 0, 4-byte schema id) and compact JSON of the fields
in order, `{"id":"<36 characters>",...,"timestamp":"<text>",...}`: the id right after
`{"id":"`, and the timestamp text (no escaping: ISO 8601) after the first `,"timestamp":"` (a
quote inside a JSON string is always escaped), so both are spliced as in plain JSON.

The serializer validates each message against the schema (about 90 µs a message): the load
serializes every row without validation, having validated the first (rows are validated by the
dataset's own model, which the schema mirrors); a re-serialized message is validated.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, Final, cast

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
from confluent_kafka.serialization import SerializationContext

from supervisor.formats.schemas import Column, label_schema, transaction_schema

Serialize = Callable[[object, SerializationContext], bytes | None]

_TS_MARK: Final = b',"timestamp":"'


class JsonSchemaLayout:
    """JSON values of the transaction schema (extended with `columns`) and of labels."""

    format = "json-schema"

    def __init__(self, columns: Sequence[Column] = ()) -> None:
        self.schema = transaction_schema("json-schema", columns)

    def serializer(self, client: SchemaRegistryClient, conf: dict[str, Any]) -> Serialize:
        return cast(Serialize, JSONSerializer(self.schema, client, conf=conf))

    def bulk_serializer(self, client: SchemaRegistryClient, conf: dict[str, Any]) -> Serialize:
        conf = {**conf, "validate": False}
        return cast(Serialize, JSONSerializer(self.schema, client, conf=conf))

    def label_serializer(self, client: SchemaRegistryClient, conf: dict[str, Any]) -> Serialize:
        return cast(Serialize, JSONSerializer(label_schema("json-schema"), client, conf=conf))

    def record(self, fields: dict[str, Any]) -> object:
        return fields

    label_record = record

    @staticmethod
    def field_names(schema: str) -> set[str]:
        """The properties of a registered transaction schema's text."""
        return set(json.loads(schema).get("properties", {}))

    @staticmethod
    def ts_span(value: bytes, id_end: int) -> tuple[int, int]:
        start = value.index(_TS_MARK, id_end) + len(_TS_MARK)
        return start, value.index(b'"', start)

    @staticmethod
    def ts_field(ts: bytes) -> bytes:
        return ts

    def decoder(self, client: SchemaRegistryClient) -> Callable[[bytes, SerializationContext], Any]:
        """The official deserializer (validating against the registered schema)."""
        return cast(
            Callable[[bytes, SerializationContext], Any],
            JSONDeserializer(None, schema_registry_client=client),
        )

    label_decoder = decoder
