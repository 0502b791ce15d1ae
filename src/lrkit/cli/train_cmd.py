"""``lrkit tasks`` and ``lrkit train``: the bundled tasks, and one training run on a task."""

from __future__ import annotations

import json
import os
import re
import sys
import time
import warnings
from pathlib import Path

import click

from ..checks import number
from ..errors import UserError
from .app import cli, read_schedule, reading, user_input, writable_dir
from .launch import nproc_option
from .options import LR_MAX, FiniteFloat, PathArg, WholeNumber, epochs_type, lr_type, seed_type
from .schedule_cmd import lr_values, sample_steps

# lrkit.tasks.OPTIMIZERS (not imported: no torch here)
OPTIMIZER_NAMES = (
    "sgd",
    "adam",
    "adamw",
    "prodigy",
    "dadapt-adam",
    "schedulefree-adamw",
    "schedulefree-sgd",
)
WEIGHT_DECAY_MAX = 1e6
BATCH_SIZE_MAX = 10**7

TASK_HELP = (
    "A built-in task (see 'lrkit tasks') or your own 'package.module:function' returning an"
    " lrkit.tasks.Task, importable from the current folder. Example: --task wine-mlp"
)


@cli.command(name="tasks")
def tasks_command() -> None:
    """The built-in tasks, one per line: name, what it trains, metric and defaults.

    \b
    Example:
      lrkit tasks
    """
    from ..tasks import get_task, list_tasks

    names = list_tasks()
    width = max(len(n) for n in names)
    for name in names:
        click.echo(f"{name:<{width}}  {get_task(name).summary}")


