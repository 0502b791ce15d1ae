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
``base_lr=1.0``; peaks are 1.0 by convention.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterator
from typing import Any, ClassVar

Length = int | str  # whole steps, "5%" of the run, or "2ep" epochs

REGISTRY: dict[str, type[Schedule]] = {}

_PERCENT = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*%\s*$")
_EPOCHS = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*ep(?:och|ochs)?\s*$")
_INTEGER = re.compile(r"^\s*\d+\s*$")


def register(name: str):
    """Class decorator: make a Schedule subclass known under ``name`` (text form, to_dict)."""

    def deco(cls: type[Schedule]) -> type[Schedule]:
        if name in REGISTRY:
            raise ValueError(f"schedule name {name!r} is registered twice")
        cls.name = name
        REGISTRY[name] = cls
        return cls

    return deco


def length_field(default: Any = None, *, rest: bool = False, zero: bool = False):
    """A dataclass field holding one length. ``rest``: ``None`` means "the rest of the run".

    ``zero``: a length of 0 steps is allowed (e.g. ``warmup=0``).
    """
    return dataclasses.field(default=default, metadata={"kind": "length", "rest": rest, "zero": zero})


def lengths_field(default: Any = ()):
    """A dataclass field holding a sorted tuple of lengths (milestones, boundaries)."""
    return dataclasses.field(default=default, metadata={"kind": "lengths"})


def _fmt_number(x: float) -> str:
    return f"{x:g}" if float(x) == float(f"{x:g}") else repr(float(x))


def check_length(value: Any, what: str, *, zero: bool = False) -> Length:
    """Normalise one length: an int of steps, ``"5%"`` or ``"2ep"``; raise ValueError otherwise.

    >>> check_length("5 %", "warmup steps")
    '5%'
    """
    low = 0 if zero else 1
    accepted = (
        f"a whole number of steps >= {low}, a fraction of the run like '5%', or epochs like '2ep'"
    )
    if isinstance(value, bool):
        raise ValueError(f"{what} must be {accepted}; got {value!r}")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int):
        if value < low:
            raise ValueError(f"{what} must be >= {low}, got {value}")
        return value
    if isinstance(value, str):
        if _INTEGER.match(value):
            return check_length(int(value), what, zero=zero)
        m = _PERCENT.match(value)
        if m:
            pct = float(m.group(1))
            if pct > 100:
                raise ValueError(f"{what} must be a fraction of at most 100%, got {value!r}")
            if pct < 0 or (pct == 0 and not zero):
                raise ValueError(f"{what} must be a fraction above 0%, got {value!r}")
            return f"{_fmt_number(pct)}%"
        m = _EPOCHS.match(value)
        if m:
            ep = float(m.group(1))
            if ep == 0 and not zero:
                raise ValueError(f"{what} must be more than 0 epochs, got {value!r}")
            return f"{_fmt_number(ep)}ep"
    raise ValueError(f"{what} must be {accepted}; got {value!r}")


def check_positive(value: Any, what: str, *, zero: bool = False) -> float:
    """A finite number > 0 (or >= 0 with ``zero``), as float; ValueError naming ``what`` else."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number, got {value!r}")
    if value < 0 or (value == 0 and not zero):
        raise ValueError(f"{what} must be {'>= 0' if zero else '> 0'}, got {value!r}")
    return float(value)


def check_choice(value: Any, what: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"{what} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return value


@dataclasses.dataclass(frozen=True)
class Run:
    """What lengths are resolved against: the run's total steps and steps per epoch."""

    total_steps: int | None = None
    steps_per_epoch: int | None = None

    def steps(self, length: Length, what: str) -> int:
        """Turn one checked length into whole steps (rounded to the nearest step)."""
        if isinstance(length, int):
            return length
        if length.endswith("%"):
            if self.total_steps is None:
                raise ValueError(
                    f"{what} is {length!r}, a fraction of the run, but the run's total steps are"
                    " unknown; give total_steps (the driver's total_steps=, or --steps)"
                )
            return int(round(float(length[:-1]) / 100.0 * self.total_steps))
        if self.steps_per_epoch is None:
            raise ValueError(
                f"{what} is {length!r}, in epochs, but the steps per epoch are unknown;"
                " give steps_per_epoch"
            )
        return int(round(float(length[:-2]) * self.steps_per_epoch))


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
        """(lowest, highest) value this schedule can take; used by property tests."""
        return (0.0, math.inf)

    # -- resolution ------------------------------------------------------------------
    def resolve(self, total_steps: int | None = None, steps_per_epoch: int | None = None) -> Schedule:
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
        from .combinators import sequence

        return sequence(self, other)

    def __rrshift__(self, other: Any) -> Schedule:
        from .combinators import sequence

        return sequence(other, self)

    def __mul__(self, other: Any) -> Schedule:
        from .combinators import product

        return product(self, other)

    def __rmul__(self, other: Any) -> Schedule:
        from .combinators import product

        return product(other, self)


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
        raise ValueError(f"a schedule must be a mapping with a 'type' key, got {data!r}")
    name = data["type"]
    cls = REGISTRY.get(name)
    if cls is None:
        raise ValueError(f"unknown schedule {name!r}; known: {', '.join(sorted(REGISTRY))}")
    kwargs = {k: _from_plain(v) for k, v in data.items() if k != "type"}
    known = {f.name for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise ValueError(
            f"{name} has no argument {unknown[0]!r}; it takes: {', '.join(sorted(known))}"
        )
    return cls(**kwargs)


def _from_plain(value: Any) -> Any:
    if isinstance(value, dict) and "type" in value:
        return from_dict(value)
    if isinstance(value, list):
        return tuple(_from_plain(v) for v in value)
    return value
