"""What ``compare`` compares: entries, each a schedule, optionally an optimizer and a fine-tuning
mode, and how each is written as text.

An entry string is one or more parts joined with ``+`` (``cosine+sgd``, ``layerwise+cosine``):

- a **schedule short name** of :data:`SCHEDULES`, each mapped to one spec that resolves
  against the run (fractions of its steps), shown in the table and the JSON:

  - ``constant``: ``constant``, the same rate throughout;
  - ``step``: ``step(30%)``, x0.1 every 30% of the run;
  - ``cosine``: ``warmup(5%) >> cosine``, 5% warmup, then a cosine down to 0;
  - ``cyclic``: ``cyclical(10%)``, triangles from 0.1 to 1 and back, 5 cycles a run;
  - ``onecycle``: ``one_cycle``, torch's OneCycleLR shape;
  - ``wsd``: ``wsd(warmup=5%)``, warmup, hold, the last 20% down to 0;
  - ``linear``: ``warmup(5%) >> linear``, 5% warmup, then a straight line to 0;
  - ``exponential``: ``warmup(5%) >> stretch(exponential(0.1, steps=2), 95%)``, 5% warmup,
    then an exponential decay to 1% at the end;
  - ``cosine_restarts``: ``cosine_restarts(25%)``, four cosine cycles (SGDR);
  - ``inverse_sqrt``: ``warmup(5%) >> inverse_sqrt(5%)``, 5% warmup, then 1/sqrt decay.

  ``constant`` and ``step`` have no warmup, as they are usually run; a short name is a name
  of this table first, so a bare ``cosine`` here is the warmup-cosine above (write
  ``cosine(100%)`` for the catalogue's plain cosine);
- an **optimizer name** of :data:`lrkit.tasks.OPTIMIZERS` (``sgd``, ``adam``, ``adamw``,
  ``prodigy``, ``dadapt-adam``, ``schedulefree-adamw``, ``schedulefree-sgd``): the task's
  variant with that optimizer (the schedule, when the entry names none: ``constant``; for a
  schedule-free optimizer ``warmup(5%)``, a rise then a hold, as its authors recommend: the
  Driver refuses a decaying one). An lr-free optimizer (Prodigy, D-Adaptation) runs at lr
  1.0, a multiplier of the rate it estimates: its rate is not chosen;
- a **fine-tuning mode** of :data:`lrkit.tasks.FINETUNE` (``scratch``, ``full``, ``layerwise``,
  ``frozen``): :func:`lrkit.tasks.finetune` of the task (the schedule: ``constant`` when none
  is named);
- any **schedule spec** of the text form (``warmup(10%) >> cosine(to=0.01)``).

>>> parse_entry("cosine+sgd")
Entry(label='cosine+sgd', schedule='warmup(5%) >> cosine', optimizer='sgd', finetune=None, lr=None)
>>> parse_entry("step(25%, 0.5)").schedule
'step(25%, 0.5)'
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any

from ...checks import check_lr, shown
from ...errors import UserError
from ...schedules import REGISTRY, Schedule, as_schedule
from ...tasks import FINETUNE, OPTIMIZERS, optimizer_info

SCHEDULES: dict[str, str] = {
    "constant": "constant",
    "step": "step(30%)",
    "cosine": "warmup(5%) >> cosine",
    "cyclic": "cyclical(10%)",
    "onecycle": "one_cycle",
    "wsd": "wsd(warmup=5%)",
    "linear": "warmup(5%) >> linear",
    "exponential": "warmup(5%) >> stretch(exponential(0.1, steps=2), 95%)",
    "cosine_restarts": "cosine_restarts(25%)",
    "inverse_sqrt": "warmup(5%) >> inverse_sqrt(5%)",
}
DEFAULT_ENTRIES = ("constant", "step", "cosine", "cyclic", "onecycle", "wsd")
SCHEDULE_FREE_DEFAULT = "warmup(5%)"  # a schedule-free optimizer's schedule when none is named


@dataclass(frozen=True)
class Entry:
    """One thing to compare: ``label`` (the table's name for it), ``schedule`` (a spec text, or
    a Schedule: kept as its text form), ``optimizer`` (a name of ``lrkit.tasks.OPTIMIZERS``;
    None: the task's own), ``finetune`` (a mode of ``lrkit.tasks.FINETUNE``, applied by
    ``lrkit.tasks.finetune``; None: the task as it is) and ``lr`` (a fixed peak lr; None: chosen by compare, or 1.0 for an lr-free
    optimizer)."""

    label: str
    schedule: str | Schedule = "constant"
    optimizer: str | None = None
    finetune: str | None = None
    lr: float | None = None

    def __post_init__(self):
        if not isinstance(self.label, str) or not self.label.strip():
            raise UserError(f"an entry's label must be a non-empty string, got {shown(self.label)}")
        schedule = self.schedule
        if isinstance(schedule, Schedule):
            object.__setattr__(self, "schedule", repr(schedule))
        elif isinstance(schedule, str):
            try:
                as_schedule(schedule, "schedule")
            except ValueError as e:
                raise UserError(f"entry {self.label!r}: {_first_line(e)}") from None
        else:
            raise UserError(
                f"entry {self.label!r}: schedule must be a spec text or a Schedule, got"
                f" {shown(schedule)}"
            )
        if self.optimizer is not None:
            object.__setattr__(self, "optimizer", _known(self.optimizer, optimizers(), "optimizer"))
        if self.finetune is not None:
            object.__setattr__(
                self, "finetune", _known(self.finetune, finetune_modes(), "finetune")
            )
        if self.lr is not None:
            try:
                object.__setattr__(self, "lr", check_lr(self.lr, f"entry {self.label!r}: lr"))
            except ValueError as e:
                raise UserError(str(e)) from None

    @property
    def lr_free(self) -> bool:
        """The entry's optimizer estimates its own rate (its lr is a multiplier, 1.0)."""
        return self.optimizer is not None and is_lr_free(self.optimizer)

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "schedule": self.schedule,
            "optimizer": self.optimizer,
            "finetune": self.finetune,
            "lr": self.lr,
        }


