"""The settings of a space besides its schedules: ``lr``, ``optimizer``, ``weight_decay``,
``batch_size``, each a value or a range, checked as a :class:`~lrkit.tune.config.Config` checks
it (an optimizer among sgd, adam, adamw, the lr-free prodigy and dadapt-adam, the
schedule-free schedulefree-adamw and schedulefree-sgd, or none, the task's own; weight decay
>= 0; batch size a whole number >= 1; lr a finite number > 0, always searched on a log scale).
How a trial trains an lr-free or a schedule-free optimizer: :mod:`lrkit.tune.lrfree`.
"""

from __future__ import annotations

import difflib
from typing import Any

from ..checks import check_lr
from ..errors import UserError
from ..schedules import ScheduleSyntaxError
from .braces import choice_at, parse_dim, scan
from .config import OPTIMIZERS, Config
from .ranges import Choice, Dim, Range

__all__ = ["SETTINGS", "setting", "setting_text", "lr_range"]

SETTINGS = ("lr", "optimizer", "weight_decay", "batch_size")


def setting(key: str, value: Any) -> Dim | None:
    """A setting's value as a Dim (None stays None), checked."""
    if value is None or isinstance(value, Range | Choice):
        dim = value
    elif isinstance(value, str):
        dim = setting_text(key, value, 0, len(value))
    elif isinstance(value, list | tuple):
        dim = Choice(tuple(value))
    else:
        dim = Choice((value,))
    if dim is not None:
        _check_setting(key, dim)
    return dim


def _check_setting(key: str, dim: Dim) -> None:
    values = dim.values if isinstance(dim, Choice) else dim.ends()
    if key == "optimizer":
        bad = [v for v in values if v not in (*OPTIMIZERS, None)]
        if isinstance(dim, Range):
            bad = [dim.text()]
        if bad:
            close = difflib.get_close_matches(str(bad[0]), OPTIMIZERS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise UserError(
                f"unknown optimizer {bad[0]!r}{hint}; known: {', '.join(OPTIMIZERS)}, none"
            )
    elif key == "weight_decay":
        for v in values:
            Config(lr=1.0, weight_decay=v)  # its check names the value
        if isinstance(dim, Range) and dim.unit:
            raise UserError(f"weight_decay is a number, not a length: got {dim.text()}")
    elif key == "batch_size":
        if isinstance(dim, Range) and not dim.integer:
            raise UserError(
                f"a batch_size range must be whole numbers: write {{lo..hi int}}, got {dim.text()}"
            )
        for v in values:
            Config(lr=1.0, batch_size=v)


def setting_text(key: str, spec: str, begin: int, end: int) -> Dim | None:
    """A setting's value written at ``spec[begin:end]``: a range, a choice or one value."""
    text = spec[begin:end]
    lead = len(text) - len(text.lstrip())
    start, stop = begin + lead, begin + len(text.rstrip())
    if start == stop:
        raise ScheduleSyntaxError(
            f"{key}= has no value at column {start + 1}; write {key}={{...}} or one value",
            spec,
            start + 1,
        )
    if spec[start] != "{":  # one value: a choice of one
        dim = choice_at(spec, start, stop)
        if key == "optimizer" and dim.values == ("none",):
            return None
        return dim
    spans = scan(spec, start, stop)
    if spans[0][1] != stop or len(spans) != 1:
        col = spans[0][1] + 1
        raise ScheduleSyntaxError(
            f"unexpected text after the range at column {col}; a setting takes one value or range",
            spec,
            col,
        )
    dim = parse_dim(spec, start, stop)
    if key == "optimizer" and isinstance(dim, Choice):
        return Choice(tuple(None if v == "none" else v for v in dim.values), dim.texts)
    return dim


def lr_range(dim: Dim | None) -> tuple[float, float]:
    if isinstance(dim, Choice):
        if not dim.fixed:
            raise UserError(
                f"lr takes a range {{low..high}} (log scale), not a choice {dim.text()}"
            )
        return (dim.values[0], dim.values[0])
    if dim.integer or dim.unit:
        raise UserError(f"lr is a number range {{low..high}}, got {dim.text()}")
    return (check_lr(dim.low, "lr range low"), check_lr(dim.high, "lr range high"))
