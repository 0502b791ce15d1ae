"""The doctor's rules on the validation loss (:func:`lrkit.watch.diagnose`): a jolt, an
unsteady validation loss, overfitting, and a validation loss still falling at the end.

Relative changes of a loss near 0 are measured against a floor on the loss's own scale (the
training loss at the start), so a validation loss that moves from 3e-09 to 7e-09 is neither
overfitting nor a jump of a million percent.
"""

from __future__ import annotations

import math

import numpy as np

from .advice import RECIPE
from .curves import Curves
from .diagnosis import Finding, squash


def val_jump(c: Curves) -> tuple[str, float, int] | None:
    """Validation loss up 25%+ from one validation to the next, by a tenth of the first
    validation loss or more (not a wobble near 0): a jolt, not the slow turn of overfitting
    (a few percent a validation). A rise from a loss near 0 is measured against a tenth of the
    training loss at the start, not against the tiny loss (no "up 24242922%").

    ``(evidence on the largest jolt, its margin, (the step of the validation before the
    first jolt, the step of the last jolt))``."""
    if c.val is None:
        return None
    steps, vals = c.val
    keep = np.isfinite(vals) & (vals > 0)
    steps, vals = steps[keep], vals[keep]
    if len(vals) < 2:
        return None
    floor = 0.1 * c.start
    rise = np.diff(vals)
    up = np.where(rise > 0.1 * vals[0], rise / np.maximum(vals[:-1], floor), 0.0)
    i = int(np.argmax(up))
    if up[i] < 0.25:
        return None
    jolts = np.flatnonzero(up >= 0.25)
    span = int(steps[jolts[0]]), int(steps[jolts[-1] + 1])
    how = (
        f"{up[i]:.0%}"
        if vals[i] >= floor
        else f"by {rise[i]:.3g}, {rise[i] / c.start:.0%} of the training loss at the start"
    )
    return (
        f"validation loss jumped {how} from {vals[i]:.3g} at step {int(steps[i])} to"
        f" {vals[i + 1]:.3g} at step {int(steps[i + 1])}",
        math.log((1 + up[i]) / 1.25) * 3,
        span,
    )


def val_unsteady(c: Curves) -> tuple[str, tuple[int, int]] | None:
    """Validation loss worse than the one before at 2+ validations and a quarter of them;
    ``(evidence, (the step of the validation before the first rise, the step of the last))``."""
    if c.val is None or len(c.val[1]) < 3:
        return None
    steps, vals = c.val
    worse = np.flatnonzero(np.diff(vals) > 0) + 1
    if len(worse) < max(2, 0.25 * (len(vals) - 1)):
        return None
    where = ", ".join(str(int(steps[i])) for i in worse[:5]) + (", ..." if len(worse) > 5 else "")
    text = f"validation loss went up at {len(worse)} of {len(vals) - 1} validations (steps {where})"
    return text, (int(steps[worse[0] - 1]), int(steps[worse[-1]]))


def overfitting(c: Curves) -> Finding | None:
    if c.val is None:
        return None
    vsteps, vals = c.val
    keep = np.isfinite(vals)
    vsteps, vals = vsteps[keep], vals[keep]
    if len(vals) < 4:
        return None
    best = int(np.argmin(vals))
    after = vals[best + 1 :]
    if len(after) < 2 or vals.min() <= 0:
        return None
    if vals[-1] - vals[best] < 0.01 * max(c.start, vals[0]):  # a rise near 0 is no rise
        return None
    rise = math.log(vals[-1] / vals[best])
    worse = int(np.sum(after > vals[best] * 1.05))
    at = min(int(np.searchsorted(c.steps, vsteps[best])), len(c.smooth) - 1)
    train_then, train_now = float(c.smooth[at]), float(c.smooth[-1])
    if rise < math.log(1.05) or worse < 2 or train_now > 0.7 * train_then:
        return None
    return Finding(
        "overfitting",
        f"validation loss was lowest at {vals[best]:.3g} (step {int(vsteps[best])}) and rose to"
        f" {vals[-1]:.3g} by step {int(vsteps[-1])} ({worse} validations worse), while the"
        f" training loss fell from {train_then:.3g} to {train_now:.3g}",
        f"not the lr's fault: keep the model of step {int(vsteps[best])} (early stopping), add"
        " data or regularisation, or end the run there: "
        + (
            f"the same schedule over fewer steps ({c.shape.text()})"
            if c.shape and c.shape.decayed
            else f"with a decay ({RECIPE} over fewer epochs)"
        ),
        squash(rise / math.log(1.05) - 1 + worse / 4),
        None,
    )


