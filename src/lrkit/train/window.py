"""The loss window of :func:`~lrkit.train.fit`: the losses and lrs of the last few steps, read
back to the history in one go (one device sync per window), and the run's final status.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from .callbacks import State
from .history import COMPLETED, DIVERGED, STOPPED, History


class Window:
    """Losses and lrs of the last few steps, read back to the history in one go."""

    def __init__(self, history: History):
        self.history = history
        self.steps: list[int] = []
        self.lrs: list[list[float]] = []
        self.losses: list[torch.Tensor] = []
        self.skipped: list[bool] = []
        self.overflowed: list[bool] = []  # the GradScaler skipped the update
        self.bad: tuple[int, float] | None = None  # the first (step, loss) not finite

    def add(
        self, step: int, lrs: list[Any], loss: torch.Tensor, skipped: bool, overflowed: bool
    ) -> None:
        self.steps.append(step)
        self.lrs.append([float(x) for x in lrs])
        self.losses.append(loss)
        self.skipped.append(skipped)
        self.overflowed.append(overflowed)

    def flush(self, epoch: int) -> bool:
        """Move the window into the history; False once the loss of an update was not finite."""
        if self.losses:
            values = torch.stack(self.losses).float().tolist()
            first_row = self.history.steps
            self.history.add_steps(self.steps, epoch, self.lrs, values)
            self.history.skipped.extend(first_row + i for i, s in enumerate(self.skipped) if s)
            self.history.overflowed.extend(
                first_row + i for i, o in enumerate(self.overflowed) if o
            )
            for step, value, skipped in zip(self.steps, values, self.skipped):
                if not skipped and not math.isfinite(value) and self.bad is None:
                    self.bad = (step, value)
            self.steps, self.lrs, self.losses = [], [], []
            self.skipped, self.overflowed = [], []
        return self.bad is None


def finish(history: History, state: State, window: Window, reported: bool) -> None:
    """Set a run's status and reason from how it ended: a loss that was not finite, the
    report hook's stop, a callback's stop, or the plan done."""
    if window.bad is not None:
        step, value = window.bad
        history.status = DIVERGED
        history.reason = (
            f"the loss was {value} at step {step} (epoch {state.epoch});"
            " training stopped: try a lower lr or a warmup"
        )
    elif reported:
        history.status = STOPPED
        history.reason = f"the report hook asked to stop at step {state.step}"
    elif state.stop:
        history.status, history.reason = STOPPED, f"stopped by a callback at step {state.step}"
    else:
        history.status = COMPLETED
