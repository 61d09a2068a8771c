"""Synthetic transaction dataset: plausible card payments, transfers and payroll from a seed.

Rows come out in chronological order over `DAYS` days starting at `START`, with a daily rhythm per
kind of spending (meals at lunch and dinner, direct debits overnight, shops in the daytime). The
same `(rows, seed)` always gives the same rows, so `write_csv` output is byte-identical run to run;
`write` also writes JSON Lines and Parquet, and a `card_id` column for fraud scenarios' entities.
"""

from __future__ import annotations

import csv
import gzip
import itertools
import json
import math
import os
import random
import uuid
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from itertools import accumulate
from pathlib import Path
from typing import TextIO

from supervisor.dataset.codec import FIELDS
from supervisor.dataset.columns import Format, format_of

START = datetime(2026, 1, 1)
DAYS = 30
SIDE_MISMATCH_RATE = 0.002
"""Share of rows whose side contradicts the operation type, as real feeds occasionally carry."""

# Relative activity per hour of day, 00:00 to 23:00.
_SHOPS = (1, 0, 0, 0, 0, 1, 2, 4, 6, 8, 9, 10, 10, 10, 9, 9, 10, 11, 11, 9, 6, 4, 2, 1)
_MEALS = (1, 0, 0, 0, 0, 0, 1, 3, 5, 3, 3, 8, 12, 9, 3, 2, 2, 4, 8, 11, 9, 5, 3, 2)
_ONLINE = (3, 2, 1, 1, 1, 1, 2, 3, 4, 5, 6, 6, 7, 6, 6, 6, 6, 7, 8, 9, 10, 10, 8, 5)
_OFFICE = (0, 0, 0, 0, 0, 1, 2, 4, 8, 10, 10, 10, 8, 9, 10, 10, 9, 7, 4, 2, 1, 1, 0, 0)
_OVERNIGHT = (6, 9, 10, 10, 9, 6, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2)

