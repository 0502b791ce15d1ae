"""One rank of a user's own DDP loop with lrkit's Driver, under torchrun (gloo, CPU), for
tests/test_resume_distributed.py: ``torchrun --standalone --nproc_per_node=2 THIS OUT``.

The same 20 updates twice: once straight through, once stopped after 10 (rank 0 saves model,
optimizer and ``driver.state_dict()`` to one file, as a user's checkpoint does), then resumed in
fresh objects built again from scratch on every rank from that file. Each rank writes
``OUT/rank{RANK}.json``: the lrs applied at every update and the final weights of both runs.
"""

import json
import os
import sys
from pathlib import Path

import torch
import torch.distributed
from torch.nn.parallel import DistributedDataParallel

from lrkit import dist
from lrkit.schedules import Driver

SCHEDULE, TOTAL, STOP = "warmup(4) >> cosine(to=0.1)", 20, 10


def build(seed: int = 0):
    torch.manual_seed(seed)
    model = DistributedDataParallel(torch.nn.Linear(3, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9)
    return model, opt, Driver(opt, SCHEDULE, total_steps=TOTAL)


def batch(step: int):
    g = torch.Generator().manual_seed(1000 * step + dist.rank())  # each rank its own shard
    x = torch.randn(8, 3, generator=g)
    return x, x.sum(1, keepdim=True)


def train(model, opt, steps, lrs):
    for step in steps:
        x, y = batch(step)
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()  # the Driver counts the applied update and writes the next lr


def weights(model):
    return [v for p in model.parameters() for v in p.detach().flatten().tolist()]


def main(out: Path) -> None:
    torch.set_num_threads(1)
    dist.init()
    straight_lrs: list[float] = []
    model, opt, _ = build()
    train(model, opt, range(TOTAL), straight_lrs)
    straight = weights(model)

    resumed_lrs: list[float] = []
    model, opt, driver = build()
    train(model, opt, range(STOP), resumed_lrs)
    checkpoint = out / "checkpoint.pt"
    if dist.is_main():
        state = {"model": model.module.state_dict(), "opt": opt.state_dict(),
                 "driver": driver.state_dict()}  # fmt: skip
        torch.save(state, checkpoint)
    torch.distributed.barrier()
    model, opt, driver = build(seed=1)  # other initial weights: all must come from the file
    state = torch.load(checkpoint)
    model.module.load_state_dict(state["model"])
    opt.load_state_dict(state["opt"])
    driver.load_state_dict(state["driver"])
    train(model, opt, range(STOP, TOTAL), resumed_lrs)
    result = {"straight_lrs": straight_lrs, "resumed_lrs": resumed_lrs, "straight": straight,
              "resumed": weights(model), "driver_step": driver.last_step}  # fmt: skip
    (out / f"rank{os.environ['RANK']}.json").write_text(json.dumps(result))
    dist.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
