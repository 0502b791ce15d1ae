"""``lrkit tune``: search the lr and schedule of a task with Optuna, and print what won.

The options shared with ``lrkit study create`` (the space and how trials are run) are defined
once here, as :data:`SEARCH_OPTIONS`.
"""

from __future__ import annotations

import difflib
import math
import shlex
from pathlib import Path
from typing import Any

import click

from ..errors import UserError
from .app import cli, user_input, writable_dir, writable_file
from .options import (
    LR_MAX,
    FiniteFloat,
    OptionError,
    PathArg,
    WholeNumber,
    epochs_type,
    lr_type,
    seed_type,
)
from .train_cmd import TASK_HELP

SAMPLERS = ("tpe", "gp", "random", "grid")
PRUNERS = ("sha", "hyperband", "median", "none")
NO_BEST = 3  # exit status of 'lrkit tune --quiet' when no trial completed
DEFAULT_ROOT = Path("runs") / "tune"
STORAGE_HELP = (
    "Where the study lives: an Optuna storage URL (sqlite:///study.db,"
    " postgresql://user:password@host/db) or a journal file path; the password is never"
    " printed. Also read from $LRKIT_STORAGE (keeps the password off the command line)."
)


class Named(click.Choice):
    """One of a few names (case-insensitive); a wrong one gets a did-you-mean."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None):
        text = str(value).strip().lower()
        if text in self.choices:
            return text
        name = "--" + (param.name if param is not None and param.name else "value")
        close = difflib.get_close_matches(text, list(self.choices), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise OptionError(
            f"unknown {name} {str(value)!r}{hint}; known: {', '.join(self.choices)}",
            ctx=ctx,
            param=param,
        )


class LrRange(click.ParamType):
    """``LO..HI``: the peak lr's search range, both in (0, LR_MAX], LO <= HI."""

    name = "LO..HI"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None):
        if isinstance(value, tuple):
            return value
        text = str(value).strip()
        low, sep, high = text.partition("..")
        bounds = []
        for part, what in ((low, "low"), (high, "high")):
            try:
                bound = float(part) if sep else math.nan
            except ValueError:
                bound = math.nan
            if not sep or (math.isnan(bound) and part.strip().lower() != "nan"):
                raise OptionError(
                    f"--lr-range {text!r}: expected LO..HI with two numbers, e.g. --lr-range"
                    " 1e-4..1e-1", ctx=ctx, param=param,
                )  # fmt: skip
            if not (math.isfinite(bound) and 0 < bound <= LR_MAX):
                raise OptionError(
                    f"--lr-range {text!r}: {what} must be {lr_type().accepted()}, got"
                    f" {part.strip()}", ctx=ctx, param=param,
                )  # fmt: skip
            bounds.append(bound)
        if bounds[0] > bounds[1]:
            raise OptionError(
                f"--lr-range {text!r}: low {bounds[0]:g} > high {bounds[1]:g}; give LO <= HI,"
                " e.g. --lr-range 1e-4..1e-1",
                ctx=ctx,
                param=param,
            )
        return tuple(bounds)


SEARCH_OPTIONS = [
    click.option(
        "--space",
        default=None,
        help="The search space in the schedule text form with ranges; default: the task's"
        " (lr from a range test, a few schedule families)."
        " Example: --space 'warmup({0..10%}) >> cosine(to={1e-3..1e-1 log})'",
    ),
    click.option(
        "--lr-range",
        "lr_range",
        type=LrRange(),
        default=None,
        help="The peak lr's range, searched on a log scale; default: the space's, else the"
        " range test's. Example: --lr-range 1e-4..1e-1",
    ),
    click.option(
        "--sampler",
        type=Named(SAMPLERS),
        default=None,
        help="Optuna's sampler: tpe (default), gp (Gaussian process), random, or grid (the"
        " space's grid). Example: --sampler gp",
    ),
    click.option(
        "--pruner",
        type=Named(PRUNERS),
        default=None,
        help="Optuna's pruner, fed the validation metric at each validation: sha (successive"
        " halving, default), hyperband, median, or none. Example: --pruner none",
    ),
    click.option(
        "--trials",
        type=WholeNumber(1, 10**6),
        default=None,
        help="Finished trials the study should hold (a resumed or shared study counts those it"
        " has); default: 20. Example: --trials 40",
    ),
    click.option(
        "--budget",
        type=FiniteFloat(0, 10**6, low_open=True),
        default=None,
        help="Stop once the study has spent this many full runs of optimizer steps (the range"
        " test and pruned trials' steps included); default: no limit. Example: --budget 4",
    ),
    click.option(
        "--cv",
        type=WholeNumber(2, 1000),
        default=None,
        help="Cross-validate each configuration on K folds of the training data (stratified"
        " for classification); default: the task's own split. Example: --cv 5",
    ),
    click.option(
        "--seeds",
        type=WholeNumber(1, 1000),
        default=None,
        help="Seeds per configuration (and per fold); the metric is their mean, the table"
        " shows the spread; default: 1. Example: --seeds 3",
    ),
    click.option(
        "--epochs",
        type=epochs_type(),
        default=None,
        help="Length of every trial's run; default: the task's. Example: --epochs 5",
    ),
    click.option(
        "--seed",
        type=seed_type(),
        default=None,
        help="Seed of the sampler, the range test and the splits; default: 0. Example: --seed 1",
    ),
]


