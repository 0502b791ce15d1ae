"""Reduce on plateau as a *stateful factor*: multiply it into any schedule.

``warmup(100) >> cosine * plateau(patience=2)`` lowers the whole cosine by ``factor`` each time
the reported metric stops improving. The configuration is frozen like every schedule (it is what
``repr``, ``to_dict`` and ``==`` see); the progress (best metric, bad reports, cooldown, current
scale) lives in a mutable state object saved by :meth:`Plateau.state_dict`.

The rule is torch's ``ReduceLROnPlateau``, report for report, with the learning rate replaced by
a scale that starts at 1.0 (so ``min_scale`` and ``eps`` are in units of the base lr). One
deviation: a NaN or infinite metric is refused (ValueError) instead of counting as a bad report.

Resolving a schedule (``resolve()``, which the driver does once) copies every node, and a copy
starts with fresh state: a :class:`~lrkit.schedules.Driver` owns its resolved copy, so report
through ``driver.report(metric)`` (or ``driver.plateaus``), not to the object you built.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ..checks import number, whole
from .base import Schedule, check_choice, check_positive, register


@dataclass
class PlateauState:
    """What a plateau has learnt from the reports so far (plain numbers only)."""

    scale: float = 1.0
    best: float = math.inf  # the worst value for the mode until the first report
    num_bad: int = 0
    cooldown_left: int = 0
    reports: int = 0


_STATE_KEYS = ("scale", "best", "num_bad", "cooldown_left", "reports")


def metric_value(metric: Any) -> float:
    """A reported metric as a finite float (numbers, numpy scalars, one-element tensors)."""
    if isinstance(metric, bool | str | bytes):
        raise ValueError(f"a plateau metric must be a finite number, got {metric!r}")
    try:
        value = float(metric)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"a plateau metric must be a finite number, got {metric!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"a plateau metric must be a finite number, got {metric!r}")
    return value


@register("plateau")
@dataclass(frozen=True, repr=False)
class Plateau(Schedule):
    """A factor that drops by ``factor`` when the reported metric stops improving.

    formula: scale, 1.0 at first; each reduction sets scale = max(scale * factor, min_scale)

    A report *improves* when it beats the best so far by more than ``threshold`` (relative:
    ``best * (1 -+ threshold)``, or absolute: ``best -+ threshold``, by ``mode``). After more
    than ``patience`` reports in a row without improvement the scale becomes
    ``max(scale * factor, min_scale)`` — unless that changes it by ``eps`` or less — and the next
    ``cooldown`` reports are not counted as bad. This is ``ReduceLROnPlateau`` with lr = scale.

    >>> p = Plateau(patience=0, factor=0.5)
    >>> [p.report(loss) for loss in (1.0, 2.0, 3.0, 0.5)]
    [1.0, 0.5, 0.25, 0.25]
    >>> p(0), p(1000)
    (0.25, 0.25)
    """

    factor: float = 0.1
    patience: int = 10
    mode: str = "min"
    threshold: float = 1e-4
    threshold_mode: str = "rel"
    cooldown: int = 0
    min_scale: float = 0.0
    eps: float = 1e-8
    state: PlateauState = field(default_factory=PlateauState, init=False, compare=False, repr=False)

    def __post_init__(self):
        factor = check_positive(self.factor, "plateau factor", zero=True)
        if factor >= 1.0:
            raise ValueError(f"plateau factor must be >= 0 and < 1, got {self.factor!r}")
        object.__setattr__(self, "factor", factor)
        whole(self.patience, "plateau patience")
        whole(self.cooldown, "plateau cooldown")
        check_choice(self.mode, "plateau mode", ("min", "max"))
        check_choice(self.threshold_mode, "plateau threshold_mode", ("rel", "abs"))
        object.__setattr__(
            self, "threshold", check_positive(self.threshold, "plateau threshold", zero=True)
        )
        min_scale = check_positive(self.min_scale, "plateau min_scale", zero=True)
        if min_scale > 1.0:
            raise ValueError(f"plateau min_scale must be between 0 and 1, got {self.min_scale!r}")
        object.__setattr__(self, "min_scale", min_scale)
        object.__setattr__(self, "eps", check_positive(self.eps, "plateau eps", zero=True))
        self.reset()

    def __call__(self, t: float) -> float:
        return self.state.scale

    @property
    def length(self) -> None:
        return None

    @property
    def static(self) -> bool:
        return True  # its value changes with the reports, never with the step

    def bounds(self) -> tuple[float, float]:
        return (self.min_scale, 1.0)

    # -- metric-driven state -----------------------------------------------------------
    def is_better(self, value: float, best: float) -> bool:
        """Whether ``value`` improves on ``best`` by more than the threshold (torch's rule)."""
        if self.mode == "min":
            if self.threshold_mode == "rel":
                return value < best * (1.0 - self.threshold)
            return value < best - self.threshold
        if self.threshold_mode == "rel":
            return value > best * (self.threshold + 1.0)
        return value > best + self.threshold

    def report(self, metric: Any) -> float:
        """Feed one metric (e.g. a validation loss); return the scale now in force."""
        value = metric_value(metric)
        s = self.state
        s.reports += 1
        if self.is_better(value, s.best):
            s.best = value
            s.num_bad = 0
        else:
            s.num_bad += 1
        if s.cooldown_left > 0:
            s.cooldown_left -= 1
            s.num_bad = 0  # bad reports during a cooldown do not count
        if s.num_bad > self.patience:
            new = max(s.scale * self.factor, self.min_scale)
            if s.scale - new > self.eps:
                s.scale = new
            s.cooldown_left = self.cooldown
            s.num_bad = 0
        return s.scale

    @property
    def scale(self) -> float:
        """The current value (1.0 until the first reduction)."""
        return self.state.scale

    def reset(self) -> None:
        """Forget every report: scale 1.0, best the worst value for the mode (+-inf)."""
        worst = math.inf if self.mode == "min" else -math.inf
        object.__setattr__(self, "state", PlateauState(best=worst))

    def state_dict(self) -> dict[str, Any]:
        """The progress as plain data: scale, best, num_bad, cooldown_left, reports."""
        s = self.state
        return {k: getattr(s, k) for k in _STATE_KEYS}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        if not isinstance(state, dict) or set(state) != set(_STATE_KEYS):
            got = sorted(state) if isinstance(state, dict) else state
            raise ValueError(
                f"a plateau state must be a mapping with keys {', '.join(_STATE_KEYS)}; got {got!r}"
            )
        object.__setattr__(
            self,
            "state",
            PlateauState(
                scale=number(state["scale"], "plateau state scale", low=0, high=1),
                best=float(state["best"]),
                num_bad=whole(state["num_bad"], "plateau state num_bad"),
                cooldown_left=whole(state["cooldown_left"], "plateau state cooldown_left"),
                reports=whole(state["reports"], "plateau state reports"),
            ),
        )


plateau = Plateau

__all__ = ["Plateau", "PlateauState", "plateau", "metric_value"]
