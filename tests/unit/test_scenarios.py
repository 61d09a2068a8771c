"""Fraud scenario planning: each kind's events, their rows and amounts, timing, reproducibility."""

from __future__ import annotations

import itertools
import json
import math
import random
import re
import statistics
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter

from supervisor.config import Scenario
from supervisor.dataset import Dataset, load_dataset, parse_csv
from supervisor.dataset.codec import with_field
from supervisor.errors import DatasetError
from supervisor.profile.scenarios import Occurrence, ScenarioPlanner, TickPlan

REPO_DATASET = Path(__file__).parents[2] / "data" / "transactions.csv"
CENTS = re.compile(rb"(0|[1-9][0-9]*)\.[0-9]{2}")
HEADER = "id,description,amount,timestamp,merchant,operation_type,side\n"
_SCENARIO = TypeAdapter[Scenario](Scenario)


def scenario(**settings: Any) -> Scenario:
    return _SCENARIO.validate_python(settings)


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return load_dataset(str(REPO_DATASET))


@pytest.fixture(scope="module")
def records(dataset: Dataset) -> list[dict[str, Any]]:
    return [json.loads(value) for value in dataset.values]


def is_debit(record: dict[str, Any]) -> bool:
    return bool(record["operation_type"] == "debit" and record["side"] == "outgoing")


def small_dataset(*rows: tuple[str, str, str, str]) -> Dataset:
    """A dataset of (description, amount, merchant, operation_type) rows, side from the type."""
    lines = [
        f"00000000-0000-4000-8000-{i:012d},{description},{amount},2026-01-01T00:00:00,"
        f"{merchant},{operation},{'outgoing' if operation == 'debit' else 'incoming'}\n"
        for i, (description, amount, merchant, operation) in enumerate(rows)
    ]
    return parse_csv((HEADER + "".join(lines)).encode(), source="small.csv", on_invalid="fail")


def run(
    planner: ScenarioPlanner, ticks: int, *, step_s: float = 1.0, size: int = 10
) -> list[tuple[float, TickPlan]]:
    """Each tick's time and plan, ticks `step_s` apart from 0."""
    return [(i * step_s, planner.tick(i * step_s, size)) for i in range(ticks)]


def started(plans: list[tuple[float, TickPlan]]) -> list[Occurrence]:
    return [occurrence for _, plan in plans for occurrence in plan.started]


def within(count: float, expected: float, sd: float) -> bool:
    """Whether `count` is within 4 standard deviations of `expected` (1 in ~16,000 misses)."""
    return abs(count - expected) <= 4 * sd


# --- card-testing ---------------------------------------------------------------------------


@pytest.mark.parametrize("merchant", [None, "LIDL"])
def test_card_testing_is_small_cent_amounts_at_one_merchant_within_the_window(
    dataset: Dataset, records: list[dict[str, Any]], merchant: str | None
) -> None:
    settings = scenario(
        kind="card-testing",
        probability=0.5,
        min_attempts=3,
        max_attempts=8,
        min_amount=0.5,
        max_amount=2.0,
        window_s=30,
        merchant=merchant,
    )
    occurrences = started(run(ScenarioPlanner(settings, dataset, random.Random(1)), 400))
    assert len(occurrences) > 100
    merchants = set()
    for occurrence in occurrences:
        assert occurrence.kind == "card-testing"
        assert 3 <= len(occurrence.events) <= 8
        times = [event.at_s for event in occurrence.events]
        assert times == sorted(times)
        assert occurrence.start_s <= times[0]
        assert times[-1] <= occurrence.start_s + 30
        for event in occurrence.events:
            record = records[event.row]
            assert is_debit(record)
            assert record["merchant"] == occurrence.merchant
            assert event.amount is not None
            assert CENTS.fullmatch(event.amount)
            assert 0.5 <= float(event.amount) <= 2.0
        merchants.add(occurrence.merchant)
    if merchant is None:
        assert len(merchants) > 10  # a merchant drawn per occurrence
    else:
        assert merchants == {merchant}


def test_card_testing_uses_every_attempt_count_and_spreads_offsets(dataset: Dataset) -> None:
    settings = scenario(kind="card-testing", probability=1, min_attempts=2, max_attempts=4)
    occurrences = started(run(ScenarioPlanner(settings, dataset, random.Random(2)), 300))
    assert {len(o.events) for o in occurrences} == {2, 3, 4}
    offsets = [e.at_s - o.start_s for o in occurrences for e in o.events]
    # Uniform on [0, 30]: mean 15, sd 30 / sqrt(12).
    assert within(statistics.fmean(offsets), 15, 30 / math.sqrt(12) / math.sqrt(len(offsets)))


# --- amount-outlier --------------------------------------------------------------------------


