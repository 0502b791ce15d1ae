"""The Schedule base class: a frozen, pure function of the step.

Every schedule is a frozen dataclass registered under a short lowercase name (``cosine``,
``warmup``...). That name is also its name in the text form, so ``repr(s)`` *is* the text form
and ``parse(repr(s)) == s``. ``to_dict()``/``from_dict()`` give the same tree as plain data.

Lengths are written three ways: whole steps (``500``), a fraction of the run (``"5%"``) or
epochs (``"2ep"``). Fractions and epochs are turned into steps by :meth:`Schedule.resolve`,
which the driver calls once with the run's total steps and steps per epoch. A length field
marked *rest* may be left out (``None``): it then takes whatever the run leaves over
(``warmup(5%) >> cosine`` — the cosine runs for the remaining 95%).

Values are multipliers of each param group's base learning rate unless the driver is given
``base_lr=1.0``; peaks are 1.0 by convention. Every schedule's values lie in
``[0, MAX_VALUE]`` at every step, and lengths are at most ``MAX_STEPS``: a schedule that could
leave that range is refused when it is built (or resolved), so ``s(t)`` never overflows.

This module builds only on units.py (lengths, values, checks): the operators ``>>`` and ``*`` are bound to
the combinators by combinators.py (:func:`define_operators`), and text is read one level up,
in config.py (``as_schedule``) and parse.py.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

from .units import (  # noqa: F401  (re-exported: the catalogue builds on these)
    _EPOCHS,
    _PERCENT,
    ALIASES,
    MAX_DEPTH,
    MAX_ITEMS,
    MAX_STEPS,
    MAX_VALUE,
    Length,
    Run,
    check_choice,
    check_length,
    check_positive,
    check_whole,
    huge,
    length_field,
    lengths_field,
    power,
    required,
    short,
)

REGISTRY: dict[str, type[Schedule]] = {}


def _relative(s: Schedule) -> bool:
    """Whether any length in the tree is still relative to the run ('5%', '2ep')."""
    return any(
        isinstance(v, str)
        for node in s.walk()
        for f in dataclasses.fields(node)  # type: ignore[arg-type]
        if f.metadata.get("kind") in ("length", "lengths")
        for v in (
            getattr(node, f.name) if f.metadata["kind"] == "lengths" else (getattr(node, f.name),)
        )
    )


def register(name: str):
    """Class decorator: make a Schedule subclass known under ``name`` (text form, to_dict)."""

    def deco(cls: type[Schedule]) -> type[Schedule]:
        if name in REGISTRY:
            raise ValueError(f"schedule name {name!r} is registered twice")
        cls.name = name
        REGISTRY[name] = cls
        init = cls.__init__

        def __init__(self, *args, **kwargs):
            init(self, *args, **kwargs)
            if type(self) is cls:
                check_range(self)

        __init__.__doc__ = init.__doc__
        cls.__init__ = __init__  # type: ignore[method-assign]
        return cls

    return deco


def check_range(s: Schedule) -> None:
    """Refuse a schedule whose values could leave ``[0, MAX_VALUE]`` (by its :meth:`bounds`).

    A schedule class that does not declare its bounds (a user's own) is not checked.
    """
    if type(s).bounds is Schedule.bounds:
        return
    lo, hi = s.bounds()
    if not 0.0 <= lo <= hi <= MAX_VALUE:
        if hi == math.inf and lo >= 0 and _relative(s):
            return  # growth whose end is a fraction of the run: checked once resolved
        reach = f"{hi:g}" if hi > MAX_VALUE or hi != hi else f"{lo:g}"
        raise ValueError(
            f"{short(s)} can reach {reach}, outside the values a schedule may take"
            f" (0 to {MAX_VALUE:g}); give smaller values or factors"
        )


class Schedule:
    """Base of all schedules: ``s(step) -> float``, pure, frozen, composable.

    Subclasses are frozen dataclasses decorated with :func:`register`. They implement
    ``__call__(step)`` in closed form (``step`` may be a float, e.g. inside ``stretch``),
    and may override :attr:`length` (steps until the value stops changing, or ``None``
    when it never does) and :meth:`bounds`.

    Operators: ``a >> b`` runs ``a`` for its length then ``b``; ``a * b`` multiplies the
    values; ``k * a`` scales by a number.
    """

    name: ClassVar[str] = "schedule"

    # -- to be provided by subclasses -------------------------------------------------
    def __call__(self, step: float) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def length(self) -> int | str | None:
        """Steps after which the value no longer changes; ``None`` when unbounded or unknown.

        Default: the field named ``steps`` if the class has one.
        """
        return getattr(self, "steps", None)

    def bounds(self) -> tuple[float, float]:
        """(lowest, highest) value this schedule can take, at any step.

        Checked when the schedule is built: both must lie in ``[0, MAX_VALUE]``.
        """
        return (0.0, math.inf)

    @property
    def static(self) -> bool:
        """Whether the value never depends on the step (a constant, a plateau factor).

        A static part without a length does not make a product (or min, max) endless.
        """
        return False

    def ends(self) -> bool:
        """Whether the schedule has a length, or will have one once resolved (a *rest* length).

        ``repeat`` and ``stretch`` need a schedule that ends.
        """
        if self.length is not None:
            return True
        return any(
            f.metadata.get("rest") and getattr(self, f.name) is None
            for f in dataclasses.fields(self)  # type: ignore[arg-type]
        )

    # -- resolution ------------------------------------------------------------------
    def resolve(
        self, total_steps: int | None = None, steps_per_epoch: int | None = None
    ) -> Schedule:
        """A copy with every length in whole steps and every *rest* length filled in.

        >>> from lrkit.schedules import warmup, cosine
        >>> (warmup("5%") >> cosine(to=0.1)).resolve(total_steps=1000)
        warmup(50) >> cosine(950, to=0.1)
        """
        if total_steps is not None:
            total_steps = int(check_length(total_steps, "total_steps"))
        if steps_per_epoch is not None:
            steps_per_epoch = int(check_length(steps_per_epoch, "steps_per_epoch"))
        return self._resolve(Run(total_steps, steps_per_epoch), total_steps)

    def _resolve(self, run: Run, rest: int | None) -> Schedule:
        """Resolve this node; ``rest`` is what a *rest* length becomes (None: unknown)."""
        changes: dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            if not f.init:
                continue
            value = getattr(self, f.name)
            kind = f.metadata.get("kind")
            what = f"{self.name} {f.name}"
            if kind == "length":
                if value is None:
                    changes[f.name] = rest if f.metadata.get("rest") else None
                else:
                    changes[f.name] = run.steps(value, what)
            elif kind == "lengths":
                changes[f.name] = tuple(run.steps(v, what) for v in value)
            elif isinstance(value, Schedule):
                changes[f.name] = value._resolve(run, rest)
            elif isinstance(value, tuple) and value and isinstance(value[0], Schedule):
                changes[f.name] = tuple(v._resolve(run, rest) for v in value)
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]

    def needs(self, value: Any, what: str = "steps") -> int:
        """Return ``value`` if it is a resolved whole number of steps, else a clear ValueError."""
        if type(value) is int:
            return value
        if value is None:
            raise ValueError(
                f"{self!r} has no {what}: give it {what}=N, or resolve(total_steps=N) so that it"
                " takes the rest of the run"
            )
        raise ValueError(
            f"{self!r} has {what}={value!r}, which is relative to the run: call"
            " resolve(total_steps=..., steps_per_epoch=...) first (the driver does this)"
        )

    # -- tree ------------------------------------------------------------------------
    def children(self) -> tuple[Schedule, ...]:
        out: list[Schedule] = []
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if isinstance(value, Schedule):
                out.append(value)
            elif isinstance(value, tuple):
                out.extend(v for v in value if isinstance(v, Schedule))
        return tuple(out)

    def walk(self) -> Iterator[Schedule]:
        """This schedule and every schedule inside it, depth first."""
        yield self
        for child in self.children():
            yield from child.walk()

    # -- plain data ------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON/YAML-ready): ``{"type": name, field: value, ...}``, defaults left out."""
        out: dict[str, Any] = {"type": self.name}
        for f in _init_fields(self):
            value = getattr(self, f.name)
            if _is_default(f, value):
                continue
            out[f.name] = _to_plain(value)
        return out

    @staticmethod
    def from_dict(data: dict[str, Any]) -> Schedule:
        """Inverse of :meth:`to_dict`."""
        return from_dict(data)

    # -- text form -------------------------------------------------------------------
    def __repr__(self) -> str:
        args = []
        positional = True
        for f in _init_fields(self):
            value = getattr(self, f.name)
            if _is_default(f, value):
                positional = False
                continue
            text = _to_text(value)
            if positional and f.name in self._positional():
                args.append(text)
            else:
                positional = False
                args.append(f"{f.name}={text}")
        return f"{self.name}({', '.join(args)})" if args else self.name

    @classmethod
    def _positional(cls) -> tuple[str, ...]:
        """Fields written without their name in repr (the leading, obvious ones)."""
        return ()

    _precedence: ClassVar[int] = 3  # atoms bind tightest; product 2; sequence 1

    # -- operators -------------------------------------------------------------------
    def __rshift__(self, other: Any) -> Schedule:
        return _OPERATORS["sequence"](self, other)

    def __rrshift__(self, other: Any) -> Schedule:
        return _OPERATORS["sequence"](other, self)

    def __mul__(self, other: Any) -> Schedule:
        return _OPERATORS["product"](self, other)

    def __rmul__(self, other: Any) -> Schedule:
        return _OPERATORS["product"](other, self)


_OPERATORS: dict[str, Callable[..., Schedule]] = {}


def define_operators(*, sequence: Callable[..., Schedule], product: Callable[..., Schedule]):
    """Bind ``>>`` and ``*`` to the combinators (called once by combinators.py, which builds
    on this module, so that this one need not import it)."""
    _OPERATORS.update(sequence=sequence, product=product)


def _init_fields(s: Schedule) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(s) if f.init]  # type: ignore[arg-type]


