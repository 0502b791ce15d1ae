"""One rank of a torchrun group (gloo, CPU) that calls ``fit`` in several ways and writes what
each run ended with, for tests/test_train_distributed.py.

``python -m torch.distributed.run --nproc_per_node=2 --standalone dist_fit_worker.py FOLDER``:
each rank writes ``FOLDER/rank{RANK}.json``: per scenario, the history (``History.to_dict``),
the final weights, the driver's step and lrs, and the guard's actions. Each run is given
``out=FOLDER/{scenario}-out{RANK}`` and a CSVSink in ``FOLDER/{scenario}-signals{RANK}``, so a
test sees which ranks wrote files.

- ``same``: the tiny task (a shuffled loader of 16-example batches), 2 epochs, a Watch;
- ``parity``: unshuffled 8-example batches on each rank, 1 epoch (a single process with
  16-example batches takes the same steps);
- ``guard``: rank 1's 4th training loss is NaN, with ``Watch(guard=Guard(every=2))``;
- ``diverge``: the same NaN, without a guard, rank 0 saving its history after every step;
- ``wrapped``: a task whose make_model returns a DistributedDataParallel model already;
- ``rollback``: the same NaN, with ``Guard(every=2, max_skips=0)`` (a rollback at once);
- ``stop``: a callback on rank 1 alone stops the run after its 2nd update;
- ``stop_at_validation``: the same at the first validation (after update 3);
- ``unwritable``: rank 0's ``out=`` cannot be written (a file is in the way): the error
  type and message on each rank;
- ``amp``: the ``guard`` scenario under ``autocast="fp16"``, a GradScaler whose scale is far
  too high (the first updates overflow);
- ``loop`` (no fit): a plain loop over a DDP model with a Guard, rank 1's 4th loss NaN.
"""

import json
import os
import sys
import time
from pathlib import Path

import torch
import torch.distributed
from torch.nn import functional as F
from user_tasks import X, Y, tiny

from lrkit.tasks import tensor_loader
from lrkit.train import Callback, fit
from lrkit.watch import CSVSink, Guard, Watch

DDP = torch.nn.parallel.DistributedDataParallel
BAD_CALL = 4  # the training batch whose loss is NaN on rank 1


class Keep(Callback):
    """Keeps the run's final weights, driver step and lrs."""

    def on_train_end(self, state):
        self.weights = {k: v.tolist() for k, v in state.model.state_dict().items()}
        self.driver = {
            "step": state.driver.last_step,
            "lrs": [g["lr"] for g in state.optimizer.param_groups],
        }


def nan_on(rank, pause=0.0):
    """A step_fn whose BAD_CALL-th training loss is NaN on ``rank``; each training batch
    sleeps ``pause`` seconds first."""
    calls = []

    def step_fn(model, batch):
        if model.training:
            time.sleep(pause)
        x, y = batch
        loss = F.cross_entropy(model(x), y)
        if model.training:
            calls.append(1)
            if torch.distributed.get_rank() == rank and len(calls) == BAD_CALL:
                return loss * float("nan")
        return loss

    return step_fn


class StopOn(Callback):
    """Stops the run at ``event`` after update ``step``, on rank ``rank`` only."""

    def __init__(self, rank, step, event="on_after_step"):
        self.rank, self.at = rank, step
        setattr(self, event, self.maybe_stop)

    def maybe_stop(self, state):
        if torch.distributed.get_rank() == self.rank and state.step == self.at:
            state.stop = True


def plain_loop(rank):
    """A DDP model trained in a plain loop with a Guard: its events and final weights."""
    torch.manual_seed(0)
    model = DDP(torch.nn.Linear(4, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    guard = Guard(every=2)
    for i in range(6):
        x, y = X[rank + 2 * 8 * i :][:16:2], Y[rank + 2 * 8 * i :][:16:2]
        loss = F.cross_entropy(model(x), y) * (float("nan") if rank == 1 and i == 3 else 1.0)
        optimizer.zero_grad()
        loss.backward()
        if guard.check(loss, model=model, optimizer=optimizer) == "ok":
            optimizer.step()
            guard.after_step()
    return {
        "guard": [(e["step"], e["action"], e["reason"]) for e in guard.events],
        "weights": {k: v.tolist() for k, v in model.module.state_dict().items()},
    }


def unwritable(folder, rank):
    """What fit raises on each rank when rank 0 cannot write ``out=``."""
    blocker = folder / "blocker"
    if rank == 0:
        blocker.write_text("a file where out= wants a folder")
    torch.distributed.barrier()
    try:
        fit(tiny(epochs=1), progress=False, out=blocker / "out")
    except Exception as e:
        return [type(e).__name__, str(e)]
    return None


def scenarios():
    batches = lambda size, shuffle: lambda: tensor_loader(X, Y, batch_size=size, shuffle=shuffle)  # noqa: E731
    return {
        "same": (tiny(epochs=2), None, {}),
        "parity": (tiny(epochs=1, make_train_loader=batches(8, False)), None, {}),
        "guard": (tiny(epochs=2, step_fn=nan_on(1)), Guard(every=2), {}),
        # rank 0 saves its history (and reads its losses back) after every step, not rank 1
        "diverge": (tiny(epochs=3, step_fn=nan_on(1, pause=0.3)), None, {"save_secs": 0}),
        "wrapped": (tiny(epochs=1, make_model=lambda: DDP(torch.nn.Linear(4, 2))), None, {}),
        "rollback": (tiny(epochs=2, step_fn=nan_on(1)), Guard(every=2, max_skips=0), {}),
        "stop": (tiny(epochs=2), None, {"callbacks": [StopOn(rank=1, step=2)]}),
        "amp": (
            tiny(epochs=2, step_fn=nan_on(1)),
            Guard(every=2),
            {"autocast": "fp16", "scaler": torch.amp.GradScaler("cpu", init_scale=2.0**24)},
        ),
        "stop_at_validation": (
            tiny(epochs=3),
            None,
            {"callbacks": [StopOn(rank=1, step=3, event="on_validation_end")]},
        ),
    }


def main(folder):
    torch.distributed.init_process_group("gloo")
    rank = torch.distributed.get_rank()
    said = {}
    for name, (task, guard, options) in scenarios().items():
        keep = Keep()
        watch = Watch(sinks=[CSVSink(folder / f"{name}-signals{rank}")], guard=guard)
        history = fit(
            task,
            **{**options, "callbacks": [watch, keep, *options.get("callbacks", [])]},
            progress=False,
            out=folder / f"{name}-out{rank}",
        )
        said[name] = {
            "history": history.to_dict(),
            "weights": keep.weights,
            "driver": keep.driver,
            "guard": []
            if guard is None
            else [(e["step"], e["action"], e["reason"]) for e in guard.events],  # fmt: skip
            "grad_norms": watch.history.get("train/grad_norm")[1].tolist(),
        }
    said["loop"] = plain_loop(rank)
    said["unwritable"] = unwritable(folder, rank)
    (folder / f"rank{rank}.json").write_text(json.dumps(said))
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main(Path(sys.argv[1]))