def test_amount_outlier_is_one_debit_scaled_past_its_merchants_p99(
    dataset: Dataset, records: list[dict[str, Any]]
) -> None:
    by_merchant = defaultdict(list)
    for record in records:
        if is_debit(record):
            by_merchant[record["merchant"]].append(record["amount"])
    p99 = {
        merchant: amounts[0]
        if len(amounts) == 1
        else statistics.quantiles(amounts, n=100, method="inclusive")[98]
        for merchant, amounts in by_merchant.items()
    }
    settings = scenario(kind="amount-outlier", probability=1, min_factor=5, max_factor=20)
    occurrences = started(run(ScenarioPlanner(settings, dataset, random.Random(3)), 500))
    assert len(occurrences) == 500
    for occurrence in occurrences:
        (event,) = occurrence.events
        record = records[event.row]
        assert is_debit(record)
        assert occurrence.merchant == record["merchant"]
        assert event.at_s == occurrence.start_s
        assert event.amount is not None
        assert CENTS.fullmatch(event.amount)
        threshold = p99[record["merchant"]]
        assert threshold * 5 - 0.005 <= float(event.amount) <= threshold * 20 + 0.005
    assert len({o.merchant for o in occurrences}) > 20


# --- velocity --------------------------------------------------------------------------------


def test_velocity_is_a_sorted_burst_of_real_debits_with_their_own_amounts(
    dataset: Dataset, records: list[dict[str, Any]]
) -> None:
    settings = scenario(kind="velocity", probability=1, min_count=5, max_count=9, window_s=12)
    occurrences = started(run(ScenarioPlanner(settings, dataset, random.Random(4)), 300))
    assert {len(o.events) for o in occurrences} == set(range(5, 10))
    for occurrence in occurrences:
        assert occurrence.kind == "velocity"
        assert occurrence.merchant is None
        times = [event.at_s for event in occurrence.events]
        assert times == sorted(times)
        assert occurrence.start_s <= times[0]
        assert times[-1] <= occurrence.start_s + 12
        assert all(event.amount is None for event in occurrence.events)
        assert all(is_debit(records[event.row]) for event in occurrence.events)
    rows = [event.row for o in occurrences for event in o.events]
    assert len({records[row]["merchant"] for row in rows}) > 20  # any merchant, not one


# --- merchant-compromise ---------------------------------------------------------------------


def test_compromise_replaces_a_share_of_positions_only_while_active(
    dataset: Dataset, records: list[dict[str, Any]]
) -> None:
    settings = scenario(
        kind="merchant-compromise", every_s=100, duration_s=20, share=0.3, merchant="Etsy"
    )
    plans = run(ScenarioPlanner(settings, dataset, random.Random(5)), 5000, step_s=0.5, size=40)
    occurrences = started(plans)
    assert len(occurrences) > 10
    for previous, following in itertools.pairwise(occurrences):
        assert following.start_s >= previous.start_s + 20  # never two at once
    active_positions = replaced = 0
    current: Occurrence | None = None
    for at_s, plan in plans:
        if plan.started:
            current = plan.started[-1]
        active = current is not None and current.start_s <= at_s < current.start_s + 20
        if not active:
            assert not plan.replaced
            continue
        active_positions += 40
        replaced += len(plan.replaced)
        for position, (row, occurrence) in plan.replaced.items():
            assert 0 <= position < 40
            assert occurrence is current
            assert is_debit(records[row])
            assert records[row]["merchant"] == "Etsy"
    assert occurrences[0].merchant == "Etsy"
    assert occurrences[0].events == ()
    sd = math.sqrt(active_positions * 0.3 * 0.7)
    assert within(replaced, active_positions * 0.3, sd)


def test_compromise_arrivals_while_one_is_active_are_skipped(dataset: Dataset) -> None:
    settings = scenario(kind="merchant-compromise", probability=1, duration_s=10, share=1)
    plans = run(ScenarioPlanner(settings, dataset, random.Random(6)), 100, size=5)
    assert [o.start_s for o in started(plans)] == [float(t) for t in range(0, 100, 10)]
    assert all(len(plan.replaced) == 5 for _, plan in plans)  # share 1: every position
    assert len({o.merchant for o in started(plans)}) > 1  # a merchant drawn per occurrence


# --- timing ----------------------------------------------------------------------------------


def test_every_s_is_a_poisson_process_on_run_time(dataset: Dataset) -> None:
    settings = scenario(kind="amount-outlier", every_s=3)
    plans = run(ScenarioPlanner(settings, dataset, random.Random(8)), 20_000, step_s=1)
    starts = []
    for at_s, plan in plans:
        for occurrence in plan.started:
            assert at_s - 1 < occurrence.start_s <= at_s  # since the previous tick
            assert occurrence.events[0].at_s == occurrence.start_s  # its own arrival time
            starts.append(occurrence.start_s)
    gaps = [b - a for a, b in zip([0.0, *starts], starts, strict=False)]
    # Exponential gaps: the sd of one is its mean, every_s.
    assert within(statistics.fmean(gaps), 3, 3 / math.sqrt(len(gaps)))
    assert any(len(plan.started) > 1 for _, plan in plans)  # several arrivals in one tick
    assert not all(start.is_integer() for start in starts)


