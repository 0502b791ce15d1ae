"""The measurements behind the signals, as small functions of tensors (no host syncs).

Gradient norms use one fused ``torch._foreach_norm`` over all gradients; the global norm is the
2-norm of those norms (what ``torch.nn.utils.clip_grad_norm_`` computes). The update-to-weight
ratio of a parameter tensor is measured from its actual change over one update,
``||w_after - w_before|| / ||w_before||``, so it holds for any optimizer (Adam's update is not
``lr * grad``).

>>> import torch
>>> w = torch.nn.Parameter(torch.tensor([3.0, 4.0]))
>>> w.grad = torch.tensor([0.0, 2.0])
>>> float(global_norm(grad_norms([w])))
2.0
>>> before = snapshot([w])
>>> with torch.no_grad():
...     _ = w.sub_(0.5 * w.grad)
>>> round(float(update_ratios([w], before)[0]), 6)
0.2
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .logs import lr_tags


def named_parameters(model: nn.Module | None, optimizer: torch.optim.Optimizer):
    """``(names, params)`` of the optimizer's parameters, named as in ``model``.

    Parameters the model does not know are named ``group{g}.{i}``.
    """
    known = {} if model is None else {id(p): n for n, p in model.named_parameters()}
    names, params, seen = [], [], set()
    for g, group in enumerate(optimizer.param_groups):
        for i, p in enumerate(group["params"]):
            if id(p) in seen:
                continue
            seen.add(id(p))
            names.append(known.get(id(p), f"group{g}.{i}"))
            params.append(p)
    return names, params


def grad_norms(params: Sequence[torch.Tensor]) -> Sequence[torch.Tensor]:
    """Each parameter's gradient 2-norm as a 0-d tensor (0 where there is no grad)."""
    grads = [p.grad for p in params]
    try:
        return torch._foreach_norm(grads)  # one fused op where the device has one
    except (TypeError, RuntimeError):  # a missing (None), sparse or integer gradient
        return [
            p.new_zeros(()) if g is None else torch.linalg.vector_norm(g.float())
            for p, g in zip(params, grads)
        ]


def global_norm(norms: Sequence[torch.Tensor] | torch.Tensor) -> torch.Tensor:
    """The 2-norm of all gradients together, from their per-tensor norms."""
    stacked = norms if isinstance(norms, torch.Tensor) else torch.stack(list(norms))
    return torch.linalg.vector_norm(stacked.float(), dim=-1)


DEFER_BYTES = 16 << 20  # at most this many bytes of gradients are held for a deferred read


