"""The Protobuf wire layout: confluent-kafka's `ProtobufSerializer` with a message class built at
run time from a descriptor matching schemas/transaction.proto (no generated code to keep in step;
tests/unit/formats/test_protobuf.py compiles the .proto with protoc and compares).

A value is the Confluent framing (magic byte 0, 4-byte schema id), the message indexes (one 0
byte: the file's first message), then the fields in number order, each a tag and, for strings,
a varint length and the text: the id (0x0a 0x24 and 36 characters) right after the framing; the
description; the amount (0x19 and an 8-byte double, left out when 0); the timestamp (0x22, its
length and text). `timestamp: now` replaces that length and text: a splice.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Sequence
from typing import Any, Final, cast

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer, ProtobufSerializer
from confluent_kafka.serialization import SerializationContext
from google.protobuf import (  # type: ignore[import-untyped]
    descriptor_pb2,
    descriptor_pool,
    json_format,
    message_factory,
)
from google.protobuf.message import DecodeError, Message  # type: ignore[import-untyped]

from supervisor.formats.schemas import Column
from supervisor.formats.varint import read_varint, varint

Serialize = Callable[[object, SerializationContext], bytes | None]

PACKAGE: Final = "streaming_producer"
_F = descriptor_pb2.FieldDescriptorProto
TRANSACTION_FIELDS: Final = (
    ("id", _F.TYPE_STRING),
    ("description", _F.TYPE_STRING),
    ("amount", _F.TYPE_DOUBLE),
    ("timestamp", _F.TYPE_STRING),
    ("merchant", _F.TYPE_STRING),
    ("operation_type", _F.TYPE_STRING),
    ("side", _F.TYPE_STRING),
)
LABEL_FIELDS: Final = (
    ("id", _F.TYPE_STRING),
    ("label", _F.TYPE_STRING),
    ("scenario", _F.TYPE_STRING),
    ("scenario_id", _F.TYPE_STRING),
)
LABEL_OPTIONAL_FIELDS: Final = (("entity", _F.TYPE_STRING), ("entity_id", _F.TYPE_STRING))
"""The label's fields that may be absent (`optional`: a dataset without an entity, an empty
cell)."""
_COLUMN_TYPES: Final = {
    "string": _F.TYPE_STRING,
    "int": _F.TYPE_INT64,
    "float": _F.TYPE_DOUBLE,
    "bool": _F.TYPE_BOOL,
}
_TIMESTAMP_TAG: Final = 4 << 3 | 2
_FIRST_MESSAGE: Final = re.compile(r"\bmessage\s+\w+\s*\{([^}]*)\}")
_FIELD: Final = re.compile(r"(\w+)\s*=\s*\d+")


def file_descriptor(
    file_name: str,
    message: str,
    fields: Sequence[tuple[str, int]],
    optional: Sequence[tuple[str, int]] = (),
) -> descriptor_pb2.FileDescriptorProto:
    """A proto3 file of one message whose fields are numbered 1, 2, ... in order: `fields`, then
    `optional` ones (proto3 `optional`: present or absent, as protoc describes them, each in a
    synthetic oneof of its own)."""
    proto = descriptor_pb2.FileDescriptorProto(name=file_name, package=PACKAGE, syntax="proto3")
    body = proto.message_type.add(name=message)
    for number, (name, kind) in enumerate((*fields, *optional), start=1):
        field = body.field.add(
            name=name,
            number=number,
            type=cast(Any, kind),
            label=_F.LABEL_OPTIONAL,
            json_name=_json_name(name),
        )
        if number > len(fields):
            field.proto3_optional = True
            field.oneof_index = len(body.oneof_decl)
            body.oneof_decl.add(name=f"_{name}")
    return proto


def transaction_file(columns: Sequence[Column] = ()) -> descriptor_pb2.FileDescriptorProto:
    """schemas/transaction.proto, with `columns` as `optional` fields 8, 9, ... (an empty cell is
    an absent field)."""
    extra = [(name, _COLUMN_TYPES[kind]) for name, kind in columns]
    return file_descriptor("transaction.proto", "Transaction", TRANSACTION_FIELDS, extra)


def label_file() -> descriptor_pb2.FileDescriptorProto:
    """schemas/label.proto."""
    return file_descriptor("label.proto", "Label", LABEL_FIELDS, LABEL_OPTIONAL_FIELDS)


def message_class(proto: descriptor_pb2.FileDescriptorProto) -> type[Message]:
    """The message class of the file's first message, in a descriptor pool of its own."""
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    descriptor = pool.FindMessageTypeByName(f"{proto.package}.{proto.message_type[0].name}")
    return cast(type[Message], message_factory.GetMessageClass(descriptor))


