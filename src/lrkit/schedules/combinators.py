"""Combinators: the algebra of schedules, new ones made of old, still pure and closed form.

``a >> b`` (sequence), ``a * b`` (product) and ``k * a`` (scale), with the helpers they share. A sequence switches parts at boundaries given in steps, epochs or
fractions of the run; by default each boundary is where the part before it ends (its
``steps``), and one part without a length takes what the others leave of the run. Clip, min,
max, repeat and stretch live in shaping.py.

Past its length a finite schedule holds its last value, so a product (or min, max) of a finite
and an endless schedule is endless: it keeps changing as long as its endless part does. A
static part (a constant, a plateau factor) never changes and leaves the length as it is.

The algebra takes schedules and numbers, never text: text is read one level up
(:func:`lrkit.schedules.as_schedule`, :func:`lrkit.schedules.parse`).
"""

from __future__ import annotations

import dataclasses
from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Any

from ..checks import is_number
from .base import (
    Length,
    Run,
    Schedule,
    check_length,
    check_positive,
    define_operators,
    lengths_field,
    register,
    required,
    short,
)
from .catalogue import Constant


def part(value: Any, what: str = "part") -> Schedule:
    """A Schedule as is; a schedule class with its defaults; a number as ``constant(number)``.

    Anything else is a ValueError (text too: ``as_schedule`` or ``parse`` read it).
    """
    if isinstance(value, Schedule):
        return value
    if isinstance(value, type) and issubclass(value, Schedule):
        return bare(value)  # a bare name, as in the text form: `warmup(10) >> cosine`
    if is_number(value):
        return Constant(check_positive(value, what, zero=True))
    if isinstance(value, str):
        raise ValueError(
            f"{what} must be a schedule or a number, got the text {short(value)}: read text with"
            " lrkit.schedules.as_schedule() or parse()"
        )
    raise ValueError(f"{what} must be a schedule or a number, got {short(value)}")


def bare(cls: type[Schedule]) -> Schedule:
    """``cls`` with its defaults; a ValueError naming what it needs when it has none."""
    missing = [f.name for f in dataclasses.fields(cls) if f.init and required(f)]  # type: ignore[arg-type]
    if missing:
        args = ", ".join(f"{name}=..." for name in missing)
        raise ValueError(f"{cls.name} needs {', '.join(missing)}: write {cls.name}({args})")
    return cls()


def _schedules(values: Any, what: str) -> tuple[Schedule, ...]:
    if not isinstance(values, tuple | list) or not values:
        raise ValueError(f"{what} must be a non-empty list of schedules, got {short(values)}")
    return tuple(part(v, what) for v in values)


