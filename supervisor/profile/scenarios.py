"""Fraud scenarios: when labelled occurrences start and which dataset rows they emit.

A `ScenarioPlanner` is asked once per tick (one batch of a profile's stream, due at `at_s` seconds
of run time) which occurrences start and which batch positions a merchant compromise takes over.
It is pure logic: no I/O, no clock. Every random choice comes from the profile's own
`random.Random`, which the sampler shares, in a fixed order per occurrence (listed on each
`_start_*` method), so a seeded profile replays the same frauds in the same places on every run.

Fraud events are real dataset debits (operation_type debit, side outgoing), never invented
records: a scenario only picks which ones, when, and for some kinds a new amount, so a detector
cannot tell them apart by anything but the pattern the scenario plants.

With a `dataset.entity` (a kept column such as `card_id`), scenarios act on it as real fraud does:
card-testing tries one stolen card (the entity of a drawn debit) at many merchants (`per:
entity`, the default then) or many cards at one merchant (`per: merchant`, each event its row's
own card); a velocity burst is one card's; the cards a compromised merchant saw each show up once
more, at another merchant, within `duration_s` after the compromise ends (a follow-up of the same
occurrence). An event that takes on a card carries it in place of its row's
(`ScenarioEvent.entity`). Without an entity, no draw is added or moved: a seeded
profile replays exactly what it did before entities existed.

Most ticks start nothing, so the idle path costs one comparison (`every_s`) or one
`rng.random()` (`probability`) and allocates nothing.
"""

from __future__ import annotations

import difflib
import math
import random
import sys
from array import array
from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TypeVar

from supervisor.config import (
    AmountOutlier,
    CardTesting,
    MerchantCompromise,
    Scenario,
    ScenarioKind,
    Velocity,
)
from supervisor.dataset import Dataset
from supervisor.dataset.codec import amount_of, is_debit
from supervisor.errors import DatasetError
from supervisor.profile.cards import Cards
from supervisor.profile.events import fresh_uuids

_OUTLIER_QUANTILE = 0.99
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class ScenarioEvent:
    """One fraud event an occurrence schedules: a dataset row to send at `at_s`."""

    at_s: float
    """Run time it is due, at or after its occurrence's start."""
    row: int
    """The dataset row it is built from."""
    amount: bytes | None
    """Replacement amount as JSON number text with cents (b"1.37"); None keeps the row's."""
    entity: bytes | None = None
    """Replacement `dataset.entity` as its JSON literal (b'"card-000042"'); None keeps the
    row's."""


@dataclass(frozen=True, slots=True)
class Occurrence:
    """One labelled occurrence of a scenario; its events share `id` as their scenario_id."""

    kind: ScenarioKind
    id: bytes
    """36-byte UUID4 text, drawn from the profile's RNG."""
    start_s: float
    events: tuple[ScenarioEvent, ...]
    """Events to send at their own times; empty for merchant-compromise, which takes over batch
    positions instead (`TickPlan.replaced`)."""
    merchant: str | None
    """The merchant involved, when there is one (not for velocity, which spans merchants)."""
    entity: bytes | None = None
    """The one entity (card) every event carries, as its JSON literal, when there is one."""
    follow_up: bool = False
    """Events of an occurrence already started (a compromise's cards used elsewhere), not a new
    occurrence."""


@dataclass(frozen=True, slots=True)
class TickPlan:
    """What the scenario does to one tick."""

    started: tuple[Occurrence, ...]
    """Occurrences starting after the previous tick and at or before this one, in start order."""
    replaced: Mapping[int, tuple[int, Occurrence]]
    """Batch position -> (the row to send instead, the merchant compromise it belongs to)."""


_NOTHING_REPLACED: Mapping[int, tuple[int, Occurrence]] = MappingProxyType({})
_IDLE = TickPlan((), _NOTHING_REPLACED)


def _cents(amount: float) -> bytes:
    """`amount` as JSON number text with cents, never beyond a double's range: an outlier of a
    merchant whose amounts are near it (a p99 of 1e308 times 20) is the largest finite one, not
    `inf`, which no JSON reader accepts."""
    return b"%.2f" % (amount if math.isfinite(amount) else math.copysign(_MAX_DOUBLE, amount))


_MAX_DOUBLE = sys.float_info.max


