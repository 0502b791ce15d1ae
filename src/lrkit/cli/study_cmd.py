"""``lrkit study create|list|show``: studies on shared storage, for tunes with many workers.

``create`` makes the study once, recording the task, the space and how trials run in its
``user_attrs["lrkit"]``, so that every ``lrkit tune --storage URL --study NAME`` worker reads
them instead of being told again. The password of a storage URL is never printed.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import click

from ..errors import UserError
from .app import cli, writable_file
from .options import PathArg
from .train_cmd import TASK_HELP
from .tune_cmd import PLANNED, STORAGE_HELP, Named, build_space, search_options

STORAGE = click.option("--storage", envvar="LRKIT_STORAGE", required=True,
                       help=STORAGE_HELP + " Example: --storage postgresql://lr@db/studies")  # fmt: skip


@cli.group(name="study")
def study_group() -> None:
    """Studies on shared storage (create, list, show); rules of thumb measured (batch-size, clip).

    \b
    Examples:
      lrkit study batch-size --task digits-mlp --batch-sizes 16,32,64,128,256
      lrkit study clip --task digits-mlp
      lrkit study create --storage postgresql://lr@db/studies --task wine-mlp --cv 3 wine
      lrkit tune --storage postgresql://lr@db/studies --study wine     # on every worker
      lrkit study list --storage postgresql://lr@db/studies
      lrkit study show --storage postgresql://lr@db/studies wine
    """


@study_group.command(name="create")
@STORAGE
@click.option("--task", "task_name", default=None,
              help=TASK_HELP + "; recorded so that workers need not give it (it also sets the"
              " study's direction)")  # fmt: skip
@search_options
@click.option("--direction", type=Named(("maximize", "minimize")), default=None,
              help="Whether a higher metric is better; default: the task's metric says."
              " Example: --direction minimize")  # fmt: skip
@click.argument("name")
@click.pass_context
def create_command(ctx: click.Context, storage: str, task_name: str | None,
                   direction: str | None, name: str, **search: Any) -> None:  # fmt: skip
    """Create study NAME on --storage, recording the task, space and settings for workers.

    \b
    Examples:
      lrkit study create --storage sqlite:///tune.db --task digits-mlp --trials 40 digits
      lrkit study create --storage postgresql://lr@db/studies --task wine-mlp \\
          --space 'warmup({0..10%}) >> cosine(to={1e-3..1e-1 log})' --cv 3 --seeds 2 wine
    """
    from .._version import __version__
    from ..tune.storage import create_study, list_studies, open_storage, redact
    from .tune_cmd import load_task, option_given

    optuna_quiet()
    if not name.strip():
        raise UserError("the study NAME is empty: give a name, e.g. wine-cosine")
    plan: dict[str, Any] = {"version": __version__, "created_by": "lrkit study create"}
    if task_name is not None:
        task = load_task(task_name)
        plan.update(task=task.name, task_spec=task_name, metric=task.metric.name,
                    higher_is_better=task.metric.higher_is_better)  # fmt: skip
        direction = direction or ("maximize" if task.metric.higher_is_better else "minimize")
        if search["space"] is not None or search["lr_range"] is not None:
            space = build_space(search["space"], search["lr_range"], task)
            plan["space"] = _text(space)
        if search["cv"] is not None:  # a task that cannot be split is refused now, not by workers
            task.folds(search["cv"], search["seed"] or 0)
    elif search["space"] is not None or search["lr_range"] is not None:
        raise UserError("--space and --lr-range need --task (a space is read against its task)")
    if direction is None:
        raise UserError("give --task (its metric sets the direction) or --direction")
    for key in (*PLANNED, "cv", "seeds", "epochs"):
        if option_given(ctx, key):
            plan[key] = search[key]
    store = open_storage(storage, None)
    if name.strip() in list_studies(store):  # said before trying (create_study refuses it too)
        raise UserError(
            f"a study named {name.strip()!r} already exists in {redact(storage)!r}; give another"
            " name, or run 'lrkit tune --storage URL --study NAME' on it to add trials"
        )
    create_study(store, name, direction=direction, attrs={"lrkit": plan})
    where = redact(storage)
    click.echo(f"created study {name!r} ({direction}) in {where}")
    shown = ", ".join(
        f"{k} {v}" for k, v in plan.items() if k not in ("version", "created_by", "task_spec")
    )
    if shown:
        click.echo(f"recorded: {shown}")
    hidden = " (the password shown as ***: give it as here, or in $LRKIT_STORAGE)"
    click.echo(f"on every worker: lrkit tune --storage {shlex.quote(where)} --study"
               f" {shlex.quote(name)}{hidden if where != storage else ''}")  # fmt: skip


def optuna_quiet() -> None:
    """Optuna's own INFO lines ("A new study created ...") off: lrkit prints its own."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)


