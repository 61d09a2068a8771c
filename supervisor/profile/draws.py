"""A shaped stream's tick, message by message: the random draws that make a message late, held
back (out of order) or duplicated, and the delay of a fraud event's label (`draw`), taken in the
order the stream has always taken them so that seeded sequences never move; and what those draws
do to the batch (`release`): which messages go now, in which order, and which are scheduled.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Collection, Iterable
from typing import NamedTuple

from supervisor.config import ProfileSettings
from supervisor.profile.outgoing import DUPLICATE, REORDERED, Outgoing


class Draws(NamedTuple):
    """A tick's random draws, by position in its batch (`draw`)."""

    late: dict[int, float]
    """How much older the event time of each late event is."""
    label_delay: dict[int, float]
    """The label delay of each fraud event, when the labels have a jitter."""
    held_until: dict[int, float]
    """The run time each held-back (out of order) event is sent at."""
    copied_at: dict[int, float]
    """The run time the copy of each duplicated event is sent at."""


def draw(
    settings: ProfileSettings, rng: random.Random, at_s: float, n: int, replaced: Collection[int]
) -> Draws:
    """A tick's random draws, message by message in the order the stream has always taken
    them: late (and by how much), the label's jitter of a fraud event, out of order (and
    until when), duplicated (and when)."""
    late, held, copies = settings.late, settings.out_of_order, settings.duplicates
    labels = settings.labels
    jitter = labels is not None and labels.jitter_s > 0 and replaced
    draws = Draws({}, {}, {}, {})
    if late is None and held is None and copies is None and not jitter:
        return draws
    draw, uniform = rng.random, rng.uniform
    late_by, label_delay, held_until, copied_at = draws
    # Once per message: locals only (a setting's attribute is a dictionary lookup).
    late_p, late_s = (late.fraction, late.max_delay_s) if late is not None else (0.0, 0.0)
    held_p, held_s = (held.fraction, held.max_delay_s) if held is not None else (0.0, 0.0)
    copy_p, copy_s = (copies.fraction, copies.max_delay_s) if copies is not None else (0.0, 0.0)
    lates, helds, copied = late is not None, held is not None, copies is not None
    for j in range(n):
        if lates and draw() < late_p:
            late_by[j] = uniform(0.0, late_s)
        if jitter and j in replaced:
            assert labels is not None
            label_delay[j] = labels.delay_s + uniform(0.0, labels.jitter_s)
        send_at = at_s
        if helds and draw() < held_p:
            send_at += uniform(0.0, held_s)
            held_until[j] = send_at
        if copied and draw() < copy_p:
            if copy_s > 0:
                send_at += uniform(0.0, copy_s)
            copied_at[j] = send_at
    return draws


def release(
    at_s: float,
    built: list[Outgoing],
    draws: Draws,
    fraud: Iterable[int],
    schedule: Callable[[float, Outgoing], None],
) -> tuple[list[Outgoing], list[int]]:
    """The tick's messages to send now (`built` but the held-back ones, with the immediate
    copies after their originals), the held-back ones and the delayed copies `schedule`d; and
    the positions, in the messages to send now, of those late, duplicated or fraud."""
    special: list[int] = []
    marked = {*draws.late, *draws.held_until, *draws.copied_at, *fraud}
    if not marked:
        return built, special
    out: list[Outgoing] = []
    previous = 0
    for j in sorted(marked):
        out += built[previous:j]
        previous = j + 1
        message = built[j]
        tally = message.tally
        held_until = draws.held_until.get(j)
        if held_until is not None:
            schedule(held_until, message._replace(tally=(*tally, REORDERED)))
        else:
            if tally or message.scenario is not None:
                special.append(len(out))
            out.append(message)
        copied_at = draws.copied_at.get(j)
        if copied_at is not None:
            # The upstream's retry: always after the original (scheduled later, or at the
            # same time and so released after it).
            copy = message._replace(tally=(DUPLICATE,), scenario=None, label=None)
            if copied_at == at_s:
                special.append(len(out))
                out.append(copy)
            else:
                schedule(copied_at, copy)
    out += built[previous:]
    return out, special
