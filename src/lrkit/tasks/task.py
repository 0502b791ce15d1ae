"""The Task: everything a training run needs, built from plain parts, no subclassing.

A task holds *factories* (``make_model``, ``make_optimizer``, ``make_train_loader``,
``make_val_loader``), the loss (a ``criterion`` on ``(x, y)`` batches, or a ``step_fn``), a
:class:`Metric`, and the run's defaults (``epochs``, ``lr``, ``seed``). The ``build_*`` methods
call the factories reproducibly: the same seed gives the same model and the same data.

>>> import torch
>>> from torch import nn
>>> from lrkit.tasks import Task, tensor_loader
>>> x, y = torch.randn(64, 3), torch.randint(0, 2, (64,))
>>> task = Task(
...     name="toy",
...     make_model=lambda: nn.Linear(3, 2),
...     make_train_loader=lambda: tensor_loader(x, y, batch_size=16, shuffle=True),
...     make_val_loader=lambda: tensor_loader(x, y, batch_size=64),
... )
>>> model = task.build_model()
>>> task.build_optimizer(model, lr=0.01).param_groups[0]["lr"]
0.01
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ..checks import check_lr, whole
from ..errors import UserError
from ..runtime import seed_everything, torch_threads
from .folds import TaskData, check_batch_size, check_folds, fold_indices
from .lrfree import optimizer_info, require
from .optimizers import check_optimizer, check_weight_decay, variant_optimizer

Params = Iterable[torch.Tensor] | Iterable[dict[str, Any]]
StepFn = Callable[[nn.Module, Any], torch.Tensor]


@dataclass(frozen=True)
class Metric:
    """How a task is scored on its validation data: ``fn(model, val_loader) -> float``.

    ``higher_is_better`` says which way is better (accuracy: True; a loss or RMSE: False).
    ``fn=None`` means the task's own validation loss (the default metric of a task).
    """

    name: str
    fn: Callable[[nn.Module, Iterable], float] | None
    higher_is_better: bool = True

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"a metric name must be a non-empty string, got {self.name!r}")
        if self.fn is not None and not callable(self.fn):
            raise TypeError(f"metric {self.name!r}: fn must be callable, got {self.fn!r}")

    def better(self, a: float, b: float) -> bool:
        """True when value ``a`` is strictly better than ``b`` (NaN is never better)."""
        if math.isnan(a):
            return False
        if math.isnan(b):
            return True
        return a > b if self.higher_is_better else a < b


def adamw(params: Params, lr: float) -> torch.optim.Optimizer:
    """The default optimizer factory: ``torch.optim.AdamW(params, lr=lr)``."""
    return torch.optim.AdamW(params, lr=lr)


@dataclass(frozen=True)
class Task:
    """A model, its optimizer, loss, data and metric: what ``fit`` and the CLI train.

    - ``make_model()`` returns a fresh ``nn.Module``;
    - ``make_optimizer(params, lr)`` returns an optimizer; ``params`` is ``model.parameters()``
      or a list of param-group dicts (default: AdamW);
    - ``make_train_loader()`` / ``make_val_loader()`` return iterables of batches with a
      ``len()`` (DataLoaders);
    - the loss of a batch is ``step_fn(model, batch)`` when given, else
      ``criterion(model(x), y)`` on ``(x, y)`` batches (default criterion: cross-entropy);
    - ``metric`` scores the model on the validation data (default: validation loss, lower
      is better);
    - ``epochs``, ``lr`` and ``seed`` are the run's defaults;
    - ``threads``: CPU threads for torch while the task trains (None: leave torch's setting).
      Tiny models train fastest on one thread, and much faster when the CPU is shared;
    - ``data``: a :class:`~lrkit.tasks.TaskData` describing the training data (how many
      examples, how to split them, loaders over a subset at a batch size), which
      :meth:`folds` and :meth:`variant` need (``batch_size``); with ``data`` given, the two
      loader factories may be left out: they are ``data.loaders()``. ``data`` describes
      the same data as the loaders: a copy that replaces the loaders replaces ``data`` too
      (or sets it to None).
    """

    name: str
    make_model: Callable[[], nn.Module]
    make_train_loader: Callable[[], Iterable] | None = None
    make_val_loader: Callable[[], Iterable] | None = None
    make_optimizer: Callable[[Params, float], torch.optim.Optimizer] = adamw
    criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy
    step_fn: StepFn | None = None
    metric: Metric | None = None
    epochs: int = 10
    lr: float = 1e-3
    seed: int = 0
    description: str = ""
    threads: int | None = None
    data: TaskData | None = None

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"a task name must be a non-empty string, got {self.name!r}")
        if self.data is not None and not isinstance(self.data, TaskData):
            raise TypeError(
                f"task {self.name!r}: data must be an lrkit.tasks.TaskData, got {self.data!r}"
            )
        if self.make_train_loader is None or self.make_val_loader is None:
            if self.data is None:
                raise TypeError(
                    f"task {self.name!r}: give make_train_loader and make_val_loader, or data"
                )
            train, val = self.data.loaders()
            if self.make_train_loader is None:
                object.__setattr__(self, "make_train_loader", train)
            if self.make_val_loader is None:
                object.__setattr__(self, "make_val_loader", val)
        for field in ("make_model", "make_train_loader", "make_val_loader", "make_optimizer"):
            if not callable(getattr(self, field)):
                raise TypeError(
                    f"task {self.name!r}: {field} must be callable, got {getattr(self, field)!r}"
                )
        if not callable(self.criterion):
            raise TypeError(
                f"task {self.name!r}: criterion must be callable, got {self.criterion!r}"
            )
        if self.step_fn is not None and not callable(self.step_fn):
            raise TypeError(f"task {self.name!r}: step_fn must be callable, got {self.step_fn!r}")
        whole(self.epochs, f"task {self.name!r}: epochs", least=1)
        check_lr(self.lr, f"task {self.name!r}: lr")
        whole(self.seed, f"task {self.name!r}: seed", least=None)
        if self.threads is not None:
            whole(self.threads, f"task {self.name!r}: threads (or None)", least=1)
        if self.metric is None:
            object.__setattr__(self, "metric", Metric("val_loss", None, higher_is_better=False))
        elif not isinstance(self.metric, Metric):
            raise TypeError(f"task {self.name!r}: metric must be a Metric, got {self.metric!r}")

    @property
    def summary(self) -> str:
        """One line: the description, the metric and the defaults."""
        metric = self.metric
        way = "higher" if metric.higher_is_better else "lower"
        text = f"{self.description}; " if self.description else ""
        return f"{text}metric {metric.name} ({way} is better), {self.epochs} epochs, lr {self.lr:g}"

    # -- building, reproducibly ------------------------------------------------------
    def build_model(self, seed: int | None = None) -> nn.Module:
        """A fresh model whose initial weights depend only on ``seed`` (default: the task's)."""
        seed_everything(self.seed if seed is None else seed)
        return self.make_model()

    def build_optimizer(
        self, model: nn.Module | Params, lr: float | None = None
    ) -> torch.optim.Optimizer:
        """The task's optimizer over ``model``'s parameters (or given param groups) at ``lr``."""
        lr = self.lr if lr is None else check_lr(lr, "lr")
        params = model.parameters() if isinstance(model, nn.Module) else model
        return self.make_optimizer(params, lr)

    def build_loaders(self, seed: int | None = None) -> tuple[Iterable, Iterable]:
        """``(train_loader, val_loader)``, built after seeding with ``seed``."""
        seed_everything(self.seed if seed is None else seed)
        train, val = self.make_train_loader(), self.make_val_loader()
        for what, loader in (("train", train), ("validation", val)):
            if not hasattr(loader, "__len__"):
                raise TypeError(
                    f"task {self.name!r}: the {what} loader must have a len() (a DataLoader),"
                    f" got {type(loader).__name__}"
                )
        if len(train) == 0:
            raise ValueError(f"task {self.name!r}: the train loader has no batches")
        return train, val

    # -- using -----------------------------------------------------------------------
    def loss(self, model: nn.Module, batch: Any) -> torch.Tensor:
        """The scalar loss of one batch: ``step_fn(model, batch)`` or the criterion on (x, y)."""
        if self.step_fn is not None:
            return self.step_fn(model, batch)
        x, y = batch
        return self.criterion(model(x), y)

    def mean_loss(self, model: nn.Module, loader: Iterable) -> float:
        """The loss averaged over ``loader``'s batches, weighted by batch size; no gradients."""
        total, count = torch.zeros(()), 0
        with torch.no_grad():
            for batch in loader:
                n = _batch_size(batch)
                total += self.loss(model, batch).detach().float().cpu() * n
                count += n
        return float(total) / max(count, 1)

    def validate(self, model: nn.Module, loader: Iterable) -> tuple[float, float]:
        """``(metric, val_loss)`` of ``model`` on ``loader``, in eval mode without gradients.

        The model is left in eval mode; the training loop sets train mode again.
        """
        model.eval()
        with torch_threads(self.threads):
            val_loss = self.mean_loss(model, loader)
            if self.metric.fn is None:
                return val_loss, val_loss
            with torch.no_grad():
                metric = float(self.metric.fn(model, loader))
        return metric, val_loss

    # -- copies for tuning -----------------------------------------------------------
    def folds(self, k: int, seed: int = 0) -> list[Task]:
        """``k`` copies of the task for k-fold cross-validation of its training data.

        Copy ``i`` trains on the other ``k - 1`` folds and validates on fold ``i``; the task's
        own validation data stay out. The split is :func:`~lrkit.tasks.fold_indices` of the
        task's ``data`` (stratified for classification, shuffled by ``seed``; contiguous blocks
        for sequences); preprocessing statistics come from each copy's training part. Each
        copy has ``data`` of its own, so it can be re-batched (:meth:`variant`) in turn.

        Raises a UserError for ``k`` not a whole number >= 2, more folds than training
        examples (or than the smallest class's examples), or a task without ``data``.
        """
        k, seed = check_folds(k, seed)
        data = self._data("be split into folds")
        copies = []
        for i, (train, val) in enumerate(fold_indices(data, k, seed)):
            fold = data.subset(train, val)
            make_train, make_val = fold.loaders()
            note = f"fold {i + 1} of {k} (seed {seed})"
            copies.append(
                replace(
                    self,
                    make_train_loader=make_train,
                    make_val_loader=make_val,
                    data=fold,
                    description=f"{self.description}; {note}" if self.description else note,
                )
            )
        return copies

    def variant(
        self,
        optimizer: str | None = None,
        weight_decay: float | None = None,
        batch_size: int | None = None,
    ) -> Task:
        """A copy of the task with another optimizer, weight decay or train batch size.

        ``optimizer``: ``"sgd"`` (momentum 0.9), ``"adam"`` or ``"adamw"``, built over the
        task's own param groups; ``weight_decay``: set on every group that decays (a group at
        0 while another decays is a no-decay group and stays at 0, as ``wine-mlp``'s biases);
        ``batch_size``: the train loader's batch size (needs the task's ``data``). None keeps
        the task's; with all three None the task itself is returned. The rule in full:
        :mod:`lrkit.tasks.optimizers`. An lr-free optimizer (``"prodigy"``,
        ``"dadapt-adam"``) sets the copy's lr to its default multiplier, 1.0, and a later
        variant with another optimizer puts the task's own lr back
        (:mod:`lrkit.tasks.lrfree`).

        >>> from lrkit.tasks import get_task
        >>> task = get_task("wine-mlp").variant("sgd", weight_decay=1e-3, batch_size=32)
        >>> opt = task.build_optimizer(task.build_model())
        >>> type(opt).__name__, [g["weight_decay"] for g in opt.param_groups]
        ('SGD', [0.001, 0.0])
        >>> len(task.build_loaders()[0])
        5
        """
        changes: dict[str, Any] = {}
        if optimizer is not None:
            optimizer = check_optimizer(optimizer)
            require(optimizer)
            changes.update(_variant_lr(self, optimizer))
        if weight_decay is not None:
            weight_decay = check_weight_decay(weight_decay)
        if optimizer is not None or weight_decay is not None:
            make = variant_optimizer(self.make_optimizer, optimizer, weight_decay, self.name)
            own = getattr(self.make_optimizer, "lrkit_task_lr", None)
            if optimizer is not None:  # the lr before an lr-free variant set its multiplier
                own = (own or self.lr) if optimizer_info(optimizer).lr_free else None
            make.lrkit_task_lr = own
            changes["make_optimizer"] = make
        if batch_size is not None:
            check_batch_size(batch_size)
            data = self._data("change its batch size").with_batch_size(batch_size)
            changes.update(make_train_loader=data.loaders()[0], data=data)
        return replace(self, **changes) if changes else self

    def _data(self, what: str) -> TaskData:
        if self.data is None:
            raise UserError(
                f"task {self.name!r} cannot {what}: it has no data description. Give the Task"
                " data=lrkit.tasks.tensor_data((x, y), (x_val, y_val), batch_size=...) when its"
                " data are tensors, or else data=lrkit.tasks.TaskData(size=<training examples>,"
                " make_loaders=<(train_index, val_index, batch_size) -> (make_train_loader,"
                " make_val_loader)>, batch_size=<its batch size>, split='stratified' (with"
                " labels=<each example's class>) | 'kfold' | 'contiguous')"
            )
        return self.data


def _variant_lr(task: Task, optimizer: str) -> dict[str, Any]:
    """The lr change of a variant to ``optimizer``: an lr-free one's default multiplier, or
    the task's own lr back when the task's optimizer was an lr-free variant (none otherwise)."""
    own = getattr(task.make_optimizer, "lrkit_task_lr", None)
    info = optimizer_info(optimizer)
    if info.lr_free:
        return {"lr": info.default_lr}
    return {} if own is None else {"lr": own}


def _batch_size(batch: Any) -> int:
    """Examples in a batch: the first dimension of its first tensor (1 when there is none)."""
    for item in _leaves(batch):
        if isinstance(item, torch.Tensor) and item.dim() > 0:
            return int(item.shape[0])
    return 1


def _leaves(batch: Any) -> Iterator[Any]:
    if isinstance(batch, dict):
        for v in batch.values():
            yield from _leaves(v)
    elif isinstance(batch, list | tuple):
        for v in batch:
            yield from _leaves(v)
    else:
        yield batch
