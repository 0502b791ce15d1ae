"""LRWatchCallback in a real (tiny, CPU) Lightning Trainer, logging through its CSVLogger."""

from __future__ import annotations

import pytest
import torch
from torch import nn

pl = pytest.importorskip("lightning.pytorch")

from lrkit.watch import LRWatchCallback, read_run  # noqa: E402


class Tiny(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self.net(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", nn.functional.cross_entropy(self.net(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05, momentum=0.9)


def loader():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 4, generator=g), torch.randint(0, 2, (64,), generator=g)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lightning")
    torch.manual_seed(0)
    callback = LRWatchCallback(every=3)
    trainer = pl.Trainer(
        max_epochs=2,
        accelerator="cpu",
        devices=1,
        logger=pl.loggers.CSVLogger(folder, name="run", version=0),
        callbacks=[callback],
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        gradient_clip_val=0.5,
    )
    trainer.fit(Tiny(), loader(), loader())
    return folder / "run" / "version_0", callback, trainer


def test_callback_logs_lr_tags_through_the_lightning_logger(trained):
    folder, callback, trainer = trained
    logged = read_run(folder / "metrics.csv")
    steps, lrs = logged.get("lr-SGD")
    assert steps.tolist() == list(range(trainer.global_step)) == list(range(16))
    assert lrs.tolist() == [0.05] * 16
    assert logged.get("lr-SGD-momentum")[1].tolist() == [0.9] * 16


def test_callback_records_loss_grad_norm_clipping_and_update_ratios(trained):
    folder, callback, _ = trained
    s = callback.history
    assert s.get("train/loss")[0].tolist() == list(range(16))
    assert s.get("train/grad_clipped")[1].tolist() == [
        float(v > 0.5) for v in s.get("train/grad_norm")[1]
    ]
    assert s.get("train/update_ratio/net.0.weight")[0].tolist() == [0, 3, 6, 9, 12, 15]
    assert s.get("val/loss")[0].tolist() == [8, 16]


def test_bad_options_are_refused_when_the_callback_is_built():
    with pytest.raises(ValueError, match="every must be"):
        LRWatchCallback(every=0)
