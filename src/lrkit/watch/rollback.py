"""What a :class:`~lrkit.watch.Guard`'s rollback changes: the snapshot, the lrs, the mode.

:func:`restore` puts the snapshot back, keeping a schedule-free optimizer in the train/eval
mode the caller had it in and leaving a GradScaler ready for what comes next (see
:mod:`lrkit.watch.amp`). The lrs a rollback scales are the driver's base lrs (a
:class:`~lrkit.schedules.Driver` or a torch scheduler: the schedule keeps its shape), else the
param groups' lrs.

>>> import torch
>>> optimizer = torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=0.1)
>>> set_lrs(None, optimizer, [x / 2 for x in lrs(None, optimizer)]); lrs(None, optimizer)
[0.05]
"""

from __future__ import annotations

from typing import Any

import torch

from ..tasks import is_schedule_free
from ..train import Snapshot
from . import amp


def restore(snapshot: Snapshot, optimizer: Any, scaler: Any, update_scaler: bool) -> None:
    """``snapshot`` back in place, ``optimizer`` (if schedule-free) in the mode it is in now,
    and ``scaler`` ready for the next batch's ``unscale_`` (``update_scaler``: the caller
    updates only after "ok") or, otherwise, for the caller's step and update of this batch."""
    mode = train_mode(optimizer)
    if scaler is not None and update_scaler:
        amp.update(scaler)  # close this iteration; the restore then sets the snapshot's scale
        snapshot.restore()
    elif scaler is not None:
        with amp.kept_stage(scaler):
            snapshot.restore()
    else:
        snapshot.restore()
    set_mode(optimizer, mode)  # keep the caller's mode


def lrs(driver: Any, optimizer: torch.optim.Optimizer) -> list[float]:
    """The lrs a rollback scales: the driver's base lrs, else the param groups' lrs."""
    base = getattr(driver, "base_lrs", None)
    if base is not None:
        return [float(b) for b in base]
    return group_lrs(optimizer)


def group_lrs(optimizer: torch.optim.Optimizer) -> list[float]:
    """Every param group's lr now, as floats (a tensor lr is read)."""
    return [as_float(g["lr"]) for g in optimizer.param_groups]


def set_lrs(driver: Any, optimizer: torch.optim.Optimizer, new: list[float]) -> None:
    """Make ``new`` what :func:`lrs` reads, rewriting the param groups to match."""
    groups = optimizer.param_groups
    if callable(getattr(driver, "set_base_lrs", None)):  # lrkit's Driver
        driver.set_base_lrs(new)
    elif getattr(driver, "base_lrs", None) is not None:  # a torch scheduler
        for group, lr, old in zip(groups, new, driver.base_lrs):
            group["lr"] = as_float(group["lr"]) * (lr / old if old else 0.0)
        driver.base_lrs = list(new)
    else:
        for group, lr in zip(groups, new):
            group["lr"] = lr


def train_mode(optimizer: Any) -> bool | None:
    """A schedule-free optimizer's mode (True: train), None for any other optimizer."""
    if not is_schedule_free(optimizer):
        return None
    return bool(optimizer.param_groups[0].get("train_mode", False))


def set_mode(optimizer: Any, mode: bool | None) -> None:
    """Put a schedule-free optimizer back in ``mode`` (from :func:`train_mode`); None: nothing."""
    if mode is not None and train_mode(optimizer) != mode:
        getattr(optimizer, "train" if mode else "eval")()


def as_float(value: Any) -> float:
    return float(value.item()) if isinstance(value, torch.Tensor) else float(value)


__all__ = ["as_float", "group_lrs", "lrs", "restore", "set_lrs", "set_mode", "train_mode"]
