"""``compare``: entries side by side, each at its own rate, over several seeds.

>>> import lrkit
>>> r = lrkit.compare("wine-mlp", ["constant", "cosine"], seeds=2, budget=0.5,
...                   progress=False)  # doctest: +SKIP

The steps of a compare, all through the one training loop (:func:`~lrkit.train.fit`):

1. **Each entry's rate**: ``pick_lr(variant, schedule, budget=...)`` for it (``lr="pick"``),
   or a small :func:`~lrkit.tune.tune` over the lr alone with its schedule fixed
   (``lr="tune"``: ``TUNE_TRIALS`` trials within ``budget`` full runs). The *variant* is the
   task with the entry's fine-tuning mode and optimizer. An entry with its own ``lr`` keeps
   it; an lr-free optimizer (Prodigy, D-Adaptation) runs at 1.0, its lr being a multiplier
   of the rate it estimates.
2. **Full runs**: ``seeds`` runs of every entry at that rate, seeds ``seed .. seed+seeds-1``,
   each validated ``VAL_POINTS`` times (or after every epoch, when a run has more epochs).
3. **The same rate** (``same_lr``): every entry again at one rate, side by side in the same
   result: a float, or ``"auto"``: the first entry's own rate (when it was chosen: picked or
   tuned), else ``pick_lr``'s rate for ``constant``. lr-free entries have no same-rate row;
   an entry whose own rate is that rate reuses its runs.
4. **The numbers**: the target (given, or 95% of the way from the worst untrained metric to
   the best entry's mean final), and per row the summary and verdict of
   :mod:`~lrkit.tune.compare.stats`.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
import time
from pathlib import Path
from typing import Any

from ..._version import __version__
from ...errors import UserError
from ...find import pick_lr
from ...paths import writable_dir
from ...progress import counted
from ...tasks import Task, finetune, get_task
from ...train import fit
from .arguments import BUDGET, LR_MODES, check_arguments
from .entries import Entry, as_entries, check_trains
from .result import FILES, LR_POINTS, CompareResult, Row, SeedRun
from .stats import default_target, target_ends
from .text import target_words

TUNE_TRIALS = 8  # trials of lr="tune"'s search (each entry's), within its budget
VAL_POINTS = 20  # validations of a run with fewer epochs than this (else one an epoch)
_HOW = {"pick": "pick_lr", "tune": "a tune over lr", "given": "the entry", "lr-free":
        "the optimizer (lr-free: a multiplier of the rate it estimates)"}  # fmt: skip


def compare(
    task: Task | str,
    entries: Any = None,
    *,
    seeds: int = 3,
    lr: str = "pick",
    same_lr: float | str | None = None,
    epochs: int | None = None,
    target: float | None = None,
    budget: float | None = None,
    out: str | Path | None = None,
    seed: int = 0,
    progress: bool | None = None,
) -> CompareResult:
    """Compare ``entries`` on ``task``, each at its own rate, over ``seeds`` seeds.

    Args:
        task: a :class:`~lrkit.tasks.Task`, a built-in name or ``"package.module:function"``.
        entries: entry strings (``"cosine"``, ``"cosine+sgd"``, ``"layerwise"``, any schedule
            spec; see :mod:`~lrkit.tune.compare.entries`), :class:`Entry` objects, or one
            comma-separated string; None: ``constant, step, cosine, cyclic, onecycle, wsd``.
        seeds: full runs of every entry (>= 1; an interval needs 2).
        lr: how each entry's rate is chosen: ``"pick"`` (``pick_lr``) or ``"tune"`` (a small
            Optuna search over the lr alone).
        same_lr: also run every entry at one rate: a peak lr, or ``"auto"`` (see the module's
            doc); None: only the own rates.
        epochs: the length of every run (default: the task's); the rates are chosen for it.
        target: the metric a run must reach for "steps to target" (default: 95% of the way
            from the worst untrained model's metric to the best entry's mean final).
        budget: full runs each entry may spend choosing its rate (default 1.5 for pick, 6 for
            tune).
        out: a folder to save ``compare.json`` and ``compare.png`` into (None: nothing saved).
        seed: the first seed of the full runs, and the seed of the rate choices.
        progress: a line per rate chosen and per run (None, True: printed; False: silent).

    Raises UserError for a bad argument (naming it and what is accepted), an unknown entry
    (with "did you mean"), an entry the task cannot train (checked before any training:
    :func:`~lrkit.tune.compare.entries.check_trains`), and an lr that cannot be chosen.
    """
    started = time.perf_counter()
    task = get_task(task)
    items = as_entries(entries)
    opts = check_arguments(seeds, lr, same_lr, epochs, target, budget, seed, progress)
    folder = None if out is None else writable_dir(out, "out")  # before any training
    epochs = task.epochs if opts["epochs"] is None else opts["epochs"]
    spe = len(task.build_loaders(seed)[0])
    total = epochs * spe
    plan = _Plan(epochs, total, opts["seeds"], seed, opts["lr"], opts["budget"],
                 None if epochs >= VAL_POINTS else max(1, math.ceil(total / VAL_POINTS)))  # fmt: skip
    variants = {e.label: _variant(task, e) for e in items}  # a bad entry fails before training
    for e in items:
        check_trains(e, variants[e.label], total, spe)
    say = _Lines(task.name, progress is not False)
    say(
        f"{counted(len(items), 'entry', 'entries')} x {counted(plan.seeds, 'seed')},"
        f" {counted(epochs, 'epoch')} ({counted(total, 'step')}) a run;"
        f" rates by {'pick_lr' if plan.lr == 'pick' else 'a tune over lr'} (budget"
        f" {plan.budget:g} runs each){'' if same_lr is None else f'; same lr: {same_lr}'}"
    )

    same: list[Any] = [None, ""]  # the same lr and how it was chosen, once known

    def keep(done: list[Row]) -> None:  # compare.json of the rows so far: a kill -9 keeps them
        if folder is not None:
            note = f"partial: only the {len(done)} rows that finished (running, or killed)"
            _result(task, plan, done, opts["target"], *same, started, note).to_json(
                folder / FILES["json"]
            )

    rows: list[Row] = _Kept(keep)
    try:
        _own_rows(items, variants, plan, say, rows)
        if opts["same_lr"] is not None and all(e.lr_free for e in items):
            say("no same-lr rows: every entry is lr-free (its lr is a multiplier, 1.0)")
        elif opts["same_lr"] is not None:
            same[:] = _same_rate(opts["same_lr"], task, items, rows, plan)
            _same_rows(items, variants, plan, say, rows, same[0], same[1])
    except KeyboardInterrupt:
        if folder is not None and rows:  # what finished is kept, and says it is partial
            note = f"interrupted: only the {len(rows)} rows that finished before it"
            _result(task, plan, rows, opts["target"], *same, started, note).save(folder)
            say(f"{note} are saved in {folder}")
        raise
    result = _result(task, plan, rows, opts["target"], *same, started)
    if folder is not None:
        result.save(folder)
    return result


def _own_rows(items: list[Entry], variants: dict, plan: _Plan, say: _Lines, rows: list) -> None:
    """Each entry at its own rate, appended to ``rows`` as it finishes."""
    say.done, say.total = 0, len(items) * plan.seeds
    for entry in items:
        rate, how, cost, secs = _own_lr(entry, variants[entry.label], plan)
        say(f"{entry.label}: lr {rate:.4g} by {_HOW[how]}" + (f" ({cost:.2f} runs, {secs:.1f} s)"
                                                         if how in LR_MODES else ""))  # fmt: skip
        rows.append(_row(entry, variants[entry.label], rate, how, "own", plan, say, cost, secs))


def _same_rows(items, variants, plan, say, rows, rate: float, how: str) -> None:
    """Every entry but the lr-free ones at ``rate``, appended to ``rows``; an entry whose own
    rate it is reuses its runs."""
    say(f"same lr for every entry: {rate:.4g} ({how})")
    say.done, say.total = 0, sum(1 for e in items if not e.lr_free) * plan.seeds
    for entry, own in zip(items, list(rows)):
        if entry.lr_free:
            continue
        if own.lr == rate:  # the very runs again: reuse them
            say.done += plan.seeds
            say(f"{entry.label}: its own rate is the same lr: its runs are reused")
            rows.append(dataclasses.replace(own, mode="same", how="same", cost=0.0, seconds=0.0,
                                            runs=list(own.runs)))  # fmt: skip
            continue
        rows.append(_row(entry, variants[entry.label], rate, "same", "same", plan, say))


def _result(task, plan, rows, target, same_rate, same_how, started, note="") -> CompareResult:
    higher = task.metric.higher_is_better
    goal, target_how = _target(target, rows, higher)
    return CompareResult(
        task=task.name,
        metric=task.metric.name,
        higher_is_better=higher,
        seeds=plan.seeds,
        seed=plan.seed,
        epochs=plan.epochs,
        steps=plan.total,
        lr_how=plan.lr,
        budget=plan.budget,
        target=goal,
        target_how=target_how,
        rows=list(rows),
        same_lr=same_rate,
        same_how=same_how,
        seconds=time.perf_counter() - started,
        version=__version__,
        note=note,
    )


class _Kept(list):
    """The rows, handed to ``keep`` each time one is appended (compare.json rewritten)."""

    def __init__(self, keep: Any):
        super().__init__()
        self.keep = keep

    def append(self, row: Row) -> None:
        super().append(row)
        self.keep(list(self))


@dataclasses.dataclass(frozen=True)
class _Plan:
    epochs: int
    total: int
    seeds: int
    seed: int
    lr: str
    budget: float
    val_every: int | None


class _Lines:
    """The progress lines: ``compare <task>: ...`` on stdout, flushed (also into a log file)."""

    def __init__(self, task: str, show: bool):
        self.task, self.show = task, show
        self.done, self.total = 0, 0

    def __call__(self, text: str) -> None:
        if self.show:
            print(f"compare {self.task}: {text}", flush=True)

    def run(self, label: str, run: SeedRun, metric: str) -> None:
        self.done += 1
        if run.status == "completed" and run.best_epoch is not None:
            said = f"{metric} {run.final:.4g} (best {run.best:.4g} at epoch {run.best_epoch + 1})"
        elif run.status == "completed":
            said = f"{metric} {run.final:.4g} (no finite validation metric)"
        else:
            said = f"{run.status}: {run.reason}"
        self(f"[{self.done}/{self.total}] {label} seed {run.seed}: {said}, {run.seconds:.2f} s")


# -- the pieces ------------------------------------------------------------------------------
def _variant(task: Task, entry: Entry) -> Task:
    """The task as the entry trains it: its fine-tuning mode, then its optimizer."""
    if entry.finetune is not None:
        try:
            task = finetune(task, entry.finetune)
        except ValueError as e:  # UserError included: a task that cannot be fine-tuned
            raise UserError(f"entry {entry.label!r}: {e}") from None
    if entry.optimizer is not None:
        task = task.variant(optimizer=entry.optimizer)
    return task


def _own_lr(entry: Entry, task: Task, plan: _Plan) -> tuple[float, str, float, float]:
    """``(lr, how, cost in full runs, seconds)`` of the entry's own rate."""
    if entry.lr is not None:
        return entry.lr, "given", 0.0, 0.0
    if entry.lr_free:
        return 1.0, "lr-free", 0.0, 0.0
    started = time.perf_counter()
    try:
        if plan.lr == "pick":
            p = pick_lr(task, entry.schedule, budget=plan.budget, epochs=plan.epochs,
                        seed=plan.seed, progress=False)  # fmt: skip
            rate, cost = p.lr, p.cost
        else:
            rate, cost = _tuned(task, entry, plan)
    except ValueError as e:  # UserError included; pick_lr's budget too small, say
        raise UserError(f"entry {entry.label!r}: {e}") from None
    return float(rate), plan.lr, float(cost), time.perf_counter() - started


def _tuned(task: Task, entry: Entry, plan: _Plan) -> tuple[float, float]:
    """The best lr of a small tune over the lr alone with the entry's schedule, and its cost."""
    from ..space import as_space
    from ..tune import tune

    with tempfile.TemporaryDirectory(prefix="lrkit-compare-") as tmp:
        result = tune(task, as_space(entry.schedule, task), trials=TUNE_TRIALS,
                      budget=plan.budget, epochs=plan.epochs, seed=plan.seed, progress=False,
                      out=tmp)  # fmt: skip
    if result.best is None:
        raise UserError(f"the tune over lr found no rate: {result.no_best_reason()}")
    attrs = result.attrs
    steps = (attrs.get("find_steps") or 0) + (attrs.get("pick_steps") or 0)
    steps += sum(t["steps"] for t in result.trials)
    return float(result.best.lr), steps / max(1, attrs.get("steps_per_run") or plan.total)


def _same_rate(
    value: float | str, task: Task, items: list[Entry], rows: list[Row], plan: _Plan
) -> tuple[float, str]:
    """The one rate of the same-rate rows, and how it was chosen."""
    if value != "auto":
        return float(value), "given"
    for row in rows:
        if row.how in LR_MODES:
            return row.lr, f"{row.label}'s own rate"
    p = pick_lr(task, "constant", budget=BUDGET["pick"], epochs=plan.epochs, seed=plan.seed,
                progress=False)  # fmt: skip
    return float(p.lr), "pick_lr for constant"


def _target(given: float | None, rows: list[Row], higher: bool) -> tuple[float, str]:
    """The target and how it was set: ``given``, or the default over every row's runs."""
    if given is not None:
        return given, target_words(True, math.nan, math.nan)
    initial = [r.initial for row in rows for r in row.runs]
    finals = [row.summary().mean for row in rows]
    worst, best = target_ends(initial, finals, higher)
    return default_target(initial, finals, higher), target_words(False, worst, best)


def _row(entry, task, rate, how, mode, plan, say, cost=0.0, secs=0.0) -> Row:
    """The entry's runs at ``rate``, one per seed."""
    runs, lr_curve = [], []
    for s in range(plan.seed, plan.seed + plan.seeds):
        initial = _Initial()
        history = fit(task, rate, entry.schedule, epochs=plan.epochs, val_every=plan.val_every,
                      seed=s, progress=False, callbacks=[initial])  # fmt: skip
        run = _seed_run(history, s, initial.value)
        if not lr_curve:
            lr_curve = _lr_curve(history)
        say.run(entry.label, run, task.metric.name)
        runs.append(run)
    return Row(label=entry.label, schedule=entry.schedule, lr=float(rate), how=how, mode=mode,
               optimizer=entry.optimizer, finetune=entry.finetune, cost=cost, seconds=secs,
               runs=runs, lr_curve=lr_curve)  # fmt: skip


class _Initial:
    """A callback that scores the untrained model, before the first step (not timed)."""

    value = math.nan

    def on_train_start(self, state: Any) -> None:
        self.value = float(state.task.validate(state.model, state.val_loader)[0])


def _seed_run(history: Any, seed: int, initial: float) -> SeedRun:
    """One run's record. Its best is the best validation itself (by the metric's direction;
    several validations an epoch may share an epoch number)."""
    log = history.epochs_log
    ok = history.status == "completed" and log and math.isfinite(log[-1]["metric"])
    best = None
    for e in log:
        m = e["metric"]
        if math.isfinite(m) and (best is None or _better(m, best["metric"], history)):
            best = e
    return SeedRun(
        seed=seed,
        status=history.status,
        final=float(log[-1]["metric"]) if ok else math.nan,
        best=math.nan if best is None else float(best["metric"]),
        best_epoch=None if best is None else int(best["epoch"]),
        best_step=None if best is None else int(best.get("step", 0)),
        initial=initial,
        steps=int(history.steps),
        seconds=float(history.time),
        curve=[
            [
                int(e.get("step", 0)),
                round(float(e["time"]), 4),
                float(e["metric"]),
                float(e["val_loss"]),
            ]
            for e in log
        ],  # fmt: skip
        reason=history.reason if history.status != "completed" else "",
    )


def _better(a: float, b: float, history: Any) -> bool:
    return a > b if history.higher_is_better else a < b


def _lr_curve(history: Any) -> list[list[float]]:
    """``[step, lr]`` at most ``LR_POINTS`` times over the run (the highest group's lr)."""
    n = len(history.step)
    if n == 0:
        return []
    picks = sorted({round(i * (n - 1) / max(1, LR_POINTS - 1)) for i in range(LR_POINTS)})
    return [[int(history.step[i]), float(max(history.lr_groups[i]))] for i in picks]


__all__ = ["compare", "LR_MODES", "BUDGET", "TUNE_TRIALS", "VAL_POINTS"]
