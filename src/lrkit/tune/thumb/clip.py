"""``clip_study``: does gradient clipping let a model train at a higher lr? Measured.

The method:

1. **The thresholds.** By default multiples of the *median gradient norm*, measured in a short
   run at the task's lr (``NORM_STEPS`` steps, the global L2 norm of all gradients before any
   clipping): ``0.25x`` (clips nearly every step), ``1x`` (about half) and ``4x`` (only
   spikes), so they mean something on any model. A threshold may also be given as a plain
   number (an absolute norm, as ``fit(clip_grad=...)`` takes it) or ``"2x"`` (a multiple).
2. **The grid.** Ascending lrs ``GRID_STEP`` decades apart (x1.78), from the task's lr / 10 up
   to ``GRID_POINTS`` of them; or the lrs given. Every arm (no clipping, then each threshold)
   trains a full run (:func:`~lrkit.train.fit` with ``clip_grad``) at each lr in turn, all arms
   at one lr before the next, with ``seeds`` seeds (the metric is their mean; any seed's
   divergence is the run's). An arm stops climbing after two runs in a row that neither train
   nor improve on the arm's own best metric: it is past its peak (a run that fails while
   climbing fails at the end too, since the study's best can only improve).
3. **Trains.** A run *trains* when no seed diverged and its final metric is within
   ``tolerance`` (relative: 0.05 is 5% of the best's magnitude) of the best final metric of
   any run of the study. The *largest trainable lr* of an arm is the top of its first unbroken
   stretch of lrs that train (a lucky run above a failure does not count); its resolution is
   one grid step (x1.78). A metric such as accuracy can stay high while the validation loss
   explodes (the outputs blow up: digits-mlp at lr 5,000 with clipping keeps 0.9 accuracy at a
   validation loss of 1e8), so a run whose final validation loss is above the untrained
   model's (it ended worse than it started) does not train either.

The verdict compares each threshold's largest trainable lr with the one without clipping:
"clipping at 1.2 (1x the median norm 1.2) raised the largest trainable lr from 0.1 to 0.56
(x5.6)", or "did not raise it", or "lowered it".
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from ...checks import check_lr, is_number, number, shown, whole
from ...errors import UserError
from ...tasks import Task, get_task
from ...train import fit
from .clip_result import Arm, ClipStudy, blown, within
from .report import say_with

DEFAULT_SCHEDULE = "warmup(5%) >> cosine"
DEFAULT_THRESHOLDS = ("0.25x", "1x", "4x")
NORM_STEPS = 50  # steps of the short run that measures the median gradient norm
GRID_STEP = 0.25  # decades between the lrs of the default grid
GRID_POINTS = 25  # the default grid's length: the task's lr / 10 up to x10**5 of it
DEFAULT_TOLERANCE = 0.05
_MULTIPLE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?\s*x\s*$", re.I)


class _NormRecorder:
    """Records the global L2 norm of the gradients after every backward pass."""

    def __init__(self) -> None:
        self.norms: list[float] = []

    def on_after_backward(self, state: Any) -> None:
        grads = [p.grad.detach() for p in state.model.parameters() if p.grad is not None]
        if grads:
            norm = torch.linalg.vector_norm(
                torch.stack([torch.linalg.vector_norm(g) for g in grads])
            )
            self.norms.append(float(norm))


def median_grad_norm(task: Task, lr: float, schedule: str, seed: int, steps: int) -> float:
    """The median global gradient norm (before clipping) over a short run of ``steps``."""
    recorder = _NormRecorder()
    fit(task, lr, schedule, steps=steps, seed=seed, callbacks=[recorder], progress=False)
    finite = [n for n in recorder.norms if math.isfinite(n)]
    if not finite:
        raise UserError(
            f"task {task.name!r}: no finite gradient norm in {steps} steps at lr {lr:g}; the"
            " thresholds cannot be set from it: give absolute thresholds"
        )
    return float(sorted(finite)[len(finite) // 2])


def parse_thresholds(thresholds: Sequence[Any] | None) -> list[tuple[float, bool]]:
    """``(value, is_multiple)`` for each threshold: a number > 0 (an absolute norm), or text
    ``"2x"`` (a multiple of the median norm) or ``"0.5"``; a UserError naming a bad one."""
    items = list(DEFAULT_THRESHOLDS if thresholds is None else thresholds)
    if isinstance(thresholds, str | bytes):
        items = [t for t in str(thresholds).split(",") if t.strip()]
    if not items:
        raise UserError("give at least one clipping threshold, e.g. 0.25x,1x,4x or 1.0")
    out = []
    for item in items:
        if is_number(item):
            value, multiple = item, False
        elif isinstance(item, str) and _MULTIPLE.match(item):
            value, multiple = float(item.strip()[:-1]), True
        else:
            try:
                value, multiple = float(str(item).strip()), False
            except ValueError:
                raise UserError(
                    f"a clipping threshold must be a norm > 0 (1.0) or a multiple of the median"
                    f" gradient norm (2x), got {shown(item)}"
                ) from None
        try:
            parsed = (number(value, "a clipping threshold", low=0, low_open=True), multiple)
        except ValueError as e:
            raise UserError(f"{e} (or a multiple of the median norm, such as 2x)") from None
        if parsed in out:  # the same arm twice: every run of it again
            shown_value = f"{parsed[0]:g}x" if multiple else f"{parsed[0]:g}"
            raise UserError(f"clipping threshold {shown_value} is given twice: give each once")
        out.append(parsed)
    return out


def lr_grid(task: Task, lrs: Sequence[float] | None) -> list[float]:
    """The lrs to climb: those given (each a finite number > 0; sorted, without repeats), or
    ``GRID_POINTS`` of them ``GRID_STEP`` decades apart from the task's lr / 10."""
    if lrs is None:
        return [task.lr / 10 * 10 ** (GRID_STEP * i) for i in range(GRID_POINTS)]
    if isinstance(lrs, str | bytes) or not hasattr(lrs, "__iter__"):
        raise UserError(f"lrs must be a list of numbers, got {shown(lrs)}")
    checked = []
    for lr in lrs:
        try:
            checked.append(check_lr(lr, "an lr of the grid"))
        except ValueError as e:
            raise UserError(str(e)) from None
    if not checked:
        raise UserError("give at least one lr, e.g. 0.01,0.03,0.1")
    return sorted(set(checked))


