"""Reading the braces of a space's text form: where each ``{...}`` stands, and what it says.

:func:`scan` finds the ranges of a text (outside quotes), refusing nested and unbalanced
braces; :func:`parse_dim` reads one into a :class:`~lrkit.tune.ranges.Range` or a
:class:`~lrkit.tune.ranges.Choice`. Errors are :class:`~lrkit.schedules.ScheduleSyntaxError`
at the column of the bad character of the whole text.
"""

from __future__ import annotations

import difflib
import math
import re
from typing import Any

from ..schedules import ScheduleSyntaxError
from .ranges import Choice, Dim, Range, same

__all__ = ["scan", "parse_dim", "choice_at"]

_NUM = r"-?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|inf|nan)"
_VALUE = re.compile(rf"({_NUM})(?:\s*(%)|\s*(ep(?:ochs?)?))?")
_ITEM = re.compile(rf"({_NUM})(?:\s*(%)|\s*(ep(?:ochs?)?))?(?![\w.])")
_NAME = re.compile(r"[A-Za-z_][\w-]*")
_STRING = re.compile(r"""'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*\"""")
_WORDS = {"true": True, "false": False, "none": None}
_OPTIONS = ("log", "int")


def _unit(text: str | None) -> str:
    return "" if not text else "%" if text == "%" else "ep"


def _fail(spec: str, col: int, before: str, after: str = "") -> ScheduleSyntaxError:
    return ScheduleSyntaxError(f"{before} at column {col}{after}", spec, col)


