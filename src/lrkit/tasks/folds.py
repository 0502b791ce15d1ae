"""How a task's data are split into cross-validation folds and re-batched: :class:`TaskData`.

A task that can be cross-validated (``Task.folds``) or trained at another batch size
(``Task.variant(batch_size=...)``) describes its *training* data with a :class:`TaskData`:
how many examples there are, how they are split, and how to build loaders over a subset
of them. lrkit does the splitting (scikit-learn's splitters, :func:`fold_indices`); the task
only builds loaders for the indices it is given. The task's validation data never enter a
fold. Tensors get all of this from :func:`tensor_data`.

>>> import torch
>>> x, y = torch.randn(40, 3), torch.arange(40) % 2
>>> data = tensor_data((x, y), (x[:8], y[:8]), batch_size=8)
>>> data.split, data.size
('stratified', 40)
>>> [(len(train), len(val)) for train, val in fold_indices(data, 4)]
[(30, 10), (30, 10), (30, 10), (30, 10)]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..checks import shown, whole
from ..errors import UserError
from .data import tensor_loader

SPLITS = ("stratified", "kfold", "contiguous")
SEED_MAX = 2**32 - 1  # scikit-learn's random_state range

LoaderFactory = Callable[[], Iterable]
MakeLoaders = Callable[[np.ndarray, "np.ndarray | None", int], tuple[LoaderFactory, LoaderFactory]]


@dataclass(frozen=True, eq=False)
class TaskData:
    """A task's training data, described so that lrkit can split it into folds and re-batch it.

    - ``size``: the number of training examples, indexed ``0 .. size - 1``;
    - ``make_loaders(train_index, val_index, batch_size) -> (make_train_loader,
      make_val_loader)``: loader factories (no arguments, like a Task's) that train on the
      training examples ``train_index`` (an int array) in batches of ``batch_size``, and
      validate on the training examples ``val_index``, or on the task's own validation data
      when ``val_index`` is None. **Preprocessing statistics** (a mean and std to standardise
      with, a vocabulary fitted to the data) **come from** ``train_index``'s examples only;
    - ``batch_size``: the task's train batch size;
    - ``split``: how folds are cut: ``"stratified"`` (scikit-learn's ``StratifiedKFold``,
      shuffled; needs ``labels``), ``"kfold"`` (``KFold``, shuffled; for regression) or
      ``"contiguous"`` (``KFold`` unshuffled: each fold is one block of consecutive examples,
      so neighbouring windows of a sequence do not leak into the fold that validates them;
      the seed has no effect);
    - ``labels``: the class of each training example (``"stratified"`` only).

    The task itself is ``make_loaders(arange(size), None, batch_size)``.
    """

    size: int
    make_loaders: MakeLoaders
    batch_size: int
    split: str = "kfold"
    labels: np.ndarray | None = None

    def __post_init__(self):
        whole(self.size, "TaskData size (training examples)", least=1)
        whole(self.batch_size, "TaskData batch_size", least=1)
        if not callable(self.make_loaders):
            raise TypeError(f"TaskData make_loaders must be callable, got {self.make_loaders!r}")
        if self.split not in SPLITS:
            raise ValueError(
                f"TaskData split must be one of {', '.join(SPLITS)}, got {shown(self.split)}"
            )
        if self.split == "stratified":
            if self.labels is None:
                raise ValueError("TaskData split 'stratified' needs labels (one per example)")
        if self.labels is not None:
            labels = np.asarray(self.labels)
            if labels.shape != (self.size,):
                raise ValueError(
                    f"TaskData labels must be one per training example ({self.size}),"
                    f" got shape {labels.shape}"
                )
            object.__setattr__(self, "labels", labels)

    def loaders(
        self,
        train_index: Sequence[int] | None = None,
        val_index: Sequence[int] | None = None,
        batch_size: int | None = None,
    ) -> tuple[LoaderFactory, LoaderFactory]:
        """``make_loaders`` with defaults: all training examples, the task's validation data,
        the task's batch size."""
        train = np.arange(self.size) if train_index is None else np.asarray(train_index)
        val = None if val_index is None else np.asarray(val_index)
        return self.make_loaders(train, val, self.batch_size if batch_size is None else batch_size)

    def subset(self, train_index: np.ndarray, val_index: np.ndarray | None) -> TaskData:
        """The data of a task that trains on ``train_index`` and validates on ``val_index``
        (None: the task's validation data): its own training examples are ``train_index``'s,
        so it can be split into folds and re-batched in turn."""
        parent, train_index = self, np.asarray(train_index)

        def make_loaders(train, val, batch_size):
            outer = val_index if val is None else train_index[val]
            return parent.make_loaders(train_index[train], outer, batch_size)

        labels = None if self.labels is None else self.labels[train_index]
        return TaskData(len(train_index), make_loaders, self.batch_size, self.split, labels)

    def with_batch_size(self, batch_size: int) -> TaskData:
        """The same data batched by ``batch_size``."""
        return TaskData(self.size, self.make_loaders, batch_size, self.split, self.labels)


def check_folds(k: Any, seed: Any = 0) -> tuple[int, int]:
    """``(k, seed)`` checked: ``k`` a whole number >= 2 (named ``cv``), ``seed`` in
    [0, 2**32 - 1]; a UserError otherwise."""
    try:
        whole(k, "cv", least=2)
        whole(seed, "fold seed", least=0)
    except ValueError as e:
        raise UserError(str(e)) from None
    if seed > SEED_MAX:
        raise UserError(f"fold seed must be a whole number in [0, {SEED_MAX}], got {shown(seed)}")
    return k, seed


def check_batch_size(value: Any) -> int:
    """A batch size: a whole number >= 1; a UserError otherwise."""
    try:
        return whole(value, "batch size", least=1)
    except ValueError as e:
        raise UserError(str(e)) from None


def fold_indices(data: TaskData, k: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """``k`` pairs ``(train_index, val_index)`` of a k-fold split of ``data``'s examples.

    Every example is in exactly one ``val_index``; each pair's indices are disjoint, sorted and
    together cover all examples. The same ``seed`` gives the same folds. Raises a UserError
    when there are fewer examples than folds, or, for a stratified split, when a class has
    fewer examples than folds.
    """
    from sklearn.model_selection import KFold, StratifiedKFold

    k, seed = check_folds(k, seed)
    if k > data.size:
        raise UserError(
            f"cv={k} folds need at least {k} training examples, but there are {data.size}"
        )
    index = np.arange(data.size)
    if data.split == "stratified":
        classes, counts = np.unique(data.labels, return_counts=True)
        if counts.min() < k:
            raise UserError(
                f"cv={k} stratified folds need at least {k} training examples of every class,"
                f" but class {classes[counts.argmin()].item()!r} has {counts.min()}"
            )
        splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
        pairs = splitter.split(index, data.labels)
    elif data.split == "kfold":
        pairs = KFold(n_splits=k, shuffle=True, random_state=seed).split(index)
    else:
        pairs = KFold(n_splits=k, shuffle=False).split(index)
    return [(np.sort(train), np.sort(val)) for train, val in pairs]


def tensor_data(
    train: torch.Tensor | Sequence[torch.Tensor],
    val: torch.Tensor | Sequence[torch.Tensor],
    *,
    batch_size: int,
    val_batch_size: int = 256,
    split: str | None = None,
    standardize: bool = False,
) -> TaskData:
    """The :class:`TaskData` of tensors: ``train`` and ``val`` are tuples of equally long
    tensors (``(x, y)``, or one tensor of sequences), batched with :func:`tensor_loader`
    (train shuffled).

    ``split`` None: ``"stratified"`` when the last train tensor is 1-D of integers (class
    labels), else ``"kfold"``. ``standardize=True`` scales the first tensor's features to mean
    0 and std 1 with the statistics of the examples trained on (a feature whose std is below
    1e-3 is only centred), and applies them to the validation examples too.
    """
    train = (train,) if isinstance(train, torch.Tensor) else tuple(train)
    val = (val,) if isinstance(val, torch.Tensor) else tuple(val)
    whole(val_batch_size, "val_batch_size", least=1)
    last = train[-1]
    labelled = last.dim() == 1 and not last.is_floating_point() and not last.is_complex()
    if split is None:
        split = "stratified" if labelled else "kfold"
    labels = last.numpy() if labelled else None

    def make_loaders(train_index, val_index, batch):
        fit_on = torch.as_tensor(train_index, dtype=torch.long)
        part = val if val_index is None else [t[torch.as_tensor(val_index)] for t in train]

        def prepare(tensors):
            if not standardize:
                return tensors
            x = train[0][fit_on]
            mean, std = x.mean(dim=0), x.std(dim=0, unbiased=False)
            std = torch.where(std < 1e-3, torch.ones_like(std), std)
            return ((tensors[0] - mean) / std, *tensors[1:])

        def make_train():
            return tensor_loader(
                *prepare([t[fit_on] for t in train]), batch_size=batch, shuffle=True
            )

        def make_val():
            return tensor_loader(*prepare(part), batch_size=val_batch_size)

        return make_train, make_val

    size = len(last)
    return TaskData(size, make_loaders, batch_size, split, labels)


__all__ = ["TaskData", "tensor_data", "fold_indices", "check_folds", "check_batch_size", "SPLITS"]
