"""Shaping: one schedule's values bounded, or several's combined, or its time axis replayed.

``clip`` keeps values within ``[lo, hi]``; ``min`` and ``max`` take the lowest or highest of
several schedules at each step; ``repeat`` plays a finite schedule several times (or forever);
``stretch`` rescales a finite schedule's time axis to a new length. Still pure and closed form.
The algebra itself (``>>``, ``*``, scale) lives in combinators.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ..checks import is_number, shown
from .base import (
    MAX_STEPS,
    Length,
    Run,
    Schedule,
    check_length,
    check_positive,
    check_whole,
    length_field,
    register,
    short,
)
from .catalogue import Constant
from .combinators import Joint, _schedules, part


@register("clip")
@dataclass(frozen=True, repr=False)
class Clip(Schedule):
    """A schedule's values kept within ``[lo, hi]``.

    formula: min(max(schedule(t), lo), hi)
    """

    schedule: Schedule = field(default_factory=Constant)
    lo: float = 0.0
    hi: float = math.inf

    def __post_init__(self):
        object.__setattr__(self, "schedule", part(self.schedule, "clip schedule"))
        lo = check_positive(self.lo, "clip lo", zero=True)
        hi = self.hi
        if not (
            is_number(hi) and (hi == math.inf or check_positive(hi, "clip hi", zero=True) >= lo)
        ):
            raise ValueError(f"clip hi must be a number >= lo ({lo!r}), got {short(hi)}")
        object.__setattr__(self, "lo", lo)
        object.__setattr__(self, "hi", float(hi))

    @classmethod
    def _positional(cls):
        return ("schedule",)

    def __call__(self, t: float) -> float:
        return min(max(self.schedule(t), self.lo), self.hi)

    @property
    def length(self):
        return self.schedule.length

    @property
    def static(self) -> bool:
        return self.schedule.static

    def ends(self) -> bool:
        return self.schedule.ends()

    def bounds(self):
        lo, hi = self.schedule.bounds()
        return (min(max(lo, self.lo), self.hi), min(max(hi, self.lo), self.hi))


@register("min")
@dataclass(frozen=True, repr=False)
class Minimum(Joint, Schedule):
    """The lowest of several schedules' values at each step.

    formula: min(p(t) for p in parts)
    """

    parts: tuple[Schedule, ...] = ()
    _varargs = "parts"

    def __post_init__(self):
        object.__setattr__(self, "parts", _schedules(self.parts, "min parts"))

    def __call__(self, t: float) -> float:
        return min(p(t) for p in self.parts)

    def bounds(self):
        lows, highs = zip(*(p.bounds() for p in self.parts))
        return (min(lows), min(highs))

    def __repr__(self) -> str:
        return f"min({', '.join(repr(p) for p in self.parts)})"


@register("max")
@dataclass(frozen=True, repr=False)
class Maximum(Minimum):
    """The highest of several schedules' values at each step.

    formula: max(p(t) for p in parts)
    """

    def __call__(self, t: float) -> float:
        return max(p(t) for p in self.parts)

    def bounds(self):
        lows, highs = zip(*(p.bounds() for p in self.parts))
        return (max(lows), max(highs))

    def __repr__(self) -> str:
        return f"max({', '.join(repr(p) for p in self.parts)})"


@register("repeat")
@dataclass(frozen=True, repr=False)
class Repeat(Schedule):
    """A finite schedule played ``times`` times (forever when ``times`` is None), then held.

    formula: schedule(t mod L) for t < times * L, with L = schedule.length
    """

    schedule: Schedule = field(default_factory=Constant)
    times: int | None = None

    def __post_init__(self):
        object.__setattr__(self, "schedule", _ending(self.schedule, "repeat"))
        if self.times is not None:
            object.__setattr__(self, "times", check_whole(self.times, "repeat times", least=1))
            n = self.schedule.length
            if self.times > MAX_STEPS or (type(n) is int and n * self.times > MAX_STEPS):
                raise ValueError(
                    f"repeat times={shown(self.times)} makes the schedule longer than {MAX_STEPS} steps;"
                    " give fewer times, or no times to repeat forever"
                )

    @classmethod
    def _positional(cls):
        return ("schedule", "times")

    def _resolve(self, run: Run, rest: int | None) -> Schedule:
        inner_rest = rest // self.times if (rest is not None and self.times) else None
        return Repeat(self.schedule._resolve(run, inner_rest), self.times)

    def __call__(self, t: float) -> float:
        n = _inner_length(self)
        if self.times is not None and t >= self.times * n:
            return self.schedule(n)
        return self.schedule(t % n)

    @property
    def length(self):
        n = self.schedule.length
        return n * self.times if (type(n) is int and self.times) else None

    def ends(self) -> bool:
        return self.times is not None

    def bounds(self):
        return self.schedule.bounds()


@register("stretch")
@dataclass(frozen=True, repr=False)
class Stretch(Schedule):
    """A finite schedule's time axis rescaled so that it lasts ``steps`` instead of its length.

    formula: schedule(t * L / steps), with L = schedule.length
    """

    schedule: Schedule = field(default_factory=Constant)
    steps: Length | None = length_field(rest=True)

    def __post_init__(self):
        object.__setattr__(self, "schedule", _ending(self.schedule, "stretch"))
        if self.steps is not None:
            object.__setattr__(self, "steps", check_length(self.steps, "stretch steps"))

    @classmethod
    def _positional(cls):
        return ("schedule", "steps")

    def _resolve(self, run: Run, rest: int | None) -> Schedule:
        steps = rest if self.steps is None else run.steps(self.steps, "stretch steps")
        return Stretch(self.schedule._resolve(run, None), steps)

    def __call__(self, t: float) -> float:
        n = _inner_length(self)
        return self.schedule(t * n / self.needs(self.steps))

    def bounds(self):
        return self.schedule.bounds()


def _inner_length(s: Repeat | Stretch) -> int:
    """The length of the schedule inside a repeat or stretch, once it is in whole steps."""
    n = s.schedule.length
    if type(n) is not int:
        raise ValueError(
            f"{short(s)} cannot be evaluated yet: the length of its schedule is"
            f" {'the rest of the run' if n is None else repr(n)}; call"
            " resolve(total_steps=..., steps_per_epoch=...) first (the driver does this)"
        )
    return n


def _ending(value: Any, what: str) -> Schedule:
    """The schedule of a repeat or stretch: one that ends (has a length, or will once resolved)."""
    s = part(value, f"{what} schedule")
    if not s.ends():
        raise ValueError(
            f"{what} needs a schedule that ends (has a length), got {short(s)}, which never"
            f" does; e.g. {what}(cosine(100), {'3' if what == 'repeat' else '1000'})"
        )
    return s


def clip(schedule: Any, lo: float = 0.0, hi: float = math.inf) -> Schedule:
    return Clip(part(schedule), lo, hi)


def minimum(*parts: Any) -> Schedule:
    return Minimum(tuple(parts))


def maximum(*parts: Any) -> Schedule:
    return Maximum(tuple(parts))


def repeat(schedule: Any, times: int | None = None) -> Schedule:
    return Repeat(part(schedule), times)


def stretch(schedule: Any, steps: Length | None = None) -> Schedule:
    return Stretch(part(schedule), steps)


__all__ = [
    "Clip",
    "Minimum",
    "Maximum",
    "Repeat",
    "Stretch",
    "clip",
    "minimum",
    "maximum",
    "repeat",
    "stretch",
]
