"""The objective of a tune: one trial is one call of :func:`~lrkit.train.fit` per split.

A trial samples a :class:`~lrkit.tune.config.Config` from the space and trains it on every
*split*: each fold of a k-fold split of the task's training data (``cv=k``; the whole task
when ``cv`` is None) times each seed ``seed .. seed + seeds - 1``. Every split is one call of
``fit`` with the run's epochs, a validation every ``val_every`` steps and, on the **first
split only**, a report hook: each validation's metric goes to ``trial.report(metric, step)``,
and when the pruner says so the hook asks fit to stop and the trial is pruned
(``optuna.TrialPruned``). The other splits run in full once the first has passed. On every
split the hook also stops the run once the tune's budget is spent (``budget_left``): the trial
is then pruned too, its reason saying so. A pruned trial's ``metric_mean`` is its last report.
A trial that pairs a schedule-free optimizer with a decaying schedule is skipped: pruned
before any step, its reason saying why (:mod:`lrkit.tune.lrfree`).
The trial's value is the mean of the splits' final metrics (``metric_mean``); their standard deviation
(``metric_std``, numpy's population std, as scikit-learn's ``cv_results_``) is recorded.

A split whose loss goes non-finite (fit's status ``"diverged"``: fit stops at the next loss
read-back) ends the trial at once: it is recorded with ``status="diverged"`` and the step and
loss in ``reason``, and returns NaN, which Optuna records as a failed trial (state FAIL), so
the sampler learns nothing from it and the pruners never compare against it. A split that
raises (or is interrupted) is recorded as ``"failed"`` and the error raised on.

Every trial records, in its ``user_attrs`` (see the trial-record schema in the tune package):
``config``, ``status``, ``reason``, ``metric_mean``, ``metric_std``, ``splits``, ``steps``
(optimizer steps of all its splits, pruned ones by the steps they ran) and the doctor's verdict
on the first split (``verdict``, ``verdict_confidence``, ``advice``; ``"none"`` when the run
was too short to read).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..tasks import Task
from ..train import History, ScheduleFitWarning, fit
from ..watch import diagnose
from . import lrfree
from .config import Config

REPORTS = 8  # validations (pruner reports) per run: the default cadence is run / REPORTS steps

COMPLETED, PRUNED, DIVERGED, FAILED = "completed", "pruned", "diverged", "failed"
BUDGET_SPENT = "the tune's budget is spent"


@dataclass(frozen=True)
class Split:
    """One training run of a trial: ``task`` (the whole task or fold ``fold``) with ``seed``."""

    task: Task
    fold: int | None
    seed: int


def val_cadence(steps_per_run: int, reports: int = REPORTS) -> int:
    """Steps between validations so a run of ``steps_per_run`` steps reports ``reports`` times
    (at least every step): ``max(1, round(steps_per_run / reports))``."""
    return max(1, round(steps_per_run / reports))


class Objective:
    """``objective(trial) -> metric_mean``: a trial as calls of fit (see the module's doc)."""

    def __init__(
        self,
        space: Any,
        splits: list[Split],
        *,
        epochs: int,
        val_every: int,
        progress: bool | None = False,
        budget_left: Callable[[], int | None] = lambda: None,
    ):
        if not splits:
            raise ValueError("a tune needs at least one split")
        self.space, self.splits = space, splits
        self.epochs, self.val_every, self.progress = epochs, val_every, progress
        self.budget_left = budget_left

    def __call__(self, trial: Any) -> float:
        import optuna

        config = self.space.suggest(trial)
        trial.set_user_attr("config", config.to_dict())
        record = _Record(trial)
        skipped = None
        if lrfree.schedule_free(config.optimizer):  # only a constant or a warmup trains it
            first = self.splits[0]
            total = self._run_steps(_variant(first.task, config), first.seed)
            skipped = lrfree.skip_reason(config.optimizer, config.schedule, total)
        if skipped is not None:  # a schedule-free optimizer drew a decaying schedule
            record.close(PRUNED, skipped)
            raise optuna.TrialPruned(skipped)
        left = self.budget_left()
        for i, split in enumerate(self.splits):
            task = _variant(split.task, config)
            total = self._run_steps(task, split.seed)
            limit = None if left is None else left - record.steps
            if limit is not None and limit < min(self.val_every, total):  # no step would count
                why = f"stopped before split {i + 1} of {len(self.splits)}: {BUDGET_SPENT}"
                record.close(PRUNED, why)
                raise optuna.TrialPruned(why)
            hook = _Hook(trial if i == 0 else None, total, limit, self.val_every)
            try:
                history = self._fit(task, config, split.seed, hook)
            except BaseException as e:  # recorded, then raised: a bug or Ctrl-C is not a result
                if i == 0:
                    record.doctor(None)
                record.add(split, None, FAILED)
                why = (
                    "interrupted"
                    if isinstance(e, KeyboardInterrupt)
                    else f"{type(e).__name__}: {e}"
                )
                record.close(FAILED, why)
                raise
            if i == 0:
                record.doctor(history)
            if history.status == "diverged":
                record.add(split, history, DIVERGED)
                record.close(DIVERGED, _diverged_reason(history, split))
                return math.nan
            if hook.stopped:
                record.add(split, history, PRUNED)
                record.close(PRUNED, hook.reason(), metric=hook.last)
                raise optuna.TrialPruned(hook.reason())
            record.add(split, history, COMPLETED)
        return record.close(COMPLETED, "")

    def _run_steps(self, task: Task, seed: int) -> int:
        return self.epochs * len(task.build_loaders(seed)[0])

    def _fit(self, task: Task, config: Config, seed: int, hook: Any) -> History:
        with warnings.catch_warnings():
            # a misfit (a finite schedule shorter than the run) is named once, by tune
            warnings.simplefilter("ignore", ScheduleFitWarning)
            return fit(
                task,
                lr=config.lr,
                schedule=config.schedule,
                epochs=self.epochs,
                val_every=self.val_every,
                report=hook,
                seed=seed,
                progress=self.progress,
            )


class _Hook:
    """fit's report hook. On the first split (``trial`` given) it reports each validation to
    the trial and asks fit to stop when the pruner prunes, never at the run's last step (that
    trial is complete). On every split it stops the run at the last validation before the
    ``limit`` of steps the tune's budget has left (None: no limit), so the budget is kept."""

    def __init__(self, trial: Any, total: int, limit: int | None, every: int):
        self.trial, self.total, self.limit, self.every = trial, total, limit, every
        self.stopped = False
        self.why = ""
        self.step = 0
        self.last: float | None = None

    def __call__(self, step: int, metric: float, val_loss: float) -> bool:
        self.step, self.last = step, float(metric)
        if self.trial is not None:
            self.trial.report(float(metric), step)
            if step < self.total and self.trial.should_prune():
                self.stopped, self.why = True, "pruned"
        if not self.stopped and self.limit is not None and step < self.total:
            if min(step + self.every, self.total) > self.limit:  # the next validation: over
                self.stopped, self.why = True, "budget"
        return self.stopped

    def reason(self) -> str:
        if self.why == "budget":
            return f"stopped at step {self.step}: {BUDGET_SPENT}"
        return f"pruned at step {self.step} (metric {self.last:.4g})"


class _Record:
    """Builds a trial's user_attrs as the splits finish."""

    def __init__(self, trial: Any):
        self.trial = trial
        self.splits: list[dict[str, Any]] = []
        self.steps = 0

    def add(self, split: Split, history: History | None, status: str) -> None:
        steps = 0 if history is None else history.steps
        self.steps += steps
        metric = val_loss = None
        if history is not None and history.epochs_log:
            metric = _finite(history.final_metric)
            val_loss = _finite(history.epochs_log[-1]["val_loss"])
        self.splits.append(
            {
                "fold": split.fold,
                "seed": split.seed,
                "metric": metric,
                "val_loss": val_loss,
                "status": status,
                "steps": steps,
            }
        )

    def doctor(self, history: History | None) -> None:
        """The doctor's primary finding on the run (``"none"``: no run, or too short to read)."""
        try:
            if history is None:
                raise ValueError("no run")
            d = diagnose(history)
        except ValueError:
            verdict, confidence, advice = "none", 0.0, ""
        else:
            verdict, confidence, advice = d.verdict, float(d.confidence), d.primary.advice
        self.trial.set_user_attr("verdict", verdict)
        self.trial.set_user_attr("verdict_confidence", round(confidence, 3))
        self.trial.set_user_attr("advice", advice)

    def close(self, status: str, reason: str, metric: float | None = None) -> float:
        """Write the trial's record; the mean metric over the splits (``metric`` when the
        trial ended early: a pruned trial's last reported value)."""
        done = [s["metric"] for s in self.splits if s["status"] == COMPLETED]
        if status == COMPLETED:
            values = [math.nan if m is None else m for m in done]
            mean, std = float(np.mean(values)), float(np.std(values))
            if not math.isfinite(mean):
                status, reason = FAILED, "a split's validation metric was not finite"
        else:
            mean, std = (_finite(metric) if metric is not None else None), None
        attrs = {
            "status": status,
            "reason": reason,
            "metric_mean": _finite(mean),
            "metric_std": _finite(std),
            "splits": self.splits,
            "steps": self.steps,
        }
        for key, value in attrs.items():
            self.trial.set_user_attr(key, value)
        return mean if mean is not None else math.nan


def _variant(task: Task, config: Config) -> Task:
    """The task with the config's optimizer, weight decay and batch size (None: the task's)."""
    return task.variant(
        optimizer=config.optimizer, weight_decay=config.weight_decay, batch_size=config.batch_size
    )


def _diverged_reason(history: History, split: Split) -> str:
    """``"loss nan at step 57"`` (and the split, when there are folds or seeds)."""
    where = ""
    if split.fold is not None:
        where = f" (fold {split.fold}, seed {split.seed})"
    for step, loss in zip(history.step, history.loss):
        if not math.isfinite(loss):
            return f"loss {loss} at step {step}{where}"
    return f"{history.reason}{where}"


def _finite(x: float | None) -> float | None:
    """JSON-able: a non-finite number (or None) becomes None."""
    return float(x) if x is not None and math.isfinite(x) else None