@cli.command(name="train")
@click.option("--task", "task_name", default="digits-mlp", show_default=True, help=TASK_HELP)
@click.option(
    "--lr",
    type=lr_type(),
    default=None,
    help="Peak learning rate (the schedule's values multiply it); default: the task's."
    " Example: --lr 0.05",
)
@click.option(
    "--lr-from",
    "lr_from",
    type=PathArg(dir_okay=False),
    default=None,
    help="Take the peak lr from the JSON that 'lrkit find --json' or 'lrkit pick --json' wrote"
    ' (its "lr"); when it holds none (no lr could be trusted), say why and use the task\'s.'
    " Example: --lr-from runs/demo/find.json",
)
@click.option(
    "--schedule",
    "spec",
    default=None,
    help="Schedule in the text form, or a .json/.yaml file holding one; '5%' is a fraction of"
    " the run; default: constant. Example: --schedule 'warmup(5%) >> cosine(to=0.01)'",
)
@click.option(
    "--epochs",
    type=epochs_type(),
    default=None,
    help="Passes over the training data; default: the task's. Example: --epochs 5",
)
@click.option(
    "--seed",
    type=seed_type(),
    default=None,
    help="Seed for the model's initial weights and the data order; default: the task's."
    " Example: --seed 1",
)
@click.option(
    "--optimizer",
    type=click.Choice(OPTIMIZER_NAMES, case_sensitive=False),
    default=None,
    metavar="NAME",
    help="Another optimizer over the task's own param groups: sgd (momentum 0.9), adam or"
    " adamw, torch's defaults otherwise; or, with pip install 'lrkit[lrfree]', the lr-free"
    " prodigy and dadapt-adam (--lr is then a multiplier of the rate they estimate, 1.0 by"
    " default) or the schedule-free schedulefree-adamw and schedulefree-sgd (--schedule"
    " constant or a warmup only); default: the task's. Example: --optimizer prodigy",
)
@click.option(
    "--weight-decay",
    "weight_decay",
    type=FiniteFloat(0, WEIGHT_DECAY_MAX),
    default=None,
    help="Weight decay of every param group that decays; a group the task keeps at 0 while"
    " another decays (wine-mlp's biases) stays at 0; default: the task's."
    " Example: --weight-decay 0.01",
)
@click.option(
    "--batch-size",
    "batch_size",
    type=WholeNumber(1, BATCH_SIZE_MAX),
    default=None,
    help="Examples per training batch (the bundled tasks, and a task with data=TaskData(...));"
    " default: the task's. Example: --batch-size 32",
)
@click.option(
    "--out",
    type=PathArg(file_okay=False),
    default=None,
    help="Folder for history.json and steps.csv; default: runs/<task>-<timestamp>."
    " Example: --out runs/demo",
)
@click.option(
    "--logdir",
    type=PathArg(file_okay=False),
    default=None,
    help="Folder for the run's signals (lr, loss, gradient norms, update ratios) as"
    " signals.csv, signals.jsonl and TensorBoard event files; 'lrkit doctor' reads it."
    " One run per folder: a folder that already holds a run's signals is refused."
    " Example: --logdir runs/demo/logs",
)
@click.option(
    "--guard",
    is_flag=True,
    help="Guard the run (lrkit.Guard): skip an update whose loss or gradient norm is not finite,"
    " spikes or climbs far above the start, roll back repeated trouble to the last snapshot with"
    " a lower lr; the run fails (exit 1) when the guard gives up. Its actions go to --logdir too."
    " Example: --guard",
)
@click.option(
    "--autocast",
    type=click.Choice(["bf16", "fp16"]),
    default=None,
    help="Mixed precision: the forward pass and the loss under torch.autocast in bfloat16 or"
    " float16; fp16 with a GradScaler, whose skipped (overflowed) updates are not steps. The"
    " summary gives the scaler's final scale and the overflows; default: full precision."
    " Example: --autocast bf16",
)
@click.option(
    "--quiet",
    "-q",
    is_flag=True,
    help="No progress bar and no summary table; print only the history's path. Example: --quiet",
)
@nproc_option
def train_command(
    task_name: str,
    lr: float | None,
    lr_from: str | None,
    spec: str | None,
    epochs: int | None,
    seed: int | None,
    optimizer: str | None,
    weight_decay: float | None,
    batch_size: int | None,
    out: str | None,
    logdir: str | None,
    guard: bool,
    autocast: str | None,
    quiet: bool,
) -> None:
    """Train a task once with a learning rate and schedule, and save its history.

    Prints a summary (final and best metric, time), the doctor's verdict on the run (see
    'lrkit doctor') and where history.json was written.

    \b
    Examples:
      lrkit train --task digits-mlp --schedule "warmup(5%) >> cosine(to=0.01)" --out runs/demo
      lrkit train --task mypackage.tasks:my_task --lr 3e-4 --epochs 5
      lrkit train --task digits-mlp --lr 0.05 --logdir runs/logs
      lrkit train --task digits-mlp --lr 0.5 --guard
      lrkit train --task digits-mlp --autocast bf16
      lrkit train --task digits-mlp --lr-from runs/demo/find.json
      lrkit train --task wine-mlp --optimizer sgd --weight-decay 1e-4 --batch-size 32
    """
    from .. import dist
    from ..tasks import get_task
    from ..train import ScheduleFitWarning, fit, schedule_misfit
    from ..watch import Guard, GuardExhausted, Watch

    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())  # so that --task mymodule:make_task finds ./mymodule.py
    changes = variant_flags(optimizer, weight_decay, batch_size)
    task = get_task(task_name)
    if changes:
        with user_input(changes):
            task = task.variant(optimizer, weight_decay, batch_size)
    if lr_from is not None:
        lr = lr_from_file(lr_from, lr, task, quiet)
    epochs = epochs or task.epochs
    schedule = read_schedule(1.0 if spec is None else spec)
    train_loader, _ = task.build_loaders(task.seed if seed is None else seed)
    steps_per_epoch = len(train_loader)
    with user_input(f"--schedule {spec!r} over {epochs * steps_per_epoch} steps"):
        resolved = schedule.resolve(epochs * steps_per_epoch, steps_per_epoch)
        lr_values(resolved, sample_steps(epochs * steps_per_epoch - 1), lr or task.lr, LR_MAX)
    misfit = schedule_misfit(resolved, epochs * steps_per_epoch)
    if misfit is not None and (dist.is_main() or not dist.is_distributed()):  # fit mutes its own
        click.echo(f"lrkit: warning: {misfit}", err=True)
    guarding = Guard() if guard else None
    # the guard goes through the Watch (its actions join the signals the doctor reads); with
    # a guard and no --logdir, a Watch kept in memory, so the doctor sees what the guard did
    watching = logdir is not None or guarding is not None
    sinks = [] if logdir is None else watch_sinks(fresh_logdir(logdir))
    callbacks = [Watch(sinks=sinks, guard=guarding)] if watching else []
    folder = writable_dir(default_out(task.name) if out is None else out, "--out")

    started = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ScheduleFitWarning)
            history = fit(
                task,
                lr,
                schedule,
                epochs=epochs,
                seed=seed,
                progress=False if quiet else None,
                out=folder,
                callbacks=callbacks,
                autocast=autocast,
            )
    except GuardExhausted as e:
        click.echo(f"lrkit: error: {e}\nhistory written to {folder / 'history.json'}", err=True)
        click.get_current_context().exit(1)
    elapsed = time.perf_counter() - started
    if dist.is_distributed() and not dist.is_main():  # every rank trains in step; rank 0 reports
        return
    if not quiet:
        print_summary(history, elapsed, changes)
        if guarding:
            click.echo(guard_summary(guarding))
        if history.autocast:
            click.echo(precision_summary(history))
        click.echo(doctor_summary(callbacks[0] if watching else history))
    if history.status != "completed":
        click.echo(f"lrkit: warning: {history.status}: {history.reason}", err=True)
    click.echo(f"history written to {folder / 'history.json'}")
    if logdir is not None:
        click.echo(f"signals written to {logdir}")


