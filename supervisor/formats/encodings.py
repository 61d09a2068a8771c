"""The wires of a run: each profile's `Wire`, made ready at start.

`Encodings.prepare(config, dataset)` is blocking (registry round trips, one serializer call per
dataset row): run it off the event loop (`supervisor.lifecycle.in_thread`), at start and before
a reload applies. For each topic of a non-JSON profile it makes confluent-kafka's serializer
(subject naming strategy, `auto_register` / look-up / latest version as configured), serializes
the first row with it, which registers or looks up the schema (a refusal or an unreachable
registry is a `RegistryError`: one line, exit 2), then every row, once per dataset, format and
schema id (`Dataset.derived`). After that, `wire(...)` only looks up what was made.

A dry run uses an in-process mock registry (`mock://dry-run`) rather than the configured one: it
sends nothing anywhere and registers nothing; `decoder` turns its values back into JSON.
"""

from __future__ import annotations

import json
from array import array
from collections.abc import Callable, Sequence
from typing import Any, Final, Protocol

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.serialization import MessageField, SerializationContext

from supervisor.config import Config, ProfileSettings
from supervisor.config.registry import SchemaRegistrySettings
from supervisor.dataset import Dataset, codec
from supervisor.errors import RegistryError
from supervisor.formats.avro import AvroLayout
from supervisor.formats.json_schema import JsonSchemaLayout
from supervisor.formats.protobuf import ProtobufLayout
from supervisor.formats.registry import (
    FAILURES,
    client_for,
    refused,
    secrets_of,
    serializer_conf,
)
from supervisor.formats.schemas import Column
from supervisor.formats.wire import FramedValues, FramedWire, JsonWire, Wire

Serialize = Callable[[object, SerializationContext], bytes | None]
Decode = Callable[[bytes, SerializationContext], Any]

DRY_RUN_REGISTRY: Final = "mock://dry-run"


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


class _Topic:
    """One topic's serializers, as the registry knows them."""

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


class Encodings:
    """The registry client, one `_Topic` per (format, topic), and the wires made from them."""

    def __init__(self, settings: SchemaRegistrySettings | None, *, dry_run: bool = False) -> None:
        self._settings = settings
        self._dry_run = dry_run
        self._client: SchemaRegistryClient | None = None
        self._topics: dict[tuple[str, str, tuple[Column, ...]], _Topic] = {}
        """By format, topic and the dataset's kept columns (which extend the schema)."""

    def prepare(self, config: Config, dataset: Dataset) -> list[dict[str, object]]:
        """Register or look up every schema `config` needs and serialize `dataset` for it
        (blocking); return what each topic writes with (for the log). Raises RegistryError."""
        ready: dict[tuple[str, str], dict[str, object]] = {}
        for settings in config.profiles.values():
            if settings.format == "json":
                continue
            name = settings.topic or config.kafka.topic
            topic = self._topic(settings.format, name, _columns(dataset), labels=False)
            framed = self._framed(topic, dataset)
            ready[settings.format, name] = _ready(name, settings.format, "events", framed.prefix)
            if settings.labels is not None:
                labels = self._topic(settings.format, settings.labels.topic, (), labels=True)
                label = _call(labels, "label", labels.encode_label, _LABEL_PROBE)
                ready[settings.format, labels.topic] = _ready(
                    labels.topic, settings.format, "label", label
                )
        return list(ready.values())

    def wire(self, settings: ProfileSettings, topic: str, dataset: Dataset) -> Wire:
        """The wire of a profile writing `topic` from `dataset` (prepared beforehand)."""
        if settings.format == "json":
            return JsonWire(dataset)
        events = self._topics[settings.format, topic, _columns(dataset)]
        encode_label = None
        if settings.labels is not None:
            encode_label = self._topics[settings.format, settings.labels.topic, ()].encode_label
        return FramedWire(
            settings.format,
            dataset,
            dataset.derived(events.key(), _not_prepared),  # a look-up: prepared off the loop
            reencode=events.encode,
            label=encode_label or _no_labels,
        )

    def decoder(self, topic: str) -> Callable[[bytes], bytes] | None:
        """For a dry run: the values of `topic` back as compact JSON (None: they are JSON)."""
        for (_, name, _), prepared in self._topics.items():
            if name == topic:
                decode, ctx = prepared.decode, prepared.ctx
                return lambda value: _dumps(decode(value, ctx))
        return None

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def _topic(
        self, format: str, topic: str, columns: tuple[Column, ...], *, labels: bool
    ) -> _Topic:
        prepared = self._topics.get((format, topic, columns))
        if prepared is None:
            assert self._settings is not None  # the config requires it for a non-JSON format
            url = DRY_RUN_REGISTRY if self._dry_run else self._settings.url
            shown = DRY_RUN_REGISTRY if self._dry_run else self._settings.shown_url
            if self._client is None:
                self._client = client_for(self._settings, url=url)
            layout = layout_of(format, columns)
            prepared = _Topic(
                layout, columns, self._client, self._settings, topic, shown, labels=labels
            )
            self._topics[format, topic, columns] = prepared
        return prepared

    def _framed(self, topic: _Topic, dataset: Dataset) -> FramedValues:
        """`dataset` serialized for `topic`, kept with the dataset per format and schema id; the
        topic's first serialization registers or looks up its schema (blocking)."""
        if topic.prefix is None:
            fields = json.loads(dataset.values[0])
            first = _call(topic, "transaction", topic.encode, fields)
            topic.prefix = first[: first.index(fields["id"].encode())]
            if topic.columns:
                assert self._client is not None
                _check_columns(topic, self._client, int.from_bytes(first[1:5], "big"))
        prefix = topic.prefix
        return dataset.derived(topic.key(), lambda: _encode_rows(topic, dataset, prefix))


