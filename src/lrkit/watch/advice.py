"""The doctor's advice (:func:`lrkit.watch.diagnose`): round lr factors, and schedule tips that
fit the schedule the run had (:class:`~lrkit.watch.curves.LrShape`).

>>> factor_text(nice(0.28))
'divide the lr by about 3'
>>> decay_tip(LrShape(peak=0.1, first=0.1, last=0.1, constant=True))
'a decay at the end (`warmup(5%) >> cosine(to=0.01)`) usually helps'
"""

from __future__ import annotations

import math

from .curves import LrShape


def nice(factor: float) -> float:
    """A round factor: 2, 3, 5, 10, 30, 100... or their inverses."""
    big = factor if factor >= 1 else 1 / factor
    steps = [1, 2, 3, 5, 10, 30, 100, 300, 1000]
    best = min(steps, key=lambda s: abs(math.log(big / s)))
    return best if factor >= 1 else 1 / best


def factor_text(factor: float) -> str:
    """The advice's words for multiplying the lr by ``factor``."""
    return (
        f"multiply the lr by about {factor:g}"
        if factor >= 1
        else (f"divide the lr by about {1 / factor:g}")
    )


RECIPE = "`warmup(5%) >> cosine(to=0.01)`"


def decay_tip(shape: LrShape | None) -> str:
    """A decay to add, for a schedule that did not decay (or that the run did not log)."""
    did = "if it did not decay, " if shape is None else ""
    return f"{did}a decay at the end ({RECIPE}) usually helps"


def warmup_tip(shape: LrShape | None) -> str:
    """A warmup to add, or a longer one where the run had one."""
    if shape is not None and shape.warmup:
        return f"a warmup longer than its {shape.warmup} steps also tames the start"
    return f"a warmup ({RECIPE}) also tames the start"


def plateau_advice(shape: LrShape | None) -> str:
    """Lower the lr when it stalls; where the schedule already lowered it, look elsewhere."""
    if shape is not None and shape.decayed:
        return (
            f"{shape.text()}, so lowering it again does little: try a higher peak lr (about 2x)"
            " with the same decay, more steps before the decay, or a reduce-on-plateau factor"
            " that lowers it only once the loss stalls, `plateau(factor=0.5, patience=2)`"
        )
    return (
        "lower the lr when the loss stalls: multiply in a reduce-on-plateau factor,"
        f" `plateau(factor=0.5, patience=2)`, or decay it: {RECIPE}"
    )


__all__ = ["RECIPE", "nice", "factor_text", "decay_tip", "warmup_tip", "plateau_advice"]
