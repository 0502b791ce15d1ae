"""One rank of ``pick_lr`` under torchrun (gloo, CPU), for tests/test_pick_distributed.py:
``python -m torch.distributed.run --standalone --nproc_per_node=2 dist_pick_worker.py OUT``.

Each rank writes ``OUT/rank{RANK}.json`` with two picks (``Pick.to_json``) for the tiny task
(96 points, 16 a batch: 3 batches a rank an epoch):

- ``pick``: the task as it is (shuffled), with progress shown, and what the rank printed;
- ``parity``: unshuffled batches, so that a single process on 32-example batches (the two
  ranks' shards side by side) sweeps and trains on the same global batches;
- ``sweep``: the raw losses of the range test that ``pick_lr`` runs, on those batches;
- ``cli_printed``: what ``lrkit pick`` on the tiny task printed (only rank 0 may print, and
  write ``OUT/pick.json``).
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
from user_tasks import X, Y, tiny

from lrkit.tasks import tensor_loader

EPOCHS, BUDGET = 10, 2.0  # a 30-step run per rank; 60 steps: a 20-step sweep, 8 runs of 5
SCHEDULE = "warmup(5%) >> cosine"
SWEEP = dict(start=1e-7, end=10.0, steps=20)  # the range test pick_lr runs at this budget


def in_order(batch_size: int):
    """The tiny task with unshuffled batches of ``batch_size``."""
    return tiny(epochs=EPOCHS, make_train_loader=lambda: tensor_loader(X, Y, batch_size=batch_size))


def main(out: Path) -> None:
    torch.set_num_threads(1)
    from lrkit.find import find_lr, pick_lr

    torch.distributed.init_process_group("gloo", timeout=datetime.timedelta(seconds=120))
    rank = torch.distributed.get_rank()
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        pick = pick_lr(tiny(epochs=EPOCHS), SCHEDULE, budget=BUDGET, seed=0, progress=True)
    parity = pick_lr(in_order(16), SCHEDULE, budget=BUDGET, seed=0, progress=False)
    sweep = find_lr(in_order(16), **SWEEP, progress=False).raw_losses  # lrkit shards it
    report = {
        "pick": pick.to_json(),
        "printed": printed.getvalue(),
        "parity": parity.to_json(),
        "sweep": sweep.tolist(),
    }
    from lrkit.cli.app import cli

    cli_out = io.StringIO()
    with contextlib.redirect_stdout(cli_out):
        args = ["pick", "--task", "user_tasks:tiny", "--epochs", str(EPOCHS), "--budget",
                str(BUDGET), "--json", str(out / "pick.json")]  # fmt: skip
        cli.main(args, standalone_mode=False)
    report["cli_printed"] = cli_out.getvalue()
    (out / f"rank{rank}.json").write_text(json.dumps(report))
    torch.distributed.barrier()  # both ranks got here: nobody is left waiting
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main(Path(sys.argv[1]))
