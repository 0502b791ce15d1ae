"""Distributed helpers (ground floor): the only module of lrkit that talks to torch.distributed.

Each answers for the default process group, and answers as a single process does when
``torch.distributed`` is not available in this build of torch or no group is initialised::

    >>> is_initialized(), world_size(), rank(), is_distributed(), is_main()
    (False, 1, 0, False, True)
    >>> mean(2.5), agree(True), agree(False, "all"), broadcast({"lr": 0.1})
    (2.5, True, False, {'lr': 0.1})

:func:`mean` also takes a list of numbers: several means for the price of one all-reduce.
Inside a group, :func:`mean`, :func:`agree`, :func:`broadcast` and :func:`same_settings` are
collectives: every rank must call them, in the same order. :func:`failures` turns a collective
that failed because another rank died or did not answer within the group's timeout into a
:class:`~lrkit.errors.UserError` that names this rank and the timeout.

**Before the group starts** (a script that builds its sinks before ``init_process_group``, a
Lightning ``Trainer`` whose DDP strategy starts the group inside ``trainer.fit``),
:func:`rank` and :func:`is_main` answer from what the launcher put in this process's
environment, so a rank other than 0 knows at once that it is not the one that writes:

- ``RANK`` (torchrun, ``lrkit --nproc``, torch's elastic launch): the rank itself;
- else ``LOCAL_RANK`` on the node ``NODE_RANK`` (else ``GROUP_RANK``, torchrun's name; 0 when
  neither is set): what Lightning's launcher gives the ranks it starts by running the script
  again (``LOCAL_RANK=1 python train.py``), and what the main one has from ``trainer.fit`` on.
  On node 0 the rank is ``LOCAL_RANK``; on node n > 0 it is ``n * LOCAL_WORLD_SIZE +
  LOCAL_RANK`` when ``LOCAL_WORLD_SIZE`` is set, else a number > 0 (this process is not rank 0;
  the group, once started, tells its exact rank);
- none of them: rank 0, a single process.

All of this only when ``WORLD_SIZE`` (which torchrun, ``lrkit --nproc`` and Lightning's
launcher all set) is above 1: a ``RANK`` or ``LOCAL_RANK`` left in a shell without it is no
launch, and the process is rank 0 (it writes and prints).

An empty variable counts as unset; any other value that is not a whole number >= 0 (or a
``RANK`` not below ``WORLD_SIZE``) is a :class:`~lrkit.errors.UserError` naming the variable.
:func:`world_size` and :func:`is_distributed` answer for the group only: no collective runs
before it starts.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, overload

import torch
import torch.distributed as _dist

from .errors import UserError

# what gloo's and NCCL's errors say when a peer died or hung (they raise plain RuntimeErrors)
_PEER_TROUBLE = ("gloo", "nccl", "connection", "timed out", "broken pipe")


def is_initialized() -> bool:
    """True when torch.distributed is available and its default process group is initialised."""
    return bool(_dist.is_available() and _dist.is_initialized())


def world_size() -> int:
    """The number of processes in the default group (1 without an initialised group)."""
    return int(_dist.get_world_size()) if is_initialized() else 1


def rank() -> int:
    """This process's rank in the default group; before a group is initialised, the rank the
    launcher gave this process in its environment (see the module doc; 0 without one)."""
    return int(_dist.get_rank()) if is_initialized() else launcher_rank()


def launcher_rank() -> int:
    """The rank the launcher's environment gives this process (``RANK``, else ``LOCAL_RANK``
    and ``NODE_RANK``/``GROUP_RANK``; see the module doc), 0 when it gives none or names no
    group of several processes (``WORLD_SIZE`` unset or 1: a stray ``RANK`` in a shell is no
    launch); UserError for a value that is not a whole number >= 0."""
    size = _env_whole("WORLD_SIZE")
    if size is None or size <= 1:
        return 0
    given = _env_whole("RANK")
    if given is not None:
        if given >= size:
            raise UserError(
                f"the environment variable RANK must be below WORLD_SIZE ({size}): ranks count"
                f" from 0, got RANK={given}; check how this process was launched"
            )
        return given
    local = _env_whole("LOCAL_RANK") or 0
    node = _env_whole("NODE_RANK")
    node = _env_whole("GROUP_RANK") if node is None else node
    if not node:
        return local
    per_node = _env_whole("LOCAL_WORLD_SIZE")
    if per_node:
        return node * per_node + local
    return node * (local + 1) + local  # at most the true rank (a node holds > LOCAL_RANK ranks)


def _env_whole(name: str) -> int | None:
    """The environment variable ``name`` as a whole number >= 0; None when unset or empty."""
    text = os.environ.get(name, "").strip()
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise UserError(
            f"the environment variable {name} must be a whole number >= 0 (the launcher's"
            f" rank numbering: torchrun, Lightning), got {name}={os.environ[name]!r}; unset it"
            " or fix it"
        )
    return value


def is_distributed() -> bool:
    """True inside an initialised process group of more than one process."""
    return world_size() > 1


def is_main() -> bool:
    """True on rank 0 (and in a single process): the rank that writes files and prints.
    Before a group starts, rank 0 by the launcher's environment (see the module doc)."""
    return rank() == 0


