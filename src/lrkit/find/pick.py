"""``pick_lr``: the peak lr for a given schedule and run length, within a budget of runs.

The budget is counted honestly in optimizer steps, as a multiple of one full training run
(``task.epochs`` x batches per epoch): the range test's steps and every short run count. The
method, in three stages:

1. **Bound the window** with one short range test (:func:`~lrkit.find.find_lr`), about
   ``RANGE_TEST_SHARE`` of the budget: ``top`` is where its loss stops improving (the lr of the
   lowest smoothed loss; on a curve the rules do not trust, the edge of divergence, see
   :func:`_top`).
2. **Successive halving** over ``CANDIDATES`` log-spaced rates ``SPACING`` decades apart, from
   ``top`` down. Each round trains every survivor from scratch, with
   :func:`~lrkit.train.fit` and a step budget, on the *whole run compressed* onto a short
   horizon (the schedule resolved against the full run, then replayed ``full / horizon`` times
   faster, see :class:`Compressed`: endless schedules such as ``constant`` or ``step(100, 0.5)``
   included), scores it on the validation data, keeps the better half (ties broken by
   validation loss) and doubles the horizon for the next round.
3. **Pick** the best rate of the last round (the geometric centre of the rates tied for best,
   if several are), moved by ``HORIZON_CORRECTION`` decades to undo the measured bias of short
   runs (see BENCHMARKS.md, "LR selection"). :meth:`Pick.explain` says all this for one pick.

A finite schedule that does not fit the full run is named first, as a
:class:`~lrkit.train.ScheduleFitWarning`.

Under torchrun (a torch.distributed group of several processes) call it on every rank: the
full run is the one ``fit`` trains there (each rank an epoch of its shard of the training
data), the range test sweeps as ``fit`` trains (a DistributedDataParallel model, each rank
its shard) and records the same curve on every rank (:func:`~lrkit.find.find_lr` averages
each step's loss over the ranks), and each short run is a distributed ``fit``, whose
metric and validation loss are averaged over the ranks. Rank 0's range-test summary and each
round's scores are broadcast (:func:`lrkit.dist.broadcast`), so every rank holds the same
candidates, keeps the same survivors and returns the same :class:`Pick`, bit for bit; only
rank 0 prints progress. Every rank must give the same task, schedule, budget, epochs and
seed (they decide the plan, and so the collectives): before anything else, the ranks compare
them (:func:`lrkit.dist.same_settings`), and where one differs every rank raises the same
:class:`~lrkit.errors.UserError` naming it and each rank's value.

>>> from lrkit.find import pick_lr
>>> p = pick_lr("wine-mlp", "warmup(5%) >> cosine", budget=1.5, seed=0, progress=False)
>>> p.cost <= 1.5, len(p.trials), p.window[0] <= p.lr <= p.window[1]
(True, 14, True)
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import dist
from ..checks import number, whole
from ..errors import UserError
from ..progress import progress as progress_bar
from ..progress import wanted
from ..runtime import torch_threads
from ..schedules import Run, Schedule, as_schedule
from ..tasks import Task, get_task
from ..train import fit, ranks
from ..train.misfit import ScheduleFitWarning, never_trains, schedule_misfit
from .pick_result import Pick, Trial, rank_key

RANGE_TEST_SHARE = 0.12  # of the budget, spent on the range test (at least MIN_SWEEP steps)
MIN_SWEEP, MAX_SWEEP = 20, 100  # steps of the range test
SWEEP_START, SWEEP_END = 1e-7, 10.0
CANDIDATES = 8  # rates in the first round of successive halving
SPACING = 0.375  # decades between candidates (8 of them span 2.6 decades below the top)
ROUNDS = 3  # rounds of successive halving (fewer when the budget is small); each keeps the
# better half and doubles the horizon: 8 runs of h steps, 4 of 2h, 2 of 4h
MIN_HORIZON = 4  # steps of the shortest short run
HORIZON_CORRECTION = -0.25  # decades added to the short runs' winner (they favour high lrs)


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
    unknown task. Under torchrun, call it on every rank (see the module doc): every rank
    returns the same Pick; a train loader ``fit`` cannot shard is a UserError before any
    training, and a rank that dies or hangs makes the others raise UserError.
    """
    given = dict(schedule=schedule, budget=budget, epochs=epochs, seed=seed)
    name = (
        f"{task.name} (seed {task.seed}, {task.epochs} epochs)" if isinstance(task, Task) else task
    )
    dist.same_settings("pick_lr", {"task": name, **given})  # before one rank alone refuses any
    task = get_task(task)
    epochs = task.epochs if epochs is None else whole(epochs, "epochs", least=1)
    seed = task.seed if seed is None else seed
    spec = as_schedule(schedule, "schedule")
    steps_per_epoch = _steps_per_epoch(task, seed)
    full = epochs * steps_per_epoch
    full_schedule = spec.resolve(total_steps=full, steps_per_epoch=steps_per_epoch)
    full_schedule(0)  # a schedule that cannot be evaluated fails here, before any training
    misfit = schedule_misfit(full_schedule, full)
    if never_trains(full_schedule, full):  # every rate would score the same: none can be picked
        raise UserError(f"no lr can be picked: {misfit}")
    if misfit is not None:
        warnings.warn(misfit, ScheduleFitWarning, stacklevel=2)
    plan = _plan(number(budget, "budget", low=0, low_open=True), full)
    rank = rank_key(task.metric.higher_is_better)
    total = plan["sweep"] + sum(h * _alive(r) for r, h in enumerate(plan["horizons"]))
    show = wanted(progress) and dist.is_main()  # one bar and one note per round, on rank 0
    reporter = progress_bar(f"pick lr {task.name}", total, show=show)

    with torch_threads(task.threads), dist.failures("pick_lr"), reporter as bar:
        find = dist.broadcast(_range_test(task, plan["sweep"], seed))  # one window for all
        spent = find["steps"]
        top = find["top"]
        rates = [top * 10 ** (-SPACING * i) for i in range(CANDIDATES)]
        bar.advance(plan["sweep"])  # a sweep that stopped early has still had its turn
        bar.note(
            f"pick: range test: {spent} steps, top {top:.3g}; candidates {rates[-1]:.3g}..{top:.3g}"
        )
        trials: list[Trial] = []
        alive = rates
        for r, horizon in enumerate(plan["horizons"]):
            short = Compressed(full_schedule, full, horizon)
            scored = []
            for lr in alive:
                scored.append(_short_run(task, lr, short, horizon, seed, r))
                bar.advance(horizon)
            scored = dist.broadcast(scored)  # fit's scores agree already; this makes it certain
            trials += scored
            spent += horizon * len(alive)
            ranked = sorted(scored, key=rank)
            if all(math.isnan(t.metric) for t in scored):
                raise UserError(_all_diverged(scored, full_schedule, full))
            bar.note(
                f"pick: round {r + 1}: {len(alive)} runs of {horizon} steps; best {ranked[0].lr:.3g}"
            )
            alive = [t.lr for t in ranked[: max(1, math.ceil(len(alive) / 2))]]
    winner, tied = _winner(ranked)
    return Pick(
        lr=float(winner * 10**HORIZON_CORRECTION),
        schedule=repr(spec),
        budget=float(budget),
        cost=spent / full,
        steps=spent,
        full_run_steps=full,
        window=(float(min(rates)), float(max(rates))),
        trials=trials,
        find=find,
        candidates=[float(x) for x in rates],
        winner=float(winner),
        tied=tied,
        correction=HORIZON_CORRECTION,
        metric_name=task.metric.name,
        higher_is_better=task.metric.higher_is_better,
    )


