"""``LRFindCallback``: lrkit's range test inside a PyTorch Lightning ``Trainer``.

>>> from lrkit.find.lightning import LRFindCallback              # doctest: +SKIP
>>> trainer = lightning.Trainer(callbacks=[LRFindCallback()])    # doctest: +SKIP

At ``on_fit_start`` (where Lightning's ``LearningRateFinder`` runs too) the callback sweeps
the module's configured optimizer with :func:`~lrkit.find.find_lr` over the trainer's train
dataloader, each batch through the strategy's ``training_step`` (the module's, under the
precision plugin's autocast; a GradScaler of ``16-mixed`` precision is used and restored).
What ``training_step`` logs during the sweep is dropped (the sweep is not training). The
model, optimizer, scaler and RNG states are then restored from one CPU snapshot, and the
chosen lr is written:

- into every param group, keeping the groups' ratios (:meth:`FindResult.group_lr`); a group's
  ``lr``, ``initial_lr``, ``max_lr`` and ``min_lr`` (where present) and each attached
  scheduler's ``base_lrs`` are multiplied by new / old base lr, so a schedule keeps its shape
  around the new rate (an lrkit ``Driver`` through ``set_base_lrs``);
- into the module's ``lr`` or ``learning_rate`` attribute, or ``hparams`` entry, or the one
  named by ``attr=`` (Lightning's ``lightning_setattr``), when there is one.

The :class:`~lrkit.find.FindResult` is ``callback.result``; ``plot=`` saves its plot (rank 0).
A curve the rules do not trust leaves every rate as it was, with a warning that says why.
Importing this module imports ``lightning`` (or ``pytorch_lightning``); ``lrkit.find``
imports it only when ``LRFindCallback`` is asked for.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from .. import dist
from .rangetest import find_lr
from .result import FindResult

try:
    from lightning.pytorch import Callback
    from lightning.pytorch.utilities import CombinedLoader
    from lightning.pytorch.utilities.parsing import lightning_hasattr, lightning_setattr
except ImportError:  # the older package name
    try:
        from pytorch_lightning import Callback
        from pytorch_lightning.utilities import CombinedLoader
        from pytorch_lightning.utilities.parsing import lightning_hasattr, lightning_setattr
    except ImportError as e:
        raise ImportError("LRFindCallback needs PyTorch Lightning: pip install lightning") from e

LR_ATTRS = ("lr", "learning_rate")  # looked up in this order, as Lightning's finder does
LR_KEYS = ("lr", "initial_lr", "max_lr", "min_lr")  # a group's lr-valued entries


class LRFindCallback(Callback):
    """Run the range test at the start of ``fit`` and train at its lr; see the module doc.

    Args:
        start, end, steps, mode, smooth, stop_factor, accumulate, seeds, rule, progress: as
            :func:`~lrkit.find.find_lr`'s (checked when the callback is built); ``accumulate``
            defaults to the trainer's ``accumulate_grad_batches``, so a sweep's update sees
            the batch a training update sees.
        update_attr: write the lr into the module's attribute too (when it has one).
        attr: the attribute's name; default: ``lr``, else ``learning_rate``, if present.
        plot: a path where rank 0 saves the result's plot (a PNG for ``.png``).

    Raises ValueError at ``fit`` for a module with manual optimization, no optimizer or
    several (the sweep drives one optimizer's steps), and for an ``attr=`` the module lacks.
    """

    def __init__(
        self,
        start: float = 1e-7,
        end: float = 10.0,
        steps: int = 100,
        *,
        mode: str = "exp",
        smooth: float = 0.98,
        stop_factor: float = 4.0,
        accumulate: int | None = None,
        seeds: int = 1,
        rule: str | None = None,
        update_attr: bool = True,
        attr: str | None = None,
        plot: str | Path | None = None,
        progress: bool | None = False,
    ):
        super().__init__()
        self._options = dict(
            start=start,
            end=end,
            steps=steps,
            mode=mode,
            smooth=smooth,
            stop_factor=stop_factor,
            accumulate=accumulate,
            seeds=seeds,
            rule=rule,
            progress=progress,
        )
        from .inputs import Settings

        checked = {**self._options, "accumulate": 1 if accumulate is None else accumulate}
        Settings(**checked, autocast=None, val_every=None, val_batches=1)
        if attr is not None and (not isinstance(attr, str) or not attr):
            raise ValueError(f"attr must be an attribute name (a non-empty str), got {attr!r}")
        self.update_attr = bool(update_attr)
        self.attr = attr
        self.plot = plot
        self.result: FindResult | None = None

    def on_fit_start(self, trainer, pl_module) -> None:
        if trainer.fast_dev_run:
            warnings.warn("LRFindCallback: skipped, fast_dev_run is on", stacklevel=2)
            return
        if trainer.ckpt_path is not None:
            warnings.warn(
                f"LRFindCallback: skipped, the run resumes from {trainer.ckpt_path} (its"
                " optimizer state, lr included, comes from the checkpoint)",
                stacklevel=2,
            )
            return
        optimizer = _the_optimizer(trainer, pl_module)
        attr = self._attr(pl_module)
        trainer.fit_loop.setup_data()  # what fit itself does first; it keeps the loaders
        loader = _Batches(trainer)
        if loader.empty:
            raise ValueError("LRFindCallback found no train dataloader in the trainer")
        scaler = getattr(trainer.precision_plugin, "scaler", None)
        options = dict(self._options)
        if options["accumulate"] is None:
            options["accumulate"] = int(trainer.accumulate_grad_batches)
        with _no_logging(pl_module):
            self.result = find_lr(
                pl_module,
                optimizer,
                loader,
                step_fn=_training_step(trainer),
                scaler=scaler,
                **options,
            )
        if self.plot is not None and dist.is_main():
            self.result.plot(self.plot)
        new = self.result.group_lr()
        if new is None:
            now = ", ".join(f"{float(g['lr']):.4g}" for g in optimizer.param_groups)
            warnings.warn(
                f"LRFindCallback: the range test trusted no lr ({self.result.confidence}),"
                f" so the lr stays {now}; see callback.result",
                stacklevel=2,
            )
            return
        _write_lrs(optimizer, new, _schedulers(trainer, optimizer))
        if attr is not None:
            lightning_setattr(pl_module, attr, float(self.result.lr))

    def _attr(self, pl_module) -> str | None:
        """The module's lr attribute to update, or None (checked before the sweep)."""
        if not self.update_attr:
            return None
        if self.attr is not None:
            if not lightning_hasattr(pl_module, self.attr):
                raise ValueError(
                    f"LRFindCallback(attr={self.attr!r}): {type(pl_module).__name__} has no"
                    f" attribute or hparams entry {self.attr!r}; give one it has, or"
                    " update_attr=False"
                )
            return self.attr
        return next((a for a in LR_ATTRS if lightning_hasattr(pl_module, a)), None)


def _the_optimizer(trainer, pl_module) -> torch.optim.Optimizer:
    if not pl_module.automatic_optimization:
        raise ValueError(
            f"LRFindCallback needs automatic optimization; {type(pl_module).__name__} steps its"
            " optimizers itself (automatic_optimization=False): run lrkit.find.find_lr on it"
            " with a step_fn instead"
        )
    optimizers = trainer.optimizers
    if len(optimizers) != 1:
        names = ", ".join(type(o).__name__ for o in optimizers) or "none"
        raise ValueError(
            f"LRFindCallback sweeps exactly one optimizer; configure_optimizers gave"
            f" {len(optimizers)} ({names})"
        )
    return optimizers[0]


class _Batches:
    """The train dataloader(s) as Lightning hands them to ``training_step``: ``(batch,
    batch_idx)`` pairs on the module's device; read again from the start each pass."""

    def __init__(self, trainer) -> None:
        self.trainer = trainer
        self.iterables = trainer.train_dataloader
        self.empty = self.iterables is None

    def __iter__(self) -> Iterator[tuple[Any, int]]:
        for batch, batch_idx, _ in CombinedLoader(self.iterables, "max_size_cycle"):
            yield self.trainer.strategy.batch_to_device(batch), batch_idx


def _training_step(trainer):
    def step(model, item) -> torch.Tensor:
        batch, batch_idx = item
        out = trainer.strategy.training_step(batch, batch_idx)
        loss = out.get("loss") if isinstance(out, dict) else out
        if loss is None:
            raise ValueError(
                f"training_step returned {out!r} at batch {batch_idx} of the range test; it"
                " needs the loss (a scalar tensor, or a dict with 'loss')"
            )
        return loss

    return step


@contextlib.contextmanager
def _no_logging(module) -> Iterator[None]:
    """``self.log`` and ``self.log_dict`` of the module do nothing inside the block."""

    def drop(*args: Any, **kwargs: Any) -> None:
        return None

    module.log = module.log_dict = drop
    try:
        yield
    finally:
        for name in ("log", "log_dict"):
            module.__dict__.pop(name, None)


def _schedulers(trainer, optimizer) -> list[Any]:
    return [c.scheduler for c in trainer.lr_scheduler_configs if c.scheduler.optimizer is optimizer]


def _write_lrs(optimizer, new: list[float], schedulers: list[Any]) -> None:
    """Make each group's base lr ``new[i]``, scaling its lr-valued entries and each
    scheduler's ``base_lrs`` by new / old base (a zero old base: set to the new one)."""
    factors = []
    for group, lr in zip(optimizer.param_groups, new):
        old = _number(group.get("initial_lr", group["lr"]))
        factor = lr / old if old > 0 else None
        factors.append(factor)
        for key in LR_KEYS:
            if key in group:
                value = lr if factor is None else _number(group[key]) * factor
                if isinstance(group[key], torch.Tensor):
                    group[key].fill_(value)
                else:
                    group[key] = value
    for scheduler in schedulers:
        base = getattr(scheduler, "base_lrs", None)
        if base is None:
            continue
        scaled = [lr if f is None else float(b) * f for b, f, lr in zip(base, factors, new)]
        if callable(getattr(scheduler, "set_base_lrs", None)):  # lrkit's Driver
            scheduler.set_base_lrs(scaled)
        else:
            scheduler.base_lrs = scaled


def _number(value: Any) -> float:
    return float(value.item()) if isinstance(value, torch.Tensor) else float(value)


__all__ = ["LRFindCallback"]
