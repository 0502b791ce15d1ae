"""``Watch``: the learning-rate signals of a training run, cheap enough to leave on.

In a plain loop::

    watch = Watch(model, optimizer, sinks=[CSVSink("runs/a")])
    for x, y in loader:
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        with watch.step(loss):          # or watch.after_backward(loss) ... watch.after_step()
            optimizer.step()
    watch.close()
    watch.history.get("train/grad_norm")

With fp16 mixed precision give it the scaler, ``Watch(model, optimizer, scaler=scaler)``:
``after_backward`` then unscales the gradients (where ``scaler.unscale_`` would go) and, with
a guard, hands the scaler to it (step and update the scaler on ``"ok"``: :mod:`lrkit.watch.amp`).

As a callback of :func:`lrkit.train.fit` (``fit(task, callbacks=[Watch(sinks=...)])``: model
and optimizer are taken from the run), and in Lightning through
:class:`lrkit.watch.lightning.LRWatchCallback`. Tags and the record format:
:mod:`lrkit.watch.logs`.

Per step the loss and the per-tensor gradient norms (one fused ``_foreach_norm``) go to a
small buffer: on an accelerator as 0-d tensors, read back in one transfer at each handover
(below; no host sync per step); on a CPU, where reading a tensor costs no sync, as numbers at
once (cheaper than keeping hundreds of tiny tensors alive). The records go to the sinks in one
batch every ``flush_every`` steps, or at the end of the first step once ``flush_secs`` seconds
have passed since the last handover, whichever comes first: a run killed with ``kill -9`` loses
at most 64 steps or 2 s (plus a step) of signals at the defaults (see :mod:`lrkit.watch.sinks`
for the sinks' share). Every ``every`` steps the parameters are copied (into one buffer kept
for the purpose) before the optimizer step to measure the update-to-weight ratios.

Under torchrun the gradients a Watch reads after ``backward()`` are the ones
DistributedDataParallel has averaged over the ranks, so its gradient norms and update ratios
are those of the whole run, the same on every rank; in :func:`~lrkit.train.fit` so is the loss
(fit's ``state.loss`` is the mean over the ranks; a plain loop's watch records the loss it is
given). Every rank keeps its signals in memory (``watch.history``); only rank 0 hands them to
the sinks, and a file sink made on another rank opens no file.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import torch
from torch import nn

from .. import dist
from ..checks import number, whole
from . import amp
from . import signals as sig
from .logs import Record, Signals, ema_run
from .readback import read_back
from .sinks import FLUSH_SECS, MemorySink


class Watch:
    """Record lr, momentum, loss, gradient norms, clipping, non-finite values and update ratios.

    Args:
        model: the model (names the per-layer tags); None in ``fit`` (taken from the run).
        optimizer: the optimizer whose param groups and parameters are watched; None in ``fit``.
        every: steps between per-layer measurements (gradient norms, update ratios); >= 1.
        sinks: where records go (:mod:`lrkit.watch.sinks`); they are always kept in memory too.
        smooth: weight of the loss's moving average, in [0, 1).
        driver: an optional :class:`lrkit.schedules.Driver`; step numbers start at its
            ``last_step`` (a resumed run goes on counting).
        clip_grad: the gradient-clipping threshold, if any: records ``train/grad_clipped``.
        flush_every: steps between reading the buffer back and handing it to the sinks; >= 1.
        flush_secs: hand the buffer over sooner, at the end of the first step once this many
            seconds have passed since the last handover; >= 0 (0: after every step).
        guard: a :class:`~lrkit.watch.Guard` (or True for one with its defaults) that checks
            every batch after the signals are taken; its actions join the signals as
            ``guard/{action}``. In :func:`~lrkit.train.fit` it acts by itself; in a plain loop
            :meth:`after_backward` returns its verdict: step the optimizer only on ``"ok"``.
        scaler: a ``GradScaler`` (fp16 mixed precision): :meth:`after_backward` unscales the
            gradients first (unless ``scaler.unscale_`` was called already), and hands the
            scaler to the guard (see :mod:`lrkit.watch.amp`); ``update_scaler=False`` where
            the caller updates the scaler after every batch, as Lightning does.
    """

    def __init__(
        self,
        model: nn.Module | None = None,
        optimizer: torch.optim.Optimizer | None = None,
        every: int = 25,
        sinks: Iterable[Any] = (),
        smooth: float = 0.98,
        driver: Any = None,
        *,
        clip_grad: float | None = None,
        flush_every: int = 64,
        flush_secs: float = FLUSH_SECS,
        guard: Any = None,
        scaler: Any = None,
        update_scaler: bool = True,
    ):
        self.every = whole(every, "Watch every", least=1)
        self.flush_every = whole(flush_every, "Watch flush_every", least=1)
        self.flush_secs = number(flush_secs, "Watch flush_secs", low=0)
        self._handover_due = time.monotonic() + self.flush_secs  # set after each handover
        self.smooth = number(smooth, "Watch smooth", low=0, high=1, high_open=True)
        self.clip_grad = (
            None
            if clip_grad is None
            else number(clip_grad, "Watch clip_grad", low=0, low_open=True)
        )
        self.sinks = list(sinks)
        for sink in self.sinks:
            if not callable(getattr(sink, "write", None)):
                raise TypeError(
                    f"a Watch sink needs write(records), flush() and close(); got"
                    f" {type(sink).__name__}"
                )
        self.guard = _guard(guard)  # its actions join these signals as guard/{action}
        self._guard_seen = 0  # the guard's records already taken in
        self.scaler, self.update_scaler = scaler, bool(update_scaler)
        self.memory = MemorySink()
        self.driver = driver
        self.global_step = 0
        self.model = model
        self.optimizer = None
        self._closed = False
        self._decision: str | None = None  # the guard's verdict on this batch (plain loops)
        self._ema = (0.0, 0)
        self._clear()
        if optimizer is not None:
            self.bind(model, optimizer, driver)
        elif model is not None:
            raise ValueError("Watch got a model but no optimizer; give both, or neither in fit")

    # -- set-up ---------------------------------------------------------------------------
    def bind(self, model: nn.Module | None, optimizer: torch.optim.Optimizer, driver=None):
        """Watch ``optimizer``'s parameters (named after ``model``); done by the constructor,
        or by ``fit`` and Lightning when the run builds them."""
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"Watch needs a torch.optim.Optimizer, got {type(optimizer).__name__}")
        self.model, self.optimizer = model, optimizer
        self.driver = driver if driver is not None else self.driver
        if self.driver is not None:
            self.global_step = int(getattr(self.driver, "last_step", 0))
        self.names, self.params = sig.named_parameters(model, optimizer)
        self.lr_tags, self.momentum_tags = sig.optimizer_tags(optimizer)
        self._momentum_key = sig.momentum_key(optimizer)
        # 0-d CPU tensors read back for free, one by one; elsewhere they are stacked first
        self._on_cpu = all(p.device.type == "cpu" for p in self.params)
        self._copies: list[torch.Tensor] | None = None  # reused for the update ratios

    def _clear(self) -> None:
        self._steps: list[int] = []
        self._lrs: list[list[float]] = []
        self._moms: list[list[float]] = []
        # on a CPU, numbers (reading a CPU tensor costs no sync, and dropping it at once lets
        # the allocator reuse its memory); elsewhere 0-d tensors, read back in one transfer
        self._losses: list[torch.Tensor | float | None] = []
        self._norms: list[Sequence[torch.Tensor | float]] = []  # per step, each tensor's
        self._measured: list[tuple[int, Any]] = []  # (row, update ratios: floats or a tensor)
        self._extra: list[Record] = []
        self._before: list[torch.Tensor] | None = None

    # -- a plain loop ---------------------------------------------------------------------
    def after_backward(self, loss: torch.Tensor | float | None = None) -> str:
        """Record this step's loss, lr, momentum and gradient norms (call before the
        optimizer step; a ``scaler``'s gradients are unscaled first); copies the parameters
        every ``every`` steps. ``loss`` may be given later to :meth:`after_step` instead.

        Returns ``"ok"``; with a ``guard``, its verdict on this batch: ``"ok"`` (step the
        optimizer), ``"skip"`` or ``"rollback"`` (don't: the guard has acted). Call
        :meth:`after_step` either way.
        """
        if self.scaler is not None and self.optimizer is not None:
            amp.unscale(self.scaler, self.optimizer)  # the true gradient norms
        self._record(loss)
        if self.guard is None:
            return "ok"
        if loss is None:
            raise ValueError("Watch(guard=...) needs the loss in after_backward(loss)")
        decision = self.guard.check(
            loss,
            self.model,
            self.optimizer,
            driver=self.driver,
            scaler=self.scaler,
            update_scaler=self.update_scaler,
        )
        if decision != "ok" or self.guard.overflowed:
            self._before = None  # no update ratio for an update not made
        self._decision = decision
        return decision

    def _record(self, loss: torch.Tensor | float | None) -> None:
        if self.optimizer is None:
            raise RuntimeError("Watch has no optimizer: give Watch(model, optimizer) or use fit")
        t = self.global_step
        groups = self.optimizer.param_groups
        self._steps.append(t)
        self._lrs.append([g["lr"] for g in groups])
        key = self._momentum_key
        if key == "momentum":
            self._moms.append([g["momentum"] for g in groups])
        elif key == "betas":
            self._moms.append([g["betas"][0] for g in groups])
        norms = sig.grad_norms(self.params)
        if self._on_cpu:
            norms = [x.item() for x in norms]
        self._norms.append(norms)
        self._losses.append(self._keep(loss))
        if t % self.every == 0:
            self._before = self._copies = sig.snapshot(self.params, self._copies)

    def after_step(self, loss: torch.Tensor | float | None = None) -> None:
        """Close the step: update ratios on measured steps; every ``flush_every`` steps, or
        once ``flush_secs`` seconds have passed since the last handover, read the buffer back
        and hand the records to the sinks."""
        if loss is not None and self._losses:
            self._losses[-1] = self._keep(loss)
        decision, self._decision = self._decision, None
        if decision == "ok":  # a plain loop's guard counts the update and keeps its snapshots
            self.guard.after_step()
        if self._before is not None:
            if self._on_cpu:
                size, moved = sig.update_norms(self.params, self._before)
                ratios = [sig.ratio(m.item(), s.item()) for s, m in zip(size, moved)]
            else:
                ratios = sig.update_ratios(self.params, self._before)
            self._measured.append((len(self._steps) - 1, ratios))
            self._before = None
        self.global_step += 1
        if len(self._steps) >= self.flush_every or time.monotonic() >= self._handover_due:
            self._drain()

    def _keep(self, loss: Any) -> torch.Tensor | float | None:
        """The loss as kept until the read-back: a number on a CPU, else a detached tensor."""
        if isinstance(loss, torch.Tensor):
            return loss.item() if loss.is_cpu else loss.detach()
        return None if loss is None else float(loss)

    @contextlib.contextmanager
    def step(self, loss: torch.Tensor | float | None = None) -> Iterator[bool]:
        """``with watch.step(loss): optimizer.step()``: after_backward, the body, after_step.

        With a guard, ``with watch.step(loss) as go: if go: optimizer.step()``: ``go`` is
        whether the guard lets this update through."""
        go = self.after_backward(loss) == "ok"
        yield go
        self.after_step()

    @property
    def grad_norm(self) -> torch.Tensor | None:
        """The last recorded step's global gradient norm (a 0-d tensor; no host sync)."""
        if not self._norms:
            return None
        return sig.global_norm([torch.as_tensor(x) for x in self._norms[-1]])

    def log(self, tag: str, value: float, step: int | None = None) -> None:
        """Add one record (``val/...``, ``guard/...``); ``step`` defaults to the current one."""
        self._extra.append((self.global_step if step is None else int(step), tag, float(value)))

    # -- reading back -----------------------------------------------------------------------
    def flush(self) -> None:
        """Read the buffer back, write it to the sinks and flush them (to disk)."""
        self._drain()
        for sink in self.sinks:
            sink.flush()
        self._handover_due = time.monotonic() + self.flush_secs  # after the sinks' flushes

    def _drain(self) -> None:
        """Read the buffer back (one transfer) and hand the records to the sinks in a batch;
        the next time bound counts from after their writes (a sink flushed there is due then)."""
        columns = self._collect()
        self.memory.add_columns(columns)
        if self.sinks and columns and dist.is_main():  # under torchrun rank 0 writes
            records = [(t, tag, v) for tag, (ts, vs) in columns.items() for t, v in zip(ts, vs)]
            records.sort(key=lambda r: r[0])  # stable: each step's records in tag order
            for sink in self.sinks:
                sink.write(records)
        self._handover_due = time.monotonic() + self.flush_secs

    def _collect(self) -> dict[str, tuple[list[int], list[float]]]:
        """The buffer as columns ``tag -> (steps, values)``; empties it."""
        columns: dict[str, tuple[list[int], list[float]]] = {}

        def put(tag: str, steps: list[int], values: list[float]) -> None:
            column = columns.setdefault(tag, ([], []))
            column[0].extend(steps)
            column[1].extend(values)

        n, p, steps = len(self._steps), len(self.params), self._steps
        if n:
            have_loss = [i for i, x in enumerate(self._losses) if x is not None]
            rows = [i for i, _ in self._measured]
            losses, totals, bad, layer_norms, ratios = read_back(
                self._on_cpu, self._losses, self._norms, self._measured, p, have_loss, rows
            )
            for k, tag in enumerate(self.lr_tags):
                put(tag, steps, [float(lrs[k]) for lrs in self._lrs])
            for k, tag in enumerate(self.momentum_tags):
                put(tag, steps, [float(moms[k]) for moms in self._moms])
            loss_steps = [steps[i] for i in have_loss]
            smoothed, self._ema = ema_run(losses, self.smooth, self._ema)
            put("train/loss", loss_steps, losses)
            put("train/loss_smooth", loss_steps, smoothed)
            put("train/grad_norm", steps, totals)
            if self.clip_grad is not None:
                put("train/grad_clipped", steps, [float(x > self.clip_grad) for x in totals])
            for i, x in zip(have_loss, losses):
                bad[i] += not math.isfinite(x)
            put("train/nonfinite", steps, bad)
            at = [steps[i] for i in rows]
            for j, name in enumerate(self.names):
                put(f"train/grad_norm/{name}", at, layer_norms[j::p])
                put(f"train/update_ratio/{name}", at, ratios[j::p])
        if self.guard is not None:  # the guard's actions since the last read-back
            self._extra += self.guard.records[self._guard_seen :]
            self._guard_seen = len(self.guard.records)
        for t, tag, value in self._extra:
            put(tag, [t], [value])
        before = self._before
        self._clear()
        self._before = before  # a step in progress keeps its copy
        return {tag: column for tag, column in columns.items() if column[0]}

    @property
    def history(self) -> Signals:
        """Every signal so far as a :class:`~lrkit.watch.logs.Signals` (flushes first)."""
        self.flush()
        return Signals(self.memory.columns)

    def close(self) -> None:
        """Flush and close every sink; idempotent."""
        if self._closed:
            return
        self.flush()
        for sink in self.sinks:
            sink.close()
        self._closed = True

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- lrkit.train.fit's events --------------------------------------------------------
    def on_train_start(self, state) -> None:
        if self.optimizer is None:
            self.bind(state.model, state.optimizer, state.driver)
        if self.clip_grad is None and getattr(state, "clip_grad", None):
            self.clip_grad = float(state.clip_grad)
        self.global_step = state.step
        if self.guard is not None:
            self.guard.on_train_start(state)
            self._guard_seen = 0

    def on_after_backward(self, state) -> None:
        self.global_step = state.step
        self._record(state.loss)
        if self.guard is not None:  # after the signals, so a skipped batch is still recorded
            self.guard.on_after_backward(state)

    def on_after_step(self, state) -> None:
        self.after_step()
        if self.guard is not None:
            self.guard.on_after_step(state)

    def on_epoch_end(self, state) -> None:
        if self.guard is not None:
            self.guard.on_epoch_end(state)

    def on_validation_end(self, state) -> None:
        if state.val_loss is not None:
            self.log("val/loss", state.val_loss, state.step)
        name = getattr(state.history, "metric_name", "val_loss")
        if state.metric is not None and name != "val_loss":
            self.log(f"val/{name}", state.metric, state.step)
        if self.guard is not None:
            self.guard.on_validation_end(state)

    def on_train_end(self, state) -> None:
        if self.guard is not None:
            self.guard.on_train_end(state)
        self.close()

    def __repr__(self) -> str:
        opt = "unbound" if self.optimizer is None else type(self.optimizer).__name__
        return f"Watch({opt}, every={self.every}, sinks={self.sinks!r}, step={self.global_step})"


def _guard(guard: Any):
    """``guard=`` of a Watch: None, True (a default :class:`Guard`) or a Guard."""
    from .guard import Guard

    if guard is True:
        return Guard()
    if guard is not None and guard is not False and not isinstance(guard, Guard):
        raise TypeError(f"Watch guard must be a Guard, True or None; got {type(guard).__name__}")
    return guard or None


__all__ = ["Watch"]