@register("seq")
@dataclass(frozen=True, repr=False)
class Sequence(Schedule):
    """Run ``parts`` one after the other; each sees its own local step from 0.

    formula: parts[i](t - starts[i]) where starts[i] <= t < starts[i + 1]

    ``boundaries`` are the steps where parts 2, 3, ... begin (``len(parts) - 1`` of them, in
    increasing order); without them each part runs for its own length.
    """

    parts: tuple[Schedule, ...] = ()
    boundaries: tuple[Length, ...] = lengths_field()
    _starts: tuple[int, ...] | None = field(default=None, init=False, compare=False)

    _varargs = "parts"
    _precedence = 1

    def __post_init__(self):
        parts = _schedules(self.parts, "seq parts")
        object.__setattr__(self, "parts", parts)
        bounds = tuple(check_length(b, "seq boundary") for b in self.boundaries)
        object.__setattr__(self, "boundaries", bounds)
        if bounds and len(bounds) != len(parts) - 1:
            raise ValueError(
                f"seq with {len(parts)} parts needs {len(parts) - 1} boundaries, got {len(bounds)}"
            )
        if bounds:
            ints = [b for b in bounds if isinstance(b, int)]
            if len(ints) == len(bounds):
                _check_increasing(ints)
                object.__setattr__(self, "_starts", (0, *ints))
        else:
            lengths = [p.length for p in parts[:-1]]
            if all(type(n) is int for n in lengths):
                starts = [0]
                for n in lengths:
                    starts.append(starts[-1] + n)
                object.__setattr__(self, "_starts", tuple(starts))

    def __call__(self, t: float) -> float:
        starts = self._starts
        if starts is None:
            self.needs(None, "boundaries")
        i = bisect_right(starts, t) - 1
        return self.parts[i](t - starts[i])

    @property
    def length(self):
        last = self.parts[-1].length
        if self._starts is None or type(last) is not int:
            return None
        return self._starts[-1] + last

    def bounds(self):
        lows, highs = zip(*(p.bounds() for p in self.parts))
        return (min(lows), max(highs))

    @property
    def static(self) -> bool:
        return all(p.static for p in self.parts) and len({p.bounds() for p in self.parts}) == 1

    def ends(self) -> bool:
        return self.parts[-1].ends()

    def _resolve(self, run: Run, rest: int | None) -> Schedule:
        n = len(self.parts)
        if self.boundaries:
            bounds = [run.steps(b, "seq boundary") for b in self.boundaries]
            _check_increasing(bounds)
            spans: list[int | None] = [b - a for a, b in zip([0, *bounds], bounds)]
            spans.append(None if rest is None else rest - bounds[-1])
            if spans[-1] is not None and spans[-1] < 0:
                raise ValueError(
                    f"seq boundary {self.boundaries[-1]!r} (step {bounds[-1]}) lies past the end"
                    f" of the run ({rest} steps)"
                )
            parts = [p._resolve(run, s) for p, s in zip(self.parts, spans)]
        else:
            parts = [p._resolve(run, None) for p in self.parts]
            lengths = [p.length for p in parts]
            open_ = [i for i, n in enumerate(lengths) if n is None]
            if len(open_) > 1 or (open_ and open_[0] != n - 1 and rest is None):
                # name a part that others come after (the last part may run forever)
                i = open_[0] if rest is None or open_[1] == n - 1 else open_[1]
                raise ValueError(
                    f"seq part {i + 1} ({self.parts[i]!r}) has no length, so the parts after it"
                    " cannot start: give it steps=N (or a fraction like '20%'), or give the seq"
                    " boundaries=[...]"
                )
            if open_ and rest is not None:
                i = open_[0]
                span = rest - sum(lengths[:i]) - sum(lengths[i + 1 :])
                if span < 0:
                    raise ValueError(
                        f"the parts of {self!r} with a length take {rest - span} steps, more than"
                        f" the run's {rest}"
                    )
                parts[i] = self.parts[i]._resolve(run, span)
            if any(type(p.length) is not int for p in parts[:-1]):
                # a part that took the rest but has no length field of its own: keep the
                # resolved boundaries explicit so the text form still says where parts begin
                starts = [0]
                for p in parts[:-1]:
                    starts.append(starts[-1] + (p.length if p.length is not None else span))
                return Sequence(tuple(parts), tuple(starts[1:]))
            return Sequence(tuple(parts))
        return Sequence(tuple(parts), tuple(bounds))

    def __repr__(self) -> str:
        nested = any(isinstance(p, Sequence) and not p.boundaries for p in self.parts)
        if self.boundaries or nested or len(self.parts) < 2:  # `>>` would flatten these
            inner = ", ".join(repr(p) for p in self.parts)
            bounds = ", ".join(str(b) for b in self.boundaries)
            return f"seq({inner}, boundaries=[{bounds}])" if bounds else f"seq({inner})"
        return " >> ".join(_wrap(p, 1) for p in self.parts)


class Joint:
    """Length, ending and staticness of a schedule of ``parts`` that all run at the same step
    (a product, min, max): endless when any part is, else the longest part."""

    parts: tuple[Schedule, ...]

    @property
    def length(self):
        return joint_length(self.parts)

    @property
    def static(self) -> bool:
        return all(p.static for p in self.parts)

    def ends(self) -> bool:
        return joint_ends(self.parts)


@register("product")
@dataclass(frozen=True, repr=False)
class Product(Joint, Schedule):
    """The product of several schedules' values at the same step.

    formula: prod(p(t) for p in parts)
    """

    parts: tuple[Schedule, ...] = ()
    _varargs = "parts"
    _precedence = 2

    def __post_init__(self):
        object.__setattr__(self, "parts", _schedules(self.parts, "product parts"))

    def __call__(self, t: float) -> float:
        value = 1.0
        for p in self.parts:
            value *= p(t)
        return value

    def bounds(self):
        lo, hi = 1.0, 1.0
        for p in self.parts:
            a, b = p.bounds()
            lo, hi = lo * a, hi * b if not (hi == 0 or b == 0) else 0.0
        return (lo, hi)

    def __repr__(self) -> str:
        if not _plain_product(self):  # `*` would flatten or merge these parts
            return f"product({', '.join(repr(p) for p in self.parts)})"
        return " * ".join(_wrap(p, 2) for p in self.parts)


