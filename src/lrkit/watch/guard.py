"""Guard: skip a bad update, roll back repeated trouble with a lower lr, and go on.

The rule, checked after every backward pass, before the optimizer step:

- a batch is *trouble* when its loss or its global gradient norm is not finite, or is a spike:
  ``z = (x - mean) / std > z`` over the last ``window`` good values (of the log of the loss,
  as spikes are multiplicative and a mini-batch loss is skewed, or of the loss itself when it
  is not always positive; and of the log of the gradient norm; at least 10 of them; the std is
  floored at 0.05 in logs, or 1% of the mean loss, so a flat curve with a small bump is not
  called a spike); or a *drift*: the same z of the loss against the window's mean and std
  when the last snapshot was taken (or when the window first filled), which catches a loss
  that climbs step by step, each step no spike against a window that climbs with it;
- trouble skips that update (no optimizer step, no driver advance);
- more than ``max_skips`` skips within the last ``window`` batches roll back instead: the last
  good snapshot comes back in place (model, optimizer, driver, RNG; see
  :class:`~lrkit.train.Snapshot`), and the lr becomes ``factor`` times what it was just before
  (through the driver's base lrs, so the schedule keeps its shape; through the param groups
  when there is no driver);
- a snapshot is kept every ``every`` good updates (the first one at the first check);
- a rollback beyond ``max_rollbacks`` raises :class:`GuardExhausted` instead, naming the steps,
  reasons and lrs: in :func:`~lrkit.train.fit` the run ends with status ``"failed"``.

Every action (``snapshot``, ``skip``, ``rollback``, ``gave_up``) is a dict in
:attr:`Guard.events` (``step``, ``batch``, ``action``, ``reason``,
``loss``, ``grad_norm``, ``lrs``) and, given ``sinks``, a record ``guard/{action}`` whose value
is the loss (``skip``, ``gave_up``) or the first group's new lr (``rollback``). ``step`` counts
updates applied (``state.step`` in ``fit``); after a rollback the driver's step (the schedule's
position) is the snapshot's, while ``step`` goes on counting.

In ``fit``, pass it as a callback: ``fit(task, callbacks=[Guard()])``. In a plain loop:

>>> import torch
>>> model = torch.nn.Linear(2, 1)
>>> optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
>>> guard = Guard(every=5)
>>> for i in range(20):
...     x = torch.randn(8, 2)
...     loss = model(x).pow(2).mean() * (float("nan") if i == 12 else 1.0)
...     optimizer.zero_grad()
...     loss.backward()
...     if guard.check(loss, model=model, optimizer=optimizer) == "ok":
...         optimizer.step()
...         guard.after_step()
>>> [(e["step"], e["action"], e["reason"]) for e in guard.events if e["action"] != "snapshot"]
[(12, 'skip', 'loss nan')]
>>> guard.snapshot_step  # snapshots at updates 0, 5, 10 and 15
15
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from typing import Any

import torch

from ..train import Callback, Snapshot, State
from .signals import global_norm, grad_norms

OK, SKIP, ROLLBACK, GAVE_UP = "ok", "skip", "rollback", "gave_up"
MIN_VALUES = 10  # good values needed before a spike can be called
LOSS_STD_FLOOR = 0.01  # of |mean loss|, for losses that are not all positive
LOG_STD_FLOOR = 0.05  # of the log loss and the log gradient norm


class GuardExhausted(RuntimeError):
    """The guard's limits are spent; ``events`` holds everything it did."""

    def __init__(self, message: str, events: list[dict[str, Any]]):
        super().__init__(message)
        self.events = events


