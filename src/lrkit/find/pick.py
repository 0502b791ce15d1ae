"""``pick_lr``: the peak lr for a given schedule and run length, within a budget of runs.

The budget is counted honestly in optimizer steps, as a multiple of one full training run
(``task.epochs`` x batches per epoch): the range test's steps and every short run count. The
method, in three stages:

1. **Bound the window** with one short range test (:func:`~lrkit.find.find_lr`), about
   ``RANGE_TEST_SHARE`` of the budget: ``top`` is where its loss stops improving (the lr of the
   lowest smoothed loss; on a curve the rules do not trust, the edge of divergence, see
   :func:`_top`).
2. **Successive halving** over ``CANDIDATES`` log-spaced rates ``SPACING`` decades apart, from
   ``top`` down. Each round trains every survivor from scratch with the *whole schedule compressed*
   onto a short horizon (the schedule resolved against the full run, then stretched to the
   short run's steps), scores it on the validation data, keeps the better half (ties broken by
   validation loss) and doubles the horizon for the next round.
3. **Pick** the best rate of the last round (the geometric centre of the rates tied for best,
   if several are), moved by ``HORIZON_CORRECTION`` decades to undo the measured bias of short
   runs (see BENCHMARKS.md, "LR selection").

>>> from lrkit.find import pick_lr
>>> p = pick_lr("wine-mlp", "warmup(5%) >> cosine", budget=1.5, seed=0, progress=False)
>>> p.cost <= 1.5, len(p.trials), p.window[0] <= p.lr <= p.window[1]
(True, 14, True)
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from ..runtime import torch_threads
from ..schedules import Driver, Schedule, as_schedule, stretch
from ..tasks import Task, get_task
from .isolation import refuse_distributed

RANGE_TEST_SHARE = 0.12  # of the budget, spent on the range test (at least MIN_SWEEP steps)
MIN_SWEEP, MAX_SWEEP = 20, 100  # steps of the range test
SWEEP_START, SWEEP_END = 1e-7, 10.0
CANDIDATES = 8  # rates in the first round of successive halving
SPACING = 0.375  # decades between candidates (8 of them span 2.6 decades below the top)
ROUNDS = 3  # rounds of successive halving (fewer when the budget is small); each keeps the
# better half and doubles the horizon: 8 runs of h steps, 4 of 2h, 2 of 4h
MIN_HORIZON = 4  # steps of the shortest short run
HORIZON_CORRECTION = -0.25  # decades added to the short runs' winner (they favour high lrs)


@dataclass(frozen=True)
class Trial:
    """One short run: its peak ``lr``, optimizer ``steps``, validation ``metric`` and loss."""

    lr: float
    steps: int
    metric: float
    val_loss: float
    round: int


@dataclass
class Pick:
    """What :func:`pick_lr` chose, what it tried and what it cost.

    ``lr``: the peak lr to use with ``schedule``; ``cost``: the optimizer steps spent, as a
    multiple of one full run (never more than ``budget``); ``trials``: every short run;
    ``window``: the ``(low, high)`` rates the short runs covered; ``find``: a summary of the
    range test (its chosen lr, the curve's minimum, its confidence).
    """

    lr: float
    schedule: str
    budget: float
    cost: float
    steps: int
    full_run_steps: int
    window: tuple[float, float]
    trials: list[Trial] = field(default_factory=list)
    find: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (numbers, strings, lists), ready for JSON."""
        data = asdict(self)
        data["window"] = list(self.window)
        return data

    def __repr__(self) -> str:
        return (
            f"Pick(lr={self.lr:.3g} for {self.schedule!r}; {len(self.trials)} short runs in"
            f" [{self.window[0]:.3g}, {self.window[1]:.3g}], cost {self.cost:.2f} of budget"
            f" {self.budget:g} runs)"
        )


def pick_lr(
    task: Task | str,
    schedule: Schedule | str = "warmup(5%) >> cosine",
    *,
    budget: float = 1.5,
    epochs: int | None = None,
    seed: int | None = None,
    progress: bool | None = None,
) -> Pick:
    """The peak lr for ``schedule`` over ``epochs`` of ``task``, within ``budget`` full runs.

    Args:
        task: a :class:`~lrkit.tasks.Task`, a built-in name or ``"package.module:function"``.
        schedule: the schedule the lr will be used with (its peak is 1.0, values multiply lr).
        budget: optimizer steps to spend, as a multiple of one full run (> 0).
        epochs: the run length the pick is for (default: the task's).
        seed: the seed of every short run and of the range test (default: the task's).
        progress: print one line per round (None: only when stdout is a terminal).

    Raises ValueError for a budget <= 0 or too small for a range test and one round of short
    runs (the message says the minimum), a bad schedule, or bad epochs; UserError for an
    unknown task; UserError at once inside a torch.distributed group of several processes.
    """
    refuse_distributed("pick_lr")
    task = get_task(task)
    epochs = task.epochs if epochs is None else _check_epochs(epochs)
    seed = task.seed if seed is None else seed
    spec = as_schedule(schedule, "schedule")
    steps_per_epoch = len(task.build_loaders(seed)[0])
    full = epochs * steps_per_epoch
    full_schedule = spec.resolve(total_steps=full, steps_per_epoch=steps_per_epoch)
    plan = _plan(_check_budget(budget), full)
    say = _printer(progress)

    with torch_threads(task.threads):
        find = _range_test(task, plan["sweep"], seed)
        spent = find["steps"]
        top = find["top"]
        rates = [top * 10 ** (-SPACING * i) for i in range(CANDIDATES)]
        say(f"range test: {spent} steps, top {top:.3g}; candidates {rates[-1]:.3g}..{top:.3g}")
        trials: list[Trial] = []
        alive = rates
        for r, horizon in enumerate(plan["horizons"]):
            short = stretch(full_schedule, horizon)
            scored = [_short_run(task, lr, short, horizon, seed, r) for lr in alive]
            trials += scored
            spent += horizon * len(alive)
            ranked = sorted(scored, key=_rank_key(task))
            say(f"round {r + 1}: {len(alive)} runs of {horizon} steps; best {ranked[0].lr:.3g}")
            alive = [t.lr for t in ranked[: max(1, math.ceil(len(alive) / 2))]]
    lr = _winner(ranked) * 10**HORIZON_CORRECTION
    return Pick(
        lr=float(lr),
        schedule=repr(spec),
        budget=float(budget),
        cost=spent / full,
        steps=spent,
        full_run_steps=full,
        window=(float(min(rates)), float(max(rates))),
        trials=trials,
        find=find,
    )


# -- the plan -------------------------------------------------------------------------------
def _plan(budget: float, full: int) -> dict[str, Any]:
    """Steps of the range test and the horizon of each round, within ``budget * full`` steps.

    As many rounds as the budget affords (at most ``ROUNDS``) with a first horizon of at least
    ``MIN_HORIZON`` steps.
    """
    total = math.floor(budget * full + 1e-9)
    sweep = min(MAX_SWEEP, max(MIN_SWEEP, round(RANGE_TEST_SHARE * total)))
    for rounds in range(ROUNDS, 0, -1):
        # round r runs _survivors(r) candidates for h0 * 2**r steps each
        h0 = (total - sweep) // _units(rounds)
        if h0 >= MIN_HORIZON:
            return {"sweep": sweep, "horizons": [h0 * 2**r for r in range(rounds)]}
    need = (MIN_SWEEP + MIN_HORIZON * _units(1)) / full
    raise ValueError(
        f"budget {budget:g} runs ({total} steps of a {full}-step run) is too small for a range"
        f" test and one round of short runs; the minimum is {math.ceil(need * 100) / 100:g}"
    )


def _units(rounds: int) -> int:
    return sum(_survivors(r) * 2**r for r in range(rounds))


def _survivors(r: int) -> int:
    n = CANDIDATES
    for _ in range(r):
        n = max(1, math.ceil(n / 2))
    return n


def _check_budget(budget: Any) -> float:
    if isinstance(budget, bool) or not isinstance(budget, int | float) or not budget > 0:
        raise ValueError(f"budget must be a number of runs > 0, got {budget!r}")
    if not math.isfinite(budget):
        raise ValueError(f"budget must be finite, got {budget!r}")
    return float(budget)


def _check_epochs(epochs: Any) -> int:
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a whole number >= 1, got {epochs!r}")
    return epochs


# -- the stages -----------------------------------------------------------------------------
def _range_test(task: Task, steps: int, seed: int) -> dict[str, Any]:
    """One range test, summarised; ``top``: the window's top (see :func:`_top`)."""
    from .rangetest import find_lr

    result = find_lr(
        dataclasses.replace(task, seed=seed),
        start=SWEEP_START,
        end=SWEEP_END,
        steps=steps,
        progress=False,
    )
    return {
        "steps": int(result.steps_run),
        "top": _top(result.lrs, result.losses, bool(result.confidence.ok)),
        "lr": result.lr,
        "suggestions": dict(result.suggestions),
        "confidence": result.confidence.ok,
        "reason": result.confidence.reason,
        "points": len(result.lrs),
    }


def _top(lrs: np.ndarray, losses: np.ndarray, ok: bool) -> float:
    """The window's top: where the range test's loss stops improving.

    A curve the rules trust: the lr of its lowest smoothed loss. An untrusted one (short and
    noisy sweeps often are): the last lr, before the loss first exceeds 1.5 times the curve's
    median, at which it is still at most that median: the edge of divergence, which noise in
    the flat start cannot move. Fewer than 5 points: the sweep's first lr times 100.
    """
    lrs, losses = np.asarray(lrs, dtype=float), np.asarray(losses, dtype=float)
    if len(lrs) < 5:
        return float(lrs[0] if len(lrs) else SWEEP_START) * 100
    if ok:
        return float(lrs[int(np.argmin(losses))])
    level = float(np.median(losses))
    over = np.flatnonzero(losses > level + 0.5 * abs(level))
    end = int(over[0]) if len(over) else len(losses)
    below = np.flatnonzero(losses[:end] <= level)
    return float(lrs[below[-1]] if len(below) else lrs[int(np.argmin(losses))])


def _short_run(
    task: Task, lr: float, schedule: Schedule, steps: int, seed: int, round_: int
) -> Trial:
    """Train from scratch for ``steps`` steps at peak ``lr``; score on the validation data.

    A run whose loss stops being finite ends there and scores the worst possible metric.
    """
    model = task.build_model(seed)
    optimizer = task.build_optimizer(model, lr)
    train_loader, val_loader = task.build_loaders(seed)
    driver = Driver(optimizer, schedule, total_steps=steps)
    torch.manual_seed(seed)
    model.train()
    batches = itertools.chain.from_iterable(itertools.repeat(train_loader))
    finite = True
    try:
        for _, batch in zip(range(steps), batches):
            loss = task.loss(model, batch)
            if not torch.isfinite(loss):
                finite = False
                break
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            driver.step()
    finally:
        driver.close()
    metric, val_loss = task.validate(model, val_loader) if finite else (math.nan, math.nan)
    if not (math.isfinite(metric) and math.isfinite(val_loss)):
        metric, val_loss = math.nan, math.inf
    return Trial(float(lr), steps, float(metric), float(val_loss), round_)


def _winner(ranked: list[Trial]) -> float:
    """The last round's best lr; when several tie on the best metric (a flat top, as accuracy
    on a small validation set often has), the geometric centre of the tied rates, the point
    farthest from both edges of the top. When every run diverged, the lowest rate."""
    best = ranked[0].metric
    if not math.isfinite(best):
        return min(t.lr for t in ranked)
    tied = [t.lr for t in ranked if t.metric == best]
    return float(np.exp(np.mean(np.log(tied)))) if len(tied) > 1 else ranked[0].lr


def _rank_key(task: Task):
    """Sort key: better metric first (NaN last), then lower validation loss."""
    sign = -1.0 if task.metric.higher_is_better else 1.0

    def key(t: Trial) -> tuple[float, float]:
        return (math.inf if math.isnan(t.metric) else sign * t.metric, t.val_loss)

    return key


def _printer(progress: bool | None):
    import sys

    show = sys.stdout.isatty() if progress is None else progress
    return (lambda text: print(f"pick: {text}", flush=True)) if show else (lambda text: None)
