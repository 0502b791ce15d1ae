"""What ``fit`` does differently inside a process group of several ranks (torchrun).

- **The model** is wrapped in ``DistributedDataParallel`` (a task whose ``make_model`` returns
  one already is used as it is), so ``.grad`` holds the gradients averaged over the ranks
  after ``backward()``; callbacks see the module itself (``state.model``), as in one process.
- **The training data** are sharded: the train loader is rebuilt over a ``DistributedSampler``
  of its dataset, one shard per rank, keeping its batch size, its ``drop_last`` and whether it
  shuffles (the shuffle then draws from the run's seed and the epoch, through ``set_epoch``
  at every epoch). What can be rebuilt: a plain ``torch.utils.data.DataLoader`` over a
  map-style dataset whose sampler is a ``RandomSampler`` or a ``SequentialSampler``, either
  batched by the loader (``batch_size=``) or through a ``BatchSampler`` over one of them (as
  :func:`lrkit.tasks.tensor_loader` builds). A loader sharded already (its sampler a
  ``DistributedSampler``) is kept, with ``set_epoch`` called on it. Anything else (a custom
  sampler, an ``IterableDataset``, a DataLoader subclass, a list of batches) is a
  :class:`~lrkit.errors.UserError`: shard it yourself with a ``DistributedSampler``.
- **The batch size** is the train loader's on every rank, so one step's global batch is
  ``world_size`` times it: the ranks' shards of it side by side. Two ranks sharding a loader
  of 16 unshuffled examples a batch train on the global batches of one process's loader of 32.
- The validation data are not sharded: every rank validates on all of them, and the metric and
  validation loss are averaged over the ranks, so every rank reports the same numbers.

>>> loader = shard_loader([(1, 2)], seed=0, rank=0, world_size=2)
Traceback (most recent call last):
...
lrkit.errors.UserError: under torchrun, fit and the range test of a task shard the train loader \
with a DistributedSampler; it must be a torch.utils.data.DataLoader over a map-style dataset, \
got a list: build one, or shard it yourself with a DistributedSampler
"""

from __future__ import annotations

import dataclasses
from typing import Any

from torch import nn
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    IterableDataset,
    RandomSampler,
    SequentialSampler,
)
from torch.utils.data.distributed import DistributedSampler

from .. import dist
from ..errors import UserError
from ..tasks import Task

DDP = nn.parallel.DistributedDataParallel
_HOW = "shard it yourself with a DistributedSampler"


def wrap_model(model: nn.Module) -> nn.Module:
    """``model`` in ``DistributedDataParallel`` (itself when it is one already); a model on one
    CUDA device is wrapped with that device as its ``device_ids``."""
    if isinstance(model, DDP):
        return model
    devices = {p.device for p in model.parameters()}
    if len(devices) == 1 and next(iter(devices)).type == "cuda":
        return DDP(model, device_ids=[next(iter(devices)).index])
    return DDP(model)


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a ``DistributedDataParallel`` wrapper; any other model itself."""
    return model.module if isinstance(model, DDP) else model


def _sampler(loader: DataLoader) -> tuple[Any, BatchSampler | None]:
    """``(order, batches)``: the sampler of the examples and the BatchSampler over it, if any."""
    if loader.batch_size is not None:  # the loader batches: its sampler orders the examples
        return loader.sampler, None
    batches = loader.batch_sampler if loader.batch_sampler is not None else loader.sampler
    if type(batches) is BatchSampler:
        return batches.sampler, batches
    return batches, None


def shard_loader(loader: Any, seed: int, rank: int, world_size: int) -> Any:
    """``loader`` rebuilt to yield rank ``rank``'s shard of its dataset (see the module doc);
    a loader whose sampler is a DistributedSampler already comes back as it is."""
    if not isinstance(loader, DataLoader):
        raise UserError(_refusal(f"got a {type(loader).__name__}"))
    order, batches = _sampler(loader)
    if isinstance(order, DistributedSampler):
        return loader
    if type(loader) is not DataLoader:
        raise UserError(_refusal(f"got a subclass of it, {type(loader).__name__}"))
    if isinstance(loader.dataset, IterableDataset):
        raise UserError(_refusal("got one over an IterableDataset"))
    if batches is None and loader.batch_size is None:
        raise UserError(_refusal("got one that does not batch (batch_size=None, no BatchSampler)"))
    if type(order) not in (RandomSampler, SequentialSampler):
        what = type(order).__name__
        raise UserError(
            _refusal(
                f"got one with a {what}; its sampler must be a RandomSampler or a"
                " SequentialSampler, batched by the loader or by a BatchSampler"
            )  # fmt: skip
        )
    shuffle = isinstance(order, RandomSampler)
    shard = DistributedSampler(
        loader.dataset, num_replicas=world_size, rank=rank, shuffle=shuffle, seed=seed
    )
    common = dict(
        num_workers=loader.num_workers,
        collate_fn=loader.collate_fn,
        pin_memory=loader.pin_memory,
        timeout=loader.timeout,
        worker_init_fn=loader.worker_init_fn,
        generator=loader.generator,
        persistent_workers=loader.persistent_workers,
    )
    if loader.num_workers:
        common.update(prefetch_factor=loader.prefetch_factor)
    if batches is None:
        return DataLoader(
            loader.dataset, batch_size=loader.batch_size, sampler=shard,
            drop_last=loader.drop_last, **common,
        )  # fmt: skip
    rebatched = BatchSampler(shard, batch_size=batches.batch_size, drop_last=batches.drop_last)
    if loader.batch_sampler is batches:  # DataLoader(batch_sampler=...)
        return DataLoader(loader.dataset, batch_sampler=rebatched, **common)
    return DataLoader(loader.dataset, sampler=rebatched, batch_size=None, **common)


def this_rank(loader: Any, seed: int) -> Any:
    """Under torchrun, ``loader`` sharded for this rank (:func:`shard_loader`, its shuffle
    drawn from ``seed``); itself in one process."""
    if not dist.is_distributed():
        return loader
    return shard_loader(loader, seed, dist.rank(), dist.world_size())


def as_fit_trains(task: Task, seed: int | None = None) -> Task:
    """``task`` as :func:`~lrkit.train.fit` trains it on this rank: under torchrun, a copy
    whose model is wrapped in DistributedDataParallel (:func:`wrap_model`) and whose train
    loader is this rank's shard (:func:`this_rank`, shuffled from ``seed``, default the
    task's); ``task`` itself in one process. The range test of a task (``find_lr(task)``,
    and so ``pick_lr``'s) sweeps through it."""
    if not dist.is_distributed():
        return task
    seed = task.seed if seed is None else seed
    make_model, make_train_loader = task.make_model, task.make_train_loader
    return dataclasses.replace(
        task,
        make_model=lambda: wrap_model(make_model()),
        make_train_loader=lambda: this_rank(make_train_loader(), seed),
    )


def set_epoch(loader: Any, epoch: int) -> None:
    """Tell a sharded loader's DistributedSampler the epoch (its shuffle depends on it)."""
    if isinstance(loader, DataLoader):
        order, _ = _sampler(loader)
        if isinstance(order, DistributedSampler):
            order.set_epoch(epoch)


def _refusal(got: str) -> str:
    return (
        "under torchrun, fit and the range test of a task shard the train loader with a"
        " DistributedSampler; it must be a torch.utils.data.DataLoader over a map-style"
        f" dataset, {got}: build one, or {_HOW}"
    )
