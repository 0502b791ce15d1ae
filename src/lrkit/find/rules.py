"""Suggestion rules: small pure functions of a range-test curve ``(lrs, losses) -> lr | None``.

Every rule takes increasing learning rates and the *smoothed* losses measured at them (a curve
already cut before its first non-finite point) and returns a suggested lr, or ``None`` when it
finds nothing to suggest. Slopes are measured against ``log10(lr)``, the axis the sweep is
spaced on, never against the raw lr.

- ``steep``: the lr of the steepest descent within the last descent before the minimum;
- ``valley``: halfway along the longest descending stretch of the curve (fastai's idea);
- ``minimum``: the lr of the lowest loss, divided by 10;
- ``slide``: walk back from the divergent end while the slope keeps changing (fastai's idea);
- ``lrkit`` (the default): halfway down the last steady descent before the minimum, kept
  between 0.5 and 2 decades below the minimum.

:func:`assess` says whether a curve can be trusted at all (too few points, no descent, too
noisy, diverged at once).

A drop of 2 centred on 1e-2, then a blow-up (the lowest loss is at about 0.25):

>>> import numpy as np
>>> lrs = np.logspace(-6, 1, 71)
>>> x = np.log10(lrs)
>>> losses = 2.3 - 2.0 / (1 + np.exp(-(x + 2) * 3)) + np.exp(3 * (x - 0.5))
>>> {name: round(float(np.log10(lr)), 1) for name, lr in suggest_all(lrs, losses).items()}
{'steep': -2.0, 'valley': -3.3, 'minimum': -1.6, 'slide': -4.9, 'lrkit': -2.0}
>>> assess(lrs, losses).ok
True
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Rule = Callable[[np.ndarray, np.ndarray], "float | None"]

MIN_POINTS = 10  # fewer points than this and assess() calls the curve unusable
RULE_MIN_POINTS = 5  # fewer points than this and every rule returns None


def _curve(lrs, losses) -> tuple[np.ndarray, np.ndarray]:
    """``(log10(lrs), losses)`` as float arrays, cut before the first non-finite loss.

    Raises ValueError for lrs that are not positive and strictly increasing, or lengths
    that differ.
    """
    lrs = np.asarray(lrs, dtype=float).ravel()
    losses = np.asarray(losses, dtype=float).ravel()
    if lrs.shape != losses.shape:
        raise ValueError(
            f"lrs and losses must have the same length, got {lrs.size} and {losses.size}"
        )
    bad = ~np.isfinite(losses)
    if bad.any():
        cut = int(np.argmax(bad))
        lrs, losses = lrs[:cut], losses[:cut]
    if lrs.size and (not np.all(np.isfinite(lrs)) or lrs[0] <= 0):
        raise ValueError(f"lrs must be finite and > 0, got first lr {lrs[0]!r}")
    if np.any(np.diff(lrs) <= 0):
        raise ValueError("lrs must be strictly increasing")
    return np.log10(lrs), losses


# -- the published rules ----------------------------------------------------------------------


def steep(lrs, losses) -> float | None:
    """The lr where the loss falls fastest per decade, within the descent before the minimum.

    ``argmin d(loss)/d(log10 lr)`` over the last steady descent before the lowest loss (see
    :func:`descent`), on the curve smoothed once more over ±2.5% of its decades; None when
    the curve never descends. Measured against log10(lr) (Lightning measures it against the
    raw lr, which favours the largest rates); only within the descent, so that neither a
    wiggle of a diverging curve nor the noisy first points of a bias-corrected average are
    taken for it.
    """
    found = _descent_of(lrs, losses)
    if found is None:
        return None
    x, ys, start, bottom = found
    slopes = np.gradient(ys, x)[start : bottom + 1]
    i = int(np.argmin(slopes))
    return float(10 ** x[start + i]) if slopes[i] < 0 else None


def valley(lrs, losses, *, at: float = 0.5) -> float | None:
    """The lr ``at`` (a fraction) of the way along the longest descending stretch.

    The stretch is the longest run of points whose losses strictly decrease (not necessarily
    neighbours: a point that bumps up is skipped), found by dynamic programming; the
    suggestion is the point a fraction ``at`` of the way from its first to its last point
    (in points). This is the idea of fastai's ``valley`` suggestion.
    """
    x, y = _curve(lrs, losses)
    n = x.size
    if n < RULE_MIN_POINTS:
        return None
    length = np.ones(n, dtype=int)  # length[i]: the longest decreasing run ending at i
    first = np.arange(n)  # first[i]: where that run starts
    for i in range(1, n):
        before = np.nonzero(y[:i] > y[i])[0]
        if before.size:
            j = before[np.argmax(length[before])]
            length[i], first[i] = length[j] + 1, first[j]
    end = int(np.argmax(length))
    if length[end] < 3:
        return None
    start = int(first[end])
    return float(10 ** x[start + int(round(at * (end - start)))])


def minimum(lrs, losses, *, divide: float = 10.0) -> float | None:
    """The lr of the lowest loss divided by ``divide`` (10): the classic rule of thumb."""
    x, y = _curve(lrs, losses)
    if x.size < RULE_MIN_POINTS:
        return None
    i = int(np.argmin(y))
    if i == 0:
        return None  # the lowest loss is the first point: no descent to speak of
    return float(10 ** x[i] / divide)


def slide(lrs, losses, *, window: float = 0.15, tol: float = 0.005) -> float | None:
    """Walk back from the divergent end until the slope steadies; return the lr reached.

    A window ``window`` (a fraction of the points) wide slides from the end of the curve
    towards its start; slopes are of ``ln(loss)`` against ``ln(lr)``. While the slopes at the
    window's two ends differ by more than ``tol`` the curve is still bending (diverging, or
    bottoming out), so the window moves one point further back. Where they agree, the lr at
    the window's left end is the suggestion. This is the idea of fastai's ``slide``. Needs
    positive losses; None when the walk reaches the start or the curve never descends.
    """
    x, y = _curve(lrs, losses)
    n = x.size
    if n < RULE_MIN_POINTS or np.any(y <= 0) or np.argmin(y) == 0:
        return None
    slopes = np.gradient(np.log(y), x * np.log(10))
    width = max(2, int(round(window * n)))
    right = n - 1
    while right - width >= 0:
        left = right - width
        if abs(slopes[right] - slopes[left]) <= tol:
            return float(10 ** x[left])
        right -= 1
    return None


# -- lrkit's rule -------------------------------------------------------------------------------


def smooth(x: np.ndarray, y: np.ndarray, half_width: float | None = None) -> np.ndarray:
    """``y`` after a running median, then a running mean, over ``x ± half_width``.

    ``x`` is log10(lr); ``half_width`` (decades) defaults to 2.5% of the span of ``x`` and at
    least one point spacing. The median removes single-point spikes that an EMA leaves in;
    the mean irons out the rest. The window is in decades, so the same curve sampled densely
    or sparsely smooths alike.
    """
    if half_width is None:
        span = x[-1] - x[0]
        half_width = max(0.025 * span, 1.01 * span / max(x.size - 1, 1))
    lo = np.searchsorted(x, x - half_width, side="left")
    hi = np.searchsorted(x, x + half_width, side="right")
    index = lo[:, None] + np.arange(int((hi - lo).max()))  # row i: the window of point i
    outside = index >= hi[:, None]
    index = np.minimum(index, x.size - 1)
    med = np.nanmedian(np.where(outside, np.nan, y[index]), axis=1)
    return np.nanmean(np.where(outside, np.nan, med[index]), axis=1)


def descent(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, int, int] | None:
    """``(smoothed y, start, bottom)`` of the last steady descent before the minimum, or None.

    ``bottom`` is the minimum of the curve after :func:`smooth`. Walking back from it, the
    descent goes on while each earlier point is higher, or lower by less than 10% of the
    curve's whole range before the bottom (so neither noise on a flat bottom nor a small bump
    ends a descent); ``start`` is its highest point.
    """
    ys = smooth(x, y)
    bottom = int(np.argmin(ys))
    bump = 0.1 * (ys[: bottom + 1].max() - ys[bottom])
    start = bottom
    for j in range(bottom - 1, -1, -1):
        if ys[j] < ys[start] - bump:
            break
        if ys[j] > ys[start]:
            start = j
    if bottom - start < 2 or ys[start] <= ys[bottom]:
        return None
    return ys, start, bottom


def _descent_of(lrs, losses) -> tuple[np.ndarray, np.ndarray, int, int] | None:
    """``(log10 lrs, smoothed losses, start, bottom)`` of the curve's descent, or None."""
    x, y = _curve(lrs, losses)
    if x.size < RULE_MIN_POINTS:
        return None
    found = descent(x, y)
    return None if found is None else (x, *found)


