"""The text form of the schedule algebra: ``parse(text)``.

``repr(s)`` writes the text form and ``parse(repr(s)) == s``. The grammar::

    expr  := term ('>>' term)*                 a >> b: sequence
    term  := unary ('*' unary)*                a * b: product; 0.5 * a: scale
    unary := NUMBER | call | '(' expr ')'
    call  := NAME ['(' [arg (',' arg)*] ')']   a bare name is the schedule with its defaults
    arg   := [NAME '='] value
    value := expr | PERCENT | EPOCHS | STRING | true | false | none
           | bare identifier | '[' [value (',' value)*] ']'

NUMBER is ``5``, ``-0.5``, ``1e-3``, ``inf`` or ``nan``; PERCENT ``5%`` or ``2.5 %``; EPOCHS
``2ep``, ``2 epochs``; STRING ``'...'`` or ``"..."`` with backslash escapes.
``>>`` and ``*`` build through :func:`sequence` and :func:`product`, exactly as the Python
operators do, so ``parse("warmup(5%) >> cosine(to=0.01)") == warmup("5%") >> cosine(to=0.01)``;
two numbers multiply as numbers. Positional arguments fill the dataclass fields in order (all
of them go to ``parts`` for ``seq``, ``product``, ``min`` and ``max``); lists become tuples. A
bare identifier standing alone as an argument is a string (``mode=triangular2``) unless its
field holds a schedule (``clip(cosine)``). Errors are :class:`ScheduleSyntaxError`, which point
at the column with a caret. Schedules in config files: :mod:`lrkit.schedules.config`.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from typing import Any, NamedTuple

from ..errors import UserError
from .base import REGISTRY, Schedule
from .combinators import as_schedule, product, sequence

__all__ = ["ScheduleSyntaxError", "parse"]


class ScheduleSyntaxError(UserError):
    """A text spec that is not a schedule; ``.column`` (1-based) says where, ``.spec`` what.

    A :class:`~lrkit.errors.UserError`, so a ``ValueError``.

    The message's first line names what was found and what was expected; the next two show
    the spec with a caret under the column.
    """

    def __init__(self, message: str, spec: str, column: int):
        self.spec = spec
        self.column = column
        shown = re.sub(r"\s", " ", spec)  # one character for one, so the caret lines up
        super().__init__(f"{message}\n  {shown}\n  {' ' * (column - 1)}^")


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
_WORDS = {"true": True, "false": False, "none": None}


class _Token(NamedTuple):
    kind: str  # num, pct, ep, str, name, op, end
    text: str
    value: Any
    col: int


def _tokenize(spec: str) -> list[_Token]:
    tokens: list[_Token] = []
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
                tokens.append(_Token("pct", text, f"{num}%", col))
            elif m.group("ep"):
                tokens.append(_Token("ep", text, f"{num}ep", col))
            else:
                value = int(num) if re.fullmatch(r"-?\d+", num) else float(num)
                tokens.append(_Token("num", text, value, col))
        elif m.group("name"):
            tokens.append(_Token("name", text, text, col))
        elif m.group("str"):
            tokens.append(_Token("str", text, re.sub(r"\\(.)", r"\1", text[1:-1], flags=re.S), col))
        else:
            tokens.append(_Token("op", text, text, col))
    tokens.append(_Token("end", "", None, len(spec) + 1))
    return tokens


def _describe(tok: _Token) -> str:
    if tok.kind == "end":
        return "end of the spec"
    if tok.kind == "op":
        return f"'{tok.text}'"
    return {"num": "number ", "name": "name ", "str": "string "}.get(tok.kind, "") + (
        repr(tok.text) if tok.kind == "name" else tok.text
    )


# -- parser ---------------------------------------------------------------------------------
class _Bare(NamedTuple):
    """A lone identifier as an argument: a schedule or a string, as its field decides."""

    name: str
    col: int


class _Arg(NamedTuple):
    key: str | None
    key_col: int
    value: Any
    col: int


_OPENERS = {"(": ("parentheses", ")"), "[": ("brackets", "]")}


class _Parser:
    def __init__(self, spec: str):
        self.spec = spec
        self.tokens = _tokenize(spec)
        self.i = 0
        self.opened: list[_Token] = []  # brackets open around the current token

    # helpers
    def peek(self, ahead: int = 0) -> _Token:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def next(self) -> _Token:
        tok = self.peek()
        self.i += 1
        return tok

    def at(self, *ops: str) -> bool:
        tok = self.peek()
        return tok.kind == "op" and tok.text in ops

    def fail(self, col: int, before: str, after: str = "") -> ScheduleSyntaxError:
        return ScheduleSyntaxError(f"{before} at column {col}{after}", self.spec, col)

    def push(self) -> _Token:
        self.opened.append(self.next())
        return self.opened[-1]

    def unexpected(self, expected: str) -> ScheduleSyntaxError:
        tok = self.peek()
        opener = {")": "(", "]": "["}.get(tok.text) if tok.kind == "op" else None
        if opener and opener not in [t.text for t in self.opened]:
            return self.fail(
                tok.col,
                f"unbalanced {_OPENERS[opener][0]}: '{tok.text}'",
                f" has no matching '{opener}'; expected {expected}",
            )
        return self.fail(tok.col, f"unexpected {_describe(tok)}", f"; expected {expected}")

    def close(self, opener: _Token, expected: str) -> None:
        closer = _OPENERS[opener.text][1]
        if self.at(closer):
            self.next()
            self.opened.pop()
            return
        if self.peek().kind == "end":
            raise self.fail(
                opener.col,
                f"unbalanced {_OPENERS[opener.text][0]}: '{opener.text}'",
                f" is never closed; expected '{closer}' but found the end of the spec",
            )
        raise self.unexpected(expected)

    # grammar
    def spec_(self) -> Schedule:
        if self.peek().kind == "end":
            raise self.fail(
                1, "empty schedule spec", "; expected a schedule such as 'warmup(5%) >> cosine'"
            )
        value = self.expr()
        if self.peek().kind != "end":
            raise self.unexpected("'>>', '*' or the end of the spec")
        return self.combine(as_schedule, (value,), 1, [1])

    def expr(self) -> Any:
        return self.chain(">>", self.term)

    def term(self) -> Any:
        return self.chain("*", self.unary)

    def chain(self, op: str, operand) -> Any:
        """``operand (op operand)*``, folded left exactly as the Python operator would."""
        cols = [self.peek().col]
        value = operand()
        while self.at(op):
            op_col = self.next().col
            cols.append(self.peek().col)
            right = operand()
            if op == "*" and _is_number(value) and _is_number(right):
                value = value * right  # plain arithmetic, as in Python
            else:
                build = sequence if op == ">>" else product
                value = self.combine(build, (value, right), op_col, cols[-2:])
        return value

    def combine(self, build, operands: tuple, col: int, cols: list[int]) -> Any:
        try:
            return build(*operands)
        except (ValueError, TypeError) as e:
            msg = _first_line(e)
            for operand, at in zip(operands, cols):
                if _is_number(operand) and _mentions(msg, repr(operand)):
                    col = at
            what = {sequence: "sequence", product: "product"}.get(build, "schedule")
            raise self.fail(col, f"invalid {what}", f": {msg}") from None

    def unary(self) -> Any:
        tok = self.peek()
        if tok.kind == "num":
            return self.next().value
        if tok.kind == "op" and tok.text == "(":
            self.push()
            value = self.expr()
            self.close(tok, "'>>', '*' or ')'")
            return value
        if tok.kind == "name" and tok.text not in _WORDS:
            return self.call()
        raise self.unexpected("a schedule, a number or '('")

    def call(self) -> Schedule:
        tok = self.next()
        cls = REGISTRY.get(tok.text)
        if cls is None:
            raise self.unknown(tok.text, tok.col)
        args: list[_Arg] = []
        if self.at("("):
            opener = self.push()
            if not self.at(")"):
                args.append(self.arg())
                while self.at(","):
                    self.next()
                    args.append(self.arg())
            self.close(opener, "',' or ')'")
        return self.build(cls, tok, args)

    def unknown(self, name: str, col: int) -> ScheduleSyntaxError:
        close = difflib.get_close_matches(name, REGISTRY, n=1)
        hint = (
            f" (did you mean {close[0]!r}?)" if close else f"; known: {', '.join(sorted(REGISTRY))}"
        )
        return self.fail(col, f"unknown schedule {name!r}", hint)

    def arg(self) -> _Arg:
        tok = self.peek()
        if tok.kind == "name" and self.peek(1).text == "=" and self.peek(1).kind == "op":
            self.i += 2
            col = self.peek().col
            return _Arg(tok.text, tok.col, self.value(), col)
        return _Arg(None, tok.col, self.value(), tok.col)

    def value(self) -> Any:
        tok = self.peek()
        if tok.kind in ("pct", "ep", "str"):
            return self.next().value
        if tok.kind == "name" and tok.text in _WORDS:
            return _WORDS[self.next().text]
        if tok.kind == "name" and self.peek(1).text in (",", ")", "]"):
            self.next()
            return _Bare(tok.text, tok.col)
        if tok.kind == "op" and tok.text == "[":
            opener = self.push()
            items = []
            if not self.at("]"):
                items.append(self.value())
                while self.at(","):
                    self.next()
                    items.append(self.value())
            self.close(opener, "',' or ']'")
            return tuple(items)
        if tok.kind in ("num", "name") or (tok.kind == "op" and tok.text == "("):
            return self.expr()
        raise self.unexpected("a value: a schedule, a number, 5%, 2ep, 'text' or a [list]")

    def settle(self, value: Any, field_type: str) -> Any:
        """Turn lone identifiers into schedules or strings, as the field's type says."""
        if isinstance(value, _Bare):
            return self.settle_name(value, field_type)
        if isinstance(value, tuple):
            return tuple(self.settle(v, field_type) for v in value)
        return value

    def settle_name(self, value: _Bare, field_type: str) -> Any:
        holds_schedule = "Schedule" in field_type
        if holds_schedule or (value.name in REGISTRY and "str" not in field_type):
            if value.name not in REGISTRY:
                raise self.unknown(value.name, value.col)
            return REGISTRY[value.name]()
        return value.name

    def build(self, cls: type[Schedule], tok: _Token, args: list[_Arg]) -> Schedule:
        fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
        varargs = getattr(cls, "_varargs", None)
        takes = f"{cls.name} takes: {', '.join(fields)}"
        positional = [a for a in args if a.key is None]
        keyword = [a for a in args if a.key is not None]
        if keyword and positional and args.index(positional[-1]) > args.index(keyword[0]):
            raise self.fail(
                positional[-1].col,
                "positional argument after a keyword argument",
                f"; expected name=value ({takes})",
            )
        if varargs:
            bound = {varargs: positional} if positional else {}
        else:
            if len(positional) > len(fields):
                raise self.fail(
                    positional[len(fields)].col,
                    f"too many positional arguments for {cls.name}",
                    f": it takes at most {len(fields)} ({', '.join(fields)}), got {len(positional)}",
                )
            bound = {name: a for name, a in zip(fields, positional)}
        for a in keyword:
            if a.key not in fields:
                close = difflib.get_close_matches(a.key, fields, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise self.fail(
                    a.key_col, f"unknown argument {a.key!r} for {cls.name}", f"{hint}; {takes}"
                )
            if a.key in bound:
                raise self.fail(a.key_col, f"argument {a.key!r} of {cls.name} given twice")
            bound[a.key] = a
        kwargs, given = {}, []  # given: (field, value, column) of each argument
        for name, a in bound.items():
            ftype = str(fields[name].type)
            if isinstance(a, list):  # varargs
                parts = [(name, self.settle(x.value, ftype), x.col) for x in a]
                kwargs[name] = tuple(value for _, value, _ in parts)
                given += parts
            else:
                kwargs[name] = self.settle(a.value, ftype)
                given.append((name, kwargs[name], a.col))
        try:
            return cls(**kwargs)
        except (ValueError, TypeError) as e:
            raise self.rejected(cls, tok, e, given) from None

    def rejected(self, cls, tok: _Token, error: Exception, given: list) -> ScheduleSyntaxError:
        """The constructor's error, at the argument it names when it can tell, else the call."""
        msg = _first_line(error)
        col, best = tok.col, 0
        for name, value, at in given:
            score = 2 * (not isinstance(value, Schedule) and _mentions(msg, repr(value)))
            score += _mentions(msg, f"{cls.name} {name}")
            if score > best:
                col, best = at, score
        where = f"argument to {cls.name}" if col != tok.col else cls.name
        return self.fail(col, f"invalid {where}", f": {msg}")


def _mentions(message: str, text: str) -> bool:
    """Whether ``text`` stands in ``message`` as a whole word or number."""
    return re.search(rf"(?<![\w.-]){re.escape(text)}(?![\w]|\.\d)", message) is not None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _first_line(error: Exception) -> str:
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def parse(text: str) -> Schedule:
    """The schedule a text spec describes; :class:`ScheduleSyntaxError` pointing at the column else.

    >>> parse("warmup(5%) >> cosine(to=0.01)")
    warmup(5%) >> cosine(to=0.01)
    """
    if not isinstance(text, str):
        raise TypeError(f"parse() takes the text form of a schedule, got {type(text).__name__}")
    return _Parser(text).spec_()
