"""``lrkit study batch-size`` and ``lrkit study clip``: rules of thumb about the lr, measured;
``lrkit scale-lr``: one rule applied.

Both print a line per run, then a table and the verdict, save JSON and a PNG into ``--out``
(default ``runs/study/<study>/<task>``) and say where in their last line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..errors import UserError
from .app import cli, writable_dir
from .options import FiniteFloat, OptionError, PathArg, WholeNumber, epochs_type, lr_type, seed_type
from .study_cmd import study_group
from .train_cmd import TASK_HELP
from .tune_cmd import Named

DEFAULT_ROOT = Path("runs") / "study"


class NumberList(click.ParamType):
    """A comma-separated list, each item checked by ``item`` (a FiniteFloat or WholeNumber)."""

    name = "LIST"

    def __init__(self, item: click.ParamType) -> None:
        self.item = item

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None):
        if isinstance(value, list):
            return value
        name = "--" + (
            param.name.replace("_", "-") if param is not None and param.name else "value"
        )
        parts = [p.strip() for p in str(value).split(",")]
        if not any(parts) or not all(parts):
            raise OptionError(f"{name} {str(value)!r}: give numbers separated by commas, e.g."
                              f" {name} {self._example()}", ctx=ctx, param=param)  # fmt: skip
        out = []
        for part in parts:
            try:
                out.append(self.item.convert(part, None, ctx))
            except click.BadParameter:
                raise OptionError(
                    f"{name} {str(value)!r}: {part!r} is not {self.item.accepted()}",
                    ctx=ctx, param=param,
                ) from None  # fmt: skip
        return out

    def _example(self) -> str:
        return "16,32,64" if isinstance(self.item, WholeNumber) else "0.01,0.1,1"


COMMON = [
    click.option("--task", "task_name", default="digits-mlp", show_default=True, help=TASK_HELP),
    click.option(
        "--schedule",
        default="warmup(5%) >> cosine",
        show_default=True,
        help="The schedule of every run (its peak is the lr)."
        " Example: --schedule 'cosine(to=0.01)'",
    ),  # fmt: skip
    click.option(
        "--epochs",
        type=epochs_type(),
        default=None,
        help="Length of every run; default: the task's. Example: --epochs 5",
    ),  # fmt: skip
    click.option(
        "--seed",
        type=seed_type(),
        default=0,
        show_default=True,
        help="The (first) seed of every run. Example: --seed 1",
    ),  # fmt: skip
    click.option(
        "--seeds",
        type=WholeNumber(1, 100),
        default=1,
        show_default=True,
        help="Runs per point, seeds --seed, --seed + 1, ... Example: --seeds 3",
    ),  # fmt: skip
]


def common_options(f):
    for option in reversed(COMMON):
        f = option(f)
    return f


def _out(out: str | None, study: str, task: Any) -> Path:
    return writable_dir(out if out is not None else DEFAULT_ROOT / study / task.name, "--out")


def _schedule(text: str) -> Any:
    """The schedule of ``--schedule`` (a spec or a file), refused now when it does not parse."""
    from .app import read_schedule

    if not text.strip():
        raise UserError(
            "--schedule is empty: give a schedule, e.g. --schedule 'warmup(5%) >> cosine'"
        )
    return read_schedule(text)


@study_group.command(name="batch-size")
@common_options
@click.option("--batch-sizes", "batch_sizes", type=NumberList(WholeNumber(1, 10**9)),
              required=True, help="At least 3 batch sizes, each at most the training data's"
              " size. Example: --batch-sizes 16,32,64,128,256")  # fmt: skip
@click.option("--budget", type=FiniteFloat(0, 10**4, low_open=True), default=1.5,
              show_default=True, help="Each pick's budget, in full runs at its batch size (raised"
              " where a run is too short for a pick). Example: --budget 3")  # fmt: skip
@click.option("--out", type=PathArg(file_okay=False), default=None,
              help="Folder for batch-size.json and batch-size.png; default:"
              " runs/study/batch-size/<task>. Example: --out runs/bs")  # fmt: skip
def batch_size_command(task_name: str, schedule: str, epochs: int | None, seed: int, seeds: int,
                       batch_sizes: list[int], budget: float, out: str | None) -> None:  # fmt: skip
    """The best lr (by pick_lr) at each batch size, and the fit lr ∝ batch^k.

    Prints k with its 95% interval and which rule it admits (linear: k = 1, Goyal et al.
    2017; square root: k = 0.5, Malladi et al. 2022), and up to which batch size each rule,
    applied from the smallest batch's lr, stays within a factor of 2 of the best lr.

    \b
    Examples:
      lrkit study batch-size --task digits-mlp --batch-sizes 16,32,64,128,256
      lrkit study batch-size --task wine-mlp --batch-sizes 8,16,32,64 --seeds 3 --budget 2
    """
    from ..tune.thumb import batch_size_study
    from ..tune.thumb.batch_size import FILES, check_batch_sizes
    from .tune_cmd import load_task

    task = load_task(task_name)
    check_batch_sizes(task, batch_sizes)
    schedule = _schedule(schedule)
    folder = _out(out, "batch-size", task)
    result = batch_size_study(task, batch_sizes, schedule=schedule, budget=budget, epochs=epochs,
                              seed=seed, seeds=seeds, progress=click.echo)  # fmt: skip
    click.echo(result.table())
    click.echo(result.summary())
    result.save(folder)
    click.echo(f"results written to {folder}: {', '.join(FILES.values())}")


@study_group.command(name="clip")
@common_options
@click.option("--thresholds", default="0.25x,1x,4x", show_default=True,
              help="Clip norms: numbers (absolute) or Nx, N times the median gradient norm of a"
              " short run at the task's lr. Example: --thresholds 0.5,1,4")  # fmt: skip
@click.option("--lrs", type=NumberList(lr_type()), default=None,
              help="The lrs to climb; default: from the task's lr / 10 up, 0.25 decades apart,"
              " until each arm is past its peak (two runs that neither train nor beat its best). Example: --lrs 0.01,0.03,0.1,0.3,1")  # fmt: skip
@click.option("--tolerance", type=FiniteFloat(0, 1, low_open=True, high_open=True), default=0.05,
              show_default=True, help="A run trains when it does not diverge and its final"
              " metric is within this fraction of the best's. Example: --tolerance 0.02")  # fmt: skip
@click.option("--out", type=PathArg(file_okay=False), default=None,
              help="Folder for clip.json and clip.png; default: runs/study/clip/<task>."
              " Example: --out runs/clip")  # fmt: skip
def clip_command(task_name: str, schedule: str, epochs: int | None, seed: int, seeds: int,
                 thresholds: str, lrs: list[float] | None, tolerance: float,
                 out: str | None) -> None:  # fmt: skip
    """The largest lr that still trains, without clipping and with clipping at each threshold.

    A run trains when it does not diverge and its final metric is within --tolerance of the
    best of the study. Prints a line per run, the table (largest trainable lr per arm, and
    x no clipping), every run's metric and the verdict.

    \b
    Examples:
      lrkit study clip --task digits-mlp
      lrkit study clip --task wine-mlp --thresholds 0.5,1,4 --lrs 0.01,0.03,0.1,0.3,1,3
    """
    from ..tune.thumb import clip_study
    from ..tune.thumb.clip import lr_grid, parse_thresholds
    from ..tune.thumb.clip_result import FILES
    from .tune_cmd import load_task

    task = load_task(task_name)
    try:
        parse_thresholds(thresholds)
    except UserError as e:
        raise UserError(f"--thresholds {thresholds!r}: {e}") from None
    lr_grid(task, lrs)
    schedule = _schedule(schedule)
    folder = _out(out, "clip", task)
    result = clip_study(task, thresholds, lrs=lrs, tolerance=tolerance, seeds=seeds,
                        epochs=epochs, schedule=schedule, seed=seed, progress=click.echo)  # fmt: skip
    click.echo(result.table())
    click.echo(result.grid_table())
    click.echo(result.verdict)
    result.save(folder)
    click.echo(f"results written to {folder}: {', '.join(FILES.values())}")


@cli.command(name="scale-lr")
@click.argument("lr", type=lr_type())
@click.option("--from-batch", "from_batch", type=WholeNumber(1, 10**9), required=True,
              help="The batch size LR was tuned at. Example: --from-batch 256")  # fmt: skip
@click.option("--to-batch", "to_batch", type=WholeNumber(1, 10**9), required=True,
              help="The batch size to train at. Example: --to-batch 1024")  # fmt: skip
@click.option("--rule", type=Named(("linear", "sqrt")),
              default="linear", show_default=True,
              help="linear (SGD, Goyal et al. 2017) or sqrt (Adam, Malladi et al. 2022)."
              " Example: --rule sqrt")  # fmt: skip
@click.option("--quiet", "-q", is_flag=True, help="Print only the new lr. Example: -q")
def scale_lr_command(lr: float, from_batch: int, to_batch: int, rule: str, quiet: bool) -> None:
    """The lr for another batch size by the linear or the square-root rule, with its source
    and, when the lr rises, the warmup to use ('lrkit study batch-size' measures which rule
    holds on your model).

    \b
    Examples:
      lrkit scale-lr 0.1 --from-batch 256 --to-batch 1024
      lrkit scale-lr 3e-4 --from-batch 32 --to-batch 256 --rule sqrt
      LR=$(lrkit scale-lr 0.1 --from-batch 256 --to-batch 1024 -q)
    """
    from ..schedules.scaling import scale_lr

    scaled = scale_lr(lr, from_batch, to_batch, rule=rule)
    if quiet:
        click.echo(f"{scaled.lr:.6g}")
        return
    click.echo(f"lr {scaled.lr:.6g} at batch {to_batch} ({scaled.rule} rule: x{scaled.factor:.4g}"
               f" the lr {lr:g} at batch {from_batch})")  # fmt: skip
    click.echo(f"source: {scaled.source}")
    if scaled.warmup:
        click.echo(f"warmup: {scaled.warmup}")
