"""One topic's schema in a Confluent wire format: confluent-kafka's serializers for it (as the
registry knows the schema), and the dataset's rows serialized once with them.

The heavy part of the message formats (the registry client, fastavro, protobuf, jsonschema): only
`supervisor.formats.encodings` imports it, and only once a profile writes a non-JSON format, so
that a JSON-only run does not pay for its imports at start.
"""

from __future__ import annotations

import json
from array import array
from collections.abc import Callable, Sequence
from typing import Any, Final, Protocol

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.serialization import MessageField, SerializationContext

from supervisor.config.registry import SchemaRegistrySettings
from supervisor.dataset import Dataset, codec
from supervisor.errors import RegistryError
from supervisor.formats.avro import AvroLayout
from supervisor.formats.json_schema import JsonSchemaLayout
from supervisor.formats.protobuf import ProtobufLayout
from supervisor.formats.registry import FAILURES, refused, secrets_of, serializer_conf
from supervisor.formats.schemas import Column
from supervisor.formats.wire import FramedValues

Serialize = Callable[[object, SerializationContext], bytes | None]
Decode = Callable[[bytes, SerializationContext], Any]


class Layout(Protocol):
    """One Confluent wire layout (`supervisor.formats.avro`, `.protobuf`, `.json_schema`)."""

    format: str

    def serializer(self, client: SchemaRegistryClient, conf: dict[str, Any]) -> Serialize: ...
    def bulk_serializer(self, client: SchemaRegistryClient, conf: dict[str, Any]) -> Serialize: ...
    def label_serializer(self, client: SchemaRegistryClient, conf: dict[str, Any]) -> Serialize: ...
    def record(self, fields: dict[str, Any]) -> object: ...
    def label_record(self, fields: dict[str, Any]) -> object: ...
    def field_names(self, schema: str) -> set[str]: ...
    def ts_span(self, value: bytes, id_end: int) -> tuple[int, int]: ...
    def ts_field(self, ts: bytes) -> bytes: ...
    def decoder(self, client: SchemaRegistryClient) -> Decode: ...
    def label_decoder(self, client: SchemaRegistryClient) -> Decode: ...


def layout_of(format: str, columns: Sequence[Column] = ()) -> Layout:
    """The layout of a non-JSON format, its schemas extended with the dataset's kept extra
    `columns` (name, type) after the seven fields (rows are serialized from their JSON values,
    which carry them)."""
    layouts: dict[str, Callable[[Sequence[Column]], Layout]] = {
        "avro": AvroLayout,
        "protobuf": ProtobufLayout,
        "json-schema": JsonSchemaLayout,
    }
    return layouts[format](columns)


class Topic:
    """One topic's serializers, as the registry knows them, and its values made from them."""

    def __init__(
        self,
        layout: Layout,
        columns: tuple[Column, ...],
        client: SchemaRegistryClient,
        settings: SchemaRegistrySettings,
        topic: str,
        shown_url: str,
        *,
        labels: bool,
    ) -> None:
        self.layout = layout
        self.client = client
        self.columns = columns
        """The dataset's kept columns that extend this topic's schema."""
        self.topic = topic
        self.shown_url = shown_url
        self.secrets = secrets_of(settings)
        self.ctx = SerializationContext(topic, MessageField.VALUE)
        conf = serializer_conf(settings, layout.format)
        self.serialize = layout.serializer(client, conf)
        self.bulk = layout.bulk_serializer(client, conf)
        # `use_schema_id` names the events' schema: a label's is looked up (or its latest used).
        self.label = layout.label_serializer(client, {**conf, "use.schema.id": None})
        self.decode = layout.label_decoder(client) if labels else layout.decoder(client)
        self.prefix: bytes | None = None
        """The bytes before every value's id (framing, schema id): known once registered."""

    def key(self) -> str:
        """Under which name a dataset keeps its values serialized for this topic's schema."""
        assert self.prefix is not None
        return f"wire:{self.layout.format}:{self.prefix.hex()}"

    def encode(self, fields: dict[str, Any], *, bulk: bool = False) -> bytes:
        serialize = self.bulk if bulk else self.serialize
        value = serialize(self.layout.record(fields), self.ctx)
        assert value is not None
        return value

    def encode_label(self, fields: dict[str, str | None]) -> bytes:
        value = self.label(self.layout.label_record(fields), self.ctx)
        assert value is not None
        return value

    def registered(self, what: str, encode: Callable[[Any], bytes], fields: Any) -> bytes:
        """The first serialization for this topic: the one that talks to the registry (its
        refusal, or its absence, as one line)."""
        try:
            return encode(fields)
        except FAILURES as exc:
            format = self.layout.format
            raise refused(exc, self.shown_url, self.topic, format, what, self.secrets) from None

    def label_ready(self) -> bytes:
        """A probe label serialized: registers or looks up the labels' schema."""
        return self.registered("label", self.encode_label, LABEL_PROBE)

    def framed(self, dataset: Dataset) -> FramedValues:
        """`dataset` serialized for this topic, kept with the dataset per format and schema id;
        the topic's first serialization registers or looks up its schema (blocking)."""
        if self.prefix is None:
            fields = json.loads(dataset.values[0])
            first = self.registered("transaction", self.encode, fields)
            self.prefix = first[: first.index(fields["id"].encode())]
            if self.columns:
                _check_columns(self, int.from_bytes(first[1:5], "big"))
        prefix = self.prefix
        return dataset.derived(self.key(), lambda: _encode_rows(self, dataset, prefix))