class Guard(Callback):
    """Skip non-finite or spiking updates, roll back repeated trouble; see the module doc.

    Args:
        every: good updates between snapshots (>= 1).
        window: batches over which spikes are measured and skips counted (>= 2).
        z: the z-score above which a loss or log gradient norm is a spike (> 0).
        max_skips: skips allowed within ``window`` batches before a rollback (>= 0).
        max_rollbacks: rollbacks allowed before :class:`GuardExhausted` (>= 0).
        factor: the lr is multiplied by this at every rollback (0 < factor <= 1).
        sinks: lrkit.watch's sinks (``write([(step, tag, value)])``) or a
            :class:`~lrkit.watch.Watch` (``log(tag, value, step)``: the records join its
            signals); the guard writes to them and leaves closing them to their owner.
    """

    def __init__(
        self,
        every: int = 50,
        window: int = 50,
        z: float = 6.0,
        max_skips: int = 3,
        max_rollbacks: int = 3,
        factor: float = 0.5,
        sinks: list[Any] | None = None,
    ):
        self.every = _whole(every, "every", 1)
        self.window = _whole(window, "window", 2)
        self.max_skips = _whole(max_skips, "max_skips", 0)
        self.max_rollbacks = _whole(max_rollbacks, "max_rollbacks", 0)
        if isinstance(z, bool) or not isinstance(z, int | float) or not 0 < z < math.inf:
            raise ValueError(f"Guard z must be a finite number > 0, got {z!r}")
        if isinstance(factor, bool) or not isinstance(factor, int | float) or not 0 < factor <= 1:
            raise ValueError(f"Guard factor must be a number with 0 < factor <= 1, got {factor!r}")
        self.z, self.factor = float(z), float(factor)
        self.sinks = list(sinks or [])
        for sink in self.sinks:
            if not any(callable(getattr(sink, name, None)) for name in ("write", "log")):
                raise TypeError(
                    f"Guard sinks need a write(records) or log(tag, value, step) method; {sink!r}"
                    " has neither (use a Watch, or lrkit.watch's CSVSink, JSONLSink, ...)"
                )
        self.reset()

    def reset(self) -> None:
        """Forget everything: counters, statistics, snapshot, events, attached objects."""
        self.events: list[dict[str, Any]] = []
        self.step = 0  # updates applied
        self.batch = 0  # batches checked
        self.rollbacks = 0
        self.snapshot: Snapshot | None = None
        self.snapshot_step: int | None = None
        self._good = 0  # good updates since the last snapshot
        self._skips: deque[int] = deque()  # batches skipped within the window
        self._losses: deque[float] = deque(maxlen=self.window)
        # (in logs?, mean, std, step) of the losses when the last snapshot was taken
        self._reference: tuple[bool, float, float, int] | None = None
        self._log_norms: deque[float] = deque(maxlen=self.window)
        self._lrs_seen: list[list[float]] = []
        self._model = self._optimizer = self._driver = self._scaler = None
        self._params: list[torch.Tensor] = []

    # -- plain loops --------------------------------------------------------------------------
    def check(
        self,
        loss: torch.Tensor | float,
        model: torch.nn.Module | None = None,
        optimizer: torch.optim.Optimizer | None = None,
        *,
        driver: Any = None,
        scaler: Any = None,
    ) -> str:
        """Judge this batch after ``backward()``: ``"ok"`` (apply the update, then call
        :meth:`after_step`), ``"skip"`` or ``"rollback"`` (do not apply it; a rollback has
        already put the snapshot back and lowered the lr). ``model`` and ``optimizer`` (and
        ``driver``, a :class:`~lrkit.schedules.Driver` or torch scheduler, and ``scaler``, a
        ``GradScaler``, both kept in the snapshots) are needed once. With a scaler, call
        ``scaler.unscale_(optimizer)`` first, so the guard sees the true gradient norm.
        Raises :class:`GuardExhausted` when a rollback is due and none is left.
        """
        self._attach(model, optimizer, driver, scaler)
        self.batch += 1
        if self.snapshot is None:
            self._take_snapshot()
        loss = torch.as_tensor(loss).detach().float().reshape(())
        norm = global_norm(grad_norms(self._params)) if self._params else torch.zeros(())
        value, norm = torch.stack([loss, norm.to(loss.device)]).tolist()  # one device sync
        reason = self._trouble(value, norm)
        if reason is None:
            self._losses.append(value)
            if self._reference is None and len(self._losses) >= MIN_VALUES:
                self._reference = self._level()
            if norm > 0:
                self._log_norms.append(math.log(norm))
            return OK
        while self._skips and self._skips[0] <= self.batch - self.window:
            self._skips.popleft()
        self._skips.append(self.batch)
        if len(self._skips) <= self.max_skips:
            self._log(SKIP, reason, value, norm)
            return SKIP
        self._rollback(reason, value, norm)
        return ROLLBACK

    def after_step(self) -> None:
        """Count an applied update; keep a snapshot every ``every`` good ones."""
        self.step += 1
        self._good += 1
        if self._good >= self.every:
            self._take_snapshot()

    # -- fit's events ---------------------------------------------------------------------------
    def on_train_start(self, state: State) -> None:
        self.reset()

    def on_after_backward(self, state: State) -> None:
        self.step = state.step
        action = self.check(state.loss, state.model, state.optimizer, driver=state.driver)
        if action != OK:
            state.skip = True

    def on_after_step(self, state: State) -> None:
        self.after_step()

    def on_train_end(self, state: State) -> None:
        for sink in self.sinks:
            if callable(getattr(sink, "write", None)) and callable(getattr(sink, "flush", None)):
                sink.flush()

    # -- the rule -------------------------------------------------------------------------------
    def _trouble(self, loss: float, norm: float) -> str | None:
        """Why this batch is trouble (e.g. ``"loss nan"``, ``"grad norm spike (z=9.3)"``)."""
        if not math.isfinite(loss):
            return f"loss {loss}"
        if not math.isfinite(norm):
            return f"grad norm {norm}"
        in_logs, x, values = self._scale(loss)
        z = (
            _zscore(x, values, floor=LOG_STD_FLOOR)
            if in_logs
            else _zscore(x, values, relative_floor=LOSS_STD_FLOOR)
        )
        if z is not None and z > self.z:
            return f"loss spike (z={z:.1f})"
        ref = self._reference
        if ref is not None and ref[0] == in_logs and (x - ref[1]) / ref[2] > self.z:
            return f"loss drift (z={(x - ref[1]) / ref[2]:.1f} above its level at step {ref[3]})"
        if norm > 0:
            z = _zscore(math.log(norm), self._log_norms, floor=LOG_STD_FLOOR)
            if z is not None and z > self.z:
                return f"grad norm spike (z={z:.1f})"
        return None

    def _scale(self, loss: float) -> tuple[bool, float, deque[float]]:
        """``(in_logs, x, values)``: the loss and the window in logs when all are positive
        (spikes are multiplicative and a mini-batch loss is skewed), else as they are."""
        if loss > 0 and all(v > 0 for v in self._losses):
            return True, math.log(loss), deque(map(math.log, self._losses))
        return False, loss, self._losses

    def _level(self) -> tuple[bool, float, float, int] | None:
        """The window's mean and (floored) std on the loss's scale, and the step: the level a
        slow climb is measured against (a spike is judged against the moving window)."""
        if len(self._losses) < MIN_VALUES:
            return None
        in_logs, _, values = self._scale(self._losses[-1])
        mean = statistics.fmean(values)
        floor = LOG_STD_FLOOR if in_logs else max(LOSS_STD_FLOOR * abs(mean), 1e-12)
        return in_logs, mean, max(statistics.pstdev(values, mean), floor), self.step

    def _rollback(self, reason: str, loss: float, norm: float) -> None:
        if self.rollbacks >= self.max_rollbacks:
            self._log(GAVE_UP, reason, loss, norm)
            raise GuardExhausted(self._exhausted_message(), self.events)
        before = self._lrs()
        self._lrs_seen.append(before)
        self.snapshot.restore()
        self._set_lrs([lr * self.factor for lr in before])
        self.rollbacks += 1
        self._skips.clear()
        self._good = 0
        lrs = self._lrs()
        self._log(
            ROLLBACK,
            f"{reason}; {self.max_skips + 1} skips within {self.window} batches: back to step"
            f" {self.snapshot_step}, lr {_fmt(before)} -> {_fmt(lrs)}",
            loss,
            norm,
            sink_value=lrs[0] if lrs else math.nan,
        )

    def _exhausted_message(self) -> str:
        runs: list[list[dict[str, Any]]] = []  # runs of the same action, reason and step
        for e in (e for e in self.events if e["action"] != "snapshot"):
            last = runs[-1][-1] if runs else None
            if last is not None and all(last[k] == e[k] for k in ("action", "reason", "step")):
                runs[-1].append(e)
            else:
                runs.append([e])
        lines = [_describe_run(run) for run in runs[-12:]]
        if len(runs) > 12:
            lines.insert(0, f"... and {sum(map(len, runs[:-12]))} earlier actions")
        lrs = " -> ".join(_fmt(lrs) for lrs in self._lrs_seen + [self._lrs()])
        return (
            f"the guard gave up at step {self.step}: trouble again after {self.rollbacks}"
            f" rollback(s) (max_rollbacks={self.max_rollbacks}); lr {lrs}; what happened:\n  "
            + "\n  ".join(lines)
            + "\ntry a lower lr, a warmup, or Guard(max_rollbacks=..., factor=...)"
        )

    # -- model, optimizer, driver ---------------------------------------------------------------
    def _attach(self, model: Any, optimizer: Any, driver: Any, scaler: Any) -> None:
        if model is not None:
            self._model = model
        if optimizer is not None and optimizer is not self._optimizer:
            self._optimizer = optimizer
            self._params = [p for g in optimizer.param_groups for p in g["params"]]
        if driver is not None:
            self._driver = driver
        if scaler is not None:
            self._scaler = scaler
        if self._model is None or self._optimizer is None:
            raise ValueError(
                "Guard.check needs model= and optimizer= (at least on the first call) to keep"
                f" snapshots; got model={self._model!r}, optimizer={self._optimizer!r}"
            )

    def _take_snapshot(self) -> None:
        self.snapshot = Snapshot.take(
            self._model, self._optimizer, scaler=self._scaler, scheduler=self._driver
        )
        self.snapshot_step = self.step
        self._reference = self._level() or self._reference
        self._good = 0
        self.events.append(self._event("snapshot", "every good update" if self.step else "start"))

    def _lrs(self) -> list[float]:
        """The lrs a rollback scales: the driver's base lrs, else the param groups' lrs."""
        base = getattr(self._driver, "base_lrs", None)
        if base is not None:
            return [float(b) for b in base]
        return [_number(g["lr"]) for g in self._optimizer.param_groups]

    def _set_lrs(self, lrs: list[float]) -> None:
        """Make ``lrs`` what :meth:`_lrs` reads, rewriting the param groups to match."""
        driver, groups = self._driver, self._optimizer.param_groups
        if callable(getattr(driver, "set_base_lrs", None)):  # lrkit's Driver
            driver.set_base_lrs(lrs)
        elif getattr(driver, "base_lrs", None) is not None:  # a torch scheduler
            for group, new, old in zip(groups, lrs, driver.base_lrs):
                group["lr"] = _number(group["lr"]) * (new / old if old else 0.0)
            driver.base_lrs = list(lrs)
        else:
            for group, new in zip(groups, lrs):
                group["lr"] = new

    # -- logging ----------------------------------------------------------------------------------
    def _event(self, action: str, reason: str, loss: float = math.nan, norm: float = math.nan):
        return {
            "step": self.step,
            "batch": self.batch - 1,  # 0-based: the batch checked last
            "action": action,
            "reason": reason,
            "loss": loss,
            "grad_norm": norm,
            "lrs": [_number(g["lr"]) for g in self._optimizer.param_groups],
        }

    def _log(self, action: str, reason: str, loss: float, norm: float, sink_value=None) -> None:
        self.events.append(self._event(action, reason, loss, norm))
        value = loss if sink_value is None else sink_value
        for sink in self.sinks:
            if callable(getattr(sink, "write", None)):
                sink.write([(self.step, f"guard/{action}", value)])
            else:
                sink.log(f"guard/{action}", value, self.step)

    def __repr__(self) -> str:
        return (
            f"Guard(every={self.every}, window={self.window}, z={self.z:g},"
            f" max_skips={self.max_skips}, max_rollbacks={self.max_rollbacks},"
            f" factor={self.factor:g})"
        )