def _text(space: Any) -> str:
    text = getattr(space, "text", None)
    return text() if callable(text) else str(space)


@study_group.command(name="list")
@STORAGE
def list_command(storage: str) -> None:
    """The studies on --storage: name, task, direction, trials by state, best metric.

    \b
    Example:
      lrkit study list --storage sqlite:///tune.db
    """
    import optuna

    from ..tune.storage import database_errors, open_storage, redact
    from ..tune.text import fmt

    store = open_storage(_existing(storage), None)
    with database_errors(store, "listing the studies"):
        summaries = optuna.get_all_study_summaries(store, include_best_trial=True)
    if not summaries:
        click.echo(f"no study in {redact(storage)}")
        return
    rows = [("study", "task", "direction", "trials", "best")]
    for s in sorted(summaries, key=lambda s: s.study_name):
        attrs = s.user_attrs.get("lrkit") or {}
        best = s.best_trial
        value = "-" if best is None else fmt(best.value)
        rows.append((s.study_name, str(attrs.get("task", "-")), s.direction.name.lower(),
                     str(s.n_trials), value))  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


@study_group.command(name="show")
@STORAGE
@click.argument("name")
@click.option("--json", "json_out", type=PathArg(dir_okay=False), default=None,
              help="Also write the result as JSON to FILE. Example: --json tune.json")  # fmt: skip
@click.option("--png", type=PathArg(dir_okay=False), default=None,
              help="Also save the plot. Example: --png tune.png")  # fmt: skip
def show_command(storage: str, name: str, json_out: str | None, png: str | None) -> None:
    """Study NAME's trials table and summary (the best, importance, the doctor's verdicts).

    \b
    Example:
      lrkit study show --storage sqlite:///tune.db digits
    """
    from ..tune.result import TuneResult
    from ..tune.storage import load_study, open_storage

    json_file = None if json_out is None else writable_file(json_out, "--json")
    png_file = None if png is None else writable_file(png, "--png")
    study = load_study(open_storage(_existing(storage), None), name)
    result = TuneResult.from_study(study, storage=storage)
    click.echo(result.table())
    click.echo(result.summary())
    if result.best is not None:
        spec = result.attrs.get("task_spec")  # the task as 'study create' was given it
        click.echo(f"train the best: {result.train_line(task=spec)}")
    if json_file is not None:
        result.to_json(json_file)
        click.echo(f"JSON written to {json_file}")
    if png_file is not None:
        result.plot(png_file)
        click.echo(f"plot written to {png_file}")


def _existing(storage: str) -> str:
    """``storage``, for a command that only reads it: a journal or SQLite file that is not
    there is a UserError (opening it would leave an empty file behind)."""
    text = storage.strip()
    path = None
    if "://" not in text:
        path = Path(text)
    elif text.lower().startswith("sqlite:///"):
        path = Path(text[len("sqlite:///") :])
    if path is not None and text and not path.exists():
        raise UserError(
            f"no storage file {str(path)!r}: a study is made by 'lrkit study create' or"
            " 'lrkit tune'; check the path"
        )
    return storage
