"""Shards: one process of a fleet of `count` that together run one config.

Every rate in a config is the whole fleet's. `Shard` is the one place that says how a shard takes
its part of it; the profile runner applies it where it makes a profile's pacer and generators:

- pacing: shard `index` of `count` keeps every `count`-th deadline of the schedule a single
  instance would follow, starting with deadline number `index` (without a rate schedule: every
  `interval_s * count`, offset by `index * interval_s`), so the shards' ticks together are the
  single instance's ticks (`Pacer`'s `stride` and `phase`);
- generators: shard `index` seeds its profile's generator from (`seed`, `index`): the shards'
  streams differ (fresh ids included) and each is reproducible alone. Shard 0 keeps `seed` itself,
  so an unsharded run (shard 0 of 1) is unchanged;
- fraud: an `every_s` scenario arrives `count` times less often on each shard (the superposition
  of `count` Poisson processes of mean gap `every_s * count` is one of mean gap `every_s`), and a
  merchant compromise, which takes over a `share` of one shard's traffic only, lasts
  `duration_s * count`: the fleet's occurrences, fraud events and labels are the single
  instance's in number. A `probability` per batch needs no change: the shards share the batches.

Where the index comes from when the config sets only `count` is `supervisor.config.loading`'s
concern (`SHARD_INDEX`, an Indexed Job's `JOB_COMPLETION_INDEX`, a StatefulSet pod's name).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from supervisor.config.streams import MerchantCompromise, Scenario
from supervisor.config.types import plain_number

_Index = Annotated[int, BeforeValidator(plain_number), Field(ge=0)]
_Count = Annotated[int, BeforeValidator(plain_number), Field(ge=1, le=10_000)]


class ShardSettings(BaseModel):
    """`shard:` in a config: which of `count` processes running this config this one is."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    index: _Index | None = None
    """0-based; when unset with `count` above 1, taken from the environment at load (env
    `SHARD_INDEX`, `JOB_COMPLETION_INDEX`, or a StatefulSet pod name's `-N` suffix)."""
    count: _Count = 1
    """Processes in the fleet. Env `SHARD_COUNT` wins."""

    @model_validator(mode="after")
    def _check_index(self) -> ShardSettings:
        if self.index is None:
            if self.count > 1:
                raise ValueError(
                    f"count is {self.count} but this process's shard index is unknown: set"
                    " shard.index or SHARD_INDEX (0 to count-1), or run it as a StatefulSet pod"
                    " (POD_NAME or HOSTNAME ending in -N) or an Indexed Job"
                    " (JOB_COMPLETION_INDEX)"
                )
        elif self.index >= self.count:
            raise ValueError(
                f"index {self.index} is out of range for count {self.count}:"
                f" shards are numbered 0 to {self.count - 1}"
            )
        return self

    @property
    def split(self) -> Shard:
        """The value object the runtime uses."""
        return Shard(self.index or 0, self.count)


@dataclass(frozen=True, slots=True)
class Shard:
    """Shard `index` of `count` (0-based); `Shard()` is a process running the whole config."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise ValueError(f"shard index {self.index} is out of range for count {self.count}")

    @property
    def alone(self) -> bool:
        """Whether this process runs the whole config (no split)."""
        return self.count == 1

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def seed(self, seed: int | None) -> int | None:
        """The seed of this shard's generator for a profile seeded `seed` (None stays None: the
        OS's entropy, different in every process anyway). Shard 0 keeps `seed`."""
        if seed is None or self.index == 0:
            return seed
        digest = hashlib.sha256(f"streaming-producer shard {self.index} of seed {seed}".encode())
        return int.from_bytes(digest.digest()[:8], "big")

    def scenario(self, scenario: Scenario) -> Scenario:
        """This shard's part of a profile's fraud `scenario` (see the module's docstring)."""
        if self.alone:
            return scenario
        update: dict[str, float] = {}
        if scenario.every_s is not None:
            update["every_s"] = scenario.every_s * self.count
        if isinstance(scenario, MerchantCompromise):
            update["duration_s"] = scenario.duration_s * self.count
        return scenario.model_copy(update=update)