def _zscore(
    x: float, values: deque[float], floor: float = 0.0, relative_floor: float = 0.0
) -> float | None:
    """How many standard deviations ``x`` lies above the mean of ``values``; the std is at
    least ``floor`` and ``relative_floor * |mean|``. None with fewer than MIN_VALUES values."""
    if len(values) < MIN_VALUES:
        return None
    mean = statistics.fmean(values)
    std = max(statistics.pstdev(values, mean), floor, relative_floor * abs(mean), 1e-12)
    return (x - mean) / std


def _describe_run(run: list[dict[str, Any]]) -> str:
    """``step 30 (batches 31-33): skip x3 (loss nan)`` for a run of equal actions."""
    first, last = run[0], run[-1]
    batches = (
        f"batch {first['batch']}" if len(run) == 1 else f"batches {first['batch']}-{last['batch']}"
    )
    times = "" if len(run) == 1 else f" x{len(run)}"
    return f"step {first['step']} ({batches}): {first['action']}{times} ({first['reason']})"


def _number(value: Any) -> float:
    return float(value.item()) if isinstance(value, torch.Tensor) else float(value)


def _fmt(lrs: list[float]) -> str:
    return ", ".join(f"{lr:.4g}" for lr in lrs) if len(lrs) != 1 else f"{lrs[0]:.4g}"


def _whole(value: Any, what: str, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ValueError(f"Guard {what} must be a whole number >= {least}, got {value!r}")
    return value


__all__ = ["Guard", "GuardExhausted"]