_CITIES = ("LONDON", "PARIS", "BERLIN", "MADRID", "AMSTERDAM", "MÜNCHEN", "KRAKÓW", "LISBOA")
_PEOPLE = (
    "J. Smith", "María García", "Zoë Dubois", "Łukasz Nowak", "A. Okafor",
    "田中 愛子", "Sven Johansson", "Chloé Martin", "R. Patel", "Giulia Rossi",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Kind:
    """One kind of transaction: who is paid, how it is described, how much and when."""

    weight: float  # share of all transactions
    merchants: tuple[str, ...]
    debits: tuple[str, ...]  # description templates for money going out
    credits: tuple[str, ...]  # ... and for money coming in (refunds, salaries, transfers)
    credit_share: float
    median: float  # log-normal amount: median and spread (sigma of the log)
    spread: float
    hours: tuple[int, ...]
    weekend: float = 1.0  # activity on Saturday and Sunday relative to weekdays
    step: float = 0.01  # amounts are multiples of this


_CARD = ("Card payment {m} {store}", "Contactless {m} {city}")
_REFUND = ("Refund {m}", "Refund {m} ref {ref}")

_KINDS = (
    # groceries
    _Kind(22, ("TESCO STORES", "SAINSBURY'S", "ALDI", "LIDL", "CARREFOUR", "REWE", "MERCADONA",
               "ALBERT HEIJN", "Żabka", "ファミリーマート"),
          debits=_CARD, credits=_REFUND, credit_share=0.01,
          median=32, spread=0.8, hours=_SHOPS, weekend=1.3),
    # restaurants and cafés
    _Kind(14, ("PRET A MANGER", "Café de Flore", "McDonald's", "Starbucks", "Wagamama",
               "Nando's", "Vapiano", "Le Pain Quotidien", "Sushi Shop"),
          debits=_CARD, credits=_REFUND, credit_share=0.005,
          median=18, spread=0.7, hours=_MEALS, weekend=1.4),
    # fuel
    _Kind(7, ("SHELL", "BP", "ESSO", "TotalEnergies", "Aral"),
          debits=("Card payment {m} {store}", "Fuel {m} pump {pump}"), credits=_REFUND,
          credit_share=0.005, median=55, spread=0.4, hours=_SHOPS),
    # e-commerce
    _Kind(12, ("AMAZON EU", "Zalando", "eBay", "ASOS", "Etsy", "El Corte Inglés", "Bol.com"),
          debits=("Online purchase {m} order {order}", "{m}, order {order}"),
          credits=("Refund {m} order {order}",), credit_share=0.07,
          median=38, spread=1.0, hours=_ONLINE),
    # travel
    _Kind(4, ("Ryanair", "easyJet", "Lufthansa", "Booking.com", "Airbnb", "Eurostar", "SNCF"),
          debits=("Booking {m}, ref {ref}", "Online payment {m} {ref}"),
          credits=("Refund {m}, ref {ref}",), credit_share=0.06,
          median=180, spread=0.9, hours=_ONLINE),
    # utilities
    _Kind(5, ("EDF Energy", "British Gas", "Thames Water", "Vodafone", "Orange", "Vattenfall"),
          debits=("Direct debit {m} acct {acct}",), credits=("Credit balance refund {m}",),
          credit_share=0.02, median=75, spread=0.5, hours=_OVERNIGHT, weekend=0.1),
    # subscriptions
    _Kind(8, ("NETFLIX.COM", "Spotify", "Disney Plus", "Apple.com/bill", "Google Storage",
              "Adobe", "The Guardian"),
          debits=("Recurring payment {m}", "{m} subscription"), credits=_REFUND,
          credit_share=0.01, median=11, spread=0.45, hours=_OVERNIGHT),
    # salary and payroll
    _Kind(3, ("ACME GmbH", "Globex Ltd", "Initech SA", "Umbrella BV", "Hooli Inc"),
          debits=(), credits=("SEPA transfer from {m} payroll", "Salary {m} ref {ref}"),
          credit_share=1.0, median=2900, spread=0.35, hours=_OVERNIGHT, weekend=0.05),
    # transfers between people
    _Kind(10, _PEOPLE,
          debits=("Transfer to {m}", "Instant transfer to {m} ref {ref}"),
          credits=("Transfer from {m}", "Instant transfer from {m} ref {ref}"),
          credit_share=0.45, median=60, spread=1.2, hours=_OFFICE, weekend=0.5),
    # cash machines
    _Kind(5, ("HSBC ATM", "BNP PARIBAS ATM", "Deutsche Bank ATM", "Santander ATM", "ING ATM"),
          debits=("ATM withdrawal {m} {city}",), credits=(), credit_share=0.0,
          median=70, spread=0.6, hours=_SHOPS, step=10),
    # pharmacy and drugstores
    _Kind(4, ("Boots", "Müller Drogerie", "DocMorris", "Pharmacie Lafayette", "dm-drogerie markt"),
          debits=_CARD, credits=_REFUND, credit_share=0.02,
          median=16, spread=0.7, hours=_SHOPS, weekend=0.7),
    # electronics
    _Kind(3, ("MediaMarkt", "Currys", "Fnac", "Apple Store", "Saturn"),
          debits=("Card payment {m} {store}", "Online purchase {m} order {order}"),
          credits=("Refund {m} order {order}",), credit_share=0.08,
          median=140, spread=1.1, hours=_SHOPS),
    # rides and public transport
    _Kind(3, ("Uber", "Bolt", "FREENOW", "TfL Travel", "Deutsche Bahn"),
          debits=("{m} trip {ref}", "Card payment {m}"), credits=_REFUND, credit_share=0.01,
          median=14, spread=0.7, hours=_MEALS),
)  # fmt: skip


def generate(rows: int, seed: int, *, cards: int = 0) -> Iterator[tuple[str, ...]]:
    """Iterate over `rows` transactions: tuples of strings in `header(cards)` order, oldest first.

    `cards` > 0 adds a `card_id`, each row's drawn from that many cards by a generator of its
    own, so the seven fields are the same rows with or without it.
    """
    if rows < 0:
        raise ValueError(f"rows must be >= 0, got {rows}")
    transactions = _generate(rows, random.Random(seed))
    if not cards:
        return transactions
    draw = random.Random(f"{seed}/cards").randrange
    return ((*row, f"card-{draw(cards):06d}") for row in transactions)


def header(cards: int = 0) -> tuple[str, ...]:
    """The columns `generate(..., cards=cards)` gives."""
    return (*FIELDS, "card_id") if cards else FIELDS


def _generate(rows: int, rng: random.Random) -> Iterator[tuple[str, ...]]:
    hours = [START + timedelta(hours=h) for h in range(DAYS * 24)]
    stamps = [hour.strftime("%Y-%m-%dT%H") for hour in hours]
    # One weight per kind per hour of the period: a row's hour is drawn from the hours' totals and
    # its kind from that hour's weights, so every kind keeps its own daily and weekly rhythm.
    per_hour = [
        [
            k.weight * k.hours[hour.hour] * (k.weekend if hour.weekday() >= 5 else 1.0)
            for k in _KINDS
        ]
        for hour in hours
    ]
    hour_totals = [sum(weights) for weights in per_hour]
    hour_cum = list(accumulate(hour_totals))
    kind_cums = [list(accumulate(weights)) for weights in per_hour]
    # Order statistics of `rows` uniforms drawn largest first; 1 - u then runs in ascending order.
    u = 1.0
    for remaining in range(rows, 0, -1):
        u *= rng.random() ** (1.0 / remaining)
        at = (1.0 - u) * hour_cum[-1]
        hour = min(bisect_right(hour_cum, at), len(hour_cum) - 1)
        into_hour = (at - hour_cum[hour] + hour_totals[hour]) / hour_totals[hour]
        minute, second = divmod(min(int(into_hour * 3600), 3599), 60)
        (kind,) = rng.choices(_KINDS, cum_weights=kind_cums[hour])
        yield _transaction(rng, kind, f"{stamps[hour]}:{minute:02d}:{second:02d}")


def _transaction(rng: random.Random, kind: _Kind, when: str) -> tuple[str, ...]:
    credit = rng.random() < kind.credit_share
    merchant = rng.choice(kind.merchants)
    template = rng.choice(kind.credits if credit else kind.debits)
    description = template.format(
        m=merchant,
        city=rng.choice(_CITIES),
        store=rng.randrange(1000, 10000),
        pump=rng.randrange(1, 13),
        order=rng.randrange(10**8, 10**9),
        ref=f"{rng.getrandbits(32):08X}",
        acct=rng.randrange(10**7, 10**8),
    )
    raw = rng.lognormvariate(math.log(kind.median), kind.spread)
    amount = max(kind.step, round(raw / kind.step) * kind.step)
    incoming = credit != (rng.random() < SIDE_MISMATCH_RATE)
    return (
        str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        description,
        f"{amount:.2f}",
        when,
        merchant,
        "credit" if credit else "debit",
        "incoming" if incoming else "outgoing",
    )


def write_csv(path: str | os.PathLike[str], rows: int, seed: int) -> None:
    """Write `generate(rows, seed)` as UTF-8 CSV under a header row; replaces `path` atomically."""
    write(path, rows, seed, fmt="csv")


def write(
    path: str | os.PathLike[str],
    rows: int,
    seed: int,
    *,
    fmt: Format | None = None,
    cards: int = 0,
) -> None:
    """Write `generate(rows, seed)` in `fmt` (None: as `path`'s extension says, CSV when it says
    nothing), gzipped when `path` ends in `.gz` (CSV, JSON Lines); replaces `path` atomically.

    `cards`: as `generate`'s. Parquet holds typed columns (a decimal amount, a timestamp), which
    load as the CSV's text does.
    """
    target = Path(path)
    fmt = fmt or format_of(target.name) or "csv"
    columns = header(cards)
    transactions = generate(rows, seed, cards=cards)
    partial = target.with_name(f".{target.name}.partial")
    try:
        if fmt == "parquet":
            _write_parquet(partial, columns, transactions)
        else:
            opener = gzip.open if target.name.lower().endswith(".gz") else open
            with opener(partial, "wt", encoding="utf-8", newline="") as f:
                if fmt == "jsonl":
                    _write_jsonl(f, columns, transactions)
                else:
                    writer = csv.writer(f, lineterminator="\n")
                    writer.writerow(columns)
                    writer.writerows(transactions)
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)


