"""One rank of ``pick_lr`` under torchrun (gloo, CPU), for tests/test_pick_distributed.py:
``python -m torch.distributed.run --standalone --nproc_per_node=2 dist_pick_worker.py OUT``.

Each rank picks a rate for the tiny task (96 points, 16 a batch: 3 batches a rank an epoch)
with progress shown, and writes ``OUT/rank{RANK}.json``: the Pick (``Pick.to_json``), its
steps per full run, and what the rank printed.
"""

import contextlib
import datetime
import io
import json
import os
import sys
from pathlib import Path

import torch
import torch.distributed
from user_tasks import tiny

EPOCHS, BUDGET = 10, 2.0  # a 30-step run per rank; 60 steps: a 20-step sweep, 8 runs of 5


def main(out: Path) -> None:
    torch.set_num_threads(1)
    from lrkit.find import pick_lr

    torch.distributed.init_process_group("gloo", timeout=datetime.timedelta(seconds=120))
    rank = torch.distributed.get_rank()
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        pick = pick_lr(tiny(epochs=EPOCHS), "warmup(5%) >> cosine", budget=BUDGET, seed=0,
                       progress=True)  # fmt: skip
    report = {"pick": pick.to_json(), "printed": printed.getvalue()}
    (out / f"rank{rank}.json").write_text(json.dumps(report))
    torch.distributed.barrier()  # both ranks got here: nobody is left waiting
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main(Path(sys.argv[1]))
