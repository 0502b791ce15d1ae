"""Learning-rate-free and schedule-free optimizers in a tune's optimizer choice.

``optimizer={adamw, prodigy, schedulefree-adamw}`` in a space mixes three kinds, and a trial
treats each as its authors recommend (:mod:`lrkit.tasks.lrfree` cites them):

- **lr-free** (``prodigy``, ``dadapt-adam``): the trial's lr is the multiplier 1.0, not
  sampled (no ``lr`` param in its Optuna params), whatever the space's lr range. Their authors
  recommend 1.0 for every network (Prodigy's advise changing ``d_coef``, not the lr, to get a
  smaller or larger estimate), and the space's lr range, which bounds absolute rates for
  the other optimizers, means nothing as a multiplier. The schedule families apply as
  multipliers, as they recommend (D-Adaptation: your usual schedule; Prodigy: cosine or none).
- **schedule-free** (``schedulefree-adamw``, ``schedulefree-sgd``): the lr is sampled from the
  space's range (an absolute lr, as for AdamW), but only a family that never falls (a
  constant, or a warmup then a hold: what the Driver accepts for them) can train with it. A
  space where a schedule-free choice has no such family is refused when it is built (all its
  trials would be wasted: add ``constant`` or ``warmup(5%)``); otherwise a trial that draws a
  schedule-free optimizer with a decaying family is *skipped*: pruned before any step, with
  the reason in its record (``"skipped: schedulefree-adamw takes no decaying schedule ..."``),
  costing no budget. A grid never holds such a pair (nor the same lr-free point at several
  lrs).
- the others (``sgd``, ``adam``, ``adamw``, none): as before.
"""

from __future__ import annotations

from typing import Any

from ..errors import UserError
from ..schedules import parse
from ..schedules.lrfree import rising_then_held
from ..tasks import optimizer_info
from .ranges import Choice

NOMINAL_STEPS = 1000  # the run a family is checked against before the run's length is known


def lr_free(optimizer: str | None) -> bool:
    """Whether ``optimizer`` (None: the task's own) takes a multiplier as its lr."""
    return optimizer is not None and optimizer_info(optimizer).lr_free


def schedule_free(optimizer: str | None) -> bool:
    return optimizer is not None and optimizer_info(optimizer).schedule_free


def trial_lr(optimizer: str | None, lr: float) -> float:
    """The lr a trial of ``optimizer`` trains at: an lr-free one's default multiplier (1.0),
    else ``lr``."""
    return optimizer_info(optimizer).default_lr if lr_free(optimizer) else lr


def choices(dim: Any) -> tuple[Any, ...]:
    """The optimizer names a setting may take (``()`` for none: the task's own)."""
    return tuple(dim.values) if isinstance(dim, Choice) else ()


def any_lr_free(dim: Any) -> bool:
    return any(lr_free(v) for v in choices(dim))


def skip_reason(optimizer: str | None, schedule: str, total_steps: int | None) -> str | None:
    """Why a trial of ``optimizer`` with ``schedule`` (text) is skipped, or None."""
    if not schedule_free(optimizer) or holds(schedule, total_steps):
        return None
    return (
        f"skipped: {optimizer} takes no decaying schedule (its authors recommend none: the"
        f" averaging replaces the decay), and this trial drew {schedule!r}; give the space"
        " 'constant' or 'warmup(5%)' for it"
    )


def holds(schedule: str, total_steps: int | None) -> bool:
    """Whether the schedule text only rises and holds over a run of ``total_steps``."""
    return rising_then_held(parse(schedule), total_steps or NOMINAL_STEPS)


def check_space(families: tuple[Any, ...], optimizer: Any) -> None:
    """A UserError when a schedule-free choice of the space has no family it can train with
    (checked at each family's low and high ends)."""
    refused = [v for v in choices(optimizer) if schedule_free(v)]
    if not refused:
        return
    for family in families:
        for end in (0, 1):
            values = {p.name: _end(p.dim, end) for p in family.params}
            try:
                if holds(family.schedule(values), None):
                    return
            except (ValueError, KeyError, TypeError):
                continue
    names = ", ".join(f.name for f in families)
    raise UserError(
        f"optimizer {refused[0]} is in the space, but none of its schedules ({names}) is a"
        " constant or a warmup then a hold, the only ones a schedule-free optimizer takes (its"
        " authors recommend no decay): add 'constant' or 'warmup(5%)' to the schedules, or"
        f" leave {refused[0]} out"
    )


def _end(dim: Any, end: int) -> Any:
    """A range's low (0) or high (1) end; a choice's first or last value."""
    return dim.values[-end] if isinstance(dim, Choice) else dim.ends()[end]


def reference_optimizer(dim: Any) -> str | None:
    """The optimizer a tune measures its lr window with when the space varies it: the first
    choice that takes an absolute lr and any schedule, else the first that takes an absolute
    lr, else the first."""
    values = choices(dim)
    for ok in (
        lambda v: not lr_free(v) and not schedule_free(v),
        lambda v: not lr_free(v),
        lambda v: True,
    ):
        for v in values:
            if ok(v):
                return v
    return None


__all__ = ["lr_free", "trial_lr", "skip_reason", "check_space", "reference_optimizer"]
