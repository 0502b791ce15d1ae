"""The range test's inputs, checked before anything is touched: its settings and its parts.

:class:`Settings` holds how to sweep (``start``, ``end``, ``steps``, ``mode``, ``smooth``,
``stop_factor``...) and :class:`Parts` what is swept (model, optimizer, loaders, loss), built
from a task or from the user's own model. Each raises ValueError naming the bad value and what
would be accepted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ..checks import check_lr, number, whole
from ..tasks import Task, get_task
from ..train.amp import AUTOCAST, check_autocast
from ..train.ranks import as_fit_trains
from .rules import DEFAULT_RULE, get_rule

LossFn = Callable[[nn.Module, Any], torch.Tensor]
MODES = ("exp", "linear")
MAX_STEPS = 1_000_000  # a range test needs hundreds; its plan is one float64 array


@dataclass
class Settings:
    """How to sweep, checked on construction (ValueError naming the bad value)."""

    start: float
    end: float
    steps: int
    mode: str
    smooth: float
    stop_factor: float
    accumulate: int
    autocast: str | None
    val_every: int | None
    val_batches: int
    seeds: int
    rule: str | None
    progress: bool | None

    def __post_init__(self) -> None:
        check_lr(self.start, "start"), check_lr(self.end, "end")
        if self.start >= self.end:
            raise ValueError(f"start must be < end, got start={self.start!r} and end={self.end!r}")
        if whole(self.steps, "steps", least=5) > MAX_STEPS:
            raise ValueError(
                f"steps must be a whole number in [5, {MAX_STEPS}] (a range test needs"
                f" hundreds), got {self.steps!r}"
            )
        if self.mode not in MODES:
            raise ValueError(f"mode must be 'exp' or 'linear', got {self.mode!r}")
        number(self.smooth, "smooth", low=0, high=1, high_open=True)
        number(self.stop_factor, "stop_factor", low=1, low_open=True, finite=False)
        whole(self.accumulate, "accumulate", least=1)
        check_autocast(self.autocast)
        if self.val_every is not None:
            whole(self.val_every, "val_every", least=1)
        whole(self.val_batches, "val_batches", least=1)
        whole(self.seeds, "seeds", least=1)
        self.rule = DEFAULT_RULE if self.rule is None else self.rule
        get_rule(self.rule)  # ValueError listing the known rules
        if self.progress is not None and not isinstance(self.progress, bool):
            raise ValueError(f"progress must be None, True or False, got {self.progress!r}")

    def plan(self) -> np.ndarray:
        """The ``steps`` lrs of the sweep, from ``start`` to ``end``."""
        if self.mode == "exp":
            return np.geomspace(self.start, self.end, self.steps)
        return np.linspace(self.start, self.end, self.steps)


@dataclass
class Parts:
    """What is swept: model, optimizer, loaders and loss, from a task or the user's own."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    loader: Iterable
    loss: LossFn
    val_loader: Iterable | None
    name: str
    task: Task | None = None
    seed: int | None = None
    device: torch.device = field(init=False)
    ratios: list[float] = field(init=False)  # each group's base lr over the largest

    def __post_init__(self) -> None:
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        if not trainable:
            raise ValueError(
                f"the model ({self.name}) has no trainable parameters (none with"
                " requires_grad=True): there is no lr to find"
            )
        self.device = trainable[0].device
        base = [float(g.get("initial_lr", g["lr"])) for g in self.optimizer.param_groups]
        top = max(base)
        self.ratios = [b / top if top > 0 else 1.0 for b in base]

    @classmethod
    def build(cls, what, optimizer, loader, step_fn, criterion, val_loader, cfg) -> Parts:
        if step_fn is not None and not callable(step_fn):
            raise ValueError(f"step_fn must be callable(model, batch) -> loss, got {step_fn!r}")
        if criterion is not None and not callable(criterion):
            raise ValueError(f"criterion must be callable(output, target), got {criterion!r}")
        if isinstance(what, nn.Module):
            parts = cls._from_model(what, optimizer, loader, step_fn, criterion, val_loader)
        elif isinstance(what, Task | str):
            parts = cls._from_task(
                get_task(what), optimizer, loader, step_fn, criterion, val_loader, cfg
            )
        else:
            raise ValueError(
                f"find_lr needs a Task, a task name or an nn.Module, got {type(what).__name__}"
            )
        if cfg.val_every is not None and parts.val_loader is None:
            raise ValueError(f"val_every={cfg.val_every} needs val_loader=... (got None)")
        if cfg.val_every is None and parts.val_loader is not None:
            cfg.val_every = max(1, cfg.steps // 10)
        if cfg.autocast is not None and not torch.amp.is_autocast_available(parts.device.type):
            raise ValueError(
                f"autocast={cfg.autocast!r} needs a device torch can autocast on (cuda, cpu,"
                f" ...), got a model on {parts.device.type!r}; use autocast=None there"
            )
        return parts

    @classmethod
    def _from_model(cls, model, optimizer, loader, step_fn, criterion, val_loader) -> Parts:
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise ValueError(
                "find_lr(model, optimizer, loader): optimizer must be a torch.optim.Optimizer,"
                f" got {type(optimizer).__name__}"
            )
        if loader is None or not isinstance(loader, Iterable):
            raise ValueError(
                f"find_lr(model, optimizer, loader): loader must be an iterable of"
                f" batches (a DataLoader), got {type(loader).__name__}"
            )
        if step_fn is None and criterion is None:
            raise ValueError(
                "find_lr(model, ...) needs step_fn=f(model, batch) -> loss, or"
                " criterion=f(output, target) for (x, y) batches; got neither"
            )
        loss = step_fn if step_fn is not None else _criterion_loss(criterion)
        return cls(model, optimizer, loader, loss, val_loader, type(model).__name__)

    @classmethod
    def _from_task(cls, task, optimizer, loader, step_fn, criterion, val_loader, cfg) -> Parts:
        for name, value in (("optimizer", optimizer), ("loader", loader), ("criterion", criterion)):
            if value is not None:
                raise ValueError(
                    f"find_lr(task) builds its own {name}; got {name}={value!r}."
                    " Give a model instead to use your own parts"
                )
        task = as_fit_trains(task)  # under torchrun: in DDP, each rank its shard, as fit trains
        model = task.build_model()
        optimizer = task.build_optimizer(model)
        train, val = task.build_loaders()
        if val_loader is None and cfg.val_every is not None:
            val_loader = val
        loss = step_fn if step_fn is not None else task.loss
        return cls(model, optimizer, train, loss, val_loader, task.name, task, task.seed)


def shared_settings(what: Any, val_loader: Any, settings: dict[str, Any]) -> dict[str, Any]:
    """What every rank of a distributed range test must give alike, as the user gave it (before
    any check, so a difference is named before one rank alone refuses a value): what is swept
    (a task's name, or the model's type: ``DistributedDataParallel`` on one rank and not on
    another puts DDP's all-reduces out of step), whether there is a validation loader, and
    ``settings`` (how to sweep: the steps and validation cadence decide the collectives, the
    stop rule when every rank stops, the rest the curve and the suggestion). Not the loaders'
    lengths: the sweep cycles each rank's own loader, so shards of different lengths are fine."""
    if isinstance(what, Task):
        swept = f"task {what.name} (seed {what.seed})"
    elif isinstance(what, str):
        swept = f"task {what}"
    else:
        swept = f"a {type(what).__name__} model"
    given = "a val_loader" if val_loader is not None else None
    return {"task_or_model": swept, "val_loader": given, **settings}


def _criterion_loss(criterion: Callable) -> LossFn:
    def loss(model: nn.Module, batch: Any) -> torch.Tensor:
        x, y = batch
        return criterion(model(x), y)

    return loss


__all__ = ["Settings", "Parts", "LossFn", "MODES", "AUTOCAST", "MAX_STEPS", "shared_settings"]