def variant_flags(optimizer: str | None, weight_decay: float | None, batch_size: int | None) -> str:
    """The variant options given, as typed: ``--optimizer sgd --batch-size 32`` ("" for none)."""
    given = [("--optimizer", optimizer), ("--weight-decay", weight_decay)]
    given += [("--batch-size", batch_size)]
    return " ".join(f"{name} {value:g}" if isinstance(value, float) else f"{name} {value}"
                    for name, value in given if value is not None)  # fmt: skip


def fresh_logdir(logdir: str) -> Path:
    """``--logdir``, created, holding no run's signals yet: a second run there would replace
    the CSV and JSON lines and mix its TensorBoard events with the first run's.

    Under torchrun or ``--nproc`` rank 0's look decides for every rank (broadcast): rank 0
    opens the sinks' files right after it, so another rank that looked itself could find
    them and refuse the folder of this very run."""
    from .. import dist
    from ..watch.logs import CSV_FILE, JSONL_FILE, TB_PATTERN

    folder = writable_dir(logdir, "--logdir")
    found = [p.name for p in sorted(folder.iterdir()) if p.name in (CSV_FILE, JSONL_FILE)]
    found += [p.name for p in sorted(folder.glob(TB_PATTERN))]
    found = dist.broadcast(found)  # before rank 0's sinks open their files
    if found:
        raise UserError(
            f"--logdir {str(folder)!r} already holds a run's signals ({', '.join(found[:3])}"
            f"{', ...' if len(found) > 3 else ''}): give a new folder (one run per folder), or"
            " remove those files"
        )
    return folder


def watch_sinks(logdir: Path) -> list:
    """Sinks writing CSV, JSON lines and TensorBoard event files into ``logdir``."""
    from ..watch import CSVSink, JSONLSink, TensorBoardSink

    return [CSVSink(logdir), JSONLSink(logdir), TensorBoardSink(logdir)]


def doctor_summary(run) -> str:
    """The doctor's verdict on the run just trained (a Watch's signals, else the history)."""
    from ..watch import diagnose

    try:
        return "doctor's " + diagnose(run).summary()
    except ValueError as e:  # e.g. a run stopped before its first step
        return f"doctor: no verdict ({e})"


def precision_summary(history) -> str:
    """``mixed precision: fp16, GradScaler scale 4096 at the end, 6 overflowed updates skipped``."""
    text = f"mixed precision: {history.autocast}"
    if history.scale is not None:
        n = history.overflows
        text += f", GradScaler scale {history.scale:g} at the end, {n} overflowed update"
        text += f"{'s' * (n != 1)} skipped"
    return text


