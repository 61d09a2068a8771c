"""Fresh ids in bulk: valid version-4 UUIDs, reproducible from the profile's seed."""

from __future__ import annotations

import random
import uuid

from hypothesis import given
from hypothesis import strategies as st

from supervisor.profile.events import fresh_uuids


@given(seed=st.integers(0, 2**64), count=st.integers(0, 300))
def test_bulk_ids_are_canonical_random_version_4_uuids(seed: int, count: int) -> None:
    blob = fresh_uuids(random.Random(seed), count)
    assert len(blob) == 36 * count
    ids = [blob[o : o + 36].decode() for o in range(0, len(blob), 36)]
    for text in ids:
        parsed = uuid.UUID(text)
        assert str(parsed) == text  # canonical lowercase form
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
    assert len(set(ids)) == count


def test_same_seed_same_ids_and_every_hex_digit_appears() -> None:
    a = fresh_uuids(random.Random(7), 1000)
    assert a == fresh_uuids(random.Random(7), 1000)
    assert a != fresh_uuids(random.Random(8), 1000)
    random_part = a.replace(b"-", b"")
    assert set(random_part) >= set(b"0123456789abcdef")
