"""Bundled tasks on scikit-learn's embedded data sets (no download): digits, wine, diabetes.

Each trains in a few seconds on a CPU. Splits are fixed (``random_state=0``, stratified for
classification); features are standardised with statistics of the training part only. Each
task's ``data`` splits that training part into folds (stratified for classification) and
standardises every fold with the statistics of the examples it trains on.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .data import accuracy, r2, split_indices, tensor_loader
from .folds import TaskData
from .registry import register_task
from .task import Metric, Task


@cache
def _raw(name: str, stratify: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x, y, train, val)``: a scikit-learn data set (x as float32) and its fixed split."""
    import sklearn.datasets

    x, y = getattr(sklearn.datasets, f"load_{name}")(return_X_y=True)
    x = x.astype(np.float32)
    train, val = split_indices(len(x), 0.2, stratify=y if stratify else None)
    return x, y, train, val


def _standardised(name: str, stratify: bool, fit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All of ``(x, y)``, standardised with the statistics of the examples ``fit`` only:
    features to mean 0 and std 1, and a regression target too."""
    x, y, _, _ = _raw(name, stratify)
    mean, std = x[fit].mean(axis=0), x[fit].std(axis=0)
    std[std < 1e-3] = 1.0  # constant columns (digits' blank border pixels) stay constant
    x = (x - mean) / std
    if stratify:
        y = y.astype(np.int64)
    else:
        y = ((y - y[fit].mean()) / y[fit].std()).astype(np.float32)
    return x, y


def _data(name: str, batch_size: int, *, stratify: bool = True) -> TaskData:
    """The TaskData of a data set's training part: stratified folds for classification,
    shuffled ones for regression; each subset standardised with its training examples."""
    _, y, train, val = _raw(name, stratify)

    def make_loaders(train_index, val_index, batch):
        fit = train[train_index]
        held = val if val_index is None else train[val_index]

        def loader(index, size, shuffle):
            x, y = _standardised(name, stratify, fit)
            return tensor_loader(
                torch.from_numpy(x[index]),
                torch.from_numpy(y[index]),
                batch_size=size,
                shuffle=shuffle,
            )

        return (lambda: loader(fit, batch, True)), (lambda: loader(held, 256, False))

    if stratify:
        return TaskData(len(train), make_loaders, batch_size, "stratified", y[train])
    return TaskData(len(train), make_loaders, batch_size, "kfold")


def mlp(*sizes: int) -> nn.Sequential:
    """Linear layers of the given sizes with ReLU between them."""
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


def decay_groups(params, weight_decay: float) -> list[dict]:
    """Two param groups: matrices and kernels decay, biases do not (the nanoGPT split).

    Param groups given already (dicts) are returned as they are.
    """
    params = list(params)
    if any(isinstance(p, dict) for p in params):
        return params
    decay = [p for p in params if p.dim() >= 2]
    rest = [p for p in params if p.dim() < 2]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]


@register_task("digits-mlp")
def digits_mlp() -> Task:
    """Handwritten digits (8x8, 10 classes), a 2-layer MLP trained with SGD and momentum."""
    data = _data("digits", 64)
    return Task(
        name="digits-mlp",
        description="handwritten digits 8x8, MLP, SGD with momentum",
        make_model=lambda: mlp(64, 128, 10),
        make_optimizer=lambda params, lr: torch.optim.SGD(
            params, lr=lr, momentum=0.9, nesterov=True
        ),
        data=data,
        criterion=F.cross_entropy,
        metric=Metric("accuracy", accuracy, higher_is_better=True),
        epochs=10,
        threads=1,
        lr=0.05,
    )


class _DigitsCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.head = nn.Linear(32 * 4 * 4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x.view(-1, 1, 8, 8)).flatten(1))


@register_task("digits-cnn")
def digits_cnn() -> Task:
    """Handwritten digits (8x8, 10 classes), a small two-layer conv net trained with Adam."""
    data = _data("digits", 64)
    return Task(
        name="digits-cnn",
        description="handwritten digits 8x8, small conv net, Adam",
        make_model=_DigitsCNN,
        make_optimizer=lambda params, lr: torch.optim.Adam(params, lr=lr),
        data=data,
        metric=Metric("accuracy", accuracy, higher_is_better=True),
        epochs=6,
        threads=1,
        lr=3e-3,
    )


@register_task("wine-mlp")
def wine_mlp() -> Task:
    """Wine cultivars (13 standardised features, 3 classes), an MLP trained with AdamW."""
    data = _data("wine", 16)
    return Task(
        name="wine-mlp",
        description="wine cultivars, standardised features, MLP, AdamW (no decay on biases)",
        make_model=lambda: mlp(13, 32, 3),
        make_optimizer=lambda params, lr: torch.optim.AdamW(decay_groups(params, 0.01), lr=lr),
        data=data,
        metric=Metric("accuracy", accuracy, higher_is_better=True),
        epochs=15,
        threads=1,
        lr=1e-2,
    )


def _mse_step(model: nn.Module, batch) -> torch.Tensor:
    x, y = batch
    return F.mse_loss(model(x).squeeze(-1), y)


@register_task("diabetes-mlp")
def diabetes_mlp() -> Task:
    """Diabetes progression (10 features, regression), an MLP on MSE; metric R2."""
    data = _data("diabetes", 32, stratify=False)
    return Task(
        name="diabetes-mlp",
        description="diabetes progression regression, MLP, MSE, Adam",
        make_model=lambda: mlp(10, 64, 1),
        make_optimizer=lambda params, lr: torch.optim.Adam(params, lr=lr),
        data=data,
        step_fn=_mse_step,
        metric=Metric("r2", r2, higher_is_better=True),
        epochs=12,
        threads=1,
        lr=1e-3,
    )
