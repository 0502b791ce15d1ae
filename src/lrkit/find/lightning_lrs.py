"""How :class:`~lrkit.find.lightning.LRFindCallback` puts the found lr into a Lightning run.

Two ways, by what the module offers:

- **rebuilt** (the module has an ``lr``/``learning_rate`` attribute or hparams entry, or the
  one named by ``attr=``, and ``update_attr`` is on): the attribute is set to the found lr and
  the strategy builds the optimizer(s) and scheduler(s) again from the module's own
  ``configure_optimizers`` (what ``fit`` does at its start), so every lr derived from the
  attribute follows it the way the module wrote it: ``OneCycleLR(max_lr=self.lr)`` peaks at
  the found lr, ``SGD(lr=self.lr)`` trains at it. When ``configure_optimizers`` does not read
  the attribute (the rebuilt optimizer's lrs are those of before), the lr is written in as
  below.
- **written** (no such attribute): the found lr is each group's *reference* lr, the lr the
  schedule peaks at: the group's ``max_lr`` (``OneCycleLR`` keeps it there), else its
  scheduler's ``max_lrs[i]`` (``CyclicLR``), else its base lr (``initial_lr``, else ``lr``).
  Every lr-valued entry of the group (``lr``, ``initial_lr``, ``max_lr``, ``min_lr``) and of
  its schedulers (``base_lrs``, ``max_lrs``, the last lr) is multiplied by found / reference,
  so the schedule keeps its shape and its peak is the found lr (an lrkit ``Driver`` through
  ``set_base_lrs``). The groups keep their ratios (:meth:`FindResult.group_lr`).
"""

from __future__ import annotations

from typing import Any

import torch

try:
    from lightning.fabric.utilities.optimizer import _optimizers_to_device
    from lightning.pytorch.utilities.parsing import lightning_getattr, lightning_setattr
except ImportError:  # the older package name
    from lightning_fabric.utilities.optimizer import _optimizers_to_device
    from pytorch_lightning.utilities.parsing import lightning_getattr, lightning_setattr

GROUP_KEYS = ("lr", "initial_lr", "max_lr", "min_lr")  # a group's lr-valued entries


def apply_lr(trainer, pl_module, attr: str | None, lr: float, new: list[float]) -> str:
    """Train at ``lr`` (``new``: each group's lr); returns ``"rebuilt"`` or ``"written"``
    (see the module doc). ``attr``: the module's lr attribute to set, or None."""
    if attr is not None:
        optimizer = trainer.optimizers[0]
        before = _references(optimizer, _schedulers(trainer, optimizer))
        old = lightning_getattr(pl_module, attr)
        lightning_setattr(pl_module, attr, float(lr))
        rebuild(trainer)
        optimizer = trainer.optimizers[0]
        after = _references(optimizer, _schedulers(trainer, optimizer))
        if not _same(old, lr) and all(_same(a, b) for a, b in zip(after, before)):
            write_lrs(optimizer, new, _schedulers(trainer, optimizer))  # the attribute unread
            return "written"
        return "rebuilt"
    optimizer = trainer.optimizers[0]
    write_lrs(optimizer, new, _schedulers(trainer, optimizer))
    return "written"


def rebuild(trainer) -> None:
    """The optimizers and schedulers built again from ``configure_optimizers``, as the
    strategy builds them when ``fit`` starts (fresh state, on the module's device)."""
    strategy = trainer.strategy
    strategy.setup_optimizers(trainer)
    strategy.setup_precision_plugin()
    _optimizers_to_device(strategy.optimizers, strategy.root_device)


def write_lrs(optimizer, new: list[float], schedulers: list[Any]) -> None:
    """Make each group's reference lr ``new[i]``, scaling the group's and its schedulers'
    lr-valued entries by new / reference (a zero reference: each set to the new lr)."""
    factors = []
    for group, lr, ref in zip(optimizer.param_groups, new, _references(optimizer, schedulers)):
        factor = lr / ref if ref > 0 else None
        factors.append(factor)
        for key in GROUP_KEYS:
            if key in group:
                value = lr if factor is None else _number(group[key]) * factor
                if isinstance(group[key], torch.Tensor):
                    group[key].fill_(value)
                else:
                    group[key] = value
    for scheduler in schedulers:
        for name in ("base_lrs", "max_lrs"):
            values = getattr(scheduler, name, None)
            if values is None:
                continue
            scaled = [lr if f is None else float(v) * f for v, f, lr in zip(values, factors, new)]
            if name == "base_lrs" and callable(getattr(scheduler, "set_base_lrs", None)):
                scheduler.set_base_lrs(scaled)  # lrkit's Driver
            else:
                setattr(scheduler, name, scaled)
        if isinstance(getattr(scheduler, "_last_lr", None), list):
            scheduler._last_lr = [_number(g["lr"]) for g in optimizer.param_groups]


def _references(optimizer, schedulers: list[Any]) -> list[float]:
    """Each group's reference lr: its peak (``max_lr``, a scheduler's ``max_lrs``), else its
    base lr."""
    peaks = next((s.max_lrs for s in schedulers if getattr(s, "max_lrs", None) is not None), None)
    out = []
    for i, group in enumerate(optimizer.param_groups):
        if "max_lr" in group:
            out.append(_number(group["max_lr"]))
        elif peaks is not None and i < len(peaks):
            out.append(float(peaks[i]))
        else:
            out.append(_number(group.get("initial_lr", group["lr"])))
    return out


def _schedulers(trainer, optimizer) -> list[Any]:
    return [c.scheduler for c in trainer.lr_scheduler_configs if c.scheduler.optimizer is optimizer]


def _same(a: Any, b: Any) -> bool:
    try:
        return abs(float(a) - float(b)) <= 1e-12 * max(abs(float(a)), abs(float(b)))
    except (TypeError, ValueError):
        return False


def _number(value: Any) -> float:
    return float(value.item()) if isinstance(value, torch.Tensor) else float(value)
