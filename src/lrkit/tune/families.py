"""A schedule family of a space: one schedule text with ``{...}`` ranges in it.

A family is checked once, when the space is read: every range is substituted by its low end,
then by its high end, then by each of a choice's values, each padded with spaces to the width
of its braces, and the result is read by :func:`lrkit.schedules.parse`; so a parser error
(an unknown schedule and its "did you mean", a value the schedule refuses) points at the
column of the space's own text.

A part of a ``>>`` sequence (outside brackets) that a zero length leaves empty is left out:
``warmup({0..10%}) >> cosine`` at 0% is ``cosine``, no warmup.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

from ..schedules import REGISTRY, ScheduleSyntaxError, parse
from .braces import parse_dim, scan
from .ranges import Choice, Dim, Range

__all__ = ["Param", "Family", "read_family", "top_level"]

_ALIASES = {"minimum": "min", "maximum": "max"}
_NOMINAL_STEPS = 10**9  # the run a family is resolved against when it is read
_IDENT = re.compile(r"[A-Za-z_][\w-]*")
_STRING = re.compile(r"""'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*\"""")


@dataclass(frozen=True)
class Param:
    """One range of a family: its Optuna ``name``, what it ranges over, where it stands in the
    family's text (``start``/``stop``, braces included)."""

    name: str
    dim: Dim
    start: int
    stop: int


@dataclass(frozen=True)
class Family:
    """One alternative of a space: ``name`` (unique in its space), ``text`` as written (ranges
    included), its ``params``, and its ``parts``: the ``(start, stop)`` of each ``>>`` part."""

    name: str
    text: str
    params: tuple[Param, ...]
    parts: tuple[tuple[int, int], ...]

    def render(self, values: dict[str, Any], pad: bool = False) -> str:
        """The schedule text with each param's value written in; ``pad``: padded to the width
        of its range (so columns stay where they are)."""
        written = {p.name: p.dim.write(values[p.name]) for p in self.params}
        edits = [(p.start, p.stop, written[p.name]) for p in self.params]
        text = _splice(self.text, edits, pad=True)
        drops = self._drops(text, values)
        if pad:
            return _splice(text, drops, pad=True)
        kept = [(s, e, w) for s, e, w in edits if not any(a <= s < b for a, b, _ in drops)]
        return _splice(self.text, sorted(kept + drops), pad=False).strip()

    def _drops(self, padded: str, values: dict[str, Any]) -> list[tuple[int, int, str]]:
        """The ``>>`` parts that a zero length leaves empty (they do not parse alone)."""
        drops = []
        for i, (start, stop) in enumerate(self.parts):
            zero = any(start <= p.start < stop and _is_zero(values[p.name]) for p in self.params)
            if not zero or len(self.parts) - len(drops) == 1 or _parses(padded[start:stop]):
                continue
            # the part and the '>>' after it (the last part: the '>>' before it)
            if i + 1 < len(self.parts):
                drops.append((start, self.parts[i + 1][0], ""))
            else:
                drops.append((self.parts[i - 1][1], stop, ""))
        return drops

    def schedule(self, values: dict[str, Any]) -> str:
        """The concrete schedule text of these param values (checked by the parser)."""
        text = self.render(values)
        try:
            parse(text)
        except ValueError as e:
            raise ScheduleSyntaxError(
                f"family {self.name!r} gives a schedule that does not parse, {text!r}:"
                f" {str(e).splitlines()[0]}",
                self.text,
                1,
            ) from None
        return text

    def low(self) -> dict[str, Any]:
        return {p.name: _ends(p.dim)[0] for p in self.params}


