"""The guard's side of a ``GradScaler`` (fp16 mixed precision): unscale once, close an iteration.

How :class:`~lrkit.watch.Guard` treats a scaler given to :meth:`~lrkit.watch.Guard.check`:

- it unscales the gradients (unless ``scaler.unscale_`` was called already), so it judges
  the true gradient norm;
- an *overflow*, a finite loss with an inf or nan gradient norm, says the scale is too high:
  the scaler itself skips that update in ``step`` and halves its scale in ``update``. It is
  not trouble: ``check`` returns ``"ok"``, the trouble rule is not fed the batch, the guard
  counts it (``guard.overflows``) and ``after_step`` counts no applied update for it, nor one
  towards the next snapshot. A non-finite *loss* stays trouble. Under torchrun the decision
  is taken on the loss and norm averaged over the ranks (an inf on one rank is an inf in the
  mean), so every rank calls the same batch an overflow;
- overflows that never stop (the scale halving towards 0: the gradients are not finite at any
  scale, the model itself has gone bad) are trouble from the ``max_overflows + 1``-th in a row
  on (40 by default: the scale cut by 2**40, from the default 65536 to 6e-8; a healthy run
  needs a few in a row, at its start or after the scale grew): skipped, then rolled back
  (the snapshot's scale comes back with the weights), and :class:`GuardExhausted` when they
  go on after the last rollback;
- on ``"skip"`` and ``"rollback"`` it calls ``scaler.update()`` itself (the caller steps and
  updates only on ``"ok"``), so the next batch's ``unscale_`` works;
- ``update_scaler=False`` is for a caller that steps and updates the scaler after every batch
  whatever the guard said (Lightning's ``MixedPrecision`` plugin, which also unscales before
  ``on_before_optimizer_step``): the guard then never calls ``update()``, and a rollback
  keeps this iteration's unscaled stage (and the inf/nan found) for the caller's ``step`` and
  ``update``, which then start from the snapshot's scale.

**The helpers.** A ``torch.amp.GradScaler`` keeps, per optimizer, the stage of the current iteration: *ready*
(after ``update()``), *unscaled* (after ``unscale_()``, with the inf/nan found in the
gradients recorded) and *stepped*. ``unscale_`` twice before an ``update`` is an error, and so
is an ``update`` with nothing recorded. The helpers here read that stage (a private attribute,
read with ``getattr`` so that another scaler type still works: it is then unscaled once per
check, and an "already called" error from it taken to mean it was) and act only when it says so:

- :func:`unscale` unscales the gradients unless that was done already this iteration;
- :func:`update` closes an iteration the caller will not close (a skipped update), only when
  something was recorded to close;
- :func:`kept_stage` keeps the stage across a snapshot's restore, for a caller (Lightning)
  that steps and updates the scaler itself after the guard's decision;
- :func:`unscaled` divides a loss that went through ``scaler.scale`` by the scale (Lightning
  hands its callbacks the scaled loss).

>>> import torch
>>> model = torch.nn.Linear(2, 1)
>>> optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
>>> scaler = torch.amp.GradScaler("cpu", init_scale=4.0)
>>> scaler.scale(model(torch.ones(1, 2)).sum()).backward()
>>> unscale(scaler, optimizer); unscale(scaler, optimizer)  # the second one does nothing
>>> update(scaler); stage(scaler, optimizer)
'READY'
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch


def stage(scaler: Any, optimizer: Any) -> str | None:
    """``"READY"``, ``"UNSCALED"`` or ``"STEPPED"`` for ``optimizer`` this iteration; None for a
    scaler that does not say."""
    states = getattr(scaler, "_per_optimizer_states", None)
    if not isinstance(states, dict):
        return None
    if id(optimizer) not in states:  # a defaultdict: reading would add the entry
        return "READY"
    found = getattr(states[id(optimizer)].get("stage"), "name", None)
    return found if isinstance(found, str) else None


def unscale(scaler: Any, optimizer: Any) -> None:
    """``scaler.unscale_(optimizer)`` unless this iteration's gradients are unscaled already."""
    now = stage(scaler, optimizer)
    if now is not None:
        if now == "READY":
            scaler.unscale_(optimizer)
        return
    try:
        scaler.unscale_(optimizer)
    except RuntimeError as e:  # an unknown scaler: "already called" means it was done
        if "already" not in str(e):
            raise


def update(scaler: Any) -> None:
    """``scaler.update()`` for an iteration the caller will not step: it consumes what
    ``unscale_`` recorded (inf/nan found: the scale backs off; none: it counts toward growth)
    and makes the scaler ready for the next ``unscale_``. Nothing to do when nothing was
    recorded since the last update."""
    states = getattr(scaler, "_per_optimizer_states", None)
    if isinstance(states, dict):
        recorded = any(s.get("found_inf_per_device") for s in states.values())
        if not recorded:
            states.clear()
            return
    scaler.update()


@contextlib.contextmanager
def kept_stage(scaler: Any) -> Iterator[None]:
    """Keep the scaler's per-optimizer stage (and the inf/nan it recorded) across the body,
    which may load an older ``state_dict`` (the scale) and forget the stage."""
    states = getattr(scaler, "_per_optimizer_states", None)
    saved = dict(states) if isinstance(states, dict) else None
    yield
    states = getattr(scaler, "_per_optimizer_states", None)
    if saved is not None and isinstance(states, dict):
        states.clear()
        states.update(saved)


def unscaled(scaler: Any, loss: torch.Tensor) -> torch.Tensor:
    """``loss`` as it was before ``scaler.scale(loss)``: divided by the scale (read as a
    tensor where the scaler keeps one, so no host sync); unchanged when ``scaler`` is None
    or disabled."""
    if scaler is None or not getattr(scaler, "is_enabled", lambda: True)():
        return loss
    scale = getattr(scaler, "_scale", None)
    if isinstance(scale, torch.Tensor):
        return loss / scale.to(loss.device).reshape(())
    return loss / float(scaler.get_scale())


__all__ = ["kept_stage", "stage", "unscale", "unscaled", "update"]
