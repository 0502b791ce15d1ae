"""``LRFindCallback``: lrkit's range test inside a PyTorch Lightning ``Trainer``.

>>> from lrkit.find.lightning import LRFindCallback              # doctest: +SKIP
>>> trainer = lightning.Trainer(callbacks=[LRFindCallback()])    # doctest: +SKIP

At ``on_fit_start`` (where Lightning's ``LearningRateFinder`` runs too) the callback sweeps
the module's configured optimizer with :func:`~lrkit.find.find_lr` over the trainer's train
dataloader, each batch through the strategy's ``training_step`` (the module's, under the
precision plugin's autocast; a GradScaler of ``16-mixed`` precision is used and restored).
What ``training_step`` logs during the sweep is dropped (the sweep is not training). The
model, optimizer, scaler and RNG states are then restored from one CPU snapshot, and the
chosen lr is put into the run (:mod:`lrkit.find.lightning_lrs`):

- when the module has an ``lr`` or ``learning_rate`` attribute, or ``hparams`` entry, or the
  one named by ``attr=`` (Lightning's ``lightning_setattr``), it is set to the found lr and
  the optimizer(s) and scheduler(s) are built again by the module's own
  ``configure_optimizers`` (new objects, fresh state), so ``OneCycleLR(max_lr=self.lr)``
  peaks at the found lr;
- without one (or with ``update_attr=False``), the found lr is written into every param
  group as the lr the schedule peaks at (a group's ``max_lr``, else its base lr), the
  groups keeping their ratios, and each attached scheduler's ``base_lrs``/``max_lrs`` are
  scaled with it, so a schedule keeps its shape around the new rate.

A ``training_step`` that returns None for a batch (Lightning skips that update) is passed
over in the sweep too: no update and no recorded loss for it, the next batch is read at
the same lr. One that returns None for every batch of a pass is refused with ValueError.

The :class:`~lrkit.find.FindResult` is ``callback.result``; ``plot=`` saves its plot (rank 0;
a path, checked when the callback is built, its folder when the sweep starts).
A curve the rules do not trust leaves every rate as it was, with a warning that says why.
Importing this module imports ``lightning`` (or ``pytorch_lightning``); ``lrkit.find``
imports it only when ``LRFindCallback`` is asked for.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch

from .. import dist
from ..errors import UserError
from ..paths import writable_file
from .lightning_lrs import apply_lr
from .rangetest import find_lr
from .result import FindResult

try:
    from lightning.pytorch import Callback
    from lightning.pytorch.utilities import CombinedLoader
    from lightning.pytorch.utilities.parsing import lightning_hasattr
except ImportError:  # the older package name
    try:
        from pytorch_lightning import Callback
        from pytorch_lightning.utilities import CombinedLoader
        from pytorch_lightning.utilities.parsing import lightning_hasattr
    except ImportError as e:
        raise ImportError("LRFindCallback needs PyTorch Lightning: pip install lightning") from e

LR_ATTRS = ("lr", "learning_rate")  # looked up in this order, as Lightning's finder does
PLOT = "LRFindCallback plot"


class LRFindCallback(Callback):
    """Run the range test at the start of ``fit`` and train at its lr; see the module doc.

    Args:
        start, end, steps, mode, smooth, stop_factor, accumulate, seeds, rule, progress: as
            :func:`~lrkit.find.find_lr`'s (checked when the callback is built); ``accumulate``
            defaults to the trainer's ``accumulate_grad_batches``, so a sweep's update sees
            the batch a training update sees.
        update_attr: write the lr into the module's attribute too (when it has one) and
            build the optimizer again from ``configure_optimizers`` (see the module doc).
        attr: the attribute's name; default: ``lr``, else ``learning_rate``, if present.
        plot: a path (str or ``os.PathLike``) where rank 0 saves the result's plot (a PNG
            for ``.png``); its folder must exist when ``fit`` starts.

    Raises ValueError when built with a bad option; at ``fit`` (before the sweep) for a
    module with manual optimization or no optimizer (``configure_optimizers`` returned
    None), an ``attr=`` the module lacks, and a ``plot`` that cannot be written. Several
    optimizers need manual optimization in Lightning, which refuses them itself otherwise
    (a RuntimeError before any callback runs).
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
        if plot is not None and not isinstance(plot, (str, os.PathLike)):
            raise ValueError(
                f"{PLOT} must be a file path (a str or Path, e.g. 'find.png') or None, got {plot!r}"
            )
        self.update_attr = bool(update_attr)
        self.attr = attr
        self.plot = plot
        self.result: FindResult | None = None

    def __repr__(self) -> str:
        options = {**self._options, "update_attr": self.update_attr, "attr": self.attr}
        options["plot"] = None if self.plot is None else str(self.plot)
        return f"LRFindCallback({', '.join(f'{k}={v!r}' for k, v in options.items())})"

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
        if self.plot is not None:
            _check_plot(self.plot)
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
                step_fn=_training_step(trainer, loader),
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
        apply_lr(trainer, pl_module, attr, float(self.result.lr), new)

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
    if any(type(o).__name__ == "_MockOptimizer" for o in optimizers):
        raise ValueError(
            f"LRFindCallback needs an optimizer to sweep; {type(pl_module).__name__}"
            ".configure_optimizers returned None"
        )
    if len(optimizers) != 1:  # Lightning refuses several under automatic optimization first
        names = ", ".join(type(o).__name__ for o in optimizers) or "none"
        raise ValueError(
            f"LRFindCallback sweeps exactly one optimizer; configure_optimizers gave"
            f" {len(optimizers)} ({names})"
        )
    return optimizers[0]