class ScenarioPlanner:
    """Decides, tick by tick, which occurrences of one profile's scenario start and what they emit.

    Call `tick` once per batch, in order of non-decreasing `at_s`. Occurrences start either with
    chance `probability` at each tick, or as a Poisson process of mean interval `every_s` on run
    time, each at its own arrival time (several may start in one tick). A merchant compromise
    lasts `duration_s`; an arrival while one is under way is skipped, so two never overlap.

    The constructor indexes the dataset's debit rows once, grouped by merchant in one compact
    array, and raises `DatasetError` when the dataset cannot support the scenario. In `every_s`
    mode it also draws the first arrival time from `rng`.
    """

    __slots__ = (
        "_arrival_rate",
        "_bounds",
        "_cards",
        "_compromise",
        "_compromise_block",
        "_compromise_end_s",
        "_fixed_merchant",
        "_follow_up",
        "_merchants",
        "_next_arrival_s",
        "_p99",
        "_probability",
        "_rng",
        "_rows",
        "_scenario",
        "_share",
    )

    def __init__(self, scenario: Scenario, dataset: Dataset, rng: random.Random) -> None:
        self._scenario = scenario
        self._rng = rng
        # Debit rows, merchant by merchant: merchant k's are `_rows[_bounds[k]:_bounds[k + 1]]`
        # (one unnamed block for velocity, which needs no merchant). A position drawn uniformly
        # is a debit drawn uniformly, and bisecting `_bounds` finds its merchant: no per-row
        # merchant array.
        by_merchant = not isinstance(scenario, Velocity)
        self._rows, self._bounds, self._merchants = dataset.derived(
            f"debits:{by_merchant}", lambda: _index_debits(dataset, by_merchant)
        )
        if not self._rows:
            raise DatasetError(
                f"scenario: dataset {dataset.source} has no debit rows (operation_type debit,"
                f" side outgoing) to build {scenario.kind} events from — use a dataset with"
                " debits or remove the scenario"
            )
        merchant = (
            scenario.merchant if isinstance(scenario, CardTesting | MerchantCompromise) else None
        )
        self._fixed_merchant = (
            None if merchant is None else _merchant_index(self._merchants, merchant, dataset)
        )
        self._cards = _cards_of(scenario, dataset, self._rows, rng)
        self._p99 = (
            dataset.derived(
                "p99",
                lambda: _quantile_by_merchant(
                    dataset.values, self._rows, self._bounds, _OUTLIER_QUANTILE
                ),
            )
            if isinstance(scenario, AmountOutlier)
            else array("d")
        )
        self._share = scenario.share if isinstance(scenario, MerchantCompromise) else 0.0
        self._probability = scenario.probability
        if scenario.every_s is None:
            self._arrival_rate = 0.0
            self._next_arrival_s = float("inf")
        else:
            self._arrival_rate = 1.0 / scenario.every_s
            self._next_arrival_s = rng.expovariate(self._arrival_rate)
        self._compromise: Occurrence | None = None
        self._compromise_end_s = 0.0
        self._compromise_block = (0, 0)
        self._follow_up: list[Occurrence] = []

    def tick(self, at_s: float, batch_size: int) -> TickPlan:
        """The plan for the batch of `batch_size` rows due at run time `at_s`."""
        probability = self._probability
        if probability is not None:
            due = self._rng.random() < probability
        else:
            due = at_s >= self._next_arrival_s
        if not due and self._compromise is None:
            return _IDLE
        started = []
        if due:
            starts = [at_s] if probability is not None else self._arrivals_until(at_s)
            for start_s in starts:
                occurrence = self._start(start_s)
                if occurrence is not None:
                    started.append(occurrence)
        replaced = self._replaced(at_s, batch_size)
        if self._follow_up:
            started += self._follow_up
            self._follow_up.clear()
        return TickPlan(tuple(started), replaced)

    def _arrivals_until(self, at_s: float) -> list[float]:
        """Pop every Poisson arrival at or before `at_s`; draw the one after them."""
        rate = self._arrival_rate
        arrivals = []
        while self._next_arrival_s <= at_s:
            arrivals.append(self._next_arrival_s)
            self._next_arrival_s += self._rng.expovariate(rate)
        return arrivals

    def _start(self, start_s: float) -> Occurrence | None:
        scenario = self._scenario
        if isinstance(scenario, CardTesting):
            return self._start_card_testing(scenario, start_s)
        if isinstance(scenario, AmountOutlier):
            return self._start_amount_outlier(scenario, start_s)
        if isinstance(scenario, Velocity):
            return self._start_velocity(scenario, start_s)
        return self._start_compromise(scenario, start_s)

    def _start_card_testing(self, scenario: CardTesting, start_s: float) -> Occurrence:
        """Draws: id, merchant (unless configured) or, per entity, the card, then count,
        offsets, rows, amounts."""
        rng = self._rng
        scenario_id = fresh_uuids(rng, 1)
        card = None
        if self._cards is not None:
            card = self._cards.pick()
            merchant = self._fixed_merchant
        else:
            merchant = self._pick_merchant()
        count = rng.randint(scenario.min_attempts, scenario.max_attempts)
        offsets = sorted([rng.random() * scenario.window_s for _ in range(count)])
        rows = (
            rng.choices(self._rows, k=count)
            if merchant is None
            else self._debits_of(merchant, count)
        )
        low, high = scenario.min_amount, scenario.max_amount
        events = tuple(
            ScenarioEvent(start_s + offset, row, _cents(rng.uniform(low, high)), card)
            for offset, row in zip(offsets, rows, strict=True)
        )
        name = None if merchant is None else self._merchants[merchant]
        return Occurrence("card-testing", scenario_id, start_s, events, name, card)

    def _start_amount_outlier(self, scenario: AmountOutlier, start_s: float) -> Occurrence:
        """Draws: id, row, factor."""
        rng = self._rng
        scenario_id = fresh_uuids(rng, 1)
        position = rng.randrange(len(self._rows))
        merchant = bisect_right(self._bounds, position) - 1
        factor = rng.uniform(scenario.min_factor, scenario.max_factor)
        event = ScenarioEvent(start_s, self._rows[position], _cents(self._p99[merchant] * factor))
        return Occurrence(
            "amount-outlier", scenario_id, start_s, (event,), self._merchants[merchant]
        )

    def _start_velocity(self, scenario: Velocity, start_s: float) -> Occurrence:
        """Draws: id, the card (with an entity), count, offsets, rows."""
        rng = self._rng
        scenario_id = fresh_uuids(rng, 1)
        card = None if self._cards is None else self._cards.pick()
        count = rng.randint(scenario.min_count, scenario.max_count)
        offsets = sorted([rng.random() * scenario.window_s for _ in range(count)])
        rows = rng.choices(self._rows, k=count)
        events = tuple(
            ScenarioEvent(start_s + offset, row, None, card)
            for offset, row in zip(offsets, rows, strict=True)
        )
        return Occurrence("velocity", scenario_id, start_s, events, None, card)

    def _start_compromise(self, scenario: MerchantCompromise, start_s: float) -> Occurrence | None:
        """Draws: id, merchant (unless configured); nothing for an arrival that is skipped."""
        if self._compromise is not None:
            if start_s < self._compromise_end_s:
                return None
            self._end_compromise()
        scenario_id = fresh_uuids(self._rng, 1)
        merchant = self._pick_merchant()
        occurrence = Occurrence(
            "merchant-compromise", scenario_id, start_s, (), self._merchants[merchant]
        )
        self._compromise = occurrence
        self._compromise_end_s = start_s + scenario.duration_s
        self._compromise_block = (self._bounds[merchant], self._bounds[merchant + 1])
        return occurrence

    def _replaced(self, at_s: float, batch_size: int) -> Mapping[int, tuple[int, Occurrence]]:
        """The batch positions the active merchant compromise takes over, each with chance
        `share`. Draws: one `random()` per position, then one row per replaced position."""
        occurrence = self._compromise
        if occurrence is None:
            return _NOTHING_REPLACED
        if at_s >= self._compromise_end_s:
            self._end_compromise()
            return _NOTHING_REPLACED
        share = self._share
        # One draw per position: simpler than skipping ahead by geometric gaps, and as fast or
        # faster from a share of about 0.2 (0.3 by default), as a gap costs a log and a division.
        draw = self._rng.random
        positions = [position for position in range(batch_size) if draw() < share]
        rows = self._rows
        picks = self._rng.choices(range(*self._compromise_block), k=len(positions))
        if self._cards is not None:
            self._cards.saw(rows[pick] for pick in picks)
        return {
            position: (rows[pick], occurrence)
            for position, pick in zip(positions, picks, strict=True)
        }

    def _end_compromise(self) -> None:
        """The compromise under way is over: with an entity, its cards show up elsewhere, as a
        follow-up of the same occurrence."""
        compromise, cards = self._compromise, self._cards
        self._compromise = None
        if compromise is None or cards is None:
            return
        misused = cards.misuse(self._compromise_block, compromise.start_s, self._compromise_end_s)
        if misused:
            events = tuple(ScenarioEvent(at_s, row, None, card) for at_s, row, card in misused)
            self._follow_up.append(
                Occurrence(
                    compromise.kind,
                    compromise.id,
                    self._compromise_end_s,
                    events,
                    compromise.merchant,
                    follow_up=True,
                )
            )

    def _pick_merchant(self) -> int:
        """The configured merchant, or the merchant of a uniformly drawn debit (one draw)."""
        if self._fixed_merchant is not None:
            return self._fixed_merchant
        return bisect_right(self._bounds, self._rng.randrange(len(self._rows))) - 1

    def _debits_of(self, merchant: int, count: int) -> list[int]:
        """`count` debit rows of `merchant`, uniformly with replacement."""
        rows = self._rows
        block = range(self._bounds[merchant], self._bounds[merchant + 1])
        return [rows[position] for position in self._rng.choices(block, k=count)]