def search_options(f):
    """The options of :data:`SEARCH_OPTIONS`, applied to a command."""
    for option in reversed(SEARCH_OPTIONS):
        f = option(f)
    return f


@cli.command(name="tune")
@click.option("--task", "task_name", default=None,
              help=TASK_HELP.replace(" Example:", " Default: digits-mlp, or the task of the"
                                     " study --study names. Example:"))  # fmt: skip
@search_options
@click.option("--storage", envvar="LRKIT_STORAGE", default=None,
              help=STORAGE_HELP + " Default: study.journal in --out."
              " Example: --storage sqlite:///tune.db")  # fmt: skip
@click.option("--study", "study_name", default=None,
              help="The study's name; default: the task's. Example: --study wine-cosine")  # fmt: skip
@click.option("--out", type=PathArg(file_okay=False), default=None,
              help="Run folder for tune.json, trials.csv, tune.png and the default storage;"
              " default: runs/tune/<study>. Example: --out runs/tune1")  # fmt: skip
@click.option("--resume", is_flag=True,
              help="Continue the study already in --out (without it an existing study there"
              " is refused). A study in --storage is always joined. Example: --resume")  # fmt: skip
@click.option("--timeout", type=FiniteFloat(0, 10**7, low_open=True), default=None,
              help="Start no trial after this many seconds; default: none. Example: --timeout 600")  # fmt: skip
@click.option("--warm-start/--no-warm-start", default=True, show_default=True,
              help="Make pick_lr's rate the first trial.")  # fmt: skip
@click.option("--json", "json_out", type=PathArg(dir_okay=False), default=None,
              help="Also write the result (best, trials, importance inputs) as JSON to FILE"
              " (default: only tune.json in --out). Example: --json tune.json")  # fmt: skip
@click.option("--png", type=PathArg(dir_okay=False), default=None,
              help="Also save the plot (metric against lr per family, optimisation history)"
              " to FILE (default: only tune.png in --out). Example: --png tune.png")  # fmt: skip
@click.option("--quiet", "-q", is_flag=True,
              help="No progress and no table; print only the best's 'lrkit train' line, or"
              f" nothing and exit {NO_BEST} when no trial completed. Example: --quiet")  # fmt: skip
@click.pass_context
def tune_command(ctx: click.Context, task_name: str | None, storage: str | None,
                 study_name: str | None, out: str | None, resume: bool, timeout: float | None,
                 warm_start: bool, json_out: str | None, png: str | None, quiet: bool,
                 **search: Any) -> None:  # fmt: skip
    """Search the peak lr and the schedule (and what else the space holds) of a task.

    Each trial trains a configuration with the one training loop (on each fold x seed);
    a range test bounds the lr range first and pick_lr's rate is the first trial; a trial
    whose loss goes non-finite is stopped at once. Prints a line per trial, then the trials
    table (metric mean ± std, steps, the doctor's verdict, why a trial stopped), the best
    configuration as an 'lrkit train' line and as Python, and where the results were saved.

    Several workers: create the study once with 'lrkit study create --storage URL NAME',
    then run 'lrkit tune --storage URL --study NAME' on every worker.

    \b
    Examples:
      lrkit tune --task digits-mlp --trials 20
      lrkit tune --task wine-mlp --space 'warmup({0..10%}) >> cosine(to={1e-3..1e-1 log})' --cv 3
      lrkit tune --task digits-mlp --lr-range 1e-3..1 --sampler random --pruner none
      lrkit tune --task digits-mlp --out runs/tune1 --resume
      lrkit tune --storage postgresql://lr@db.example/studies --study wine-cosine
    """
    from ..tune import tune
    from ..tune.result import FILES
    from ..tune.storage import JOURNAL_NAME as JOURNAL
    from ..tune.storage import redact

    for option, value in (("--task", task_name), ("--study", study_name)):
        if value is not None and not value.strip():  # not the default in disguise
            raise UserError(f"{option} is empty: give a name, or leave {option} out")
    plan = study_plan(storage, study_name) if storage is not None and study_name else {}
    given = {k for k in ("task_name", *search) if option_given(ctx, k)}
    settings = _settings(task_name, search, plan, given)
    named = settings.pop("task")  # as the user names it: the train line names it so too
    task = load_task(named)
    space = None  # the task's default space, or the study's when it has one
    if search["space"] is not None or search["lr_range"] is not None:
        space = build_space(search["space"], search["lr_range"], task)
    name = study_name or task.name
    folder = writable_dir(out if out is not None else DEFAULT_ROOT / name, "--out")
    json_file = None if json_out is None else writable_file(json_out, "--json")
    png_file = None if png is None else writable_file(png, "--png")

    if storage is None:
        again = shlex.join(["lrkit", "tune", "--task", named, "--out", str(folder), "--resume"])
        kept = f"study {name!r} in {folder / JOURNAL}; to continue it: {again}"
    else:
        kept = (f"study {name!r} in {redact(storage)} (optuna.load_study and optuna-dashboard"
                " open it); to continue it: the same command again")  # fmt: skip
    try:
        result = tune(
            task, space, storage=storage, study=name, out=folder, resume=resume,
            warm_start=warm_start, progress=False if quiet else None, timeout=timeout,
            **settings,
        )  # fmt: skip
    except KeyboardInterrupt:
        click.echo(f"lrkit: the {kept}", err=True)
        raise
    result.storage = None if storage is None else redact(storage)
    result.save(folder)
    if json_file is not None:
        result.to_json(json_file)
    if png_file is not None:
        result.plot(png_file)
    if quiet:
        if result.best is not None:
            click.echo(result.train_line(task=named))
        else:
            click.echo(f"lrkit: warning: {result.no_best_reason()}", err=True)
            ctx.exit(NO_BEST)
        return
    click.echo(result.table())
    click.echo(result.summary())
    if result.best is not None:
        click.echo(f"train the best: {result.train_line(task=named)}")
        click.echo("in Python:\n  " + result.python(named).replace("\n", "\n  "))
    saved = [n for n in (JOURNAL, *FILES.values()) if (folder / n).is_file()]
    click.echo(f"results written to {folder}: {', '.join(sorted(saved))}")
    for path in (json_file, png_file):
        if path is not None:
            click.echo(f"also written: {path}")
    click.echo(kept)


