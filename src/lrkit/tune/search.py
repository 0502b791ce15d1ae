"""The Optuna side of a tune: its samplers and pruners (as lrkit sets them up for lr
searches), the rules that stop a study, and the line printed per finished trial.

Each piece is a plain Optuna object or callback, so the study stays a plain Optuna study.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from typing import Any

STARTUP_TRIALS = 5  # TPE/GP: random trials before the model (Optuna's 10 suits 100+ trials)
REDUCTION = 2  # successive halving and hyperband: keep the better half at each rung
FIRST_RUNG = 0.25  # the first rung: a quarter of a run (earlier ones favour high lrs)


def sampler_of(name: Any, seed: int):
    """Optuna's sampler of that name, seeded (an Optuna sampler object is used as it is).

    ``"grid"``: the space's distinct grid points (:meth:`Space.grid_params`) are queued, one
    trial each, and the study stops when they are done; Optuna's GridSampler would run the
    product of every family's params, most of them params of another family. Its sampler is
    a RandomSampler that samples nothing (every param is queued).
    """
    import optuna

    if not isinstance(name, str):
        return name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if name == "tpe":
            return optuna.samplers.TPESampler(
                seed=seed,
                n_startup_trials=STARTUP_TRIALS,
                multivariate=True,
                group=True,
                constant_liar=True,
            )
        if name == "gp":
            return optuna.samplers.GPSampler(seed=seed, n_startup_trials=STARTUP_TRIALS)
        return optuna.samplers.RandomSampler(seed=seed)


def pruner_of(name: str | None, val_every: int, run_steps: int):
    """The pruner, its rungs placed for lr searches.

    Successive halving (and each of hyperband's brackets) keeps the better half
    (``REDUCTION``) at rungs from ``FIRST_RUNG`` of a run on (a quarter, then a half: no
    rung at the end, a trial that ran in full is complete), the median pruner prunes from
    there on. Not earlier: a short horizon favours high lrs (their loss falls first, see
    BENCHMARKS.md, "LR selection"), so rungs at the first few validations prune the lower
    rates that end best, and trials at the pick's rate always survive them. Measured on the
    LR-selection tasks at a budget of 4 runs, lr only: rungs at 1/8 and 3/8 of a run
    (reduction 3) pruned every other trial on diabetes-mlp.
    """
    import optuna

    first = max(val_every, round(FIRST_RUNG * run_steps))
    if name is not None and not isinstance(name, str):
        return name  # an Optuna pruner object, as it is
    if name is None:
        return optuna.pruners.NopPruner()
    if name == "sha":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=first, reduction_factor=REDUCTION
        )
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=first, max_resource=run_steps, reduction_factor=REDUCTION
        )
    return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=first)


class Stop:
    """A callback that stops the study once its budget of optimizer steps has less left than
    one validation interval (``every``), once ``trials`` trials have diverged or failed (a
    range where nothing trains ends with a result, not a loop), or when a grid is done. The
    trial running when the budget runs out stops at its last validation within it (the
    objective reads :meth:`left`), so one worker never spends more than the budget (several
    workers on one study each see the others' finished trials only, and may overrun it by
    what their trials in flight ran)."""

    def __init__(self, study, trials, budget, run_steps, attrs, *, every=1, grid=False):
        self.study, self.trials, self.budget, self.run_steps = study, trials, budget, run_steps
        self.every, self.grid = every, grid
        self.measured = int(attrs.get("find_steps") or 0) + int(attrs.get("pick_steps") or 0)

    def spent(self) -> int:
        """Optimizer steps spent so far: measuring and every trial."""
        trials = self.study.get_trials(deepcopy=False)
        return self.measured + sum(int(t.user_attrs.get("steps") or 0) for t in trials)

    def spent_all(self) -> bool:
        """No budget left for even one validation interval of a trial."""
        left = self.left()
        return left is not None and left < min(self.every, self.run_steps)

    def left(self) -> int | None:
        """Steps the budget has left (None: no budget)."""
        if self.budget is None:
            return None
        return max(0, math.floor(self.budget * self.run_steps) - self.spent())

    def failed_all(self) -> bool:
        bad = ("diverged", "failed")
        trials = self.study.get_trials(deepcopy=False)
        failed = sum(t.user_attrs.get("status") in bad for t in trials)
        return self.trials is not None and failed >= self.trials

    def grid_done(self) -> bool:
        """A grid's points are all started (none is waiting in the queue)."""
        if not self.grid:
            return False
        from optuna.trial import TrialState

        waiting = self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        return not waiting

    def done(self) -> bool:
        return self.spent_all() or self.failed_all() or self.grid_done()

    def __call__(self, study, trial) -> None:
        if self.done():
            study.stop()


class Lines:
    """One line per finished trial (printed after fit's bar of it has closed): number,
    trials done, lr, family, metric (mean +- std), status, verdict, and why it stopped."""

    def __init__(self, task: str, trials: int | None, show: bool):
        self.task, self.trials, self.show = task, trials, show

    def __call__(self, trial, finished: int) -> None:
        if not self.show:
            return
        a = trial.user_attrs
        config = a.get("config") or {}
        value = a.get("metric_mean")
        shown = "-" if value is None else f"{value:.4g}"
        if a.get("metric_std"):
            shown += f" +- {a['metric_std']:.2g}"
        of = f"/{self.trials}" if self.trials is not None else ""
        line = (
            f"trial {trial.number} ({finished}{of} done): lr {config.get('lr', math.nan):.3g}"
            f" {config.get('family', '')}  {shown}  {a.get('status', trial.state.name.lower())}"
            f"  verdict {a.get('verdict', '-')}"
        )
        if a.get("reason"):
            line += f"; {a['reason']}"
        print(line, flush=True)  # between trials: fit's bar of the trial has closed


def opening(task: str, space: Any, attrs: dict[str, Any], run_steps: int, val_every: int) -> str:
    """The line printed before the trials: the lr range, where it came from, the warm start,
    what measuring cost and the validation cadence."""
    lo, hi = space.lr
    measured = int(attrs.get("find_steps") or 0) + int(attrs.get("pick_steps") or 0)
    source = "from the range test" if measured else "given"
    warm = attrs.get("warm_start")
    first = f"; first trial: lr {warm['lr']:.3g} from {warm['how']}" if warm else ""
    cost = f"; measuring cost {measured / run_steps:.2f} runs" if measured else ""
    return (
        f"tune {task}: lr {lo:.3g}..{hi:.3g} ({source}){first}{cost};"
        f" a run is {run_steps} steps, validated every {val_every}"
    )


@contextlib.contextmanager
def quiet_optuna():
    """Optuna's own INFO/WARNING lines off while tune prints its own (restored after)."""
    import optuna

    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(level)
