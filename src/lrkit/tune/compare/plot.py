"""The figure of a compare: each entry's validation curve with its lr overlaid.

One panel per mode (own rates; the same lr, when the compare ran it). In each, every entry's
mean validation metric over its seeds against the step (solid, with a band from the lowest
to the highest seed), the target as a dotted grey line (the metric axis shows from three times
the target's distance to the best final beyond it), and on a second, logarithmic axis its
lr against the step (dashed, the same colour; three decades below the highest lr, so a decay to
0 ends at the axis's floor); an lr-free entry's lr, a multiplier of the rate it estimates, is
not drawn there (its legend gives the multiplier). Drawn on matplotlib's Agg canvas (no display
needed) and written whole, as the other figures of lrkit.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ...progress import counted
from ..plots import save_whole

LR_RANGE = 1e-3  # the lr axis spans this share of the highest lr up to it
ZOOM = 3.0  # the metric axis reaches this many target-to-best gaps beyond the target


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
    peak = max((y for row in rows if row.how != "lr-free" for _, y in row.lr_curve), default=0.0)
    floor = peak * LR_RANGE  # a decay to 0 is drawn down to here, not to 1e-300
    for i, row in enumerate(rows):
        colour = f"C{i % 10}"
        steps, mean, low, high = _mean_curve(row.runs)
        free = row.how == "lr-free"  # its lr multiplies the rate it estimates: not on the lr axis
        rate = f"lr-free, multiplier {row.lr:.3g}" if free else f"lr {row.lr:.3g}"
        if steps:
            ax.plot(steps, mean, "-", color=colour, lw=1.6, label=f"{row.label} ({rate})")
            ax.fill_between(steps, low, high, color=colour, alpha=0.15, lw=0)
        if row.lr_curve and not free:
            xs, ys = zip(*row.lr_curve)
            lr_ax.plot(xs, [max(y, floor) for y in ys], "--", color=colour, lw=0.9, alpha=0.6)
    if math.isfinite(result.target):
        ax.axhline(result.target, color="0.5", ls=":", lw=1, label=f"target {result.target:.4g}")
        _zoom(ax, result, rows)
    if peak > 0:
        lr_ax.set_yscale("log")
        lr_ax.set_ylim(floor / 1.5, peak * 1.5)
    lr_ax.set_ylabel(f"lr (dashed; log, down to {LR_RANGE:g} of the highest)")
    way = "higher" if result.higher_is_better else "lower"
    ax.set_xlabel("step")
    ax.set_ylabel(f"validation {result.metric} ({way} is better)")
    title = ("each entry at its own rate" if mode == "own"
             else f"every entry at lr {result.same_lr:.3g}")  # fmt: skip
    ax.set_title(f"{result.task}: {title} ({counted(result.seeds, 'seed')})", fontsize=10)
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="best")


def _zoom(ax: Any, result: Any, rows: list[Any]) -> None:
    """The metric axis from ``ZOOM`` times the target's distance to the best final, beyond
    the target, to the best: the approach and the end, where entries differ, fill the panel
    (the first validations of a fast climb fall below it)."""
    finals = [r.summary().mean for r in rows if math.isfinite(r.summary().mean)]
    values = [p[2] for r in rows for run in r.runs for p in run.curve if math.isfinite(p[2])]
    if not finals or not values:
        return
    higher = result.higher_is_better
    best = max(finals) if higher else min(finals)
    gap = abs(best - result.target) or abs(best) * 0.05 or 1.0
    edge = max(values) if higher else min(values)
    if higher:
        ax.set_ylim(max(min(values), result.target - ZOOM * gap), edge + 0.25 * gap)
    else:
        ax.set_ylim(edge - 0.25 * gap, min(max(values), result.target + ZOOM * gap))


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