def _json_name(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


class ProtobufLayout:
    """Protobuf values of the transaction message (extended with `columns`) and of labels."""

    format = "protobuf"

    def __init__(self, columns: Sequence[Column] = ()) -> None:
        self.message = message_class(transaction_file(columns))
        self.label_message = message_class(label_file())

    def serializer(self, client: SchemaRegistryClient, conf: dict[str, Any]) -> Serialize:
        return cast(Serialize, ProtobufSerializer(self.message, client, conf=conf))

    bulk_serializer = serializer

    def label_serializer(self, client: SchemaRegistryClient, conf: dict[str, Any]) -> Serialize:
        return cast(Serialize, ProtobufSerializer(self.label_message, client, conf=conf))

    def record(self, fields: dict[str, Any]) -> object:
        # A kept column's null is an absent optional field (None is not a value in Protobuf).
        return self.message(**{k: v for k, v in fields.items() if v is not None})

    def label_record(self, fields: dict[str, Any]) -> object:
        return self.label_message(**{k: v for k, v in fields.items() if v is not None})

    @staticmethod
    def field_names(schema: str) -> set[str]:
        """The fields of a registered schema's first message: the base64 descriptor a client
        registers (and confluent-kafka's mock returns), or the .proto text a registry returns."""
        try:
            proto = descriptor_pb2.FileDescriptorProto.FromString(
                base64.b64decode(schema, validate=True)
            )
        except (binascii.Error, DecodeError, ValueError):
            body = _FIRST_MESSAGE.search(schema)
            return set(_FIELD.findall(body.group(1))) if body else set()
        return (
            {field.name for field in proto.message_type[0].field} if proto.message_type else set()
        )

    @staticmethod
    def ts_span(value: bytes, id_end: int) -> tuple[int, int]:
        """Where the timestamp's length and text are: past the fields before it."""
        pos = id_end
        while True:
            tag = value[pos]
            pos += 1
            if tag == _TIMESTAMP_TAG:
                length, end = read_varint(value, pos)
                return pos, end + length
            if tag & 7 == 1:  # a double
                pos += 8
            elif tag & 7 == 2 and tag >> 3 < 4:  # the description
                length, pos = read_varint(value, pos)
                pos += length
            else:
                raise ValueError(f"unexpected field tag {tag:#x} before the timestamp")

    @staticmethod
    def ts_field(ts: bytes) -> bytes:
        return varint(len(ts)) + ts

    def decoder(self, client: SchemaRegistryClient) -> Callable[[bytes, SerializationContext], Any]:
        """The official deserializer, as a dict with every field (zero values included)."""
        return _Decoder(self.message)

    def label_decoder(
        self, client: SchemaRegistryClient
    ) -> Callable[[bytes, SerializationContext], Any]:
        return _Decoder(self.label_message)


class _Decoder:
    def __init__(self, message: type[Message]) -> None:
        self._deserialize = ProtobufDeserializer(message, {"use.deprecated.format": False})

    def __call__(self, value: bytes, ctx: SerializationContext) -> dict[str, Any]:
        decoded = self._deserialize(value, ctx)
        return cast(
            dict[str, Any],
            json_format.MessageToDict(
                decoded,
                preserving_proto_field_name=True,
                always_print_fields_with_no_presence=True,
            ),
        )