def _device() -> torch.device:
    """Where a collective's tensor must live: the current CUDA device under NCCL, else CPU."""
    if _dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


@overload
def mean(value: float | torch.Tensor) -> float: ...
@overload
def mean(value: Sequence[float | torch.Tensor]) -> list[float]: ...


def mean(
    value: float | torch.Tensor | Sequence[float | torch.Tensor],
) -> float | list[float]:
    """The mean over the ranks of ``value``, the same numbers on every rank.

    A number or a one-element tensor gives a float; a list or tuple of them gives a list of
    floats, one per item, all in one all-reduce (every rank must give as many items).
    In a single process: ``float(value)``, or ``[float(v) for v in value]``::

        >>> mean(0.5), mean([1, 2.5]), mean(())
        (0.5, [1.0, 2.5], [])
    """
    if not isinstance(value, list | tuple):
        return mean([value])[0]
    values = [float(v) for v in value]
    if not is_distributed() or not values:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=_device())
    _dist.all_reduce(t, op=_dist.ReduceOp.SUM)
    size = world_size()
    return [x / size for x in t.tolist()]


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


def same_settings(what: str, settings: Mapping[str, Any]) -> None:
    """Refuse settings that differ between the ranks, before they put the collectives out of
    step: inside a group of several processes, every rank's ``settings`` (names to picklable
    values; two values are the same when their ``repr`` is) are gathered, and where any
    differs, every rank raises the same :class:`~lrkit.errors.UserError` naming ``what``, each
    setting that differs and each rank's value. Nothing in a single process. A collective
    (every rank must call it); a rank that died or did not come: :func:`failures`' error::

        >>> same_settings("find_lr", {"steps": 100})
    """
    if not is_distributed():
        return
    shown = {name: repr(value) for name, value in settings.items()}
    everyone: list[Any] = [None] * world_size()
    with failures(what):
        _dist.all_gather_object(everyone, shown)
    differ = []
    for name in dict.fromkeys(key for one in everyone for key in one):
        values = [one.get(name, "(not given)") for one in everyone]
        if len(set(values)) > 1:
            by_value: dict[str, list[int]] = {}
            for r, value in enumerate(values):
                by_value.setdefault(value, []).append(r)
            ranks = [f"{v} on rank{'s' if len(rs) > 1 else ''} {', '.join(map(str, rs))}"
                     for v, rs in by_value.items()]  # fmt: skip
            differ.append(f"{name}: {'; '.join(ranks)}")
    if differ:
        raise UserError(
            f"{what} under torchrun needs the same settings on every rank (they decide the"
            f" collectives each rank runs, and the result), got different ones:"
            f" {' | '.join(differ)}; give every rank the same"
        )


def shares_gradients(model: torch.nn.Module) -> bool:
    """True when ``model`` (or a module in it) is wrapped so that torch averages its gradients
    over the ranks: ``DistributedDataParallel``, or FSDP (``FullyShardedDataParallel``, a
    module given to ``fully_shard``)."""
    kinds: tuple[type, ...] = (torch.nn.parallel.DistributedDataParallel,)
    if _dist.is_available():
        from torch.distributed import fsdp

        kinds += tuple(
            getattr(fsdp, name)
            for name in ("FullyShardedDataParallel", "FSDPModule")
            if isinstance(getattr(fsdp, name, None), type)
        )
    return any(isinstance(m, kinds) for m in model.modules())


def timeout() -> float | None:
    """The default group's collective timeout in seconds (``init_process_group(timeout=...)``),
    or None outside a group or where this build of torch does not say."""
    if not is_initialized():
        return None
    try:
        backend = _dist.group.WORLD._get_backend(torch.device(_device()))
        return float(backend.options._timeout.total_seconds())
    except Exception:  # a private API that may move: the message then says less
        return None


