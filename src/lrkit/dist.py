"""Distributed helpers (ground floor): the only module of lrkit that talks to torch.distributed.

Each answers for the default process group, and answers as a single process does when
``torch.distributed`` is not available in this build of torch or no group is initialised::

    >>> is_initialized(), world_size(), rank(), is_distributed()
    (False, 1, 0, False)
"""

from __future__ import annotations

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


__all__ = ["is_initialized", "world_size", "rank", "is_distributed"]
