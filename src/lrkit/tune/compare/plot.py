"""The figure of a compare: each entry's validation curve with its lr overlaid.

One panel per mode (own rates; the same lr, when the compare ran it). In each, every entry's
mean validation metric over its seeds against the step (solid, with a band from the lowest
to the highest seed), the target as a dotted grey line, and on a second, logarithmic axis its
lr against the step (dashed, the same colour). Drawn on matplotlib's Agg canvas (no display
needed) and written whole, as the other figures of lrkit.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ..plots import save_whole


def plot_compare(result: Any, path: str | Path | None = None) -> Any:
    """The figure of ``result`` (a CompareResult); ``path`` saves it. Returns the Figure."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    modes = [m for m in ("own", "same") if result.mode_rows(m)] or ["own"]
    fig = Figure(figsize=(6.5 * len(modes), 4.6))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(modes), squeeze=False)[0]
    for ax, mode in zip(axes, modes):
        _panel(result, mode, ax)
    fig.tight_layout()
    if path is not None:
        save_whole(fig, Path(path))
    return fig


def _panel(result: Any, mode: str, ax: Any) -> None:
    rows = result.mode_rows(mode)
    lr_ax = ax.twinx()
    for i, row in enumerate(rows):
        colour = f"C{i % 10}"
        steps, mean, low, high = _mean_curve(row.runs)
        if steps:
            ax.plot(steps, mean, "-", color=colour, lw=1.6, label=f"{row.label} (lr {row.lr:.3g})")
            ax.fill_between(steps, low, high, color=colour, alpha=0.15, lw=0)
        if row.lr_curve:
            xs, ys = zip(*row.lr_curve)
            lr_ax.plot(xs, ys, "--", color=colour, lw=0.9, alpha=0.7)
    if math.isfinite(result.target):
        ax.axhline(result.target, color="0.5", ls=":", lw=1, label=f"target {result.target:.4g}")
    if any(row.lr_curve and max(y for _, y in row.lr_curve) > 0 for row in rows):
        lr_ax.set_yscale("log")
    lr_ax.set_ylabel("lr (dashed)")
    way = "higher" if result.higher_is_better else "lower"
    ax.set_xlabel("step")
    ax.set_ylabel(f"validation {result.metric} ({way} is better)")
    title = ("each entry at its own rate" if mode == "own"
             else f"every entry at lr {result.same_lr:.3g}")  # fmt: skip
    ax.set_title(f"{result.task}: {title} ({result.seeds} seeds)", fontsize=10)
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="best")


def _mean_curve(runs: list[Any]) -> tuple[list[int], list[float], list[float], list[float]]:
    """At each validation step of the runs: the mean metric and the lowest and highest seed's
    (over the runs that validated there with a finite metric)."""
    by_step: dict[int, list[float]] = {}
    for run in runs:
        for point in run.curve:
            if math.isfinite(point[2]):
                by_step.setdefault(int(point[0]), []).append(float(point[2]))
    steps = sorted(by_step)
    values = [by_step[s] for s in steps]
    return (
        steps,
        [math.fsum(v) / len(v) for v in values],
        [min(v) for v in values],
        [max(v) for v in values],
    )


__all__ = ["plot_compare"]