def lrkit(
    lrs, losses, *, fall: float = 0.5, below: tuple[float, float] = (0.5, 2.0)
) -> float | None:
    """lrkit's default rule: halfway down the last steady descent, clear of the minimum.

    1. Smooth the curve again in log-lr space (a running median, then a mean, over ±2.5%
       of the swept decades), so that neither noise left in by the EMA nor a single spike
       moves the answer.
    2. Find the smoothed minimum and walk back from it to where the last steady descent
       starts (rises of under 10% of the curve's range do not end it).
    3. Suggest the lr (interpolated in log10 lr) where the loss has fallen a fraction
       ``fall`` (one half) of the way from the start of that descent to the minimum: the
       middle of the drop, where the rate clearly works, with room before the bottom where
       it turns unstable. On a symmetric drop that is the steepest point, but it is found
       from levels, not from a derivative, so noise hardly moves it.
    4. Clamp it to between ``below[0]`` and ``below[1]`` decades below the minimum's lr (at
       most the minimum / 3, at least the minimum / 100) and to no lower than the start of
       the descent. The answer is therefore never in the divergent region past the minimum.

    None when the curve has no descent before its minimum.
    """
    found = _descent_of(lrs, losses)
    if found is None:
        return None
    x, ys, start, bottom = found
    target = ys[start] - fall * (ys[start] - ys[bottom])
    i = start + int(np.argmax(ys[start : bottom + 1] <= target))
    if i > start:  # interpolate between the two points around the target level
        t = (ys[i - 1] - target) / (ys[i - 1] - ys[i])
        xs = x[i - 1] + t * (x[i] - x[i - 1])
    else:
        xs = x[i]
    xs = min(max(xs, x[bottom] - below[1], x[start]), x[bottom] - below[0])
    return float(10**xs) if xs >= x[0] else None


