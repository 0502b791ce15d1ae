"""The benchmark's tasks, the grid of rates each is searched over, and the schedule they share.

Five are lrkit's bundled tasks; ``breast-cancer-sgd`` is defined here (plain SGD, no momentum,
on scikit-learn's breast-cancer data), so that plain SGD is covered too, and so is
``pychar-transformer`` (a small causal transformer on pychar-gru's text, AdamW), which was
added after pick_lr's constants were chosen: a held-out check.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from lrkit.tasks import Metric, Task, accuracy, get_task, split_indices, tensor_loader
from lrkit.tasks.sklearn_tasks import mlp

SCHEDULE = "warmup(5%) >> cosine"
SEEDS = (0, 1)


@dataclass(frozen=True)
class BenchTask:
    """A task name, what it is, and its grid: quarter decades from 10**lo to 10**hi."""

    name: str
    kind: str
    optimizer: str
    lo: int
    hi: int

    @property
    def grid(self) -> list[float]:
        n = 4 * (self.hi - self.lo) + 1
        return [float(10 ** (self.lo + i / 4)) for i in range(n)]

    @property
    def default_lr(self) -> float:
        """The rate people try first: 1e-3 for Adam and AdamW, 1e-2 for SGD."""
        return 1e-3 if self.optimizer.startswith("adam") else 1e-2


BENCH_TASKS = {
    t.name: t
    for t in (
        BenchTask("digits-mlp", "MLP, classification", "sgd-momentum", -4, 1),
        BenchTask("digits-cnn", "CNN, classification", "adam", -5, 0),
        BenchTask("wine-mlp", "MLP, classification", "adamw", -5, 0),
        BenchTask("diabetes-mlp", "MLP, regression", "adam", -5, 0),
        BenchTask("pychar-gru", "GRU, language model", "adam", -5, 0),
        BenchTask("breast-cancer-sgd", "MLP, classification", "sgd", -3, 2),
        BenchTask("pychar-transformer", "transformer LM (held out)", "adamw", -5, 0),
    )
}


def _breast_cancer_data():
    from sklearn.datasets import load_breast_cancer

    x, y = load_breast_cancer(return_X_y=True)
    x = x.astype(np.float32)
    train, val = split_indices(len(x), 0.2, stratify=y)
    mean, std = x[train].mean(axis=0), x[train].std(axis=0)
    x = (x - mean) / std
    y = y.astype(np.int64)
    return (
        torch.from_numpy(x[train]),
        torch.from_numpy(y[train]),
        torch.from_numpy(x[val]),
        torch.from_numpy(y[val]),
    )


def breast_cancer_sgd() -> Task:
    """Breast cancer (30 standardised features, 2 classes), an MLP trained with plain SGD."""
    xt, yt, xv, yv = _breast_cancer_data()
    return Task(
        name="breast-cancer-sgd",
        description="breast cancer, standardised features, MLP, plain SGD",
        make_model=lambda: mlp(30, 32, 2),
        make_optimizer=lambda params, lr: torch.optim.SGD(params, lr=lr),
        make_train_loader=lambda: tensor_loader(xt, yt, batch_size=32, shuffle=True),
        make_val_loader=lambda: tensor_loader(xv, yv, batch_size=256),
        criterion=F.cross_entropy,
        metric=Metric("accuracy", accuracy, higher_is_better=True),
        epochs=8,
        threads=1,
        lr=0.1,
    )


class CharTransformer(nn.Module):
    """Embedding + learned positions, two causal encoder layers (d 64, 4 heads), a read-out."""

    def __init__(self, vocab: int, d: int = 64, length: int = 64):
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.position = nn.Parameter(torch.zeros(length, d))
        layer = nn.TransformerEncoderLayer(d, 4, 128, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(d, vocab)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[1]
        mask = nn.Transformer.generate_square_subsequent_mask(n)
        h = self.embed(x) + self.position[:n]
        return self.head(self.encoder(h, mask=mask, is_causal=True))


def pychar_transformer() -> Task:
    """pychar-gru's data, loss and metric with a small causal transformer trained by AdamW."""
    from lrkit.tasks import get_task
    from lrkit.tasks.pychar import _data
    from lrkit.tasks.sklearn_tasks import decay_groups

    return replace(
        get_task("pychar-gru"),
        name="pychar-transformer",
        description="character-level causal transformer on Python stdlib source, AdamW",
        make_model=lambda: CharTransformer(len(_data()[0])),
        make_optimizer=lambda params, lr: torch.optim.AdamW(decay_groups(params, 0.01), lr=lr),
        lr=1e-3,
    )


def load_task(name: str) -> Task:
    """The lrkit Task of a benchmark task name."""
    if name == "breast-cancer-sgd":
        return breast_cancer_sgd()
    if name == "pychar-transformer":
        return pychar_transformer()
    return get_task(name)
