"""compare's arguments, checked before anything trains: the lr modes and their budgets."""

from __future__ import annotations

from typing import Any

from ...checks import check_lr, number, whole
from ...errors import UserError
from ...progress import wanted

LR_MODES = ("pick", "tune")
BUDGET = {"pick": 1.5, "tune": 6.0}  # full runs an entry may spend choosing its rate


def check_arguments(seeds, lr, same_lr, epochs, target, budget, seed, progress) -> dict[str, Any]:
    """compare's checked arguments; a UserError naming the bad one."""
    try:
        seeds = whole(seeds, "seeds", least=1)
        if not isinstance(lr, str) or lr.strip().lower() not in LR_MODES:
            raise UserError(f"lr must be one of {', '.join(LR_MODES)}, got {lr!r}")
        lr = lr.strip().lower()
        if isinstance(same_lr, str):
            if same_lr.strip().lower() != "auto":
                raise UserError(f"same_lr must be a peak lr > 0, 'auto' or None, got {same_lr!r}")
            same_lr = "auto"
        elif same_lr is not None:
            same_lr = check_lr(same_lr, "same_lr")
        if epochs is not None:
            epochs = whole(epochs, "epochs", least=1)
        if target is not None:
            target = number(target, "target (a metric value)")
        budget = (
            BUDGET[lr]
            if budget is None
            else number(budget, "budget (full runs)", low=0, low_open=True)
        )
        whole(seed, "seed", least=0)
        wanted(progress)
    except UserError:
        raise
    except ValueError as e:
        raise UserError(str(e)) from None
    return {"seeds": seeds, "lr": lr, "same_lr": same_lr, "epochs": epochs, "target": target,
            "budget": budget}  # fmt: skip


__all__ = ["LR_MODES", "BUDGET", "check_arguments"]
