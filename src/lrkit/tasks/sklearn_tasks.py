"""Bundled tasks on scikit-learn's embedded data sets (no download): digits, wine, diabetes.

Each trains in a few seconds on a CPU. Splits are fixed (``random_state=0``, stratified for
classification); features are standardised with statistics of the training part only.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .data import accuracy, r2, split_indices, tensor_loader
from .registry import register_task
from .task import Metric, Task


@cache
def _load(name: str, stratify: bool) -> tuple[torch.Tensor, ...]:
    """``(x_train, y_train, x_val, y_val)`` of a scikit-learn data set, as float32 tensors."""
    import sklearn.datasets

    x, y = getattr(sklearn.datasets, f"load_{name}")(return_X_y=True)
    x = x.astype(np.float32)
    train, val = split_indices(len(x), 0.2, stratify=y if stratify else None)
    mean, std = x[train].mean(axis=0), x[train].std(axis=0)
    std[std < 1e-3] = 1.0  # constant columns (digits' blank border pixels) stay constant
    x = (x - mean) / std
    if stratify:
        y = y.astype(np.int64)
    else:
        y = ((y - y[train].mean()) / y[train].std()).astype(np.float32)
    return (
        torch.from_numpy(x[train]),
        torch.from_numpy(y[train]),
        torch.from_numpy(x[val]),
        torch.from_numpy(y[val]),
    )


def _loaders(name: str, batch_size: int, *, stratify: bool = True):
    def train():
        x, y, _, _ = _load(name, stratify)
        return tensor_loader(x, y, batch_size=batch_size, shuffle=True)

    def val():
        _, _, x, y = _load(name, stratify)
        return tensor_loader(x, y, batch_size=256)

    return train, val


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
    train, val = _loaders("digits", 64)
    return Task(
        name="digits-mlp",
        description="handwritten digits 8x8, MLP, SGD with momentum",
        make_model=lambda: mlp(64, 128, 10),
        make_optimizer=lambda params, lr: torch.optim.SGD(
            params, lr=lr, momentum=0.9, nesterov=True
        ),
        make_train_loader=train,
        make_val_loader=val,
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
    train, val = _loaders("digits", 64)
    return Task(
        name="digits-cnn",
        description="handwritten digits 8x8, small conv net, Adam",
        make_model=_DigitsCNN,
        make_optimizer=lambda params, lr: torch.optim.Adam(params, lr=lr),
        make_train_loader=train,
        make_val_loader=val,
        metric=Metric("accuracy", accuracy, higher_is_better=True),
        epochs=6,
        threads=1,
        lr=3e-3,
    )


@register_task("wine-mlp")
def wine_mlp() -> Task:
    """Wine cultivars (13 standardised features, 3 classes), an MLP trained with AdamW."""
    train, val = _loaders("wine", 16)
    return Task(
        name="wine-mlp",
        description="wine cultivars, standardised features, MLP, AdamW (no decay on biases)",
        make_model=lambda: mlp(13, 32, 3),
        make_optimizer=lambda params, lr: torch.optim.AdamW(decay_groups(params, 0.01), lr=lr),
        make_train_loader=train,
        make_val_loader=val,
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
    train, val = _loaders("diabetes", 32, stratify=False)
    return Task(
        name="diabetes-mlp",
        description="diabetes progression regression, MLP, MSE, Adam",
        make_model=lambda: mlp(10, 64, 1),
        make_optimizer=lambda params, lr: torch.optim.Adam(params, lr=lr),
        make_train_loader=train,
        make_val_loader=val,
        step_fn=_mse_step,
        metric=Metric("r2", r2, higher_is_better=True),
        epochs=12,
        threads=1,
        lr=1e-3,
    )
