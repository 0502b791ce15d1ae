"""``tune``: which lr and schedule are best on this task, measured, with Optuna.

>>> import lrkit
>>> result = lrkit.tune("wine-mlp", trials=3, epochs=2, progress=False, out=None)  # doctest: +SKIP

The steps of a tune:

1. **Bound and warm-start** (:mod:`lrkit.tune.bounds`): when the space has no lr range, a
   range test (and ``pick_lr``) sets it; ``pick_lr``'s rate is the first trial.
2. **Search**: Optuna's sampler proposes configurations; each trial trains them with
   :func:`~lrkit.train.fit` on every split (folds x seeds, :mod:`lrkit.tune.objective`),
   reporting the first split's validation metric every ``val_every`` steps to the pruner.
3. **Stop** after ``trials`` finished trials, when the ``budget`` (full-run equivalents of
   optimizer steps, the range test and the pick included) is spent, or after ``timeout``
   seconds; the grid sampler also stops when its grid is done.

The study is a plain Optuna study in ``storage`` (default: Optuna's journal file
``study.journal`` in ``out``); its ``user_attrs["lrkit"]`` hold what a worker that joins it
needs (task, space, cv, seeds, epochs, the lr window, the warm start, the steps spent
measuring), see the trial-record schema in the package's doc.
"""

from __future__ import annotations

import contextlib
import difflib
import math
import warnings
from pathlib import Path
from typing import Any

from .._version import __version__
from ..checks import number, whole
from ..errors import UserError
from ..progress import wanted
from ..tasks import Task, get_task
from .bounds import measure
from .objective import Objective, Split, val_cadence
from .space import as_space

SAMPLERS = ("tpe", "gp", "random", "grid")
PRUNERS = ("sha", "hyperband", "median", "none")
STARTUP_TRIALS = 5  # TPE/GP: random trials before the model (Optuna's 10 suits 100+ trials)
REDUCTION = 2  # successive halving and hyperband: keep the better half at each rung
FIRST_RUNG = 0.25  # the first rung: a quarter of a run (earlier ones favour high lrs)
UNLIMITED = 10**9  # trials=None: run_trials' count that is never reached


