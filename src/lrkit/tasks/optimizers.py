"""Another optimizer or weight decay for a task: the optimizer factory of ``Task.variant``.

The rule: the task's own optimizer is built first, and its param groups are kept — the same
parameters, each group's lr and weight decay — so a task that splits off a no-decay group
(``wine-mlp``: biases) keeps it.

- ``optimizer``: ``"sgd"`` (``torch.optim.SGD`` with momentum 0.9), ``"adam"`` or ``"adamw"``
  (torch's defaults otherwise), or one of the optional learning-rate-free ``"prodigy"``,
  ``"dadapt-adam"`` and schedule-free ``"schedulefree-adamw"``, ``"schedulefree-sgd"``
  (:mod:`lrkit.tasks.lrfree`: their settings, their authors' advice, and how an lr-free
  optimizer's group lrs become multipliers) is built over those groups; None keeps the
  task's optimizer. An optional one whose package is missing is a UserError naming
  ``pip install 'lrkit[lrfree]'``.
- ``weight_decay``: the new weight decay of every group that decays. A group decays unless
  the task marks it as a no-decay group: its weight decay is 0 while another group's is above
  0. So a task with one group (or groups that all decay alike) gets it everywhere, and
  ``wine-mlp`` gets it on its weights while its biases stay at 0. None keeps each group's.

>>> decaying([{"weight_decay": 0.01}, {"weight_decay": 0.0}])
[True, False]
>>> decaying([{"weight_decay": 0.0}, {"weight_decay": 0.0}])
[True, True]
>>> check_optimizer("AdamW")
'adamw'
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

import torch

from ..checks import number, shown
from ..errors import UserError
from . import lrfree

OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "sgd": lambda groups, lr: torch.optim.SGD(groups, lr=lr, momentum=0.9),
    "adam": lambda groups, lr: torch.optim.Adam(groups, lr=lr),
    "adamw": lambda groups, lr: torch.optim.AdamW(groups, lr=lr),
    # optional packages, imported when built (lrkit.tasks.lrfree)
    "prodigy": lambda groups, lr: lrfree.build("prodigy", groups, lr),
    "dadapt-adam": lambda groups, lr: lrfree.build("dadapt-adam", groups, lr),
    "schedulefree-adamw": lambda groups, lr: lrfree.build("schedulefree-adamw", groups, lr),
    "schedulefree-sgd": lambda groups, lr: lrfree.build("schedulefree-sgd", groups, lr),
}


def check_optimizer(name: Any) -> str:
    """An optimizer name of :data:`OPTIMIZERS` (any case), lower-cased; a UserError with
    "did you mean" otherwise."""
    if isinstance(name, str) and name.strip().lower() in OPTIMIZERS:
        return name.strip().lower()
    known = ", ".join(OPTIMIZERS)
    close = difflib.get_close_matches(str(name).lower(), list(OPTIMIZERS), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise UserError(f"unknown optimizer {shown(name)}{hint}; known: {known}")


def check_weight_decay(value: Any) -> float:
    """A weight decay: a finite number >= 0, as float; a UserError otherwise."""
    try:
        return number(value, "weight decay", low=0)
    except ValueError as e:
        raise UserError(str(e)) from None


def decaying(groups: list[dict]) -> list[bool]:
    """Which param groups decay: all but those at weight decay 0 while another is above 0."""
    decays = [float(g.get("weight_decay", 0.0)) for g in groups]
    split = any(d > 0 for d in decays)
    return [d > 0 or not split for d in decays]


def variant_optimizer(
    make_optimizer: Callable, optimizer: str | None, weight_decay: float | None, task: str
) -> Callable[[Any, float], torch.optim.Optimizer]:
    """The factory ``(params, lr) -> optimizer`` of the module's rule over ``make_optimizer``.

    A variant of a variant applies the rule once, to the first task's optimizer, with the
    later choices winning (so ``wine-mlp``'s biases stay a no-decay group).
    """
    previous = getattr(make_optimizer, "lrkit_variant", None)
    if previous is not None:
        make_optimizer, first_optimizer, first_decay = previous
        optimizer = first_optimizer if optimizer is None else optimizer
        weight_decay = first_decay if weight_decay is None else weight_decay

    def make(params, lr: float) -> torch.optim.Optimizer:
        base = make_optimizer(params, lr)
        groups = base.param_groups
        if weight_decay is not None and any("weight_decay" not in g for g in groups):
            raise UserError(
                f"task {task!r}: its optimizer {type(base).__name__} has no weight_decay in its"
                " param groups, so a weight decay cannot be set; give an optimizer too"
                f" ({', '.join(OPTIMIZERS)})"
            )
        decays = decaying(groups)
        if optimizer is None:
            if weight_decay is not None:
                for group, decays_here in zip(groups, decays):
                    if decays_here:
                        group["weight_decay"] = weight_decay
            return base
        kept = []
        for group, decays_here in zip(groups, decays):
            wd = group.get("weight_decay", 0.0)
            if weight_decay is not None and decays_here:
                wd = weight_decay
            kept.append({"params": group["params"], "lr": group["lr"], "weight_decay": wd})
        if lrfree.optimizer_info(optimizer).lr_free:
            kept = lrfree.multiplier_groups(optimizer, kept, lr, task)
        return OPTIMIZERS[optimizer](kept, lr)

    make.lrkit_variant = (make_optimizer, optimizer, weight_decay)
    return make


__all__ = ["OPTIMIZERS", "check_optimizer", "check_weight_decay", "variant_optimizer", "decaying"]