@register("scale")
@dataclass(frozen=True, repr=False)
class Scale(Schedule):
    """A schedule multiplied by a constant ``factor``.

    formula: factor * schedule(t)
    """

    schedule: Schedule = field(default_factory=Constant)
    factor: float = 1.0
    _precedence = 2

    def __post_init__(self):
        object.__setattr__(self, "schedule", part(self.schedule, "scale schedule"))
        object.__setattr__(self, "factor", check_positive(self.factor, "scale factor", zero=True))

    def __call__(self, t: float) -> float:
        return self.factor * self.schedule(t)

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
        return (self.factor * lo, self.factor * hi if self.factor else 0.0)

    def __repr__(self) -> str:
        inner = self.schedule
        if isinstance(inner, Scale) or (isinstance(inner, Product) and not _plain_product(inner)):
            return f"scale({inner!r}, {self.factor!r})"  # `*` would merge the factors
        return f"{self.factor!r} * {_wrap(inner, 2)}"


def _check_increasing(bounds: list[int]) -> None:
    prev = 0
    for b in bounds:
        if b <= prev:
            raise ValueError(
                f"seq boundaries must be increasing steps above 0, got {list(bounds)!r}"
            )
        prev = b


def joint_length(parts: tuple[Schedule, ...]) -> int | None:
    """The length of schedules evaluated side by side (product, min, max).

    Each part holds its last value past its length, so the whole stops changing when its
    longest part does, and never when one part never stops (``linear(4) * exponential(0.9)``
    is endless). Static parts without a length (a constant, a plateau) do not count.
    """
    lengths = [p.length for p in parts if not (p.length is None and p.static)]
    if not lengths or any(type(n) is not int for n in lengths):
        return None
    return max(lengths)


def joint_ends(parts: tuple[Schedule, ...]) -> bool:
    """Whether schedules side by side will have a length once resolved (see joint_length)."""
    changing = [p for p in parts if not (p.length is None and p.static)]
    return bool(changing) and all(p.ends() for p in changing)


def _plain_product(p: Product) -> bool:
    """Whether ``a * b * ...`` rebuilds exactly this product (`product` flattens and merges)."""
    return len(p.parts) >= 2 and not any(isinstance(q, Product | Scale) for q in p.parts)


def _wrap(s: Schedule, precedence: int) -> str:
    """``repr(s)``, in parentheses where it binds less tightly than its place needs."""
    own = 3 if isinstance(s, Sequence) and s.boundaries else s._precedence
    return f"({s!r})" if own < precedence else repr(s)


# -- functions that read like the algebra -------------------------------------------------
def sequence(*parts: Any, boundaries: list[Length] | tuple[Length, ...] = ()) -> Schedule:
    """``sequence(a, b, c)`` is ``a >> b >> c``; nested plain sequences are flattened."""
    flat: list[Schedule] = []
    for p in parts:
        s = part(p, "seq part")
        if isinstance(s, Sequence) and not s.boundaries and not boundaries:
            flat.extend(s.parts)
        else:
            flat.append(s)
    return Sequence(tuple(flat), tuple(boundaries))


seq = sequence


def product(*parts: Any) -> Schedule:
    """``product(a, b)`` is ``a * b``; a number makes a ``scale``; nested products flatten."""
    factor = 1.0
    flat: list[Schedule] = []
    for p in parts:
        if is_number(p):
            factor *= check_positive(p, "a factor", zero=True)
            continue
        s = part(p, "product part")
        if isinstance(s, Scale):
            factor *= s.factor
            s = s.schedule
        flat.extend(s.parts if isinstance(s, Product) else (s,))
    if not flat:
        raise ValueError("a product needs at least one schedule")
    inner = flat[0] if len(flat) == 1 else Product(tuple(flat))
    return inner if factor == 1.0 and not any(map(is_number, parts)) else Scale(inner, factor)


def scale(schedule: Any, factor: float) -> Schedule:
    """``scale(s, k)`` is ``k * s``, kept as one node (``k * s`` merges into a product)."""
    return Scale(part(schedule), factor)


define_operators(sequence=sequence, product=product)

__all__ = [
    "Sequence",
    "Product",
    "Scale",
    "sequence",
    "seq",
    "product",
    "scale",
    "part",
    "bare",
    "joint_length",
    "joint_ends",
]
