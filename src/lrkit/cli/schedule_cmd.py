"""``lrkit schedule list`` and ``lrkit schedule show SPEC``: the catalogue and a preview."""

from __future__ import annotations

import math

import click

from ..errors import UserError
from .app import cli, read_schedule, user_input, writable_file
from .options import PathArg, WholeNumber, lr_type

SPARKS = "▁▂▃▄▅▆▇█"
STEPS_MAX = 10**12  # a preview samples at most 2000 steps, so any real run length is cheap


@cli.group(name="schedule")
def schedule_group() -> None:
    """The schedule catalogue and a preview of any schedule spec.

    \b
    Examples:
      lrkit schedule list
      lrkit schedule show "warmup(5%) >> cosine(to=0.01)" --steps 1000
    """


@schedule_group.command(name="list")
def schedule_list() -> None:
    """Every schedule and combinator, with a one-line summary.

    \b
    Example:
      lrkit schedule list
    """
    from ..schedules import REGISTRY

    width = max(len(name) for name in REGISTRY)
    for name, cls in REGISTRY.items():
        click.echo(f"{name:<{width}}  {summary(cls)}")


def summary(cls: type) -> str:
    """A class's docstring summary: its first paragraph on one line, without ``markup``."""
    doc = (cls.__doc__ or "").strip()
    paragraph = doc.split("\n\n")[0]
    return " ".join(line.strip() for line in paragraph.splitlines()).replace("``", "")


@schedule_group.command(name="show")
@click.argument("spec")
@click.option(
    "--steps",
    type=WholeNumber(1, STEPS_MAX),
    default=None,
    help="Length of the run in steps, which '5%' and open-ended parts resolve against;"
    " default: the schedule's own length. Example: --steps 1000",
)
@click.option(
    "--steps-per-epoch",
    type=WholeNumber(1, STEPS_MAX),
    default=None,
    help="Steps in one epoch, for lengths written in epochs like '2ep'. Example: --steps-per-epoch 50",
)
@click.option(
    "--lr",
    type=lr_type(),
    default=1.0,
    show_default=True,
    help="Base lr the values multiply (1 shows the multipliers). Example: --lr 3e-4",
)
@click.option(
    "--png",
    type=PathArg(dir_okay=False),
    default=None,
    help="Also save a plot of the whole schedule as a PNG image. Example: --png schedule.png",
)
def schedule_show(
    spec: str, steps: int | None, steps_per_epoch: int | None, lr: float, png: str | None
) -> None:
    """Preview SPEC: a table of values at a few steps and a sparkline of the whole run.

    SPEC is a schedule in the text form, quoted for the shell, or a .json/.yaml/.yml file
    holding one (what lrkit.schedules.dump_schedule writes).

    \b
    Example:
      lrkit schedule show "warmup(5%) >> cosine(to=0.01)" --steps 1000 --png lr.png
    """
    from rich.console import Console
    from rich.table import Table

    schedule = read_schedule(spec, "schedule")
    with user_input(f"schedule {spec!r}"):
        resolved = schedule.resolve(steps, steps_per_epoch)
        steps = steps or _own_length(resolved)
        xs = sample_steps(steps)
        values = lr_values(resolved, xs, lr)
    if png is not None:
        writable_file(png, "--png")

    console = Console(highlight=False)
    console.print(repr(resolved), soft_wrap=True)
    table = Table()
    table.add_column("step", justify="right")
    table.add_column("of run", justify="right")
    table.add_column("lr" if lr != 1.0 else "value", justify="right")
    for t, value in zip(preview_steps(steps), lr_values(resolved, preview_steps(steps), lr)):
        table.add_row(str(t), f"{100 * t / steps:.0f}%", f"{value:.6g}")
    console.print(table)
    console.print(f"{sparkline(values)}  min {min(values):.4g}  max {max(values):.4g}")
    if png is not None:
        plot(xs, values, repr(resolved), png, ylabel="lr" if lr != 1.0 else "lr multiplier")
        console.print(f"plot written to {png}")


def lr_values(schedule, steps: list[int], lr: float, high: float | None = None) -> list[float]:
    """``lr * schedule(t)`` at each step; a UserError naming the first step where it is not
    finite (or above ``high``)."""
    values = []
    for t in steps:
        try:
            value = lr * schedule(t)
        except OverflowError as e:  # until every schedule refuses such values when built
            raise UserError(f"{schedule!r} overflows at step {t}: its value is too large") from e
        if not math.isfinite(value):
            raise UserError(
                f"lr {lr:g} times {schedule!r} at step {t} is {value}, not a finite number"
            )
        if high is not None and value > high:
            raise UserError(
                f"lr {lr:g} times {schedule!r} at step {t} is {value:.4g}, above {high:g},"
                " the largest lr accepted"
            )
        values.append(value)
    return values


def _own_length(schedule) -> int:
    length = schedule.length
    if type(length) is not int or length < 1:
        raise UserError(f"{schedule!r} has no length of its own; give --steps N")
    return length


def sample_steps(steps: int, most: int = 2000) -> list[int]:
    """Every step from 0 to ``steps`` when there are at most ``most``, else ``most`` evenly spaced."""
    if steps + 1 <= most:
        return list(range(steps + 1))
    return sorted({round(i * steps / (most - 1)) for i in range(most)})


def preview_steps(steps: int, rows: int = 11) -> list[int]:
    """About ``rows`` evenly spaced steps from 0 to ``steps``, both included."""
    return sorted({round(i * steps / (rows - 1)) for i in range(rows)})


def sparkline(values: list[float], width: int = 60) -> str:
    """``values`` resampled to ``width`` points and drawn with block characters.

    >>> sparkline([0, 1, 2, 3], width=4)
    '▁▃▆█'
    """
    if not values:
        return ""
    n = min(width, len(values))
    points = [values[round(i * (len(values) - 1) / max(n - 1, 1))] for i in range(n)]
    lo, hi = min(points), max(points)
    if hi - lo <= 1e-12 * max(abs(hi), 1.0):
        return SPARKS[len(SPARKS) // 2] * n
    top = len(SPARKS) - 1
    return "".join(SPARKS[round((v - lo) / (hi - lo) * top)] for v in points)


def plot(
    steps: list[int], values: list[float], title: str, path: str, *, ylabel: str = "lr multiplier"
) -> None:
    """Save a line plot of ``values`` against ``steps`` as a PNG (matplotlib, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5), dpi=100)
    try:
        ax.plot(steps, values, linewidth=1.5)
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel)
        ax.set_title(title if len(title) <= 70 else title[:67] + "...", fontsize=9)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        try:
            fig.savefig(path, format="png")
        except OSError as e:
            raise UserError(f"cannot write --png {path!r}: {e.strerror or e}") from e
    finally:
        plt.close(fig)
