"""``fit``: one training loop, readable top to bottom.

>>> from lrkit.train import fit
>>> history = fit("digits-mlp", lr=0.05, schedule="warmup(5%) >> cosine(to=0.01)", epochs=1,
...               progress=False)
>>> history.status, history.steps
('completed', 23)
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from ..checks import check_lr
from ..runtime import torch_threads
from ..schedules import Driver, Schedule, as_schedule
from ..tasks import Task, get_task
from .callbacks import Events, ProgressBar, State
from .history import COMPLETED, DIVERGED, FAILED, INTERRUPTED, RUNNING, STOPPED, History

SYNC_EVERY = 16  # steps between reading the losses back (one device sync per window)


def fit(
    task: Task | str,
    lr: float | None = None,
    schedule: Schedule | str | float | None = None,
    *,
    epochs: int | None = None,
    callbacks: Iterable[Any] = (),
    seed: int | None = None,
    progress: bool | None = None,
    out: str | Path | None = None,
    momentum: Schedule | str | float | None = None,
    clip_grad: float | None = None,
) -> History:
    """Train ``task`` once and return its :class:`History`.

    Args:
        task: a :class:`~lrkit.tasks.Task`, a built-in name or ``"package.module:function"``.
        lr: the peak (base) lr; the schedule's values multiply it. Default: the task's lr.
        schedule: a Schedule, a text spec (``"warmup(5%) >> cosine(to=0.01)"``) or a number;
            default: constant. Fractions resolve against ``epochs * len(train_loader)`` steps.
        epochs, seed: default to the task's.
        callbacks: objects with any of the events in :mod:`lrkit.train.callbacks`.
        progress: a rich progress bar; ``None`` shows it only when stdout is a terminal.
        out: a folder to save the history into (``history.json``, ``steps.csv``).
        momentum: an optional schedule of absolute momentum (or Adam's beta1) values.
        clip_grad: clip the global gradient norm to this value before each update (after
            ``on_after_backward``, so callbacks see the norm before clipping); None: no clipping.

    Validation runs after every epoch; its loss is reported to the driver when the schedule
    has a plateau factor. A non-finite loss ends the run with ``status == "diverged"``.
    A callback that sets ``state.skip`` in ``on_after_backward`` skips that update: no
    optimizer step, no driver advance, no ``on_after_step``; the loss is still recorded (its
    row listed in ``history.skipped``) and, if not finite, does not end the run.
    While it runs, torch uses ``task.threads`` CPU threads when the task sets them.
    """
    task = get_task(task)
    lr = task.lr if lr is None else check_lr(lr)
    epochs = task.epochs if epochs is None else _check_epochs(epochs)
    seed = task.seed if seed is None else seed
    schedule = as_schedule(1.0 if schedule is None else schedule, "schedule")
    clip_grad = None if clip_grad is None else _check_clip_grad(clip_grad)
    with torch_threads(task.threads):
        return _run(
            task, lr, schedule, epochs, seed, list(callbacks), progress, out, momentum, clip_grad
        )


def _run(task, lr, schedule, epochs, seed, callbacks, progress, out, momentum, clip_grad):
    """The loop itself: build, then train, validate and record epoch by epoch."""
    model = task.build_model(seed)
    optimizer = task.build_optimizer(model, lr)
    train_loader, val_loader = task.build_loaders(seed)
    steps_per_epoch = len(train_loader)
    total_steps = epochs * steps_per_epoch
    driver = Driver(
        optimizer,
        schedule,
        momentum=momentum,
        total_steps=total_steps,
        steps_per_epoch=steps_per_epoch,
    )
    history = History(
        task=task.name,
        metric_name=task.metric.name,
        higher_is_better=task.metric.higher_is_better,
        lr=lr,
        schedule=repr(schedule),
        resolved_schedule=repr(driver.schedule),
        seed=seed,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
    )
    state = State(task, model, optimizer, driver, history, train_loader, val_loader, total_steps)
    state.clip_grad = clip_grad
    if ProgressBar.wanted(progress):
        callbacks.append(ProgressBar())
    events = Events(callbacks)
    window = _Window(history)

    events("on_train_start", state)
    torch.manual_seed(seed)  # the data order and dropout depend on the seed only
    start = time.perf_counter()
    try:
        for epoch in range(epochs):
            state.epoch = epoch
            model.train()
            for batch in train_loader:
                loss = task.loss(model, batch)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                state.batch, state.loss, state.skip = batch, loss.detach(), False
                events("on_after_backward", state)
                lrs = [g["lr"] for g in optimizer.param_groups]
                window.add(state.step, lrs, state.loss, skipped=state.skip)
                if not state.skip:
                    if clip_grad is not None:
                        torch.nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
                    optimizer.step()
                    driver.step()
                    state.step += 1
                    events("on_after_step", state)
                if state.stop or (state.step % SYNC_EVERY == 0 and not window.flush(epoch)):
                    break
            if not window.flush(epoch) or state.stop:
                break
            events("on_epoch_end", state)
            state.metric, state.val_loss = task.validate(model, val_loader)
            if driver.plateaus and math.isfinite(state.val_loss):
                driver.report(state.val_loss)
            history.add_epoch(epoch, state.metric, state.val_loss, time.perf_counter() - start)
            events("on_validation_end", state)
            if state.stop:
                break
    except KeyboardInterrupt:
        window.flush(state.epoch)
        history.status, history.reason = INTERRUPTED, f"interrupted at step {state.step}"
        raise
    except Exception as e:
        history.status, history.reason = FAILED, f"{type(e).__name__} at step {state.step}: {e}"
        raise
    finally:
        driver.close()
        history.time = time.perf_counter() - start
        if history.status == RUNNING:
            _finish(history, state, window)
        events("on_train_end", state)
        if out is not None:
            history.save(out)
    return history


class _Window:
    """Losses and lrs of the last few steps, read back to the history in one go."""

    def __init__(self, history: History):
        self.history = history
        self.steps: list[int] = []
        self.lrs: list[list[float]] = []
        self.losses: list[torch.Tensor] = []
        self.skipped: list[bool] = []
        self.bad: tuple[int, float] | None = None  # the first (step, loss) not finite

    def add(self, step: int, lrs: list[Any], loss: torch.Tensor, skipped: bool) -> None:
        self.steps.append(step)
        self.lrs.append([float(x) for x in lrs])
        self.losses.append(loss)
        self.skipped.append(skipped)

    def flush(self, epoch: int) -> bool:
        """Move the window into the history; False once the loss of an update was not finite."""
        if self.losses:
            values = torch.stack(self.losses).float().tolist()
            first_row = self.history.steps
            self.history.add_steps(self.steps, epoch, self.lrs, values)
            self.history.skipped.extend(
                first_row + i for i, skipped in enumerate(self.skipped) if skipped
            )
            for step, value, skipped in zip(self.steps, values, self.skipped):
                if not skipped and not math.isfinite(value) and self.bad is None:
                    self.bad = (step, value)
            self.steps, self.lrs, self.losses, self.skipped = [], [], [], []
        return self.bad is None


def _finish(history: History, state: State, window: _Window) -> None:
    if window.bad is not None:
        step, value = window.bad
        history.status = DIVERGED
        history.reason = (
            f"the loss was {value} at step {step} (epoch {state.epoch});"
            " training stopped: try a lower lr or a warmup"
        )
    elif state.stop:
        history.status, history.reason = STOPPED, f"stopped by a callback at step {state.step}"
    else:
        history.status = COMPLETED


def _check_epochs(epochs: Any) -> int:
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a whole number >= 1, got {epochs!r}")
    return epochs


def _check_clip_grad(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
        raise ValueError(f"clip_grad must be a finite number > 0 (or None), got {value!r}")
    return float(value)
