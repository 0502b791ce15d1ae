"""One Lightning run under ``Trainer(strategy="ddp", devices=2, accelerator="cpu")``, with
LRFindCallback and LRWatchCallback(guard=...); each rank writes what it saw to
``<folder>/rank<r>.json``. Lightning starts rank 1 by running this script again."""

import json
import sys
from pathlib import Path

import lightning.pytorch as pl
import torch
from torch import nn

from lrkit.find import LRFindCallback
from lrkit.watch import Guard, LRWatchCallback

NAN_STEP = 5  # rank 1's loss is NaN at this global step (after the sweep, at step 0)


class Tiny(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.lr = 0.05
        self.net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.cross_entropy(self.net(x), y)
        if self.global_rank == 1 and self.global_step == NAN_STEP and self.trainer.training:
            loss = loss * float("nan")
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", nn.functional.cross_entropy(self.net(x), y), sync_dist=True)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9)


class Start(pl.Callback):
    def on_train_start(self, trainer, pl_module):
        self.weights = [p.detach().clone() for p in pl_module.parameters()]


def loader(seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(256, 4, generator=g)
    y = (x[:, 0] > x[:, 1]).long()
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16)


def main(folder: Path) -> None:
    torch.manual_seed(0)
    model = Tiny()
    before = [p.detach().clone() for p in model.parameters()]
    finder, start = LRFindCallback(1e-4, 10, steps=30), Start()
    guard = Guard(every=2)
    watch = LRWatchCallback(every=3, guard=guard)
    trainer = pl.Trainer(
        strategy="ddp",
        devices=2,
        accelerator="cpu",
        max_steps=10,
        logger=False,
        callbacks=[finder, start, watch],
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(model, loader(0), loader(1))
    report = {
        "rank": trainer.global_rank,
        "lr": finder.result.lr,
        "curve": finder.result.raw_losses.tolist(),
        "module_lr": model.lr,
        "optimizer_lr": trainer.optimizers[0].param_groups[0]["lr"],
        "restored": all(torch.equal(a, b) for a, b in zip(before, start.weights)),
        "actions": [[e["step"], e["action"]] for e in guard.events if e["action"] != "snapshot"],
        "val": watch.history.get("val/loss")[0].tolist(),
        "weights": [p.detach().double().sum().item() for p in model.parameters()],
        "finite": all(bool(torch.isfinite(p).all()) for p in model.parameters()),
        "global_step": trainer.global_step,
    }
    (folder / f"rank{trainer.global_rank}.json").write_text(json.dumps(report))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
