"""Keras-familiar callbacks for :func:`lrkit.train.fit`: ``StopOnNaN`` and ``ReduceLROnPlateau``.

``StopOnNaN()`` is Keras's ``TerminateOnNaN``: the run stops at the first non-finite training
loss, before that update is applied (the model keeps its last finite weights), with status
``"diverged"`` and the step in the reason. Without it ``fit`` notices a NaN at its next loss
read-back, up to 16 steps later.

``ReduceLROnPlateau(monitor="val_loss", factor=0.1, patience=10, ...)`` takes Keras's arguments
and counts like Keras: the lr is multiplied by ``factor`` after ``patience`` epochs without an
improvement of more than ``min_delta``. The rule is the schedule pillar's plateau factor
(:class:`lrkit.schedules.Plateau`, reported once an epoch); the callback applies its scale to the
driver's base lrs, so the schedule keeps its shape. The same thing in schedule form, fed the
validation loss by ``fit`` itself, is ``schedule="warmup(5%) >> cosine * plateau(patience=9)"``
(torch's count: a reduction after *more than* ``patience`` bad epochs).

>>> from lrkit.train import fit
>>> reduce = ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=1, min_delta=10.0)
>>> history = fit("digits-mlp", lr=0.01, epochs=3, callbacks=[reduce], progress=False)
>>> [(r["epoch"], r["lrs"]) for r in reduce.reductions]  # val loss never drops by 10.0
[(1, [0.005]), (2, [0.0025])]
>>> history.lrs[-1]  # the last update used the lr of epoch 2: the reduction came after it
0.005
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..checks import number, whole
from ..schedules import Plateau
from ..train import Callback, State
from ..train.history import DIVERGED

_MODES = ("auto", "min", "max")


class StopOnNaN(Callback):
    """Stop at the first non-finite loss, before its update; status ``"diverged"``.

    Reads the loss back every step (one device sync a step), like Keras's ``TerminateOnNaN``.
    """

    def on_after_backward(self, state: State) -> None:
        if bool(torch.isfinite(state.loss).all()):
            return
        state.skip = state.stop = True
        state.history.status = DIVERGED
        state.history.reason = (
            f"the loss was {float(state.loss)} at step {state.step} (epoch {state.epoch});"
            " StopOnNaN stopped the run before applying that update: try a lower lr or a warmup"
        )

    def __repr__(self) -> str:
        return "StopOnNaN()"


class ReduceLROnPlateau(Callback):
    """Multiply the lr by ``factor`` when ``monitor`` has not improved for ``patience`` epochs.

    Args:
        monitor: ``"val_loss"``, ``"loss"`` (the epoch's mean training loss) or the task's
            metric, by its name or Keras's ``"val_" + name`` (``"accuracy"``, ``"val_accuracy"``).
        factor: 0 <= factor < 1.
        patience: epochs without improvement before a reduction (Keras's count).
        mode: ``"min"``, ``"max"`` or ``"auto"`` (the metric's direction; min for losses).
        min_delta: an improvement must beat the best by more than this (absolute, like Keras).
        cooldown: epochs after a reduction before bad epochs count again.
        min_lr: the first param group's lr never goes below it (the others keep their ratio).

    ``reductions`` lists each one: ``epoch``, ``step``, the monitored ``value`` and new ``lrs``.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        factor: float = 0.1,
        patience: int = 10,
        mode: str = "auto",
        min_delta: float = 1e-4,
        cooldown: int = 0,
        min_lr: float = 0.0,
    ):
        if not isinstance(monitor, str) or not monitor:
            raise ValueError(f"ReduceLROnPlateau monitor must be a metric name, got {monitor!r}")
        if mode not in _MODES:
            raise ValueError(f"ReduceLROnPlateau mode must be one of {_MODES}, got {mode!r}")
        whole(patience, "ReduceLROnPlateau patience")
        min_lr = number(min_lr, "ReduceLROnPlateau min_lr", low=0)
        self.monitor, self.mode, self.min_lr = monitor, mode, float(min_lr)
        self.settings = dict(
            factor=factor,
            patience=max(patience - 1, 0),  # Keras: reduce at `patience` bad epochs; torch: after
            threshold=min_delta,
            threshold_mode="abs",
            cooldown=cooldown,
        )
        self.patience = patience
        try:
            self.plateau = Plateau(mode="min", **self.settings)  # checks the numbers now
        except ValueError as e:
            raise ValueError(f"ReduceLROnPlateau: {e} (min_delta is its threshold)") from None
        self.reductions: list[dict[str, Any]] = []

    def on_train_start(self, state: State) -> None:
        history = state.history
        metric = history.metric_name
        higher = {"val_loss": False, "loss": False, metric: history.higher_is_better}
        higher[f"val_{metric}"] = history.higher_is_better
        if self.monitor not in higher:
            raise ValueError(
                f"ReduceLROnPlateau cannot monitor {self.monitor!r} in this run; accepted:"
                f" {', '.join(repr(k) for k in higher)}"
            )
        mode = self.mode if self.mode != "auto" else ("max" if higher[self.monitor] else "min")
        base = state.driver.base_lrs[0]
        if self.min_lr > base:
            raise ValueError(
                f"ReduceLROnPlateau min_lr {self.min_lr!r} is above the lr {base!r}; give"
                " min_lr <= lr"
            )
        min_scale = self.min_lr / base if base else 0.0
        self.plateau = Plateau(mode=mode, min_scale=min_scale, **self.settings)
        self.reductions = []

    def on_validation_end(self, state: State) -> None:
        value = self._monitored(state)
        if not math.isfinite(value):
            return
        before = self.plateau.scale
        after = self.plateau.report(value)
        if after != before:
            driver = state.driver
            driver.set_base_lrs([b * after / before for b in driver.base_lrs])
            self.reductions.append(
                {
                    "epoch": state.epoch,
                    "step": state.step,
                    "value": value,
                    "lrs": driver.get_last_lr(),
                }
            )

    def _monitored(self, state: State) -> float:
        if self.monitor == "val_loss":
            return state.val_loss
        if self.monitor != "loss":
            return state.metric
        history = state.history
        skipped = set(history.skipped)
        losses = [
            x
            for i, (x, e) in enumerate(zip(history.loss, history.epoch))
            if e == state.epoch and i not in skipped
        ]
        return sum(losses) / len(losses) if losses else math.nan

    def __repr__(self) -> str:
        s = self.settings
        return (
            f"ReduceLROnPlateau(monitor={self.monitor!r}, factor={s['factor']!r},"
            f" patience={self.patience!r}, mode={self.mode!r}, min_delta={s['threshold']!r},"
            f" cooldown={s['cooldown']!r}, min_lr={self.min_lr!r})"
        )


__all__ = ["StopOnNaN", "ReduceLROnPlateau"]
