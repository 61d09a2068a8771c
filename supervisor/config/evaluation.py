"""The `evaluation` section: scoring the detector under test from the alerts it writes."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from supervisor.config.types import Seconds, Topic


class EvaluationSettings(BaseModel):
    """Where the detector under test writes its alerts, how an alert names the transaction it
    flags, and how long an event may wait for its alert before it counts as missed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    alerts_topic: Topic
    """The detector's alerts topic, read from the run's start."""
    id_field: str = Field(default="transaction_id", min_length=1, max_length=128)
    """The top-level JSON field of an alert holding the flagged transaction's id, or `key`: the
    alert's message key is the id."""
    timeout_s: Seconds = 30.0
    """An event not alerted within this of being sent is missed; also how long the run listens
    for alerts after it stops producing (within `shutdown_timeout_s`)."""
