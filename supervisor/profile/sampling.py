"""Sampling with replacement: batch sizes and dataset rows drawn on a profile's own RNG."""

from __future__ import annotations

import random


class Sampler:
    """Draws a batch: its size uniformly from [min_records, max_records], then that many row
    indexes uniformly with replacement from a dataset of `size` rows.

    Each profile owns one Sampler over its own `random.Random(seed)`, so a seeded profile draws the
    same sequence on every run, whatever the other profiles do.
    """

    __slots__ = ("_max", "_min", "_population", "rng")

    def __init__(self, size: int, min_records: int, max_records: int, rng: random.Random) -> None:
        if size < 1:
            raise ValueError("cannot sample from an empty dataset")
        if not 1 <= min_records <= max_records:
            raise ValueError(
                f"need 1 <= min_records <= max_records, got {min_records}, {max_records}"
            )
        self._population = range(size)
        self._min = min_records
        self._max = max_records
        self.rng = rng

    def draw(self) -> list[int]:
        """Row indexes of the next batch."""
        k = self.rng.randint(self._min, self._max)
        return self.rng.choices(self._population, k=k)
