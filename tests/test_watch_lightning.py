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


def test_repr_shows_the_options():
    callback = LRWatchCallback(every=5, guard=True, val_metric="val_acc")
    assert repr(callback).startswith("LRWatchCallback(every=5, sinks=[], smooth=0.98,")
    assert "guard=Guard(every=50," in repr(callback)
    assert repr(callback).endswith("val_metric='val_acc', val_mode='max')")


@pytest.mark.parametrize(
    ("name", "mode"),
    [("val_loss", "min"), ("val_acc", "max"), ("val/top1_acc", "max"), ("val_f1", "max"),
     ("valid_auroc", "max"), ("val_nll", "min"), ("val_mae", "min")],
)  # fmt: skip
def test_without_val_mode_a_name_that_reads_as_a_score_is_higher_better(name, mode):
    assert LRWatchCallback(val_metric=name).val_mode == mode


def test_a_bad_val_mode_is_refused_naming_what_it_takes():
    with pytest.raises(ValueError, match=r"val_mode must be 'min' .* 'max' .* or None.*'up'"):
        LRWatchCallback(val_mode="up")


def test_the_validation_loss_cannot_be_higher_better():
    with pytest.raises(ValueError, match="'val_loss' with val_mode='max'"):
        LRWatchCallback(val_metric="val_loss", val_mode="max")


class Scored(Tiny):
    """Logs a validation accuracy, under a name that does not read as one, and no loss."""

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_hits", (self.net(x).argmax(1) == y).float().mean())


def fit_scored(callback) -> None:
    torch.manual_seed(0)
    pl.Trainer(max_steps=16, val_check_interval=4, accelerator="cpu", logger=False,
               callbacks=[callback], enable_progress_bar=False, enable_model_summary=False,
               enable_checkpointing=False, num_sanity_val_steps=0).fit(Scored(), loader(), loader())  # fmt: skip


def test_a_higher_better_val_metric_keeps_its_name_and_a_missing_loss_is_warned_about_once():
    callback = LRWatchCallback(every=3, val_metric="val_hits", val_mode="max")
    with pytest.warns(UserWarning, match="'val_hits' is a score .* logs no validation loss") as got:
        fit_scored(callback)
    assert len([w for w in got if "is a score" in str(w.message)]) == 1
    assert callback.history.get("val/hits")[0].tolist() == [4, 8, 12, 16]
    assert "val/loss" not in callback.history.tags()


def test_val_mode_min_records_the_metric_as_the_validation_loss_as_told():
    callback = LRWatchCallback(every=3, val_metric="val_hits", val_mode="min")
    fit_scored(callback)
    assert callback.history.get("val/loss")[0].tolist() == [4, 8, 12, 16]


def test_with_manual_optimization_of_two_optimizers_the_first_is_watched():
    # several optimizers need manual optimization in Lightning (it refuses them otherwise)
    class Two(Tiny):
        def __init__(self):
            super().__init__()
            self.automatic_optimization = False

        def training_step(self, batch, batch_idx):
            x, y = batch
            first, second = self.optimizers()
            loss = nn.functional.cross_entropy(self.net(x), y)
            first.zero_grad(), second.zero_grad()
            self.manual_backward(loss)
            first.step(), second.step()
            return loss

        def configure_optimizers(self):
            return [torch.optim.SGD(self.net[0].parameters(), lr=0.1),
                    torch.optim.Adam(self.net[2].parameters(), lr=0.01)]  # fmt: skip

    callback = LRWatchCallback(every=1, guard=True)
    pl.Trainer(max_steps=8, accelerator="cpu", logger=False, callbacks=[callback],
               enable_progress_bar=False, enable_model_summary=False,
               enable_checkpointing=False).fit(Two(), loader())  # fmt: skip
    tags = callback.history.tags()
    assert "lr-SGD" in tags and not [t for t in tags if "Adam" in t]
    assert len(callback.history.get("train/loss")[0]) == 4  # one a batch: 2 steps each
    assert "train/grad_norm/net.0.weight" in tags and "train/grad_norm/net.2.weight" not in tags
