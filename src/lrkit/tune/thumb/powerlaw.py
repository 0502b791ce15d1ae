"""The power law ``lr = c * batch**k``, fitted by least squares on logs, and what it says.

:func:`fit_power_law` fits ``log lr = a + k log b`` (ordinary least squares) and gives ``k`` a
95% interval from Student's t with ``n - 2`` degrees of freedom: ``k ± t * se(k)``, where
``se(k) = s / sqrt(sum((log b - mean)^2))`` and ``s^2`` is the residuals' sum of squares over
``n - 2``. :func:`verdict` reads the interval against the two rules (``k = 1``: linear,
``k = 0.5``: square root). :func:`holds_up_to` says up to which batch size a rule, applied
from the smallest batch's rate as :func:`~lrkit.schedules.scaling.scale_lr` would, stays
within a factor of the measured best rates.

>>> fit = fit_power_law([16, 32, 64, 128], [0.01, 0.02, 0.04, 0.08])
>>> round(fit.k, 6), round(fit.high - fit.low, 6)
(1.0, 0.0)
>>> verdict(fit)
'k = 1.00 [1.00, 1.00]: the linear rule holds (1 inside), the square-root rule does not'
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

LEVEL = 0.95  # of k's interval
RULE_K = {"linear": 1.0, "sqrt": 0.5}
RULE_NAME = {"linear": "the linear rule", "sqrt": "the square-root rule"}
TOLERANCE = 2.0  # a rule holds at a batch size when the best lr is within this factor of it


@dataclass(frozen=True)
class PowerLaw:
    """``lr = exp(a) * batch**k`` with ``k``'s ``level`` interval ``[low, high]``; ``n`` points,
    ``residual_std`` the residuals' standard deviation in natural-log units."""

    a: float
    k: float
    low: float
    high: float
    n: int
    residual_std: float
    level: float = LEVEL

    def predict(self, batch: float) -> float:
        """The fitted lr at ``batch``."""
        return math.exp(self.a + self.k * math.log(batch))

    def inside(self, k: float) -> bool:
        """Whether exponent ``k`` is inside the interval (up to rounding: 1e-9)."""
        return self.low - 1e-9 <= k <= self.high + 1e-9

    def to_dict(self) -> dict:
        return asdict(self)


def fit_power_law(batch_sizes: Sequence[float], lrs: Sequence[float]) -> PowerLaw:
    """The least-squares fit of ``log lr = a + k log batch`` with ``k``'s 95% t interval.

    Needs at least 3 points with at least 2 distinct batch sizes, every value finite and > 0
    (ValueError otherwise). An exact power law has a zero-width interval.
    """
    from scipy import stats

    b, lr = np.asarray(batch_sizes, dtype=float), np.asarray(lrs, dtype=float)
    if len(b) != len(lr) or len(b) < 3:
        raise ValueError(f"a fit needs at least 3 (batch, lr) pairs, got {min(len(b), len(lr))}")
    values = np.concatenate([b, lr])
    if not (np.all(np.isfinite(values)) and np.all(values > 0)):
        raise ValueError("every batch size and lr of a fit must be a finite number > 0")
    x, y = np.log(b), np.log(lr)
    sxx = float(np.sum((x - x.mean()) ** 2))
    if sxx == 0:
        raise ValueError("a fit needs at least 2 different batch sizes")
    k = float(np.sum((x - x.mean()) * (y - y.mean())) / sxx)
    a = float(y.mean() - k * x.mean())
    residuals = y - (a + k * x)
    dof = len(x) - 2
    s = math.sqrt(float(np.sum(residuals**2)) / dof)
    half = float(stats.t.ppf(0.5 + LEVEL / 2, dof)) * s / math.sqrt(sxx)
    return PowerLaw(a, k, k - half, k + half, len(x), s)


def verdict(fit: PowerLaw) -> str:
    """The fit in words: ``k`` with its interval, and which of the two rules it admits."""
    head = f"k = {fit.k:.2f} [{fit.low:.2f}, {fit.high:.2f}]"
    inside = [r for r in RULE_K if fit.inside(RULE_K[r])]
    shown = {"linear": "1", "sqrt": "0.5"}
    if len(inside) == 2:
        text = (
            f"{head}: both rules are inside the interval (1 and 0.5): these measurements cannot"
            " tell them apart (more batch sizes, or a larger budget per pick, narrow it)"
        )
    elif len(inside) == 1:
        rule = inside[0]
        other = "sqrt" if rule == "linear" else "linear"
        text = (
            f"{head}: {RULE_NAME[rule]} holds ({shown[rule]} inside), {RULE_NAME[other]} does not"
        )
    elif fit.low > 1:
        text = f"{head}: neither rule holds: the best lr grows faster than the batch size"
    elif fit.high < 0.5:
        text = f"{head}: neither rule holds: the best lr grows more slowly than the square root"
    else:
        text = f"{head}: neither rule holds: k lies between the square root and linear"
    if fit.inside(0.0):
        text += "; a constant lr (k = 0) is inside too"
    return text


def holds_up_to(
    batch_sizes: Sequence[int], lrs: Sequence[float], rule: str, tolerance: float = TOLERANCE
) -> dict:
    """Up to which batch size ``rule`` predicts the best lr from the smallest batch's.

    The rule's prediction at batch ``b`` is the smallest batch's best lr scaled by it (what
    ``scale_lr(lr0, b0, b, rule)`` gives). The rule *holds up to* the largest batch size ``B``
    such that at every batch size up to ``B`` the measured best lr is within a factor of
    ``tolerance`` of the prediction; ``first_miss`` is the batch size after ``B`` where it
    first misses, with the measured and predicted lr (None when it holds at all of them).
    Batch sizes are taken in ascending order; the smallest always agrees with itself.
    """
    pairs = sorted(zip(batch_sizes, lrs))
    b0, lr0 = pairs[0]
    k = RULE_K[rule]
    upto, miss = b0, None
    for b, lr in pairs[1:]:
        predicted = lr0 * (b / b0) ** k
        off = lr / predicted
        if max(off, 1 / off) > tolerance:
            miss = {"batch_size": int(b), "lr": float(lr), "predicted": float(predicted),
                    "off": float(off)}  # fmt: skip
            break
        upto = b
    return {"rule": rule, "holds_up_to": int(upto), "first_miss": miss, "tolerance": tolerance}


def where_it_stops(holds: dict) -> str:
    """One line from :func:`holds_up_to`'s result."""
    name, miss = RULE_NAME[holds["rule"]], holds["first_miss"]
    if miss is None:
        return f"{name} holds at every batch size (within x{holds['tolerance']:g})"
    way = "below" if miss["off"] < 1 else "above"
    factor = miss["off"] if miss["off"] >= 1 else 1 / miss["off"]
    return (
        f"{name} holds up to batch {holds['holds_up_to']}; at {miss['batch_size']} the best lr"
        f" {miss['lr']:.3g} is x{factor:.2g} {way} its {miss['predicted']:.3g}"
    )


def local_slopes(batch_sizes: Sequence[int], lrs: Sequence[float]) -> list[float | None]:
    """The slope of log lr over log batch between each batch size and the one before it
    (None for the first), ascending."""
    pairs = sorted(zip(batch_sizes, lrs))
    out: list[float | None] = [None]
    for (b1, l1), (b2, l2) in zip(pairs, pairs[1:]):
        out.append(math.log(l2 / l1) / math.log(b2 / b1))
    return out