def check_trains(entry: Entry, task: Any, total_steps: int, steps_per_epoch: int) -> None:
    """A UserError naming ``entry`` when ``task`` (the entry's variant of the task) cannot
    train it, found before any run: a model its fine-tuning mode cannot split (fewer than two
    layers), an optimizer that refuses the task's groups (Prodigy over layer-wise rates), a
    schedule the Driver refuses for the optimizer (a decay for a schedule-free one) or one
    that is 0 at every step of the run. Builds the model and the optimizer once, and a
    Driver over them for the run's ``total_steps``."""
    from ...schedules import Driver
    from ...train.misfit import never_trains, schedule_misfit

    try:
        optimizer = task.build_optimizer(task.build_model())
        driver = Driver(optimizer, entry.schedule, total_steps=total_steps,
                        steps_per_epoch=steps_per_epoch)  # fmt: skip
        driver.close()
        if never_trains(driver.schedule, total_steps):
            raise UserError(str(schedule_misfit(driver.schedule, total_steps)))
    except ValueError as e:  # UserError included
        raise UserError(f"entry {entry.label!r}: {_first_line(e)}") from None


def optimizers() -> tuple[str, ...]:
    """The optimizer names an entry accepts: those of ``lrkit.tasks.OPTIMIZERS``."""
    return tuple(OPTIMIZERS)


def finetune_modes() -> tuple[str, ...]:
    """The fine-tuning modes an entry accepts (``lrkit.tasks.FINETUNE``)."""
    return tuple(FINETUNE)


def is_lr_free(optimizer: str) -> bool:
    """True for an optimizer whose lr multiplies the rate it estimates (Prodigy, D-Adaptation;
    ``lrkit.tasks.optimizer_info(name).lr_free``): compare does not choose its rate, it runs
    at 1.0."""
    return bool(optimizer_info(optimizer).lr_free)


