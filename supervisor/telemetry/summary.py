"""The run summary: what `run --summary PATH` writes and the exit lines log.

Built once, when the run is over (`RunSummary.of`), from the profiles' `ProfileStats`: their
summary entries (`ProfileStats.snapshot`), the totals over them, and what was not delivered,
which decides the exit code.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from supervisor.telemetry.stats import DELIVERY_ENTRIES, TOTALLED, ProfileStats

_SHORT: tuple[str, ...] = ("failed", "undelivered", "rejected")
"""The delivery outcomes a run's warning names, for its events and for its labels."""


@dataclass(frozen=True, slots=True, eq=False)
class Shortfall(Mapping[str, int]):
    """Messages of the run that did not reach Kafka: `failed`, `undelivered`, `rejected` and
    the same of the labels as `labels_failed`... (the fields of the `messages_not_delivered`
    warning). `in_flight` is not one of them: a message still in flight after the final flush
    is one nobody accounted for, and only makes the run `incomplete`."""

    counts: Mapping[str, int]
    in_flight: int = 0
    """Events produced and never settled (0 once the sink closed cleanly)."""
    labels_in_flight: int = 0

    @property
    def incomplete(self) -> bool:
        """Something failed, was purged, refused or left in flight: the run exits non-zero."""
        return bool(self.in_flight or self.labels_in_flight or any(self.counts.values()))

    def __getitem__(self, key: str) -> int:
        return self.counts[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.counts)

    def __len__(self) -> int:
        return len(self.counts)


@dataclass(frozen=True, slots=True)
class RunSummary:
    """The summary of a run: one entry per profile and their total (see `as_dict`)."""

    elapsed_s: float
    profiles: Mapping[str, Mapping[str, Any]]
    """Each profile's summary entry (`ProfileStats.snapshot`), by name."""
    total: Mapping[str, Any]
    """The totalled entries summed over the profiles, `labels` summed over the profiles that
    have labels (None when none has), and the run's `elapsed_s`."""
    shard: tuple[int, int] = (0, 1)
    """(index, count): which shard of a fleet running one config this process was."""

    @classmethod
    def of(
        cls,
        profiles: list[ProfileStats],
        *,
        elapsed_s: float,
        now: float,
        shard: tuple[int, int] = (0, 1),
    ) -> RunSummary:
        entries = {p.name: p.snapshot(now) for p in profiles}
        total: dict[str, Any] = {k: sum(e[k] for e in entries.values()) for k in TOTALLED}
        labels = [e["labels"] for e in entries.values() if e["labels"] is not None]
        total["labels"] = (
            {d.name: sum(entry[d.name] for entry in labels) for d in DELIVERY_ENTRIES}
            if labels
            else None
        )
        total["elapsed_s"] = round(elapsed_s, 3)
        return cls(round(elapsed_s, 3), entries, total, shard)

    def as_dict(self) -> dict[str, Any]:
        """The JSON document `run --summary PATH` writes: `elapsed_s`, `profiles`, `total`, and
        for a shard of a fleet `shard` (`{"index", "count"}`)."""
        document = {
            "elapsed_s": self.elapsed_s,
            "profiles": copy.deepcopy(dict(self.profiles)),
            "total": copy.deepcopy(dict(self.total)),
        }
        index, count = self.shard
        if count > 1:
            document["shard"] = {"index": index, "count": count}
        return document

    def profile_fields(self) -> dict[str, dict[str, Any]]:
        """Each profile's entry as flat log fields (`latency_ms_p99`, `labels_delivered`)."""
        return {name: _flat(entry) for name, entry in self.profiles.items()}

    def total_fields(self) -> dict[str, Any]:
        """The total as flat log fields."""
        return _flat(self.total)

    def shortfall(self) -> Shortfall:
        """What the run did not deliver, events and labels."""
        total = self.total
        labels: Mapping[str, int] = total["labels"] or {}
        counts = {k: total[k] for k in _SHORT}
        counts.update({f"labels_{k}": labels.get(k, 0) for k in _SHORT})
        return Shortfall(counts, total["in_flight"], labels.get("in_flight", 0))


def _flat(entry: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested summary entry as flat log fields: `latency_ms_p99`, `scenarios_velocity_events`."""
    out: dict[str, Any] = {}
    for k, v in entry.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}_"))
        else:
            out[f"{prefix}{k}"] = v
    return out
