"""Small data helpers shared by the bundled tasks: fast tensor loaders, fixed splits, metrics."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import torch
from torch import nn
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    RandomSampler,
    SequentialSampler,
    TensorDataset,
)


def tensor_loader(*tensors: torch.Tensor, batch_size: int, shuffle: bool = False) -> DataLoader:
    """A DataLoader over equally long tensors that fetches each batch with one indexing op.

    Shuffling draws from torch's global generator at the start of every epoch, so a seeded
    run sees the same order. An unshuffled loader (validation) draws nothing from it: torch's
    DataLoader takes a seed from the global generator on every pass unless given its own, and
    then how often a run validates would change its training order (a tune trial, validating
    every few steps, would not be reproduced by the same run validating once an epoch).

    >>> loader = tensor_loader(torch.arange(10), torch.arange(10), batch_size=4)
    >>> len(loader), [len(x) for x, _ in loader]
    (3, [4, 4, 2])
    """
    dataset = TensorDataset(*tensors)
    order = RandomSampler(dataset) if shuffle else SequentialSampler(dataset)
    batches = BatchSampler(order, batch_size=batch_size, drop_last=False)
    own = None if shuffle else torch.Generator()  # see above: keeps the global one untouched
    return DataLoader(dataset, sampler=batches, batch_size=None, generator=own)


def split_indices(
    n: int, val_fraction: float = 0.2, *, stratify: np.ndarray | None = None, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """A fixed train/validation split of ``range(n)``: the same indices on every call."""
    from sklearn.model_selection import train_test_split

    train, val = train_test_split(
        np.arange(n), test_size=val_fraction, random_state=seed, stratify=stratify
    )
    return np.sort(train), np.sort(val)


def _outputs(model: nn.Module, loader: Iterable) -> tuple[torch.Tensor, torch.Tensor]:
    outs, targets = [], []
    for x, y in loader:
        outs.append(model(x))
        targets.append(y)
    return torch.cat(outs), torch.cat(targets)


def accuracy(model: nn.Module, loader: Iterable) -> float:
    """Fraction of ``(x, y)`` examples whose highest-scoring class is ``y``."""
    logits, y = _outputs(model, loader)
    return float((logits.argmax(dim=-1) == y).float().mean())


def rmse(model: nn.Module, loader: Iterable) -> float:
    """Root mean squared error of the model's outputs against ``y``."""
    pred, y = _outputs(model, loader)
    return math.sqrt(float(((pred.reshape(y.shape) - y) ** 2).mean()))


def r2(model: nn.Module, loader: Iterable) -> float:
    """Coefficient of determination: ``1 - SS_res / SS_tot`` (1 is perfect, 0 is the mean)."""
    pred, y = _outputs(model, loader)
    ss_res = ((pred.reshape(y.shape) - y) ** 2).sum()
    ss_tot = ((y - y.mean()) ** 2).sum()
    return float(1.0 - ss_res / ss_tot)
