"""Argument checks shared by every layer (the ground floor: imports nothing of lrkit's).

Each check returns the value in its canonical type or raises ``ValueError`` with a message that
names the argument, the bad value and what would be accepted::

    >>> whole(3, "epochs", least=1)
    3
    >>> whole(0, "epochs", least=1)
    Traceback (most recent call last):
    ...
    ValueError: epochs must be a whole number >= 1, got 0
    >>> number(float("nan"), "factor", low=0, high=1, low_open=True)
    Traceback (most recent call last):
    ...
    ValueError: factor must be a number in (0, 1], got nan

``bool`` is never a number here (``True`` is an ``int`` to Python, not to a user).
"""

from __future__ import annotations

import math
from typing import Any


def is_number(value: Any) -> bool:
    """True for an ``int`` or ``float`` that is not a ``bool`` (NaN and inf included)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_finite_number(value: Any) -> bool:
    """True for a number (see :func:`is_number`) that is neither NaN nor infinite (nor an int
    too large for a float)."""
    return is_number(value) and math.isfinite(_as_float(value))


def _as_float(value: int | float) -> float:
    """``value`` as a float; an int beyond float range becomes an infinity of its sign."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def whole(value: Any, what: str, least: int | None = 0) -> int:
    """A whole number ``>= least`` (``least=None``: any whole number), as ``int``."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or (least is not None and value < least)
    ):
        bound = "" if least is None else f" >= {least}"
        raise ValueError(f"{what} must be a whole number{bound}, got {shown(value)}")
    return int(value)


def number(
    value: Any,
    what: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    finite: bool = True,
) -> float:
    """A number within ``[low, high]`` (open ends where asked), as ``float``.

    ``finite=True`` (the default) also refuses ``inf``; NaN is always refused.
    """
    ok = is_number(value) and not math.isnan(_as_float(value))
    if ok and finite and math.isinf(_as_float(value)):
        ok = False
    if ok and low is not None and (value <= low if low_open else value < low):
        ok = False
    if ok and high is not None and (value >= high if high_open else value > high):
        ok = False
    if not ok:
        raise ValueError(
            f"{what} must be {describe(low, high, low_open, high_open, finite)}, got {shown(value)}"
        )
    return _as_float(value)


def describe(
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    finite: bool = True,
) -> str:
    """The accepted range in words: ``"a finite number > 0"``, ``"a number in (0, 1]"``."""
    kind = "a finite number" if finite else "a number"
    if low is not None and high is not None:
        left, right = "(" if low_open else "[", ")" if high_open else "]"
        return f"a number in {left}{_fmt(low)}, {_fmt(high)}{right}"
    if low is not None:
        return f"{kind} {'>' if low_open else '>='} {_fmt(low)}"
    if high is not None:
        return f"{kind} {'<' if high_open else '<='} {_fmt(high)}"
    return kind


def check_lr(lr: Any, what: str = "lr") -> float:
    """A learning rate: a finite number > 0, as float; ValueError naming it otherwise."""
    return number(lr, what, low=0, low_open=True)


def shown(value: Any, limit: int = 40) -> str:
    """``repr(value)`` for a message, shortened when long (a 400-digit int, a huge string)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**15:
        return (
            f"{_as_float(value):.3g}"
            if abs(value) < 10**308
            else f"an integer of {len(str(abs(value)))} digits"
        )
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else repr(float(x))


__all__ = ["is_number", "is_finite_number", "whole", "number", "describe", "check_lr", "shown"]