def untrained_loss(task: Task, seed: int) -> float:
    """The validation loss of ``task``'s model as built with ``seed``, before any update."""
    model = task.build_model(seed)
    return task.validate(model, task.build_loaders(seed)[1])[1]


def clip_study(
    task: Task | str,
    thresholds: Sequence[float | str] | None = None,
    *,
    lrs: Sequence[float] | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    seeds: int = 1,
    epochs: int | None = None,
    schedule: str = DEFAULT_SCHEDULE,
    seed: int = 0,
    progress: bool | None | Callable[[str], Any] = None,
) -> ClipStudy:
    """The largest lr that trains without clipping and with clipping at each threshold.

    Args:
        task: a Task, a built-in name or ``package.module:function``.
        thresholds: clip norms: numbers (absolute) or ``"Nx"`` (N times the median gradient
            norm); default ``0.25x, 1x, 4x``.
        lrs: the grid to climb (default: from the task's lr / 10 up, see the module).
        tolerance: how far below the study's best final metric a run may end and still count
            as training, relative to the best's magnitude (> 0 and < 1).
        seeds: seeds per (arm, lr); the metric is their mean.
        epochs: the run length (default: the task's).
        schedule: the schedule of every run (its peak is the lr).
        seed: the first seed (runs use ``seed .. seed + seeds - 1``).
        progress: a line per run: True prints it, a function is called with it, None prints
            only when stdout is a terminal.

    Raises UserError for a bad threshold or lr of the grid, ValueError for a bad tolerance,
    seeds or epochs.

    >>> study = clip_study("wine-mlp", ["1x"], lrs=[0.01, 0.1], epochs=1, progress=False)
    >>> [arm.label.split(" (")[0] for arm in study.arms][0], len(study.verdicts)
    ('no clipping', 1)
    """
    task = get_task(task)
    say = say_with(progress)
    parsed = parse_thresholds(thresholds)
    grid = lr_grid(task, lrs)
    tolerance = number(tolerance, "tolerance", low=0, high=1, low_open=True, high_open=True)
    seeds = whole(seeds, "seeds", least=1)
    epochs = task.epochs if epochs is None else whole(epochs, "epochs", least=1)
    seed = whole(seed, "seed", least=0)
    median = None
    if any(multiple for _, multiple in parsed):
        spe = len(task.build_loaders(seed)[0])
        steps = min(NORM_STEPS, epochs * spe)
        median = median_grad_norm(task, task.lr, schedule, seed, steps)
        say(f"median gradient norm {median:.4g} ({steps} steps at the task's lr {task.lr:g})")
    arms = [Arm(None)] + [
        Arm(v * median, v) if multiple else Arm(v)
        for v, multiple in parsed  # type: ignore[operator]
    ]
    hib = task.metric.higher_is_better
    runs: list[dict[str, Any]] = []
    best = math.nan  # the best final metric of the study so far
    start_loss = untrained_loss(task, seed)  # a run that ends above it has not trained
    own = [math.nan] * len(arms)  # each arm's own best so far
    streak = [0] * len(arms)  # runs in a row that neither train nor improve on the arm's best
    alive = [True] * len(arms)
    for lr in grid:
        if not any(alive):
            break
        for i, arm in enumerate(arms):
            if not alive[i]:
                continue
            run = _run(task, lr, arm, schedule, epochs, seed, seeds)
            runs.append({"arm": i, **run})
            m = run["metric"]
            broken = run["diverged"] or blown(run.get("val_loss"), start_loss)
            improved = not broken and task.metric.better(m, own[i])
            if improved:
                own[i] = m
            if improved and task.metric.better(m, best):
                best = m
            ok = not broken and within(m, best, tolerance, hib)
            streak[i] = 0 if ok or improved else streak[i] + 1
            alive[i] = streak[i] < 2
            shown_metric = "diverged" if run["diverged"] else f"{task.metric.name} {m:.4g}"
            say(f"{arm.label}: lr {lr:.4g}: {shown_metric} ({run['seconds']:.1f} s)"
                + ("" if alive[i] else "; stops climbing"))  # fmt: skip
    return ClipStudy(
        task=task.name, schedule=str(schedule), epochs=epochs, seeds=seeds, seed=seed,
        tolerance=tolerance, metric_name=task.metric.name, higher_is_better=hib,
        median_norm=median, arms=arms, runs=runs, grid=grid, start_loss=start_loss,
    )  # fmt: skip


def _run(task: Task, lr: float, arm: Arm, schedule: str, epochs: int, seed: int,
         seeds: int) -> dict[str, Any]:  # fmt: skip
    """One (arm, lr): ``seeds`` full runs; the mean final metric, diverged if any did."""
    start = time.perf_counter()
    metrics, losses, statuses = [], [], []
    for s in range(seed, seed + seeds):
        history = fit(task, lr, schedule, epochs=epochs, seed=s, clip_grad=arm.threshold,
                      progress=False)  # fmt: skip
        statuses.append(history.status)
        final = history.final_metric
        metrics.append(math.nan if final is None else float(final))
        losses.append(float(history.epochs_log[-1]["val_loss"]) if history.epochs_log else math.nan)
    diverged = any(s != "completed" for s in statuses) or not all(map(math.isfinite, metrics))
    return {
        "lr": float(lr),
        "metric": math.nan if diverged else sum(metrics) / len(metrics),
        "metrics": metrics,
        "val_loss": sum(losses) / len(losses),
        "diverged": diverged,
        "statuses": statuses,
        "seconds": time.perf_counter() - start,
    }


__all__ = ["clip_study", "ClipStudy", "Arm", "parse_thresholds", "lr_grid", "within"]
