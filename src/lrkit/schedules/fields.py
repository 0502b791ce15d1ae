"""Field checks shared by the catalogue, the cyclic and the piecewise schedules.

Each one names the schedule and the field, and stores the normalised value on the (frozen)
schedule; a ``gamma > 1`` is refused unless ``steps`` ends the growth in range. Also the
bounds helpers that several schedules share.
"""

from __future__ import annotations

import math
from typing import Any

from ..checks import number
from .base import MAX_VALUE, Length, Schedule, check_length, check_positive, power, short


def _set(s: Schedule, name: str, value: Any) -> None:
    object.__setattr__(s, name, value)


def _length(s: Schedule, name: str, *, zero: bool = False, required: bool = False) -> None:
    """Normalise the length field ``name``; ``None`` (no length, the rest) unless ``required``."""
    if required or getattr(s, name) is not None:
        _set(s, name, check_length(getattr(s, name), f"{s.name} {name}", zero=zero))


def _number(s: Schedule, *names: str, zero: bool = True) -> None:
    """Normalise number fields to float: finite and >= 0 (> 0 without ``zero``)."""
    for name in names:
        _set(s, name, check_positive(getattr(s, name), f"{s.name} {name}", zero=zero))


def _gamma(s: Schedule, name: str = "gamma", *, at_most_one: bool = False) -> None:
    """A factor per step or milestone: > 0, and <= 1 where growth makes no sense."""
    value = getattr(s, name)
    try:
        value = number(value, name, low=0, low_open=True, high=1 if at_most_one else MAX_VALUE)
    except (ValueError, OverflowError):  # OverflowError: an int too large for a float
        accepted = "0 < x <= 1" if at_most_one else "a finite number > 0"
        raise ValueError(f"{s.name} {name} must be {accepted}, got {short(value)}") from None
    _set(s, name, value)


def _growth(s: Schedule, per: Length) -> None:
    """A ``gamma > 1`` grows without end: refuse it unless ``steps`` stops it in range.

    ``per``: steps per factor of gamma (``every`` for step, 1 for exponential). The message
    names the first step whose value would pass MAX_VALUE. Lengths like '5%' are checked once
    resolved (the resolved copy is built again).
    """
    if s.gamma <= 1:
        return
    first = math.floor(math.log(MAX_VALUE) / math.log(s.gamma)) + 1  # factors to pass it
    known = type(per) is int
    if s.steps is None or (known and type(s.steps) is int and s.steps // per >= first):
        at = f" at step {first * per:,}" if known else f" after {first:,} factors of gamma"
        below = f", with N below {first * per:,}" if known else ""
        raise ValueError(
            f"{short(s)} grows past {MAX_VALUE:g}{at} (and past float range later): a gamma"
            f" above 1 needs steps=N, the step where it stops growing and holds its value{below};"
            " or give a gamma <= 1"
        )


def _grown(gamma: float, factors: Length, steps: Length | None) -> tuple[float, float]:
    """Bounds of ``gamma ** k`` for k up to ``factors`` (unbounded until lengths resolve)."""
    if steps is None or type(factors) is not int:
        return _growth_bounds(gamma)
    return _between(1.0, power(gamma, factors))


def _increasing(s: Schedule, name: str, values: tuple[Length, ...]) -> None:
    """Whole-step values must increase strictly (lengths like '5%' are checked once resolved)."""
    ints = [v for v in values if isinstance(v, int)]
    if len(ints) == len(values) and any(b <= a for a, b in zip(ints, ints[1:])):
        raise ValueError(f"{s.name} {name} must be increasing steps, got {list(values)!r}")


def _milestones(s: Schedule, name: str) -> None:
    """A non-empty, increasing list of lengths (milestones, boundaries), stored as a tuple."""
    values = getattr(s, name)
    if not isinstance(values, tuple | list) or not values:
        raise ValueError(f"{s.name} {name} must be a non-empty list of steps, got {values!r}")
    values = tuple(check_length(v, f"{s.name} {name}") for v in values)
    _increasing(s, name, values)
    _set(s, name, values)


def _growth_bounds(gamma: float) -> tuple[float, float]:
    return (0.0, 1.0) if gamma <= 1 else (1.0, math.inf)


def _between(a: float, b: float) -> tuple[float, float]:
    return (min(a, b), max(a, b))


def _leading(*names: str) -> classmethod:
    """A ``_positional``: the fields that repr writes without their names while they lead."""
    return classmethod(lambda cls: names)
