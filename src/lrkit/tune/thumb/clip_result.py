"""What :func:`~lrkit.tune.thumb.clip_study` found: :class:`ClipStudy`, its table, verdict,
JSON and plot."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...results import Result
from .report import finish_plot, save_study, table

FILES = {"json": "clip.json", "png": "clip.png"}


@dataclass(frozen=True)
class Arm:
    """One way of training: ``threshold`` None (no clipping) or the clip norm; ``multiple`` of
    the median norm when it was given as one."""

    threshold: float | None
    multiple: float | None = None

    @property
    def label(self) -> str:
        if self.threshold is None:
            return "no clipping"
        how = f" ({self.multiple:g}x median)" if self.multiple is not None else ""
        return f"clip {self.threshold:.3g}{how}"


def within(metric: float, best: float, tolerance: float, higher_is_better: bool) -> bool:
    """Whether ``metric`` is within ``tolerance`` (relative to ``|best|``) of ``best``."""
    if not (math.isfinite(metric) and math.isfinite(best)):
        return False
    slack = tolerance * abs(best)
    return metric >= best - slack if higher_is_better else metric <= best + slack


def blown(val_loss: float | None, start_loss: float) -> bool:
    """Whether a run's final validation loss is above ``start_loss``, the untrained model's
    (or not finite): it ended worse than where it started, whatever its metric says (accuracy
    can hold while the loss reaches 1e8). None (a run that kept no val_loss) or an unknown
    ``start_loss`` (NaN) is not blown."""
    if val_loss is None or not math.isfinite(start_loss):
        return False
    return not val_loss <= start_loss


@dataclass
class ClipStudy(Result):
    """The runs of a clip study (``runs``: one dict per (arm, lr) with ``arm`` (index into
    ``arms``), ``lr``, ``metric``, ``val_loss``, ``diverged``), and what they say: :meth:`largest`,
    :meth:`trains`, :attr:`verdicts`."""

    task: str
    schedule: str
    epochs: int
    seeds: int
    seed: int
    tolerance: float
    metric_name: str
    higher_is_better: bool
    median_norm: float | None
    arms: list[Arm]
    runs: list[dict[str, Any]]
    grid: list[float]
    start_loss: float = math.nan  # the untrained model's validation loss

    @property
    def best_metric(self) -> float:
        """The best final metric of any run that did not diverge (NaN when none)."""
        best = math.nan
        for r in self.runs:
            m = r["metric"]
            if r["diverged"] or not math.isfinite(m):
                continue
            if math.isnan(best) or (m > best if self.higher_is_better else m < best):
                best = m
        return best

    def trains(self, run: dict[str, Any]) -> bool:
        """Whether ``run`` trained: no divergence, final metric within tolerance of the best,
        and a final validation loss no higher than the untrained model's (:func:`blown`)."""
        return (
            not run["diverged"]
            and within(run["metric"], self.best_metric, self.tolerance, self.higher_is_better)
            and not blown(run.get("val_loss"), self.start_loss)
        )

    def largest(self, arm: int) -> float | None:
        """The largest trainable lr of arm ``arm``: the top of its first unbroken stretch of
        lrs that train, climbing from the lowest (None: it trained at none). A run that trains
        again above a failure (noise at the edge) does not move it."""
        top = None
        for r in sorted((r for r in self.runs if r["arm"] == arm), key=lambda r: r["lr"]):
            if self.trains(r):
                top = r["lr"]
            elif top is not None:
                break
        return top

    def _top_of_grid(self, arm: int) -> bool:
        tried = [r["lr"] for r in self.runs if r["arm"] == arm]
        return bool(tried) and self.largest(arm) == max(self.grid) and max(tried) == max(self.grid)

    def _name(self, arm: Arm) -> str:
        if arm.multiple is not None and self.median_norm is not None:
            return f"{arm.threshold:.3g} ({arm.multiple:g}x the median norm {self.median_norm:.3g})"
        return f"{arm.threshold:.3g}"

    @property
    def verdicts(self) -> list[str]:
        """One line per threshold: did clipping there raise the largest trainable lr?"""
        base = self.largest(0)
        lines = []
        for i, arm in enumerate(self.arms[1:], 1):
            top = self.largest(i)
            edge = (
                " (the top of the grid: it may train higher still)" if self._top_of_grid(i) else ""
            )
            name = f"clipping at {self._name(arm)}"
            if top is None:
                lines.append(f"{name}: trained at no lr of the grid")
            elif base is None:
                lines.append(f"{name}: largest trainable lr {top:.3g}{edge}; without clipping"
                             " no lr of the grid trained")  # fmt: skip
            elif top > base * 1.0001:
                lines.append(f"{name} raised the largest trainable lr from {base:.3g} to"
                             f" {top:.3g} (x{top / base:.2g}){edge}")  # fmt: skip
            elif top < base / 1.0001:
                lines.append(f"{name} lowered the largest trainable lr from {base:.3g} to"
                             f" {top:.3g} (x{top / base:.2g})")  # fmt: skip
            else:
                lines.append(f"{name} did not raise it ({base:.3g} with and without){edge}")
        return lines

    @property
    def verdict(self) -> str:
        """The verdicts in one text, after what 'trains' meant here."""
        head = (
            "largest trainable lr without clipping: "
            + ("none of the grid" if self.largest(0) is None else f"{self.largest(0):.3g}")
            + (" (the top of the grid)" if self._top_of_grid(0) else "")
            + f"; a run trains when it does not diverge and ends within {self.tolerance:g}"
            f" (relative) of the best {self.metric_name} {self.best_metric:.4g}, with a"
            f" validation loss no higher than the untrained model's {self.start_loss:.3g}"
        )
        return "\n".join([head, *self.verdicts])

    def table(self) -> str:
        """One row per arm: its threshold, largest trainable lr (and x no clipping), best
        final metric, runs and divergences."""
        base = self.largest(0)
        rows = []
        for i, arm in enumerate(self.arms):
            mine = [r for r in self.runs if r["arm"] == i]
            top = self.largest(i)
            finite = [r["metric"] for r in mine if not r["diverged"] and math.isfinite(r["metric"])]
            best = (max if self.higher_is_better else min)(finite) if finite else math.nan
            ratio = "-" if top is None or base is None else f"x{top / base:.2g}"
            rows.append((
                arm.label, "-" if top is None else f"{top:.3g}", ratio,
                "-" if math.isnan(best) else f"{best:.4g}", str(len(mine)),
                str(sum(r["diverged"] for r in mine)),
            ))  # fmt: skip
        head = ("arm", "largest lr", "vs none", f"best {self.metric_name}", "runs", "diverged")
        return table(head, rows)

    def grid_table(self) -> str:
        """The final metric of every run: one row per lr, one column per arm (``div``:
        diverged; ``*``: trains; blank: not run)."""
        lrs = sorted({r["lr"] for r in self.runs})
        cell = {(r["arm"], r["lr"]): r for r in self.runs}
        rows = []
        for lr in lrs:
            row = [f"{lr:.3g}"]
            for i in range(len(self.arms)):
                r = cell.get((i, lr))
                if r is None:
                    row.append("")
                elif r["diverged"]:
                    row.append("div")
                else:
                    row.append(f"{r['metric']:.4g}" + ("*" if self.trains(r) else ""))
            rows.append(row)
        return table(["lr", *(a.label for a in self.arms)], rows)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "clip study",
            "task": self.task,
            "schedule": self.schedule,
            "epochs": self.epochs,
            "seeds": self.seeds,
            "seed": self.seed,
            "tolerance": self.tolerance,
            "metric_name": self.metric_name,
            "higher_is_better": self.higher_is_better,
            "median_norm": self.median_norm,
            "start_loss": self.start_loss,
            "arms": [
                {"threshold": a.threshold, "multiple": a.multiple, "label": a.label}
                for a in self.arms
            ],  # fmt: skip
            "runs": [dict(r) for r in self.runs],
            "grid": list(self.grid),
            "largest": [self.largest(i) for i in range(len(self.arms))],
            "best_metric": self.best_metric,
            "verdicts": self.verdicts,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClipStudy:
        from ...results import decode_floats

        if data.get("kind") != "clip study":
            raise ValueError(f"not a clip study (kind {data.get('kind')!r})")
        data = decode_floats(data)
        return cls(
            task=str(data["task"]), schedule=str(data["schedule"]), epochs=int(data["epochs"]),
            seeds=int(data["seeds"]), seed=int(data["seed"]), tolerance=float(data["tolerance"]),
            metric_name=str(data["metric_name"]), higher_is_better=bool(data["higher_is_better"]),
            median_norm=data["median_norm"],
            arms=[Arm(a["threshold"], a["multiple"]) for a in data["arms"]],
            runs=[dict(r) for r in data["runs"]], grid=[float(x) for x in data["grid"]],
            start_loss=float(data.get("start_loss", math.nan)),
        )  # fmt: skip

    def plot(self, path: str | Path | None = None) -> Any:
        """The final metric against lr (log axis), one line per arm; diverged runs as crosses
        along the bottom; runs whose validation loss ended above the untrained model's as
        hollow markers; each arm's largest trainable lr as a dotted vertical line;
        the tolerance band under the best as a grey band. ``path`` saves it."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=(7, 4.5))
        FigureCanvasAgg(fig)
        ax = fig.subplots()
        finite = [
            r["metric"] for r in self.runs if not r["diverged"] and math.isfinite(r["metric"])
        ]
        low = min(finite) if finite else 0.0
        for i, arm in enumerate(self.arms):
            mine = sorted((r for r in self.runs if r["arm"] == i), key=lambda r: r["lr"])
            ok = [r for r in mine if not r["diverged"] and math.isfinite(r["metric"])]
            colour = f"C{i}"
            ax.plot([r["lr"] for r in ok], [r["metric"] for r in ok], "o-", ms=4, color=colour,
                    label=arm.label)  # fmt: skip
            blew = [r for r in ok if blown(r.get("val_loss"), self.start_loss)]
            if blew:
                ax.plot([r["lr"] for r in blew], [r["metric"] for r in blew], "o", ms=8,
                        mfc="white", color=colour)  # fmt: skip
            bad = [r["lr"] for r in mine if r["diverged"]]
            if bad:
                ax.plot(bad, [low] * len(bad), "x", color=colour, ms=7)
            top = self.largest(i)
            if top is not None:
                ax.axvline(top, color=colour, ls=":", lw=1)
        best = self.best_metric
        if math.isfinite(best):
            slack = self.tolerance * abs(best)
            edge = best - slack if self.higher_is_better else best + slack
            ax.axhspan(min(best, edge), max(best, edge), color="grey", alpha=0.15,
                       label=f"within {self.tolerance:g} of the best")  # fmt: skip
        ax.set_xscale("log")
        ax.set_xlabel("peak lr")
        ax.set_ylabel(f"final {self.metric_name}")
        ax.set_title(f"{self.task}: largest trainable lr with and without clipping\n(x: diverged;"
                     " hollow: val loss above the untrained model's; dotted: each arm's largest"
                     " trainable lr)", fontsize=9)  # fmt: skip
        return finish_plot(fig, ax, path)

    def save(self, folder: str | Path) -> list[Path]:
        """``clip.json`` and ``clip.png`` in ``folder`` (made if missing)."""
        return save_study(self, folder, FILES)
