"""Scoring the detector under test: what the run sent, joined with the alerts the detector wrote.

- `ledger`: `SentLog`, what the producing path records per batch (ids and a send time): cheap,
  appended on the event loop, taken by the evaluation's own thread;
- `scoring`: `Scorer`, the join of sent events and alerts, and what it counts (recall, precision,
  time to detect), with everything kept per message expiring after the timeout;
- `alerts`: `Evaluation`, the alerts topic's reader on its own thread, its final listening window
  at stop, its periodic line and its metrics.

See docs/evaluation.md.
"""

from supervisor.evaluation.alerts import Evaluation
from supervisor.evaluation.ledger import SentLog
from supervisor.evaluation.scoring import Scorer

__all__ = ["Evaluation", "Scorer", "SentLog"]
