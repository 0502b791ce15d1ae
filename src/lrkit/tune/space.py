"""The search space of a tune: the peak lr's range and the schedules to try.

(A first, minimal form: an lr range searched on a log scale and one fixed schedule. The text
form with ranges, several families and the optional optimizer, weight decay and batch size are
added on top of this interface.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from ..checks import check_lr
from ..errors import UserError
from ..schedules import parse
from .config import Config


@dataclass(frozen=True)
class Space:
    """``lr``: the ``(low, high)`` range of the peak lr, searched on a log scale (None: the
    range test's window decides); ``schedule``: the schedule every trial uses (text)."""

    lr: tuple[float, float] | None = None
    schedule: str = "warmup(5%) >> cosine"

    def __post_init__(self) -> None:
        if self.lr is not None:
            lo, hi = (check_lr(v, "lr range bound") for v in self.lr)
            if lo > hi:
                raise UserError(f"lr range: low {lo:g} > high {hi:g}; give low <= high")
            object.__setattr__(self, "lr", (lo, hi))
        parse(self.schedule)  # a ScheduleSyntaxError pointing at the column

    def with_lr(self, low: float, high: float) -> Space:
        """This space with the lr range ``(low, high)``."""
        return replace(self, lr=(low, high))

    def suggest(self, trial: Any) -> Config:
        """Sample one configuration through an ``optuna.Trial`` (param ``lr``, log scale)."""
        if self.lr is None:
            raise UserError(
                "the space has no lr range yet: give one, or let tune's range test set it"
            )
        lo, hi = self.lr
        lr = lo if lo == hi else trial.suggest_float("lr", lo, hi, log=True)
        return Config(lr=lr, schedule=self.schedule, family=_family(self.schedule))

    def grid(self, points: int = 9) -> dict[str, list[Any]]:
        """A grid for Optuna's GridSampler: ``points`` lrs evenly spaced in log over the range."""
        if self.lr is None:
            raise UserError("a grid needs an lr range")
        lo, hi = self.lr
        if lo == hi or points == 1:
            return {"lr": [lo]}
        step = (math.log10(hi) - math.log10(lo)) / (points - 1)
        return {"lr": [10 ** (math.log10(lo) + i * step) for i in range(points)]}

    def config(self, params: dict[str, Any]) -> Config:
        """The Config of a finished trial's params (what :meth:`suggest` sampled)."""
        return Config(
            lr=params.get("lr", self.lr[0] if self.lr else 0.0),
            schedule=self.schedule,
            family=_family(self.schedule),
        )


def _family(schedule: str) -> str:
    """The name of the schedule's main part: ``warmup(5%) >> cosine`` -> ``cosine``."""
    last = schedule.split(">>")[-1].strip()
    return last.split("(")[0].strip() or "constant"


def as_space(space: Any) -> Space:
    """A Space as is; None: the default space; a text spec: that schedule, lr from the range test."""
    if space is None:
        return Space()
    if isinstance(space, Space):
        return space
    if isinstance(space, str):
        return Space(schedule=space)
    raise UserError(f"space must be a Space or a schedule text, got {type(space).__name__}")