def _steps_per_epoch(task: Task, seed: int) -> int:
    """The updates in one epoch of ``fit`` on ``task``: under torchrun, of one rank's shard."""
    return len(ranks.this_rank(task.build_loaders(seed)[0], seed))


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


# -- the stages -----------------------------------------------------------------------------
def _range_test(task: Task, steps: int, seed: int) -> dict[str, Any]:
    """One range test, summarised; ``top``: the window's top (see :func:`_top`).

    Under torchrun it sweeps as ``fit`` trains there (``find_lr`` of a task does,
    :func:`lrkit.train.ranks.as_fit_trains`): the model in DistributedDataParallel, each rank
    its shard of the training data, so each update's batch is the global one."""
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


@dataclass(frozen=True, repr=False)
class Compressed(Schedule):
    """A schedule resolved for a ``run`` of N steps, replayed in ``steps`` instead.

    formula: schedule(t * run / steps)

    Unlike ``stretch``, which rescales a *finite* schedule's own length, this rescales the run:
    an endless schedule (``constant``, ``step(100, 0.5)``, ``exponential``) is compressed as
    well as a finite one, and a finite one that the run cuts keeps only the part the run sees.
    """

    name = "compressed"
    schedule: Schedule = field(default_factory=lambda: as_schedule(1.0))
    run: int = 1
    steps: int = 1

    def _resolve(self, run: Run, rest: int | None) -> Schedule:
        return self  # resolved already, against the full run

    @property
    def length(self) -> int | None:
        inner = self.schedule.length
        return math.ceil(inner * self.steps / self.run) if type(inner) is int else None

    def __call__(self, t: float) -> float:
        return self.schedule(t * self.run / self.steps)

    def bounds(self) -> tuple[float, float]:
        return self.schedule.bounds()

    def __repr__(self) -> str:
        return f"compressed({self.schedule!r}, {self.run} -> {self.steps} steps)"


