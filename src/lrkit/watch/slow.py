"""The doctor's rules on an lr too low (:func:`lrkit.watch.diagnose`): ``plateau`` (a loss
that stalled at a constant lr after a fall) and ``too_low`` (a zero lr, a loss that barely
moved, one still falling evenly or still falling at the end, a validation loss still
improving, tiny update ratios).
"""

from __future__ import annotations

import math

import numpy as np

from .advice import factor_text, nice, plateau_advice
from .curves import HEALTHY_RATIO, TINY, Curves
from .diagnosis import Finding, squash
from .validation import overfitting, val_still_falling

__all__ = ["plateau", "too_low"]


def plateau(c: Curves) -> Finding | None:
    m = len(c.loss)
    if m < 100:  # tenths of 10+ steps: fewer are too noisy to call a stall
        return None
    chunks = np.array_split(np.arange(m), 10)
    med = np.array([np.median(np.log(np.maximum(c.loss[k], TINY))) for k in chunks])
    log_start = math.log(max(c.start, TINY))
    for k in range(9, 2, -1):  # the longest flat stretch of the last k tenths
        first = 10 - k
        fall = med[first] - med[-1]
        rate_before = (log_start - med[first]) / first
        lr = c.lr[chunks[first][0] : m]
        if (
            abs(fall) < math.log(1.1)
            and np.ptp(med[first:]) < math.log(1.2)
            and rate_before > math.log(1.2) / first
            and fall / k < 0.1 * rate_before
            and lr.max() <= 1.05 * lr.min()
        ):
            break
    else:
        return None
    if val_still_falling(c):  # the training loss stalls, but validation still improves
        return None
    if math.exp(med[-1]) < 0.01 * c.start:  # settled near zero: converged, not stalled
        return None
    begin = int(chunks[first][0])
    level = float(np.exp(med[-1]))
    return Finding(
        "plateau",
        f"the loss has stayed near {c.v(level):.3g} (within {math.exp(abs(fall)) - 1:.0%}) from step"
        f" {c.step(begin)} to step {c.step(m - 1)} ({k}0% of the run) while the lr stayed at"
        f" {lr[-1]:.3g}; before that it fell from {c.start_text()}",
        plateau_advice(c.shape),
        squash((k - 3) / 3 + 0.3),
        0.5,
    )


def too_low(c: Curves) -> Finding | None:
    if c.shape is not None and c.shape.peak <= 0:  # no factor of 0 makes a rate
        return Finding(
            "too_low",
            f"{c.shape.text()}: the loss went from {c.start_text()} to {c.v(c.end):.3g} at the"
            " end without an update",
            "set a positive lr (the task's default, or the one lrkit find suggests); check that"
            " the schedule does not multiply it by 0 (`constant(0)`)",
            0.99,
            None,
        )
    drop = c.start - c.end
    rel = 1 - c.rel(c.end, c.start) if c.start > 0 or c.signed else 0.0
    evidence, margins, factor = [], [], 3.0
    if abs(rel) < 0.1 and c.start > 0:
        evidence.append(
            f"the loss barely moved: {c.start_text()}, {c.v(c.end):.3g} at the end"
            f" (step {c.last_step}), {-rel:+.0%}"
        )
        margins.append((0.1 - abs(rel)) * 20)
        factor = 10.0
    elif drop > 0:
        first = (c.start - c.at_tau(0.25)) / drop
        last = (c.at_tau(0.75) - c.end) / drop
        if (last > 0.05 and first < 0.5) or (last > 0.15 and rel < 0.5):
            i75 = min(c.n - 1, int(np.searchsorted(c.tau, 0.75)))
            evidence.append(
                f"loss still falling evenly: from {c.start_text()} to"
                f" {c.v(c.end):.3g} at the end ({rel:.0%} drop), {last:.0%} of it after step"
                f" {c.step(i75)}, only {max(first, 0):.0%} in the first quarter of lr-time"
            )
            margins.append(max(last / 0.05 - 1, (0.5 - first) * 4, 0.3))
            factor = 10.0 if rel < 0.3 else 3.0
    falling = None if evidence else _still_falling(c)
    if falling:
        evidence.append(falling[0])
        margins.append(falling[1])
    val = val_still_falling(c)
    if val:
        evidence.append(val[0])
        margins.append(val[1])
    if c.ratio is not None and c.ratio < 0.1 * HEALTHY_RATIO:
        evidence.append(f"median update/weight ratio {c.ratio:.2g} (healthy about 1e-3)")
        margins.append(math.log10(0.1 * HEALTHY_RATIO / c.ratio) * 2)
        factor = max(factor, min(100.0, nice(HEALTHY_RATIO / c.ratio)))
    if not evidence:
        return None
    keep = (
        f" (its peak; keep the schedule: {c.shape.text()})" if c.shape and c.shape.decayed else ""
    )
    return Finding(
        "too_low",
        "; ".join(evidence),
        f"{factor_text(factor)}{keep}; or use `one_cycle()` with a peak lr {factor:g}x this one"
        + ("; or train for more steps" if falling else ""),
        squash(max(margins)),
        factor,
    )


def _still_falling(c: Curves) -> tuple[str, float] | None:
    """At a constant lr, the log-loss still falling at the end: its fall over the last quarter
    of the steps 2x+ its step-to-step noise and at half the pace of the quarter before or more;
    not near 0 (> 1% of ``start``), the validation loss not turning up. A good lr has done most
    of its work by then and the noise hides what is left; a low one is still descending."""
    late = c.late_fall()
    m = len(c.loss)
    lr = c.lr[m // 2 : m]
    if late is None or lr.max() > 1.05 * lr.min() or c.end < 0.01 * c.start:
        return None
    fall, noise, before = late
    if fall < 2 * noise or fall < 0.5 * before or overfitting(c) is not None:
        return None
    pace = f"at {fall / before:.0%} of the pace of" if before > 0 else "faster than"
    text = (
        f"the loss was still falling when the run ended, at a constant lr {lr[-1]:.3g}: down"
        f" {1 - math.exp(-fall):.0%} over the last quarter (steps {c.step(m - m // 4)} to"
        f" {c.step(m - 1)}), {fall / max(noise, TINY):.1f}x its step-to-step noise, {pace} the"
        " quarter before"
    )
    return text, fall / (2 * max(noise, TINY)) - 1