def scan(spec: str, begin: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """The ``(start, stop)`` indices of each ``{...}`` in ``spec[begin:end]`` (outside quotes).

    Nested and unbalanced braces are refused at their column.
    """
    end = len(spec) if end is None else end
    spans, opened, i = [], None, begin
    while i < end:
        char = spec[i]
        if char in "'\"":
            m = _STRING.match(spec, i)
            if m is None or m.end() > end:
                break  # the schedule parser reports the unterminated string
            i = m.end()
            continue
        if char == "{":
            if opened is not None:
                raise _fail(
                    spec, i + 1, "a brace inside a range", "; ranges do not nest: {0..1} or {a, b}"
                )
            opened = i
        elif char == "}":
            if opened is None:
                raise _fail(spec, i + 1, "unbalanced braces: '}'", " has no matching '{'")
            spans.append((opened, i + 1))
            opened = None
        i += 1
    if opened is not None:
        raise _fail(spec, opened + 1, "unbalanced braces: '{'", " is never closed; expected '}'")
    return spans


def parse_dim(spec: str, start: int, stop: int) -> Dim:
    """The range or choice written at ``spec[start:stop]`` (braces included)."""
    inner = spec[start + 1 : stop - 1]
    col0 = start + 2  # the column of inner[0]
    if not inner.strip():
        raise _fail(
            spec, start + 1, "empty choice {}", "; write a range {low..high} or a choice {a, b}"
        )
    dots = inner.find("..")
    if dots < 0:
        return _choice(spec, inner, col0)
    if inner[dots : dots + 3] == "...":
        raise _fail(spec, col0 + dots, "'...' in a range", "; write two dots: {low..high}")
    again = inner.find("..", dots + 2)
    if again >= 0:
        raise _fail(spec, col0 + again, "a second '..' in a range", "; write {low..high}")
    low = inner[:dots]
    if not low.strip():
        raise _fail(spec, col0 + dots, "a range with no low end", "; write {low..high}")
    lo_col = col0 + len(low) - len(low.lstrip())
    lo, lo_unit, used = _end(spec, low.strip(), lo_col, "low")
    if used < len(low.strip()):
        raise _fail(
            spec,
            lo_col,
            f"range low end {low.strip()!r} is not a number",
            "; write {low..high} with numbers, e.g. {1e-4..1e-1 log} or {0..10%}",
        )
    high = inner[dots + 2 :]
    if not high.strip():
        raise _fail(spec, stop, "a range with no high end", "; write {low..high}")
    hi_col = col0 + dots + 2 + len(high) - len(high.lstrip())
    hi, hi_unit, used = _end(spec, high.lstrip(), hi_col, "high")
    options = _options(spec, high.lstrip()[used:], hi_col + used)
    if lo_unit and hi_unit and lo_unit != hi_unit:
        raise _fail(
            spec, hi_col, f"a range from {lo_unit!r} to {hi_unit!r}", "; give both ends in one unit"
        )
    try:
        return Range(
            lo, hi, log="log" in options, integer="int" in options, unit=hi_unit or lo_unit
        )
    except ValueError as e:
        col = lo_col if "needs a low end" in str(e) else start + 1
        raise _fail(spec, col, f"invalid range {spec[start:stop]}", f": {e}") from None


def _end(spec: str, text: str, col: int, which: str) -> tuple[float, str, int]:
    """One end of a range at the start of ``text``: (value, unit, characters read)."""
    m = _VALUE.match(text)
    if m is None:
        word = re.match(r"[^\s.]*", text).group() or text[0]
        raise _fail(
            spec,
            col,
            f"range {which} end {word!r} is not a number",
            "; write {low..high} with numbers, e.g. {1e-4..1e-1 log} or {0..10%}",
        )
    value = float(m.group(1))
    if not math.isfinite(value):
        raise _fail(
            spec, col, f"range {which} end {m.group(1)}", "; a range's ends must be finite numbers"
        )
    return value, _unit(m.group(2) or m.group(3)), m.end()


def _options(spec: str, text: str, col0: int) -> set[str]:
    options = set()
    for m in re.finditer(r"\S+", text):
        word, col = m.group(), col0 + m.start()
        if word not in _OPTIONS:
            close = difflib.get_close_matches(word, _OPTIONS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise _fail(
                spec, col, f"unknown range option {word!r}", f"{hint}; a range takes log, int"
            )
        options.add(word)
    return options


def choice_at(spec: str, start: int, stop: int) -> Choice:
    """The value (or values, separated by ``,``) written without braces at ``spec[start:stop]``."""
    return _choice(spec, spec[start:stop], start + 1)


def _choice(spec: str, inner: str, col0: int) -> Choice:
    values, texts, i = [], [], 0
    while True:
        while i < len(inner) and inner[i].isspace():
            i += 1
        col = col0 + i
        m = _STRING.match(inner, i) or _ITEM.match(inner, i) or _NAME.match(inner, i)
        if i >= len(inner) or inner[i] == ",":
            raise _fail(spec, col, "an empty item in a choice", "; write {a, b, c}")
        if m is None:
            raise _fail(
                spec,
                col,
                f"unexpected {inner[i]!r} in a choice",
                "; items are numbers, 5%, 2ep, names or 'text'",
            )
        text = m.group()
        if text[0] in "'\"":
            value: Any = re.sub(r"\\(.)", r"\1", text[1:-1])
        elif m.re is _ITEM:
            num = m.group(1)
            value = int(num) if re.fullmatch(r"-?\d+", num) else float(num)
            if not math.isfinite(value):
                raise _fail(spec, col, f"choice item {text}", "; numbers must be finite")
            if m.group(2):
                value = value / 100
        else:
            value = _WORDS.get(text, text)
        if any(same(value, v) for v in values):
            raise _fail(spec, col, f"choice item {text} given twice", "; give each value once")
        values.append(value)
        texts.append(re.sub(r"\s+", "", text) if text[0] not in "'\"" else text)
        i = m.end()
        while i < len(inner) and inner[i].isspace():
            i += 1
        if i >= len(inner):
            return Choice(tuple(values), tuple(texts))
        if inner[i] != ",":
            raise _fail(
                spec,
                col0 + i,
                f"unexpected {inner[i]!r} in a choice",
                "; separate items with ',': {a, b, c}",
            )
        i += 1