def _short_run(
    task: Task, lr: float, schedule: Schedule, steps: int, seed: int, round_: int
) -> Trial:
    """Train from scratch for ``steps`` steps at peak ``lr`` with :func:`~lrkit.train.fit`;
    score the final weights on the validation data.

    A run whose loss stops being finite scores the worst possible metric.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ScheduleFitWarning)  # named once, for the full run
        history = fit(task, lr, schedule, steps=steps, val_every=steps, seed=seed, progress=False)
    if history.status != "completed" or not history.epochs_log:
        metric, val_loss = math.nan, math.inf
    else:
        metric, val_loss = history.final_metric, history.epochs_log[-1]["val_loss"]
    if not (math.isfinite(metric) and math.isfinite(val_loss)):
        metric, val_loss = math.nan, math.inf
    return Trial(float(lr), steps, float(metric), float(val_loss), round_)


def _winner(ranked: list[Trial]) -> tuple[float, list[float]]:
    """The last round's best lr and the rates tied with it on the best metric.

    When several tie (a flat top, as accuracy on a small validation set often has), the
    winner is the geometric centre of the tied rates, the point farthest from both edges of
    the top. When every run diverged, the lowest rate (and no ties)."""
    best = ranked[0].metric
    if not math.isfinite(best):
        return min(t.lr for t in ranked), []
    tied = [t.lr for t in ranked if t.metric == best]
    if len(tied) > 1:
        return float(np.exp(np.mean(np.log(tied)))), [float(x) for x in tied]
    return ranked[0].lr, [float(ranked[0].lr)]


def _all_diverged(scored: list[Trial], schedule: Schedule, full: int) -> str:
    """Why no rate can be picked when every short run of a round diverged."""
    low = min(t.lr for t in scored)
    peak = max(schedule(t) for t in range(0, full, max(1, full // 200)))
    hint = (
        f" the schedule's values reach {peak:.3g} and multiply the lr: give one whose peak is"
        " about 1"
        if peak > 10
        else " the model trains at none of them: check the task's data and loss"
    )
    return (
        f"every short run diverged, down to lr {low:.3g} (the range test's window);"
        f" no rate can be picked:{hint}"
    )


def _alive(round_index: int) -> int:
    """How many candidates run in a round of successive halving (the better half go on)."""
    alive = CANDIDATES
    for _ in range(round_index):
        alive = max(1, math.ceil(alive / 2))
    return alive