RULES: dict[str, Rule] = {
    "steep": steep,
    "valley": valley,
    "minimum": minimum,
    "slide": slide,
    "lrkit": lrkit,
}
DEFAULT_RULE = "lrkit"


def get_rule(name: str) -> Rule:
    """The rule called ``name``; ValueError listing the known names otherwise."""
    try:
        return RULES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown rule {name!r}; known: {', '.join(RULES)}") from None


def suggest_all(lrs, losses) -> dict[str, float | None]:
    """Every rule's suggestion for one curve, in the order of ``RULES``."""
    return {name: rule(lrs, losses) for name, rule in RULES.items()}


# -- confidence -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Confidence:
    """Whether a curve can be trusted: ``ok``, and ``reason`` in a few words when it cannot.

    ``reason`` is one of ``'ok'``, ``'too few points'``, ``'diverged at once'``,
    ``'no descent'``, ``'too noisy'``; ``detail`` gives the numbers behind it.
    """

    ok: bool
    reason: str
    detail: str = ""

    def __str__(self) -> str:
        text = "ok" if self.ok else f"low: {self.reason}"
        return f"{text} ({self.detail})" if self.detail else text


def _noise(values: np.ndarray) -> float:
    """The point-to-point noise of a curve: a robust std of its first differences / sqrt(2)."""
    d = np.diff(values)
    if d.size < 2:
        return 0.0
    return float(1.4826 * np.median(np.abs(d - np.median(d))) / np.sqrt(2))


def _trend(values: np.ndarray, most: int = 400) -> float:
    """Mann-Kendall's z of a falling trend (about N(0, 1) for pure noise; > 0: falling).

    ``S = sum over i < j of sign(values[i] - values[j])`` against its variance under no trend,
    ``m(m - 1)(2m + 5) / 18``; long curves are thinned to ``most`` points first.
    """
    if values.size > most:
        values = values[np.linspace(0, values.size - 1, most).astype(int)]
    m = values.size
    if m < 3:
        return 0.0
    s = np.sign(values[:, None] - values[None, :])[np.triu_indices(m, 1)].sum()
    return float(s / np.sqrt(m * (m - 1) * (2 * m + 5) / 18))


def assess(lrs, losses, raw_losses=None, *, min_points: int = MIN_POINTS) -> Confidence:
    """Say whether the curve ``(lrs, losses)`` is usable; ``raw_losses`` measure its noise.

    The noise is a robust std of the raw losses' point-to-point changes up to the minimum
    (of the smoothed losses when no raw losses are given); the fall is from the start (the
    median of the first 5% of the points, at least 3) to the minimum. In order, a curve is
    not ok when

    - it has fewer than ``min_points`` (10) points: ``'too few points'``;
    - its lowest loss is within its first 5% (at least 3) points and it rises after that by
      more than 10% of the start and 3 noise levels: ``'diverged at once'``;
    - its fall is less than 2% of the start's size, or less than 3 noise levels without a
      significant falling trend up to the minimum (Mann-Kendall z < 4): ``'no descent'``
      (a flat curve: the lr has no effect);
    - its noise is larger than its fall: ``'too noisy'``.
    """
    x, y = _curve(lrs, losses)
    n = x.size
    if n < min_points:
        return Confidence(False, "too few points", f"{n} < {min_points}")
    raw = y if raw_losses is None else np.asarray(raw_losses, dtype=float).ravel()[:n]
    bottom = int(np.argmin(y))
    head = max(3, n // 20)
    start = float(np.median(y[:head]))
    scale = max(abs(start), 1e-12)
    noise = _noise(raw[: bottom + 1] if bottom >= 4 else raw)
    if bottom < head and y[-1] - y[bottom] > max(0.1 * scale, 3 * noise):
        return Confidence(False, "diverged at once", f"lowest loss at point {bottom + 1} of {n}")
    drop = start - float(y[bottom])
    trend = _trend(raw[: bottom + 1])
    if drop < 0.02 * scale or (drop < 3 * noise and trend < 4):
        return Confidence(
            False, "no descent", f"fall {drop:.3g} from {start:.3g}, noise {noise:.3g}"
        )
    if noise > drop:
        return Confidence(False, "too noisy", f"noise {noise:.3g} against a fall of {drop:.3g}")
    return Confidence(True, "ok", f"fall {drop:.3g}, noise {noise:.3g}")


__all__ = [
    "RULES",
    "DEFAULT_RULE",
    "Confidence",
    "assess",
    "suggest_all",
    "get_rule",
    "steep",
    "valley",
    "minimum",
    "slide",
    "lrkit",
    "smooth",
    "descent",
]
