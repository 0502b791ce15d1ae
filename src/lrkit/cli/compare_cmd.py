"""``lrkit compare``: schedules side by side on a task, each at its own rate, over seeds."""

from __future__ import annotations

import math
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
from .tune_cmd import Named, load_task

DEFAULT_ROOT = Path("runs") / "compare"
DEFAULT_SCHEDULES = "constant,step,cosine,cyclic,onecycle,wsd"


TARGET_MAX = 1e15  # far beyond any metric's value


class MetricValue(FiniteFloat):
    """A finite number in the metric's units, within +-TARGET_MAX (no range shown in --help)."""

    def __init__(self) -> None:
        super().__init__(-TARGET_MAX, TARGET_MAX)

    def accepted(self) -> str:
        return f"a finite number within ±{TARGET_MAX:g}, in the metric's units"

    def _describe_range(self) -> str:
        return ""


class SameLr(click.ParamType):
    """``auto`` or a peak lr in (0, LR_MAX]."""

    name = "auto|LR"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None):
        if isinstance(value, float):
            return value
        text = str(value).strip()
        if text.lower() == "auto":
            return "auto"
        try:
            x = float(text)
        except ValueError:
            x = math.nan
        if not (math.isfinite(x) and 0 < x <= LR_MAX):
            raise OptionError(
                f"--same-lr must be 'auto' or {lr_type().accepted()}, got {text!r}",
                ctx=ctx,
                param=param,
            )
        return x


@cli.command(name="compare")
@click.option("--task", "task_name", default="digits-mlp", show_default=True, help=TASK_HELP)
@click.option("--schedules", default=DEFAULT_SCHEDULES, show_default=True,
              help="The entries, separated by commas: schedule names (constant, step, cosine,"
              " cyclic, onecycle, wsd, linear, exponential, cosine_restarts, inverse_sqrt), any"
              " schedule spec, an optimizer (sgd, adam, adamw...) or a fine-tuning mode"
              " (scratch, full, layerwise, frozen), parts joined with '+'."
              " Example: --schedules 'cosine,cosine+sgd,warmup(10%) >> linear'")  # fmt: skip
@click.option("--seeds", type=WholeNumber(1, 1000), default=3, show_default=True,
              help="Full runs of every entry (seeds --seed and up); an interval needs 2."
              " Example: --seeds 5")  # fmt: skip
@click.option("--lr", type=Named(("pick", "tune")), default="pick", show_default=True,
              help="How each entry's own rate is chosen: pick (pick_lr for its schedule) or tune"
              " (a small Optuna search over the lr alone). Example: --lr tune")  # fmt: skip
@click.option("--same-lr", "same_lr", type=SameLr(), default=None,
              help="Also run every entry at one rate: a peak lr, or auto (the own rate of the"
              " first entry whose rate was chosen; lr-free ones have none); shows how much of a schedule effect was a rate effect."
              " Example: --same-lr auto")  # fmt: skip
@click.option("--budget", type=FiniteFloat(0, 10**6, low_open=True), default=None,
              help="Full runs each entry may spend choosing its rate; default: 1.5 (pick), 6"
              " (tune). Example: --budget 1")  # fmt: skip
@click.option("--epochs", type=epochs_type(), default=None,
              help="Length of every run; default: the task's. Example: --epochs 5")  # fmt: skip
@click.option("--target", type=MetricValue(), default=None,
              help="The metric a run must reach for 'steps to target'; default: 95% of the way"
              " from the worst untrained model to the best entry's mean final."
              " Example: --target 0.95")  # fmt: skip
@click.option("--seed", type=seed_type(), default=0, show_default=True,
              help="The first seed of the runs, and the seed of the rate choices."
              " Example: --seed 1")  # fmt: skip
@click.option("--out", type=PathArg(file_okay=False), default=None,
              help="Folder for compare.json and compare.png; default: runs/compare/<task>."
              " Example: --out runs/cmp1")  # fmt: skip
@click.option("--json", "json_out", type=PathArg(dir_okay=False), default=None,
              help="Also write the result as JSON to FILE. Example: --json compare.json")  # fmt: skip
@click.option("--png", type=PathArg(dir_okay=False), default=None,
              help="Also save the plot to FILE. Example: --png compare.png")  # fmt: skip
def compare_command(task_name: str, schedules: str, seeds: int, lr: str,
                    same_lr: float | str | None, budget: float | None, epochs: int | None,
                    target: float | None, seed: int, out: str | None, json_out: str | None,
                    png: str | None) -> None:  # fmt: skip
    """Compare schedules on a task, each at its own rate, over several seeds.

    Each entry's rate is chosen for its own schedule (pick_lr, or a small tune), then every
    entry trains --seeds times at it. Prints a line per rate chosen and per run, then the
    table (final metric mean ± std with its 95% interval, steps and seconds to the target,
    best epoch) and the verdict: a winner only when its interval separates from the
    runner-up's, else "tied" with the numbers. Saves compare.json and compare.png.

    \b
    Examples:
      lrkit compare --task digits-mlp --seeds 3
      lrkit compare --task wine-mlp --schedules constant,cosine,onecycle --same-lr auto
      lrkit compare --task digits-mlp --schedules 'cosine,cosine+sgd,step(25%, 0.5)' --lr tune
      lrkit compare --task digits-transfer --schedules scratch,full,layerwise,frozen
    """
    from ..tune.compare import as_entries, compare
    from ..tune.compare.result import FILES

    if not task_name.strip():
        raise UserError("--task is empty: give a name, or leave --task out")
    with user_input(f"--schedules {schedules!r}"):
        entries = as_entries(schedules)
    task = load_task(task_name)
    folder = writable_dir(out if out is not None else DEFAULT_ROOT / task.name, "--out")
    json_file = None if json_out is None else writable_file(json_out, "--json")
    png_file = None if png is None else writable_file(png, "--png")
    # compare saves into folder itself: on an interrupt, what finished is saved too
    result = compare(task, entries, seeds=seeds, lr=lr, same_lr=same_lr, epochs=epochs,
                     target=target, budget=budget, seed=seed, out=folder, progress=True)  # fmt: skip
    if json_file is not None:
        result.to_json(json_file)
    if png_file is not None:
        result.plot(png_file)
    click.echo(result.table())
    for path in (json_file, png_file):
        if path is not None:
            click.echo(f"also written: {path}")
    click.echo(f"results written to {folder}: {', '.join(FILES.values())}")