class GradNormBuffer:
    """Per-step gradient norms of a fixed list of parameters, read back in batches.

    Eager (the general case): one fused ``torch._foreach_norm`` over the gradients at each
    step, kept as tensors. Deferred (CPU only, where each small reduction costs a few
    microseconds of dispatch, and only when the gradients of all the buffered steps fit in
    ``DEFER_BYTES``): the step's gradient tensors are kept and every norm of the buffered steps
    is computed at read-back, one ``stack`` and one norm per parameter. Deferring is safe only
    when each step's gradients are new tensors (``zero_grad(set_to_none=True)``) that nobody
    changes in place (clipping, the optimizer); so the first step is measured eagerly while
    watching for both, any in-place change (tensor version counters) ends deferring for good,
    and a step whose gradients changed before they were read has no norm (``lost``).
    """

    def __init__(self, params: Sequence[torch.Tensor], capacity: int):
        self.params = list(params)
        size = sum(p.numel() * p.element_size() for p in self.params)
        self.can_defer = size * capacity <= DEFER_BYTES and all(
            p.device.type == "cpu" for p in self.params
        )
        self.deferring = False
        self._calibration: list | None = None  # the first step's gradients and versions
        self.clear()

    def clear(self) -> None:
        self.rows: list = []  # per step: a tuple of 0-d norms, or (grads, versions) to defer

    def record(self) -> None:
        """At ``after_backward``: this step's norms (eager) or its gradients (deferred)."""
        grads = [p.grad for p in self.params]
        complete = all(g is not None for g in grads)  # not `None in grads`: that calls ==
        if self.deferring and complete:
            self.rows.append(_Deferred(grads, [g._version for g in grads]))
            return
        self.rows.append(tuple(grad_norms(self.params)))
        if not self.can_defer:
            return
        if self._calibration is None:  # the first step: note the tensors and their versions
            self._calibration = [(g, g._version) for g in grads] if complete else None
            return
        old = self._calibration  # the second step: are these new tensors?
        fresh = complete and all(g is not c for g, (c, _) in zip(grads, old))
        self.deferring, self.can_defer, self._calibration = fresh, False, None

    def check(self) -> None:
        """At ``after_step``: stop deferring once gradients are changed in place."""
        calibration = self._calibration
        if calibration is not None and any(g._version != v for g, v in calibration):
            self.can_defer, self._calibration = False, None
        elif self.deferring and self.rows and isinstance(self.rows[-1], _Deferred):
            row = self.rows[-1]  # one tensor's counter here; read() checks them all
            if row.grads[0]._version != row.versions[0]:
                self.deferring = False

    def latest(self) -> torch.Tensor | None:
        """The last step's global norm, a 0-d tensor."""
        if not self.rows:
            return None
        row = self.rows[-1]
        return global_norm(torch._foreach_norm(row.grads) if isinstance(row, _Deferred) else row)

    def read(self) -> tuple[torch.Tensor, list[int]]:
        """``(norms, lost)``: an (n steps, p params) float32 tensor and the rows with no norm
        (gradients changed in place before they were read: NaN there); empties the buffer."""
        rows, p = self.rows, len(self.params)
        eager = [i for i, r in enumerate(rows) if not isinstance(r, _Deferred)]
        lost = [i for i, r in enumerate(rows) if isinstance(r, _Deferred) and r.changed()]
        deferred = [i for i, r in enumerate(rows) if isinstance(r, _Deferred) and i not in lost]
        self.deferring = self.deferring and not lost
        parts = {}
        if eager and p:
            parts[tuple(eager)] = torch.stack([t for i in eager for t in rows[i]]).view(-1, p)
        if deferred and p:
            parts[tuple(deferred)] = torch.stack(
                [
                    torch.linalg.vector_norm(
                        torch.stack([rows[i].grads[j] for i in deferred]).flatten(1), dim=1
                    )
                    for j in range(p)
                ],
                dim=1,
            )
        self.clear()
        if len(parts) == 1 and not lost:  # all steps alike: no scatter needed
            return next(iter(parts.values())).float().cpu(), lost
        out = torch.full((len(rows), p), float("nan"))
        for index, norms in parts.items():
            out[list(index)] = norms.float().cpu()
        return out, lost


class _Deferred:
    """A step's gradient tensors and their version counters, to be reduced later."""

    __slots__ = ("grads", "versions")

    def __init__(self, grads: list[torch.Tensor], versions: list[int]):
        self.grads, self.versions = grads, versions

    def changed(self) -> bool:
        return any(g._version != v for g, v in zip(self.grads, self.versions))


@torch.no_grad()
def snapshot(params: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Copies of the parameters (taken before an optimizer step)."""
    return [p.detach().clone() for p in params]


@torch.no_grad()
def update_ratios(params: Sequence[torch.Tensor], before: Sequence[torch.Tensor]) -> torch.Tensor:
    """``||w - w_before|| / ||w_before||`` per parameter tensor; NaN where ``w_before`` is 0."""
    current = [p.detach() for p in params]
    deltas = torch._foreach_sub(current, list(before))
    moved = torch.stack(torch._foreach_norm(deltas)).float()
    size = torch.stack(torch._foreach_norm(list(before))).float()
    return torch.where(size > 0, moved / size, torch.full_like(size, float("nan")))


def momentum_key(optimizer: torch.optim.Optimizer) -> str | None:
    """``"momentum"`` (SGD, RMSprop), ``"betas"`` (Adam family) or None (neither in every
    group)."""
    groups = optimizer.param_groups
    for key in ("momentum", "betas"):
        if groups and all(key in g for g in groups):
            return key
    return None


def optimizer_tags(optimizer: torch.optim.Optimizer) -> tuple[list[str], list[str]]:
    """The lr tags and the momentum tags (empty without momentum), Lightning's names."""
    name = type(optimizer).__name__
    lrs = lr_tags(name, len(optimizer.param_groups))
    moms = [f"{t}-momentum" for t in lrs] if momentum_key(optimizer) else []
    return lrs, moms


__all__ = [
    "GradNormBuffer",
    "named_parameters",
    "grad_norms",
    "global_norm",
    "snapshot",
    "update_ratios",
    "momentum_key",
    "optimizer_tags",
]
