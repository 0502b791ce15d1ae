"""One rank of a range test under torchrun (gloo, CPU): started by tests/test_find_distributed.py
as ``python -m torch.distributed.run --standalone --nproc_per_node=2 dist_worker.py MODE OUT``.

Each rank sweeps a ``DistributedDataParallel`` model on its own shard of the global batches
(:func:`shard`) and writes what it saw to ``OUT/rankR.json``. MODE:

- ``sweep``: the result (curve, suggestion), whether model, optimizer and RNG came back, what
  it printed (only rank 0 may print a progress bar), then ``lrkit find`` on a task (only rank 0
  may print the table and write the JSON file), then a sweep where rank 1's loss is infinite at
  its 5th step (both ranks must stop there), then ``find_lr`` of a task (:func:`regression`,
  8 examples a batch a rank: lrkit shards it) and the batches each rank's step saw, then the
  error of ``find_lr`` of a task whose train loader is a list (which cannot be sharded);
- ``kill``: rank 1 SIGKILLs itself at its 5th step; rank 0 writes the error it got;
- ``hang``: rank 1 sleeps through the group's timeout (4 s) at its 5th step; rank 0 writes
  the error.

The data are made so that the mean of the two ranks' mean-reduced losses on their halves equals
the loss on the whole global batch, and DDP's averaged gradients equal the gradients of one
process on it: a single process sweeping :func:`global_batches` sees the same curve.
"""

import contextlib
import dataclasses
import datetime
import io
import json
import os
import random
import signal
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

WORLD = 2
STEPS = 20
TIMEOUT = {"sweep": 120, "kill": 120, "hang": 4}  # seconds a collective waits for a rank
SWEEP = dict(start=1e-4, end=3.0, steps=STEPS, smooth=0.7)  # a curve with a trusted lr
TASK_SWEEP = dict(start=1e-3, end=1.0, steps=STEPS, smooth=0.7)  # the same, for regression()


def global_batches(n: int = 6, size: int = 16) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The global batches both tests sweep, the same in every process."""
    g = torch.Generator().manual_seed(1234)
    x = torch.randn(n, size, 4, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]]) + 0.1 * torch.randn(n, size, 1, generator=g)
    return list(zip(x, y))


def shard(batches, rank: int, world: int = WORLD):
    """Rank ``rank``'s equal share of each global batch (what a DistributedSampler gives)."""
    out = []
    for x, y in batches:
        per = len(x) // world
        out.append((x[rank * per : (rank + 1) * per], y[rank * per : (rank + 1) * per]))
    return out


def regression(batch_size: int, seen: list | None = None):
    """The global batches' examples in order as a task (SGD with momentum, the MSE loss),
    ``batch_size`` a batch, unshuffled; each training step appends its batch's first feature
    to ``seen``. Two ranks at 8 sweep the global batches of one process at 16."""
    from lrkit.tasks import Task, tensor_loader

    x, y = (torch.cat(t) for t in zip(*global_batches()))

    def step_fn(model, batch):
        if seen is not None and model.training:
            seen.append(batch[0][:, 0].tolist())
        return F.mse_loss(model(batch[0]), batch[1])

    return Task(
        name="regression", make_model=make_model, step_fn=step_fn, threads=1,
        make_optimizer=lambda params, lr: torch.optim.SGD(params, lr=lr, momentum=0.9),
        make_train_loader=lambda: tensor_loader(x, y, batch_size=batch_size),
        make_val_loader=lambda: tensor_loader(x[:16], y[:16], batch_size=16),
    )  # fmt: skip


def make_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))


def make_optimizer(model: torch.nn.Module) -> torch.optim.Optimizer:
    """SGD with momentum, one step taken so that its state is not empty."""
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x, y = global_batches()[0]
    F.mse_loss(model(x), y).backward()
    opt.step()
    opt.zero_grad()
    return opt


def rng_draws() -> list[float]:
    """The next draws of every global generator (read and put back)."""
    state = torch.get_rng_state(), np.random.get_state(), random.getstate()
    draws = [torch.rand(1).item(), float(np.random.rand()), random.random()]
    torch.set_rng_state(state[0]), np.random.set_state(state[1]), random.setstate(state[2])
    return draws


