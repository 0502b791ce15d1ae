"""``LRWatchCallback``: a :class:`~lrkit.watch.Watch` inside a PyTorch Lightning ``Trainer``.

>>> from lrkit.watch.lightning import LRWatchCallback            # doctest: +SKIP
>>> trainer = lightning.Trainer(callbacks=[LRWatchCallback()])   # doctest: +SKIP

The signals go to the trainer's logger (``CSVLogger``, ``TensorBoardLogger``, ...) under the
tags of :mod:`lrkit.watch.logs` (``lr-SGD``, ``train/grad_norm``...), plus any sinks given;
``callback.history`` holds them for :func:`lrkit.diagnose`. Gradients are measured in
``on_before_optimizer_step``, before Lightning clips them; the loss is the one the training
step returned. The first optimizer is watched. A schedule-free optimizer (``schedulefree``'s)
is put in ``eval()`` mode when validation starts, at the end of each training epoch and of
training (so validation, and a ``ModelCheckpoint``, which Lightning runs after the other
callbacks, see the averaged weights), and back in ``train()`` mode when a training batch
starts.

Validation: after each validation (not the sanity check) every ``val_*`` / ``val/*`` metric of
``trainer.callback_metrics`` is recorded as ``val/*``, and ``val_metric`` (default
``"val_loss"``, any key the module logs) as ``val/loss``, the validation signal
:func:`lrkit.diagnose` reads; a ``val_metric`` missing from metrics that hold others is
warned about once (a module that logs nothing is not).

``guard=`` (a :class:`~lrkit.watch.Guard`, or True for one with its defaults) judges every
update in ``on_before_optimizer_step``, after the backward pass and before Lightning clips:
the loss is the one Lightning hands to ``on_before_backward`` (summed over accumulated
micro-batches, which Lightning has divided by their count; under DDP the guard judges the
mean over the ranks of the loss and of the synchronised gradients' norm, so every rank takes
the same action at the same batch). A skipped update sets the parameters' gradients to None, which makes the
optimizer step leave them and their state alone (what Lightning does when ``training_step``
returns None); a rollback restores the guard's last snapshot (model, optimizer, the
optimizer's first scheduler) and lowers the lr, then skips the same way. Lightning's
``global_step`` and its schedulers still count a skipped update. At the end of training the
guard refuses to call a run completed whose last validation's ``val_metric`` is far above
the run's start (:meth:`~lrkit.watch.Guard.check_final`, the rule ``fit`` applies), then its
:meth:`~lrkit.watch.Guard.finish` runs (a run ending in lasting trouble is rolled back);
:class:`~lrkit.watch.GuardExhausted` propagates out of ``trainer.fit``. Its actions join the
signals as ``guard/{action}``.

Mixed precision (``precision="16-mixed"``, or a ``MixedPrecision`` plugin with its own
``GradScaler``): the guard is given the trainer's scaler (``trainer.precision_plugin.scaler``)
and judges the loss unscaled (Lightning hands ``on_before_backward`` the scaled one) and the
gradients Lightning has unscaled; a scaler's overflow is not trouble (see
:mod:`lrkit.watch.amp`). Lightning steps and updates the scaler after every batch, also a
skipped one, so the guard never calls ``scaler.update()`` itself (``update_scaler=False``).

Importing this module imports ``lightning``
(or ``pytorch_lightning``); ``lrkit.watch`` imports it only when ``LRWatchCallback`` is asked
for.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import Any

from ..tasks import is_schedule_free
from . import amp
from .logs import Signals
from .sinks import LightningLoggerSink
from .watch import Watch

try:
    from lightning.pytorch import Callback
except ImportError:  # the older package name
    try:
        from pytorch_lightning import Callback
    except ImportError as e:
        raise ImportError("LRWatchCallback needs PyTorch Lightning: pip install lightning") from e


class LRWatchCallback(Callback):
    """Watch the first optimizer of a Lightning run; arguments as :class:`Watch`'s.

    ``log_to_logger=False`` keeps the signals off the trainer's logger (sinks and
    ``history`` only); ``guard`` and ``val_metric``: see the module doc.
    """

    def __init__(
        self,
        every: int = 25,
        sinks: Iterable[Any] = (),
        smooth: float = 0.98,
        *,
        flush_every: int = 32,
        log_to_logger: bool = True,
        guard: Any = None,
        val_metric: str = "val_loss",
    ):
        super().__init__()
        self._options = {"every": every, "smooth": smooth, "flush_every": flush_every}
        # checks the options now, not when training starts; True becomes a Guard
        self.guard = Watch(**self._options, guard=guard).guard
        if not isinstance(val_metric, str) or not val_metric:
            raise ValueError(f"val_metric must be a metric's name (a str), got {val_metric!r}")
        self.val_metric = val_metric
        self.sinks = list(sinks)
        self.log_to_logger = log_to_logger
        self.watch: Watch | None = None
        self._pending = False
        self._loss: Any = None  # this update's loss, from on_before_backward
        self._warned = False
        self._last_val: float | None = None  # the last validation's val_metric

    def on_train_start(self, trainer, pl_module) -> None:
        if not trainer.optimizers:
            raise ValueError("LRWatchCallback found no optimizer in the trainer")
        sinks = list(self.sinks)
        if self.log_to_logger and trainer.logger is not None:
            sinks.append(LightningLoggerSink(trainer.logger))
        clip = trainer.gradient_clip_val
        norm_clip = clip and (trainer.gradient_clip_algorithm or "norm") == "norm"
        optimizer = trainer.optimizers[0]
        schedulers = [c.scheduler for c in trainer.lr_scheduler_configs]
        if self.guard is not None:
            self.guard.reset()
        self.watch = Watch(
            pl_module,
            optimizer,
            sinks=sinks,
            driver=next((s for s in schedulers if s.optimizer is optimizer), None),
            clip_grad=float(clip) if norm_clip else None,
            guard=self.guard,
            scaler=_scaler(trainer),
            update_scaler=False,  # Lightning steps and updates the scaler after every batch
            **self._options,
        )
        self.watch.global_step = trainer.global_step
        self._loss, self._pending, self._warned = None, False, False
        self._last_val = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        _mode(trainer, "train")

    def on_validation_start(self, trainer, pl_module) -> None:
        _mode(trainer, "eval")

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        _mode(trainer, "eval")

    def on_before_backward(self, trainer, pl_module, loss) -> None:
        if self.guard is not None:
            loss = amp.unscaled(_scaler(trainer), loss.detach())
            self._loss = loss if self._loss is None else self._loss + loss

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if self.watch is None or optimizer is not self.watch.optimizer:
            return
        self.watch.global_step = trainer.global_step
        if self.guard is None:
            self.watch.after_backward(None)
        else:
            loss, self._loss = self._loss, None
            if loss is None:
                raise ValueError(
                    "LRWatchCallback(guard=...) saw an optimizer step without a backward pass"
                    " through Lightning (on_before_backward): the guard needs the loss"
                )
            if self.watch.after_backward(loss) != "ok":
                for group in optimizer.param_groups:
                    for p in group["params"]:
                        p.grad = None  # the step leaves these parameters and their state alone
        self._pending = True

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.watch is None or not self._pending:
            return  # gradient accumulation: no update after this batch
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        self.watch.after_step(loss if loss is not None and _is_scalar(loss) else None)
        self._pending = False

    def on_validation_end(self, trainer, pl_module) -> None:
        if self.watch is None or trainer.sanity_checking:
            return
        metrics = trainer.callback_metrics
        named = self.val_metric in metrics  # then it alone is val/loss
        for key, value in metrics.items():
            name = "val/loss" if key == self.val_metric else _val_name(key)
            if name == "val/loss" and named and key != self.val_metric:
                continue
            if name is not None and _is_scalar(value):
                self.watch.log(name, float(value), trainer.global_step)
        value = metrics.get(self.val_metric)
        if value is not None and _is_scalar(value):
            self._last_val = float(value)
        if not named and metrics and not self._warned:  # a name that does not match
            self._warned = True
            known = ", ".join(sorted(metrics))
            warnings.warn(
                f"LRWatchCallback: no metric {self.val_metric!r} after validation (logged:"
                f" {known}); give val_metric= the name of the validation loss the module logs",
                stacklevel=2,
            )

    def on_train_end(self, trainer, pl_module) -> None:
        _mode(trainer, "eval")
        if self.watch is None:
            return
        try:
            if self.guard is not None:
                self.guard.check_final(self._last_val)  # the rule fit applies
                self.guard.finish()
        finally:
            self.watch.close()

    def on_exception(self, trainer, pl_module, exception) -> None:
        if self.watch is not None:
            self.watch.close()

    @property
    def history(self) -> Signals:
        """The signals so far (empty before training starts)."""
        return Signals() if self.watch is None else self.watch.history


def _mode(trainer, mode: str) -> None:
    """Every schedule-free optimizer of the trainer to ``mode`` ("train" or "eval")."""
    for optimizer in trainer.optimizers:
        if is_schedule_free(optimizer):
            getattr(optimizer, mode)()


def _scaler(trainer) -> Any:
    """The trainer's GradScaler (mixed precision), or None."""
    return getattr(getattr(trainer, "precision_plugin", None), "scaler", None)


def _val_name(key: str) -> str | None:
    """``val_loss`` -> ``val/loss``, ``val/acc`` stays; other keys: None."""
    for prefix in ("val/", "val_", "valid_", "validation_"):
        if key.startswith(prefix):
            return "val/" + key[len(prefix) :]
    return None


def _is_scalar(value: Any) -> bool:
    return getattr(value, "numel", lambda: 1)() == 1


__all__ = ["LRWatchCallback"]
