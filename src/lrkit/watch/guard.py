"""Guard: skip a bad update, roll back repeated trouble with a lower lr, and go on.

The rule, checked after every backward pass, before the optimizer step (in full:
:mod:`lrkit.watch.trouble`):

- a batch is *trouble* when its loss or its global gradient norm is not finite; when its loss
  is far above the run's start (100x for the batch, or 3x for the median of the last 5 batches:
  the doctor's threshold for ``diverged``, so the guard acts before a climb gets far); when it
  is a spike (a z-score above ``z`` over the last ``window`` good values, of the log loss and
  of the log gradient norm); or a drift (the same z against the level of the last snapshot);
- trouble skips that update (no optimizer step, no driver advance);
- more than ``max_skips`` skips within the last ``window`` batches roll back instead: the last
  good snapshot comes back in place (model, optimizer, driver, RNG; see
  :class:`~lrkit.train.Snapshot`), and the lr becomes ``factor`` times what it was just before
  (through the driver's base lrs, so the schedule keeps its shape; through the param groups
  when there is no driver); a rollback for a *climb* (a loss far above its start or drifting
  up: the lr itself is too high, and each cut that did not stop it was too small) lowers it
  by ``factor ** k`` at the k-th such rollback (0.5, 0.25, 0.125: 1/64 within three);
- a snapshot is kept every ``every`` good updates (the first one at the first check);
- a schedule-free optimizer's snapshot holds its weights with its train/eval mode (the
  training point in train mode, as ``fit`` trains); a rollback puts them back and then the
  optimizer in the mode it was in before, so the caller's weights stay those of its mode;
- a rollback beyond ``max_rollbacks`` raises :class:`GuardExhausted` instead, naming the steps,
  reasons and lrs: in :func:`~lrkit.train.fit` the run ends with status ``"failed"``;
- in :func:`~lrkit.train.fit`, a run whose last batch was lasting trouble (a climb, or two
  troubled batches in a row, not one spike) is rolled back at the end of its last epoch
  (before the validation; :meth:`Guard.finish` in a plain loop), so a guarded run that
  ``completed`` ends on a good snapshot, never in the middle of a climb; with no rollback left
  it ends with :class:`GuardExhausted`. A rollback does not break a row: trouble at the batch
  right after one is two troubled batches in a row (the rollback did not cure it);
- a run whose last validation loss is far above its start (``FINAL_FAR``, 10x its first
  training loss, or not finite) is not a run to call completed: :meth:`Guard.check_final`
  raises :class:`GuardExhausted` (``fit`` calls it after its last validation, Lightning's
  ``LRWatchCallback`` at the end of training on the last validation's ``val_metric``).

Every action (``snapshot``, ``skip``, ``rollback``, ``gave_up``) is a dict in
:attr:`Guard.events` (``step``, ``batch``, ``action``, ``reason``,
``loss``, ``grad_norm``, ``lrs``) and, given ``sinks`` (lrkit.watch's sinks: ``write(records)``),
a record ``guard/{action}`` whose value is the loss (``skip``, ``gave_up``) or the first group's
new lr (``rollback``); the same records are kept in :attr:`Guard.records`. To have the actions
among a :class:`~lrkit.watch.Watch`'s signals, give the guard to the watch:
``Watch(guard=Guard())`` (the watch then runs the guard, and takes its records in). ``step``
counts updates applied (``state.step`` in ``fit``); after a rollback the driver's step (the schedule's
position) is the snapshot's, while ``step`` goes on counting.

**Under torchrun** (a process group of several ranks) the guard judges the loss and the
gradient norm averaged over the ranks (two small all-reduces a batch), so every rank sees the
same numbers and takes the same action at the same batch: a non-finite loss on one rank makes
every rank skip (or roll back) together, and the ranks never drift apart. Each rank keeps its
own snapshot (the same weights: DDP keeps them equal) and its events, the same on every rank;
only rank 0 writes to the sinks.

**With a GradScaler** (fp16 mixed precision) the guard unscales the gradients itself (unless
``scaler.unscale_`` was called already), the caller steps and updates the scaler only on
``"ok"``, and on a skip or a rollback the guard calls ``scaler.update()``::

    with torch.autocast("cuda", dtype=torch.float16):
        loss = loss_fn(model(x), y)
    optimizer.zero_grad()
    scaler.scale(loss).backward()
    if guard.check(loss, model=model, optimizer=optimizer, scaler=scaler) == "ok":
        scaler.step(optimizer)
        scaler.update()
        guard.after_step()

An *overflow* (a finite loss, inf gradients: the scale is too high) is not trouble but the
scaler's own skipped step, counted in :attr:`Guard.overflows`; past ``max_overflows`` (40) in
a row it is. In full, with Lightning's ``update_scaler=False``: :mod:`lrkit.watch.amp`.

In ``fit``, pass it as a callback: ``fit(task, callbacks=[Guard()])``, or through a watch:
``fit(task, callbacks=[Watch(guard=Guard())])``; with ``fit(autocast="fp16")`` the guard
takes fit's scaler (``state.scaler``) and leaves its update to fit (``update_scaler=False``). In a plain loop:

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
from collections import deque
from typing import Any

import torch

from .. import dist
from ..checks import number, whole
from ..train import Callback, Snapshot, State
from . import amp, rollback
from .guard_messages import GuardExhausted, exhausted_message, final_message, fmt_lrs
from .signals import global_norm, grad_norms
from .trouble import Trouble

OK, SKIP, ROLLBACK, GAVE_UP = "ok", "skip", "rollback", "gave_up"
FINAL_FAR = 10.0  # a last validation loss this many times the run's start: not completed


class Guard(Callback):
    """Skip non-finite, spiking or climbing updates, roll back repeated trouble; see the module doc.

    Args:
        every: good updates between snapshots (>= 1).
        window: batches over which spikes are measured and skips counted (>= 2).
        z: the z-score above which a loss or log gradient norm is a spike (> 0).
        max_skips: skips allowed within ``window`` batches before a rollback (>= 0).
        max_rollbacks: rollbacks allowed before :class:`GuardExhausted` (>= 0).
        factor: the lr is multiplied by this at every rollback (0 < factor <= 1).
        sinks: lrkit.watch's sinks (``write([(step, tag, value)])``); the guard writes to
            them and leaves closing them to their owner. For a Watch, use
            ``Watch(guard=...)`` instead.
        max_overflows: a GradScaler's overflows in a row (inf or nan gradients under a finite
            loss) that are not trouble; the next ones in the same row are (>= 0).
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
        max_overflows: int = 40,
    ):
        self.every = whole(every, "Guard every", least=1)
        self.window = whole(window, "Guard window", least=2)
        self.max_skips = whole(max_skips, "Guard max_skips", least=0)
        self.max_rollbacks = whole(max_rollbacks, "Guard max_rollbacks", least=0)
        self.max_overflows = whole(max_overflows, "Guard max_overflows", least=0)
        self.z = number(z, "Guard z", low=0, low_open=True)
        self.factor = number(factor, "Guard factor", low=0, high=1, low_open=True)
        self.sinks = list(sinks or [])
        for sink in self.sinks:
            if not callable(getattr(sink, "write", None)):
                hint = " (give the guard to it: Watch(guard=...))" if _is_watch(sink) else ""
                raise TypeError(
                    f"Guard sinks need a write(records) method; {sink!r} has none{hint}"
                    " (lrkit.watch's CSVSink, JSONLSink, TensorBoardSink, MemorySink have one)"
                )
        self.reset()

    def reset(self) -> None:
        """Forget everything: counters, statistics, snapshot, events, attached objects."""
        self.events: list[dict[str, Any]] = []
        self.records: list[tuple[int, str, float]] = []  # (step, guard/{action}, value)
        self.step = 0  # updates applied
        self.batch = 0  # batches checked
        self.rollbacks = 0
        self.overflows = 0  # batches a GradScaler overflowed on (its own skipped steps)
        self.snapshot: Snapshot | None = None
        self.snapshot_step: int | None = None
        self._good = 0  # good updates since the last snapshot
        self._skips: deque[int] = deque()  # batches skipped within the window
        self._rule = Trouble(self.z, self.window)
        self._last: tuple | None = None  # (reason, loss, norm, climb) of lasting trouble
        self._troubled = False  # whether the last batch was trouble
        self._climbing = False  # whether the last trouble was a climb (the lr too high)
        self._climbs = 0  # rollbacks for a climb so far
        self._in_a_row = 0  # overflows in a row so far
        self._overflowed = False  # whether the last batch checked was an overflow
        self._lrs_seen: list[list[float]] = []
        self._model = self._optimizer = self._driver = self._scaler = None
        self._update_scaler = True
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
        update_scaler: bool = True,
    ) -> str:
        """Judge this batch after ``backward()``: ``"ok"`` (apply the update, then call
        :meth:`after_step`), ``"skip"`` or ``"rollback"`` (do not apply it; a rollback has
        already put the snapshot back and lowered the lr). ``model`` and ``optimizer`` (and
        ``driver``, a :class:`~lrkit.schedules.Driver` or torch scheduler, and ``scaler``, a
        ``GradScaler``, both kept in the snapshots) are needed once.

        With a scaler (see :mod:`lrkit.watch.amp`) an overflow is ``"ok"``, and on a skip or
        rollback the guard calls ``scaler.update()`` unless ``update_scaler=False``. Raises :class:`GuardExhausted` when a rollback is due and none is left.
        """
        self._attach(model, optimizer, driver, scaler)
        self._update_scaler = bool(update_scaler)
        self.batch += 1
        if self.snapshot is None:
            self._take_snapshot()
        if self._scaler is not None:
            amp.unscale(self._scaler, self._optimizer)  # the true gradient norm
        loss = torch.as_tensor(loss).detach().float().reshape(())
        norm = global_norm(grad_norms(self._params)) if self._params else torch.zeros(())
        value, norm = torch.stack([loss, norm.to(loss.device)]).tolist()  # one device sync
        if dist.is_distributed():  # every rank judges the same numbers: the same decision
            value, norm = dist.mean([value, norm])  # one all-reduce
        # an overflow: the same means on every rank, so the same call on every rank
        self._overflowed = (
            self._scaler is not None and math.isfinite(value) and not math.isfinite(norm)
        )
        if self._overflowed:
            self.overflows += 1
            self._in_a_row += 1
            if self._in_a_row <= self.max_overflows:
                return OK  # the scaler skips this update and lowers its scale
            reason = (
                f"grad norm {norm} at {self._in_a_row} overflows in a row"
                f" (max_overflows={self.max_overflows}): no scale makes the gradients finite"
            )
            self._climbing = False
        else:
            self._in_a_row = 0
            reason = self._rule.judge(value, norm)
            self._climbing = self._rule.lasting
        lasting = self._climbing or self._troubled  # a climb, or two in a row
        self._last = (
            None if reason is None or not lasting else (reason, value, norm, self._climbing)
        )
        self._troubled = reason is not None
        if reason is None:
            self._rule.good(value, norm, self.step)
            return OK
        self._overflowed = False  # trouble: no update, whatever the scaler would have done
        while self._skips and self._skips[0] <= self.batch - self.window:
            self._skips.popleft()
        self._skips.append(self.batch)
        if len(self._skips) <= self.max_skips:
            self._log(SKIP, reason, value, norm)
            if self._scaler is not None and self._update_scaler:
                amp.update(self._scaler)  # the caller will not: ready for the next batch
            return SKIP
        self._rollback(reason, value, norm)
        return ROLLBACK

    @property
    def overflowed(self) -> bool:
        """Whether the last batch checked was a GradScaler overflow: ``"ok"``, but no update
        (``scaler.step`` skips it)."""
        return self._overflowed

    def after_step(self) -> None:
        """Count an applied update; keep a snapshot every ``every`` good ones. After an
        overflow (the scaler skipped the update) nothing is counted."""
        if self._overflowed:
            self._overflowed = False
            return
        self.step += 1
        self._good += 1
        if self._good >= self.every:
            self._take_snapshot()

    # -- fit's events ---------------------------------------------------------------------------
    def on_train_start(self, state: State) -> None:
        self.reset()

    def on_after_backward(self, state: State) -> None:
        self.step = state.step
        action = self.check(
            state.loss,
            state.model,
            state.optimizer,
            driver=state.driver,
            scaler=getattr(state, "scaler", None),
            update_scaler=False,  # fit itself updates its scaler once every batch
        )
        if action != OK:
            state.skip = True

    def on_after_step(self, state: State) -> None:
        self.after_step()

    def on_epoch_end(self, state: State) -> None:
        if state.epoch == state.history.epochs - 1:
            self.finish()

    def finish(self) -> None:
        """End a run on a good snapshot: when the last batch was trouble that says the
        model itself is bad (a loss far above its start or drifting up, or the last two
        batches trouble), roll back (raises :class:`GuardExhausted` when no rollback is
        left). ``fit`` calls it before the last validation; call it after a plain loop's
        last step."""
        if self._last is not None:
            reason, loss, norm, self._climbing = self._last
            self._rollback(reason, loss, norm, why="at the run's last batch")

    def on_validation_end(self, state: State) -> None:
        if state.final:
            self.check_final(state.val_loss)

    def check_final(self, loss: float | None) -> None:
        """Refuse to call a run completed when its last validation loss ``loss`` is far above
        the run's start (``FINAL_FAR`` times its first training loss) or not finite: raises
        :class:`GuardExhausted`. Under torchrun the loss is averaged over the ranks first, so
        every rank decides alike. Nothing to judge without a loss (on any rank) or a positive
        start."""
        firsts = self._rule.start_values  # the first good losses: the first is before any update
        start = min(firsts[0], self._rule.start) if firsts else None
        if start is None or start <= 0:  # the same on every rank: judged on the means
            return
        if dist.is_distributed():
            if not dist.agree(loss is not None, "all"):
                return
            loss = dist.mean(loss)
        elif loss is None:
            return
        loss = float(loss)
        if not math.isfinite(loss) or loss > FINAL_FAR * start:
            self._log(GAVE_UP, "the last validation loss far above the start", loss, math.nan)
            raise GuardExhausted(final_message(loss, start, self.rollbacks), self.events)

    def on_train_end(self, state: State) -> None:
        for sink in self.sinks:
            if callable(getattr(sink, "flush", None)):
                sink.flush()

    def _rollback(self, reason: str, loss: float, norm: float, why: str = "") -> None:
        if self.rollbacks >= self.max_rollbacks:
            self._log(GAVE_UP, reason, loss, norm)
            lrs_seen = [*self._lrs_seen, self._lrs()]
            message = exhausted_message(
                self.events, self.step, self.rollbacks, self.max_rollbacks, lrs_seen
            )
            raise GuardExhausted(message, self.events)
        before = self._lrs()
        self._lrs_seen.append(before)
        rollback.restore(self.snapshot, self._optimizer, self._scaler, self._update_scaler)
        self._climbs += self._climbing  # the k-th rollback for a climb cuts by factor**k
        cut = self.factor ** max(1, self._climbs * self._climbing)
        rollback.set_lrs(self._driver, self._optimizer, [lr * cut for lr in before])
        self.rollbacks += 1
        self._rule.rolled_back()
        # the batch rolled back for was trouble: one more right after it is trouble that lasts
        # through the rollback (two in a row), not a spike of the restored weights
        self._last = None
        self._skips.clear()
        self._good = self._in_a_row = 0
        lrs = self._lrs()
        self._log(
            ROLLBACK,
            f"{reason}; {why or f'{self.max_skips + 1} skips within {self.window} batches'}:"
            f" back to step"
            f" {self.snapshot_step}, lr {fmt_lrs(before)} -> {fmt_lrs(lrs)}",
            loss,
            norm,
            sink_value=lrs[0] if lrs else math.nan,
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
        self._rule.reference = self._rule.level(self.step) or self._rule.reference
        self._good = 0
        self.events.append(self._event("snapshot", "every good update" if self.step else "start"))

    def _lrs(self) -> list[float]:
        return rollback.lrs(self._driver, self._optimizer)

    # -- logging ----------------------------------------------------------------------------------
    def _event(self, action: str, reason: str, loss: float = math.nan, norm: float = math.nan):
        return {
            "step": self.step,
            "batch": self.batch - 1,  # 0-based: the batch checked last
            "action": action,
            "reason": reason,
            "loss": loss,
            "grad_norm": norm,
            "lrs": rollback.group_lrs(self._optimizer),
        }

    def _log(self, action: str, reason: str, loss: float, norm: float, sink_value=None) -> None:
        self.events.append(self._event(action, reason, loss, norm))
        record = (self.step, f"guard/{action}", loss if sink_value is None else sink_value)
        self.records.append(record)
        for sink in self.sinks if dist.is_main() else ():  # under torchrun rank 0 writes
            sink.write([record])

    def __repr__(self) -> str:
        return (
            f"Guard(every={self.every}, window={self.window}, z={self.z:g},"
            f" max_skips={self.max_skips}, max_rollbacks={self.max_rollbacks},"
            f" factor={self.factor:g}, max_overflows={self.max_overflows})"
        )


def _is_watch(sink: Any) -> bool:
    return callable(getattr(sink, "log", None)) and hasattr(sink, "guard")


__all__ = ["Guard", "GuardExhausted"]
