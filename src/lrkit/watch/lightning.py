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
``"val_loss"``, any key the module logs) as the validation signal :func:`lrkit.diagnose`
reads, ``val/loss``, when it is lower-better. ``val_mode`` says which, as ``monitor=`` and
``mode=`` do in Lightning's ``ModelCheckpoint`` and ``EarlyStopping``:

- ``"min"``: a loss; recorded as ``val/loss`` (the module's other metrics keep their names);
- ``"max"``: a score (accuracy, F1...): recorded under its own name (``val_acc`` as
  ``val/acc``), never as ``val/loss``, which comes from a ``val_loss`` (or ``val/loss``) the
  module logs besides; without one, a warning (once) says the doctor's validation verdicts
  (overfitting...) need a loss;
- None (the default): ``"max"`` for a name whose words include a score's (``acc``,
  ``accuracy``, ``f1``, ``auc``, ``auroc``, ``precision``, ``recall``, ``iou``, ``dice``,
  ``map``, ``bleu``, ``r2``, ``score``...: ``val_acc``, ``val/top1_acc``), else ``"min"``.

A ``val_metric`` missing from metrics that hold others is warned about once (a module that
logs nothing is not). The guard's end-of-run check reads the ``val/loss`` value.

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

import re
import warnings
from collections.abc import Iterable
from typing import Any

from ..tasks import is_schedule_free
from . import amp
from .guard import Guard
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
    ``history`` only); ``guard`` (a :class:`Guard`, True for one with its defaults,
    False/None for none), ``val_metric`` and ``val_mode`` (``"min"``, ``"max"`` or None):
    see the module doc. Several optimizers need manual optimization in Lightning; the
    first is watched (and guarded).
    """

    def __init__(
        self,
        every: int = 25,
        sinks: Iterable[Any] = (),
        smooth: float = 0.98,
        *,
        flush_every: int = 32,
        log_to_logger: bool = True,
        guard: Guard | bool | None = None,
        val_metric: str = "val_loss",
        val_mode: str | None = None,
    ):
        super().__init__()
        self._options = {"every": every, "smooth": smooth, "flush_every": flush_every}
        if guard is not None and not isinstance(guard, (bool, Guard)):
            raise TypeError(
                f"LRWatchCallback guard must be a Guard, True (a Guard with its defaults),"
                f" False or None; got {guard!r} ({type(guard).__name__})"
            )
        # checks the options now, not when training starts; True becomes a Guard
        self.guard = Watch(**self._options, guard=guard).guard
        if not isinstance(val_metric, str) or not val_metric:
            raise ValueError(f"val_metric must be a metric's name (a str), got {val_metric!r}")
        if val_mode not in (None, "min", "max"):
            raise ValueError(
                f"val_mode must be 'min' (a loss), 'max' (a score such as an accuracy) or None"
                f" (by the name), got {val_mode!r}"
            )
        self.val_metric = val_metric
        self.val_mode = val_mode or ("max" if _is_score(val_metric) else "min")
        if self.val_mode == "max" and _val_name(val_metric) == "val/loss":
            raise ValueError(
                f"val_metric {val_metric!r} with val_mode='max': a metric named as the"
                " validation loss is read lower-better; give the score's own name"
            )
        self.sinks = list(sinks)
        self.log_to_logger = log_to_logger
        self.watch: Watch | None = None
        self._pending = False
        self._loss: Any = None  # this update's loss, from on_before_backward
        self._warned = False
        self._warned_loss = False
        self._last_val: float | None = None  # the last validation's val/loss

    def __repr__(self) -> str:
        guard = "None" if self.guard is None else repr(self.guard)
        return (
            f"LRWatchCallback(every={self._options['every']}, sinks={self.sinks!r},"
            f" smooth={self._options['smooth']:g}, flush_every={self._options['flush_every']},"
            f" log_to_logger={self.log_to_logger}, guard={guard},"
            f" val_metric={self.val_metric!r}, val_mode={self.val_mode!r})"
        )

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
        self._warned_loss, self._last_val = False, None

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
            if loss is None and not _has_grads(optimizer):
                return  # training_step returned None: Lightning skips the batch, no update
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
        loss_key = self._loss_key(metrics)
        for key, value in metrics.items():
            if key == loss_key:
                name = "val/loss"
            elif key == self.val_metric:  # a score under its own name
                name = _val_name(key) or f"val/{key}"
            else:
                name = _val_name(key)
                if name == "val/loss" and loss_key is not None:
                    continue  # val_metric alone is val/loss
            if name is not None and _is_scalar(value):
                self.watch.log(name, float(value), trainer.global_step)
        value = None if loss_key is None else metrics.get(loss_key)
        if value is not None and _is_scalar(value):
            self._last_val = float(value)
        self._warn(metrics, loss_key)

    def _loss_key(self, metrics) -> str | None:
        """The key of ``metrics`` recorded as ``val/loss``: ``val_metric`` for a loss, else
        the module's own validation loss; None when there is none."""
        if self.val_mode == "min":
            return self.val_metric if self.val_metric in metrics else None
        return next((k for k in metrics if _val_name(k) == "val/loss"), None)

    def _warn(self, metrics, loss_key: str | None) -> None:
        if self.val_metric not in metrics and metrics and not self._warned:  # a wrong name
            self._warned = True
            known = ", ".join(sorted(metrics))
            warnings.warn(
                f"LRWatchCallback: no metric {self.val_metric!r} after validation (logged:"
                f" {known}); give val_metric= the name of the validation metric the module logs",
                stacklevel=3,
            )
        elif self.val_mode == "max" and loss_key is None and not self._warned_loss:
            self._warned_loss = True
            warnings.warn(
                f"LRWatchCallback: val_metric {self.val_metric!r} is a score (val_mode='max'),"
                " recorded as its own signal; the module logs no validation loss (val_loss), so"
                " lrkit.diagnose's validation verdicts (overfitting...) have none to read: log"
                " one with self.log('val_loss', ...) in validation_step",
                stacklevel=3,
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


SCORES = frozenset(
    "acc accuracy top1 top5 f1 fbeta auc auroc auprc ap map precision recall iou miou jaccard"
    " dice bleu rouge r2 score".split()
)


def _is_score(name: str) -> bool:
    """Whether a metric's name reads as a higher-better score: one of its words (split at
    ``_ / - .``) is one of :data:`SCORES` (``val_acc``, ``val/top1_acc``; not ``val_loss``)."""
    return not SCORES.isdisjoint(re.split(r"[_/\-.]+", name.lower()))


def _has_grads(optimizer) -> bool:
    """True when a parameter of ``optimizer`` holds a gradient."""
    return any(p.grad is not None for group in optimizer.param_groups for p in group["params"])


def _is_scalar(value: Any) -> bool:
    return getattr(value, "numel", lambda: 1)() == 1


__all__ = ["LRWatchCallback"]