_LABEL_PROBE: Final = {
    "id": "00000000-0000-4000-8000-000000000000",
    "label": "fraud",
    "scenario": "probe",
    "scenario_id": "probe",
}


def _columns(dataset: Dataset) -> tuple[Column, ...]:
    """The dataset's kept extra columns, as the schemas add them."""
    return tuple(dataset.columns.items())


def _ready(topic: str, format: str, schema: str, framed: bytes) -> dict[str, object]:
    return {
        "topic": topic,
        "format": format,
        "schema": schema,
        "schema_id": int.from_bytes(framed[1:5], "big"),
    }


def _not_prepared() -> FramedValues:
    raise RuntimeError("the dataset was not serialized for this profile: Encodings.prepare first")


def _no_labels(fields: dict[str, str | None]) -> bytes:
    raise RuntimeError("this profile has no labels topic")


def _call(topic: _Topic, what: str, encode: Callable[[Any], bytes], fields: Any) -> bytes:
    """The first serialization for `topic`: the one that talks to the registry."""
    try:
        return encode(fields)
    except FAILURES as exc:
        format = topic.layout.format
        raise refused(exc, topic.shown_url, topic.topic, format, what, topic.secrets) from None


def _encode_rows(topic: _Topic, dataset: Dataset, prefix: bytes) -> FramedValues:
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


def _check_columns(topic: _Topic, client: SchemaRegistryClient, schema_id: int) -> None:
    """The schema the values are written with (the registry's, by id) must have every kept
    column: with `use_latest_version` or `use_schema_id` it may be an older version without them,
    which would drop them from every message or write them under fields it does not know."""
    try:
        registered = client.get_schema(schema_id).schema_str or ""
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


def _unlike_schemas(topic: _Topic, what: str) -> RegistryError:
    """The schema the registry gave (the subject's latest version) is not that of schemas/."""
    return RegistryError(
        f"topic {topic.topic!r}: the {topic.layout.format} schema the registry gave does not"
        f" write the dataset as schemas/ does ({what}): register the schema of schemas/"
        " (auto_register: true) or make the subject's latest version match it"
    )


def _dumps(decoded: Any) -> bytes:
    return json.dumps(decoded, ensure_ascii=False, separators=(",", ":")).encode()
