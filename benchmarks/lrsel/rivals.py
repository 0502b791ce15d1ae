"""The other packages' ways to choose a rate, each called as its documentation shows.

- torch-lr-finder: ``LRFinder(model, optimizer, criterion).range_test(loader, end_lr=10,
  num_iter=100)`` from ``start_lr=1e-7``, then ``plot(suggest_lr=True)``'s steepest-gradient
  suggestion;
- Lightning: ``Tuner(trainer).lr_find(module)`` with its defaults (1e-8 to 1, 100 steps), then
  ``.suggestion()``;
- Optuna: TPE, 8 full runs, lr log-uniform over the task's grid range.

Each returns ``(lr, steps spent)``. Tasks whose loss is a step function (not ``criterion(model(x),
y)``) reach the range tests through a wrapper whose forward returns the loss itself.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from lrkit.tasks import Task


class _LossModel(nn.Module):
    """``forward(batch) -> task.loss(model, batch)``: any task through an (inputs, labels) API."""

    def __init__(self, task: Task, model: nn.Module):
        super().__init__()
        self.task, self.model = task, model

    def forward(self, batch):
        return self.task.loss(self.model, batch)


def _parts(task: Task, seed: int):
    model = task.build_model(seed)
    train, _ = task.build_loaders(seed)
    return model, train


def torch_lr_finder(task: Task, seed: int = 0) -> tuple[float | None, int]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from torch_lr_finder import LRFinder, TrainDataLoaderIter

    class Batches(TrainDataLoaderIter):
        def inputs_labels_from_batch(self, batch):
            return batch, torch.zeros(())

    model, train = _parts(task, seed)
    wrapped = _LossModel(task, model)
    optimizer = task.build_optimizer(model, 1e-7)
    finder = LRFinder(wrapped, optimizer, lambda loss, _: loss, device="cpu")
    torch.manual_seed(seed)
    finder.range_test(Batches(train), end_lr=10, num_iter=100)
    steps = len(finder.history["lr"])
    try:
        _, lr = finder.plot(suggest_lr=True)
    except (ValueError, IndexError):
        lr = None
    plt.close("all")
    return (None if lr is None else float(lr)), steps


def lightning_lr_find(task: Task, seed: int = 0) -> tuple[float | None, int]:
    import logging

    import lightning.pytorch as pl
    from lightning.pytorch.tuner import Tuner

    for name in ("lightning", "lightning.pytorch"):
        logging.getLogger(name).setLevel(logging.ERROR)

    class Module(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.model = task.build_model(seed)
            self.lr = task.lr

        def training_step(self, batch, batch_idx):
            return task.loss(self.model, batch)

        def configure_optimizers(self):
            return task.build_optimizer(self.model, self.lr)

    module = Module()
    train, _ = task.build_loaders(seed)
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        max_epochs=1000,
    )
    finder = Tuner(trainer).lr_find(module, train_dataloaders=train)
    steps = len(finder.results["lr"])
    lr = finder.suggestion()
    return (None if lr is None or not math.isfinite(lr) else float(lr)), steps


def optuna_tpe(objective, lo: float, hi: float, trials: int = 8, seed: int = 0) -> float:
    """The best of ``trials`` TPE trials; ``objective(lr)`` is a score to maximise (NaN: worst)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def fn(trial):
        value = objective(trial.suggest_float("lr", lo, hi, log=True))
        return -math.inf if math.isnan(value) else value

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(fn, n_trials=trials)
    return float(study.best_params["lr"])
