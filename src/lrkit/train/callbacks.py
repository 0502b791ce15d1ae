"""Events of the training loop, the state they see, and the progress bar.

A callback is any object with some of these methods, each called with the :class:`State`:

==================== ==================================================================
``on_train_start``   once, after model, optimizer, loaders and driver are built
``on_after_backward`` every batch, after ``loss.backward()``, before ``optimizer.step()``
``on_after_step``    every update applied, after ``optimizer.step()`` and ``driver.step()``
                     (not after one a GradScaler skipped)
``on_epoch_end``     after the last training batch of an epoch, before validation
``on_validation_end`` after each validation: ``state.metric`` and ``state.val_loss`` are set
``on_train_end``     once, when the run ends for any reason (see ``history.status``)
==================== ==================================================================

Setting ``state.stop = True`` in any event ends the run after the current step. Setting
``state.skip = True`` in ``on_after_backward`` skips this batch's update: no gradient clipping,
no ``optimizer.step()``, no driver advance and no ``on_after_step``; ``state.step`` stays.

Validation runs after every epoch, or every ``val_every`` steps when :func:`~lrkit.train.fit`
is given one, and once more at the end of a step budget that ends mid-epoch. After each one,
``on_validation_end`` fires, then fit's ``report(step, metric, val_loss)`` hook, the one a
tuner prunes with: a true return value ends the run (status ``"stopped"``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..progress import progress, wanted
from .history import History

EVENTS = (
    "on_train_start",
    "on_after_backward",
    "on_after_step",
    "on_epoch_end",
    "on_validation_end",
    "on_train_end",
)


@dataclass
class State:
    """What callbacks see. ``step`` counts updates done; ``epoch`` is 0-based.

    ``loss`` is this step's loss as a detached tensor (``float(state.loss)`` reads it, at the
    price of a device sync); ``metric``/``val_loss`` hold the last validation's values.
    ``skip`` (reset to False every batch) skips this batch's update when a callback sets it in
    ``on_after_backward``; ``clip_grad`` is the global grad-norm threshold of the run (None:
    no clipping), applied after ``on_after_backward``. Under torchrun, ``model`` is the module
    itself (fit trains it through DistributedDataParallel), ``loss`` the mean over the ranks.
    ``autocast`` is fit's mixed precision and ``scaler`` its GradScaler under ``"fp16"``
    (None otherwise): in ``on_after_backward`` the gradients are already unscaled, and the
    loop itself calls ``scaler.step`` and, once every batch, ``scaler.update()``
    (:mod:`lrkit.train.amp`); ``step`` does not count an update the scaler skipped.
    """

    task: Any
    model: nn.Module
    optimizer: torch.optim.Optimizer
    driver: Any
    history: History
    train_loader: Iterable
    val_loader: Iterable
    total_steps: int
    step: int = 0
    epoch: int = 0
    batch: Any = None
    loss: torch.Tensor | None = None
    metric: float | None = None
    val_loss: float | None = None
    stop: bool = False
    skip: bool = False
    clip_grad: float | None = None
    final: bool = False  # True from the run's last validation on (its last step is done)
    autocast: str | None = None  # fit's mixed precision: None, "bf16" or "fp16"
    scaler: Any = None  # with "fp16", the GradScaler (fit steps and updates it)


class Callback:
    """A base with every event as a no-op; subclass and override the ones you need."""

    def on_train_start(self, state: State) -> None: ...

    def on_after_backward(self, state: State) -> None: ...

    def on_after_step(self, state: State) -> None: ...

    def on_epoch_end(self, state: State) -> None: ...

    def on_validation_end(self, state: State) -> None: ...

    def on_train_end(self, state: State) -> None: ...


class Events:
    """The callbacks' methods, looked up once per event so the hot loop calls only real ones."""

    def __init__(self, callbacks: Iterable[Any]):
        self.handlers = {
            event: [getattr(cb, event) for cb in callbacks if callable(getattr(cb, event, None))]
            for event in EVENTS
        }

    def __call__(self, event: str, state: State) -> None:
        for handler in self.handlers[event]:
            handler(state)


class ProgressBar(Callback):
    """A progress bar over all steps, showing the last loss and the first group's lr."""

    def __init__(self):
        self._block = None
        self._bar = None

    @staticmethod
    def wanted(progress: bool | None) -> bool:
        """``progress=None`` means: only when stdout is a terminal."""
        return wanted(progress)

    def on_train_start(self, state: State) -> None:
        fields = {"loss": "-", "lr": "-", "metric": ""}
        template = "loss {task.fields[loss]}  lr {task.fields[lr]}  {task.fields[metric]}"
        self._block = progress(
            state.history.task, state.total_steps, show=True, fields=fields, template=template
        )
        self._bar = self._block.__enter__()

    def on_after_step(self, state: State) -> None:
        losses = state.history.loss
        self._bar.update(
            state.step,
            loss=f"{losses[-1]:.4f}" if losses else "-",
            lr=f"{state.optimizer.param_groups[0]['lr']:.3g}",
        )

    def on_validation_end(self, state: State) -> None:
        name = state.history.metric_name
        self._bar.update(metric=f"{name} {state.metric:.4g}")

    def on_train_end(self, state: State) -> None:
        if self._block is not None:
            self._block.__exit__(None, None, None)
            self._block = self._bar = None
