"""The measurements behind the signals, as small functions of tensors (no host syncs).

Gradient norms use one fused ``torch._foreach_norm`` over all gradients; the global norm is the
2-norm of those norms (what ``torch.nn.utils.clip_grad_norm_`` computes). The update-to-weight
ratio of a parameter tensor is measured from its actual change over one update,
``||w_after - w_before|| / ||w_before||``, so it holds for any optimizer (Adam's update is not
``lr * grad``).

>>> import numpy as np
import numpy as np
import torch
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

import math
from collections.abc import Sequence

import numpy as np
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


@torch.no_grad()
def snapshot(
    params: Sequence[torch.Tensor], into: list[torch.Tensor] | None = None
) -> list[torch.Tensor]:
    """Copies of the parameters (taken before an optimizer step); ``into``: earlier copies
    to overwrite in place (one fused copy, no allocation)."""
    if into is None:
        return [p.detach().clone() for p in params]
    torch._foreach_copy_(into, [p.detach() for p in params])
    return into


@torch.no_grad()
def update_ratios(params: Sequence[torch.Tensor], before: Sequence[torch.Tensor]) -> torch.Tensor:
    """``||w - w_before|| / ||w_before||`` per parameter tensor; NaN where ``w_before`` is 0."""
    size, moved = update_norms(params, before)
    size, moved = torch.stack(size).float(), torch.stack(moved).float()
    return torch.where(size > 0, moved / size, torch.full_like(size, float("nan")))


@torch.no_grad()
def update_norms(
    params: Sequence[torch.Tensor], before: Sequence[torch.Tensor]
) -> tuple[Sequence[torch.Tensor], Sequence[torch.Tensor]]:
    """``(||w_before||, ||w - w_before||)`` per parameter tensor, 0-d tensors of one fused norm."""
    before = list(before)
    deltas = torch._foreach_sub([p.detach() for p in params], before)
    norms = torch._foreach_norm(before + list(deltas))
    return norms[: len(before)], norms[len(before) :]


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


def to_host(scalars: list[torch.Tensor | float], vectors: list[torch.Tensor]) -> np.ndarray:
    """Numbers or 0-d tensors, then 1-d tensors, concatenated in that order, as one float64
    host array; the tensors come back in one transfer."""
    where = [i for i, x in enumerate(scalars) if isinstance(x, torch.Tensor)]
    got = tensors_to_host([scalars[i] for i in where], vectors)
    if len(where) == len(scalars):
        return got
    head = np.array([math.nan if isinstance(x, torch.Tensor) else x for x in scalars])
    head[where] = got[: len(where)]
    return np.concatenate([head, got[len(where) :]])


def tensors_to_host(scalars: list[torch.Tensor], vectors: list[torch.Tensor]) -> np.ndarray:
    """0-d tensors, then 1-d tensors, as one float64 host array (one transfer)."""
    parts = []
    if scalars:
        try:
            parts.append(torch.stack(scalars).float())
        except RuntimeError:  # mixed dtypes or devices
            parts.append(torch.stack([x.float().cpu() for x in scalars]))
    parts += [v.float().to(parts[0].device if parts else v.device) for v in vectors]
    if not parts:
        return np.zeros(0)
    flat = torch.cat(parts) if len(parts) > 1 else parts[0]
    return flat.to("cpu", torch.float64).numpy()


def ratio(moved: float, size: float) -> float:
    """``moved / size``, NaN for a tensor of size 0 (no ratio to speak of)."""
    return moved / size if size > 0 else math.nan


__all__ = [
    "named_parameters",
    "grad_norms",
    "global_norm",
    "snapshot",
    "update_ratios",
    "update_norms",
    "momentum_key",
    "optimizer_tags",
    "to_host",
    "ratio",
]
