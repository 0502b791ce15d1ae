"""Piecewise schedules: a table of steps and values, held constant or joined by straight lines.

``piecewise_constant`` holds each value from its boundary on; ``piecewise_linear`` draws
straight lines through ``(step, value)`` points. Same conventions as catalogue.py.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import MISSING, dataclass, field

from .base import Length, Run, Schedule, check_length, check_positive, lengths_field, register
from .fields import _increasing, _leading, _milestones, _set


@register("piecewise_constant")
@dataclass(frozen=True, repr=False)
class PiecewiseConstant(Schedule):
    """``values[0]`` until the first boundary, ``values[i]`` from boundary ``i``.

    formula: values[sum(t >= b for b in boundaries)]

    >>> piecewise_constant([10, 20], [1.0, 0.1, 0.01])(15)
    0.1
    """

    boundaries: tuple[Length, ...] = lengths_field(MISSING)
    values: tuple[float, ...] = field(default=MISSING)  # type: ignore[assignment]

    def __post_init__(self):
        _milestones(self, "boundaries")
        n = len(self.boundaries) + 1
        if not isinstance(self.values, tuple | list) or len(self.values) != n:
            raise ValueError(
                f"piecewise_constant needs one value more than boundaries ({n}),"
                f" got values={self.values!r}"
            )
        values = tuple(check_positive(v, f"{self.name} value", zero=True) for v in self.values)
        _set(self, "values", values)

    _positional = _leading("boundaries", "values")

    def __call__(self, t: float) -> float:
        bs = [self.needs(b, "boundaries") for b in self.boundaries]
        return self.values[bisect_right(bs, t)]

    @property
    def length(self):
        return self.boundaries[-1]

    def bounds(self):
        return (min(self.values), max(self.values))


@register("piecewise_linear")
@dataclass(frozen=True, repr=False)
class PiecewiseLinear(Schedule):
    """Straight lines through ``points``, ``(step, value)`` pairs with increasing steps.

    formula: v0 + (v1 - v0) * min(max(t - s0, 0), s1 - s0) / (s1 - s0)
    where: k = min(max(sum(s <= t for s, _ in points), 1), len(points) - 1)
    where: (s0, v0), (s1, v1) = points[k - 1], points[k]

    Before the first point it holds the first value, after the last the last value.
    Steps may be lengths like ``'50%'`` of the run:

    >>> piecewise_linear([[0, 0], ['10%', 1], ['100%', 0]]).resolve(total_steps=1000)(550)
    0.5
    """

    points: tuple[tuple[Length, float], ...] = field(default=MISSING)  # type: ignore[assignment]

    def __post_init__(self):
        pts = self.points
        if (
            not isinstance(pts, tuple | list)
            or len(pts) < 2
            or not all(isinstance(p, tuple | list) and len(p) == 2 for p in pts)
        ):
            raise ValueError(
                "piecewise_linear points must be a list of at least two [step, value] pairs,"
                f" got {pts!r}"
            )
        pts = tuple(
            (
                check_length(s, "piecewise_linear step", zero=True),
                check_positive(v, "piecewise_linear value", zero=True),
            )
            for s, v in pts
        )
        _set(self, "points", pts)
        _increasing(self, "points' steps", tuple(s for s, _ in pts))

    _positional = _leading("points")

    def _resolve(self, run: Run, rest: int | None) -> Schedule:
        return PiecewiseLinear(
            tuple((run.steps(s, "piecewise_linear step"), v) for s, v in self.points)
        )

    def __call__(self, t: float) -> float:
        steps = [self.needs(s, "points' steps") for s, _ in self.points]
        k = min(max(bisect_right(steps, t), 1), len(steps) - 1)
        (s0, v0), (s1, v1) = self.points[k - 1], self.points[k]
        u = min(max(t - s0, 0), s1 - s0) / (s1 - s0)
        return (1.0 - u) * v0 + u * v1  # exactly v0 and v1 at the points

    @property
    def length(self):
        return self.points[-1][0]

    def bounds(self):
        values = [v for _, v in self.points]
        return (min(values), max(values))


piecewise_constant = PiecewiseConstant
piecewise_linear = PiecewiseLinear
