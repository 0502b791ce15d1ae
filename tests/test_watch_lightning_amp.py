"""LRWatchCallback's guard in a real (tiny, CPU) Lightning Trainer with fp16 mixed precision (a
``MixedPrecision`` plugin with a CPU GradScaler: ``precision="16-mixed"`` on a CPU falls back to
bf16 without a scaler), and the final-validation rule ``fit`` applies."""

from __future__ import annotations

import pytest
import torch
from torch import nn

pl = pytest.importorskip("lightning.pytorch")
from lightning.pytorch.plugins.precision import MixedPrecision  # noqa: E402
from test_watch_lightning import loader  # noqa: E402  (the same 64 examples, batches of 8)

from lrkit.watch import Guard, GuardExhausted, LRWatchCallback  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

HIGH = 2.0**24  # a scale far too high for fp16: the first batches overflow


class Tiny(pl.LightningModule):
    def __init__(self, nan_at=(), spike_at=(), val_times=1.0):
        super().__init__()
        self.nan_at, self.spike_at, self.val_times = set(nan_at), set(spike_at), val_times
        self.net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.cross_entropy(self.net(x), y)
        if self.global_step in self.nan_at:
            return loss * float("nan")
        if self.global_step in self.spike_at:  # 1000x the loss, the same gradients
            return loss + 999.0 * loss.detach()
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", self.val_times * nn.functional.cross_entropy(self.net(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05, momentum=0.9)


def fit(model, guard, scaler=None, val=False, max_steps=30):
    torch.manual_seed(0)
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        callbacks=[LRWatchCallback(every=3, guard=guard)],
        plugins=[MixedPrecision("16-mixed", "cpu", scaler=scaler)] if scaler else None,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        num_sanity_val_steps=0,
        max_steps=max_steps,
    )
    trainer.fit(model, loader(), loader() if val else None)
    return trainer


def actions(guard):
    return [(e["step"], e["action"]) for e in guard.events if e["action"] != "snapshot"]


def test_16_mixed_overflows_are_not_trouble_for_the_guard():
    scaler = torch.amp.GradScaler("cpu", init_scale=HIGH)
    guard = Guard(every=3)
    trainer = fit(Tiny(), guard, scaler)
    assert trainer.global_step == 30 and guard.overflows > 0
    assert actions(guard) == [] and guard.rollbacks == 0
    assert guard.step == 30 - guard.overflows  # Lightning counts the scaler's skipped steps
    assert scaler.get_scale() < HIGH
    assert trainer.optimizers[0].param_groups[0]["lr"] == 0.05


def test_16_mixed_a_nan_loss_is_skipped_and_the_run_finishes():
    scaler = torch.amp.GradScaler("cpu", init_scale=HIGH)
    guard = Guard(every=3)
    model = Tiny(nan_at={20})
    trainer = fit(model, guard, scaler)
    assert trainer.global_step == 30 and [a for _, a in actions(guard)] == ["skip"]
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_16_mixed_a_rollback_restores_the_scaler_and_the_run_finishes():
    scaler = torch.amp.GradScaler("cpu", init_scale=HIGH)
    guard = Guard(every=3, max_skips=0)
    model = Tiny(nan_at={20})
    trainer = fit(model, guard, scaler)
    assert trainer.global_step == 30 and [a for _, a in actions(guard)] == ["rollback"]
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.025)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_16_mixed_the_guard_judges_the_unscaled_loss():
    """Lightning hands on_before_backward the scaled loss; the guard divides the scale out:
    a loss 1000x its start is judged at its own value, not 2**24 times it."""
    scaler = torch.amp.GradScaler("cpu", init_scale=HIGH)
    guard = Guard(every=3)
    fit(Tiny(spike_at={20}), guard, scaler)
    [skip] = [e for e in guard.events if e["action"] == "skip"]
    assert 100 < skip["loss"] < 5000 and "its start" in skip["reason"]


def test_a_last_validation_far_above_the_start_ends_fit_with_guard_exhausted():
    guard = Guard(every=3)
    with pytest.raises(GuardExhausted, match="validation loss"):
        fit(Tiny(val_times=100.0), guard, val=True, max_steps=16)
    assert guard.events[-1]["action"] == "gave_up"


def test_a_last_validation_near_the_start_completes():
    guard = Guard(every=3)
    trainer = fit(Tiny(), guard, val=True, max_steps=16)
    assert trainer.global_step == 16 and actions(guard) == []