def default_backend() -> str:
    """The backend :func:`init` uses: ``"cpu:gloo,cuda:nccl"`` when CUDA is available (NCCL for
    CUDA tensors, gloo for CPU ones, so a CPU model still trains), else ``"gloo"``."""
    return "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"


def init(backend: str | None = None, timeout: float | None = None) -> bool:
    """Join the process group a launcher (torchrun, ``lrkit --nproc``) set up in the environment
    (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``); return True when this call
    initialised it, False when a group was initialised already.

    ``backend`` defaults to :func:`default_backend`; with CUDA, this process's device becomes
    ``LOCAL_RANK`` (modulo the devices seen). ``timeout`` is how long a collective waits for
    the other ranks, in seconds (torch's default when None)."""
    if is_initialized():
        return False
    missing = [name for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
               if name not in os.environ]  # fmt: skip
    if missing:
        raise UserError(
            f"no launcher set up a process group here ({', '.join(missing)} not set): start the"
            " ranks with torchrun --nproc_per_node=N, or lrkit ... --nproc N"
        )
    if not _env_whole("WORLD_SIZE"):
        raise UserError(
            f"the environment variable WORLD_SIZE must be a whole number >= 1 (the number of"
            f" ranks), got WORLD_SIZE={os.environ['WORLD_SIZE']!r}; check how this process was"
            " launched"
        )
    launcher_rank()  # a RANK that is not a whole number below WORLD_SIZE: a UserError here
    if timeout is not None and not (timeout > 0 and timeout != float("inf")):
        raise ValueError(f"timeout must be a finite number of seconds > 0, got {timeout!r}")
    backend = default_backend() if backend is None else backend
    if "nccl" in backend and torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local % torch.cuda.device_count())
    wait = {} if timeout is None else {"timeout": datetime.timedelta(seconds=timeout)}
    try:
        _dist.init_process_group(backend, init_method="env://", **wait)
    except Exception as error:
        if not _peer_trouble(error):
            raise
        raise UserError(
            f"joining the process group stopped on rank {os.environ['RANK']} of"
            f" {os.environ['WORLD_SIZE']}: a collective with the other ranks failed, so another"
            f" rank died or did not answer; look at the other ranks' output. The backend said:"
            f" {_first_line(error)}"
        ) from error
    return True


def close(wait: bool = True) -> None:
    """Leave the default process group (destroy it); nothing without one.

    ``wait``: first wait at a barrier for every rank to get here, so no rank tears its
    connections down while a peer still uses them (gloo then aborts the peer with SIGABRT);
    a barrier that fails (a peer is gone) is passed over. ``wait=False`` after an error."""
    if not is_initialized():
        return
    if wait and is_distributed():
        try:
            _dist.barrier()
        except Exception:  # a peer is gone: nothing to wait for
            pass
    _dist.destroy_process_group()


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _peer_trouble(error: BaseException) -> bool:
    if isinstance(error, getattr(_dist, "DistError", ())):
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and any(word in text for word in _PEER_TROUBLE)


@contextlib.contextmanager
def failures(what: str) -> Iterator[None]:
    """Run the block; inside a group of several processes, a collective that fails there (a
    rank died, or did not answer within the group's timeout) raises
    :class:`~lrkit.errors.UserError` naming ``what``, this rank, the group and the timeout,
    with the backend's own message after it. Other errors, and every error in a single
    process, pass unchanged."""
    try:
        yield
    except Exception as error:
        if not is_distributed() or not _peer_trouble(error):
            raise
        seconds = timeout()
        limit = "its timeout" if seconds is None else f"the group's timeout of {seconds:g} s"
        first = _first_line(error)
        raise UserError(
            f"{what} stopped on rank {rank()} of {world_size()}: a collective with the other"
            f" ranks failed, so another rank died, stopped early or did not answer within"
            f" {limit} (init_process_group(timeout=...)); look at the other ranks' output."
            f" The backend said: {first}"
        ) from error


__all__ = [
    "is_initialized", "world_size", "rank", "launcher_rank", "is_distributed", "is_main", "mean",
    "agree", "broadcast", "same_settings", "shares_gradients", "timeout", "failures",
    "default_backend", "init", "close",
]  # fmt: skip
