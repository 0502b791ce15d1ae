"""A user's own scripts of issue 12, run by tests/test_review12.py; each rank writes what it saw
to ``OUT/<mode>-rank<R>.json``. MODE:

- ``script`` (under torchrun, gloo): ``find_lr`` on ranks whose shards differ in batch size and
  number of batches; then ``find_lr("wine-mlp")`` on every rank;
- ``hang`` (under torchrun): ``fit`` with rank 1 hanging past the group's timeout (3 s) at its
  5th update (the other must get a clear error);
- ``val0`` (under torchrun): ranks whose settings differ: ``find_lr`` with a validation loader
  on rank 0 only (the common "validate on the main rank" pattern), with ``steps`` 20 and 25,
  ``pick_lr`` with budgets 1.5 and 2.5; then ``find_lr`` of a model outside DDP, and one with a
  validation loader on every rank;
- ``lightning`` (plain python; Lightning starts rank 1 by running this script again): a
  ``Trainer(strategy="ddp", devices=2)`` with LRFindCallback(plot=...) and
  LRWatchCallback(guard=..., sinks=...), each rank given paths of its own, and rank 1's loss
  NaN from its 3rd update on.
"""

import datetime
import json
import os
import sys
import time
from pathlib import Path

import torch
from torch.nn import functional as F

TIMEOUT = 60  # seconds a collective waits for the other rank (hang: HANG_TIMEOUT)
HANG_TIMEOUT = 3
HANG = 5  # seconds rank 1 sleeps in fit (past HANG_TIMEOUT)
SWEEP = dict(start=1e-4, end=3.0, steps=20, smooth=0.7, progress=False)


def batches(n: int, size: int, seed: int = 1234) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, size, 4, generator=g)
    return list(zip(x, x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])))


def ddp_model():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    model = torch.nn.parallel.DistributedDataParallel(net)
    return model, torch.optim.SGD(model.parameters(), lr=0.1)


def caught(call) -> dict:
    try:
        return call()
    except Exception as e:
        return {"error": type(e).__name__, "message": str(e)[:600]}


def script(out: Path) -> None:
    import torch.distributed as tdist

    from lrkit import dist
    from lrkit.find import find_lr

    tdist.init_process_group("gloo", timeout=datetime.timedelta(seconds=TIMEOUT))
    rank = dist.rank()
    report = {}

    def uneven():  # rank 0: 8 batches of 8; rank 1: 3 batches of 4
        model, opt = ddp_model()
        data = batches(8, 8, seed=rank) if rank == 0 else batches(3, 4, seed=rank)
        result = find_lr(model, opt, data, criterion=F.mse_loss, **SWEEP)
        return {"lr": result.lr, "curve": result.raw_losses.tolist()}

    report["uneven"] = caught(uneven)
    tdist.barrier()
    task = caught(lambda: {"curve": find_lr("wine-mlp", **SWEEP).raw_losses.tolist()})
    report["task"] = task
    (out / f"script-rank{rank}.json").write_text(json.dumps(report))


def hang(out: Path) -> None:
    import torch.distributed as tdist

    from lrkit import dist
    from lrkit.train import fit

    tdist.init_process_group("gloo", timeout=datetime.timedelta(seconds=HANG_TIMEOUT))
    rank = dist.rank()

    class Hang:
        def on_after_step(self, state):
            if rank == 1 and state.step == 5:
                time.sleep(HANG)

    started = time.time()
    report = caught(lambda: {"status": fit("wine-mlp", epochs=2, callbacks=[Hang()],
                                            progress=False).status})  # fmt: skip
    report["seconds"] = time.time() - started
    (out / f"hang-rank{rank}.json").write_text(json.dumps(report))


def val0(out: Path) -> None:
    import warnings

    import torch.distributed as tdist

    from lrkit import dist
    from lrkit.find import find_lr, pick_lr

    tdist.init_process_group("gloo", timeout=datetime.timedelta(seconds=10))
    rank = dist.rank()
    report = {}

    def sweep(model, opt, **settings):
        settings = {**SWEEP, **settings}
        result = find_lr(model, opt, batches(8, 8, seed=rank), criterion=F.mse_loss, **settings)
        return {"lr": result.lr, "curve": result.raw_losses.tolist()}

    def val0():  # the common habit: validate on the main rank only
        model, opt = ddp_model()
        before = [p.detach().clone() for p in model.parameters()]
        val = dict(val_loader=batches(2, 8, seed=9), val_every=5) if rank == 0 else {}
        said = caught(lambda: sweep(model, opt, **val))
        said["untouched"] = all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
        said["lr_kept"] = opt.param_groups[0]["lr"] == 0.1 and not opt.state
        return said

    report["val0"] = val0()
    report["steps"] = caught(lambda: sweep(*ddp_model(), steps=20 if rank == 0 else 25))
    report["pick"] = caught(lambda: pick_lr("wine-mlp", budget=1.5 + rank, progress=False))
    from lrkit.train import fit

    report["fit"] = caught(lambda: fit("wine-mlp", steps=20 + 5 * rank, progress=False))

    def bare():  # each rank its own copy: the losses averaged, the gradients not
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            said = sweep(model, torch.optim.SGD(model.parameters(), lr=0.1))
        said["warnings"] = [str(w.message) for w in seen if w.category is UserWarning]
        return said

    report["bare"] = caught(bare)
    val = dict(val_loader=batches(2, 8, seed=9), val_every=5)  # on every rank: it works
    report["alike"] = caught(lambda: sweep(*ddp_model(), **val))
    (out / f"val0-rank{rank}.json").write_text(json.dumps(report))


def lightning(out: Path) -> None:
    import lightning.pytorch as pl
    from torch import nn

    from lrkit.find import LRFindCallback
    from lrkit.watch import CSVSink, Guard, JSONLSink, LRWatchCallback

    here = os.environ.get("LOCAL_RANK", "0")  # Lightning sets it for the ranks it starts

    class Tiny(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.lr = 0.05
            self.net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = nn.functional.cross_entropy(self.net(x), y)
            if self.global_rank == 1 and self.trainer.training and self.global_step >= 3:
                loss = loss * float("nan")
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9)

    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 4, generator=g)
    data = torch.utils.data.TensorDataset(x, (x[:, 0] > x[:, 1]).long())
    torch.manual_seed(0)
    model = Tiny()
    finder = LRFindCallback(1e-4, 10, steps=30, plot=out / f"find-{here}.png")
    logs = out / f"logs-{here}"
    guard = Guard(every=2, max_rollbacks=5)
    watch = LRWatchCallback(every=3, guard=guard, sinks=[CSVSink(logs), JSONLSink(logs)])
    trainer = pl.Trainer(
        strategy="ddp", devices=2, accelerator="cpu", max_steps=8, logger=False,
        callbacks=[finder, watch], enable_progress_bar=False, enable_checkpointing=False,
        enable_model_summary=False, num_sanity_val_steps=0,
    )  # fmt: skip
    trainer.fit(model, torch.utils.data.DataLoader(data, batch_size=16))
    report = {
        "lr": finder.result.lr,
        "actions": [[e["batch"], e["action"]] for e in guard.events if e["action"] != "snapshot"],
        "finite": all(bool(torch.isfinite(p).all()) for p in model.parameters()),
        "global_step": trainer.global_step,
    }
    (out / f"lightning-rank{trainer.global_rank}.json").write_text(json.dumps(report))


if __name__ == "__main__":
    modes = {"script": script, "hang": hang, "val0": val0, "lightning": lightning}
    modes[sys.argv[1]](Path(sys.argv[2]))
