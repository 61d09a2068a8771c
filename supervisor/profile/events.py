"""Building message values and keys from the pre-serialized dataset.

Every dataset row is serialized once, at load, to the seed's seven-field JSON (`Dataset.values`).
The per-message path only picks those bytes, or splices a fresh id and/or the current timestamp
into them at known offsets: no JSON encoding, no dict, no pydantic per message.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Literal

from supervisor.dataset import ID_SPAN, Dataset

IdMode = Literal["keep", "fresh"]
TimestampMode = Literal["keep", "now"]

ID_PREFIX = b'{"id":"'
"""How every value starts: the id follows, at `ID_SPAN`."""
_ID_END = ID_SPAN[1]
assert ID_SPAN[0] == len(ID_PREFIX)
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


def now_timestamp() -> bytes:
    """The current UTC time as ISO 8601 with milliseconds and an explicit offset."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").encode()


def epoch_ms(epoch_s: float) -> int:
    """A Unix time in whole milliseconds, as `iso_timestamp` writes it (truncated, after rounding
    to the microsecond so that float noise such as .4239999 still reads .424)."""
    return round(epoch_s * 1_000_000) // 1000


def iso_timestamp(epoch_s: float) -> bytes:
    """A Unix time as `now_timestamp()` writes it: UTC, milliseconds, explicit offset; the same
    millisecond as `epoch_ms`, so a Kafka timestamp and the value's text always agree."""
    ms = epoch_ms(epoch_s)
    moment = datetime.fromtimestamp(ms // 1000, UTC).replace(microsecond=ms % 1000 * 1000)
    return moment.isoformat(timespec="milliseconds").encode()


def rewrite(
    value: bytes, ts_start: int, ts_end: int, *, id: bytes | None, ts: bytes | None
) -> bytes:
    """`value` (a pre-serialized row whose timestamp text spans [ts_start, ts_end)) with its id
    and/or timestamp text replaced; None keeps the row's."""
    if ts is not None:
        value = value[:ts_start] + ts + value[ts_end:]
    if id is not None:
        value = ID_PREFIX + id + value[_ID_END:]
    return value


class EventBuilder:
    """Turns sampled row indexes into (values, keys) for one profile's rewrite settings."""

    __slots__ = ("_fresh_id", "_key_field", "_keys", "_now", "_rng", "_spans", "_values")

    def __init__(
        self,
        dataset: Dataset,
        *,
        id_mode: IdMode,
        timestamp_mode: TimestampMode,
        key_field: str | None,
        rng: random.Random,
    ) -> None:
        self._values = dataset.values
        self._spans = dataset.ts_spans
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

    def build(self, indexes: list[int]) -> tuple[list[bytes], list[bytes] | None]:
        """Message values, and keys (None when the profile sends no key), for one batch."""
        values = self._values
        if not self._fresh_id and not self._now:
            out = [values[i] for i in indexes]
            return out, self._column_keys(indexes)

        spans = self._spans
        ts = now_timestamp() if self._now else b""
        if not self._fresh_id:  # timestamp only
            out = []
            for i in indexes:
                v = values[i]
                out.append(v[: spans[2 * i]] + ts + v[spans[2 * i + 1] :])
            return out, (
                [ts] * len(indexes)
                if self._key_field == "timestamp"
                else self._column_keys(indexes)
            )

        n = len(indexes)
        ids = fresh_uuids(self._rng, n)
        new_ids = [ids[o : o + 36] for o in range(0, 36 * n, 36)]
        if self._now:
            out = [
                ID_PREFIX
                + new_id
                + values[i][_ID_END : spans[2 * i]]
                + ts
                + values[i][spans[2 * i + 1] :]
                for i, new_id in zip(indexes, new_ids, strict=True)
            ]
        else:
            out = [
                ID_PREFIX + new_id + values[i][_ID_END:]
                for i, new_id in zip(indexes, new_ids, strict=True)
            ]
        if self._key_field == "id":
            return out, new_ids
        if self._key_field == "timestamp" and self._now:
            return out, [ts] * n
        return out, self._column_keys(indexes)

    def _column_keys(self, indexes: list[int]) -> list[bytes] | None:
        keys = self._keys
        return None if keys is None else [keys[i] for i in indexes]
