"""Schedules in phases and cycles: warmup-stable-decay, cosine with warm restarts, cyclical
(CLR) and one-cycle, and the momentum that cycles against the last two.

Same conventions as catalogue.py. ``cyclical`` and ``one_cycle`` have a method
``.momentum(low, high)`` that returns a :class:`CycleMomentum`: a schedule of *absolute*
momentum (or Adam's beta1) values that falls while the learning rate rises, computed from the
same phase, for the driver's momentum schedule.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, dataclass, field

from .base import Length, Schedule, check_choice, check_whole, length_field, register, short
from .fields import _between, _gamma, _leading, _length, _number, _set

_COOLDOWNS = ("linear", "cosine", "1-sqrt")
_MOST_MULT = 10**6  # cycles growing faster than this would pass MAX_STEPS in two restarts


@register("wsd")
@dataclass(frozen=True, repr=False)
class WSD(Schedule):
    """Warmup-stable-decay: rise over ``warmup``, hold 1.0, cool down to ``to`` over ``decay``.

    formula: t / warmup if t < warmup else to + (1 - to) * c
    where: u = min(max(t - (steps - decay), 0) / decay, 1)
    where: c = 1 - u if cooldown == 'linear' else (1 + cos(pi * u)) / 2 if cooldown == 'cosine' else 1 - sqrt(u)

    The decay takes the last ``decay`` of the ``steps`` (a fraction like ``'20%'`` is of the
    run, as everywhere). ``cooldown='1-sqrt'`` is the shape of Hägele et al. (2024).

    >>> s = wsd(decay='20%').resolve(total_steps=1000)
    >>> s, s(500), s(900)
    (wsd(1000, decay=200), 1.0, 0.5)
    """

    steps: Length | None = length_field(rest=True)
    warmup: Length = length_field(0, zero=True)
    decay: Length = length_field("20%")
    cooldown: str = "linear"
    to: float = 0.0

    def __post_init__(self):
        _length(self, "steps")
        _length(self, "warmup", zero=True, required=True)
        _length(self, "decay", required=True)
        check_choice(self.cooldown, f"{self.name} cooldown", _COOLDOWNS)
        _number(self, "to")
        n, w, d = self.steps, self.warmup, self.decay
        if all(type(x) is int for x in (n, w, d)) and w + d > n:
            raise ValueError(
                f"wsd warmup ({w}) + decay ({d}) must fit in its {n} steps; give fewer"
                " warmup/decay steps or more steps"
            )

    _positional = _leading("steps")

    def __call__(self, t: float) -> float:
        w = self.needs(self.warmup, "warmup")
        if t < w:
            return t / w
        d = self.needs(self.decay, "decay")
        cool_from = self.needs(self.steps) - d
        if t <= cool_from:
            return 1.0
        u = min((t - cool_from) / d, 1.0)
        if self.cooldown == "linear":
            c = 1.0 - u
        elif self.cooldown == "cosine":
            c = (1.0 + math.cos(math.pi * u)) / 2.0
        else:
            c = 1.0 - math.sqrt(u)
        return self.to + (1.0 - self.to) * c

    def bounds(self):
        return (min(self.to, 1.0, 0.0 if self.warmup else 1.0), max(self.to, 1.0))


@register("cosine_restarts")
@dataclass(frozen=True, repr=False)
class CosineRestarts(Schedule):
    """Cosine from 1.0 down to ``to``, restarted; cycle ``i`` lasts ``period * mult ** i`` steps.

    formula: to + (1 - to) * decay ** i * (1 + cos(pi * (t - t0) / (period * mult ** i))) / 2
    where: i = floor(t / period) if mult == 1 else max(k for k in range(64) if period * (mult ** k - 1) // (mult - 1) <= t)
    where: t0 = i * period if mult == 1 else period * (mult ** i - 1) // (mult - 1)

    The height above ``to`` is multiplied by ``decay`` at each restart (so with ``to=0`` the
    peak is). torch's CosineAnnealingWarmRestarts(T_0=period, T_mult=mult, eta_min=to).

    >>> [cosine_restarts(10, mult=2)(t) for t in (0, 5, 10, 20, 30)]
    [1.0, 0.5, 1.0, 0.5, 1.0]
    """

    period: Length = length_field(MISSING)
    mult: int = 1
    decay: float = 1.0
    to: float = 0.0

    def __post_init__(self):
        _length(self, "period", required=True)
        _set(self, "mult", check_whole(self.mult, f"{self.name} mult", least=1))
        if self.mult > _MOST_MULT:
            raise ValueError(
                f"{self.name} mult must be at most {_MOST_MULT:,}, got {short(self.mult)}"
            )
        _gamma(self, "decay", at_most_one=True)
        _number(self, "to")

    _positional = _leading("period")

    def cycle(self, t: float) -> tuple[int, int, int]:
        """(index, first step, length) of the cycle that step ``t`` is in."""
        p, m = self.needs(self.period, "period"), self.mult
        if m == 1:
            i = math.floor(t / p)
            return i, i * p, p
        i = math.floor(math.log(1 + t * (m - 1) / p, m))
        # the logarithm may be off by one at a cycle's first step; whole numbers settle it
        while i > 0 and p * (m**i - 1) // (m - 1) > t:
            i -= 1
        while p * (m ** (i + 1) - 1) // (m - 1) <= t:
            i += 1
        return i, p * (m**i - 1) // (m - 1), p * m**i

    def __call__(self, t: float) -> float:
        i, t0, ti = self.cycle(t)
        height = (1.0 - self.to) * self.decay**i
        return self.to + height * (1.0 + math.cos(math.pi * (t - t0) / ti)) / 2.0

    def bounds(self):
        return _between(self.to, 1.0)


_MODES = ("triangular", "triangular2", "exp_range")


@register("cyclical")
@dataclass(frozen=True, repr=False)
class Cyclical(Schedule):
    """Triangles between ``low`` and ``high``: up over ``up`` steps, down over ``down``, forever.

    formula: low + (high - low) * (x / r if x <= r else (x - 1) / (r - 1)) * scale
    where: c = up + (up if down is None else down); r = up / c; x = t / c - floor(t / c)
    where: scale = 1 if mode == 'triangular' else 0.5 ** floor(t / c) if mode == 'triangular2' else gamma ** t

    ``triangular2`` halves the height every cycle, ``exp_range`` multiplies it by ``gamma``
    every step. torch's CyclicLR(base_lr=low, max_lr=high, step_size_up=up, ...).

    >>> [round(cyclical(10, low=0.2)(t), 6) for t in (0, 5, 10, 20)]
    [0.2, 0.6, 1.0, 0.2]
    """

    up: Length = length_field(MISSING)
    down: Length | None = length_field()
    low: float = 0.1
    high: float = 1.0
    mode: str = "triangular"
    gamma: float = 1.0

    def __post_init__(self):
        _length(self, "up", required=True)
        _length(self, "down")
        _number(self, "low", "high")
        if self.low > self.high:
            raise ValueError(f"cyclical low ({self.low!r}) must be <= high ({self.high!r})")
        check_choice(self.mode, f"{self.name} mode", _MODES)
        _gamma(self, at_most_one=True)

    _positional = _leading("up", "down")

    def _phase(self, t: float) -> tuple[float, float]:
        """(place in the triangle 0..1..0, the cycle's scale), as torch computes them."""
        up = float(self.needs(self.up, "up"))
        down = up if self.down is None else float(self.needs(self.down, "down"))
        total = up + down
        ratio = up / total
        cycle = math.floor(1 + t / total)
        x = 1.0 + t / total - cycle
        rise = x / ratio if x <= ratio else (x - 1) / (ratio - 1)
        if self.mode == "triangular":
            return rise, 1.0
        if self.mode == "triangular2":
            return rise, 0.5 ** (cycle - 1)  # torch: 1 / 2.0 ** (cycle - 1), which overflows
        return rise, self.gamma**t

    def height(self, t: float) -> float:
        """Where step ``t`` is between the lowest (0) and highest (1) value."""
        rise, scale = self._phase(t)
        return rise * scale

    def __call__(self, t: float) -> float:
        rise, scale = self._phase(t)
        return self.low + (self.high - self.low) * rise * scale

    def bounds(self):
        return (self.low, self.high)

    def momentum(self, low: float = 0.8, high: float = 0.9) -> CycleMomentum:
        """Momentum cycling the other way, from ``high`` down to ``low`` at the lr's peak."""
        return CycleMomentum(self, low, high)


_ANNEALS = ("cos", "linear")


@register("one_cycle")
@dataclass(frozen=True, repr=False)
class OneCycle(Schedule):
    """One cycle: up from ``1/div`` to 1.0 until ``peak_at`` of the steps, then down to
    ``1/div/final_div`` (with ``three_phase``: back to ``1/div``, then down).

    formula: e + (s - e) * ((1 + cos(pi * pct)) / 2 if anneal == 'cos' else 1 - pct)
    where: ends = [peak_at * steps - 1] + ([2 * peak_at * steps - 2] if three_phase else []) + [steps - 1]
    where: levels = [1 / div, 1.0] + ([1 / div] if three_phase else []) + [1 / div / final_div]
    where: u = min(t, steps - 1); i = min(sum(u > x for x in ends), len(ends) - 1)
    where: b = ends[i - 1] if i else 0.0; pct = (u - b) / (ends[i] - b); s, e = levels[i], levels[i + 1]

    As in torch's OneCycleLR (max_lr=1, pct_start=peak_at, div_factor=div,
    final_div_factor=final_div), the last step of the run, ``steps - 1``, has the final value.
    ``.momentum(0.85, 0.95)`` is the momentum that goes the other way.

    >>> s = one_cycle(1000)
    >>> s(0), s(299), s(999)
    (0.04, 1.0, 4e-06)
    """

    steps: Length | None = length_field(rest=True)
    peak_at: float = 0.3
    div: float = 25.0
    final_div: float = 1e4
    anneal: str = "cos"
    three_phase: bool = False

    def __post_init__(self):
        _length(self, "steps")
        _number(self, "div", "final_div", zero=False)
        check_choice(self.anneal, f"{self.name} anneal", _ANNEALS)
        if not isinstance(self.three_phase, bool):
            raise ValueError(
                f"one_cycle three_phase must be true or false, got {self.three_phase!r}"
            )
        _number(self, "peak_at")
        most = 0.5 if self.three_phase else 1.0
        if self.peak_at > most:
            raise ValueError(
                f"one_cycle peak_at must be a fraction of the steps from 0 to {most}"
                f"{' with three_phase' if self.three_phase else ''}, got {self.peak_at!r}"
            )

    _positional = _leading("steps")

    def _phase(self, t: float) -> tuple[int, float]:
        """(phase index, progress 0..1 through it); the phases end where torch's do."""
        n = self.needs(self.steps)
        t = min(t, n - 1)
        peak = float(self.peak_at * n) - 1
        ends = (peak, float(2 * self.peak_at * n) - 2, n - 1) if self.three_phase else (peak, n - 1)
        begin = 0.0
        for i, end in enumerate(ends):
            if t <= end or i == len(ends) - 1:
                span = end - begin
                return i, ((t - begin) / span if span > 0 else 1.0)
            begin = end
        raise AssertionError("unreachable")  # pragma: no cover

    def _remaining(self, pct: float) -> float:
        """How much of the phase's change is still to come: 1 at its start, 0 at its end."""
        if self.anneal == "cos":
            return (math.cos(math.pi * pct) + 1) / 2.0
        return 1.0 - pct

    def levels(self) -> tuple[float, ...]:
        """The values at the phases' ends: first, peak, (back to first,) last."""
        first = 1.0 / self.div
        middle = (first,) if self.three_phase else ()
        return (first, 1.0, *middle, first / self.final_div)

    def __call__(self, t: float) -> float:
        i, pct = self._phase(t)
        start, end = self.levels()[i : i + 2]
        r = self._remaining(pct)
        return start * r + end * (1.0 - r)  # exactly start and end at the ends

    def height(self, t: float) -> float:
        """How far the momentum is pulled down: 0 at the start, 1 at the lr's peak, 0 after."""
        i, pct = self._phase(t)
        if i == 0:
            return 1.0 - self._remaining(pct)
        return self._remaining(pct) if i == 1 else 0.0

    def bounds(self):
        levels = self.levels()
        return (min(levels), max(levels))

    def momentum(self, low: float = 0.85, high: float = 0.95) -> CycleMomentum:
        """Momentum going the other way: ``high`` down to ``low`` at the peak, back to ``high``."""
        return CycleMomentum(self, low, high)


@register("cycle_momentum")
@dataclass(frozen=True, repr=False)
class CycleMomentum(Schedule):
    """Absolute momentum (or beta1) values cycling against a ``one_cycle`` or ``cyclical``.

    formula: high - (high - low) * schedule.height(t)

    Made by ``one_cycle(...).momentum(low, high)``; values are not multipliers.

    >>> m = one_cycle(1000).momentum(low=0.85, high=0.95)
    >>> m(0), m(299), m(999)
    (0.95, 0.85, 0.95)
    """

    schedule: Schedule = field(default_factory=lambda: OneCycle())
    low: float = 0.85
    high: float = 0.95

    def __post_init__(self):
        if not isinstance(self.schedule, OneCycle | Cyclical):
            raise ValueError(
                f"cycle_momentum needs a one_cycle or cyclical schedule, got {self.schedule!r}"
            )
        _number(self, "low", "high")
        if not self.low <= self.high < 1:
            raise ValueError(
                "cycle_momentum needs 0 <= low <= high < 1 (momentum values are absolute),"
                f" got low={self.low!r}, high={self.high!r}"
            )

    _positional = _leading("schedule")

    def __call__(self, t: float) -> float:
        return self.high - (self.high - self.low) * self.schedule.height(t)

    @property
    def length(self):
        return self.schedule.length

    def ends(self) -> bool:
        return self.schedule.ends()

    def bounds(self):
        return (self.low, self.high)


wsd = WSD
cosine_restarts = CosineRestarts
cyclical = Cyclical
one_cycle = OneCycle
cycle_momentum = CycleMomentum
