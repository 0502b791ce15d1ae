"""The numbers of a comparison: each entry's summary over seeds, the separation rule that names
a winner, and the time to reach a target metric.

- :func:`summarize`: mean, sample standard deviation (``ddof=1``) and the 95% t-interval
  ``mean ± t(0.975, n-1) * std / sqrt(n)`` of the finite values (a diverged run's NaN is left
  out and counted apart); one value has no std and no interval.
- :func:`verdict`: the **separation rule**. Entries are ranked by mean (those with a diverged
  seed after those without). The best is named the winner only when its interval does not
  overlap the runner-up's (for a higher-is-better metric: its low end is above the runner-up's
  high end); otherwise the entries whose intervals overlap the best's are "tied", with their
  numbers. With fewer than two finite values an entry has no interval, and no winner is named
  (unless that entry is a runner-up with diverged runs: those rank below and cannot win).
- :func:`default_target`: 95% of the way from the worst initial metric (the untrained models)
  to the best entry's mean final metric; :func:`reach`: the first validation of a run at or
  past the target (its step and seconds).

>>> s = summarize([0.90, 0.92, 0.94])
>>> round(s.mean, 3), round(s.std, 3), [round(x, 3) for x in (s.low, s.high)]
(0.92, 0.02, [0.87, 0.97])
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

LEVEL = 0.95  # of the intervals
TARGET_SHARE = 0.95  # the default target: this share of the way from worst initial to best final


@dataclass(frozen=True)
class Summary:
    """``n`` finite values (``diverged``: the others), their ``mean``, sample ``std`` and the
    95% t-interval ``(low, high)`` (NaN where fewer than two values)."""

    n: int
    mean: float
    std: float
    low: float
    high: float
    diverged: int = 0

    @property
    def has_interval(self) -> bool:
        return self.n >= 2 and math.isfinite(self.low) and math.isfinite(self.high)


def summarize(values: Sequence[float]) -> Summary:
    """The :class:`Summary` of ``values`` (NaN and infinite ones counted as diverged)."""
    finite = [float(v) for v in values if v is not None and math.isfinite(v)]
    diverged = len(values) - len(finite)
    n = len(finite)
    if n == 0:
        return Summary(0, math.nan, math.nan, math.nan, math.nan, diverged)
    mean = math.fsum(finite) / n
    if n == 1:
        return Summary(1, mean, math.nan, math.nan, math.nan, diverged)
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in finite) / (n - 1))
    half = t_quantile(n - 1) * std / math.sqrt(n)
    return Summary(n, mean, std, mean - half, mean + half, diverged)


def t_quantile(dof: int, level: float = LEVEL) -> float:
    """Student's t quantile of a two-sided ``level`` interval with ``dof`` degrees of freedom."""
    from scipy.stats import t

    return float(t.ppf(0.5 + level / 2, dof))


@dataclass(frozen=True)
class Verdict:
    """``winner``: the label of the entry named best (None when none is); ``tied``: the labels
    tied with the best (the best first; empty when there is a winner); ``text``: one line
    saying which and why, with the numbers."""

    winner: str | None
    tied: tuple[str, ...]
    text: str


