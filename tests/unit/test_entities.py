"""Fraud scenarios acting on an entity (`dataset.entity: card_id`): one stolen card tried at many
merchants, many cards at one merchant, one card's burst, a compromised merchant's cards used
elsewhere later; the labels name the card."""

from __future__ import annotations

import io
import json
import random
from collections import defaultdict
from typing import Any

import pytest
from pydantic import TypeAdapter

from supervisor.config import Config, Scenario
from supervisor.dataset import FIELDS, Dataset, Reading, parse_csv
from supervisor.dataset.synth import generate, header
from supervisor.errors import DatasetError
from supervisor.profile.events import EventBuilder
from supervisor.profile.feasibility import check_scenarios
from supervisor.profile.scenarios import Occurrence, ScenarioPlanner
from tests.unit.formats.test_formats import official_decode, prepared
from tests.unit.test_stream import run, stream_of

_SCENARIO = TypeAdapter[Scenario](Scenario)
ENTITY = Reading(extra_columns="keep", entity="card_id")


def cards_dataset(rows: int = 3000, cards: int = 400, reading: Reading = ENTITY) -> Dataset:
    out = io.StringIO()
    out.write(",".join(header(cards)) + "\n")
    for row in generate(rows, seed=5, cards=cards):
        out.write(",".join(f'"{cell}"' for cell in row) + "\n")
    return parse_csv(out.getvalue().encode(), source="cards.csv", reading=reading)


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return cards_dataset()


def planned(dataset: Dataset, ticks: int = 200, **settings: Any) -> list[Occurrence]:
    planner = ScenarioPlanner(
        _SCENARIO.validate_python({"every_s": 5, **settings}), dataset, random.Random(3)
    )
    started: list[Occurrence] = []
    for k in range(ticks):
        started += planner.tick(float(k), 10).started
    return started


def record(dataset: Dataset, row: int) -> dict[str, Any]:
    return dict(json.loads(dataset.values[row]))


def test_card_testing_tries_one_card_at_many_merchants(dataset: Dataset) -> None:
    occurrences = planned(dataset, kind="card-testing")
    assert occurrences
    for occurrence in occurrences:
        assert occurrence.entity is not None
        assert occurrence.merchant is None
        assert {event.entity for event in occurrence.events} == {occurrence.entity}
        card = json.loads(occurrence.entity)
        assert card.startswith("card-")
        assert card in {record(dataset, row)["card_id"] for row in range(len(dataset))}
        assert all(record(dataset, e.row)["operation_type"] == "debit" for e in occurrence.events)
    merchants = {record(dataset, e.row)["merchant"] for o in occurrences for e in o.events}
    assert len(merchants) > 5


def test_card_testing_per_card_at_a_set_merchant_stays_there(dataset: Dataset) -> None:
    for occurrence in planned(dataset, kind="card-testing", merchant="ALDI"):
        assert occurrence.merchant == "ALDI"
        assert {record(dataset, e.row)["merchant"] for e in occurrence.events} == {"ALDI"}
        assert len({event.entity for event in occurrence.events}) == 1


def test_card_testing_per_merchant_tries_many_cards_there(dataset: Dataset) -> None:
    for occurrence in planned(dataset, kind="card-testing", per="merchant", min_attempts=20):
        assert occurrence.entity is None
        assert {event.entity for event in occurrence.events} == {None}
        assert {record(dataset, e.row)["merchant"] for e in occurrence.events} == {
            occurrence.merchant
        }
        assert len({record(dataset, e.row)["card_id"] for e in occurrence.events}) > 5


def test_velocity_is_one_cards_burst(dataset: Dataset) -> None:
    for occurrence in planned(dataset, kind="velocity"):
        assert occurrence.entity is not None
        assert {event.entity for event in occurrence.events} == {occurrence.entity}


def test_a_compromised_merchants_cards_show_up_elsewhere_after_it(dataset: Dataset) -> None:
    occurrences = planned(dataset, 400, kind="merchant-compromise", duration_s=20, every_s=60)
    starts = {o.id: o for o in occurrences if not o.follow_up}
    follow_ups = [o for o in occurrences if o.follow_up]
    assert follow_ups
    for follow in follow_ups:
        compromise = starts[follow.id]
        assert follow.kind == "merchant-compromise"
        assert follow.merchant == compromise.merchant
        end_s = follow.start_s
        assert all(end_s <= e.at_s < end_s + 20 for e in follow.events)
        assert all(record(dataset, e.row)["merchant"] != compromise.merchant for e in follow.events)
        cards = [e.entity for e in follow.events]
        assert len(cards) == len(set(cards)) > 0


def test_per_entity_without_an_entity_is_refused() -> None:
    plain = cards_dataset(200, 10, Reading(extra_columns="keep"))
    with pytest.raises(DatasetError, match=r"scenario\.per: entity needs an entity column"):
        planned(plain, kind="card-testing", per="entity")


def test_without_an_entity_no_occurrence_names_a_card() -> None:
    plain = cards_dataset(500, 10, Reading())
    for kind in ("card-testing", "velocity", "merchant-compromise"):
        for occurrence in planned(plain, kind=kind):
            assert occurrence.entity is None
            assert not occurrence.follow_up
            assert {event.entity for event in occurrence.events} <= {None}