def tune(
    task: Task | str,
    space: Any = None,
    *,
    sampler: Any = "tpe",
    pruner: Any = "sha",
    trials: int | None = 20,
    budget: float | None = None,
    cv: int | None = None,
    seeds: int = 1,
    epochs: int | None = None,
    storage: str | None = None,
    study: str | None = None,
    out: str | Path | None = None,
    resume: bool = False,
    warm_start: bool = True,
    bound_lr: bool = True,
    seed: int = 0,
    progress: bool | None = None,
    timeout: float | None = None,
) -> Any:
    """Search ``space`` on ``task`` with Optuna and return a :class:`~lrkit.tune.result.TuneResult`.

    Args:
        task: a :class:`~lrkit.tasks.Task`, a built-in name or ``"package.module:function"``.
        space: a :class:`~lrkit.tune.space.Space`, its text form, or None (the default space:
            four schedule families). Without an lr range, the range test sets it (``bound_lr``).
        sampler: ``"tpe"`` (default; multivariate, 5 random trials first), ``"gp"``,
            ``"random"`` or ``"grid"`` (the space's grid, no warm start), or an Optuna sampler.
        pruner: ``"sha"`` (successive halving, default), ``"hyperband"``, ``"median"``,
            ``None`` (or ``"none"``), or an Optuna pruner. The named ones keep the better half
            at rungs from a quarter of a run on (see :func:`_pruner` for why not earlier).
        trials: finished (complete or pruned) trials to reach in the study, whichever worker
            ran them (None: no limit; then give ``budget`` or ``timeout``). A resumed or
            shared study counts the trials it holds already. A diverged trial does not count;
            after ``trials`` diverged or failed ones the study stops.
        budget: stop once the study has spent this many full runs (``epochs`` of the whole
            task, in optimizer steps): the range test, pick_lr's short runs and every trial's
            steps (a pruned trial's by the steps it ran). The trial running when it runs out
            stops at its next validation (pruned, "the tune's budget is spent").
        cv: k >= 2: each configuration trains on the k folds of ``task.folds(k, seed)``;
            None: on the task's own split.
        seeds: seeds per configuration (``seed .. seed + seeds - 1``); the metric is the mean
            over folds x seeds, its (population) standard deviation is recorded. **Pruning
            reads the first split's reports** (fold 0, the first seed); the others then run
            in full. A split that diverges fails the trial.
        epochs: the run length of every trial (default: the task's).
        storage: an Optuna storage URL (``sqlite:///...``, ``postgresql://...``), or a journal
            file path; None: Optuna's journal file ``study.journal`` in ``out``.
        study: the study's name (default: the task's name).
        out: the run directory of the default storage (default ``runs/tune/<study>``).
        resume: continue the study already in ``out`` (without it, an existing study there is
            a UserError). A study in an explicit ``storage`` is always joined (workers).
        warm_start: ``pick_lr``'s rate (for the space's first family at the middle of its
            ranges) is the first trial; it also sets the lr range (see :mod:`.bounds`).
        bound_lr: let a range test set the lr range when the space has none.
        seed: seeds the sampler, the measurements and the splits.
        progress: one line per finished trial and fit's bar (None: only on a terminal).
        timeout: seconds after which no new trial starts.

    Each validation happens every ``run / 8`` steps (so pruners see 8 reports a run).
    Raises UserError for a bad argument (naming it), an unknown sampler or pruner (with
    "did you mean"), a bad space, an existing study in ``out`` without ``resume``, and an
    argument that differs from the study's (when joining one).
    """
    from . import plan  # Optuna's storages and the workers: only when a tune runs
    from .result import TuneResult
    from .workers import run_trials

    task = get_task(task)
    args = _check(sampler, pruner, trials, budget, cv, seeds, epochs, seed, timeout)
    sampler, pruner = args["sampler"], args["pruner"]
    space = None if space is None else as_space(space, task)  # a bad space: before any file
    name = study if study is not None else task.name
    storage_obj, run_dir = plan.open_study_storage(storage, out, name)
    existing = plan.existing_study(storage_obj, name)
    if existing is not None and storage is None and not resume:
        raise UserError(
            f"a study {name!r} exists already in {str(run_dir)!r}: pass resume=True"
            " (--resume) to continue it, or another out folder or study name"
        )
    attrs = dict(existing.user_attrs.get("lrkit") or {}) if existing is not None else {}
    space_obj = plan.join_space(space, task, attrs)
    cv, seeds, epochs = plan.join_settings(attrs, task, cv, seeds, epochs)
    run_steps = epochs * len(task.build_loaders(seed)[0])
    show = wanted(progress)

    with _quiet_optuna():
        splits = [
            Split(fold, i if cv else None, seed + j)
            for i, fold in enumerate(plan.folds(task, cv, seed))
            for j in range(seeds)
        ]
        first_run = epochs * len(splits[0].task.build_loaders(seed)[0])
        val_every = val_cadence(first_run)
        if "find_steps" not in attrs:  # a study joined or resumed was measured already
            attrs.update(
                _measure(task, space_obj, sampler, warm_start, bound_lr, budget, epochs, seed,
                         progress)
            )  # fmt: skip
        if space_obj.lr is None:
            space_obj = space_obj.with_lr(*attrs["lr_window"])
        grid = space_obj.grid() if sampler == "grid" else None
        attrs.update(
            {
                "version": __version__,
                "task": task.name,
                "metric": task.metric.name,
                "higher_is_better": task.metric.higher_is_better,
                "space": space_obj.text(),
                "cv": cv,
                "seeds": seeds,
                "epochs": epochs,
                "steps_per_run": run_steps,
                "sampler": _label(sampler),
                "pruner": _label(pruner),
                "budget": budget,
            }
        )
        direction = "maximize" if task.metric.higher_is_better else "minimize"
        study_obj = existing or plan.new_study(storage_obj, name, direction)
        if study_obj.direction.name.lower() != direction:
            raise UserError(
                f"study {name!r} is to {study_obj.direction.name.lower()}, but task"
                f" {task.name!r}'s metric {task.metric.name!r} is to {direction}"
            )
        done_before = len(study_obj.trials)
        study_obj.sampler = _sampler(sampler, grid, seed + done_before)
        study_obj.pruner = _pruner(pruner, val_every, first_run)
        study_obj.set_user_attr("lrkit", attrs)
        warm = attrs.get("warm_start")
        if warm and done_before == 0:
            _, params = plan.reference_config(space_obj, warm["lr"])
            study_obj.enqueue_trial(params, user_attrs={"warm_start": warm["how"]})

        stop = _Stop(study_obj, trials, budget, run_steps, attrs)
        objective = Objective(
            space_obj,
            splits,
            epochs=epochs,
            val_every=val_every,
            progress=show,
            budget_left=stop.left,
        )
        if not (stop.spent_all() or stop.failed_all()):
            run_trials(
                study_obj,
                objective,
                trials if trials is not None else UNLIMITED,
                callbacks=[stop],
                on_trial=_Lines(task.name, trials, show),
                timeout=timeout,
            )
    return TuneResult.from_study(study_obj, storage=storage)


