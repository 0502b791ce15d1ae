"""The figures of a tune: the metric against lr per schedule family, and the optimisation
history (each complete trial's metric and the best so far, against the trial number).

Drawn on matplotlib's Agg canvas (no window, no display needed); a PNG is written whole
(through a temporary file and a rename), so a reader never sees half a figure.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..checks import is_finite_number

FAILED = ("failed", "diverged")


def plot_result(result: Any, path: str | Path | None = None) -> Any:
    """Two panels for ``result`` (a TuneResult); ``path`` saves them (format from the suffix,
    PNG by default). Returns the Figure.

    Left: each complete trial's mean metric (with its std as an error bar) against its lr on
    a log axis, a colour per family; pruned trials as crosses at their last report; failed
    and diverged trials as red triangles along the bottom. The best trial is starred.
    Right: the complete trials' metrics against the trial number, the best so far as a step
    line, and pruned trials' last reports as grey crosses.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.5))
    FigureCanvasAgg(fig)
    by_lr, history = fig.subplots(1, 2)
    _metric_against_lr(result, by_lr)
    _history(result, history)
    fig.tight_layout()
    if path is not None:
        save_whole(fig, Path(path))
    return fig


def _metric_against_lr(result: Any, ax: Any) -> None:
    rows = [r for r in result.trials if is_finite_number(r.get("lr"))]
    families = sorted({str(r["family"] or "") for r in rows})
    colour = {f: f"C{i % 10}" for i, f in enumerate(families)}
    for family in families:
        done = [r for r in rows if r["family"] == family and r["state"] == "COMPLETE"
                and is_finite_number(r["metric_mean"])]  # fmt: skip
        if done:
            done.sort(key=lambda r: r["lr"])
            errs = [r["metric_std"] if is_finite_number(r["metric_std"]) else 0.0 for r in done]
            ax.errorbar([r["lr"] for r in done], [r["metric_mean"] for r in done], yerr=errs,
                        fmt="o", ms=5, capsize=2, color=colour[family],
                        label=family or "complete")  # fmt: skip
        pruned = [r for r in rows if r["family"] == family and r["status"] == "pruned"
                  and r.get("last_report") and is_finite_number(r["last_report"][1])]  # fmt: skip
        if pruned:
            ax.plot([r["lr"] for r in pruned], [r["last_report"][1] for r in pruned], "x",
                    color=colour[family], ms=6, alpha=0.7,
                    label=f"{family + ' ' if family else ''}pruned (last report)")  # fmt: skip
    failed = [r for r in rows if r["status"] in FAILED]
    if failed:
        # along the bottom edge, whatever the metric's scale: x in data, y in axes coordinates
        ax.plot([r["lr"] for r in failed], [0.02] * len(failed), "v", color="red", ms=7,
                transform=ax.get_xaxis_transform(), label="failed / diverged",
                clip_on=False)  # fmt: skip
    best = result.best
    if best is not None and is_finite_number(result.best_value):
        ax.plot([best.lr], [result.best_value], "*", color="gold", mec="black", ms=15,
                zorder=5, label=f"best lr {best.lr:.3g}")  # fmt: skip
    if rows:
        ax.set_xscale("log")
    ax.set_xlabel("peak learning rate")
    ax.set_ylabel(f"{result.metric} ({'higher' if result.higher_is_better else 'lower'} is better)")
    ax.set_title(f"{result.metric} against lr per schedule family", fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)


def _history(result: Any, ax: Any) -> None:
    done = [
        r for r in result.trials if r["state"] == "COMPLETE" and is_finite_number(r["metric_mean"])
    ]
    done.sort(key=lambda r: r["number"])
    if done:
        xs = [r["number"] for r in done]
        ys = [r["metric_mean"] for r in done]
        pick = max if result.higher_is_better else min
        best, so_far = None, []
        for y in ys:
            best = y if best is None else pick(best, y)
            so_far.append(best)
        ax.plot(xs, ys, "o", color="C0", ms=4, alpha=0.6, label="complete trial")
        last = max(r["number"] for r in result.trials)  # the line runs to the last trial
        ax.step([*xs, last], [*so_far, so_far[-1]], where="post", color="C3", lw=1.8,
                label="best so far")  # fmt: skip
    else:
        ax.text(0.5, 0.5, result.no_best_reason() or "no trial completed", ha="center",
                va="center", transform=ax.transAxes, fontsize=9, wrap=True)  # fmt: skip
    pruned = [r for r in result.trials if r["status"] == "pruned" and r.get("last_report")
              and is_finite_number(r["last_report"][1])]  # fmt: skip
    if pruned:
        ax.plot([r["number"] for r in pruned], [r["last_report"][1] for r in pruned], "x",
                color="0.55", ms=5, label="pruned (last report)")  # fmt: skip
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("trial")
    ax.set_ylabel(result.metric)
    ax.set_title("optimisation history", fontsize=10)
    ax.grid(True, alpha=0.3)


def save_whole(fig: Any, path: Path, dpi: int = 110) -> None:
    """Save ``fig`` to ``path`` through ``path.tmp`` and a rename: the file is whole or absent.
    The format is the suffix's when matplotlib writes it (``.pdf``, ``.svg``), else PNG (a
    ``--png plot.txt`` given after an hour's tune must not fail at the end)."""
    fmt = path.suffix.lstrip(".").lower()
    if fmt not in fig.canvas.get_supported_filetypes():
        fmt = "png"
    tmp = path.with_name(path.name + ".tmp")
    try:
        fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


__all__ = ["plot_result", "save_whole"]