def curve(result) -> dict:
    return {
        "lrs": result.lrs.tolist(),
        "losses": result.losses.tolist(),
        "raw": result.raw_losses.tolist(),
        "val": result.val,
        "lr": result.lr,
        "stop": result.stop_reason,
        "suggestions": result.suggestions,
    }


def sweep(rank: int, out: Path) -> dict:
    from lrkit.cli.app import cli
    from lrkit.errors import UserError
    from lrkit.find import find_lr

    model = make_model()
    opt = make_optimizer(model)
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    data = shard(global_batches(), rank)
    val = shard(global_batches(2, 8), rank)
    params = [p.detach().clone() for p in model.parameters()]
    momentum = [opt.state[p]["momentum_buffer"].clone() for p in model.parameters()]
    draws = rng_draws()
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        result = find_lr(
            ddp, opt, data, criterion=F.mse_loss, val_loader=val, val_every=5, progress=True,
            **SWEEP,
        )  # fmt: skip
    report = {
        "curve": curve(result),
        "printed": printed.getvalue(),
        "params_back": all(torch.equal(a, b) for a, b in zip(params, model.parameters())),
        "momentum_back": all(
            torch.equal(m, opt.state[p]["momentum_buffer"])
            for m, p in zip(momentum, model.parameters())
        ),
        "lr_back": opt.param_groups[0]["lr"] == 0.1,
        "rng_back": rng_draws() == draws,
    }
    cli_out = io.StringIO()
    with contextlib.redirect_stdout(cli_out):
        args = ["find", "--task", "wine-mlp", "--steps", "10", "--json", str(out / "find.json")]
        cli.main(args, standalone_mode=False)
    report["cli_printed"] = cli_out.getvalue()
    calls = []

    def step_fn(model, batch):  # rank 1's loss is infinite at its 5th step, rank 0's finite
        calls.append(1)
        loss = F.mse_loss(model(batch[0]), batch[1])
        return loss * float("inf") if rank == 1 and len(calls) == 5 else loss

    inf = find_lr(ddp, opt, data, step_fn=step_fn, progress=False, **SWEEP)
    report["inf"] = {"curve": curve(inf), "steps": len(calls)}
    seen: list = []
    by_task = find_lr(regression(8, seen), progress=False, **TASK_SWEEP)
    report["task"] = {"curve": curve(by_task), "seen": seen}
    listed = dataclasses.replace(regression(8), make_train_loader=lambda: global_batches())
    try:
        find_lr(listed, progress=False, **TASK_SWEEP)
        report["unshardable"] = "swept"
    except UserError as error:
        report["unshardable"] = str(error)
    return report


def fail(rank: int, mode: str) -> dict:
    """Rank 1 dies (``kill``) or hangs (``hang``) at its 5th step; the other's error."""
    from lrkit.find import find_lr

    ddp = torch.nn.parallel.DistributedDataParallel(make_model())
    opt = torch.optim.SGD(ddp.parameters(), lr=0.1)
    calls = []

    def step_fn(model, batch):
        calls.append(1)
        if rank == 1 and len(calls) == 5:
            if mode == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(TIMEOUT[mode] + 2)
            os._exit(0)  # gone without a word, after the other rank gave up
        return F.mse_loss(model(batch[0]), batch[1])

    began = time.perf_counter()
    try:
        find_lr(ddp, opt, shard(global_batches(), rank), step_fn=step_fn, progress=False, **SWEEP)
        outcome = {"type": None, "message": "returned"}
    except Exception as e:
        outcome = {"type": type(e).__name__, "message": str(e)}
    return {**outcome, "seconds": time.perf_counter() - began, "steps": len(calls)}


def main(mode: str, out: Path) -> None:
    torch.set_num_threads(1)
    import lrkit.cli.app  # noqa: F401  (before joining: the ranks start their work together)
    import lrkit.find  # noqa: F401

    torch.distributed.init_process_group("gloo", timeout=datetime.timedelta(seconds=TIMEOUT[mode]))
    rank = torch.distributed.get_rank()
    report = sweep(rank, out) if mode == "sweep" else fail(rank, mode)
    (out / f"rank{rank}.json").write_text(json.dumps(report))
    if mode == "sweep":
        torch.distributed.barrier()  # both ranks got here: nobody is left waiting
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
