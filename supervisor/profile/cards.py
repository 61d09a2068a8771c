"""The dataset's entity (`dataset.entity`, e.g. `card_id`) as fraud scenarios use it.

A `Cards` draws the card of a random debit (a stolen card), remembers the cards a compromised
merchant saw, and plans their use elsewhere once the compromise is over. Cards are JSON literals
as the values hold them (`b'"card-000042"'`), spliced into an event's value as they are. Every
draw comes from the planner's generator, in the order each method lists.
"""

from __future__ import annotations

import random
from array import array
from collections.abc import Iterable
from typing import Final

from supervisor.dataset.codec import field_literal

_MAX_MISUSED: Final = 10_000
"""Most cards of one compromise used again elsewhere."""
_NULL: Final = b"null"


class Cards:
    """One scenario's view of the dataset's entity column over its debit rows."""

    __slots__ = ("_entity", "_rng", "_rows", "_seen", "_values")

    def __init__(
        self, entity: str, values: tuple[bytes, ...], rows: array[int], rng: random.Random
    ) -> None:
        self._entity = entity
        self._values = values
        self._rows = rows
        """The debit rows the scenario draws from (`ScenarioPlanner._rows`)."""
        self._rng = rng
        self._seen: dict[bytes, None] = {}  # in order of appearance

    def pick(self) -> bytes:
        """The card of a uniformly drawn debit that has one. Draws: one position, more only
        while the drawn debits have none (at most 16)."""
        rows, values, randrange = self._rows, self._values, self._rng.randrange
        card = _NULL
        for _ in range(16):
            card = field_literal(values[rows[randrange(len(rows))]], self._entity)
            if card != _NULL:
                break
        return card

    def saw(self, rows: Iterable[int]) -> None:
        """Remember the cards of these dataset rows (a compromised merchant's). No draw."""
        values, entity, seen = self._values, self._entity, self._seen
        for row in rows:
            card = field_literal(values[row], entity)
            if card != _NULL:
                seen[card] = None

    def misuse(
        self, block: tuple[int, int], start_s: float, end_s: float
    ) -> list[tuple[float, int, bytes]]:
        """Each card seen (then forgotten) once more, at a random time within the compromise's
        duration after its `end_s`, on a debit outside `block` (the compromised merchant's
        positions in the debit rows; any debit when it had them all): (at_s, row, card), in
        time order. Draws: per card, its time and its row."""
        cards = list(self._seen)[:_MAX_MISUSED]
        self._seen.clear()
        rng, rows = self._rng, self._rows
        low, high = block
        others = len(rows) - (high - low)
        misused = []
        for card in cards:
            at_s = end_s + rng.random() * (end_s - start_s)
            if others > 0:
                position = rng.randrange(others)
                position += high - low if position >= low else 0
            else:
                position = rng.randrange(len(rows))
            misused.append((at_s, rows[position], card))
        misused.sort(key=lambda planned: planned[0])
        return misused