def _merchant_index(merchants: tuple[str, ...], name: str, dataset: Dataset) -> int:
    """The index of the merchant `scenario.merchant` names; raises `DatasetError` naming the
    closest merchant with debits."""
    try:
        return merchants.index(name)
    except ValueError:
        pass
    # difflib scores 'lidl' and 'LIDL' as unrelated: match case-folded names, suggest the
    # dataset's spelling.
    folded = {merchant.casefold(): merchant for merchant in merchants}
    close = difflib.get_close_matches(name.casefold(), folded, n=1)
    hint = (
        f"did you mean {folded[close[0]]!r}?"
        if close
        else "set scenario.merchant to a merchant with debits, or leave it unset to pick one"
        " per occurrence"
    )
    raise DatasetError(
        f"scenario.merchant: no debit rows at {name!r} in dataset {dataset.source} — {hint}"
    )


def _cards_of(
    scenario: Scenario, dataset: Dataset, rows: array[int], rng: random.Random
) -> Cards | None:
    """The entity's cards: one per occurrence of card-testing per entity and of velocity, and
    those a compromised merchant saw. None: the scenario acts on rows and merchants alone.
    Raises `DatasetError` for `per: entity` without an entity column."""
    per = scenario.per if isinstance(scenario, CardTesting) else None
    if per == "entity" and dataset.entity is None:
        raise DatasetError(
            f"scenario.per: entity needs an entity column, and dataset {dataset.source} has"
            " none — set dataset.entity (e.g. card_id, with extra_columns: keep) or per:"
            " merchant"
        )
    wanted = isinstance(scenario, Velocity | MerchantCompromise) or (
        isinstance(scenario, CardTesting) and per != "merchant"
    )
    return (
        Cards(dataset.entity, dataset.values, rows, rng)
        if dataset.entity is not None and wanted
        else None
    )


