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
import time
import warnings
from pathlib import Path
from typing import Any

from .._version import __version__
from ..checks import number, whole
from ..errors import UserError
from ..progress import progress as progress_bar
from ..progress import wanted
from ..tasks import Task, get_task
from .bounds import measure
from .objective import Objective, Split, val_cadence
from .space import as_space

SAMPLERS = ("tpe", "gp", "random", "grid")
PRUNERS = ("sha", "hyperband", "median", "none")
STARTUP_TRIALS = 5  # TPE/GP: random trials before the model (Optuna's 10 suits 100+ trials)
REDUCTION = 3  # successive halving and hyperband: keep the best third at each rung
DEFAULT_ROOT = Path("runs") / "tune"
JOURNAL = "study.journal"


def tune(
    task: Task | str,
    space: Any = None,
    *,
    sampler: str = "tpe",
    pruner: str | None = "sha",
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
    """Search ``space`` on ``task`` with Optuna and return a ``TuneResult``.

    Args:
        task: a :class:`~lrkit.tasks.Task`, a built-in name or ``"package.module:function"``.
        space: a :class:`~lrkit.tune.space.Space`, its text form, or None (the task's default
            space). Without an lr range, the range test sets it (``bound_lr``).
        sampler: ``"tpe"`` (default), ``"gp"``, ``"random"`` or ``"grid"`` (the space's grid).
        pruner: ``"sha"`` (successive halving, default), ``"hyperband"``, ``"median"`` or None.
        trials: finished trials to reach in the study (None: no limit; then give ``budget``
            or ``timeout``). A resumed or shared study counts the trials it holds already.
        budget: stop once the study has spent this many full runs (``epochs`` of the whole
            task) of optimizer steps: the range test, pick_lr's short runs and every trial's
            steps (a pruned trial's by the steps it ran). The last trial may overrun it.
        cv: k >= 2: each configuration trains on the k folds of ``task.folds(k, seed)``;
            None: on the task's own split.
        seeds: seeds per configuration (``seed .. seed + seeds - 1``); the metric is the mean
            over folds x seeds, its standard deviation is recorded. Pruning reads the first
            split's (fold 0, first seed) reports; the others then run in full.
        epochs: the run length of every trial (default: the task's).
        storage: an Optuna storage URL (``sqlite:///...``, ``postgresql://...``) or a journal
            file path; None: ``out/study.journal``.
        study: the study's name (default: the task's name).
        out: the run directory of the default storage (default ``runs/tune/<study>``).
        resume: continue the study already in ``out`` (without it, an existing study there is
            an error). A study in an explicit ``storage`` is always joined.
        warm_start: the first trial is ``pick_lr``'s rate.
        bound_lr: let the range test set the lr range when the space has none.
        seed: seeds the sampler, the measurement and the splits.
        progress: one line per finished trial and fit's bar (None: only on a terminal).
        timeout: stop starting trials after this many seconds.
    """
    task = get_task(task)
    args = _check(sampler, pruner, trials, budget, cv, seeds, epochs, seed, timeout)
    sampler, pruner = args["sampler"], args["pruner"]
    name = study if study is not None else task.name
    storage_obj, run_dir = _storage(storage, out, name)
    existing = _existing(storage_obj, name)
    if existing is not None and storage is None and not resume:
        raise UserError(
            f"a study {name!r} exists already in {str(run_dir)!r}: pass resume=True"
            " (--resume) to continue it, or another out folder or study name"
        )
    attrs = dict(existing.user_attrs.get("lrkit", {})) if existing is not None else {}
    space_obj = _join_space(space, task, attrs)
    cv, seeds, epochs = _join_settings(attrs, task, cv, seeds, epochs)
    run_steps = epochs * len(task.build_loaders(seed)[0])
    show = wanted(progress)

    with _quiet_optuna():
        folds = _folds(task, cv, seed)
        splits = [
            Split(f, i if cv else None, seed + j) for i, f in enumerate(folds) for j in range(seeds)
        ]
        first_run = epochs * len(folds[0].build_loaders(seed)[0])
        val_every = val_cadence(first_run)
        if "find_steps" not in attrs:  # a study joined or resumed was measured already
            bounds = measure(
                task,
                _reference_schedule(space_obj),
                space_obj.lr,
                pick=warm_start and sampler != "grid",
                budget=budget,
                epochs=epochs,
                seed=seed,
                progress=progress,
            )
            window = bounds.lr if bounds.lr is not None else space_obj.lr
            attrs.update(
                {
                    "find_steps": bounds.find_steps,
                    "pick_steps": bounds.pick_steps,
                    "lr_window": list(window) if window else None,
                    "warm_start": bounds.warm_start,
                }
            )
        if space_obj.lr is None:
            if not attrs.get("lr_window"):
                raise UserError(
                    "the space has no lr range and bound_lr=False: give the space an lr range"
                    " (e.g. lr={1e-4..1e-1 log}) or let the range test set it"
                )
            space_obj = space_obj.with_lr(*attrs["lr_window"])
        grid = space_obj.grid() if sampler == "grid" else None
        attrs.update(
            {
                "version": __version__,
                "task": task.name,
                "metric": task.metric.name,
                "higher_is_better": task.metric.higher_is_better,
                "space": _space_text(space_obj),
                "cv": cv,
                "seeds": seeds,
                "epochs": epochs,
                "steps_per_run": run_steps,
                "sampler": sampler,
                "pruner": pruner or "none",
                "budget": budget,
            }
        )
        direction = "maximize" if task.metric.higher_is_better else "minimize"
        if existing is None:
            study_obj = _create(storage_obj, name, direction)
        else:
            study_obj = existing
        done_before = len(study_obj.trials)
        study_obj.sampler = _sampler(sampler, grid, seed + done_before)
        study_obj.pruner = _pruner(pruner, val_every, first_run)
        study_obj.set_user_attr("lrkit", attrs)
        warm = attrs.get("warm_start")
        if warm and done_before == 0:
            study_obj.enqueue_trial({"lr": warm["lr"]}, user_attrs={"warm_start": warm["how"]})

        objective = Objective(space_obj, splits, epochs=epochs, val_every=val_every, progress=show)
        stop = _Stop(study_obj, trials, budget, run_steps, attrs, timeout)
        lines = _Lines(task.name, show)
        if not stop.done():
            _run(study_obj, objective, trials, [stop, lines])
    return _result(study_obj)


# -- arguments -------------------------------------------------------------------------------
def _check(sampler, pruner, trials, budget, cv, seeds, epochs, seed, timeout) -> dict[str, Any]:
    sampler = _choice(sampler, SAMPLERS, "sampler")
    pruner = None if pruner is None else _choice(pruner, PRUNERS, "pruner")
    if pruner == "none":
        pruner = None
    if trials is not None:
        whole(trials, "trials", least=1)
    if budget is not None:
        number(budget, "budget (full runs)", low=0, low_open=True)
    if timeout is not None:
        number(timeout, "timeout (seconds)", low=0, low_open=True)
    if trials is None and budget is None and timeout is None:
        raise UserError("trials=None needs a budget or a timeout, or the search never ends")
    if cv is not None:
        if isinstance(cv, bool) or not isinstance(cv, int) or cv < 2:
            raise UserError(f"cv must be a whole number >= 2 (folds) or None, got {cv!r}")
    whole(seeds, "seeds", least=1)
    if epochs is not None:
        whole(epochs, "epochs", least=1)
    whole(seed, "seed", least=None)
    return {"sampler": sampler, "pruner": pruner}


def _choice(value: Any, known: tuple[str, ...], what: str) -> str:
    if isinstance(value, str) and value.lower() in known:
        return value.lower()
    close = difflib.get_close_matches(str(value).lower(), known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise UserError(f"unknown {what} {value!r}{hint}; known: {', '.join(known)}")


# -- the study and what it remembers ----------------------------------------------------------
def _storage(url: str | None, out: str | Path | None, name: str):
    """The Optuna storage and the run directory (None for an explicit storage URL)."""
    from .. import paths

    try:
        from .storage import open_storage
    except ImportError:  # the storage module of this issue is not merged yet
        open_storage = _open_storage
    if url is None:
        run_dir = paths.writable_dir(out if out is not None else DEFAULT_ROOT / name, "out")
        return open_storage(None, run_dir), run_dir
    return open_storage(url, None), None


def _open_storage(url: str | None, run_dir: Path | None):
    import optuna
    from optuna.storages.journal import JournalFileBackend

    if url is None:
        return optuna.storages.JournalStorage(JournalFileBackend(str(run_dir / JOURNAL)))
    if "://" in url:
        return optuna.storages.RDBStorage(url)
    return optuna.storages.JournalStorage(JournalFileBackend(url))


def _existing(storage: Any, name: str):
    import optuna

    names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
    if name not in names:
        return None
    return optuna.load_study(study_name=name, storage=storage)


def _create(storage: Any, name: str, direction: str):
    import optuna

    return optuna.create_study(storage=storage, study_name=name, direction=direction)


def _join_space(space: Any, task: Task, attrs: dict[str, Any]):
    """The space given, or the study's (a worker joining); UserError when they differ."""
    stored = attrs.get("space")
    if stored is None:
        return _as_space(space, task)
    if space is None:
        return _as_space(stored, task)
    given = _as_space(space, task)
    if given.lr is None and attrs.get("lr_window"):
        given = given.with_lr(*attrs["lr_window"])
    if _space_text(given) != stored:
        raise UserError(
            f"space {_space_text(given)!r} differs from the study's space {stored!r}:"
            " give the same space, none (to use the study's), or another study"
        )
    return _as_space(stored, task)


def _join_settings(attrs, task, cv, seeds, epochs):
    """cv, seeds and epochs: the study's when it has them; UserError when a given one differs."""
    if attrs.get("task") not in (None, task.name):
        raise UserError(
            f"task {task.name!r} differs from the study's task {attrs['task']!r}: give the"
            " study's task or another study"
        )
    out = []
    for key, value, default in (("cv", cv, None), ("seeds", seeds, 1), ("epochs", epochs, None)):
        if key not in attrs:
            out.append(value)
            continue
        stored = attrs[key]
        if value not in (default, stored):
            raise UserError(
                f"{key}={value!r} differs from the study's {key}={stored!r}: give the same"
                f" {key}, leave it out, or use another study"
            )
        out.append(stored)
    return out[0], out[1], (out[2] if out[2] is not None else task.epochs)


def _folds(task: Task, cv: int | None, seed: int) -> list[Task]:
    if cv is None:
        return [task]
    folds = getattr(task, "folds", None)
    if folds is None:
        raise UserError(f"task {task.name!r} cannot be split into folds (it has no folds())")
    return list(folds(cv, seed))


def _as_space(value: Any, task: Task):
    try:
        return as_space(value, task)
    except TypeError:  # the first Space's as_space takes no task
        return as_space(value)


def _space_text(space: Any) -> str:
    text = getattr(space, "text", None)
    return text() if callable(text) else str(space.schedule)


def _reference_schedule(space: Any) -> str:
    """The schedule pick_lr picks the warm start's rate for (the space's first family)."""
    schedule = getattr(space, "schedule", None)
    if isinstance(schedule, str):
        return schedule
    with contextlib.suppress(Exception):
        return space.config({"lr": 1.0}).schedule
    return "warmup(5%) >> cosine"


# -- samplers and pruners ---------------------------------------------------------------------
def _sampler(name: str, grid: dict[str, list] | None, seed: int):
    import optuna

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
    """Rungs at the first validation and every REDUCTION times further on."""
    import optuna

    if name is None:
        return optuna.pruners.NopPruner()
    if name == "sha":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=val_every, reduction_factor=REDUCTION
        )
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=val_every, max_resource=run_steps, reduction_factor=REDUCTION
        )
    return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=val_every)