def option_given(ctx: click.Context, name: str) -> bool:
    source = ctx.get_parameter_source(name)
    return source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT")


# settings that a study made by 'lrkit study create' records (None there: not recorded), and
# tune's defaults for them; the pruner "none" is recorded as such, as tune records it
PLANNED = {"sampler": "tpe", "pruner": "sha", "trials": 20, "budget": None, "seed": 0}
JOINED = ("cv", "seeds", "epochs")  # tune itself reads these from the study (None: the study's)


def _settings(task_name, search, plan, given) -> dict[str, Any]:
    """tune's keyword arguments: the options given, else the study's plan, else the defaults;
    an option given that differs from the study's plan is a UserError."""
    planned = plan.get("task_spec") or plan.get("task")  # spec: as 'study create' was given it
    out: dict[str, Any] = {"task": task_name or planned or "digits-mlp"}
    if task_name and planned is not None and task_name not in (planned, plan.get("task")):
        raise UserError(f"--task {task_name!r} differs from the study's task {plan['task']!r}:"
                        " leave --task out to use the study's, or use another --study")  # fmt: skip
    for key, default in PLANNED.items():
        value = search[key]
        if key in given and plan.get(key) is not None and plan[key] != value:
            raise UserError(
                f"--{key} {value!r} differs from the study's {key} {plan[key]!r}: leave"
                f" --{key} out to use the study's, or use another --study"
            )
        out[key] = value if key in given or plan.get(key) is None else plan[key]
        out[key] = default if out[key] is None else out[key]
    if out["pruner"] == "none":
        out["pruner"] = None
    for key in JOINED:
        out[key] = search[key] if search[key] is not None else plan.get(key)
    out["seeds"] = out["seeds"] or 1
    return out


def load_task(name: str):
    from .find_cmd import _task as find_task

    return find_task(name)


def build_space(text: str | None, lr_range: tuple[float, float] | None, task: Any):
    """The Space of ``--space`` (None: the task's default) with ``--lr-range`` applied."""
    from ..tune.space import as_space

    if text is not None and not text.strip():
        raise UserError("--space is empty: give a space, e.g. --space 'cosine(to={1e-3..0.1 log})'"
                        ", or leave it out for the task's default space")  # fmt: skip
    with user_input("--space" if text is None else f"--space {text!r}"):
        try:
            space = as_space(text, task)
        except TypeError:  # the first Space's as_space takes no task
            space = as_space(text)
        if lr_range is not None:
            space = space.with_lr(*lr_range)
    return space


def study_plan(storage: str, name: str) -> dict[str, Any]:
    """The ``lrkit`` attrs of study ``name`` in ``storage`` ({} when it does not exist yet)."""
    from ..tune.storage import database_errors, open_storage

    store = open_storage(storage, None)
    with database_errors(store, f"reading study {name!r}"):
        try:
            study_id = store.get_study_id_from_name(name)
        except KeyError:
            return {}
        attrs = store.get_study_user_attrs(study_id).get("lrkit")
    return dict(attrs) if isinstance(attrs, dict) else {}