def _index_debits(
    dataset: Dataset, by_merchant: bool
) -> tuple[array[int], array[int], tuple[str, ...]]:
    """The debit rows, grouped by merchant in order of first appearance when `by_merchant`, with
    the group boundaries and the merchants' names (see `ScenarioPlanner._rows`).

    4 bytes per debit row and per merchant: the merchant column is read once and dropped.
    """
    values = dataset.values
    if not by_merchant:
        rows = array("I", (row for row, value in enumerate(values) if is_debit(value)))
        return rows, array("I", (0, len(rows))), ()
    groups: dict[bytes, array[int]] = {}
    for row, (value, merchant) in enumerate(zip(values, dataset.column("merchant"), strict=True)):
        if is_debit(value):
            group = groups.get(merchant)
            if group is None:
                group = groups[merchant] = array("I")
            group.append(row)
    rows, bounds = array("I"), array("I", (0,))
    for group in groups.values():
        rows.extend(group)
        bounds.append(len(rows))
    return rows, bounds, tuple(merchant.decode() for merchant in groups)


def _quantile_by_merchant(
    values: tuple[bytes, ...], rows: array[int], bounds: array[int], q: float
) -> array[float]:
    """Each merchant's `q`-quantile debit amount, interpolated linearly between order statistics
    (numpy's default)."""
    quantiles = array("d")
    for k in range(len(bounds) - 1):
        amounts = sorted(amount_of(values[row]) for row in rows[bounds[k] : bounds[k + 1]])
        position = q * (len(amounts) - 1)
        below = int(position)
        above = min(below + 1, len(amounts) - 1)
        quantiles.append(amounts[below] + (amounts[above] - amounts[below]) * (position - below))
    return quantiles
