"""A profile's message values in one wire layout, and the one place that splices them.

The send paths ask a `Wire` for values: a dataset row's value as is, or with a fresh id and/or a
new timestamp spliced in (`splice_batch` per batch on the fast path, `splice` per message in a
shaped stream), or with other fields changed (`rewritten`: an amount-outlier's amount, a fraud
event's card; rare); and for the value of a fraud event's label (`label`).

`JsonWire` is the codec's own layout (`supervisor.dataset.codec`, today's messages byte for
byte). `FramedWire` holds values in a Confluent wire format, serialized once per row at load by
confluent-kafka's serializer (`supervisor.formats.encodings`): every value starts with the same
bytes up to its id (magic byte, schema id, message indexes, the id's length or key), the 36 id
characters follow, and the timestamp's length-prefixed text sits at offsets recorded per row.
A uuid and a timestamp of one length are fixed width in every layout, so a splice is a byte copy
there too; the timestamp's replacement (`ts_field`: its length prefix and text) is made once per
batch.
"""

from __future__ import annotations

import json
from array import array
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from supervisor.dataset import Dataset, codec

Reencode = Callable[[dict[str, Any]], bytes]
"""A message's fields serialized as a whole, framing included (rare messages)."""


class Wire(Protocol):
    """What a profile's messages are written as (see the module docstring)."""

    format: str
    id_start: int
    """Where the 36 id characters start in every value."""

    def splice_batch(
        self, rows: Sequence[int], ids: Sequence[bytes] | None, ts: bytes | None
    ) -> list[bytes]:
        """The values of `rows`, each with its id taken from `ids` (one 36-byte id per row, in
        order) and its timestamp text replaced by `ts` (the same for all), either None to keep the
        row's."""
        ...

    def splice(self, row: int, id_: bytes | None, ts: bytes | None) -> bytes:
        """One row's value with its id and/or timestamp text replaced (None keeps the row's)."""
        ...

    def rewritten(
        self, row: int, id_: bytes | None, ts: bytes | None, changes: Mapping[str, bytes]
    ) -> bytes:
        """`splice`, and each field of `changes` (the amount, a kept column) replaced by its JSON
        literal (`b"98765.43"`, `b'"card-000042"'`, `b"null"`)."""
        ...

    def id_of(self, value: bytes) -> bytes:
        """The id text of one of this wire's values."""
        ...

    def label(self, fields: dict[str, str | None]) -> bytes:
        """The value of a fraud event's label (`id`, `label`, `scenario`, `scenario_id`)."""
        ...


class JsonWire:
    """The dataset's own compact JSON values (`supervisor.dataset.codec`)."""

    __slots__ = ("_spans", "_values")
    format = "json"
    id_start = codec.ID_SPAN[0]

    def __init__(self, dataset: Dataset) -> None:
        self._values = dataset.values
        self._spans = dataset.ts_spans

    def splice_batch(
        self, rows: Sequence[int], ids: Sequence[bytes] | None, ts: bytes | None
    ) -> list[bytes]:
        return codec.splice_batch(self._values, self._spans, rows, ids, ts)

    def splice(self, row: int, id_: bytes | None, ts: bytes | None) -> bytes:
        spans = self._spans
        return codec.splice(self._values[row], spans[2 * row], spans[2 * row + 1], id_, ts)

    def rewritten(
        self, row: int, id_: bytes | None, ts: bytes | None, changes: Mapping[str, bytes]
    ) -> bytes:
        value = self.splice(row, id_, ts)
        for field, literal in changes.items():
            value = codec.with_field(value, field, literal)
        return value

    def id_of(self, value: bytes) -> bytes:
        return codec.id_of(value)

    def label(self, fields: dict[str, str | None]) -> bytes:
        return json.dumps(fields, separators=(",", ":")).encode()


class FramedWire:
    """Values in a Confluent wire format (see the module docstring)."""

    __slots__ = (
        "_dataset",
        "_id_end",
        "_label",
        "_prefix",
        "_reencode",
        "_spans",
        "_ts_field",
        "_values",
        "format",
        "id_start",
    )

    def __init__(
        self,
        format: str,
        dataset: Dataset,
        encoded: FramedValues,
        *,
        reencode: Reencode,
        label: Callable[[dict[str, str | None]], bytes],
    ) -> None:
        self.format = format
        self._dataset = dataset
        self._values = encoded.values
        self._spans = encoded.ts_spans
        self._prefix = encoded.prefix
        self.id_start = len(encoded.prefix)
        self._id_end = self.id_start + 36
        self._ts_field = encoded.ts_field
        self._reencode = reencode
        self._label = label

    def splice_batch(
        self, rows: Sequence[int], ids: Sequence[bytes] | None, ts: bytes | None
    ) -> list[bytes]:
        if ts is not None:
            ts = self._ts_field(ts)
        return codec.splice_batch(self._values, self._spans, rows, ids, ts, self._prefix)

    def splice(self, row: int, id_: bytes | None, ts: bytes | None) -> bytes:
        value, spans = self._values[row], self._spans
        if ts is not None:
            value = value[: spans[2 * row]] + self._ts_field(ts) + value[spans[2 * row + 1] :]
        if id_ is not None:
            value = self._prefix + id_ + value[self._id_end :]
        return value

    def rewritten(
        self, row: int, id_: bytes | None, ts: bytes | None, changes: Mapping[str, bytes]
    ) -> bytes:
        # A double is fixed width in Avro and Protobuf, but Protobuf leaves out a zero, JSON
        # numbers vary and a card is text: the message is serialized again from its fields (a
        # fraud event, rare).
        fields = json.loads(self._dataset.values[row])
        if id_ is not None:
            fields["id"] = id_.decode()
        if ts is not None:
            fields["timestamp"] = ts.decode()
        for field, literal in changes.items():
            fields[field] = json.loads(literal)
        if "amount" in changes:
            fields["amount"] = float(fields["amount"])
        return self._reencode(fields)

    def id_of(self, value: bytes) -> bytes:
        return value[len(self._prefix) : self._id_end]

    def label(self, fields: dict[str, str | None]) -> bytes:
        return self._label(fields)


class FramedValues:
    """A dataset's rows serialized once in one Confluent wire layout (kept with the dataset,
    `Dataset.derived`), and where in each its id and timestamp are."""

    __slots__ = ("prefix", "ts_field", "ts_spans", "values")

    def __init__(
        self,
        values: tuple[bytes, ...],
        ts_spans: array[int],
        prefix: bytes,
        ts_field: Callable[[bytes], bytes],
    ) -> None:
        self.values = values
        self.ts_spans = ts_spans
        """Two entries per row: start and end offsets of the timestamp's length prefix and text
        (JSON: its text)."""
        self.prefix = prefix
        """The bytes before the id, the same in every value."""
        self.ts_field = ts_field
        """Timestamp text -> the bytes that replace a timestamp span."""
