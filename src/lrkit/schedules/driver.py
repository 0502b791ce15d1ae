"""The driver: one step counter, written into a torch optimizer's param groups.

>>> import torch
>>> from lrkit.schedules import Driver, warmup, cosine
>>> opt = torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=0.1, momentum=0.9)
>>> driver = Driver(opt, warmup(10) >> cosine(to=0.1), total_steps=100)
>>> opt.param_groups[0]["lr"]  # the value at step 0: warmup starts from 0
0.0

Every param group gets ``lr = base_lr_of_group * schedule(step)``, where ``step`` is the number
of optimizer updates really applied: an optimizer step post-hook advances the counter and
rewrites the groups at once, so an update that a ``GradScaler`` skipped (inf/nan gradients) does
not count. ``count="calls"`` counts ``driver.step()`` calls instead, like torch's schedulers.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import sys
import weakref
from typing import Any

import torch
from torch.optim.lr_scheduler import ChainedScheduler, LRScheduler, SequentialLR

from ..checks import is_number, whole
from .base import Schedule, check_choice
from .config import as_schedule
from .groups import as_float, check_base_lrs, momentum_key, steps_or_none
from .lrfree import check_schedule
from .plateau import Plateau

_AFTER_END = ("hold", "error")
_COUNT = ("applied", "calls")


class Driver(LRScheduler):
    """Drive lr (and optionally momentum/beta1 and weight decay) of every param group.

    Args:
        optimizer: any ``torch.optim.Optimizer``.
        schedule: a :class:`Schedule`, a number (a constant multiplier) or a text spec such as
            ``"warmup(5%) >> cosine"``. Values multiply each group's base lr.
        momentum: optional schedule of *absolute* momentum values, written to
            ``group["momentum"]`` (SGD, RMSprop) or ``group["betas"][0]`` (Adam family).
        weight_decay: optional schedule of multipliers of each group's initial weight decay.
        total_steps, steps_per_epoch: what lengths like ``"5%"``, ``"2ep"`` and schedules
            without a length (they take the rest of the run) are resolved against, once.
        base_lr: ``None`` (each group's lr at construction, kept as ``group["initial_lr"]``
            like torch), one number for every group (``1.0`` makes values absolute lrs), or a
            list with one number per group.
        after_end: past the end of a finite schedule, ``"hold"`` its last value or ``"error"``
            (raised by the update that takes the counter past the schedule's length).
        count: ``"applied"`` (optimizer updates really applied) or ``"calls"`` (``step()``
            calls).

    ``driver.step()`` is cheap; ``driver.step(metric)`` and ``driver.report(metric)`` feed every
    :class:`Plateau` factor in the schedules (see :attr:`plateaus`) and rewrite the groups.

    In Lightning, return ``{"scheduler": driver}`` from ``configure_optimizers``: with
    ``count="applied"`` the lr follows every optimizer update whatever the ``interval``, so a
    schedule with plateaus can use ``"interval": "epoch", "reduce_on_plateau": True,
    "monitor": "val_loss"`` and Lightning calls ``driver.step(val_loss)`` once an epoch.
    Hugging Face's Trainer takes ``optimizers=(optimizer, driver)``.

    On Prodigy and D-Adaptation each group's lr is a multiplier of the rate they estimate and
    the schedule multiplies it; a schedule-free optimizer (AdamW, SGD) takes only a constant or
    a warmup then a hold, its authors recommending no decay (UserError otherwise; see
    :mod:`lrkit.schedules.lrfree`).

    A Driver is a whole schedule: it refuses to run inside torch's ``SequentialLR`` or
    ``ChainedScheduler`` (ValueError), which would fight it over the lr; compose the parts with
    ``>>`` and ``*`` instead. torch's ``last_epoch=`` is accepted only as ``-1`` (a fresh
    start): to resume, build the Driver as before and call :meth:`load_state_dict`.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        schedule: Schedule | float | str,
        *,
        momentum: Schedule | float | str | None = None,
        weight_decay: Schedule | float | str | None = None,
        total_steps: int | None = None,
        steps_per_epoch: int | None = None,
        base_lr: float | list[float] | None = None,
        after_end: str = "hold",
        count: str = "applied",
        last_epoch: int = -1,
    ) -> None:
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"Driver needs a torch.optim.Optimizer, got {type(optimizer).__name__}")
        if last_epoch != -1 or not is_number(last_epoch):
            raise ValueError(
                f"Driver does not resume from last_epoch={last_epoch!r} (torch's way, which cannot"
                " restore plateau states): build the Driver as before, then call"
                " driver.load_state_dict(state) with the driver.state_dict() you saved; it"
                " restores the step, the plateaus and the lrs"
            )
        self.optimizer = optimizer
        self.after_end = check_choice(after_end, "Driver after_end", _AFTER_END)
        self.count = check_choice(count, "Driver count", _COUNT)
        self.total_steps = steps_or_none(total_steps, "Driver total_steps")
        self.steps_per_epoch = steps_or_none(steps_per_epoch, "Driver steps_per_epoch")
        groups = optimizer.param_groups
        self.schedule = _resolved(schedule, "schedule", total_steps, steps_per_epoch)
        self.momentum = _resolved(momentum, "momentum", total_steps, steps_per_epoch)
        self.weight_decay = _resolved(weight_decay, "weight_decay", total_steps, steps_per_epoch)
        check_schedule(optimizer, self.schedule, self.momentum, self.total_steps)

        self.base_lrs = check_base_lrs(base_lr, groups, self.schedule)
        self._momentum_key = None
        if self.momentum is not None:
            self._momentum_key = momentum_key(groups)
            length = self.momentum.length
            for t in (0, length) if type(length) is int else (0,):
                m = self.momentum(t)
                if not 0.0 <= m < 1.0:
                    raise ValueError(
                        f"momentum values are absolute and must lie in [0, 1); the momentum"
                        f" schedule {self.momentum!r} gives {m!r} at step {t}"
                    )
        if self.weight_decay is not None:
            for i, group in enumerate(groups):
                if "weight_decay" not in group:
                    raise ValueError(
                        f"a weight_decay schedule needs param groups with 'weight_decay'; group {i}"
                        f" of {type(optimizer).__name__} has keys {sorted(group)}"
                    )

        # all checked: from here on the optimizer is written to
        for group in groups:
            group.setdefault("initial_lr", as_float(group["lr"]))
            if self.weight_decay is not None:
                group.setdefault("initial_weight_decay", as_float(group["weight_decay"]))

        length = self.schedule.length
        self.end = length if type(length) is int else math.inf  # the lr schedule's last step
        self.plateaus: list[Plateau] = [
            node
            for s in (self.schedule, self.momentum, self.weight_decay)
            if s is not None
            for node in s.walk()
            if isinstance(node, Plateau)
        ]
        self._step = 0
        self._step_count = 0
        self._tensor_lr = any(isinstance(g["lr"], torch.Tensor) for g in groups)
        self._write(0)

        self._hook = None
        self._finalizer = None
        if self.count == "applied":
            ref = weakref.ref(self)

            def on_update(opt, args, kwargs):
                driver = ref()
                if driver is not None:
                    driver._advance()

            self._hook = optimizer.register_step_post_hook(on_update)
            self._finalizer = weakref.finalize(self, self._hook.remove)

    # -- the hot path ---------------------------------------------------------------------
    def _advance(self) -> None:
        t = self._step + 1
        self._step = t
        if t > self.end:
            if self.after_end == "error":
                raise RuntimeError(
                    f"the lr schedule ended at step {self.end} but update {t} was applied;"
                    f" give Driver(total_steps=...) covering the whole run, a longer schedule,"
                    f" or after_end='hold'"
                )
            t = self.end
        self._write(t)

    def _write(self, t: int | float) -> None:
        groups = self.optimizer.param_groups
        base_lrs = self.base_lrs
        if len(groups) != len(base_lrs):
            raise RuntimeError(
                f"the optimizer has {len(groups)} param groups but the Driver was built for"
                f" {len(base_lrs)}; build the Driver after the last add_param_group()"
            )
        value = self.schedule(t)
        lrs = [b * value for b in base_lrs]
        if self._tensor_lr:
            for group, lr in zip(groups, lrs):
                if isinstance(group["lr"], torch.Tensor):
                    group["lr"].fill_(lr)
                else:
                    group["lr"] = lr
        else:
            for group, lr in zip(groups, lrs):
                group["lr"] = lr
        self._last_lr = lrs
        if self.momentum is not None:
            m = self.momentum(t)
            if self._momentum_key == "betas":
                for group in groups:
                    group["betas"] = (m, *tuple(group["betas"])[1:])
            else:
                for group in groups:
                    group["momentum"] = m
        if self.weight_decay is not None:
            w = self.weight_decay(t)
            for group in groups:
                group["weight_decay"] = group["initial_weight_decay"] * w

    # -- torch's scheduler interface ----------------------------------------------------------
    def step(self, metrics: Any = None) -> None:  # type: ignore[override]
        """Advance (``count="calls"``) and, given a metric, feed it to the plateau factors.

        With ``count="applied"`` the counter already moved with the optimizer update, so a
        plain ``step()`` does nothing; ``step(metric)`` works like
        ``ReduceLROnPlateau.step(metric)`` (what Lightning calls with a monitored metric).
        """
        if sys._getframe(1).f_code in _WRAPPERS:
            self._refuse_wrapper("ChainedScheduler")
        self._step_count += 1
        if self.count == "calls":
            self._advance()
        if metrics is not None:
            self.report(metrics)

    def report(self, metric: Any) -> None:
        """Feed ``metric`` to every :class:`Plateau` in the schedules and rewrite the groups."""
        if not self.plateaus:
            raise ValueError(
                f"the schedule {self.schedule!r} has no plateau factor to report {metric!r} to;"
                " multiply one in, e.g. cosine * plateau(patience=5)"
            )
        for p in self.plateaus:
            p.report(metric)
        self._write(min(self._step, self.end))

    def get_lr(self) -> list[float]:
        """The lrs for the current step (what :meth:`get_last_lr` returns after a write)."""
        t = min(self._step, self.end)
        value = self.schedule(t)
        return [b * value for b in self.base_lrs]

    def get_last_lr(self) -> list[float]:
        """The lrs last written into the param groups, one per group."""
        return list(self._last_lr)

    @property
    def last_step(self) -> int:
        """Updates counted so far (the step whose values the groups now hold)."""
        return self._step

    @property
    def last_epoch(self) -> int:  # type: ignore[override]
        """torch's name for :attr:`last_step`."""
        return self._step

    @last_epoch.setter
    def last_epoch(self, value: int) -> None:
        if value < 0:  # SequentialLR undoes its schedulers' first step: last_epoch -= 1
            self._write(min(self._step, self.end))  # put back the lr it reset
            self._refuse_wrapper("SequentialLR")
        self._step = whole(value, "Driver last_epoch")
        self._write(min(self._step, self.end))

    def _refuse_wrapper(self, wrapper: str) -> None:
        raise ValueError(
            f"a Driver cannot run inside torch's {wrapper}: the Driver writes the whole lr at"
            " every update, so the two would overwrite each other. Compose the schedules in one"
            " Driver instead: Driver(opt, constant(0.1, 20) >> exponential(0.9)) for"
            " SequentialLR, Driver(opt, warmup(100) * exponential(0.99)) for ChainedScheduler"
        )

    def set_base_lrs(self, base_lrs: float | list[float]) -> None:
        """Replace the base lrs (one number, or one per group) and rewrite the groups now.

        The schedule keeps its shape and position: ``lr = new_base_lr * schedule(step)``. The
        watch pillar's guard and ``ReduceLROnPlateau`` lower the lr this way.
        """
        self.base_lrs = check_base_lrs(base_lrs, self.optimizer.param_groups, self.schedule)
        self._write(min(self._step, self.end))

    def close(self) -> None:
        """Stop counting optimizer updates (removes the post-step hook); idempotent."""
        if self._finalizer is not None:
            self._finalizer()

    # -- checkpoints ----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Plain data: step, plateau states, resolved schedules, base lrs and settings."""
        return {
            "step": self._step,
            "plateaus": [p.state_dict() for p in self.plateaus],
            "schedule": self.schedule.to_dict(),
            "momentum": None if self.momentum is None else self.momentum.to_dict(),
            "weight_decay": None if self.weight_decay is None else self.weight_decay.to_dict(),
            "base_lrs": list(self.base_lrs),
            "count": self.count,
            "after_end": self.after_end,
            "step_calls": self._step_count,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s data and rewrite the param groups at once.

        Raises ValueError when the state was saved with a different (resolved) schedule.
        """
        missing = {"step", "plateaus", "schedule", "base_lrs"} - set(state_dict)
        if missing:
            raise ValueError(
                f"not a Driver state: keys {sorted(missing)} are missing (got {sorted(state_dict)})"
            )
        for key in ("schedule", "momentum", "weight_decay"):
            mine = getattr(self, key)
            mine = None if mine is None else mine.to_dict()
            saved = state_dict.get(key)
            if saved != mine:
                raise ValueError(
                    f"the state was saved with {key} {_describe(saved)}, but this Driver runs"
                    f" {_describe(mine)}; build the Driver with the same {key} and total_steps"
                )
        plateaus = state_dict["plateaus"]
        if len(plateaus) != len(self.plateaus):
            raise ValueError(
                f"the state holds {len(plateaus)} plateau states, this Driver has"
                f" {len(self.plateaus)} plateaus"
            )
        base_lrs = [float(b) for b in state_dict["base_lrs"]]
        if len(base_lrs) != len(self.optimizer.param_groups):
            raise ValueError(
                f"the state has base lrs for {len(base_lrs)} param groups, the optimizer has"
                f" {len(self.optimizer.param_groups)}"
            )
        for p, s in zip(self.plateaus, plateaus):
            p.load_state_dict(s)
        self.base_lrs = base_lrs
        self._step = int(state_dict["step"])
        self._step_count = int(state_dict.get("step_calls", self._step_count))
        self._write(min(self._step, self.end))

    def __repr__(self) -> str:
        return f"Driver({self.schedule!r}, step={self._step})"


def _resolved(spec: Any, what: str, total: int | None, per_epoch: int | None) -> Schedule | None:
    if spec is None:
        if what == "schedule":
            raise ValueError("Driver needs a schedule: a Schedule, a number or a text spec")
        return None
    schedule = as_schedule(spec, f"Driver {what}").resolve(total, per_epoch)
    for node in schedule.walk():
        for f in dataclasses.fields(node):  # type: ignore[arg-type]
            if f.metadata.get("rest") and getattr(node, f.name) is None:
                raise ValueError(
                    f"the {what} {schedule!r} has a part without a length ({node!r}) that should"
                    " take the rest of the run, but the run's length is unknown: give"
                    " Driver(total_steps=N) or give that part steps=N"
                )
    try:
        schedule(0)
    except ValueError as e:
        raise ValueError(f"the {what} {schedule!r} cannot be evaluated: {e}") from None
    return schedule


# the code of torch's wrappers' step(), to tell from the caller's frame that one calls us
_WRAPPERS = {inspect.unwrap(w.step).__code__ for w in (ChainedScheduler, SequentialLR)}


def _describe(data: Any) -> str:
    if data is None:
        return "none"
    try:
        return repr(Schedule.from_dict(data))
    except (ValueError, TypeError):
        return repr(data)


__all__ = ["Driver"]