def test_card_testing_events_carry_the_card_and_their_labels_name_it(dataset: Dataset) -> None:
    stream = stream_of(
        dataset,
        id="fresh",
        scenario={"kind": "card-testing", "every_s": 3, "min_attempts": 3, "max_attempts": 5},
        labels={"topic": "labels", "delay_s": 1},
    )
    out = run(stream, 30)
    events = {m.value[7:43]: json.loads(m.value) for m in out if m.scenario is not None}
    labels = [json.loads(m.value) for m in out if m.topic == "labels"]
    assert events
    assert len(labels) == len(events)
    by_occurrence: dict[str, set[str]] = defaultdict(set)
    for label in labels:
        event = events[label["id"].encode()]
        assert label["entity"] == "card_id"
        assert label["entity_id"] == event["card_id"]
        assert list(event)[: len(FIELDS)] == list(FIELDS)
        by_occurrence[label["scenario_id"]].add(label["entity_id"])
    assert all(len(cards) == 1 for cards in by_occurrence.values())
    assert len({card for cards in by_occurrence.values() for card in cards}) > 1


def test_labels_of_a_dataset_without_entity_are_as_before() -> None:
    plain = cards_dataset(500, 10, Reading())
    stream = stream_of(
        plain,
        scenario={"kind": "card-testing", "every_s": 3},
        labels={"topic": "labels", "delay_s": 1},
    )
    labels = [json.loads(m.value) for m in run(stream, 20) if m.topic == "labels"]
    assert labels
    assert all(set(label) == {"id", "label", "scenario", "scenario_id"} for label in labels)


def test_compromise_follow_ups_are_labelled_but_not_counted_as_occurrences(
    dataset: Dataset,
) -> None:
    stream = stream_of(
        dataset,
        id="fresh",
        scenario={"kind": "merchant-compromise", "every_s": 30, "duration_s": 10},
        labels={"topic": "labels", "delay_s": 1},
    )
    out = run(stream, 120)
    fraud = [json.loads(m.value) for m in out if m.scenario is not None]
    labels = {json.loads(m.value)["id"]: json.loads(m.value) for m in out if m.topic == "labels"}
    merchants_by_card: dict[str, set[str]] = defaultdict(set)
    for event in fraud:
        assert labels[event["id"]]["entity_id"] == event["card_id"]
        merchants_by_card[event["card_id"]].add(event["merchant"])
    assert any(len(merchants) > 1 for merchants in merchants_by_card.values())
    occurrences = stream.occurrences["merchant-compromise"]
    assert occurrences == len({label["scenario_id"] for label in labels.values()})


@pytest.mark.parametrize("format", ["avro", "protobuf", "json-schema"])
def test_card_testing_per_card_in_a_schema_registry_format(format: str, dataset: Dataset) -> None:
    """The schema carries the kept columns; each fraud event decodes with its card and its label
    (the label schema's `entity`, `entity_id`) names it."""
    encodings, wire = prepared(format, dataset)
    stream = stream_of(
        dataset,
        id="fresh",
        wire=wire,
        scenario={"kind": "card-testing", "every_s": 3, "min_attempts": 3, "max_attempts": 5},
        labels={"topic": "tx-labels", "delay_s": 1},
    )
    out = run(stream, 30)
    events = {}
    for message in out:
        if message.scenario is not None:
            event = official_decode(encodings, format, message.value)
            events[event["id"]] = event
    labels = [
        official_decode(encodings, format, m.value, topic="tx-labels")
        for m in out
        if m.topic == "tx-labels"
    ]
    assert events
    assert len(labels) == len(events)
    by_occurrence: dict[str, set[str]] = defaultdict(set)
    for label in labels:
        assert label["entity"] == "card_id"
        assert label["entity_id"] == events[label["id"]]["card_id"]
        by_occurrence[label["scenario_id"]].add(label["entity_id"])
    assert all(len(cards) == 1 for cards in by_occurrence.values())
    assert len({card for cards in by_occurrence.values() for card in cards}) > 1


def test_messages_keyed_by_the_card_partition_by_it_on_both_paths(dataset: Dataset) -> None:
    """`key: card_id` (a kept column): the fast path's keys and a shaped stream's, a fraud event
    on another card keyed by that card; an empty cell is an empty key."""
    builder = EventBuilder(
        dataset, id_mode="fresh", timestamp_mode="now", key_field="card_id", rng=random.Random(1)
    )
    values, keys, _ = builder.build(list(range(50)))
    assert keys is not None
    assert keys == [(json.loads(v)["card_id"] or "").encode() for v in values]
    stream = stream_of(
        dataset,
        id="fresh",
        key="card_id",
        scenario={"kind": "card-testing", "every_s": 3, "min_attempts": 3, "max_attempts": 5},
    )
    out = [m for m in run(stream, 30) if m.topic == "tx"]
    assert any(m.scenario is not None for m in out)
    for message in out:
        assert message.key == (json.loads(message.value)["card_id"] or "").encode()


def test_a_key_the_dataset_does_not_carry_is_refused_before_sending(dataset: Dataset) -> None:
    config = Config.model_validate(
        {
            "dataset": {"uri": "cards.csv", "extra_columns": "keep"},
            "profiles": {"p": {"interval_s": 1, "min_records": 1, "max_records": 1, "key": "mcc"}},
        }
    )
    with pytest.raises(DatasetError) as refused:
        check_scenarios(config, dataset)
    assert str(refused.value) == (
        "profiles.p.key: 'mcc' is not a field of the messages of dataset cards.csv (the seven"
        " fields, then its kept columns: card_id) — key by one of them, or keep that column in"
        " the dataset"
    )
    keyed = config.model_copy(
        update={"profiles": {"p": config.profiles["p"].model_copy(update={"key": "card_id"})}}
    )
    check_scenarios(keyed, dataset)  # a kept column is a key