def test_probability_starts_an_occurrence_at_a_tick_with_that_chance(dataset: Dataset) -> None:
    settings = scenario(kind="velocity", probability=0.2, min_count=1, max_count=1)
    plans = run(ScenarioPlanner(settings, dataset, random.Random(9)), 10_000, step_s=0.25)
    starts = [(at_s, plan.started) for at_s, plan in plans if plan.started]
    assert all(len(s) == 1 and s[0].start_s == at_s for at_s, s in starts)
    assert within(len(starts), 10_000 * 0.2, math.sqrt(10_000 * 0.2 * 0.8))


def test_an_idle_tick_in_every_s_mode_draws_nothing(dataset: Dataset) -> None:
    rng = random.Random(10)
    planner = ScenarioPlanner(scenario(kind="velocity", every_s=1e7), dataset, rng)
    state = rng.getstate()
    assert planner.tick(1.0, 10) == TickPlan((), {})
    assert rng.getstate() == state  # the sampler's sequence is left alone


# --- reproducibility -------------------------------------------------------------------------

KINDS: list[dict[str, Any]] = [
    {"kind": "card-testing", "probability": 0.05},
    {"kind": "amount-outlier", "every_s": 20},
    {"kind": "velocity", "probability": 0.05},
    {"kind": "merchant-compromise", "every_s": 100, "duration_s": 30},
]


@pytest.mark.parametrize("settings", KINDS, ids=[kind["kind"] for kind in KINDS])
def test_a_seed_gives_the_same_plans_and_ids_and_another_seed_different_ones(
    dataset: Dataset, settings: dict[str, Any]
) -> None:
    def plans(seed: int) -> list[tuple[float, TickPlan]]:
        planner = ScenarioPlanner(scenario(**settings), dataset, random.Random(seed))
        return run(planner, 1000, size=20)

    first = plans(7)
    assert any(plan.started for _, plan in first)
    assert first == plans(7)
    assert first != plans(8)
    ids = [occurrence.id.decode() for occurrence in started(first)]
    assert len(set(ids)) == len(ids)  # one scenario_id per occurrence
    assert all(str(uuid.UUID(id_)) == id_ for id_ in ids)


# --- datasets that cannot support a scenario --------------------------------------------------


def test_a_dataset_without_debits_is_refused() -> None:
    credits_only = small_dataset(("Refund", "5.00", "LIDL", "credit"))
    with pytest.raises(DatasetError, match=r"^scenario: dataset small\.csv has no debit rows"):
        ScenarioPlanner(scenario(kind="velocity", every_s=1), credits_only, random.Random())


@pytest.mark.parametrize(
    ("merchant", "hint"),
    [
        ("LIDLL", "did you mean 'LIDL'?"),
        ("lidl", "did you mean 'LIDL'?"),
        ("ALDI", "or leave it unset"),  # in the dataset, but only as a credit
        ("Zzyzx Road", "or leave it unset to pick one per occurrence"),
    ],
)
def test_an_unknown_merchant_is_refused_with_a_suggestion(merchant: str, hint: str) -> None:
    data = small_dataset(
        ("Card payment", "5.00", "LIDL", "debit"), ("Refund", "3.00", "ALDI", "credit")
    )
    settings = scenario(kind="card-testing", every_s=1, merchant=merchant)
    with pytest.raises(DatasetError) as caught:
        ScenarioPlanner(settings, data, random.Random())
    message = str(caught.value)
    assert message.startswith(
        f"scenario.merchant: no debit rows at {merchant!r} in dataset small.csv — "
    )
    assert hint in message
    assert "\n" not in message


def test_a_merchant_needing_json_escapes_is_found() -> None:
    data = small_dataset(
        ("Card payment", "5.00", '"Chez ""Zoé"" \\ Co"', "debit"),
        ("Card payment", "7.00", "LIDL", "debit"),
    )
    settings = scenario(
        kind="merchant-compromise", probability=1, share=1, merchant='Chez "Zoé" \\ Co'
    )
    plan = ScenarioPlanner(settings, data, random.Random()).tick(0.0, 3)
    assert plan.started[0].merchant == 'Chez "Zoé" \\ Co'
    assert {row for row, _ in plan.replaced.values()} == {0}


# --- with_field (amount) ------------------------------------------------------------------------


@pytest.mark.parametrize("amount", [b"1.37", b"123456.00", b"0.5", b"-12.30"])
def test_with_field_changes_the_amount_and_nothing_else(amount: bytes) -> None:
    data = small_dataset(
        ("Card payment LIDL 9935", "32.24", "LIDL", "debit"),
        ('"decoy ,""amount"":1,""timestamp"":"""', "2965.88", "ACME", "credit"),
    )
    for value in data.values:
        changed = json.loads(with_field(value, "amount", amount))
        original = json.loads(value)
        assert changed["amount"] == json.loads(amount)
        assert {**changed, "amount": None} == {**original, "amount": None}
        assert list(changed) == list(original)  # field order kept
