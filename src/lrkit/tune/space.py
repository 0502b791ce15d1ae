"""The search space of a tune: the peak lr's range, the schedule families and their ranges,
and optionally the optimizer, weight decay and batch size.

**The text form** is the schedule text form with ranges where values go, alternatives
separated by ``|``, and settings before them separated by ``;``::

    lr={1e-4..1}; optimizer={sgd, adamw}; weight_decay={0..1e-3};
    warmup({0..10%}) >> cosine(to={1e-3..1e-1 log}) | one_cycle(peak_at={0.1..0.5}) | constant

A range stands wherever the schedule text takes a number, a percentage or epochs:
``{lo..hi}`` (uniform), ``{lo..hi log}`` (log scale, lo > 0), ``{lo..hi int}`` (whole numbers,
``int log`` too), ``{0..10%}`` (a fraction of the run: 0 to 0.1 of it), ``{1..3ep}`` (epochs);
``{a, b, c}`` is a choice (numbers, 5%, 2ep, bare names like ``{triangular, triangular2}``).
A range of one value (``{0.1}``, ``{2..2}``) is fixed. A ``>>`` part that a zero length leaves
empty is left out (``warmup(0%) >> cosine`` is ``cosine``). Settings: ``lr`` (always log
scale; left out, the range test sets it), ``optimizer`` (``sgd``, ``adam``, ``adamw``,
``none`` for the task's own), ``weight_decay``, ``batch_size``: a value or a range.

**Optuna params** (define-by-run: only the chosen family's are sampled): ``lr``, ``family``
(with more than one alternative), ``<family>.<arg>`` for an argument of the family's main
schedule (``cosine.to``, ``one_cycle.peak_at``), ``<family>.<schedule>.<arg>`` for another's
(``cosine.warmup.steps``); a name used twice gets a suffix (``cosine_2``); ``optimizer``,
``weight_decay``, ``batch_size``. A ``%`` range's param is the fraction (0.05 for 5%).

>>> space = Space.from_text("lr={1e-3..1}; warmup({0..10%}) >> cosine(to={0..0.1}) | constant")
>>> [f.name for f in space.families]
['cosine', 'constant']
>>> space.config({"lr": 0.1, "family": "cosine", "cosine.warmup.steps": 0.05, "cosine.to": 0.02})
Config(lr=0.1, schedule='warmup(5%) >> cosine(to=0.02)', family='cosine', optimizer=None, weight_decay=None, batch_size=None)

**Checks.** Each family is read when the space is: at its ranges' low ends, at their high
ends and at each choice's values it must parse and fit a run (``wsd(warmup={0..60%},
decay={10..50%})`` is refused: 60% + 50% fit no run). Errors are
:class:`~lrkit.schedules.ScheduleSyntaxError` (a UserError) with a caret under the column.

**Grids.** :meth:`Space.grid` is GridSampler's search space (lr on a log grid, choices as
they are, 3 points of a continuous family param); GridSampler knows nothing of families, so it
runs the product of every family's params and repeats configurations.
:meth:`Space.grid_params` lists each configuration once, for ``study.enqueue_trial``.

The text form is read in :mod:`lrkit.tune.space_text`, the grids are built in
:mod:`lrkit.tune.grid`; this module holds the :class:`Space` and re-exports ``MAX_GRID``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from ..checks import check_lr
from ..errors import UserError
from . import lrfree
from .config import Config
from .families import Family
from .grid import MAX_GRID, grid_of, params_of
from .ranges import Choice, Dim, Range, written
from .settings import SETTINGS, setting
from .space_text import read_families, read_space

__all__ = ["Space", "as_space", "parse_space", "default_space", "Range", "Choice", "MAX_GRID"]

DEFAULT_SCHEDULES = (
    "warmup({0..10%}) >> cosine(to={0..0.1})",
    "one_cycle(peak_at={0.1..0.5})",
    "wsd(warmup={0..10%}, decay={10..40%})",
    "constant",
)


@dataclass(frozen=True)
class Space:
    """``lr``: the ``(low, high)`` range of the peak lr, log scale (None: the range test
    decides); ``schedule``: the families, one text with ``|`` between alternatives (or a
    list of texts); ``optimizer``, ``weight_decay``, ``batch_size``: None (the task's own), a
    value, or a range (a :class:`Range`, a :class:`Choice`, a list of values or a text like
    ``"{0..1e-3}"``)."""

    lr: tuple[float, float] | None = None
    schedule: str = "warmup(5%) >> cosine"
    optimizer: Any = None
    weight_decay: Any = None
    batch_size: Any = None
    families: tuple[Family, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.lr is not None:
            lr = self.lr if isinstance(self.lr, tuple | list) else (self.lr, self.lr)
            if len(lr) != 2:
                raise UserError(f"lr range must be (low, high), got {self.lr!r}")
            try:
                lo, hi = (check_lr(v, "lr range bound") for v in lr)
            except ValueError as e:
                raise UserError(str(e)) from None
            if lo > hi:
                raise UserError(f"lr range: low {lo:g} > high {hi:g}; give low <= high")
            object.__setattr__(self, "lr", (lo, hi))
        texts = [self.schedule] if isinstance(self.schedule, str) else self.schedule
        if not isinstance(texts, list | tuple) or not all(isinstance(t, str) for t in texts):
            raise UserError(f"schedule must be a text or a list of texts, got {self.schedule!r}")
        if not texts:
            raise UserError("the space has no schedule; give at least one, e.g. 'constant'")
        taken: set[str] = set()
        families = tuple(f for text in texts for f in read_families(text, 0, len(text), taken))
        object.__setattr__(self, "families", families)
        object.__setattr__(self, "schedule", " | ".join(f.text for f in families))
        for key in SETTINGS[1:]:
            object.__setattr__(self, key, setting(key, getattr(self, key)))
        lrfree.check_space(families, self.optimizer)

    # -- reading and writing --
    @classmethod
    def from_text(cls, text: str) -> Space:
        """The space written in the text form (see the module's doc)."""
        return parse_space(text)

    def text(self) -> str:
        """The space in its text form; ``Space.from_text(s.text()) == s``."""
        parts = []
        if self.lr is not None:
            lo, hi = self.lr
            parts.append(
                f"lr={written(lo)}" if lo == hi else f"lr={{{written(lo)}..{written(hi)}}}"
            )
        for key in SETTINGS[1:]:
            dim = getattr(self, key)
            if dim is not None:
                parts.append(f"{key}={_dim_text(dim)}")
        return "; ".join([*parts, self.schedule])

    __str__ = text

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"lr": list(self.lr) if self.lr else None, "schedule": self.schedule}
        for key in SETTINGS[1:]:
            dim = getattr(self, key)
            if dim is not None:
                data[key] = (
                    dim.values[0] if dim.fixed and isinstance(dim, Choice) else _dim_text(dim)
                )
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Space:
        if not isinstance(data, dict):
            raise UserError(f"a space must be an object, got {data!r}")
        known = ("lr", "schedule", *SETTINGS[1:])
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise UserError(f"unknown space field {unknown[0]!r}; known: {', '.join(known)}")
        lr = data.get("lr")
        return cls(**{**data, "lr": tuple(lr) if isinstance(lr, list) else lr})

    def with_lr(self, low: float, high: float) -> Space:
        """This space with the lr range ``(low, high)``."""
        return replace(self, lr=(low, high))

    # -- sampling --
    def suggest(self, trial: Any) -> Config:
        """Sample one configuration through an ``optuna.Trial``; only the chosen family's
        params are suggested."""
        if self.lr is None:
            raise UserError(
                "the space has no lr range yet: give one, or let tune's range test set it"
            )
        lo, hi = self.lr
        settings: dict[str, Any] = {}
        if lrfree.any_lr_free(self.optimizer):  # first: an lr-free trial samples no lr
            settings["optimizer"] = self.optimizer.suggest(trial, "optimizer")
        if lrfree.lr_free(settings.get("optimizer")):
            lr = lrfree.trial_lr(settings["optimizer"], lo)
        else:
            lr = lo if lo == hi else trial.suggest_float("lr", lo, hi, log=True)
        family = self.families[0]
        if len(self.families) > 1:
            family = self._family(trial.suggest_categorical("family", self.family_names()))
        values = {p.name: p.dim.suggest(trial, p.name) for p in family.params}
        for key in SETTINGS[1:]:
            if getattr(self, key) is not None and key not in settings:
                settings[key] = getattr(self, key).suggest(trial, key)
        return Config(lr=lr, schedule=family.schedule(values), family=family.name, **settings)

    def config(self, params: dict[str, Any]) -> Config:
        """The Config of a finished trial's ``params`` (what :meth:`suggest` sampled)."""
        if not isinstance(params, dict):
            raise UserError(f"params must be a dict, got {type(params).__name__}")
        optimizer = None if self.optimizer is None else _param(params, "optimizer", self.optimizer)
        if lrfree.lr_free(optimizer):
            lr = lrfree.trial_lr(optimizer, 1.0)
        elif "lr" in params:
            lr = params["lr"]
        elif self.lr is not None and self.lr[0] == self.lr[1]:
            lr = self.lr[0]
        else:
            raise UserError("the params have no 'lr'")
        if len(self.families) == 1:
            family = self.families[0]
        elif "family" in params:
            family = self._family(params["family"])
        else:
            raise UserError(
                f"the params have no 'family' (one of {', '.join(self.family_names())})"
            )
        values = {p.name: _param(params, p.name, p.dim) for p in family.params}
        settings = {
            key: _param(params, key, getattr(self, key))
            for key in SETTINGS[1:]
            if getattr(self, key) is not None
        }
        return Config(lr=lr, schedule=family.schedule(values), family=family.name, **settings)

    def family_names(self) -> list[str]:
        return [f.name for f in self.families]

    def _family(self, name: Any) -> Family:
        for f in self.families:
            if f.name == name:
                return f
        raise UserError(f"unknown family {name!r}; the space has {', '.join(self.family_names())}")

    def grid(self, points: int = 9) -> dict[str, list[Any]]:
        """A search space for Optuna's GridSampler: ``points`` lrs evenly in log over the
        range, every choice, and a few points (3) of each continuous family param.

        GridSampler does not know that a family's params only matter for that family, so the
        grid is the product of all of them: a UserError when it passes :data:`MAX_GRID`.
        (The lr of an lr-free optimizer's trial is its multiplier: :mod:`lrkit.tune.lrfree`.)
        """
        return grid_of(self, points)

    def grid_params(self, points: int = 9) -> list[dict[str, Any]]:
        """The distinct points of :meth:`grid`, each as the params of one trial (only its
        family's own): what ``study.enqueue_trial`` takes, without the repeats that
        GridSampler runs when the families have params of their own, without an lr-free
        optimizer's point at several lrs (its trials train at its multiplier) and without a
        point a trial would skip (a schedule-free optimizer with a decaying schedule; see
        :mod:`lrkit.tune.lrfree`)."""
        return params_of(self, points)


def _param(params: dict[str, Any], name: str, dim: Dim) -> Any:
    if dim.fixed:
        return dim.ends()[0] if isinstance(dim, Range) else dim.values[0]
    if name not in params:
        raise UserError(f"the params have no {name!r}")
    value = params[name]
    if not dim.contains(value):
        raise UserError(f"param {name}={value!r} is outside the space's {dim.text()}")
    return value


def _dim_text(dim: Dim) -> str:
    if isinstance(dim, Choice) and dim.fixed:
        return dim.texts[0]
    return dim.text()


# -- the text form -------------------------------------------------------------------------
def parse_space(text: str) -> Space:
    """The space written in ``text`` (see the module's doc); ScheduleSyntaxError at the column."""
    schedule, settings = read_space(text)
    return Space(schedule=schedule, **settings)


def default_space(task: Any = None) -> Space:
    """The space tune searches when given none: the lr from the range test, and warmup with a
    cosine decay, one-cycle, warmup-stable-decay and a constant rate, each with its own ranges
    (the same for every bundled task; narrow it by giving your own)."""
    return Space(lr=None, schedule=list(DEFAULT_SCHEDULES))


def as_space(value: Any, task: Any = None) -> Space:
    """A Space as is; None: :func:`default_space`; a text: :func:`parse_space`; a list of
    texts: those alternatives; a dict: the Space's fields. UserError otherwise."""
    if value is None:
        return default_space(task)
    if isinstance(value, Space):
        return value
    if isinstance(value, str):
        return parse_space(value)
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return Space(schedule=list(value))
    if isinstance(value, dict):
        return Space.from_dict(value)
    raise UserError(
        f"space must be a Space, a text, a list of texts or a dict, got {type(value).__name__}"
    )
