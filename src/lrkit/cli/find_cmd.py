"""``lrkit find`` and ``lrkit pick``: a range test with every rule's suggestion, and an
automatic pick of the peak lr for a schedule within a budget of runs."""

from __future__ import annotations

import math
import os
import sys
import warnings

import click

from ..errors import UserError
from .app import cli, read_schedule, user_input, writable_file
from .launch import nproc_option
from .options import FiniteFloat, PathArg, WholeNumber, epochs_type, lr_type, seed_type
from .train_cmd import TASK_HELP

RULE_NAMES = ("steep", "valley", "minimum", "slide", "lrkit")  # lrkit.find.rules.RULES
NO_LR = 3  # exit status of 'lrkit find --quiet' when no lr can be trusted


def _task(name: str):
    """The task called ``name``; ``package.module:function`` is importable from the cwd."""
    from ..tasks import get_task

    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    return get_task(name)


def _number(x: float | None) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x:.4g}"


@cli.command(name="find")
@click.option("--task", "task_name", default="digits-mlp", show_default=True, help=TASK_HELP)
@click.option(
    "--start",
    type=lr_type(),
    default=1e-7,
    show_default=True,
    help="The first lr of the sweep. Example: --start 1e-6",
)
@click.option(
    "--end",
    type=lr_type(),
    default=10.0,
    show_default=True,
    help="The last lr of the sweep (it stops earlier when the loss diverges). Example: --end 1",
)
@click.option(
    "--steps",
    type=WholeNumber(5, 10**6),
    default=100,
    show_default=True,
    help="Optimizer updates in the sweep, lrs spaced evenly in log. Example: --steps 200",
)
@click.option(
    "--seeds",
    type=WholeNumber(1, 1000),
    default=1,
    show_default=True,
    help="Sweeps with different seeds; the median curve is used. Example: --seeds 3",
)
@click.option(
    "--rule",
    type=click.Choice(RULE_NAMES),
    default="lrkit",
    show_default=True,
    help="The rule that picks the lr (every rule's suggestion is shown). Example: --rule valley",
)
@click.option(
    "--json",
    "json_out",
    is_flag=False,
    flag_value="-",
    default=None,
    metavar="[FILE]",
    help="Write the result (curve, suggestions, confidence) as JSON to FILE, or alone to"
    " stdout instead of the table. Example: --json find.json",
)
@click.option(
    "--png",
    type=PathArg(dir_okay=False),
    default=None,
    help="Save the plot (loss against lr, suggestions marked). Example: --png find.png",
)
@click.option(
    "--quiet",
    "-q",
    is_flag=True,
    help="No progress bar and no table; print only the chosen lr, or nothing and exit with"
    f" status {NO_LR} when no lr can be trusted (the reason goes to stderr). Example: --quiet",
)
@nproc_option
def find_command(
    task_name: str,
    start: float,
    end: float,
    steps: int,
    seeds: int,
    rule: str,
    json_out: str | None,
    png: str | None,
    quiet: bool,
) -> None:
    """Run a learning-rate range test on a task and suggest an lr.

    Sweeps the lr from --start to --end over --steps updates, restores the model afterwards,
    and prints the chosen lr with its confidence and every rule's suggestion. A curve that
    cannot be trusted (no descent, too noisy, diverged at once) gives no lr and says why.

    Exit status: 0 done (also when no lr can be trusted, except with --quiet); 2 a bad option;
    3 with --quiet when no lr can be trusted, so that LR=$(lrkit find -q) never runs on empty.
    Inside a torch.distributed group every rank sweeps and only rank 0 prints and writes files.

    \b
    Examples:
      lrkit find --task digits-mlp
      lrkit find --task wine-mlp --seeds 3 --png find.png --json find.json
      lrkit find --task digits-cnn --rule valley --quiet
    """
    from .. import dist
    from ..find import find_lr

    if start >= end:
        raise UserError(f"--start {start:g} must be below --end {end:g}")
    task = _task(task_name)
    to_stdout = json_out == "-"
    json_file = None if json_out in (None, "-") else writable_file(json_out, "--json")
    png_file = None if png is None else writable_file(png, "--png")

    result = find_lr(
        task, start=start, end=end, steps=steps, seeds=seeds, rule=rule,
        progress=False if quiet or to_stdout else None,
    )  # fmt: skip
    if dist.is_distributed() and not dist.is_main():  # every rank sweeps in step; rank 0 reports
        if result.lr is None and quiet:
            click.get_current_context().exit(NO_LR)
        return
    if json_file is not None:
        result.to_json(json_file)
    if png_file is not None:
        result.plot(png_file)
    if to_stdout:
        click.echo(result.to_json())
    elif quiet:
        if result.lr is not None:
            click.echo(f"{result.lr:.6g}")
    else:
        print_find(result, task.name)
    if result.lr is None and not to_stdout:
        click.echo(f"lrkit: warning: {result.summary().splitlines()[0]}", err=True)
    for what, path in (("JSON", json_file), ("plot", png_file)):
        if path is not None and not quiet and not to_stdout:
            click.echo(f"{what} written to {path}")
    if result.lr is None and quiet:
        click.get_current_context().exit(NO_LR)


