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
starts. Importing this module imports ``lightning``
(or ``pytorch_lightning``); ``lrkit.watch`` imports it only when ``LRWatchCallback`` is asked
for.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..tasks import is_schedule_free
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
    ``history`` only).
    """

    def __init__(
        self,
        every: int = 25,
        sinks: Iterable[Any] = (),
        smooth: float = 0.98,
        *,
        flush_every: int = 32,
        log_to_logger: bool = True,
    ):
        super().__init__()
        self._options = {"every": every, "smooth": smooth, "flush_every": flush_every}
        Watch(**self._options)  # checks the options now, not when training starts
        self.sinks = list(sinks)
        self.log_to_logger = log_to_logger
        self.watch: Watch | None = None
        self._pending = False

    def on_train_start(self, trainer, pl_module) -> None:
        if not trainer.optimizers:
            raise ValueError("LRWatchCallback found no optimizer in the trainer")
        sinks = list(self.sinks)
        if self.log_to_logger and trainer.logger is not None:
            sinks.append(LightningLoggerSink(trainer.logger))
        clip = trainer.gradient_clip_val
        norm_clip = clip and (trainer.gradient_clip_algorithm or "norm") == "norm"
        self.watch = Watch(
            pl_module,
            trainer.optimizers[0],
            sinks=sinks,
            clip_grad=float(clip) if norm_clip else None,
            **self._options,
        )
        self.watch.global_step = trainer.global_step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        _mode(trainer, "train")

    def on_validation_start(self, trainer, pl_module) -> None:
        _mode(trainer, "eval")

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        _mode(trainer, "eval")

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if self.watch is None or optimizer is not self.watch.optimizer:
            return
        self.watch.global_step = trainer.global_step
        self.watch.after_backward(None)
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
        for key, value in trainer.callback_metrics.items():
            name = _val_name(key)
            if name is not None and _is_scalar(value):
                self.watch.log(name, float(value), trainer.global_step)

    def on_train_end(self, trainer, pl_module) -> None:
        _mode(trainer, "eval")
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


def _val_name(key: str) -> str | None:
    """``val_loss`` -> ``val/loss``, ``val/acc`` stays; other keys: None."""
    for prefix in ("val/", "val_", "valid_", "validation_"):
        if key.startswith(prefix):
            return "val/" + key[len(prefix) :]
    return None


def _is_scalar(value: Any) -> bool:
    return getattr(value, "numel", lambda: 1)() == 1


__all__ = ["LRWatchCallback"]
