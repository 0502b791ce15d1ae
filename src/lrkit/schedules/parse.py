"""The text form of the schedule algebra: ``parse(text)``.

``repr(s)`` writes the text form and ``parse(repr(s)) == s``. The grammar::

    expr  := term ('>>' term)*                 a >> b: sequence
    term  := unary ('*' unary)*                a * b: product; 0.5 * a: scale
    unary := NUMBER | call | '(' expr ')'
    call  := NAME ['(' [arg (',' arg)*] ')']   a bare name is the schedule with its defaults
    arg   := [NAME '='] value
    value := expr | PERCENT | EPOCHS | STRING | true | false | none
           | bare identifier | '[' [value (',' value)*] ']'

The tokens (NUMBER, PERCENT, EPOCHS, STRING) are in tokens.py. ``>>`` and ``*`` build through :func:`sequence` and :func:`product`, exactly as the Python
operators do, so ``parse("warmup(5%) >> cosine(to=0.01)") == warmup("5%") >> cosine(to=0.01)``;
two numbers multiply as numbers. Positional arguments fill the dataclass fields in order (all
of them go to ``parts`` for ``seq``, ``product``, ``min`` and ``max``); lists become tuples. A
bare identifier standing alone as an argument is a string (``mode=triangular2``) unless its
field holds a schedule (``clip(cosine)``); ``minimum`` and ``maximum`` are read as ``min`` and
``max``. Errors are :class:`ScheduleSyntaxError`, which point at the column with a caret; so is
nesting deeper than :data:`MAX_NESTING` brackets. A chain of ``>>`` or ``*`` is built once, so
parsing takes time linear in the length of the spec. Config files: :mod:`lrkit.schedules.config`.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from typing import Any, NamedTuple

from ..checks import is_number
from .base import ALIASES, REGISTRY, Schedule, required, short
from .combinators import bare, part, product, sequence
from .tokens import WORDS, ScheduleSyntaxError, Token, describe, tokenize

__all__ = ["ScheduleSyntaxError", "parse", "MAX_NESTING", "MAX_SPEC_CHARS"]

MAX_NESTING = 32  # brackets open at once; deeper specs are refused (and Python's stack is safe)
MAX_SPEC_CHARS = 250_000  # a spec longer than this is refused before it is read


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
    def __init__(self, spec: str, outer: int = 0):
        self.spec = spec
        self.outer = outer  # brackets open around this spec (a quoted spec inside another)
        self.tokens = tokenize(spec)
        self.i = 0
        self.opened: list[Token] = []  # brackets open around the current token

    # helpers
    def peek(self, ahead: int = 0) -> Token:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def next(self) -> Token:
        tok = self.peek()
        self.i += 1
        return tok

    def at(self, *ops: str) -> bool:
        tok = self.peek()
        return tok.kind == "op" and tok.text in ops

    def fail(self, col: int, before: str, after: str = "") -> ScheduleSyntaxError:
        return ScheduleSyntaxError(f"{before} at column {col}{after}", self.spec, col)

    def push(self) -> Token:
        tok = self.next()
        if self.outer + len(self.opened) >= MAX_NESTING:
            raise self.fail(
                tok.col,
                f"brackets nested more than {MAX_NESTING} deep",
                "; write the schedule with fewer levels",
            )
        self.opened.append(tok)
        return tok

    def unexpected(self, expected: str) -> ScheduleSyntaxError:
        tok = self.peek()
        opener = {")": "(", "]": "["}.get(tok.text) if tok.kind == "op" else None
        if opener and opener not in [t.text for t in self.opened]:
            return self.fail(
                tok.col,
                f"unbalanced {_OPENERS[opener][0]}: '{tok.text}'",
                f" has no matching '{opener}'; expected {expected}",
            )
        return self.fail(tok.col, f"unexpected {describe(tok)}", f"; expected {expected}")

    def close(self, opener: Token, expected: str) -> None:
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
        return self.combine(part, (value,), 1, [1])

    def expr(self) -> Any:
        return self.chain(">>", self.term)

    def term(self) -> Any:
        return self.chain("*", self.unary)

    def chain(self, op: str, operand) -> Any:
        """``operand (op operand)*``, built in one call: what the Python operators build.

        ``sequence`` and ``product`` flatten nested parts and merge factors, so one call with
        every operand equals the left fold, without its quadratic cost.
        """
        cols = [self.peek().col]
        operands = [operand()]
        op_col = cols[0]
        while self.at(op):
            op_col = self.next().col
            cols.append(self.peek().col)
            operands.append(operand())
        if len(operands) == 1:
            return operands[0]
        if op == "*" and all(map(is_number, operands)):
            value = operands[0]
            for x in operands[1:]:
                value = value * x  # plain arithmetic, as in Python
            return value
        build = sequence if op == ">>" else product
        return self.combine(build, tuple(operands), op_col, cols)

    def combine(self, build, operands: tuple, col: int, cols: list[int]) -> Any:
        try:
            return build(*operands)
        except (ValueError, TypeError) as e:
            msg = _first_line(e)
            for operand, at in zip(operands, cols):
                if is_number(operand) and _mentions(msg, repr(operand)):
                    col = at
            what = {sequence: "sequence", product: "product"}.get(build, "schedule")
            if build is part:
                col = 1
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
        if tok.kind == "name" and tok.text not in WORDS:
            return self.call()
        raise self.unexpected("a schedule, a number or '('")

    def call(self) -> Schedule:
        tok = self.next()
        cls = REGISTRY.get(ALIASES.get(tok.text, tok.text))
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
        close = _close(name, REGISTRY)
        hint = f" (did you mean {close!r}?)" if close else f"; known: {', '.join(sorted(REGISTRY))}"
        return self.fail(col, f"unknown schedule {short(name)}", hint)

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
        if tok.kind == "name" and tok.text in WORDS:
            return WORDS[self.next().text]
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
        if isinstance(value, str) and "Schedule" in field_type:  # a quoted spec
            return _Parser(value, self.outer + len(self.opened)).spec_()
        if isinstance(value, tuple):
            return tuple(self.settle(v, field_type) for v in value)
        return value

    def settle_name(self, value: _Bare, field_type: str) -> Any:
        holds_schedule = "Schedule" in field_type
        name = ALIASES.get(value.name, value.name)
        if holds_schedule or (name in REGISTRY and "str" not in field_type):
            if name not in REGISTRY:
                raise self.unknown(value.name, value.col)
            try:
                return bare(REGISTRY[name])
            except ValueError as e:
                raise self.fail(value.col, f"invalid {name}", f": {_first_line(e)}") from None
        return value.name

    def build(self, cls: type[Schedule], tok: Token, args: list[_Arg]) -> Schedule:
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
                close = _close(a.key, fields)
                hint = f" (did you mean {close!r}?)" if close else ""
                raise self.fail(
                    a.key_col, f"unknown argument {short(a.key)} for {cls.name}", f"{hint}; {takes}"
                )
            if a.key in bound:
                raise self.fail(a.key_col, f"argument {a.key!r} of {cls.name} given twice")
            bound[a.key] = a
        missing = [n for n, f in fields.items() if required(f) and n not in bound]
        if missing:
            args_ = ", ".join(f"{n}=..." for n in missing)
            raise self.fail(
                tok.col, f"{cls.name} needs {', '.join(missing)}", f": write {cls.name}({args_})"
            )
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

    def rejected(self, cls, tok: Token, error: Exception, given: list) -> ScheduleSyntaxError:
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


def _close(name: str, names) -> str | None:
    """The known name closest to ``name`` (did-you-mean), skipped for absurdly long names."""
    if len(name) > 40:
        return None
    close = difflib.get_close_matches(name, list(names), n=1)
    return close[0] if close else None


def _first_line(error: Exception) -> str:
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def parse(text: str) -> Schedule:
    """The schedule a text spec describes; :class:`ScheduleSyntaxError` pointing at the column else.

    >>> parse("warmup(5%) >> cosine(to=0.01)")
    warmup(5%) >> cosine(to=0.01)
    """
    if not isinstance(text, str):
        raise TypeError(f"parse() takes the text form of a schedule, got {type(text).__name__}")
    if len(text) > MAX_SPEC_CHARS:
        raise ScheduleSyntaxError(
            f"the spec is {len(text):,} characters long; a schedule spec may be at most"
            f" {MAX_SPEC_CHARS:,}",
            text,
            MAX_SPEC_CHARS + 1,
        )
    try:
        return _Parser(text).spec_()
    except RecursionError:  # only on a stack already deep when parse() was called
        raise ScheduleSyntaxError("the spec is nested too deeply", text, 1) from None