def print_find(result, task_name: str) -> None:
    """The summary line and a rich table: every rule's suggestion, the chosen one marked."""
    from rich.console import Console
    from rich.table import Table

    head, _, tail = result.summary().partition("\n")
    table = Table(title=f"lrkit find: {task_name}", title_justify="left")
    table.add_column("rule", style="bold")
    table.add_column("suggested lr", justify="right")
    table.add_column("")
    for name, lr in result.suggestions.items():
        mark = "chosen" if name == result.rule else ""
        table.add_row(name, "none" if lr is None else f"{lr:.3g}", mark)
    console = Console(highlight=False)
    console.print(table)
    rates = result.group_lr()
    if len(result.group_lrs) > 1 and rates is not None:
        console.print("each param group at the chosen lr (the groups keep their ratios):")
        groups = Table()
        groups.add_column("group", style="bold")
        groups.add_column("lr", justify="right")
        groups.add_column("ratio", justify="right")
        for name, lr in zip(result.group_names, rates):
            groups.add_row(name, f"{lr:.3g}", f"{lr / result.lr:.3g}")
        console.print(groups)
    console.print(tail)
    console.print(f"[bold]{head}[/bold]" if result.lr is not None else head)
    if not result.confidence.ok:
        console.print(f"confidence: {result.confidence}")


@cli.command(name="pick")
@click.option("--task", "task_name", default="digits-mlp", show_default=True, help=TASK_HELP)
@click.option(
    "--schedule",
    "spec",
    default="warmup(5%) >> cosine",
    show_default=True,
    help="The schedule the lr will be used with, in the text form or a .json/.yaml file"
    " holding one. Example: --schedule 'warmup(5%) >> cosine(to=0.01)'",
)
@click.option(
    "--budget",
    type=FiniteFloat(0, 1000, low_open=True),
    default=1.5,
    show_default=True,
    help="Optimizer steps to spend, as a multiple of one full training run. Example: --budget 2",
)
@click.option(
    "--epochs",
    type=epochs_type(),
    default=None,
    help="The run length the lr is for; default: the task's. Example: --epochs 5",
)
@click.option(
    "--seed",
    type=seed_type(),
    default=None,
    help="Seed of the range test and the short runs; default: the task's. Example: --seed 1",
)
@click.option(
    "--json",
    "json_out",
    type=PathArg(dir_okay=False),
    default=None,
    help="Write the pick (lr, trials, cost) as JSON. Example: --json pick.json",
)
@click.option(
    "--quiet",
    "-q",
    is_flag=True,
    help="No progress and no table; print only the picked lr. Example: --quiet",
)
@nproc_option
def pick_command(
    task_name: str,
    spec: str,
    budget: float,
    epochs: int | None,
    seed: int | None,
    json_out: str | None,
    quiet: bool,
) -> None:
    """Pick the peak lr for a schedule on a task, within a budget counted in full runs.

    Runs a short range test and short runs of the schedule, and prints the lr, every run it
    tried and what it all cost (in optimizer steps and in full runs). Inside a
    torch.distributed group every rank picks in step and only rank 0 prints and writes files.

    \b
    Examples:
      lrkit pick --task digits-mlp --schedule "warmup(5%) >> cosine"
      lrkit pick --task wine-mlp --budget 2 --json pick.json
    """
    from .. import dist
    from ..find import pick_lr
    from ..train.misfit import ScheduleFitWarning

    schedule = read_schedule(spec)
    task = _task(task_name)
    json_file = None if json_out is None else writable_file(json_out, "--json")
    with user_input("lrkit pick"), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ScheduleFitWarning)  # e.g. a budget too small
        pick = pick_lr(
            task, schedule=schedule, budget=budget, epochs=epochs, seed=seed,
            progress=False if quiet else None,
        )  # fmt: skip
    if dist.is_distributed() and not dist.is_main():  # every rank picks in step; rank 0 reports
        return
    for w in caught:
        if issubclass(w.category, ScheduleFitWarning):
            click.echo(f"lrkit: warning: {w.message}", err=True)
    if json_file is not None:
        pick.to_json(json_file)
    if quiet:
        click.echo(f"{pick.lr:.6g}")
        return
    print_pick(pick, task.name)
    if json_file is not None:
        click.echo(f"JSON written to {json_file}")


def print_pick(pick, task_name: str) -> None:
    """Every short run in a rich table (kept: it went on to the next round), then how the
    pick was made (the window, the rounds, the winner, the correction) and its cost."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"lrkit pick: {task_name}", title_justify="left")
    for column in ("round", "lr", "steps", pick.metric_name or "metric", "val loss"):
        table.add_column(column, justify="right")
    table.add_column("")
    last = max((t.round for t in pick.trials), default=0)
    for t in pick.trials:
        kept = any(u.round == t.round + 1 and u.lr == t.lr for u in pick.trials)
        mark = "kept" if kept else ""
        if t.round == last and t.lr in pick.tied:
            mark = "tied best" if len(pick.tied) > 1 else "best"
        table.add_row(str(t.round + 1), f"{t.lr:.3g}", str(t.steps), _number(t.metric),
                      _number(t.val_loss), mark)  # fmt: skip
    console = Console(highlight=False)
    console.print(table)
    for line in pick.explain():
        console.print(line)
    console.print(f"tried: {len(pick.trials)} short runs between {pick.window[0]:.3g} and"
                  f" {pick.window[1]:.3g}")  # fmt: skip
    console.print(
        f"cost: {pick.steps} steps = {pick.cost:.2f} runs of {pick.full_run_steps} steps"
        f" (budget {pick.budget:g})"
    )
    console.print(f"[bold]picked lr {pick.lr:.4g}[/bold] for {pick.schedule}")
