"""The Avro wire layout: confluent-kafka's `AvroSerializer` with schemas/transaction.avsc.

A value is the Confluent framing (magic byte 0, 4-byte schema id) and the Avro binary encoding of
the record, fields in schema order with no separators: the id is a length-prefixed string (one
byte, 0x48, for 36 characters) right after the framing; then the description (length and text),
the amount (an 8-byte double), and the timestamp as a length-prefixed string. A timestamp text
under 64 bytes has a one-byte length, so `timestamp: now` (29 characters) replaces that byte and
the text: a splice.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, cast

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import SerializationContext

from supervisor.formats.schemas import Column, label_schema, transaction_schema
from supervisor.formats.varint import read_varint, varint

Serialize = Callable[[object, SerializationContext], bytes | None]


def zigzag(n: int) -> bytes:
    """`n` as Avro writes a long (and a string's length): zigzag, then a varint."""
    return varint((n << 1) ^ (n >> 63))


def read_long(data: bytes, pos: int) -> tuple[int, int]:
    """The Avro long at `pos`, and the position after it."""
    z, pos = read_varint(data, pos)
    return (z >> 1) ^ -(z & 1), pos


class AvroLayout:
    """Avro values of the transaction schema (extended with `columns`) and of labels."""

    format = "avro"

    def __init__(self, columns: Sequence[Column] = ()) -> None:
        self.schema = transaction_schema("avro", columns)

    def serializer(self, client: SchemaRegistryClient, conf: dict[str, Any]) -> Serialize:
        return cast(Serialize, AvroSerializer(client, self.schema, conf=conf))

    bulk_serializer = serializer

    def label_serializer(self, client: SchemaRegistryClient, conf: dict[str, Any]) -> Serialize:
        return cast(Serialize, AvroSerializer(client, label_schema("avro"), conf=conf))

    def record(self, fields: dict[str, Any]) -> object:
        return fields

    label_record = record

    @staticmethod
    def field_names(schema: str) -> set[str]:
        """The fields of a registered transaction schema's text."""
        return {field["name"] for field in json.loads(schema).get("fields", ())}

    @staticmethod
    def ts_span(value: bytes, id_end: int) -> tuple[int, int]:
        """Where the timestamp's length and text are: after the description and the amount."""
        length, pos = read_long(value, id_end)
        start = pos + length + 8
        length, pos = read_long(value, start)
        return start, pos + length

    @staticmethod
    def ts_field(ts: bytes) -> bytes:
        return zigzag(len(ts)) + ts

    def decoder(self, client: SchemaRegistryClient) -> Callable[[bytes, SerializationContext], Any]:
        """The official deserializer (writer schema from the registry by the value's id)."""
        return cast(Callable[[bytes, SerializationContext], Any], AvroDeserializer(client))

    label_decoder = decoder
