"""Ranges in a space's text form: what one ``{...}`` stands for.

A range is written where the schedule text form takes a value::

    {lo..hi}          uniform between lo and hi
    {lo..hi log}      log scale (lo > 0)
    {lo..hi int}      whole numbers (``int log`` too)
    {lo..hi%}         a fraction of the run, written in percent ({0..10%}: 0 to 0.1 of it)
    {lo..hi ep}       epochs
    {a, b, c}         a choice: numbers, 5%, 2ep, bare names, 'text', true/false/none

:class:`Range` and :class:`Choice` are the two kinds (a :data:`Dim`); each samples itself through
an ``optuna.Trial`` (a ``%`` range's param is the fraction, 0.05 for 5%), writes a sampled value
back in the schedule text form, and gives a few points for a grid. Reading them from a text is
in braces.py.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ..checks import is_number, number, whole
from ..errors import UserError

__all__ = ["Range", "Choice", "Dim", "written", "compact", "same"]

UNITS = ("", "%", "ep")


def _plain(x: float) -> str:
    """A number as short text; no exponent (lengths like ``5%`` and ``2ep`` do not read one)."""
    if float(x).is_integer() and abs(x) < 1e15:
        return str(int(x))
    text = repr(float(x))
    if "e" in text:
        text = format(Decimal(text), "f").rstrip("0").rstrip(".")
    return text


def _exact(x: float) -> str:
    """A number as the shortest text that reads back exactly (exponent allowed)."""
    if float(x).is_integer() and abs(x) < 1e15:
        return str(int(x))
    return repr(float(x))


def written(value: float, unit: str = "") -> str:
    """``value`` (in the unit's own scale: percent for ``%``) as the schedule text form writes it."""
    return (_plain(value) if unit else _exact(value)) + unit


def compact(value: float, low: float, high: float) -> float:
    """``value`` rounded to 4 significant digits, unless that leaves ``[low, high]``."""
    if value == 0 or not math.isfinite(value):
        return value
    rounded = float(f"{value:.4g}")
    return rounded if low <= rounded <= high else value


@dataclass(frozen=True)
class Range:
    """An interval ``[low, high]`` (in the unit as written: percent for ``%``), uniform or
    ``log``, of reals or ``integer`` values. ``low == high`` is one fixed value."""

    low: float
    high: float
    log: bool = False
    integer: bool = False
    unit: str = ""

    def __post_init__(self) -> None:
        if self.unit not in UNITS:
            raise UserError(f"range unit must be one of '', '%', 'ep'; got {self.unit!r}")
        try:
            lo = number(self.low, "range low", finite=True)
            hi = number(self.high, "range high", finite=True)
        except ValueError as e:
            raise UserError(str(e)) from None
        if lo > hi:
            raise UserError(
                f"range low {_exact(lo)} > high {_exact(hi)}; write the low end first:"
                f" {{{_exact(hi)}..{_exact(lo)}{self.unit}}}"
            )
        if self.log and lo <= 0:
            raise UserError(f"a log range needs a low end > 0, got {_exact(lo)}")
        if self.integer:
            if self.unit == "%":
                raise UserError("an int range cannot be in %; write {1..10} for whole steps")
            try:
                lo, hi = (
                    float(whole(v, "an int range's end", least=None))
                    for v in (_integral(self.low), _integral(self.high))
                )
            except ValueError as e:
                raise UserError(str(e)) from None
        if self.unit and lo < 0:
            raise UserError(f"a {self.unit} range needs a low end >= 0, got {_exact(lo)}")
        if self.unit == "%" and hi > 100:
            raise UserError(f"a % range is of the run: at most 100%, got {_plain(hi)}%")
        object.__setattr__(self, "low", int(lo) if self.integer else lo)
        object.__setattr__(self, "high", int(hi) if self.integer else hi)

    @property
    def scale(self) -> float:
        """The param value per written unit: 0.01 for ``%`` (a param is the fraction), else 1."""
        return 0.01 if self.unit == "%" else 1.0

    @property
    def fixed(self) -> bool:
        return self.low == self.high

    def ends(self) -> tuple[Any, Any]:
        """The lowest and highest param values."""
        if self.integer:
            return int(self.low), int(self.high)
        return self.low * self.scale, self.high * self.scale

    def suggest(self, trial: Any, name: str) -> Any:
        """Sample the param ``name`` (``suggest_int``/``suggest_float``, log where asked)."""
        lo, hi = self.ends()
        if self.fixed:
            return lo
        if self.integer:
            return trial.suggest_int(name, lo, hi, log=self.log)
        return trial.suggest_float(name, lo, hi, log=self.log)

    def contains(self, value: Any) -> bool:
        lo, hi = self.ends()
        return is_number(value) and lo <= value <= hi and (not self.integer or value == int(value))

    def write(self, value: Any) -> str:
        """A param value in the schedule text form: ``0.05`` of a ``%`` range is ``5%``."""
        if self.integer:
            return f"{int(value)}{self.unit}"
        for end in (self.low, self.high):  # an end as written
            if math.isclose(value, end * self.scale, rel_tol=1e-12, abs_tol=1e-300):
                return written(end, self.unit)
        return written(compact(value / self.scale, self.low, self.high), self.unit)

    def grid(self, points: int) -> list[Any]:
        """``points`` values from low to high (evenly in log for a log range), distinct."""
        lo, hi = self.ends()
        if self.fixed or points == 1:
            return [lo] if self.fixed else [self._mid(lo, hi)]
        if self.log:
            values = [lo * (hi / lo) ** (i / (points - 1)) for i in range(points)]
        else:
            values = [lo + (hi - lo) * i / (points - 1) for i in range(points)]
        values[0], values[-1] = lo, hi
        if self.integer:
            return sorted({int(round(v)) for v in values})
        return [compact(v, lo, hi) for v in values]

    def _mid(self, lo: float, hi: float) -> Any:
        mid = math.sqrt(lo * hi) if self.log else (lo + hi) / 2
        return int(round(mid)) if self.integer else compact(mid, lo, hi)

    def text(self) -> str:
        opts = " ".join(o for o, on in (("int", self.integer), ("log", self.log)) if on)
        lo, hi = (written(v) if not self.unit else _plain(v) for v in (self.low, self.high))
        return f"{{{lo}..{hi}{self.unit}{' ' + opts if opts else ''}}}"

    def size(self) -> float:
        """How many values: ``hi - lo + 1`` for ints, 1 when fixed, else infinite."""
        if self.fixed:
            return 1
        return int(self.high) - int(self.low) + 1 if self.integer else math.inf


def _integral(x: Any) -> Any:
    return int(x) if isinstance(x, float) and x.is_integer() else x


@dataclass(frozen=True)
class Choice:
    """One of ``values`` (numbers, names, booleans or None: what Optuna's categorical takes);
    ``texts`` is how each is written in the schedule text form (derived when not given)."""

    values: tuple
    texts: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        values = tuple(self.values) if isinstance(self.values, list | tuple) else None
        if not values:
            raise UserError(f"a choice needs at least one value, got {self.values!r}")
        for v in values:
            if v is not None and not isinstance(v, str | bool) and not is_number(v):
                raise UserError(f"a choice's values must be numbers or names, got {v!r}")
            if is_number(v) and not math.isfinite(v):
                raise UserError(f"a choice's numbers must be finite, got {v!r}")
        seen = [v for i, v in enumerate(values) if v in values[:i]]
        if seen:
            raise UserError(f"a choice lists {seen[0]!r} twice; give each value once")
        texts = tuple(self.texts) or tuple(_write_value(v) for v in values)
        if len(texts) != len(values):
            raise UserError("a choice needs one text per value")
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "texts", texts)

    @property
    def fixed(self) -> bool:
        return len(self.values) == 1

    def suggest(self, trial: Any, name: str) -> Any:
        if self.fixed:
            return self.values[0]
        return trial.suggest_categorical(name, list(self.values))

    def contains(self, value: Any) -> bool:
        return any(same(value, v) for v in self.values)

    def write(self, value: Any) -> str:
        for v, text in zip(self.values, self.texts):
            if same(value, v):
                return text
        raise UserError(f"{value!r} is not one of the choice {self.text()}")

    def grid(self, points: int) -> list[Any]:
        return list(self.values)

    def text(self) -> str:
        return "{" + ", ".join(self.texts) + "}"

    def size(self) -> float:
        return len(self.values)


def same(a: Any, b: Any) -> bool:
    """Equal values of one kind (``True`` is not ``1`` here; ``1`` is ``1.0``)."""
    return type(a) is type(b) and a == b or (is_number(a) and is_number(b) and a == b)


def _write_value(v: Any) -> str:
    if v is None or isinstance(v, bool):
        return {None: "none", True: "true", False: "false"}[v]
    if isinstance(v, str):
        return v if re.fullmatch(r"[A-Za-z_][\w-]*", v) else repr(v)
    return _exact(v)


Dim = Range | Choice
