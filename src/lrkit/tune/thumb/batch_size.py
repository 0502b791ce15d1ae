"""``batch_size_study``: the best lr at each batch size, and whether lr ∝ batch^k follows a rule.

For each batch size ``b`` the task is re-batched (``task.variant(batch_size=b)``, the same
epochs, so a larger batch takes fewer steps) and :func:`~lrkit.find.pick_lr` picks the peak lr
for the schedule within ``budget`` full runs of *that* batch size. Then:

- **the fit**: ``log lr = a + k log b`` by least squares with ``k``'s 95% interval (Student's
  t, ``n - 2`` degrees of freedom; :mod:`~lrkit.tune.thumb.powerlaw`); the verdict reads the
  interval against ``k = 1`` (the linear rule, Goyal et al. 2017) and ``k = 0.5`` (the
  square-root rule, Malladi et al. 2022): a rule *holds* when its ``k`` is inside;
- **where each rule stops holding**: the rule applied from the smallest batch's lr, as
  :func:`~lrkit.scale_lr` would, holds up to the largest batch size before the first one whose
  measured best lr is more than a factor of 2 (``TOLERANCE``) off the rule's (a pick's
  candidates are 0.375 decades, x2.4, apart, so one candidate's step off is a miss; half a
  step is not); the table also shows the local slope between neighbouring batch sizes.

A batch size whose full run is too short for ``budget`` (a range test and one round of short
runs need 52 steps) is picked with the smallest budget that affords it, shown in the table.
"""

from __future__ import annotations

import math
import numbers
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...checks import number, shown, whole
from ...errors import UserError
from ...find import pick_lr
from ...find.pick import CANDIDATES, MIN_HORIZON, MIN_SWEEP
from ...progress import counted
from ...results import Result
from ...tasks import Task, get_task
from .powerlaw import (
    RULE_K,
    TOLERANCE,
    PowerLaw,
    fit_power_law,
    holds_up_to,
    local_slopes,
    verdict,
    where_it_stops,
)
from .report import Say, finish_plot, save_study, say_with, table

DEFAULT_SCHEDULE = "warmup(5%) >> cosine"
FILES = {"json": "batch-size.json", "png": "batch-size.png"}


