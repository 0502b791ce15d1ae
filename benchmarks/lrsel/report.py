"""Normalised regret and the tables.

For a task, let ``m(lr)`` be the mean final metric over the seeds of full runs at ``lr``
(a diverged or failed run makes it NaN), signed so that higher is better (``s = +1`` for
accuracy or R2, ``-1`` for bits per char), NaN counting as worst. Over the grid's rates:
``best = max s*m`` and ``median = the median of s*m`` (``median_low`` of the sorted values:
the metric of the grid's median-ranked rate). A method's rate with mean metric ``x`` has

    regret = clip((best - s*x) / (best - median), 0, 3)

so 0 is the grid's best rate (or better), 1 the median rate of the grid, 3 (the cap) anything
as bad as three times that or diverged.
"""

from __future__ import annotations

import math
import statistics


def signed(values: list[float], higher_is_better: bool) -> list[float]:
    s = 1.0 if higher_is_better else -1.0
    return [-math.inf if (v is None or math.isnan(v)) else s * v for v in values]


def oracle(grid: list[float], means: list[float], higher_is_better: bool) -> dict:
    scores = signed(means, higher_is_better)
    i = max(range(len(scores)), key=scores.__getitem__)
    median = statistics.median_low(scores)
    if not math.isfinite(median):
        median = min(v for v in scores if math.isfinite(v))
    return {"lr": grid[i], "metric": means[i], "best": scores[i], "median": median}


def regret(o: dict, metric: float | None, higher_is_better: bool, cap: float = 3.0) -> float:
    (score,) = signed([metric], higher_is_better)
    if not math.isfinite(score):
        return cap
    spread = o["best"] - o["median"]
    if spread <= 0:
        return 0.0 if score >= o["best"] else cap
    return min(cap, max(0.0, (o["best"] - score) / spread))


def fmt(x, spec: str = ".3g") -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return format(x, spec)


def markdown(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)
