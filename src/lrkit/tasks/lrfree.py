"""Learning-rate-free and schedule-free optimizers: what each is, and how lrkit builds it.

Optional packages (``pip install 'lrkit[lrfree]'``), imported only when one is built:

- ``prodigy``: ``prodigyopt.Prodigy`` (Mishchenko & Defazio, "Prodigy: An Expeditiously
  Adaptive Parameter-Free Learner", ICML 2024). *lr-free*: it estimates the step size itself;
  the lr is a multiplier of that estimate. Its authors (the prodigyopt README and docstring):
  "We recommend using lr=1. (default) for all networks" ("leave LR set to 1 unless you
  encounter instability"); to get a smaller or larger estimate change ``d_coef`` rather than
  the lr; "we recommend either using no scheduler or using cosine annealing", without
  restarts, over the whole run; with a linear warmup or restarts set ``safeguard_warmup=True``
  (the small early lr makes it overestimate). lrkit builds it with ``safeguard_warmup=True``
  always: at a multiplier of 1.0 and no bias correction the flag changes nothing (it only
  takes the lr out of the estimate's denominator), and any lrkit schedule with a warmup is
  then safe. Weight decay is AdamW's (decoupled), the task's groups' values.
- ``dadapt-adam``: ``dadaptation.DAdaptAdam`` (Defazio & Mishchenko, "Learning-Rate-Free
  Learning by D-Adaptation", ICML 2023). *lr-free*, as Prodigy. Its authors (the dadaptation
  README): "Set the LR parameter to 1.0" (it is not ignored: it scales the D-adapted lr) and
  "use the same learning rate scheduler you would normally use on the problem". lrkit
  builds it with ``decouple=True`` (AdamW-style weight decay, like the tasks' AdamW; the
  package's default is Adam's L2).
- ``schedulefree-adamw`` and ``schedulefree-sgd``: ``schedulefree.AdamWScheduleFree`` and
  ``SGDScheduleFree`` (Defazio et al., "The Road Less Scheduled", NeurIPS 2024). *Schedule-
  free*: an average of the iterates replaces the decay. Their authors (the schedule_free
  README and docstrings): "no scheduler is needed with this optimizer"; "using learning rate
  warmup is recommended", through its ``warmup_steps``; call ``optimizer.train()`` where you
  call ``model.train()`` and ``optimizer.eval()`` where you call ``model.eval()``, and be in
  eval mode when saving checkpoints (the weights to evaluate are the average, not the
  training point); for AdamW "learning rates in the range 1x-10x larger than with
  schedule-based approaches", for SGD "10x-50x larger than classical rates" (its default lr
  is 1.0, AdamW's 0.0025). The lr is absolute, as for AdamW; SGD's momentum is 0.9.
  lrkit builds them already in train mode (the packages start in eval mode), so a plain
  loop's first step works; ``fit``, the Guard and Lightning's watch callback switch modes
  around validation and snapshots (:func:`is_schedule_free`). A model with BatchNorm needs
  its statistics recomputed at the averaged weights before evaluating (the README's caveat);
  lrkit does not do that.

**The lr of a group.** ``Task.variant(optimizer=...)`` keeps the task's param groups (see
:mod:`lrkit.tasks.optimizers`). For an lr-free optimizer the lr the task is built at is the
*multiplier* (1.0 by default: ``variant`` sets the task's lr to it), and the task's groups,
whose lrs are absolute, become multipliers by their ratio to the largest: group ``i`` gets
``lr * lr_i / max_j lr_j`` (a group at 0 stays at 0: frozen). So a task whose groups share one
lr gets the multiplier in every group, whatever lr its own optimizer was built at. Prodigy
and D-Adaptation estimate one step size for all groups and refuse groups at different lrs
(other than 0): for ``dadapt-adam`` the ratios go to its per-group ``layer_scale`` and every
group's lr is the multiplier; for ``prodigy``, which has no such scale, groups at different
rates are refused (UserError) — use ``dadapt-adam``. A schedule on top (the Driver) multiplies
each group's multiplier, as for any optimizer.

>>> optimizer_info("prodigy").lr_free, optimizer_info("prodigy").default_lr
(True, 1.0)
>>> optimizer_info("schedulefree-adamw").schedules
'warmup'
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import UserError

INSTALL = "pip install 'lrkit[lrfree]'"
SCHEDULE_FREE_MODULE = "schedulefree"  # is_schedule_free: the class's top-level module
LR_FREE_MODULES = ("prodigyopt", "dadaptation")


@dataclass(frozen=True)
class OptimizerInfo:
    """What an optimizer name of ``lrkit.tasks.OPTIMIZERS`` is.

    ``lr_free``: the lr is a multiplier of a step size the optimizer estimates (Prodigy,
    D-Adaptation); ``default_lr``: the multiplier to use (1.0) for those, None for the others
    (the task's lr); ``schedule_free``: it averages its iterates and needs train/eval mode
    switches; ``schedules``: ``"any"`` or ``"warmup"`` (only a rise to the peak and a hold:
    constant, or warmup then constant); ``package``: the optional package it comes from (None:
    torch); ``available``: whether that package is installed.
    """

    name: str
    lr_free: bool
    default_lr: float | None
    schedule_free: bool
    schedules: str
    package: str | None
    available: bool


# name -> (lr_free, schedule_free, package, class)
_KINDS: dict[str, tuple[bool, bool, str | None, str]] = {
    "sgd": (False, False, None, "SGD"),
    "adam": (False, False, None, "Adam"),
    "adamw": (False, False, None, "AdamW"),
    "prodigy": (True, False, "prodigyopt", "Prodigy"),
    "dadapt-adam": (True, False, "dadaptation", "DAdaptAdam"),
    "schedulefree-adamw": (False, True, "schedulefree", "AdamWScheduleFree"),
    "schedulefree-sgd": (False, True, "schedulefree", "SGDScheduleFree"),
}


def optimizer_info(name: str) -> OptimizerInfo:
    """The :class:`OptimizerInfo` of an optimizer name (any case); UserError with "did you
    mean" for an unknown one. Looking a name up imports nothing."""
    from .optimizers import check_optimizer

    name = check_optimizer(name)
    lr_free, schedule_free, package, _ = _KINDS[name]
    return OptimizerInfo(
        name=name,
        lr_free=lr_free,
        default_lr=1.0 if lr_free else None,
        schedule_free=schedule_free,
        schedules="warmup" if schedule_free else "any",
        package=package,
        available=package is None or importlib.util.find_spec(package) is not None,
    )


def require(name: str) -> None:
    """A UserError naming the package and the install line when ``name``'s is missing."""
    info = optimizer_info(name)
    if not info.available:
        raise UserError(
            f"optimizer {name!r} needs the package {info.package!r}, which is not installed:"
            f" {INSTALL} (or pip install {info.package})"
        )


def is_schedule_free(optimizer: Any) -> bool:
    """Whether ``optimizer`` is a schedule-free one (its class comes from the ``schedulefree``
    package), which must be in ``.train()`` mode to step and ``.eval()`` mode to be evaluated
    or saved. Imports nothing."""
    module = type(optimizer).__module__ or ""
    return module.split(".")[0] == SCHEDULE_FREE_MODULE and callable(
        getattr(optimizer, "eval", None)
    )


def build(name: str, groups: list[dict], lr: float) -> torch.optim.Optimizer:
    """The optimizer ``name`` (one of the optional ones) over ``groups`` at ``lr``, with the
    settings of the module's doc; the groups' lrs follow the module's rule already."""
    require(name)
    _, _, package, cls_name = _KINDS[name]
    cls = getattr(importlib.import_module(package), cls_name)
    options: dict[str, Any] = {
        "prodigy": {"safeguard_warmup": True},
        "dadapt-adam": {"decouple": True},
        "schedulefree-sgd": {"momentum": 0.9},
    }.get(name, {})
    with contextlib.redirect_stdout(
        io.StringIO()
    ):  # both lr-free ones print a line on weight decay
        optimizer = cls(groups, lr=lr, **options)
    if _KINDS[name][1]:
        optimizer.train()  # the packages start in eval mode; nothing has moved yet
    return optimizer


def multiplier_groups(name: str, groups: list[dict], lr: float, task: str) -> list[dict]:
    """The groups of an lr-free optimizer: each group's lr a multiplier, by the module's rule
    (``lr * lr_i / max lr_j``; ``layer_scale`` for D-Adaptation; Prodigy refuses unequal
    groups)."""
    lrs = [float(g["lr"]) for g in groups]
    top = max(lrs, default=0.0)
    ratios = [x / top if top > 0 else 0.0 for x in lrs]
    out = [dict(g) for g in groups]
    unequal = len({round(r, 12) for r in ratios if r > 0}) > 1
    if unequal and name == "prodigy":
        shown = ", ".join(f"{x:g}" for x in lrs)
        raise UserError(
            f"task {task!r}: its param groups train at different lrs ({shown}), and Prodigy"
            " estimates one step size for all of them (it takes one lr for every group, or 0);"
            " use optimizer 'dadapt-adam', which keeps the ratios as its per-group layer_scale"
        )
    for group, ratio in zip(out, ratios):
        if name == "dadapt-adam" and ratio > 0:
            group["lr"], group["layer_scale"] = lr, ratio
        else:
            group["lr"] = lr * ratio
    return out


__all__ = [
    "OptimizerInfo",
    "optimizer_info",
    "is_schedule_free",
    "require",
    "INSTALL",
]
