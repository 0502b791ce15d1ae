"""One rank of a torchrun group (gloo, CPU) training a DDP model in the guard's GradScaler loop
(fp16 autocast), for tests/test_guard_amp.py.

``python -m torch.distributed.run --nproc_per_node=2 --standalone dist_amp_worker.py FOLDER``:
each rank writes ``FOLDER/rank{RANK}.json``: per batch the guard's action and whether it was an
overflow, the guard's counters and events, the final scale and weights. The scale starts far
too high (2**24: the first batches overflow); rank 1's loss is NaN at batch ``NAN_AT`` and its
gradient of the first layer's weight (before DDP averages it) inf at batch ``INF_AT``.
"""

import json
import math
import sys
from pathlib import Path

import torch
import torch.distributed
from torch.nn import functional as F

from lrkit.watch import Guard

NAN_AT, INF_AT, BATCHES = 25, 30, 40


def main(folder):
    torch.distributed.init_process_group("gloo")
    rank = torch.distributed.get_rank()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    optimizer = torch.optim.SGD(ddp.parameters(), lr=0.01)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**24)
    guard = Guard(every=5)
    poison = {"on": False}
    model[0].weight.register_hook(lambda g: g * math.inf if poison["on"] else g)
    g = torch.Generator().manual_seed(100 + rank)  # each rank its own batches
    actions = []
    for i in range(BATCHES):
        x = torch.randn(16, 8, generator=g)
        with torch.autocast("cpu", dtype=torch.float16):
            loss = F.mse_loss(ddp(x), x.sum(1, keepdim=True))
        if rank == 1 and i == NAN_AT:
            loss = loss * float("nan")
        poison["on"] = rank == 1 and i == INF_AT
        optimizer.zero_grad()
        scaler.scale(loss).backward()
        action = guard.check(loss, model=ddp, optimizer=optimizer, scaler=scaler)
        actions.append([action, guard.overflowed])
        if action == "ok":
            scaler.step(optimizer)
            scaler.update()
            guard.after_step()
    report = {
        "actions": actions,
        "overflows": guard.overflows,
        "step": guard.step,
        "events": [(e["step"], e["action"], e["reason"]) for e in guard.events],
        "scale": scaler.get_scale(),
        "weights": [p.detach().flatten().tolist() for p in model.parameters()],
    }
    (Path(folder) / f"rank{rank}.json").write_text(json.dumps(report))
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
