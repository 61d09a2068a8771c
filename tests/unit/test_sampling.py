"""Batch sizes and row draws: bounds, uniformity, determinism."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from supervisor.profile.sampling import Sampler


@given(
    size=st.integers(1, 50),
    lo=st.integers(1, 30),
    extra=st.integers(0, 30),
    seed=st.integers(0, 2**32),
)
def test_batches_stay_within_bounds(size: int, lo: int, extra: int, seed: int) -> None:
    sampler = Sampler(size, lo, lo + extra, random.Random(seed))
    for _ in range(20):
        batch = sampler.draw()
        assert lo <= len(batch) <= lo + extra
        assert all(0 <= i < size for i in batch)


def test_every_batch_size_and_row_is_drawn_with_replacement() -> None:
    sampler = Sampler(5, 1, 4, random.Random(7))
    sizes: Counter[int] = Counter()
    rows: Counter[int] = Counter()
    repeated = False
    for _ in range(4000):
        batch = sampler.draw()
        sizes[len(batch)] += 1
        rows.update(batch)
        repeated |= len(set(batch)) < len(batch)
    assert set(sizes) == {1, 2, 3, 4}
    assert set(rows) == {0, 1, 2, 3, 4}
    assert repeated  # with replacement: a batch may hold the same row twice
    # Uniform: each size about a quarter of the draws (very loose bound, not a timing).
    assert min(sizes.values()) > 800


def test_same_seed_same_sequence() -> None:
    a = Sampler(1000, 1, 20, random.Random(42))
    b = Sampler(1000, 1, 20, random.Random(42))
    assert [a.draw() for _ in range(50)] == [b.draw() for _ in range(50)]


@pytest.mark.parametrize(("size", "lo", "hi"), [(0, 1, 1), (10, 0, 5), (10, 6, 5)])
def test_rejects_impossible_settings(size: int, lo: int, hi: int) -> None:
    with pytest.raises(ValueError, match=r"dataset|min_records"):
        Sampler(size, lo, hi, random.Random())