def _write_jsonl(f: TextIO, header: tuple[str, ...], rows: Iterator[tuple[str, ...]]) -> None:
    """One object a line, the amount a JSON number written as the CSV has it (`12.50`)."""
    keys = [f"{json.dumps(name)}:" for name in header]
    amount = header.index("amount")
    for row in rows:
        f.write(
            "{"
            + ",".join(
                key + (text if i == amount else json.dumps(text, ensure_ascii=False))
                for i, (key, text) in enumerate(zip(keys, row, strict=True))
            )
            + "}\n"
        )


def _write_parquet(path: Path, header: tuple[str, ...], rows: Iterator[tuple[str, ...]]) -> None:
    import pyarrow as pa  # only for this format
    import pyarrow.parquet as pq

    types = {"amount": pa.decimal128(18, 2), "timestamp": pa.timestamp("s")}
    schema = pa.schema([(name, types.get(name, pa.string())) for name in header])
    with pq.ParquetWriter(path, schema) as writer:
        while chunk := list(itertools.islice(rows, 100_000)):
            columns = [pa.array(column, pa.string()) for column in zip(*chunk, strict=True)]
            writer.write_batch(
                pa.record_batch(
                    [
                        column.cast(schema.field(name).type)
                        if name != "amount"
                        else pa.array([Decimal(a) for a in column.to_pylist()], types["amount"])
                        for name, column in zip(header, columns, strict=True)
                    ],
                    schema=schema,
                )
            )
