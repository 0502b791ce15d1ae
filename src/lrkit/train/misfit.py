"""Does a schedule fit the run? Named before training starts, as a :class:`ScheduleFitWarning`.

A finite schedule (one with a length, once resolved against the run) fits a run of ``N`` steps
when it lasts ``N`` steps, give or take one (fractions round to whole steps). Otherwise:

- it is **cut** by the run (longer than ``N``): the run ends before the schedule does, e.g.
  ``warmup(500) >> cosine(100)`` on a 230-step run ends at 46% of the peak, mid-warmup;
- it **ends before** the run (shorter than ``N``) and then holds a value below its peak for the
  rest, e.g. ``cosine(100)`` on 230 steps trains 130 steps at the floor. A schedule that ends at
  its peak (``warmup(100)`` alone: a warmup, then constant) fits any longer run.

Endless schedules (``constant``, ``step``, ``exponential``, ``plateau``...) fit every run, but
for one that is 0 at every step (``constant(0)``): the lr multiplies it, so nothing trains.

>>> from lrkit.schedules import as_schedule
>>> print(schedule_misfit(as_schedule("warmup(500) >> cosine(100)"), 230))
the schedule warmup(500) >> cosine(100) lasts 600 steps but the run has 230: the run cuts it \
at step 230, where the lr is 46% of the peak
>>> schedule_misfit(as_schedule("warmup(5%) >> cosine"), 230) is None
True
"""

from __future__ import annotations

import math

from ..schedules import Schedule

PEAK_SAMPLES = 1000  # steps sampled to find a schedule's peak


class ScheduleFitWarning(UserWarning):
    """A finite schedule that ends before the run or is cut by it (see :mod:`.misfit`)."""


def schedule_misfit(schedule: Schedule, total_steps: int) -> str | None:
    """Why ``schedule`` (resolved, in whole steps) does not fit a ``total_steps`` run, or None.

    The rule: a schedule that is 0 over the whole run never fits (nothing trains); endless
    schedules and finite ones within one step of the run fit; a longer one is cut by the run;
    a shorter one fits only when it ends at its peak value.
    """
    if never_trains(schedule, total_steps):
        return (
            f"the schedule {schedule!r} is 0 at every step of the run's {total_steps}: the lr"
            " multiplies it, so nothing will train"
        )
    length = schedule.length
    if type(length) is not int or abs(length - total_steps) <= 1:
        return None
    peak = _peak(schedule, length)
    if length > total_steps:
        end = schedule(total_steps - 1)
        return (
            f"the schedule {schedule!r} lasts {length} steps but the run has {total_steps}:"
            f" the run cuts it at step {total_steps}, where the lr is {_share(end, peak)}"
        )
    held = schedule(length)
    if held >= peak * (1 - 1e-9):
        return None
    rest = total_steps - length
    return (
        f"the schedule {schedule!r} ends at step {length} of the run's {total_steps} and"
        f" then holds its last value, {_share(held, peak)}, for {rest} steps"
        f" ({rest / total_steps:.0%} of the run)"
    )


def never_trains(schedule: Schedule, total_steps: int) -> bool:
    """True when ``schedule`` is 0 at every step of the run (sampled as :func:`_peak` does)."""
    return _peak(schedule, max(total_steps - 1, 0)) == 0


def _peak(schedule: Schedule, steps: int) -> float:
    """The highest value over steps ``0..steps``, sampled at most ``PEAK_SAMPLES + 1`` times."""
    stride = max(1, math.ceil(steps / PEAK_SAMPLES))
    return max(schedule(t) for t in [*range(0, steps, stride), steps])


def _share(value: float, peak: float) -> str:
    return f"{value / peak:.0%} of the peak" if peak > 0 else f"{value:.3g}"


__all__ = ["ScheduleFitWarning", "schedule_misfit", "never_trains"]
