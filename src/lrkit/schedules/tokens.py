"""The tokens of the schedule text form, and :class:`ScheduleSyntaxError`.

NUMBER is ``5``, ``-0.5``, ``1e-3``, ``inf`` or ``nan``; PERCENT ``5%`` or ``2.5 %``; EPOCHS
``2ep``, ``2 epochs``; STRING ``'...'`` or ``"..."`` with backslash escapes; NAME an
identifier; the operators ``>>`` and ``*``, brackets, ``,`` and ``=``. A number too large for
a float is refused here, at its column. The grammar is in parse.py.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

from ..errors import UserError

__all__ = ["ScheduleSyntaxError", "tokenize", "describe", "Token", "WORDS"]

_SHOWN = 100  # a longer spec is shown around the column only


class ScheduleSyntaxError(UserError):
    """A text spec that is not a schedule; ``.column`` (1-based) says where, ``.spec`` what.

    A :class:`~lrkit.errors.UserError`, so a ``ValueError``.

    The message's first line names what was found and what was expected; the next two show
    the spec with a caret under the column.
    """

    def __init__(self, message: str, spec: str, column: int):
        self.spec = spec
        self.column = column
        shown, at = spec, column - 1
        if len(spec) > _SHOWN:  # a window around the column, so the message stays short
            begin = max(0, min(at - _SHOWN // 2, len(spec) - _SHOWN))
            shown = spec[begin : begin + _SHOWN]
            at -= begin
            if begin:
                shown, at = "..." + shown, at + 3
            if begin + _SHOWN < len(spec):
                shown += "..."
        shown = re.sub(r"\s", " ", shown)  # one character for one, so the caret lines up
        super().__init__(f"{message}\n  {shown}\n  {' ' * at}^")


# -- tokens ---------------------------------------------------------------------------------
_NUMBER = r"-?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|inf(?![\w-])|nan(?![\w-]))"
_TOKEN = re.compile(
    rf"(?P<ws>\s+)"
    rf"|(?P<num>{_NUMBER})(?:(?P<pct>\s*%)|(?P<ep>\s*ep(?:ochs?)?(?![\w-])))?"
    r"|(?P<name>[A-Za-z_][\w-]*)"
    r"""|(?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")"""
    r"|(?P<op>>>|[*()\[\],=])",
    re.DOTALL,
)
WORDS = {"true": True, "false": False, "none": None}


class Token(NamedTuple):
    kind: str  # num, pct, ep, str, name, op, end
    text: str
    value: Any
    col: int


def tokenize(spec: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(spec):
        m = _TOKEN.match(spec, pos)
        col = pos + 1
        if m is None:
            char = spec[pos]
            if char in "'\"":
                raise ScheduleSyntaxError(
                    f"unterminated string at column {col}; expected a closing {char}", spec, col
                )
            raise ScheduleSyntaxError(
                f"unexpected character {char!r} at column {col}; expected a schedule, a number,"
                " an operator ('>>', '*') or a bracket",
                spec,
                col,
            )
        pos = m.end()
        text = m.group()
        if m.group("ws"):
            continue
        if m.group("num"):
            num = m.group("num")
            if m.group("pct"):
                tokens.append(Token("pct", text, f"{num}%", col))
            elif m.group("ep"):
                tokens.append(Token("ep", text, f"{num}ep", col))
            else:
                if abs(float(num)) == float("inf") and "inf" not in num:
                    raise ScheduleSyntaxError(
                        f"number at column {col} is too large ({len(num)} characters); numbers"
                        " must fit a float (below 1.8e308)",
                        spec,
                        col,
                    )
                value = int(num) if re.fullmatch(r"-?\d+", num) else float(num)
                tokens.append(Token("num", text, value, col))
        elif m.group("name"):
            tokens.append(Token("name", text, text, col))
        elif m.group("str"):
            tokens.append(Token("str", text, re.sub(r"\\(.)", r"\1", text[1:-1], flags=re.S), col))
        else:
            tokens.append(Token("op", text, text, col))
    tokens.append(Token("end", "", None, len(spec) + 1))
    return tokens


def describe(tok: Token) -> str:
    if tok.kind == "end":
        return "end of the spec"
    if tok.kind == "op":
        return f"'{tok.text}'"
    return {"num": "number ", "name": "name ", "str": "string "}.get(tok.kind, "") + (
        repr(tok.text) if tok.kind == "name" else tok.text
    )