def verdict(summaries: dict[str, Summary], higher_is_better: bool, digits: int = 4) -> Verdict:
    """The separation rule (see the module's doc) over ``summaries`` by label."""
    if not summaries:
        return Verdict(None, (), "nothing to compare")
    ranked = sorted(summaries, key=lambda k: _rank(summaries[k], higher_is_better))
    best = ranked[0]
    s = summaries[best]
    if s.n == 0:
        return Verdict(None, (), "every run diverged: no winner")
    if len(ranked) == 1:  # named only with an interval, as when there are several
        return Verdict(best if s.has_interval else None, () if s.has_interval else (best,),
                       f"{best} is the only entry: {_show(s, digits)}")  # fmt: skip
    second = ranked[1]
    r = summaries[second]
    if s.diverged:  # ranked after every clean entry: so there is none
        return Verdict(
            None,
            tuple(ranked),
            f"no winner named: every entry had a diverged run; best by mean: {best}"
            f" {_show(s, digits)}",
        )
    if not s.has_interval or (not r.diverged and not r.has_interval):
        few = best if not s.has_interval else second
        return Verdict(
            None,
            tuple(ranked),
            f"no winner named: {few} has {_runs(summaries[few].n)} that finished, so no"
            f" interval (give 2 seeds or more); best by mean: {best} {_num(s.mean, digits)},"
            f" then {second} {_num(r.mean, digits)}",
        )
    if r.n == 0 or r.diverged or _separated(s, r, higher_is_better):
        why = (
            f"{second} diverged on {r.diverged} of {r.n + r.diverged} seeds"
            if r.n == 0 or r.diverged
            else f"its interval is {'above' if higher_is_better else 'below'} the runner-up"
            f" {second}'s, {_interval(r, digits)}"
        )
        return Verdict(best, (), f"{best} wins: {_show(s, digits)}; {why}")
    tied = [k for k in ranked if summaries[k].has_interval and not summaries[k].diverged
            and not _separated(s, summaries[k], higher_is_better)]  # fmt: skip
    return Verdict(
        None,
        tuple(tied),
        f"tied: the best by mean, {best} {_show(s, digits)}, overlaps the runner-up {second}"
        f" {_show(r, digits)}; tied with the best: {', '.join(tied)}"
        f" ({len(tied)} of {len(ranked)} entries)",
    )


def _rank(s: Summary, higher: bool) -> tuple[int, int, float]:
    """Entries without divergence first, then by mean (best first); all-diverged last."""
    if s.n == 0:
        return (2, 0, 0.0)
    return (1 if s.diverged else 0, 0, -s.mean if higher else s.mean)


def _separated(best: Summary, other: Summary, higher: bool) -> bool:
    """``best``'s interval lies wholly on the better side of ``other``'s (touching overlaps)."""
    return best.low > other.high if higher else best.high < other.low


def _show(s: Summary, digits: int) -> str:
    if not s.has_interval:
        return f"{_num(s.mean, digits)} ({_runs(s.n)}, no interval)"
    return f"{_num(s.mean, digits)} ± {_num(s.std, 2)} {_interval(s, digits)}"


def _interval(s: Summary, digits: int) -> str:
    return f"[{_num(s.low, digits)}, {_num(s.high, digits)}]"


def _runs(n: int) -> str:
    return f"{n} run" if n == 1 else f"{n} runs"


def _num(x: float, digits: int) -> str:
    return "nan" if not math.isfinite(x) else f"{x:.{digits}g}"


# -- the target ----------------------------------------------------------------------------
def default_target(initial: Sequence[float], finals: Sequence[float], higher: bool) -> float:
    """``TARGET_SHARE`` of the way from the worst of ``initial`` (untrained models' metrics)
    to the best of ``finals`` (entries' mean final metrics); NaN when either has no finite
    value. For a higher-is-better metric: ``worst + 0.95 * (best - worst)``."""
    worst, best = target_ends(initial, finals, higher)
    return worst + TARGET_SHARE * (best - worst)


def target_ends(
    initial: Sequence[float], finals: Sequence[float], higher: bool
) -> tuple[float, float]:
    """``(worst initial, best final)`` of :func:`default_target` (NaN where none is finite)."""
    start = [v for v in initial if math.isfinite(v)]
    end = [v for v in finals if math.isfinite(v)]
    worst = (min(start) if higher else max(start)) if start else math.nan
    best = (max(end) if higher else min(end)) if end else math.nan
    return worst, best


def reach(
    curve: Sequence[Sequence[float]], target: float, higher: bool
) -> tuple[int, float] | None:
    """``(step, seconds)`` of the first point ``(step, seconds, metric, ...)`` of ``curve`` whose
    metric is at or past ``target``; None when none is (or the target is NaN)."""
    if not math.isfinite(target):
        return None
    for point in curve:
        metric = point[2]
        if math.isfinite(metric) and (metric >= target if higher else metric <= target):
            return int(point[0]), float(point[1])
    return None


__all__ = [
    "Summary",
    "Verdict",
    "summarize",
    "verdict",
    "t_quantile",
    "default_target",
    "target_ends",
    "reach",
    "LEVEL",
    "TARGET_SHARE",
]