def _check_plot(plot: str | Path) -> None:
    """UserError (on every rank) when rank 0, the one that writes it, cannot write ``plot``."""
    said = None
    if dist.is_main():
        try:
            writable_file(plot, PLOT)
        except UserError as e:
            said = str(e)
    said = dist.broadcast(said)  # every rank refuses, none sweeps alone
    if said is not None:
        raise UserError(said)


class _Batches:
    """The train dataloader(s) as Lightning hands them to ``training_step``: ``(batch,
    batch_idx)`` pairs on the module's device; read again from the start each pass.

    One cursor for the sweep and the step: :meth:`following` reads on past a batch that
    ``training_step`` skipped (returned None), starting the next pass at the end.
    """

    def __init__(self, trainer) -> None:
        self.trainer = trainer
        self.iterables = trainer.train_dataloader
        self.empty = self.iterables is None
        self.passes = 0  # passes started
        self._pass: Iterator[tuple[Any, int]] = iter(())

    def __iter__(self) -> _Batches:
        self._start()
        return self

    def __next__(self) -> tuple[Any, int]:
        return next(self._pass)

    def following(self) -> tuple[Any, int]:
        for _ in range(2):  # the rest of this pass, else the next one
            item = next(self._pass, None)
            if item is not None:
                return item
            self._start()
        raise ValueError("LRFindCallback: the train dataloader yielded no batches")

    def _start(self) -> None:
        self.passes += 1
        self._pass = self._pairs()

    def _pairs(self) -> Iterator[tuple[Any, int]]:
        for batch, batch_idx, _ in CombinedLoader(self.iterables, "max_size_cycle"):
            yield self.trainer.strategy.batch_to_device(batch), batch_idx


def _training_step(trainer, batches: _Batches):
    """The sweep's step: the strategy's ``training_step`` on the batch, or on the batches
    after it while it returns None (skipped, as Lightning skips them); ValueError when a
    whole pass of the loader gives no loss."""
    loss_seen = [None]  # the pass in which a loss was last returned

    def step(model, item) -> torch.Tensor:
        if loss_seen[0] is None:
            loss_seen[0] = batches.passes - 1  # as if just before the first pass
        while True:
            batch, batch_idx = item
            out = trainer.strategy.training_step(batch, batch_idx)
            loss = out.get("loss") if isinstance(out, Mapping) else out
            if loss is not None:
                loss_seen[0] = batches.passes
                return loss
            if batches.passes - loss_seen[0] >= 2:  # a whole pass returned no loss
                raise ValueError(
                    f"training_step returned {out!r} for every batch of the train dataloader"
                    f" in the range test (the last: batch {batch_idx}); it needs the loss (a"
                    " scalar tensor, or a dict with 'loss') for at least some batches"
                )
            item = batches.following()

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


__all__ = ["LRFindCallback"]
