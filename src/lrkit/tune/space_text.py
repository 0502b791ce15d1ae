"""The text form of a :class:`~lrkit.tune.space.Space` (described in :mod:`lrkit.tune.space`)
read into its parts: the settings before ``;`` and the schedule families between ``|``, every
error a :class:`~lrkit.schedules.ScheduleSyntaxError` at its column.
"""

from __future__ import annotations

import difflib
import re
from typing import Any

from ..errors import UserError
from ..schedules import ScheduleSyntaxError
from .families import Family, read_family, top_level
from .settings import SETTINGS, lr_range, setting, setting_text


def read_space(text: str) -> tuple[str, dict[str, Any]]:
    """``(schedule text, settings)`` of a space's ``text``: what :class:`Space` takes."""
    if not isinstance(text, str):
        raise UserError(f"a space text must be a str, got {type(text).__name__}")
    if not text.strip():
        raise ScheduleSyntaxError(
            "empty space at column 1; expected a schedule such as 'warmup({0..10%}) >> cosine'",
            text,
            1,
        )
    bounds = [-1, *top_level(text, 0, len(text), ";"), len(text)]
    settings: dict[str, Any] = {}
    schedules: list[tuple[int, int]] = []
    for a, b in zip(bounds, bounds[1:]):
        a += 1
        m = re.match(r"\s*([A-Za-z_]\w*)\s*=(?!=)", text[a:b])
        if m is None:
            if text[a:b].strip() or len(bounds) == 2:
                schedules.append((a, b))
            continue
        key, col = m.group(1), a + m.start(1) + 1
        if key not in SETTINGS:
            close = difflib.get_close_matches(key, SETTINGS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ScheduleSyntaxError(
                f"unknown setting {key!r} at column {col}{hint}; settings: {', '.join(SETTINGS)}",
                text,
                col,
            )
        if key in settings:
            raise ScheduleSyntaxError(f"setting {key!r} given twice at column {col}", text, col)
        value_at = a + m.end()
        dim = setting_text(key, text, value_at, b)
        try:
            settings[key] = lr_range(dim) if key == "lr" else setting(key, dim)
        except ValueError as e:
            col = value_at + len(text[value_at:b]) - len(text[value_at:b].lstrip()) + 1
            raise ScheduleSyntaxError(f"invalid {key} at column {col}: {e}", text, col) from None
    if not schedules:
        raise ScheduleSyntaxError(
            f"the space has no schedule at column {len(text) + 1}; add one after the settings,"
            " e.g. '; warmup({0..10%}) >> cosine'",
            text,
            len(text) + 1,
        )
    if len(schedules) > 1:
        col = schedules[1][0] + 1
        raise ScheduleSyntaxError(
            f"a second schedule part at column {col}; separate alternatives with '|', not ';'",
            text,
            col,
        )
    a, b = schedules[0]
    read_families(text, a, b, set())  # errors point into the whole text
    return text[a:b], settings


def read_families(text: str, begin: int, end: int, taken: set[str]) -> list[Family]:
    """The families of the ``|`` alternatives in ``text[begin:end]`` (names unique in ``taken``)."""
    bounds = [begin - 1, *top_level(text, begin, end, "|"), end]
    families = []
    for a, b in zip(bounds, bounds[1:]):
        a += 1
        while a < b and text[a].isspace():
            a += 1
        while b > a and text[b - 1].isspace():
            b -= 1
        if a == b:
            if len(bounds) == 2:
                raise ScheduleSyntaxError(
                    f"empty space at column {a + 1}; expected a schedule such as"
                    " 'warmup({0..10%}) >> cosine'",
                    text,
                    a + 1,
                )
            raise ScheduleSyntaxError(
                f"an empty alternative at column {a + 1}; expected a schedule between the '|'",
                text,
                a + 1,
            )
        families.append(read_family(text, a, b, taken))
    return families
