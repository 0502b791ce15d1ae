"""Units of a schedule: lengths (steps, ``"5%"`` of the run, ``"2ep"``), values and their checks.

A length is whole steps (``500``), a fraction of the run (``"5%"``) or epochs (``"2ep"``);
:class:`Run` turns the last two into steps. Every length is at most :data:`MAX_STEPS` and
every value of a schedule at most :data:`MAX_VALUE`, which keeps every closed form far inside
float range. The checks here return the canonical value or raise ValueError naming it.
"""

from __future__ import annotations

import dataclasses
import math
import re
import reprlib
from decimal import Decimal
from typing import Any

from ..checks import is_number, whole

Length = int | str  # whole steps, "5%" of the run, or "2ep" epochs

MAX_DEPTH = 64  # schedules nested deeper than this are refused (text, data and files alike)
MAX_ITEMS = 100_000  # values and parts in one schedule's data; more is refused, not expanded
ALIASES = {"minimum": "min", "maximum": "max"}  # the Python names, accepted in text and data
MAX_VALUE = 1e12  # the largest value any schedule may take (a multiplier or an absolute lr)
MAX_STEPS = 10**12  # the longest length, in steps (far past any run, far inside float range)

_PERCENT = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*%\s*$")
_EPOCHS = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*ep(?:och|ochs)?\s*$")
_INTEGER = re.compile(r"^\s*\d+\s*$")


_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 80
_SHORT.maxlist = _SHORT.maxtuple = _SHORT.maxdict = 6
_SHORT.maxlevel = 3


def short(value: Any, most: int = 80) -> str:
    """``repr(value)`` kept to about ``most`` characters (for messages about huge values).

    Containers and strings are cut without building their whole repr; a schedule's repr is
    cut in the middle.
    """
    text = _SHORT.repr(value) if isinstance(value, str | dict | list | tuple) else repr(value)
    if len(text) <= most:
        return text
    half = (most - 5) // 2
    return f"{text[:half]} ... {text[-half:]}"


def huge(value: Any) -> bool:
    """Whether ``value`` is an int too large for a float (math.isfinite would raise on it)."""
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**1023


def power(base: float, exponent: float) -> float:
    """``base ** exponent`` for base >= 0, with ``inf`` instead of an OverflowError."""
    try:
        return base**exponent
    except OverflowError:
        return math.inf


def length_field(default: Any = None, *, rest: bool = False, zero: bool = False):
    """A dataclass field holding one length. ``rest``: ``None`` means "the rest of the run".

    ``zero``: a length of 0 steps is allowed (e.g. ``warmup=0``).
    """
    return dataclasses.field(
        default=default, metadata={"kind": "length", "rest": rest, "zero": zero}
    )


def lengths_field(default: Any = ()):
    """A dataclass field holding a sorted tuple of lengths (milestones, boundaries)."""
    return dataclasses.field(default=default, metadata={"kind": "lengths"})