def _measure(task, space, sampler, warm_start, bound_lr, budget, epochs, seed, progress):
    """The study's measurements: the lr window and the warm start (see :mod:`.bounds`)."""
    from . import plan

    if space.lr is None and not bound_lr:
        raise UserError(
            "the space has no lr range and bound_lr=False: give the space an lr range"
            " (e.g. lr={1e-4..1e-1 log}) or let the range test set it (bound_lr=True)"
        )
    found = measure(
        task,
        plan.reference_config(space, 1.0)[0],
        space.lr,
        pick=warm_start and _label(sampler) not in ("grid", "GridSampler"),
        budget=budget,
        epochs=epochs,
        seed=seed,
        progress=progress,
    )
    window = found.lr if found.lr is not None else space.lr
    return {
        "find_steps": found.find_steps,
        "pick_steps": found.pick_steps,
        "lr_window": list(window) if window else None,
        "warm_start": found.warm_start,
    }


# -- arguments -------------------------------------------------------------------------------
def _check(sampler, pruner, trials, budget, cv, seeds, epochs, seed, timeout) -> dict[str, Any]:
    """The checked arguments; UserError naming the bad value."""
    try:
        sampler = _optuna_object(sampler, "samplers", "BaseSampler") or _choice(
            sampler, SAMPLERS, "sampler"
        )
        if pruner is not None:
            pruner = _optuna_object(pruner, "pruners", "BasePruner") or _choice(
                pruner, PRUNERS, "pruner"
            )
        if trials is not None:
            whole(trials, "trials", least=1)
        if budget is not None:
            number(budget, "budget (full runs)", low=0, low_open=True)
        if timeout is not None:
            number(timeout, "timeout (seconds)", low=0, low_open=True)
        if cv is not None and (isinstance(cv, bool) or not isinstance(cv, int) or cv < 2):
            raise UserError(f"cv must be a whole number >= 2 (folds) or None, got {cv!r}")
        whole(seeds, "seeds", least=1)
        if epochs is not None:
            whole(epochs, "epochs", least=1)
        whole(seed, "seed", least=None)
    except UserError:
        raise
    except ValueError as e:
        raise UserError(str(e)) from None
    if trials is None and budget is None and timeout is None:
        raise UserError("trials=None needs a budget or a timeout, or the search never ends")
    return {"sampler": sampler, "pruner": None if pruner == "none" else pruner}


def _optuna_object(value: Any, module: str, base: str) -> Any:
    """``value`` when it is an Optuna sampler (pruner) object, else None (a name, checked next)."""
    if isinstance(value, str):
        return None
    import optuna

    return value if isinstance(value, getattr(getattr(optuna, module), base)) else None


def _label(value: Any) -> str | None:
    """A sampler's or pruner's name, as the study records it."""
    return value if value is None or isinstance(value, str) else type(value).__name__


def _choice(value: Any, known: tuple[str, ...], what: str) -> str:
    if isinstance(value, str) and value.lower() in known:
        return value.lower()
    close = difflib.get_close_matches(str(value).lower(), known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise UserError(f"unknown {what} {value!r}{hint}; known: {', '.join(known)}")


# -- samplers and pruners ---------------------------------------------------------------------
def _sampler(name: Any, grid: dict[str, list] | None, seed: int):
    """Optuna's sampler of that name, seeded (an Optuna sampler object is used as it is)."""
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
        if name == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        return optuna.samplers.GridSampler(grid, seed=seed)


def _pruner(name: str | None, val_every: int, run_steps: int):
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


# -- running ----------------------------------------------------------------------------------
class _Stop:
    """A callback that stops the study once it has spent its budget of optimizer steps, or
    once ``trials`` trials have diverged or failed (a range where nothing trains ends with a
    result, not a loop). A trial running when the budget runs out is stopped at its next
    validation by the objective (:meth:`left`), so the budget is overrun by less than one
    validation interval (by this worker; several workers may each overrun it by that)."""

    def __init__(self, study, trials, budget, run_steps, attrs):
        self.study, self.trials, self.budget, self.run_steps = study, trials, budget, run_steps
        self.measured = int(attrs.get("find_steps") or 0) + int(attrs.get("pick_steps") or 0)

    def spent(self) -> int:
        """Optimizer steps spent so far: measuring and every trial."""
        trials = self.study.get_trials(deepcopy=False)
        return self.measured + sum(int(t.user_attrs.get("steps") or 0) for t in trials)

    def spent_all(self) -> bool:
        return self.budget is not None and self.spent() >= self.budget * self.run_steps

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

    def __call__(self, study, trial) -> None:
        if self.spent_all() or self.failed_all():
            study.stop()


class _Lines:
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
            line += f" ({a['reason']})"
        print(line, flush=True)  # between trials: fit's bar of the trial has closed


@contextlib.contextmanager
def _quiet_optuna():
    """Optuna's own INFO/WARNING lines off while tune prints its own (restored after)."""
    import optuna

    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(level)
