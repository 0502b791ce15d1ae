"""The catalogue: every common schedule as a frozen closed form of the step.

Conventions shared by every entry (see base.py):
- values are multipliers of the base learning rate; peaks are 1.0;
- ``steps`` is the schedule's length; ``None`` (where allowed) means "the rest of the run";
- ``start`` is the first value and ``to`` the final one; past its length a schedule holds
  its last value; schedules without a length (``step``, ``exponential``...) never stop;
- ``gamma`` is a factor applied once per step or per milestone; a ``gamma > 1`` grows, so
  ``step`` and ``exponential`` then need ``steps`` (where the growth stops) to stay in range;
- each docstring has a line ``formula: <python expression>`` in ``t`` and the fields,
  possibly followed by ``where:`` lines that define its helper names; a test evaluates it.

Schedules in phases or cycles (``wsd``, ``one_cycle``, ``cyclical``, ``cosine_restarts``)
live in cyclic.py; schedules given by a table of steps and values (``piecewise_constant``,
``piecewise_linear``) in piecewise.py. The field checks they share are in fields.py.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import MISSING, dataclass

from .base import Length, Schedule, length_field, lengths_field, power, register
from .fields import (
    _between,
    _gamma,
    _grown,
    _growth,
    _leading,
    _length,
    _milestones,
    _number,
)


@register("constant")
@dataclass(frozen=True, repr=False)
class Constant(Schedule):
    """The same value at every step; ``steps`` only gives it a length inside a sequence.

    formula: value

    >>> (constant(0.1, 100) >> constant(1.0))(150)
    1.0
    """

    value: float = 1.0
    steps: Length | None = length_field()

    def __post_init__(self):
        _number(self, "value")
        _length(self, "steps")

    _positional = _leading("value", "steps")

    def __call__(self, t: float) -> float:
        return self.value

    @property
    def static(self) -> bool:
        return True

    def bounds(self):
        return (self.value, self.value)


@register("linear")
@dataclass(frozen=True, repr=False)
class Linear(Schedule):
    """Straight line from ``start`` to ``to`` over ``steps``, then hold (torch's LinearLR).

    formula: start + (to - start) * min(t, steps) / steps

    >>> linear(100, to=0.1)(50)
    0.55
    """

    steps: Length | None = length_field(rest=True)
    start: float = 1.0
    to: float = 0.0

    def __post_init__(self):
        _length(self, "steps")
        _number(self, "start", "to")

    _positional = _leading("steps")

    def __call__(self, t: float) -> float:
        u = min(t, n := self.needs(self.steps)) / n
        return (1.0 - u) * self.start + u * self.to  # exactly start and to at the ends

    def bounds(self):
        return _between(self.start, self.to)


@register("warmup")
@dataclass(frozen=True, repr=False)
class Warmup(Linear):
    """Linear warmup from ``start`` (default 0) to ``to`` (default 1) over ``steps``.

    formula: start + (to - start) * min(t, steps) / steps

    >>> warmup(100)(25)
    0.25
    """

    steps: Length | None = length_field(rest=True)
    start: float = 0.0
    to: float = 1.0


@register("cosine")
@dataclass(frozen=True, repr=False)
class Cosine(Schedule):
    """Half a cosine from ``start`` down to the floor ``to`` over ``steps``, then hold.

    formula: to + (start - to) * (1 + cos(pi * min(t, steps) / steps)) / 2

    Unlike torch's CosineAnnealingLR, which rises again after ``T_max``, it holds ``to``.

    >>> cosine(100, to=0.1)(100)
    0.1
    """

    steps: Length | None = length_field(rest=True)
    to: float = 0.0
    start: float = 1.0

    def __post_init__(self):
        _length(self, "steps")
        _number(self, "to", "start")

    _positional = _leading("steps")

    def __call__(self, t: float) -> float:
        n = self.needs(self.steps)
        return self.to + (self.start - self.to) * (1.0 + math.cos(math.pi * min(t, n) / n)) / 2.0

    def bounds(self):
        return _between(self.start, self.to)


@register("polynomial")
@dataclass(frozen=True, repr=False)
class Polynomial(Schedule):
    """Polynomial decay from ``start`` to ``to`` over ``steps``, then hold (torch's PolynomialLR).

    formula: to + (start - to) * (1 - min(t, steps) / steps) ** power

    ``power=1`` is a straight line, ``power=2`` bends towards ``to`` early.

    >>> polynomial(100, power=2)(50)
    0.25
    """

    steps: Length | None = length_field(rest=True)
    power: float = 1.0
    to: float = 0.0
    start: float = 1.0

    def __post_init__(self):
        _length(self, "steps")
        _number(self, "power", zero=False)
        _number(self, "to", "start")

    _positional = _leading("steps")

    def __call__(self, t: float) -> float:
        n = self.needs(self.steps)
        return self.to + (self.start - self.to) * (1.0 - min(t, n) / n) ** self.power

    def bounds(self):
        return _between(self.start, self.to)


@register("step")
@dataclass(frozen=True, repr=False)
class Step(Schedule):
    """Multiply by ``gamma`` every ``every`` steps, forever or until ``steps`` (torch's StepLR).

    formula: gamma ** floor(min(t, steps if steps is not None else t) / every)

    A ``gamma > 1`` grows and needs ``steps``: ``step(10, gamma=2, steps=100)``.

    >>> [step(30, gamma=0.5)(t) for t in (0, 29, 30, 60)]
    [1.0, 1.0, 0.5, 0.25]
    """

    every: Length = length_field(MISSING)
    gamma: float = 0.1
    steps: Length | None = length_field()

    def __post_init__(self):
        _length(self, "every", required=True)
        _gamma(self)
        _length(self, "steps")
        _growth(self, self.every)

    _positional = _leading("every")

    def __call__(self, t: float) -> float:
        if self.steps is not None:
            t = min(t, self.needs(self.steps))
        return self.gamma ** math.floor(t / self.needs(self.every, "every"))

    def bounds(self):
        ok = type(self.every) is int and type(self.steps) is int
        return _grown(self.gamma, self.steps // self.every if ok else "?", self.steps)


@register("multistep")
@dataclass(frozen=True, repr=False)
class MultiStep(Schedule):
    """Multiply by ``gamma`` at each of the increasing ``milestones`` (torch's MultiStepLR).

    formula: gamma ** sum(t >= m for m in milestones)

    >>> multistep([30, 80])(50)
    0.1
    """

    milestones: tuple[Length, ...] = lengths_field(MISSING)
    gamma: float = 0.1

    def __post_init__(self):
        _milestones(self, "milestones")
        _gamma(self)

    _positional = _leading("milestones")

    def __call__(self, t: float) -> float:
        ms = [self.needs(m, "milestones") for m in self.milestones]
        return self.gamma ** bisect_right(ms, t)

    @property
    def length(self):
        return self.milestones[-1]

    def bounds(self):
        last = power(self.gamma, len(self.milestones))
        return (min(1.0, last), max(1.0, last))


@register("exponential")
@dataclass(frozen=True, repr=False)
class Exponential(Schedule):
    """Multiply by ``gamma`` every step, forever or until ``steps`` (torch's ExponentialLR).

    formula: gamma ** min(t, steps if steps is not None else t)

    A ``gamma > 1`` grows and needs ``steps``: ``exponential(1.01, steps=500)``.

    >>> exponential(0.5)(3)
    0.125
    """

    gamma: float = 0.99
    steps: Length | None = length_field()

    def __post_init__(self):
        _gamma(self)
        _length(self, "steps")
        _growth(self, 1)

    _positional = _leading("gamma")

    def __call__(self, t: float) -> float:
        if self.steps is not None:
            t = min(t, self.needs(self.steps))
        return self.gamma**t

    def bounds(self):
        return _grown(self.gamma, self.steps, self.steps)


@register("inverse_sqrt")
@dataclass(frozen=True, repr=False)
class InverseSqrt(Schedule):
    """Decay as one over the square root of time, forever; 1.0 at step 0.

    formula: 1 / sqrt(1 + t / timescale)

    ``warmup(w) >> inverse_sqrt(w)`` is the Noam / T5 schedule, ``min(t / w, sqrt(w / t))``.

    >>> (warmup(100) >> inverse_sqrt(100))(400)
    0.5
    """

    timescale: Length = length_field(MISSING)

    def __post_init__(self):
        _length(self, "timescale", required=True)

    _positional = _leading("timescale")

    def __call__(self, t: float) -> float:
        return 1.0 / math.sqrt(1.0 + t / self.needs(self.timescale, "timescale"))

    def bounds(self):
        return (0.0, 1.0)


constant = Constant
linear = Linear
warmup = Warmup
cosine = Cosine
polynomial = Polynomial
step = Step
multistep = MultiStep
exponential = Exponential
inverse_sqrt = InverseSqrt
