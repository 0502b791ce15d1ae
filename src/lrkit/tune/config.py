"""Config: one point of a search space, what one trial trains.

A Config is plain data: the peak ``lr``, the schedule as text (the form ``lrkit train
--schedule`` and :func:`~lrkit.schedules.parse` read), the schedule ``family`` it came from, and
the optional optimizer, weight decay and batch size (None: the task's own).

>>> c = Config(lr=0.05, schedule="warmup(5%) >> cosine(to=0.01)", family="cosine")
>>> c.train_line("digits-mlp")
"lrkit train --task digits-mlp --lr 0.05 --schedule 'warmup(5%) >> cosine(to=0.01)'"
"""

from __future__ import annotations

import shlex
from dataclasses import asdict, dataclass
from typing import Any

from ..checks import check_lr, number, shown, whole
from ..errors import UserError
from ..tasks import OPTIMIZERS as _BUILT

OPTIMIZERS = tuple(_BUILT)  # what ``Task.variant(optimizer=...)`` builds


@dataclass(frozen=True)
class Config:
    """What one trial trains: ``lr``, ``schedule`` (text), its ``family`` and, where the space
    searches them, ``optimizer``, ``weight_decay`` and ``batch_size`` (None: the task's)."""

    lr: float
    schedule: str = "constant"
    family: str = "constant"
    optimizer: str | None = None
    weight_decay: float | None = None
    batch_size: int | None = None

    def __post_init__(self) -> None:
        """Every value checked: lr a finite number > 0, weight decay >= 0, batch size >= 1."""
        try:
            object.__setattr__(self, "lr", check_lr(self.lr, "lr"))
            if self.weight_decay is not None:
                wd = number(self.weight_decay, "weight_decay", low=0)
                object.__setattr__(self, "weight_decay", wd)
            if self.batch_size is not None:
                object.__setattr__(
                    self, "batch_size", whole(self.batch_size, "batch_size", least=1)
                )
        except ValueError as e:
            raise UserError(str(e)) from None
        for name in ("schedule", "family"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise UserError(f"{name} must be a non-empty text, got {shown(value)}")
        if self.optimizer is not None and self.optimizer not in OPTIMIZERS:
            raise UserError(
                f"optimizer must be one of {', '.join(OPTIMIZERS)} (or None: the task's own),"
                f" got {shown(self.optimizer)}"
            )

    def train_args(self) -> list[str]:
        """The ``lrkit train`` options that train this configuration."""
        args = ["--lr", f"{self.lr:.6g}", "--schedule", self.schedule]
        if self.optimizer is not None:
            args += ["--optimizer", self.optimizer]
        if self.weight_decay is not None:
            args += ["--weight-decay", f"{self.weight_decay:.6g}"]
        if self.batch_size is not None:
            args += ["--batch-size", str(self.batch_size)]
        return args

    def train_line(self, task: str, *extra: str) -> str:
        """A runnable ``lrkit train`` command line for this configuration on ``task``."""
        return shlex.join(["lrkit", "train", "--task", task, *self.train_args(), *extra])

    def python(self, task: str) -> str:
        """Python that trains this configuration with :func:`lrkit.fit`."""
        variant = {
            k: v
            for k, v in (
                ("optimizer", self.optimizer),
                ("weight_decay", self.weight_decay),
                ("batch_size", self.batch_size),
            )
            if v is not None
        }
        target = repr(task)
        if variant:
            opts = ", ".join(f"{k}={v!r}" for k, v in variant.items())
            target = f"lrkit.get_task({task!r}).variant({opts})"
        return f"import lrkit\nlrkit.fit({target}, lr={self.lr:.6g}, schedule={self.schedule!r})"

    def to_dict(self) -> dict[str, Any]:
        """The fields that are set (None left out); ``Config.from_dict`` reads it back."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Config:
        """The Config of :meth:`to_dict`'s output; UserError for an unknown field."""
        if not isinstance(data, dict):
            raise UserError(f"a config must be an object, got {shown(data)}")
        known = {"lr", "schedule", "family", "optimizer", "weight_decay", "batch_size"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UserError(
                f"unknown config field {unknown[0]!r}; known: {', '.join(sorted(known))}"
            )
        return cls(**data)