def _fmt_number(x: float) -> str:
    """A plain decimal (``5``, ``2.5``, ``1000000``, ``0.00001``): never an exponent, which the
    length patterns (and so the text form) do not read."""
    text = f"{x:g}" if float(x) == float(f"{x:g}") else repr(float(x))
    if "e" in text:
        text = format(Decimal(repr(float(x))), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def check_length(value: Any, what: str, *, zero: bool = False) -> Length:
    """Normalise one length: an int of steps, ``"5%"`` or ``"2ep"``; raise ValueError otherwise.

    >>> check_length("5 %", "warmup steps")
    '5%'
    """
    low = 0 if zero else 1
    accepted = (
        f"a whole number of steps >= {low}, a fraction of the run like '5%', or epochs like '2ep'"
    )
    if not is_number(value) and not isinstance(value, str):
        raise ValueError(f"{what} must be {accepted}; got {short(value)}")
    if isinstance(value, float) and value > MAX_STEPS:
        raise ValueError(f"{what} must be at most {MAX_STEPS:,} steps, got {value!r}")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int):
        if value < low:
            raise ValueError(f"{what} must be >= {low}, got {value}")
        if value > MAX_STEPS:
            raise ValueError(f"{what} must be at most {MAX_STEPS:,} steps, got {short(value)}")
        return value
    if isinstance(value, str):
        if _INTEGER.match(value):
            return check_length(int(value), what, zero=zero)
        m = _PERCENT.match(value)
        if m:
            pct = float(m.group(1))
            if pct > 100:
                raise ValueError(f"{what} must be a fraction of at most 100%, got {value!r}")
            if pct < 0 or (pct == 0 and not zero):
                raise ValueError(f"{what} must be a fraction above 0%, got {value!r}")
            return f"{_fmt_number(pct)}%"
        m = _EPOCHS.match(value)
        if m:
            ep = float(m.group(1))
            if ep == 0 and not zero:
                raise ValueError(f"{what} must be more than 0 epochs, got {value!r}")
            if ep > MAX_STEPS:
                raise ValueError(f"{what} must be at most {MAX_STEPS:,} epochs, got {short(value)}")
            return f"{_fmt_number(ep)}ep"
    raise ValueError(f"{what} must be {accepted}; got {short(value)}")


def check_positive(
    value: Any, what: str, *, zero: bool = False, most: float | None = MAX_VALUE
) -> float:
    """A finite number > 0 (or >= 0 with ``zero``) and at most ``most``, as float.

    ValueError naming ``what`` otherwise. ``most`` defaults to :data:`MAX_VALUE`, the largest
    value a schedule may take.
    """
    if huge(value) or not is_number(value) or not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number, got {short(value)}")
    if value < 0 or (value == 0 and not zero):
        raise ValueError(f"{what} must be {'>= 0' if zero else '> 0'}, got {value!r}")
    if most is not None and value > most:
        raise ValueError(f"{what} must be at most {most:g}, got {value!r}")
    return float(value)


def check_whole(value: Any, what: str, least: int = 0) -> int:
    """A whole number >= ``least`` (an integral float such as ``2.0`` counts), as int."""
    if isinstance(value, float) and value.is_integer() and not huge(value):
        value = int(value)
    return whole(value, what, least=least)


def check_choice(value: Any, what: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"{what} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return value


@dataclasses.dataclass(frozen=True)
class Run:
    """What lengths are resolved against: the run's total steps and steps per epoch."""

    total_steps: int | None = None
    steps_per_epoch: int | None = None

    def steps(self, length: Length, what: str) -> int:
        """Turn one checked length into whole steps (rounded to the nearest step; a positive
        fraction of a run is at least one step)."""
        if isinstance(length, int):
            return length
        if length.endswith("%"):
            if self.total_steps is None:
                raise ValueError(
                    f"{what} is {length!r}, a fraction of the run, but the run's total steps are"
                    " unknown; give total_steps (the driver's total_steps=, or --steps)"
                )
            share = float(length[:-1]) / 100.0 * self.total_steps
            # a positive share of a short run is at least one step (5% of 9 steps: 1, not 0)
            return (
                max(1, int(round(share))) if share > 0 and self.total_steps else int(round(share))
            )
        if self.steps_per_epoch is None:
            raise ValueError(
                f"{what} is {length!r}, in epochs, but the steps per epoch are unknown;"
                " give steps_per_epoch"
            )
        steps = int(round(float(length[:-2]) * self.steps_per_epoch))
        if steps > MAX_STEPS:
            raise ValueError(
                f"{what} is {length!r}, {steps:,} steps at {self.steps_per_epoch} steps per"
                f" epoch, more than the most a length may be ({MAX_STEPS:,} steps)"
            )
        return steps


def required(f: dataclasses.Field) -> bool:
    """Whether a dataclass field has no default (a schedule cannot be built without it)."""
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
