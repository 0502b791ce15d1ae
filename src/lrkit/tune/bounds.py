"""Where a tune searches the lr, and its first trial: a range test and ``pick_lr`` first.

A generic search over a wide lr range wastes trials at rates that diverge or barely train. A
tune instead measures first:

- **with a warm start** (the default), :func:`~lrkit.find.pick_lr` (a range test, then short
  runs in successive halving) picks a rate for the space's first schedule, with a budget of
  ``PICK_BUDGET`` runs, or ``PICK_SHARE`` of the tune's budget if less (1.5 of 4), and at
  least pick_lr's minimum (:func:`pick_minimum`; no pick when that is over half the tune's
  budget); that rate is the first trial, and, when the space has no lr
  range, the range is ``PICK_BELOW`` decades below the pick to ``PICK_ABOVE`` decades above
  it (1.5 and 0.5), capped at the range test's top (where its loss stops improving). Short
  runs favour high rates (see BENCHMARKS.md, "LR selection"): the full runs' optimum lay 0 to
  1.5 decades below the short runs' winner (pick_lr's rate is that winner moved 0.25 decade
  down), level with it at most, hence the range reaches further down than up. A range
  capped at the top holds no rate at which the range test's loss was already rising. Measured
  on five of the LR-selection tasks (lr only, budget 4 runs, seeds 0-4): 1.5/0.5 decades gave
  a mean regret of 0.026; 1.0/0.5 decades 0.057 (worse on diabetes-mlp and breast-cancer-sgd).
- **without** (``warm_start=False``, or the grid sampler, which tries its own points), a range
  test alone (:func:`~lrkit.find.find_lr`, ``FIND_STEPS`` steps at most, and at most one
  run's, at least ``MIN_SWEEP``) bounds it: from its
  top ``FIND_BELOW_TOP`` decades down to ``FIND_SPAN`` decades below that.

Both cost optimizer steps, recorded as ``find_steps`` (the range test) and ``pick_steps`` (the
short runs), and counted in a tune's budget.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import UserError
from ..find.pick import CANDIDATES, MIN_HORIZON, MIN_SWEEP
from ..tasks import Task
from ..train import ScheduleFitWarning

PICK_BELOW, PICK_ABOVE = 1.5, 0.5  # decades of the lr range below and above pick_lr's rate
PICK_BUDGET = 1.5  # pick_lr's budget in full runs (pick_lr's default)...
PICK_SHARE = 0.375  # ...or this share of a tune's budget, if less (1.5 of 4 runs)
FIND_STEPS = 100  # the range test alone: at most this many steps, and at most one run's
FIND_BELOW_TOP, FIND_SPAN = 0.25, 2.5


@dataclass(frozen=True)
class Bounds:
    """What the measurements found: the lr range (None: the space's own is kept), the warm
    start ``{"lr", "how"}`` (None: none), and the steps they cost."""

    lr: tuple[float, float] | None
    warm_start: dict[str, Any] | None
    find_steps: int
    pick_steps: int


def measure(
    task: Task,
    schedule: str,
    lr_range: tuple[float, float] | None,
    *,
    pick: bool,
    budget: float | None,
    epochs: int,
    seed: int,
    progress: bool | None,
) -> Bounds:
    """Run the range test (and ``pick_lr`` when ``pick``) on ``task`` with ``schedule``; the
    lr range to search when ``lr_range`` is None, and the warm start."""
    run_steps = epochs * len(task.build_loaders(seed)[0])
    pick_budget = PICK_BUDGET if budget is None else min(PICK_BUDGET, PICK_SHARE * budget)
    pick_budget = max(pick_budget, pick_minimum(run_steps))  # a short run: pick's minimum
    if pick and budget is not None and pick_budget > budget / 2:
        pick = False  # a budget too small to afford a pick still affords a range test
    if pick:
        return _from_pick(task, schedule, lr_range, pick_budget, epochs, seed, progress)
    if lr_range is not None:
        return Bounds(None, None, 0, 0)
    return _from_range_test(task, seed, min(FIND_STEPS, max(MIN_SWEEP, run_steps)), progress)


def pick_minimum(run_steps: int) -> float:
    """pick_lr's smallest budget in runs of ``run_steps`` steps (a range test of
    ``MIN_SWEEP`` steps and one round of ``CANDIDATES`` short runs of ``MIN_HORIZON``)."""
    return math.ceil((MIN_SWEEP + MIN_HORIZON * CANDIDATES) / run_steps * 1000) / 1000


def _from_pick(task, schedule, lr_range, budget, epochs, seed, progress) -> Bounds:
    from ..find import pick_lr

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ScheduleFitWarning)
        try:
            p = pick_lr(task, schedule, budget=budget, epochs=epochs, seed=seed, progress=progress)
        except UserError:
            raise
        except ValueError:  # a budget too small for pick's short runs: a range test alone
            if lr_range is not None:
                return Bounds(None, None, 0, 0)
            run_steps = epochs * len(task.build_loaders(seed)[0])
            return _from_range_test(
                task, seed, min(FIND_STEPS, max(MIN_SWEEP, run_steps)), progress
            )
    find_steps = int(p.find.get("steps", 0))
    top = float(p.find.get("top", p.window[1]))
    found = None
    if lr_range is None:
        hi = min(top, p.lr * 10**PICK_ABOVE)
        found = (min(p.lr * 10**-PICK_BELOW, hi), hi)
    lo, hi = lr_range if lr_range is not None else found
    warm = {"lr": float(min(max(p.lr, lo), hi)), "how": f"pick_lr (budget {budget:g} runs)"}
    return Bounds(found, warm, find_steps, int(p.steps) - find_steps)


def _from_range_test(task: Task, seed: int, steps: int, progress: bool | None) -> Bounds:
    import dataclasses

    from ..find import find_lr

    result = find_lr(dataclasses.replace(task, seed=seed), steps=steps, progress=progress)
    lrs, losses = np.asarray(result.lrs, dtype=float), np.asarray(result.losses, dtype=float)
    ok = np.isfinite(losses)
    if not ok.any():
        raise UserError(
            f"the range test on task {task.name!r} found no finite loss: no lr range can be"
            " bounded; give the space an lr range"
        )
    top = float(lrs[ok][int(np.argmin(losses[ok]))])
    hi = top * 10**-FIND_BELOW_TOP
    return Bounds((hi * 10**-FIND_SPAN, hi), None, int(result.steps_run), 0)