def guard_summary(guard) -> str:
    """``guard: 2 skips, 2 rollbacks (lr 0.05 -> 0.025 -> 0.0125)`` or ``guard: no action (...)``."""
    done = [e for e in guard.events if e["action"] != "snapshot"]
    if not done:
        return "guard: no action (no batch was non-finite, a spike or a climb)"
    skips = sum(e["action"] == "skip" for e in done)
    rollbacks = [e["reason"].rsplit("lr ", 1)[-1] for e in done if e["action"] == "rollback"]
    text = f"guard: {skips} skip{'s' * (skips != 1)}, {len(rollbacks)} rollback"
    text += "s" * (len(rollbacks) != 1)
    if not rollbacks:
        return text
    # each rollback's reason ends "lr BEFORE -> AFTER": the lrs the run went through, in order
    # (the first param group's lr: the others keep their ratios to it)
    chain = [rollbacks[0].split(" -> ")[0]] + [r.split(" -> ")[-1] for r in rollbacks]
    return text + f" (lr {' -> '.join(lr.split(', ')[0] for lr in chain)})"


def default_out(task_name: str) -> Path:
    """``runs/<task>-<YYYYmmdd-HHMMSS>``, with characters unsafe in a folder name replaced."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", task_name).strip("-.") or "task"
    return Path("runs") / f"{safe}-{time.strftime('%Y%m%d-%H%M%S')}"


def print_summary(history, elapsed: float, changes: str = "") -> None:
    """A rich table: task (and the variant options given), lr, schedule, steps, final and
    best metric, status, time."""
    from rich.console import Console
    from rich.table import Table

    def number(x: float | None) -> str:
        return "-" if x is None else f"{x:.4g}"

    way = "higher" if history.higher_is_better else "lower"
    table = Table(title="lrkit train", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_row("task", history.task + (f" ({changes})" if changes else ""))
    table.add_row("lr", f"{history.lr:g}")
    table.add_row("schedule", history.schedule)
    if history.resolved_schedule != history.schedule:
        table.add_row("in steps", history.resolved_schedule)
    table.add_row(
        "steps",
        f"{history.steps} ({history.epochs} epoch{'s' * (history.epochs != 1)}"
        f" x {history.steps_per_epoch})",
    )
    table.add_row(
        f"final {history.metric_name}", f"{number(history.final_metric)} ({way} is better)"
    )
    best = history.best_epoch
    table.add_row(
        f"best {history.metric_name}",
        number(history.best_metric) + ("" if best is None else f" (epoch {best + 1})"),
    )
    if history.epochs_log:
        table.add_row("final val loss", number(history.epochs_log[-1]["val_loss"]))
    table.add_row("status", history.status)
    table.add_row("time", f"{elapsed:.1f} s")
    Console(highlight=False).print(table)


def lr_from_file(path: str, lr: float | None, task, quiet: bool = False) -> float | None:
    """The lr that ``--lr-from path`` names: the ``"lr"`` of a find or pick JSON file.

    Rule: a number there is checked like ``--lr`` (in (0, LR_MAX]) and used (one line says so unless quiet);
    ``null`` (the range test trusted no lr) prints its reason on stderr and gives None, the
    task's default lr. Giving ``--lr`` as well, a file that cannot be read, is not JSON or
    holds no ``"lr"`` is a UserError naming the file.
    """
    if lr is not None:
        raise UserError("give either --lr or --lr-from, not both")
    with reading(path, "--lr-from file"):
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise ValueError(f"is not valid JSON: {e}") from e
        if not isinstance(data, dict) or "lr" not in data:
            raise ValueError("holds no \"lr\"; expected what 'lrkit find --json' writes")
        if data["lr"] is not None:
            found = number(data["lr"], 'its "lr"', low=0, high=LR_MAX, low_open=True)
            if not quiet:
                click.echo(f"lr {found:.4g} from {path}")
            return found
    confidence = data.get("confidence")
    reason = confidence.get("reason") if isinstance(confidence, dict) else None
    click.echo(
        f"lrkit: warning: {path} holds no lr (the range test trusted none"
        f"{': ' + str(reason) if reason else ''}); training at {task.name}'s default lr"
        f" {task.lr:g}",
        err=True,
    )
    return None