# -- running ----------------------------------------------------------------------------------
class _Stop:
    """A callback that stops the study when the trials are done, the budget is spent or the
    time is up (checked after every trial, so the last trial may overrun the budget)."""

    def __init__(self, study, trials, budget, run_steps, attrs, timeout):
        self.study, self.trials, self.budget, self.run_steps = study, trials, budget, run_steps
        self.measure = int(attrs.get("find_steps") or 0) + int(attrs.get("pick_steps") or 0)
        self.deadline = None if timeout is None else time.monotonic() + timeout

    def spent(self) -> int:
        """Optimizer steps spent so far: measuring and every finished trial."""
        return self.measure + sum(int(t.user_attrs.get("steps", 0)) for t in self.study.trials)

    def done(self) -> bool:
        import optuna

        states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
        finished = [t for t in self.study.trials if t.state in states]
        failed = [t for t in self.study.trials if t.state == optuna.trial.TrialState.FAIL]
        if self.trials is not None and (len(finished) >= self.trials or len(failed) >= self.trials):
            return True
        if self.budget is not None and self.spent() >= self.budget * self.run_steps:
            return True
        return self.deadline is not None and time.monotonic() >= self.deadline

    def __call__(self, study, trial) -> None:
        if self.done():
            study.stop()


class _Lines:
    """One line per finished trial: number, lr, family, metric, state, verdict."""

    def __init__(self, task: str, show: bool):
        self.task, self.show = task, show

    def __call__(self, study, trial) -> None:
        if not self.show:
            return
        a = trial.user_attrs
        config = a.get("config", {})
        value = a.get("metric_mean")
        shown = "-" if value is None else f"{value:.4g}"
        std = a.get("metric_std")
        if std:
            shown += f" +- {std:.2g}"
        line = (
            f"trial {trial.number}: lr {config.get('lr', math.nan):.3g}"
            f" {config.get('family', '')}  {shown}  {a.get('status', trial.state.name.lower())}"
            f"  verdict {a.get('verdict', '-')}"
        )
        if a.get("reason"):
            line += f" ({a['reason']})"
        with progress_bar(f"tune {self.task}", None, show=True) as bar:
            bar.note(line)


def _run(study, objective, trials, callbacks) -> None:
    try:
        from .workers import run_trials
    except ImportError:  # the workers module of this issue is not merged yet
        study.optimize(objective, n_trials=None, callbacks=callbacks, catch=())
        return
    run_trials(study, objective, trials if trials is not None else 10**9, callbacks=callbacks)


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


def _result(study):
    try:
        from .result import TuneResult
    except ImportError:  # the result module of this issue is not merged yet
        return _Interim(study)
    return TuneResult.from_study(study)


class _Interim:
    """A stand-in for TuneResult until it is merged: the study, its best config and value."""

    def __init__(self, study):
        from .config import Config

        self.study = study
        done = [t for t in study.trials if t.state.name == "COMPLETE"]
        best = study.best_trial if done else None
        self.best = None if best is None else Config.from_dict(best.user_attrs["config"])
        self.best_value = None if best is None else best.value
        self.best_std = None if best is None else best.user_attrs.get("metric_std")
        self.trials = [
            dict(number=t.number, state=t.state.name, **t.user_attrs) for t in study.trials
        ]
