"""LRWatchCallback's guard and validation signal in a real (tiny, CPU) Lightning Trainer."""

from __future__ import annotations

import pytest
import torch
from torch import nn

pl = pytest.importorskip("lightning.pytorch")

from test_watch_lightning import loader  # noqa: E402  (the same 64 examples, batches of 8)

from lrkit.watch import Guard, GuardExhausted, LRWatchCallback  # noqa: E402


class Tiny(pl.LightningModule):
    def __init__(self, nan_at=(), val_name="val_loss"):
        super().__init__()
        self.nan_at, self.val_name = set(nan_at), val_name
        self.net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.cross_entropy(self.net(x), y)
        return loss * float("nan") if self.global_step in self.nan_at else loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.cross_entropy(self.net(x), y)
        self.log(self.val_name, loss)
        self.log("val_loss_x2", 2 * loss)  # another val_ metric: val/loss_x2

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05, momentum=0.9)


def fit(model, callback, val=False, **kwargs):
    torch.manual_seed(0)
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        callbacks=[callback],
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        num_sanity_val_steps=0,
        **{"max_steps": 12, **kwargs},
    )
    trainer.fit(model, loader(), loader() if val else None)
    return trainer


def actions(guard):
    return [(e["step"], e["action"]) for e in guard.events if e["action"] != "snapshot"]


def test_the_guard_skips_a_nan_step_and_the_run_finishes_with_finite_weights():
    guard = Guard(every=2)
    callback = LRWatchCallback(every=3, guard=guard)
    model = Tiny(nan_at={5})
    trainer = fit(model, callback)
    assert trainer.global_step == 12
    assert actions(guard) == [(5, "skip")]
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert callback.history.get("guard/skip")[0].tolist() == [5]


def test_a_nan_update_goes_through_without_the_guard():
    model = Tiny(nan_at={5})
    fit(model, LRWatchCallback(every=3))
    assert not all(torch.isfinite(p).all() for p in model.parameters())


def test_repeated_trouble_rolls_back_to_the_snapshot_with_a_lower_lr():
    guard = Guard(every=100, max_skips=0)
    model = Tiny(nan_at={4})
    start = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = fit(model, LRWatchCallback(guard=guard), max_steps=5)  # step 4 is the last
    assert actions(guard) == [(4, "rollback")] and guard.snapshot_step == 0
    assert all(torch.equal(model.state_dict()[k], v) for k, v in start.items())
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.025)


def test_a_guard_out_of_rollbacks_ends_fit_with_guard_exhausted():
    guard = Guard(every=100, max_skips=0, max_rollbacks=0)
    with pytest.raises(GuardExhausted, match="gave up"):
        fit(Tiny(nan_at={2}), LRWatchCallback(guard=guard), max_steps=5)


def test_guard_true_is_a_default_guard():
    assert isinstance(LRWatchCallback(guard=True).guard, Guard)


def test_a_guard_that_is_not_a_guard_is_refused_naming_the_callback_and_what_it_takes():
    # it named Watch, which the user never called
    said = r"LRWatchCallback guard must be a Guard, True .* False or None; got 'yes' \(str\)"
    with pytest.raises(TypeError, match=said):
        LRWatchCallback(guard="yes")


def test_lightnings_val_loss_is_the_validation_signal_the_doctor_reads():
    callback = LRWatchCallback(every=3)
    fit(Tiny(), callback, val=True, max_steps=16, max_epochs=2)
    steps, values = callback.history.get("val/loss")
    assert steps.tolist() == [8, 16] and all(v > 0 for v in values)


def test_a_metric_the_user_names_becomes_val_loss():
    callback = LRWatchCallback(every=3, val_metric="val_loss_x2")
    fit(Tiny(val_name="holdout"), callback, val=True, max_steps=8, max_epochs=1)
    steps, values = callback.history.get("val/loss")
    assert steps.tolist() == [8] and "val/loss_x2" not in callback.history
    assert "holdout" not in callback.history.tags()


def test_a_metric_the_user_names_is_the_only_val_loss_beside_lightnings_val_loss():
    callback = LRWatchCallback(every=3, val_metric="val_loss_x2")
    trainer = fit(Tiny(), callback, val=True, max_steps=8, max_epochs=1)
    steps, values = callback.history.get("val/loss")
    assert steps.tolist() == [8]
    assert values.tolist() == [pytest.approx(float(trainer.callback_metrics["val_loss_x2"]))]


def test_a_val_metric_missing_from_the_metrics_is_warned_about_by_name():
    callback = LRWatchCallback(every=3, val_metric="val_ce")
    with pytest.warns(UserWarning, match="no metric 'val_ce'.*logged: val_loss"):
        fit(Tiny(), callback, val=True, max_steps=8, max_epochs=1)
