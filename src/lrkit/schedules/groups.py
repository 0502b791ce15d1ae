"""What the driver checks of its arguments and reads from an optimizer's param groups."""

from __future__ import annotations

import math
from typing import Any

import torch

from ..checks import is_finite_number, is_number, whole
from .base import Schedule, huge, short


def steps_or_none(value: Any, what: str) -> int | None:
    if value is None:
        return None
    try:
        return whole(value, what, least=1)
    except ValueError:
        raise ValueError(
            f"{what} must be a whole number of steps >= 1 (or None), got {value!r}"
        ) from None


def as_float(value: Any) -> float:
    return float(value.item()) if isinstance(value, torch.Tensor) else float(value)


def check_base_lrs(base_lr: Any, groups: list[dict[str, Any]], schedule: Schedule) -> list[float]:
    """One base lr per group (``None``: each group's initial lr); every ``base * value`` of the
    schedule must be a finite lr."""
    if base_lr is None:  # torch's convention: "initial_lr" when a scheduler already set it
        values: list[Any] = [as_float(g.get("initial_lr", g["lr"])) for g in groups]
        return _finite_lrs(values, schedule)
    if is_number(base_lr):
        values = [base_lr] * len(groups)
    elif isinstance(base_lr, list | tuple) and len(base_lr) == len(groups):
        values = list(base_lr)
    else:
        raise ValueError(
            f"Driver base_lr must be None, a number or a list of {len(groups)} numbers (one per"
            f" param group); got {base_lr!r}"
        )
    for v in values:
        if huge(v) or not is_finite_number(v) or v < 0:
            raise ValueError(f"Driver base_lr values must be finite numbers >= 0, got {short(v)}")
    return _finite_lrs([float(v) for v in values], schedule)


def _finite_lrs(base_lrs: list[float], schedule: Schedule) -> list[float]:
    highest = schedule.bounds()[1]
    for b in base_lrs:
        if math.isinf(b * highest) and not math.isinf(highest):
            raise ValueError(
                f"a base lr of {b:g} times the schedule's largest value ({highest:g}) is not a"
                " finite lr; give a smaller base lr"
            )
    return base_lrs


def momentum_key(groups: list[dict[str, Any]]) -> str:
    keys = ["betas" if "betas" in g else "momentum" if "momentum" in g else None for g in groups]
    if None in keys or len(set(keys)) != 1:
        bad = keys.index(None) if None in keys else 0
        raise ValueError(
            "a momentum schedule needs an optimizer with 'momentum' (SGD, RMSprop) or 'betas'"
            f" (Adam, AdamW, ...) in every param group; group {bad} has keys"
            f" {sorted(groups[bad])}"
        )
    return keys[0]


__all__ = ["steps_or_none", "as_float", "check_base_lrs", "momentum_key"]
