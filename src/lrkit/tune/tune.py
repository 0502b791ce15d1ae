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

import difflib
import os
import random
import sys
from pathlib import Path
from typing import Any

from .._version import __version__
from ..checks import number, whole
from ..errors import UserError
from ..paths import writable_dir
from ..progress import wanted
from ..tasks import Task, get_task
from . import search
from .bounds import measure
from .objective import Objective, Split, val_cadence
from .space import as_space

SAMPLERS = ("tpe", "gp", "random", "grid")
PRUNERS = ("sha", "hyperband", "median", "none")
MEASURED = ("find_steps", "pick_steps", "lr_window", "warm_start")  # what the first worker found
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
            ``"random"``, ``"grid"`` (each distinct point of the space's grid once, up to
            ``trials``; no warm start; see :func:`.search.sampler_of`), or an Optuna sampler.
        pruner: ``"sha"`` (successive halving, default), ``"hyperband"``, ``"median"``,
            ``None`` (or ``"none"``), or an Optuna pruner. The named ones keep the better half
            at rungs from a quarter of a run on (:func:`.search.pruner_of` says why not earlier).
        trials: finished (complete or pruned) trials to reach in the study, whichever worker
            ran them (None: no limit; then give ``budget`` or ``timeout``). A resumed or
            shared study counts the trials it holds already. A diverged trial does not count;
            after ``trials`` diverged or failed ones the study stops.
        budget: stop once the study has spent this many full runs (``epochs`` of the whole
            task, in optimizer steps): the range test, pick_lr's short runs and every trial's
            steps (a pruned trial's by the steps it ran). The trial running when it runs out
            stops at its last validation within it (pruned, "the tune's budget is spent"):
            the study never spends more (one worker), but for measuring's minimum (a range
            test of about 20 steps, spent whatever the budget).
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
        progress: True: a line before the trials, one per finished trial and fit's bar of
            each; None (default): the lines, and the bars only on a terminal; False: nothing.
        timeout: seconds after which no new trial starts.

    The result is also written into the run directory (``out``, or the default storage's
    folder): ``tune.json`` (:meth:`TuneResult.load` reads it) and ``trials.csv``.

    Each validation happens every ``run / 8`` steps (so pruners see 8 reports a run).
    Raises UserError for a bad argument (naming it), an unknown sampler or pruner (with
    "did you mean"), a bad space, an existing study in ``out`` without ``resume``, and an
    argument that differs from the study's (when joining one).
    """
    from . import plan  # Optuna's storages and the workers: only when a tune runs
    from .result import FILES, TuneResult
    from .workers import run_trials

    task = get_task(task)
    args = _check(sampler, pruner, trials, budget, cv, seeds, epochs, seed, timeout, progress)
    sampler, pruner = args["sampler"], args["pruner"]
    if out is not None and not isinstance(out, str | os.PathLike):
        raise UserError(f"out must be a folder path, got {type(out).__name__} {out!r}")
    space = None if space is None else as_space(space, task)  # a bad space: before any file
    name = study if study is not None else task.name
    storage_obj, run_dir = plan.open_study_storage(storage, out, name)
    existing = plan.existing_study(storage_obj, name)
    if storage is None:  # one study per run folder: its tune.json, trials.csv and tune.png
        plan.only_study_in(storage_obj, name, run_dir)
    if existing is not None and storage is None and not resume:
        raise UserError(
            f"a study {name!r} exists already in {str(run_dir)!r}: pass resume=True"
            " (--resume) to continue it, or another out folder or study name"
        )
    if existing is None and resume and progress is not False:  # a typo in out, say
        print(
            f"tune {task.name}: no study {name!r} to resume in"
            f" {str(run_dir) if run_dir is not None else 'the storage'}: a new one starts",
            file=sys.stderr,
            flush=True,
        )
    attrs = dict(existing.user_attrs.get("lrkit") or {}) if existing is not None else {}
    space_obj = plan.join_space(space, task, attrs)
    cv, seeds, epochs, seed = plan.join_settings(attrs, task, cv, seeds, epochs, seed)
    run_steps = epochs * len(task.build_loaders(seed)[0])
    show = wanted(progress)  # fit's bars: on a terminal (None) or when asked
    lines = progress is not False  # a line per trial: also into a log file (as Optuna's)

    direction = "maximize" if task.metric.higher_is_better else "minimize"
    if existing is not None and existing.direction.name.lower() != direction:
        raise UserError(
            f"study {name!r} is to {existing.direction.name.lower()}, but task {task.name!r}'s"
            f" metric {task.metric.name!r} is to {direction}: use another study"
        )
    if sampler == "grid":  # a grid too big is refused before anything is measured
        (space_obj if space_obj.lr else space_obj.with_lr(1e-3, 1e-1)).grid_params()

    with search.quiet_optuna():
        splits = [
            Split(fold, i if cv else None, seed + j)
            for i, fold in enumerate(plan.folds(task, cv, seed))
            for j in range(seeds)
        ]
        first_run = epochs * len(splits[0].task.build_loaders(seed)[0])
        val_every = val_cadence(first_run)
        measured = "find_steps" not in attrs  # a study joined or resumed was measured already
        if measured:
            attrs.update(
                _measure(task, space_obj, sampler, warm_start, bound_lr, budget, epochs, seed,
                         progress)
            )  # fmt: skip
        study_obj = existing or plan.new_study(storage_obj, name, direction)
        stored = study_obj.user_attrs.get("lrkit") or {}
        if measured and "find_steps" in stored:  # another worker measured it meanwhile
            attrs.update({k: stored[k] for k in MEASURED if k in stored})
            measured = False
        if space_obj.lr is None:
            space_obj = space_obj.with_lr(*attrs["lr_window"])
        grid = space_obj.grid_params() if sampler == "grid" else None
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
                "seed": seed,
                "steps_per_run": run_steps,
                "sampler": _label(sampler),
                "pruner": _label(pruner),
                "budget": budget,
            }
        )
        done_before = len(study_obj.trials)
        # workers on shared storage seed their samplers apart, or they would start alike
        offset = done_before + (os.getpid() if storage is not None else 0)
        study_obj.sampler = search.sampler_of(sampler, seed + offset)
        study_obj.pruner = search.pruner_of(pruner, val_every, first_run)
        study_obj.set_user_attr("lrkit", attrs)
        if measured and done_before == 0:  # queued once, by the worker that measured
            # each distinct grid point once, in a seeded random order (in order of lr, each
            # would beat the last and none be pruned)
            for point in random.Random(seed).sample(grid or [], len(grid or [])):
                study_obj.enqueue_trial(point, user_attrs={"grid": True})
            warm = attrs.get("warm_start")
            if warm:
                _, params = plan.reference_config(space_obj, warm["lr"])
                study_obj.enqueue_trial(params, user_attrs={"warm_start": warm["how"]})
        if lines:
            print(search.opening(task.name, space_obj, attrs, run_steps, val_every), flush=True)

        stop = search.Stop(
            study_obj, trials, budget, run_steps, attrs, every=val_every, grid=grid is not None
        )
        objective = Objective(
            space_obj,
            splits,
            epochs=epochs,
            val_every=val_every,
            progress=show,
            budget_left=stop.left,
        )
        if not stop.done():
            run_trials(
                study_obj,
                objective,
                trials if trials is not None else UNLIMITED,
                callbacks=[stop],
                on_trial=search.Lines(task.name, trials, lines),
                timeout=timeout,
            )
    result = TuneResult.from_study(study_obj, storage=storage)
    folder = run_dir if run_dir is not None else None if out is None else writable_dir(out, "out")
    if folder is not None:  # where the user finds the results (the journal's folder)
        result.to_json(folder / FILES["json"])
        result.to_csv(folder / FILES["csv"])
    return result


def _measure(task, space, sampler, warm_start, bound_lr, budget, epochs, seed, progress):
    """The study's measurements: the lr window and the warm start (see :mod:`.bounds`)."""
    from . import plan

    if space.lr is None and not bound_lr:
        raise UserError(
            "the space has no lr range and bound_lr=False: give the space an lr range"
            " (e.g. lr={1e-4..1e-1 log}) or let the range test set it (bound_lr=True)"
        )
    lo = space.lr[0] if space.lr else 1.0
    config, _ = plan.reference_config(space, lo)
    reference = task.variant(
        optimizer=config.optimizer, weight_decay=config.weight_decay, batch_size=config.batch_size
    )
    found = measure(
        reference,
        config.schedule,
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
def _check(
    sampler, pruner, trials, budget, cv, seeds, epochs, seed, timeout, progress
) -> dict[str, Any]:
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
        whole(seed, "seed", least=0)
        wanted(progress)
    except UserError:
        raise
    except ValueError as e:
        raise UserError(str(e)) from None
    if trials is None and budget is None and timeout is None and sampler != "grid":
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
