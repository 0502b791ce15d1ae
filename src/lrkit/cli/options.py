"""The click types of every numeric option, and the shared bounds of the common ones.

Rule: a numeric option is a :class:`FiniteFloat` or a :class:`WholeNumber`, both with bounds.
A value that is not a number, not finite (``nan``, ``inf``, ``1e400``) or out of range is a
usage error: one line ``lrkit: error: --lr must be a finite number in (0, 1000000], got nan``
(exit 2), worded by :mod:`lrkit.checks`. Upper bounds keep values that click would accept from
failing later inside the library or torch (an lr of 1e300 overflows a float32 update; a seed
of 10**30 does not fit torch's generator).
"""

from __future__ import annotations

import re
from typing import Any

import click

from .. import checks

LR_MAX = 1e6  # far above any useful lr, far below float32's 3.4e38
SEED_MAX = 2**32 - 1  # NumPy's legacy seed range; torch takes it too
EPOCHS_MAX = 10**6


class OptionError(click.BadParameter):
    """A bad option value; its message already names the option (no "Invalid value for")."""

    def format_message(self) -> str:
        return self.message


def _option_name(param: click.Parameter | None) -> str:
    if param is None:
        return "value"
    if isinstance(param, click.Option):
        longs = [o for o in param.opts if o.startswith("--")]
        return (longs or param.opts)[0]
    return param.human_readable_name


def _shown(value: Any) -> str:
    """The value as the user typed it: ``1e400`` unquoted, a word quoted, long text cut."""
    text = value if isinstance(value, str) else repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    try:
        float(text)
    except ValueError:
        return repr(text)
    return text


class FiniteFloat(click.FloatRange):
    """A finite float within ``[low, high]`` (open ends where asked); NaN and inf refused."""

    name = "number"

    def __init__(
        self,
        low: float | None = None,
        high: float | None = None,
        *,
        low_open: bool = False,
        high_open: bool = False,
    ) -> None:
        super().__init__(min=low, max=high, min_open=low_open, max_open=high_open)

    def accepted(self) -> str:
        """What is accepted, in words: ``a number in (0, 1000000]``."""
        return checks.describe(self.min, self.max, self.min_open, self.max_open, finite=True)

    def _describe_range(self) -> str:  # the range shown in --help: 0<x<=1000000, not 1000000.0
        return _range(self)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None):
        name = _option_name(param)
        try:
            x = value if checks.is_number(value) else float(str(value).strip())
            return checks.number(
                x, name, low=self.min, high=self.max,
                low_open=self.min_open, high_open=self.max_open,
            )  # fmt: skip
        except (ValueError, OverflowError):
            raise OptionError(
                f"{name} must be {self.accepted()}, got {_shown(value)}", ctx=ctx, param=param
            ) from None


_WHOLE = re.compile(r"[+-]?\d{1,60}")


class WholeNumber(click.IntRange):
    """A whole number within ``[low, high]``; text that is not an integer is refused."""

    name = "integer"

    def __init__(self, low: int | None = None, high: int | None = None) -> None:
        super().__init__(min=low, max=high)

    def accepted(self) -> str:
        """What is accepted, in words: ``a whole number in [1, 1000000]``."""
        low, high = self.min, self.max
        if low is not None and high is not None:
            return f"a whole number in [{low}, {high}]"
        if low is not None:
            return f"a whole number >= {low}"
        return "a whole number" if high is None else f"a whole number <= {high}"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None):
        name = _option_name(param)
        x: int | None = None
        if isinstance(value, int) and not isinstance(value, bool):
            x = value
        elif isinstance(value, str) and _WHOLE.fullmatch(value.strip()):
            x = int(value.strip())
        if x is not None:
            try:
                checks.whole(x, name, least=self.min)
                if self.max is None or x <= self.max:
                    return x
            except ValueError:
                pass
        raise OptionError(
            f"{name} must be {self.accepted()}, got {_shown(value)}", ctx=ctx, param=param
        )


class PathArg(click.Path):
    """A file or folder path that may not be empty (``--logdir "$DIR"`` with ``DIR`` unset
    would otherwise mean the current folder)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None):
        if isinstance(value, str) and not value.strip():
            raise OptionError(f"{_option_name(param)} is empty: give a path", ctx=ctx, param=param)
        return super().convert(value, param, ctx)


def _range(kind: click.types._NumberRangeBase) -> str:
    def shown(x: float) -> str:
        return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else f"{x:g}"

    low = "" if kind.min is None else f"{shown(kind.min)}{'<' if kind.min_open else '<='}"
    high = "" if kind.max is None else f"{'<' if kind.max_open else '<='}{shown(kind.max)}"
    return f"{low}x{high}"


def lr_type() -> FiniteFloat:
    """A learning rate: a finite number in (0, LR_MAX]."""
    return FiniteFloat(0, LR_MAX, low_open=True)


def seed_type() -> WholeNumber:
    """A seed: a whole number in [0, SEED_MAX]."""
    return WholeNumber(0, SEED_MAX)


def epochs_type() -> WholeNumber:
    """A number of epochs: a whole number in [1, EPOCHS_MAX]."""
    return WholeNumber(1, EPOCHS_MAX)


def is_numeric(param: click.Parameter) -> bool:
    """True for a parameter whose value is a number (any click int or float type)."""
    return isinstance(param.type, click.types.IntParamType | click.types.FloatParamType)


__all__ = [
    "FiniteFloat",
    "WholeNumber",
    "OptionError",
    "LR_MAX",
    "SEED_MAX",
    "EPOCHS_MAX",
    "lr_type",
    "seed_type",
    "epochs_type",
    "is_numeric",
]
