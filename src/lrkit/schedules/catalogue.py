"""The catalogue: every common schedule as a frozen closed form of the step.

Conventions shared by every entry (see base.py):
- values are multipliers of the base learning rate; peaks are 1.0;
- ``steps`` is the schedule's length; ``None`` (where allowed) means "the rest of the run";
- ``start`` is the first value and ``to`` the final one; past its length a schedule holds
  its last value;
- each docstring's first line after the summary is the formula, evaluated by a test.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .base import Length, Schedule, check_length, check_positive, length_field, register


@register("constant")
@dataclass(frozen=True, repr=False)
class Constant(Schedule):
    """The same value at every step; ``steps`` only gives it a length inside a sequence.

    formula: value
    """

    value: float = 1.0
    steps: Length | None = length_field()

    def __post_init__(self):
        check_positive(self.value, f"{self.name} value", zero=True)
        if self.steps is not None:
            object.__setattr__(self, "steps", check_length(self.steps, f"{self.name} steps"))

    @classmethod
    def _positional(cls):
        return ("value", "steps")

    def __call__(self, t: float) -> float:
        return self.value

    def bounds(self):
        return (self.value, self.value)


@register("linear")
@dataclass(frozen=True, repr=False)
class Linear(Schedule):
    """Straight line from ``start`` to ``to`` over ``steps``, then hold.

    formula: start + (to - start) * min(t, steps) / steps
    """

    steps: Length | None = length_field(rest=True)
    start: float = 1.0
    to: float = 0.0

    def __post_init__(self):
        if self.steps is not None:
            object.__setattr__(self, "steps", check_length(self.steps, f"{self.name} steps"))
        check_positive(self.start, f"{self.name} start", zero=True)
        check_positive(self.to, f"{self.name} to", zero=True)

    @classmethod
    def _positional(cls):
        return ("steps",)

    def __call__(self, t: float) -> float:
        n = self.needs(self.steps)
        return self.start + (self.to - self.start) * min(t, n) / n

    def bounds(self):
        return (min(self.start, self.to), max(self.start, self.to))


@register("warmup")
@dataclass(frozen=True, repr=False)
class Warmup(Linear):
    """Linear warmup from ``start`` (default 0) to ``to`` (default 1) over ``steps``.

    formula: start + (to - start) * min(t, steps) / steps
    """

    steps: Length | None = length_field(rest=True)
    start: float = 0.0
    to: float = 1.0


@register("cosine")
@dataclass(frozen=True, repr=False)
class Cosine(Schedule):
    """Half a cosine from ``start`` down to the floor ``to`` over ``steps``, then hold.

    formula: to + (start - to) * (1 + cos(pi * min(t, steps) / steps)) / 2
    """

    steps: Length | None = length_field(rest=True)
    to: float = 0.0
    start: float = 1.0

    def __post_init__(self):
        if self.steps is not None:
            object.__setattr__(self, "steps", check_length(self.steps, f"{self.name} steps"))
        check_positive(self.start, f"{self.name} start", zero=True)
        check_positive(self.to, f"{self.name} to", zero=True)

    @classmethod
    def _positional(cls):
        return ("steps",)

    def __call__(self, t: float) -> float:
        n = self.needs(self.steps)
        return self.to + (self.start - self.to) * (1.0 + math.cos(math.pi * min(t, n) / n)) / 2.0

    def bounds(self):
        return (min(self.start, self.to), max(self.start, self.to))


constant = Constant
linear = Linear
warmup = Warmup
cosine = Cosine
