"""One rank of a gloo process group that calls find_lr (on a DistributedDataParallel model)
and pick_lr, and writes what happened.

``python dist_worker.py RANK WORLD_SIZE INIT_FILE OUT_JSON``: joins the group through
``file://INIT_FILE``, times each call and writes ``{"find_lr": ..., "pick_lr": ...}`` (the error's
type, message and seconds, or "returned") to ``OUT_JSON``.
"""

import json
import sys
import time

import torch
import torch.distributed as dist
from torch.nn import functional as F


def attempt(call):
    began = time.perf_counter()
    try:
        call()
        outcome = {"type": None, "message": "returned"}
    except Exception as e:
        outcome = {"type": type(e).__name__, "message": str(e)}
    return {**outcome, "seconds": time.perf_counter() - began}


def main(rank, world_size, init_file, out):
    dist.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size
    )
    from lrkit.find import find_lr, pick_lr

    torch.manual_seed(rank)
    model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(4, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    data = [(torch.randn(8, 4), torch.randn(8, 1))]
    calls = []

    def step_fn(model, batch):  # rank 1 diverges at its 5th batch, rank 0 sweeps on
        calls.append(1)
        loss = F.mse_loss(model(batch[0]), batch[1])
        return loss * float("inf") if rank == 1 and len(calls) == 5 else loss

    report = {
        "find_lr": attempt(
            lambda: find_lr(model, opt, data, step_fn=step_fn, steps=20, progress=False)
        ),
        "pick_lr": attempt(lambda: pick_lr("wine-mlp", progress=False)),
    }
    with open(out, "w") as f:
        json.dump(report, f)
    dist.barrier()  # both ranks got here: nobody is left waiting
    dist.destroy_process_group()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4])