def _is_zero(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and value == 0


def _parses(text: str) -> bool:
    try:
        parse(text)
    except ValueError:
        return False
    return True


def _ends(dim: Dim) -> tuple[Any, Any]:
    return dim.ends() if isinstance(dim, Range) else (dim.values[0], dim.values[-1])


def _splice(text: str, edits: list[tuple[int, int, str]], pad: bool) -> str:
    out, at = [], 0
    for start, stop, new in edits:
        out += [text[at:start], new.ljust(stop - start) if pad else new]
        at = stop
    return "".join(out) + text[at:]


def top_level(spec: str, begin: int, end: int, sep: str) -> list[int]:
    """Where ``sep`` stands in ``spec[begin:end]`` outside quotes, braces and brackets."""
    found, depth, i = [], 0, begin
    while i < end:
        char = spec[i]
        if char in "'\"":
            m = _STRING.match(spec, i)
            i = m.end() if m else end
            continue
        if char in "({[":
            depth += 1
        elif char in ")}]":
            depth -= 1
        elif depth == 0 and spec.startswith(sep, i):
            found.append(i)
            i += len(sep)
            continue
        i += 1
    return found


def read_family(spec: str, begin: int, end: int, taken: set[str]) -> Family:
    """The family written at ``spec[begin:end]`` (stripped, not empty), checked; ``taken``: the
    names already used in the space (family and param names), which it extends."""
    text = spec[begin:end]
    spans = scan(spec, begin, end)
    dims = [parse_dim(spec, s, t) for s, t in spans]
    for (s, t), dim in zip(spans, dims):
        after = spec[t:end].lstrip()[:1]
        named = isinstance(dim, Choice) and all(isinstance(v, str) for v in dim.values)
        if after == "=" or (after == "(" and not named):
            raise ScheduleSyntaxError(
                f"a range where a name is expected at column {s + 1}; a range stands for a"
                " value (a number, 5%, 2ep) or a choice of names {cosine, linear}",
                spec,
                s + 1,
            )
    seps = top_level(spec, begin, end, ">>")
    bounds = [begin, *seps, end]
    parts = []
    for i in range(len(bounds) - 1):
        a, b = bounds[i] + (2 if i else 0), bounds[i + 1]
        while a < b and spec[a].isspace():
            a += 1
        while b > a and spec[b - 1].isspace():
            b -= 1
        parts.append((a - begin, b - begin))
    draft = Family(
        "?",
        text,
        tuple(
            Param(f"#{i}", d, s - begin, t - begin)
            for i, ((s, t), d) in enumerate(zip(spans, dims))
        ),
        tuple(parts),
    )
    _check(spec, begin, draft)
    return _named(draft, taken)


def _check(spec: str, begin: int, family: Family) -> None:
    """Parse the family at its low ends, its high ends and each choice's values, and resolve
    each against a long nominal run: that finds shares of the run that cannot fit any run,
    like ``wsd(warmup=60%, decay=50%)``."""
    trials = [family.low(), {p.name: _ends(p.dim)[1] for p in family.params}]
    for p in family.params:
        if isinstance(p.dim, Choice):
            trials += [{**family.low(), p.name: v} for v in p.dim.values[1:-1]]
    for values in trials:
        padded = " " * begin + family.render(values, pad=True)
        try:
            schedule = parse(padded)
        except ScheduleSyntaxError as e:
            first = str(e).splitlines()[0]
            for p in family.params:
                if begin + p.start < e.column <= begin + p.stop:
                    first += f" (from the range {p.dim.text()}: each of its values must be valid)"
            raise ScheduleSyntaxError(first, spec, e.column) from None
        try:
            schedule.resolve(total_steps=1000, steps_per_epoch=1)
        except ValueError as e:  # the message of a run of 1000 steps reads best
            if _resolves(schedule, _NOMINAL_STEPS):
                continue  # whole steps that a longer run would hold
            at = begin + (family.params[0].start if family.params else 0) + 1
            raise ScheduleSyntaxError(
                f"the family at column {begin + 1} does not fit a run at"
                f" {family.render(values)!r}: {str(e).splitlines()[0]}; narrow its ranges",
                spec,
                at,
            ) from None


def _resolves(schedule: Any, steps: int) -> bool:
    try:
        schedule.resolve(total_steps=steps, steps_per_epoch=1)
    except ValueError:
        return False
    return True


def _named(draft: Family, taken: set[str]) -> Family:
    """The family with its name (its main schedule's: the last ``>>`` part's) and its params'
    names (the schedule and argument each range is given to)."""
    masked = _masked(draft)
    start, stop = draft.parts[-1]
    names = (_ALIASES.get(m.group(), m.group()) for m in _IDENT.finditer(masked, start, stop))
    main = next((n for n in names if n in REGISTRY), "schedule")
    name = _unique(main, taken)
    params = []
    for p, (call, arg) in zip(draft.params, _places(masked, draft.params)):
        base = f"{name}.{arg}" if call in (main, None) else f"{name}.{call}.{arg}"
        params.append(dataclasses.replace(p, name=_unique(base, taken)))
    return dataclasses.replace(draft, name=name, params=tuple(params))


def _masked(family: Family) -> str:
    """The family's text with its ranges and quoted strings blanked (the same length)."""
    text = _splice(family.text, [(p.start, p.stop, "") for p in family.params], pad=True)
    strings = [(m.start(), m.end(), "") for m in _STRING.finditer(text)]
    return _splice(text, strings, pad=True)


def _unique(name: str, taken: set[str]) -> str:
    out, n = name, 1
    while out in taken:
        n += 1
        out = f"{name}_{n}"
    taken.add(out)
    return out


def _places(masked: str, params: tuple[Param, ...]) -> list[tuple[str | None, str]]:
    """For each param: (the schedule whose argument it is, or None; the argument's name)."""
    stack: list[list] = []  # per open bracket: [bracket, call, its key, commas so far]
    found: dict[int, tuple[str | None, str]] = {}
    starts = {p.start: p for p in params}
    for i, char in enumerate(masked):
        if i in starts:
            found[i] = _place(stack, _key(masked, i), starts[i], masked)
        if char in "([":
            call = re.search(r"(?<![\w.])([A-Za-z_][\w-]*)\s*$", masked[max(0, i - 80) : i])
            name = call and _ALIASES.get(call.group(1), call.group(1)) if char == "(" else None
            stack.append([char, name, _key(masked, i), 0])
        elif char in ")]" and stack:
            stack.pop()
        elif char == "," and stack:
            stack[-1][3] += 1
    return [found[p.start] for p in params]


def _place(stack: list[list], key: str | None, p: Param, masked: str) -> tuple[str | None, str]:
    top = stack[-1] if stack else None
    if top and top[0] == "[" and len(stack) > 1:  # an item of a list argument
        key, top = top[2], stack[-2]
    if top and top[0] == "(" and top[1]:
        return top[1], key or _field(top[1], top[3])
    if masked[: p.start].rstrip().endswith("*") or masked[p.stop :].lstrip().startswith("*"):
        return None, "scale"
    named = isinstance(p.dim, Choice) and all(isinstance(v, str) for v in p.dim.values)
    return None, "schedule" if named else "value"


def _key(masked: str, i: int) -> str | None:
    """The ``name=`` just before column ``i``, if any."""
    m = re.search(r"([A-Za-z_][\w-]*)\s*=\s*$", masked[max(0, i - 80) : i])
    return m.group(1) if m else None


def _field(call: str, index: int) -> str:
    cls = REGISTRY.get(call)
    if cls is None:
        return f"arg{index + 1}"
    if getattr(cls, "_varargs", None):
        return f"{cls._varargs}{index + 1}"
    fields = [f.name for f in dataclasses.fields(cls) if f.init]
    return fields[index] if index < len(fields) else f"arg{index + 1}"
