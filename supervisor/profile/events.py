"""The fast path's messages: sampled rows, with at most a fresh id and the current timestamp.

Every dataset row is serialized once, at load (`supervisor.dataset.codec`; per message format,
`supervisor.formats`). A batch only picks those bytes, or has the profile's wire splice fresh ids
(drawn here from the profile's RNG) and the current timestamp into them: no encoding, no dict, no
pydantic per message.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Literal, NamedTuple

from supervisor.dataset import Dataset
from supervisor.dataset.codec import now_timestamp
from supervisor.formats.wire import JsonWire, Wire

IdMode = Literal["keep", "fresh"]
TimestampMode = Literal["keep", "now"]

# Version-4 UUID text in bulk: a template with the fixed characters (dashes, the version nibble
# '4') and, in every other column, a random hex digit; column 19 holds the RFC 4122 variant
# (8, 9, a or b). One `randbytes` call and one `translate` per column fill a whole batch.
_HEX_DIGIT = bytes(b"0123456789abcdef"[b & 0xF] for b in range(256))
_VARIANT_DIGIT = bytes(b"89ab"[b & 0x3] for b in range(256))
_UUID_TEMPLATE = b"00000000-0000-4000-8000-000000000000"
_RANDOM_COLUMNS = tuple(c for c in range(36) if c not in (8, 13, 14, 18, 23))


def fresh_uuids(rng: random.Random, count: int) -> bytes:
    """`count` random version-4 UUIDs drawn from `rng`, as canonical text, 36 bytes each,
    concatenated.

    Drawn from the profile's RNG rather than `uuid.uuid4()` (the OS entropy pool), so a seeded
    profile emits the same ids on every run; built a batch at a time, column by column, because
    one UUID at a time was 30% of the per-message time of a `fresh` profile
    (benchmarks/README.md).
    """
    out = bytearray(_UUID_TEMPLATE * count)
    noise = rng.randbytes(len(_RANDOM_COLUMNS) * count)
    for j, column in enumerate(_RANDOM_COLUMNS):
        table = _VARIANT_DIGIT if column == 19 else _HEX_DIGIT
        out[column::36] = noise[j * count : (j + 1) * count].translate(table)
    return bytes(out)


def id_slices(ids: bytes, n: int) -> list[bytes]:
    """The first `n` 36-byte UUIDs of `ids` (a `fresh_uuids` blob), one bytes object each."""
    return [ids[o : o + 36] for o in range(0, 36 * n, 36)]


class Batch(NamedTuple):
    """One fast-path batch, as `EventBuilder.build` makes it."""

    values: list[bytes]
    keys: list[bytes] | None
    """None when the profile sends no key."""
    ids: list[bytes] | None
    """The fresh id spliced into each value (the very objects, so that an evaluated run records
    them without slicing the values again); None when the rows keep their ids."""


class EventBuilder:
    """Turns sampled row indexes into (values, keys) for one profile's rewrite settings."""

    __slots__ = ("_fresh_id", "_key_field", "_keys", "_now", "_rng", "_wire", "id_start")

    def __init__(
        self,
        dataset: Dataset,
        *,
        id_mode: IdMode,
        timestamp_mode: TimestampMode,
        key_field: str | None,
        rng: random.Random,
        wire: Wire | None = None,
    ) -> None:
        """`wire`: what the values are written as (None: the dataset's JSON)."""
        self._wire = JsonWire(dataset) if wire is None else wire
        self.id_start = self._wire.id_start
        """Where each value's id starts (for the evaluation's ledger)."""
        self._fresh_id = id_mode == "fresh"
        self._now = timestamp_mode == "now"
        self._rng = rng
        self._key_field = key_field
        # Keys of rewritten fields come from the rewrite, the others from the dataset's column.
        rewritten = (key_field == "id" and self._fresh_id) or (
            key_field == "timestamp" and self._now
        )
        self._keys: Sequence[bytes] | None = (
            dataset.key_column(key_field) if key_field and not rewritten else None
        )

    def build(self, indexes: list[int]) -> Batch:
        """Message values, keys and fresh ids for one batch."""
        n = len(indexes)
        ids = id_slices(fresh_uuids(self._rng, n), n) if self._fresh_id else None
        ts = now_timestamp() if self._now else None
        values = self._wire.splice_batch(indexes, ids, ts)
        key_field = self._key_field
        if key_field == "id" and ids is not None:
            return Batch(values, ids, ids)
        if key_field == "timestamp" and ts is not None:
            return Batch(values, [ts] * n, ids)
        return Batch(values, self._column_keys(indexes), ids)

    def _column_keys(self, indexes: list[int]) -> list[bytes] | None:
        keys = self._keys
        return None if keys is None else [keys[i] for i in indexes]
