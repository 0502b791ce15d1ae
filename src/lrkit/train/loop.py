"""``fit``: one training loop, readable top to bottom.

>>> from lrkit.train import fit
>>> history = fit("digits-mlp", lr=0.05, schedule="warmup(5%) >> cosine(to=0.01)", epochs=1,
...               progress=False)
>>> history.status, history.steps
('completed', 23)

A step budget, a validation cadence and a report hook (what a tuner prunes with):

>>> seen = []
>>> history = fit("digits-mlp", lr=0.05, steps=30, val_every=10, progress=False,
...               report=lambda step, metric, val_loss: seen.append(step) or step >= 20)
>>> seen, history.status, history.steps
([10, 20], 'stopped', 20)
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from .. import dist
from ..checks import check_lr, number
from ..runtime import torch_threads
from ..schedules import Driver, Schedule, as_schedule
from ..tasks import Task, get_task, is_schedule_free
from . import ranks
from .amp import Mixed
from .callbacks import Events, ProgressBar, State
from .history import FAILED, INTERRUPTED, RUNNING, History
from .misfit import ScheduleFitWarning, schedule_misfit
from .plan import Report, make_plan
from .saver import SAVE_SECS, Saver, save_first
from .window import Window, finish

SYNC_EVERY = 16  # steps between reading the losses back (one device sync per window)


@dist.failures("fit")  # a rank that died or hung: a UserError on the others, not gloo's own
def fit(
    task: Task | str,
    lr: float | None = None,
    schedule: Schedule | str | float | None = None,
    *,
    epochs: int | None = None,
    steps: int | None = None,
    val_every: int | None = None,
    report: Report | None = None,
    callbacks: Iterable[Any] = (),
    seed: int | None = None,
    progress: bool | None = None,
    out: str | Path | None = None,
    save_secs: float = SAVE_SECS,
    momentum: Schedule | str | float | None = None,
    clip_grad: float | None = None,
    autocast: str | None = None,
    scaler: Any = None,
) -> History:
    """Train ``task`` once and return its :class:`History`.

    Args:
        task: a :class:`~lrkit.tasks.Task`, a built-in name or ``"package.module:function"``.
        lr: the peak (base) lr; the schedule's values multiply it. Default: the task's lr.
        schedule: a Schedule, a text spec (``"warmup(5%) >> cosine(to=0.01)"``) or a number;
            default: constant. Fractions resolve against the run's length in steps.
        epochs: passes over the training data (default: the task's); the run is
            ``epochs * len(train_loader)`` steps.
        steps: a step budget instead of epochs: the run is ``steps`` batches long, as many
            epochs as that takes, ending mid-epoch where the budget does. Give ``epochs`` or
            ``steps``, not both.
        val_every: validate every ``val_every`` steps (batches) instead of after every epoch.
            Either way the run's final weights are validated too, when the last step is not
            a validation point already (a budget that ends mid-epoch).
        report: ``report(step, metric, val_loss)``, called after every validation (after the
            ``on_validation_end`` event); a true return value ends the run there, with status
            ``"stopped"`` (this is how a tuner prunes a trial).
        seed: defaults to the task's.
        callbacks: objects with any of the events in :mod:`lrkit.train.callbacks`.
        progress: a rich progress bar; ``None`` shows it only when stdout is a terminal.
        out: a folder to save the history into (``history.json``, ``steps.csv``): when
            training starts, while it runs (see below) and when it ends.
        save_secs: with ``out``, seconds between saves of the history while the run trains
            (>= 0; ``math.inf``: only at validations and at the end).
        momentum: an optional schedule of absolute momentum (or Adam's beta1) values.
        clip_grad: clip the global gradient norm to this value before each update (after
            ``on_after_backward``, so callbacks see the norm before clipping); None: no clipping.
        autocast: mixed precision: None (full precision), ``"bf16"`` or ``"fp16"``: the
            forward pass and the loss under ``torch.autocast``; with ``"fp16"`` a GradScaler
            scales the loss (see :mod:`lrkit.train.amp`: the gradients callbacks and
            ``clip_grad`` see are unscaled, an update the scaler skips is not a step).
        scaler: the ``torch.amp.GradScaler`` for ``autocast="fp16"`` (default: a new one);
            it is ``state.scaler`` for callbacks, and ``history.scale`` and
            ``history.overflows`` record its final scale and the updates it skipped.

    Each validation's loss is reported to the driver when the schedule has a plateau factor.
    A finite schedule that ends before the run or is cut by it is named, before training
    starts, by a :class:`~lrkit.train.misfit.ScheduleFitWarning`.
    A non-finite loss ends the run with ``status == "diverged"``.
    A schedule-free optimizer (whose weights to evaluate are an average) trains in
    ``optimizer.train()`` mode and is in ``optimizer.eval()`` mode from each validation to
    the end of its report hook (``on_validation_end`` included: a callback saving weights
    there saves the average), and from the run's end on (``on_train_end`` included).
    A callback that sets ``state.skip`` in ``on_after_backward`` skips that update: no
    optimizer step, no driver advance, no ``on_after_step``; the loss is still recorded (its
    row listed in ``history.skipped``) and, if not finite, does not end the run. A skipped
    update's batch still counts towards ``steps`` and ``val_every`` (they count batches).
    While it runs, torch uses ``task.threads`` CPU threads when the task sets them.

    **Under torchrun** (inside a process group of several ranks) every rank trains on its own
    shard of the training data, the model in DistributedDataParallel (see
    :mod:`lrkit.train.ranks` for which train loaders can be sharded), and the ranks run as one:
    ``state.loss`` and the recorded losses are the mean over the ranks, the metric and
    validation loss too, and a stop (a callback's, the report hook's, a non-finite loss) is
    agreed, so every rank returns the same History at the same step. Only rank 0 shows the
    progress bar and writes ``out``. Every rank must give the same task, lr, schedule, epochs,
    steps, val_every, seed, momentum, clip_grad and autocast (they decide the collectives):
    the ranks compare them first (:func:`lrkit.dist.same_settings`), and where one differs
    every rank raises the same UserError naming it. An exception on one rank alone leaves the others waiting
    in their next collective until the process group's timeout; then (or at once, when it
    died) they raise :class:`~lrkit.errors.UserError` naming their rank and the timeout.

    **Saving while it runs.** With ``out``, the history is saved when training starts, then at
    the end of the first step once ``save_secs`` seconds (default 2) have passed since the
    last save, after each validation, and when the run ends (also on an exception or an
    interrupt). A history saved mid-run has ``status == "running"`` and a ``reason`` naming
    its last step: it is partial. Each file is written whole and then renamed over the last
    one, so a run killed with ``kill -9`` leaves a complete ``history.json`` and
    ``steps.csv``. Saving rewrites the whole history, whose cost grows with the run, so a save
    also waits until 100 times its expected duration (the last save's, per row) has passed
    since the last: saving takes about 1% of the run's time at most. A kill thus loses the
    steps of at most the last ``max(save_secs, 100 * one save's duration)`` seconds, plus the
    step in progress: 2 s on most runs; on digits-mlp at 2,500 steps a second, where a save
    of 20,000 steps takes 65 ms, about 6 s; on a history of a million steps, minutes.
    """
    given = {"task": f"{task.name} (seed {task.seed})" if isinstance(task, Task) else task,
             "lr": lr, "schedule": schedule, "epochs": epochs, "steps": steps,
             "val_every": val_every, "seed": seed, "momentum": momentum,
             "clip_grad": clip_grad, "autocast": autocast}  # fmt: skip
    dist.same_settings("fit", given)  # under torchrun: before one rank alone refuses any
    task = get_task(task)
    lr = task.lr if lr is None else check_lr(lr)
    plan = make_plan(
        task,
        epochs=epochs,
        steps=steps,
        val_every=val_every,
        report=report,
        seed=seed,
        clip_grad=clip_grad,
        autocast=autocast,
    )
    schedule = as_schedule(1.0 if schedule is None else schedule, "schedule")
    saver = None if out is None else Saver(out, number(save_secs, "save_secs", low=0, finite=False))
    if dist.is_distributed() and not dist.is_main():
        saver = None  # under torchrun only rank 0 writes (outside a group a stray RANK is none)
    with torch_threads(task.threads):
        run = _Run(task, lr, schedule, plan, list(callbacks), progress, momentum, scaler)
        return run.go(saver)


class _Run:
    """The loop itself: build, then train, validating at the plan's cadence, and record."""

    def __init__(self, task, lr, schedule, plan, callbacks, progress, momentum, scaler):
        self.task, self.plan = task, plan
        self.distributed = dist.is_distributed()  # under torchrun: see lrkit.train.ranks
        built = task.build_model(plan.seed)
        self.net = ranks.wrap_model(built) if self.distributed else built  # what trains
        self.model = ranks.unwrap(built)  # what callbacks see and validation uses
        self.optimizer = task.build_optimizer(self.model, lr)
        self.mixed = Mixed(plan.autocast, scaler, _device_type(self.model))
        self.schedule_free = is_schedule_free(self.optimizer)
        self.train_loader, self.val_loader = task.build_loaders(plan.seed)
        if self.distributed:
            self.train_loader = ranks.shard_loader(
                self.train_loader, plan.seed, dist.rank(), dist.world_size()
            )
        spe = len(self.train_loader)
        if spe < 1:
            raise ValueError(f"the training data of task {task.name!r} has no batches")
        self.total = plan.epochs * spe if plan.steps is None else plan.steps
        self.driver = Driver(
            self.optimizer, schedule, momentum=momentum, total_steps=self.total, steps_per_epoch=spe
        )
        misfit = schedule_misfit(self.driver.schedule, self.total)
        if misfit is not None:
            warnings.warn(misfit, ScheduleFitWarning, stacklevel=4)  # past fit and its decorator
        self.history = History(
            task=task.name,
            metric_name=task.metric.name,
            higher_is_better=task.metric.higher_is_better,
            lr=lr,
            schedule=repr(schedule),
            resolved_schedule=repr(self.driver.schedule),
            seed=plan.seed,
            epochs=math.ceil(self.total / spe),
            steps_per_epoch=spe,
            total_steps=self.total,
        )
        self.state = State(
            task, self.model, self.optimizer, self.driver, self.history,
            self.train_loader, self.val_loader, self.total,
        )  # fmt: skip
        self.state.clip_grad = plan.clip_grad
        self.state.autocast, self.state.scaler = plan.autocast, self.mixed.scaler
        self.mixed.record(self.history)
        if ProgressBar.wanted(progress) and not (self.distributed and not dist.is_main()):
            callbacks.append(ProgressBar())
        self.events = Events(callbacks)
        self.window = Window(self.history)
        self.reported_stop = False
        self.start = 0.0

    def go(self, saver: Saver | None) -> History:
        state, history = self.state, self.history
        self.saver = saver
        save_first(
            saver, self.history, state.step
        )  # before any event: a folder that cannot be written stops it
        self.events("on_train_start", state)
        self._train_mode()
        # the data order and dropout depend on the seed only (and the rank, under torchrun)
        torch.manual_seed(self.plan.seed + dist.rank())
        self.start = time.perf_counter()
        try:
            self._train()
            self.window.flush(state.epoch)
        except KeyboardInterrupt:
            self.window.flush(state.epoch)
            history.status, history.reason = INTERRUPTED, f"interrupted at step {state.step}"
            raise
        except Exception as e:
            history.status = FAILED
            history.reason = f"{type(e).__name__} at step {state.step}: {e}"
            raise
        finally:
            self.driver.close()
            self.mixed.record(history)
            history.time = time.perf_counter() - self.start
            if history.status == RUNNING:
                finish(history, state, self.window, self.reported_stop)
            self._eval_mode()  # the weights the run leaves: the averaged ones
            self.events("on_train_end", state)
            if saver is not None:
                saver.save(history)
        return history

    def _train(self) -> None:
        """Epoch after epoch until the plan's steps are done or the run must end."""
        state, task, net, optimizer, mixed = (
            self.state, self.task, self.net, self.optimizer, self.mixed
        )  # fmt: skip
        spe, every, done = len(self.train_loader), self.plan.val_every, 0
        for epoch in range(self.history.epochs):
            state.epoch = epoch
            net.train()
            ranks.set_epoch(self.train_loader, epoch)
            n = 0  # batches of this epoch
            for batch in self.train_loader:
                with mixed.autocast():
                    loss = task.loss(net, batch)
                optimizer.zero_grad(set_to_none=True)
                mixed.backward(loss, optimizer)  # fp16: the gradients unscaled, once
                state.batch, state.loss, state.skip = batch, self._mean(loss.detach()), False
                self.events("on_after_backward", state)
                lrs = [g["lr"] for g in optimizer.param_groups]
                applied = overflowed = False
                if not state.skip:
                    if self.plan.clip_grad is not None:
                        torch.nn.utils.clip_grad_norm_(net.parameters(), self.plan.clip_grad)
                    applied = mixed.step(optimizer, self.driver)
                    overflowed = not applied and mixed.overflowed(state.loss)
                mixed.update()  # every batch, once (fit's Guard leaves it to the loop)
                self.window.add(state.step, lrs, state.loss, state.skip, overflowed)
                if applied:
                    self.driver.step()
                    state.step += 1
                    self.events("on_after_step", state)
                done, n = done + 1, n + 1
                if self.distributed:  # a callback's stop on one rank stops every rank
                    state.stop = dist.agree(state.stop)
                if state.stop or (state.step % SYNC_EVERY == 0 and not self.window.flush(epoch)):
                    return
                if self.saver is not None and self.saver.due(time.monotonic(), done):
                    if not self._save_running():
                        return
                if n == spe or done == self.total:
                    break  # the epoch's (or the run's) end, below
                if every is not None and done % every == 0:
                    if not self._validate():
                        return
                    net.train()
                    self._train_mode()
            else:
                n = spe  # a loader shorter than its len(): its epoch has ended all the same
            if not self.window.flush(epoch):
                return
            if n == spe:
                self.events("on_epoch_end", state)
            due = n == spe if every is None else done % every == 0
            state.final = done == self.total
            if (due or state.final) and not self._validate():
                return
            if done == self.total:
                return
            self._train_mode()

    def _validate(self) -> bool:
        """Validate, record, fire ``on_validation_end`` and the report; False: the run ends."""
        state = self.state
        if not self.window.flush(state.epoch):
            return False
        self._eval_mode()  # a schedule-free optimizer: the averaged weights, until training resumes
        metric, val_loss = self.task.validate(self.model, self.val_loader)
        # under torchrun, the means over the ranks: the same numbers and decisions on every rank
        state.metric, state.val_loss = dist.mean([metric, val_loss])  # one all-reduce
        if self.driver.plateaus and math.isfinite(state.val_loss):
            self.driver.report(state.val_loss)
        self.history.add_epoch(
            state.epoch, state.metric, state.val_loss, time.perf_counter() - self.start,
            step=state.step,
        )  # fmt: skip
        self.events("on_validation_end", state)
        state.stop = dist.agree(state.stop)  # a stop on one rank (at an epoch's end too): all
        if self.plan.report is not None and not state.stop:
            if dist.agree(bool(self.plan.report(state.step, state.metric, state.val_loss))):
                state.stop = self.reported_stop = True
        saver = self.saver
        if saver is not None and not state.stop and saver.affordable(time.monotonic(), state.step):
            self._save_running()  # the window is empty: flushed above
        return not state.stop

    def _mean(self, loss: torch.Tensor) -> torch.Tensor:
        """The loss itself; under torchrun its mean over the ranks (the same on every rank)."""
        if not self.distributed:
            return loss
        return torch.tensor(dist.mean(loss), dtype=loss.dtype, device=loss.device)

    def _train_mode(self) -> None:  # a schedule-free optimizer: the training point
        if self.schedule_free:
            self.optimizer.train()

    def _eval_mode(self) -> None:  # a schedule-free optimizer: the averaged weights
        if self.schedule_free:
            self.optimizer.eval()

    def _save_running(self) -> bool:
        """Flush the window and save the history so far as ``"running"``; False: the run ends
        (a loss was not finite: the final save follows at once). Under torchrun only rank 0
        saves, on its own clock: it goes on to the next point where every rank reads its
        window (SYNC_EVERY steps, a validation, an epoch's end), and all end there together."""
        if not self.window.flush(self.state.epoch) and not self.distributed:
            return False
        self.mixed.record(self.history)
        self.saver.save_running(self.history, self.state.step, time.perf_counter() - self.start)
        return True


def _device_type(model: torch.nn.Module) -> str:
    """Where the model's parameters are (``"cpu"``, ``"cuda"``): autocast's device type."""
    return next((p.device.type for p in model.parameters()), "cpu")
