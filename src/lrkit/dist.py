"""Distributed helpers (ground floor): the only module of lrkit that talks to torch.distributed.

Each answers for the default process group, and answers as a single process does when
``torch.distributed`` is not available in this build of torch or no group is initialised::

    >>> is_initialized(), world_size(), rank(), is_distributed(), is_main()
    (False, 1, 0, False, True)
    >>> mean(2.5), agree(True), agree(False, "all"), broadcast({"lr": 0.1})
    (2.5, True, False, {'lr': 0.1})

Inside a group, :func:`mean`, :func:`agree` and :func:`broadcast` are collectives: every rank
must call them, in the same order.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as _dist


def is_initialized() -> bool:
    """True when torch.distributed is available and its default process group is initialised."""
    return bool(_dist.is_available() and _dist.is_initialized())


def world_size() -> int:
    """The number of processes in the default group (1 without an initialised group)."""
    return int(_dist.get_world_size()) if is_initialized() else 1


def rank() -> int:
    """This process's rank in the default group (0 without an initialised group)."""
    return int(_dist.get_rank()) if is_initialized() else 0


def is_distributed() -> bool:
    """True inside an initialised process group of more than one process."""
    return world_size() > 1


def is_main() -> bool:
    """True on rank 0 (and in a single process): the rank that writes files and prints."""
    return rank() == 0


def _device() -> torch.device:
    """Where a collective's tensor must live: the current CUDA device under NCCL, else CPU."""
    if _dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def mean(value: float | torch.Tensor) -> float:
    """The mean of ``value`` (a number or a one-element tensor) over the ranks, as a float;
    ``float(value)`` in a single process. Every rank gets the same number."""
    if not is_distributed():
        return float(value)
    t = torch.as_tensor(value, dtype=torch.float64).detach().reshape(1).to(_device())
    _dist.all_reduce(t, op=_dist.ReduceOp.SUM)
    return float(t.item()) / world_size()


def agree(flag: bool, how: str = "any") -> bool:
    """One decision for every rank: True when ``flag`` is true on any rank (``how="any"``) or
    on every rank (``how="all"``); ``bool(flag)`` in a single process."""
    if how not in ("any", "all"):
        raise ValueError(f"how must be 'any' or 'all', got {how!r}")
    if not is_distributed():
        return bool(flag)
    t = torch.tensor([1 if flag else 0], dtype=torch.int32, device=_device())
    _dist.all_reduce(t, op=_dist.ReduceOp.MAX if how == "any" else _dist.ReduceOp.MIN)
    return bool(t.item())


def broadcast(obj: Any, src: int = 0) -> Any:
    """``obj`` as rank ``src`` has it (any picklable object), on every rank; ``obj`` itself
    in a single process."""
    if not is_distributed():
        return obj
    box = [obj]
    _dist.broadcast_object_list(box, src=src)
    return box[0]


__all__ = [
    "is_initialized", "world_size", "rank", "is_distributed", "is_main", "mean", "agree",
    "broadcast",
]  # fmt: skip