def _is_default(f: dataclasses.Field, value: Any) -> bool:
    if f.default is not dataclasses.MISSING:
        return value == f.default and type(value) is type(f.default)
    if f.default_factory is not dataclasses.MISSING:
        return value == f.default_factory()
    return False


def _to_plain(value: Any) -> Any:
    if isinstance(value, Schedule):
        return value.to_dict()
    if isinstance(value, tuple):
        return [_to_plain(v) for v in value]
    return value


_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")
_WORDS = ("true", "false", "none", "inf", "nan")  # read as values, so quoted as strings


def _to_text(value: Any) -> str:
    """A value as the text form writes it (numbers, 5%, 2ep, names, [lists], schedules)."""
    if isinstance(value, Schedule):
        return repr(value)
    if isinstance(value, tuple):
        return "[" + ", ".join(_to_text(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        if _PERCENT.match(value) or _EPOCHS.match(value):
            return value
        if _IDENT.match(value) and value not in REGISTRY and value not in _WORDS:
            return value
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return repr(value)


def from_dict(data: dict[str, Any]) -> Schedule:
    """Build a schedule from ``to_dict()`` data; ValueError naming the bad part otherwise."""
    if isinstance(data, Schedule):
        return data
    if not isinstance(data, dict) or "type" not in data:
        raise ValueError(f"a schedule must be a mapping with a 'type' key, got {short(data)}")
    return _from_dict(data, 0, [0])


def _from_dict(data: dict[Any, Any], depth: int, seen: list[int]) -> Schedule:
    try:
        return _build(data, depth, seen)
    except ValueError as e:  # note the innermost mapping at fault (config files name its line)
        if not hasattr(e, "schedule_data"):
            e.schedule_data = data  # type: ignore[attr-defined]
        raise


def _build(data: dict[Any, Any], depth: int, seen: list[int]) -> Schedule:
    if depth > MAX_DEPTH:
        raise ValueError(f"a schedule nested more than {MAX_DEPTH} levels deep is not accepted")
    name = data["type"]
    if not isinstance(name, str):
        raise ValueError(f"a schedule's 'type' must be a name such as 'cosine', got {short(name)}")
    cls = REGISTRY.get(ALIASES.get(name, name))
    if cls is None:
        raise ValueError(f"unknown schedule {short(name)}; known: {', '.join(sorted(REGISTRY))}")
    bad = [k for k in data if not isinstance(k, str)]
    if bad:
        raise ValueError(f"{cls.name} arguments are named by text, got the key {short(bad[0])}")
    fields = [f for f in dataclasses.fields(cls) if f.init]  # type: ignore[arg-type]
    known = [f.name for f in fields]
    unknown = [k for k in data if k != "type" and k not in known]
    if unknown:
        raise ValueError(
            f"{cls.name} has no argument {short(unknown[0])}; it takes: {', '.join(sorted(known))}"
        )
    missing = [f.name for f in fields if required(f) and f.name not in data]
    if missing:
        raise ValueError(f"{cls.name} needs {', '.join(missing)}; it takes: {', '.join(known)}")
    kwargs = {k: _from_plain(v, depth + 1, seen) for k, v in data.items() if k != "type"}
    try:
        return cls(**kwargs)
    except TypeError as e:  # a value of the wrong kind deep in a constructor
        raise ValueError(f"{cls.name}: {e}") from None


def _from_plain(value: Any, depth: int, seen: list[int]) -> Any:
    """One value of ``to_dict()`` data; ``seen[0]`` counts the items read so far (the same
    list met through many references, as YAML aliases make, counts every time)."""
    if depth > MAX_DEPTH:
        raise ValueError(f"a schedule nested more than {MAX_DEPTH} levels deep is not accepted")
    seen[0] += 1
    if seen[0] > MAX_ITEMS:
        raise ValueError(f"a schedule of more than {MAX_ITEMS:,} values and parts is not accepted")
    if isinstance(value, dict) and "type" in value:
        return _from_dict(value, depth, seen)
    if isinstance(value, list | tuple):
        return tuple(_from_plain(v, depth + 1, seen) for v in value)
    return value
