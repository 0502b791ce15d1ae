"""Faults injected into ``lrkit.train.fit`` runs, through the public callback events only.

A :class:`Fault` acts in ``on_after_backward``, before the guard (put it first in the
callbacks): at its batches it multiplies the loss the loop records and every gradient by a
factor (``nan``: a NaN loss; ``10``/``100``: a loss spike, whose gradients scale with it as if
the loss itself had been scaled before ``backward()``) or only the gradients (``explode``:
x1e6). Batches are counted, not steps: a skipped update does not move the fault. A real
divergence is a schedule instead: :func:`lr_jump` multiplies the run's schedule by 100 from a
given step on.

>>> fault = Fault("spike", {3}, loss_factor=10.0)
>>> fault.batches, fault.loss_factor, fault.grad_factor
({3}, 10.0, 10.0)
"""

from __future__ import annotations

import math

from lrkit.schedules import as_schedule, piecewise_constant
from lrkit.train import Callback

GRAD_BLOWUP = 1e6


class Fault(Callback):
    """At the given 0-based batches, multiply the recorded loss by ``loss_factor`` and every
    gradient by ``grad_factor`` (default: the loss factor, as a scaled loss would)."""

    def __init__(self, name: str, batches, loss_factor: float = 1.0, grad_factor=None):
        self.name, self.batches = name, set(batches)
        self.loss_factor = float(loss_factor)
        self.grad_factor = self.loss_factor if grad_factor is None else float(grad_factor)
        self.batch = 0

    def on_train_start(self, state) -> None:
        self.batch = 0

    def on_after_backward(self, state) -> None:
        if self.batch in self.batches:
            state.loss = state.loss * self.loss_factor
            for group in state.optimizer.param_groups:
                for p in group["params"]:
                    if p.grad is not None:
                        p.grad.mul_(self.grad_factor)
        self.batch += 1


def make_fault(kind: str, at: int, length: int = 1) -> Fault:
    """``nan``, ``spike10``, ``spike100``, ``explode`` at batch ``at``; ``nan-run``: ``length``
    NaN batches in a row from ``at``."""
    if kind in ("nan", "nan-run"):
        return Fault(kind, range(at, at + length), loss_factor=math.nan)
    if kind.startswith("spike"):
        return Fault(kind, {at}, loss_factor=float(kind.removeprefix("spike")))
    if kind == "explode":
        return Fault(kind, {at}, grad_factor=GRAD_BLOWUP)
    raise ValueError(f"unknown fault {kind!r}; known: nan, nan-run, spike10, spike100, explode")


def lr_jump(schedule, at: int, factor: float = 100.0):
    """``schedule`` times ``factor`` from driver step ``at`` on: a run pushed into divergence.

    >>> lr_jump("constant", 5)(4), lr_jump("constant", 5)(5)
    (1.0, 100.0)
    """
    if at == 0:  # from the first step
        return as_schedule(schedule, "schedule") * factor
    return as_schedule(schedule, "schedule") * piecewise_constant([at], [1.0, factor])


class Recorder(Callback):
    """Keeps the run's History, which ``fit`` does not return when a callback raised."""

    history = None

    def on_train_start(self, state) -> None:
        self.history = state.history
