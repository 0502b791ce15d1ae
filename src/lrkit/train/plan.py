"""The checked settings of one :func:`~lrkit.train.fit` run (:class:`Plan`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..checks import number, whole
from ..tasks import Task
from .amp import check_autocast

Report = Callable[[int, float, float], Any]  # report(step, metric, val_loss) -> stop?


@dataclass(frozen=True)
class Plan:
    """The checked settings of one run."""

    epochs: int
    steps: int | None
    val_every: int | None
    report: Report | None
    seed: int
    clip_grad: float | None
    autocast: str | None = None


def make_plan(
    task: Task,
    *,
    epochs: int | None,
    steps: int | None,
    val_every: int | None,
    report: Report | None,
    seed: int | None,
    clip_grad: float | None,
    autocast: str | None = None,
) -> Plan:
    """The settings of ``fit``'s arguments, checked; None: the task's own (epochs, seed)."""
    if epochs is not None and steps is not None:
        raise ValueError(f"give epochs or steps, not both (got epochs={epochs!r}, steps={steps!r})")
    clip = None if clip_grad is None else number(clip_grad, "clip_grad", low=0, low_open=True)
    return Plan(
        epochs=task.epochs if epochs is None else whole(epochs, "epochs", least=1),
        steps=None if steps is None else whole(steps, "steps", least=1),
        val_every=None if val_every is None else whole(val_every, "val_every", least=1),
        report=_check_report(report),
        seed=task.seed if seed is None else seed,
        clip_grad=clip,
        autocast=check_autocast(autocast),
    )


def _check_report(report: Any) -> Report | None:
    if report is not None and not callable(report):
        raise ValueError(
            f"report must be a function report(step, metric, val_loss) or None, got {report!r}"
        )
    return report