# -- the text form ---------------------------------------------------------------------------
def parse_entry(text: str) -> Entry:
    """The :class:`Entry` an entry string names (see the module's doc); its label is the text.

    Raises UserError for an empty part, an unknown name (with "did you mean" and what is
    accepted), a spec that does not parse (the parser's message), or two schedules, two
    optimizers or two fine-tuning modes in one entry.
    """
    if not isinstance(text, str) or not text.strip():
        raise UserError(f"an entry must be a non-empty string, got {shown(text)}")
    label = text.strip()
    found: dict[str, str] = {}
    words: dict[str, str] = {}
    for part in split_top(label, "+"):
        kind, value = _part(part, label)
        if kind in found:
            raise UserError(
                f"entry {label!r} names two {_KINDS[kind]}s, {words[kind]!r} and"
                f" {part.strip()!r}: give one (join a schedule, an optimizer and a fine-tuning"
                " mode with '+')"
            )
        found[kind], words[kind] = value, part.strip()
    default = "constant"
    if "optimizer" in found and optimizer_info(found["optimizer"]).schedule_free:
        default = SCHEDULE_FREE_DEFAULT  # its authors: no decay, a warmup
    return Entry(
        label=label,
        schedule=found.get("schedule", default),
        optimizer=found.get("optimizer"),
        finetune=found.get("finetune"),
    )


_KINDS = {"schedule": "schedule", "optimizer": "optimizer", "finetune": "fine-tuning mode"}


def _part(part: str, label: str) -> tuple[str, str]:
    word = part.strip()
    if not word:
        raise UserError(f"entry {label!r} has an empty part: join names with one '+'")
    low = word.lower()
    if low in SCHEDULES:
        return "schedule", SCHEDULES[low]
    if low in optimizers():
        return "optimizer", low
    if low in finetune_modes():
        return "finetune", low
    try:
        as_schedule(word, "schedule")
    except ValueError as e:
        if re.fullmatch(r"[A-Za-z_][\w-]*", word) and word not in REGISTRY:  # a name unknown
            raise UserError(_unknown(word, label)) from None
        raise UserError(f"entry {label!r}: {_first_line(e)}") from None
    return "schedule", word


def _unknown(word: str, label: str) -> str:
    names = [*SCHEDULES, *optimizers(), *finetune_modes()]
    close = difflib.get_close_matches(word.lower(), names, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    where = "" if word == label else f" in entry {label!r}"
    return (
        f"unknown entry part {word!r}{where}{hint}; accepted: a schedule"
        f" ({', '.join(SCHEDULES)}, or a spec such as 'warmup(5%) >> cosine(to=0.01)'),"
        f" an optimizer ({', '.join(optimizers())}), a fine-tuning mode"
        f" ({', '.join(finetune_modes())}), joined with '+'"
    )


def as_entries(entries: Any) -> list[Entry]:
    """Entries from a list of :class:`Entry` objects and entry strings, or one string of them
    separated by commas (outside brackets: ``"constant,step(30%, 0.5)"``); None: the default
    six (:data:`DEFAULT_ENTRIES`). Labels must differ."""
    if entries is None:
        entries = list(DEFAULT_ENTRIES)
    elif isinstance(entries, str):
        entries = split_top(entries, ",")
    elif isinstance(entries, Entry):
        entries = [entries]
    try:
        items = list(entries)
    except TypeError:
        raise UserError(
            f"entries must be a list of entry strings or Entry objects, got {shown(entries)}"
        ) from None
    out = [e if isinstance(e, Entry) else parse_entry(e) for e in items]
    if not out:
        raise UserError(f"no entries to compare; give some, e.g. {', '.join(DEFAULT_ENTRIES)}")
    labels = [e.label for e in out]
    twice = sorted({x for x in labels if labels.count(x) > 1})
    if twice:
        raise UserError(f"entry {twice[0]!r} is given twice: each entry once")
    return out


def split_top(text: str, sep: str) -> list[str]:
    """``text`` split at ``sep`` outside brackets (and, for ``+``, not in a number's exponent:
    ``1e+3``)."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth = max(0, depth - 1)
        elif ch == sep and depth == 0:
            if sep == "+" and re.search(r"\d[eE]$", text[:i]):
                continue
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def _known(value: Any, known: tuple[str, ...], what: str) -> str:
    if isinstance(value, str) and value.strip().lower() in known:
        return value.strip().lower()
    close = difflib.get_close_matches(str(value).lower(), list(known), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise UserError(f"unknown {what} {shown(value)}{hint}; known: {', '.join(known)}")


def _first_line(error: Exception) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


__all__ = [
    "Entry",
    "SCHEDULES",
    "DEFAULT_ENTRIES",
    "parse_entry",
    "as_entries",
    "split_top",
    "optimizers",
    "finetune_modes",
    "is_lr_free",
    "check_trains",
]