LABEL_PROBE: Final = {
    "id": "00000000-0000-4000-8000-000000000000",
    "label": "fraud",
    "scenario": "probe",
    "scenario_id": "probe",
}


def _encode_rows(topic: Topic, dataset: Dataset, prefix: bytes) -> FramedValues:
    """Every row through the serializer, with where its timestamp is; each value is checked to
    hold the row's id and timestamp where the splices will write them."""
    layout = topic.layout
    id_end = len(prefix) + 36
    values: list[bytes] = []
    spans = array("I")
    ts_spans = dataset.ts_spans
    for row, text in enumerate(dataset.values):
        try:
            value = topic.encode(json.loads(text), bulk=True)
            start, end = layout.ts_span(value, id_end)
        except (*FAILURES, IndexError) as exc:
            raise _unlike_schemas(topic, f"row {row + 1} of the valid rows: {exc}") from None
        ts = text[ts_spans[2 * row] : ts_spans[2 * row + 1]]
        if value[:id_end] != prefix + codec.id_of(text) or value[start:end] != layout.ts_field(ts):
            raise _unlike_schemas(topic, "id and timestamp are not where schemas/ puts them")
        values.append(value)
        spans.append(start)
        spans.append(end)
    return FramedValues(tuple(values), spans, prefix, layout.ts_field)


def _check_columns(topic: Topic, schema_id: int) -> None:
    """The schema the values are written with (the registry's, by id) must have every kept
    column: with `use_latest_version` or `use_schema_id` it may be an older version without them,
    which would drop them from every message or write them under fields it does not know."""
    try:
        registered = topic.client.get_schema(schema_id).schema_str or ""
    except FAILURES as exc:
        format = topic.layout.format
        secrets = topic.secrets
        raise refused(exc, topic.shown_url, topic.topic, format, "transaction", secrets) from None
    names = topic.layout.field_names(registered)
    missing = [name for name, _ in topic.columns if name not in names]
    if missing:
        raise RegistryError(
            f"topic {topic.topic!r}: the {topic.layout.format} schema the registry gave (id"
            f" {schema_id}) has no field for the dataset's kept column(s) {', '.join(missing)}:"
            " register the schema extended with them (auto_register: true, or a new version of"
            " the subject) or leave them out (dataset.extra_columns: drop)"
        )


def _unlike_schemas(topic: Topic, what: str) -> RegistryError:
    """The schema the registry gave (the subject's latest version) is not that of schemas/."""
    return RegistryError(
        f"topic {topic.topic!r}: the {topic.layout.format} schema the registry gave does not"
        f" write the dataset as schemas/ does ({what}): register the schema of schemas/"
        " (auto_register: true) or make the subject's latest version match it"
    )
