"""Which schedules the Driver gives a learning-rate-free or schedule-free optimizer.

The optimizer is told by its class's top-level module, so this layer imports neither the
optional packages nor the tasks layer (whose ``lrkit.tasks.lrfree`` builds them and says what
their authors recommend):

- ``prodigyopt`` (Prodigy) and ``dadaptation`` (D-Adaptation): *lr-free*. Each group's lr is a
  multiplier of the step size they estimate (1.0 by default), and the schedule multiplies it
  like any other lr: ``group lr = multiplier * schedule(step)``. Their authors recommend a
  schedule on top (Prodigy: none or cosine annealing over the whole run; D-Adaptation: "the
  same learning rate scheduler you would normally use"), so every schedule is accepted.
- ``schedulefree`` (schedule-free AdamW and SGD): their authors recommend *no* schedule, the
  averaging of the iterates replaces the decay, and a warmup (the ``warmup_steps`` they take).
  So the Driver takes only a schedule that never falls: a constant, or a rise to its peak and
  a hold (``warmup(N)``, ``warmup(5%) >> constant``); anything that decays (cosine, step, a
  plateau factor, cycles...) is refused with a UserError (a ValueError) that says why. A
  momentum schedule is refused too: their beta1 (momentum) sets how the weights are moved
  between the training point and the average at every ``train()``/``eval()``, so changing it
  during the run would corrupt the weights.

>>> from lrkit.schedules import parse
>>> rising_then_held(parse("warmup(10) >> constant"), 100)
True
>>> rising_then_held(parse("cosine"), 100)
False
"""

from __future__ import annotations

from typing import Any

from ..errors import UserError
from .base import Schedule
from .plateau import Plateau

SCHEDULE_FREE = "schedulefree"
LR_FREE = ("prodigyopt", "dadaptation")
CHECKED_STEPS = 20_000  # a schedule longer than this is checked on as many points, evenly
_NAMES = {"AdamWScheduleFree": "schedule-free AdamW", "SGDScheduleFree": "schedule-free SGD"}


def kind(optimizer: Any) -> str | None:
    """``"schedule-free"``, ``"lr-free"`` or None, from the optimizer class's module."""
    top = (type(optimizer).__module__ or "").split(".")[0]
    if top == SCHEDULE_FREE:
        return "schedule-free"
    return "lr-free" if top in LR_FREE else None


def first_fall(schedule: Schedule, total_steps: int | None) -> tuple[int, float, int, float] | None:
    """Where a (resolved) schedule first falls, ``(step, value, next step, lower value)``, or
    None when it never does. Checked at every step up to its length (or the run's
    ``total_steps`` for one without a length; 10,000 steps when neither is known), on
    :data:`CHECKED_STEPS` evenly spread steps when that is more."""
    if schedule.static:
        return None
    length = schedule.length
    horizon = length if type(length) is int else (total_steps or 10_000)
    horizon = max(int(horizon), 1)
    n = min(horizon, CHECKED_STEPS)
    steps = sorted({round(i * horizon / n) for i in range(n + 1)})
    last_t, last_v = steps[0], schedule(steps[0])
    for t in steps[1:]:
        v = schedule(t)
        if v < last_v - 1e-12 * max(1.0, abs(last_v)):
            return last_t, last_v, t, v
        last_t, last_v = t, v
    return None


def rising_then_held(schedule: Schedule, total_steps: int | None = None) -> bool:
    """Whether ``schedule`` only rises and holds (never falls, no plateau factor)."""
    if any(isinstance(node, Plateau) for node in schedule.walk()):
        return False
    return first_fall(schedule.resolve(total_steps), total_steps) is None


def check_schedule(
    optimizer: Any, schedule: Schedule, momentum: Schedule | None, total_steps: int | None
) -> None:
    """The Driver's rule for a schedule-free optimizer (see the module's doc); a UserError
    that says why, else nothing. Other optimizers take any schedule."""
    if kind(optimizer) != "schedule-free":
        return
    what = _NAMES.get(type(optimizer).__name__, f"schedule-free {type(optimizer).__name__}")
    advice = (
        f"{what} needs no decaying schedule: its authors recommend none, the averaging replaces"
        " the decay; give constant, or warmup(N) / its warmup_steps"
    )
    if any(isinstance(node, Plateau) for node in schedule.walk()):
        raise UserError(f"{advice} (got {schedule!r}, whose plateau factor lowers the lr)")
    fall = first_fall(schedule, total_steps)
    if fall is not None:
        t0, v0, t1, v1 = fall
        raise UserError(
            f"{advice} (got {schedule!r}, which falls from {v0:.4g} at step {t0} to {v1:.4g}"
            f" at step {t1})"
        )
    if momentum is not None:
        raise UserError(
            f"{what} takes no momentum schedule: its beta1 moves the weights between the"
            f" training point and the average at each train()/eval(), so changing it during"
            f" the run would corrupt them (got {momentum!r}); leave momentum out"
        )


__all__ = ["kind", "first_fall", "rising_then_held", "check_schedule"]