@dataclass
class BatchSizeStudy(Result):
    """What :func:`batch_size_study` found: one row per batch size (``batch_size``,
    ``steps_per_epoch``, ``lr``, ``budget``, ``cost``, ``seconds``), the ``fit`` (a
    :class:`~lrkit.tune.thumb.powerlaw.PowerLaw`), ``verdict`` and ``stops`` (one line per rule)."""

    task: str
    schedule: str
    epochs: int
    budget: float
    seed: int
    metric_name: str
    rows: list[dict[str, Any]]
    fit: PowerLaw
    seeds: int = 1
    holds: list[dict[str, Any]] = field(default_factory=list)

    @property
    def batch_sizes(self) -> list[int]:
        return [r["batch_size"] for r in self.rows]

    @property
    def lrs(self) -> list[float]:
        return [r["lr"] for r in self.rows]

    @property
    def k(self) -> float:
        return self.fit.k

    @property
    def interval(self) -> tuple[float, float]:
        return (self.fit.low, self.fit.high)

    @property
    def verdict(self) -> str:
        """``k`` with its interval, and which rule holds, in words."""
        return verdict(self.fit)

    @property
    def stops(self) -> list[str]:
        """Where each rule stops holding, one line per rule."""
        return [where_it_stops(h) for h in self.holds]

    def table(self) -> str:
        """The rows as aligned text: batch, steps per epoch, best lr, local slope, budget."""
        slopes = local_slopes(self.batch_sizes, self.lrs)
        body = [
            (
                str(r["batch_size"]),
                str(r["steps_per_epoch"]),
                f"{r['lr']:.4g}",
                "-" if s is None else f"{s + 0.0:.2f}",
                f"{r['budget']:g}" + ("" if r["budget"] == self.budget else " (raised)"),
                f"{r['seconds']:.1f}",
            )
            for r, s in zip(self.rows, slopes)
        ]
        head = ("batch", "steps/epoch", "best lr", "local k", "budget", "seconds")
        return table(head, body)

    def summary(self) -> str:
        """The verdict and where each rule stops, one per line."""
        return "\n".join([self.verdict, *self.stops])

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "batch-size study",
            "task": self.task,
            "schedule": self.schedule,
            "epochs": self.epochs,
            "budget": self.budget,
            "seed": self.seed,
            "seeds": self.seeds,
            "metric_name": self.metric_name,
            "rows": [dict(r) for r in self.rows],
            "fit": self.fit.to_dict(),
            "verdict": self.verdict,
            "holds": [dict(h) for h in self.holds],
            "stops": self.stops,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BatchSizeStudy:
        if data.get("kind") != "batch-size study":
            raise ValueError(f"not a batch-size study (kind {data.get('kind')!r})")
        return cls(
            task=str(data["task"]),
            schedule=str(data["schedule"]),
            epochs=int(data["epochs"]),
            budget=float(data["budget"]),
            seed=int(data["seed"]),
            seeds=int(data.get("seeds", 1)),
            metric_name=str(data["metric_name"]),
            rows=[dict(r) for r in data["rows"]],
            fit=PowerLaw(**{k: float(v) if k != "n" else int(v) for k, v in data["fit"].items()}),
            holds=[dict(h) for h in data["holds"]],
        )

    def plot(self, path: str | Path | None = None) -> Any:
        """Best lr against batch size on log-log axes: the measured picks (each seed's as a grey
        dot), the fit (with ``k``), and the linear and square-root rules' lines through the smallest batch's lr.
        ``path`` saves it; returns the Figure."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=(6.5, 4.5))
        FigureCanvasAgg(fig)
        ax = fig.subplots()
        b, lrs = self.batch_sizes, self.lrs
        if self.seeds > 1:
            each = [(r["batch_size"], x) for r in self.rows for x in r.get("lrs", [])]
            ax.plot([e[0] for e in each], [e[1] for e in each], ".", color="grey", alpha=0.6,
                    label=f"each pick ({counted(self.seeds, 'seed')})")  # fmt: skip
        label = "best lr (pick_lr)" if self.seeds == 1 else "geometric mean of the picks"
        ax.plot(b, lrs, "o", color="black", label=label, zorder=3)
        ends = [min(b), max(b)]
        ax.plot(ends, [self.fit.predict(x) for x in ends], "-", color="C0",
                label=f"fit: k = {self.k:.2f} [{self.fit.low:.2f}, {self.fit.high:.2f}]")  # fmt: skip
        b0, lr0 = b[0], lrs[0]
        for rule, style in (("linear", "--"), ("sqrt", ":")):
            k = RULE_K[rule]
            ax.plot(ends, [lr0 * (x / b0) ** k for x in ends], style, color="C1" if k == 1 else "C2",
                    label=f"{'linear' if k == 1 else 'square-root'} rule (k = {k:g})")  # fmt: skip
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("batch size")
        ax.set_ylabel("best peak lr")
        ax.set_title(f"{self.task}: best lr against batch size ({self.schedule})", fontsize=9)
        return finish_plot(fig, ax, path)

    def save(self, folder: str | Path) -> list[Path]:
        """``batch-size.json`` and ``batch-size.png`` in ``folder`` (made if missing)."""
        return save_study(self, folder, FILES)


def batch_size_study(
    task: Task | str,
    batch_sizes: Sequence[int],
    *,
    schedule: str = DEFAULT_SCHEDULE,
    budget: float = 1.5,
    epochs: int | None = None,
    seed: int = 0,
    seeds: int = 1,
    tolerance: float = TOLERANCE,
    progress: bool | None | Callable[[str], Any] = None,
) -> BatchSizeStudy:
    """The best lr (by ``pick_lr``) at each batch size, and the fit ``lr ∝ batch^k``.

    Args:
        task: a Task with ``data`` (to be re-batched), a built-in name or a user's
            ``package.module:function``.
        batch_sizes: at least 3 different whole numbers, each from 1 to the number of
            training examples.
        schedule: the schedule every pick is for (its peak is the lr).
        budget: each pick's budget in full runs of its own batch size (raised to the least
            that affords a pick where a run is too short for it).
        epochs: the run length (default: the task's), the same at every batch size.
        seed: the seed of every pick (the first, with ``seeds`` > 1).
        seeds: picks per batch size, with seeds ``seed .. seed + seeds - 1``; the row's lr
            is their geometric mean, and the fit is made on every pick.
        tolerance: the factor within which a rule's lr counts as agreeing (see the module).
        progress: a line per batch size: True prints it, a function is called with it,
            None prints only when stdout is a terminal.

    Raises UserError for batch sizes that do not fit (not whole numbers >= 1, larger than
    the training data, repeated, fewer than 3), naming them and the data's size.

    >>> study = batch_size_study("wine-mlp", [32, 8, 16], epochs=1, progress=False)
    >>> study.batch_sizes, study.fit.n, study.verdict.startswith("k = ")
    ([8, 16, 32], 3, True)
    """
    task = get_task(task)
    say = say_with(progress)
    sizes = check_batch_sizes(task, batch_sizes)
    budget = number(budget, "budget", low=0, low_open=True)
    epochs = task.epochs if epochs is None else whole(epochs, "epochs", least=1)
    seed = whole(seed, "seed", least=0)
    seeds = whole(seeds, "seeds", least=1)
    tolerance = number(tolerance, "tolerance", low=1, low_open=True)
    rows = [_pick_at(task, b, schedule, budget, epochs, seed, seeds, say) for b in sizes]
    lrs = [r["lr"] for r in rows]
    every = [(r["batch_size"], lr) for r in rows for lr in r["lrs"]]
    return BatchSizeStudy(
        task=task.name,
        schedule=str(schedule),
        epochs=epochs,
        budget=budget,
        seed=seed,
        seeds=seeds,
        metric_name=task.metric.name,
        rows=rows,
        fit=fit_power_law([b for b, _ in every], [lr for _, lr in every]),
        holds=[holds_up_to(sizes, lrs, rule, tolerance) for rule in RULE_K],
    )


def check_batch_sizes(task: Task, batch_sizes: Sequence[int]) -> list[int]:
    """``batch_sizes`` sorted, each checked against ``task``'s training data; a UserError
    naming every one that does not fit, and the data's size."""
    if isinstance(batch_sizes, str | bytes) or not hasattr(batch_sizes, "__iter__"):
        raise UserError(f"batch sizes must be a list of whole numbers, got {shown(batch_sizes)}")
    values = [int(v) if _integral(v) else v for v in batch_sizes]  # NumPy integers too
    bad = [v for v in values if isinstance(v, bool) or not isinstance(v, int) or v < 1]
    if bad:
        raise UserError(
            f"batch sizes must be whole numbers >= 1, got {', '.join(shown(v) for v in bad)}"
        )
    task.variant(batch_size=values[0] if values else 1)  # a task without data: its message
    size = task.data.size
    large = [v for v in values if v > size]
    if large:
        raise UserError(
            f"batch size{'s' if len(large) > 1 else ''} {', '.join(map(shown, large))} larger"
            f" than the training data of task {task.name!r} ({size} examples); give batch"
            f" sizes from 1 to {size}"
        )
    twice = sorted({v for v in values if values.count(v) > 1})
    if twice:
        raise UserError(f"batch sizes given twice: {', '.join(map(str, twice))}; give each once")
    if len(values) < 3:
        raise UserError(
            f"a fit of lr against batch size needs at least 3 batch sizes, got {len(values)}"
            f" ({', '.join(map(str, values)) or 'none'}); e.g. 16,32,64,128"
        )
    return sorted(values)


def _integral(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def least_budget(full_steps: int) -> float:
    """The smallest budget (in full runs of ``full_steps``, rounded up to 0.01) that affords
    pick_lr's range test and one round of short runs."""
    need = (MIN_SWEEP + MIN_HORIZON * CANDIDATES) / full_steps
    return math.ceil(need * 100 - 1e-9) / 100


def _pick_at(task: Task, b: int, schedule: str, budget: float, epochs: int, seed: int,
             seeds: int, say: Say) -> dict[str, Any]:  # fmt: skip
    variant = task.variant(batch_size=b)
    spe = len(variant.build_loaders(seed)[0])
    used = max(budget, least_budget(epochs * spe))
    start = time.perf_counter()
    picks = [
        pick_lr(variant, schedule, budget=used, epochs=epochs, seed=s, progress=False)
        for s in range(seed, seed + seeds)
    ]
    seconds = time.perf_counter() - start
    lrs = [float(p.lr) for p in picks]
    lr = math.exp(sum(math.log(x) for x in lrs) / len(lrs))
    raised = (
        "" if used == budget else f" (budget raised to {used:g}: a run is {epochs * spe} steps)"
    )
    each = "" if seeds == 1 else f" (geometric mean of {', '.join(f'{x:.3g}' for x in lrs)})"
    say(f"batch {b}: best lr {lr:.4g}{each} ({spe} steps/epoch, {sum(p.steps for p in picks)}"
        f" steps, {seconds:.1f} s){raised}")  # fmt: skip
    return {
        "batch_size": b,
        "steps_per_epoch": spe,
        "lr": lr,
        "lrs": lrs,
        "budget": float(used),
        "cost": float(sum(p.cost for p in picks)),
        "steps": int(sum(p.steps for p in picks)),
        "seconds": float(seconds),
    }
