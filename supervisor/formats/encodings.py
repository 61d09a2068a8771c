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
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from supervisor.config import Config, ProfileSettings
from supervisor.config.registry import SchemaRegistrySettings
from supervisor.dataset import Dataset
from supervisor.formats.schemas import Column
from supervisor.formats.wire import FramedValues, FramedWire, JsonWire, Wire

if TYPE_CHECKING:  # imported when a profile writes a non-JSON format (see `Encodings._topic`)
    from confluent_kafka.schema_registry import SchemaRegistryClient

    from supervisor.formats.topic import Topic

DRY_RUN_REGISTRY: Final = "mock://dry-run"


class Encodings:
    """The registry client, one `Topic` per (format, topic), and the wires made from them."""

    def __init__(self, settings: SchemaRegistrySettings | None, *, dry_run: bool = False) -> None:
        self._settings = settings
        self._dry_run = dry_run
        self._client: SchemaRegistryClient | None = None
        self._topics: dict[tuple[str, str, tuple[Column, ...]], Topic] = {}
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
            framed = topic.framed(dataset)
            ready[settings.format, name] = _ready(name, settings.format, "events", framed.prefix)
            if settings.labels is not None:
                labels = self._topic(settings.format, settings.labels.topic, (), labels=True)
                label = labels.label_ready()
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
    ) -> Topic:
        prepared = self._topics.get((format, topic, columns))
        if prepared is None:
            # The registry client and the serializers: imported by the first non-JSON profile.
            from supervisor.formats.registry import client_for
            from supervisor.formats.topic import Topic, layout_of

            assert self._settings is not None  # the config requires it for a non-JSON format
            url = DRY_RUN_REGISTRY if self._dry_run else self._settings.url
            shown = DRY_RUN_REGISTRY if self._dry_run else self._settings.shown_url
            if self._client is None:
                self._client = client_for(self._settings, url=url)
            layout = layout_of(format, columns)
            prepared = Topic(
                layout, columns, self._client, self._settings, topic, shown, labels=labels
            )
            self._topics[format, topic, columns] = prepared
        return prepared


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


def _dumps(decoded: Any) -> bytes:
    return json.dumps(decoded, ensure_ascii=False, separators=(",", ":")).encode()