def val_still_falling(c: Curves) -> tuple[str, float] | None:
    """Validation loss improving at nearly every validation, a sixth of its drop in the last
    quarter of them (5+ validations)."""
    if c.val is None:
        return None
    steps, vals = c.val
    if len(vals) < 5 or not np.isfinite(vals).all():
        return None
    better = float(np.mean(np.diff(vals) < 0))
    drop = vals[0] - vals[-1]
    q = len(vals) - 1 - max(1, round((len(vals) - 1) / 4))  # the last quarter of the intervals
    last = (vals[q] - vals[-1]) / drop if drop > 0 else 0.0
    if better < 0.8 or last < 0.15:
        return None
    text = (
        f"validation loss improved at {better:.0%} of validations, {vals[q]:.3g} at step"
        f" {int(steps[q])} to {vals[-1]:.3g} at step {int(steps[-1])} ({last:.0%} of its drop)"
    )
    return text, (last - 0.15) * 10


CONVERGED = 0.01  # a training loss under this fraction of its start is near 0 (as plateau's)
AT_BEST = 1.05  # a validation loss within 5% of its lowest is at its best


def recovered(c: Curves, first: int, since: int) -> str | None:
    """An instability that cost nothing: its signs between steps ``first`` and ``since`` (-1:
    none but a rule of thumb), and after them a recovery that the end of the run shows. All of:

    - a quarter of the logged steps at least after ``since`` with no sign;
    - the training loss converged: its end under 1% of its start (near 0, as for plateau);
    - a validation loss that had settled at its best: its last two validations, both after
      ``since``, within 5% of its lowest or near 0 (under 1% of the training loss at the
      start); one at its best could be the middle of a descent still catching up;
    - the validation loss ended below every validation loss before ``first``: the run went
      past where it was when the instability struck (not merely back to it).

    A run the instability left worse than it could be (a loss still high, a validation loss
    above its best, no validation to show it) keeps its ``too_high``. Returns the evidence of
    the recovery, or None."""
    m = len(c.loss)
    after = m - int(np.searchsorted(c.steps, since, side="right")) if since >= 0 else m
    if c.val is None or after < m / 4 or c.start <= 0 or c.end >= CONVERGED * c.start:
        return None
    steps, vals = c.val
    keep = np.isfinite(vals)
    steps, vals = steps[keep], vals[keep]
    if len(vals) < 2 or steps[-2] <= since or not np.isfinite(c.val[1][-1]):
        return None
    low = int(np.argmin(vals))
    last = vals[-2:]
    if np.any((last > AT_BEST * vals[low]) & (last > CONVERGED * c.start)):
        return None
    before = vals[steps <= first]
    if len(before) and vals[-1] >= before.min() and vals[-1] > CONVERGED * c.start:
        return None
    where = f"from step {since} on: " if since >= 0 else ""
    best = "at its best" if np.all(last <= AT_BEST * vals[low]) else "near 0"
    return (
        f"the run recovered {where}the training loss ended at {c.end:.3g} (under"
        f" {CONVERGED:.0%} of its start) and the validation loss at {vals[-1]:.3g}, {best}"
        f" (lowest {vals[low]:.3g} at step {int(steps[low])})"
    )


__all__ = ["overfitting", "recovered", "val_jump", "val_unsteady", "val_still_falling"]
