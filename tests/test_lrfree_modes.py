"""Schedule-free optimizers' train and eval modes: ``fit`` validates, reports and ends on the
averaged weights and trains on the training point; the Guard's rollbacks keep the mode; the
Lightning watch callback switches around validation."""

from __future__ import annotations

import copy

import pytest
import torch
from faults import faulty
from test_lrfree import need
from torch import nn

from lrkit.tasks import get_task
from lrkit.train import Callback, fit
from lrkit.watch import Guard, Watch

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def _schedulefree():
    need("schedulefree")


def train_mode(optimizer) -> bool:
    return bool(optimizer.param_groups[0]["train_mode"])


def averaged(model: nn.Module, optimizer) -> nn.Module:
    """A copy of ``model`` (in train mode: the training point y) holding the average
    x = (y - (1 - beta1) z) / beta1, computed by hand from the optimizer's z."""
    x = copy.deepcopy(model)
    with torch.no_grad():
        for group in optimizer.param_groups:
            beta1 = group["betas"][0]
            for p in group["params"]:
                z = optimizer.state[p]["z"]
                target = dict(x.named_parameters())[_name(model, p)]
                target.copy_((p - (1 - beta1) * z) / beta1)
    return x


def _name(model: nn.Module, param) -> str:
    return next(n for n, q in model.named_parameters() if q is param)


class Scores(Callback):
    """At each validation: what fit scored, the model as it is, the training point, and a
    hand-made average; the optimizer's mode at every event."""

    def __init__(self):
        self.rows, self.modes = [], {}

    def _mode(self, event, state):
        self.modes.setdefault(event, []).append(train_mode(state.optimizer))

    def on_after_backward(self, state):
        self._mode("on_after_backward", state)

    def on_validation_end(self, state):
        self._mode("on_validation_end", state)
        task, model, opt, val = state.task, state.model, state.optimizer, state.val_loader
        was = train_mode(opt)
        as_is = task.validate(model, val)[1]
        opt.train()
        training_point = task.validate(model, val)[1]
        by_hand = task.validate(averaged(model, opt), val)[1]
        if not was:  # leave the mode as fit left it
            opt.eval()
        self.rows.append((state.val_loss, as_is, training_point, by_hand))

    def on_train_end(self, state):
        self._mode("on_train_end", state)
        model, opt = state.model, state.optimizer
        self.final = [p.detach().clone() for p in model.parameters()]
        was = train_mode(opt)
        opt.train()
        self.by_hand = [p.detach().clone() for p in averaged(model, opt).parameters()]
        if not was:
            opt.eval()


@pytest.fixture(scope="module")
def scored():
    need("schedulefree")
    torch.set_num_threads(1)
    scores = Scores()
    task = get_task("wine-mlp").variant("schedulefree-adamw")
    history = fit(task, schedule="warmup(10%)", epochs=3, val_every=4, callbacks=[scores],
                  progress=False)  # fmt: skip
    return history, scores


def test_a_validation_scores_the_averaged_weights_not_the_training_point(scored):
    history, scores = scored
    assert history.status == "completed" and len(scores.rows) == len(history.epochs_log) >= 6
    for fitted, as_is, training_point, by_hand in scores.rows[1:]:
        assert fitted == as_is  # on_validation_end sees the weights fit scored
        assert fitted == pytest.approx(by_hand, rel=1e-4, abs=1e-6)
        assert abs(fitted - training_point) > 1e-4


def test_every_training_step_runs_in_train_mode_after_mid_epoch_validations(scored):
    _, scores = scored
    assert len(scores.modes["on_after_backward"]) == 27 and all(scores.modes["on_after_backward"])


def test_callbacks_see_eval_mode_at_validation_and_at_the_end(scored):
    _, scores = scored
    assert not any(scores.modes["on_validation_end"]) and scores.modes["on_train_end"] == [False]


def test_the_run_leaves_the_averaged_weights(scored):
    _, scores = scored
    for final, by_hand in zip(scores.final, scores.by_hand):
        torch.testing.assert_close(final, by_hand, rtol=1e-5, atol=1e-6)


# -- the guard ------------------------------------------------------------------------------------
def test_a_guarded_watched_schedule_free_run_rolls_back_and_completes():
    guard = Guard(every=5, max_skips=1)
    task = faulty(nan_at={30, 31, 32, 33}).variant("schedulefree-adamw")
    history = fit(task, lr=0.01, callbacks=[Watch(guard=guard)], progress=False)
    assert history.status == "completed"
    assert [e["action"] for e in guard.events if e["action"] == "rollback"]


def test_a_rollback_puts_the_optimizer_back_in_the_mode_it_was_in():
    task = get_task("wine-mlp").variant("schedulefree-adamw")
    model = task.build_model()
    optimizer = task.build_optimizer(model, lr=0.01)
    guard = Guard(every=3, max_skips=0)
    x, y = next(iter(task.build_loaders()[0]))
    for _ in range(5):
        loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        assert guard.check(loss, model, optimizer) == "ok"
        optimizer.step()
        guard.after_step()
        if guard.snapshot_step == 3 and not hasattr(guard, "_kept"):
            guard._kept = [p.detach().clone() for p in model.parameters()]
    optimizer.eval()  # e.g. a plain loop evaluating, then calling the guard
    assert guard.check(float("nan")) == "rollback"
    assert not train_mode(optimizer)
    optimizer.train()
    for p, kept in zip(model.parameters(), guard._kept):
        torch.testing.assert_close(p.detach(), kept, rtol=1e-5, atol=1e-6)


# -- Lightning -------------------------------------------------------------------------------------
def test_the_lightning_watch_callback_switches_modes_around_validation(tmp_path):
    pl = pytest.importorskip("lightning.pytorch", reason="lightning is not installed")
    import schedulefree

    from lrkit.watch import LRWatchCallback

    class Module(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = nn.Linear(4, 2)
            self.seen = {"train": [], "val": []}

        def training_step(self, batch, batch_idx):
            self.seen["train"].append(train_mode(self.optimizers().optimizer))
            return nn.functional.cross_entropy(self.net(batch[0]), batch[1])

        def validation_step(self, batch, batch_idx):
            self.seen["val"].append(train_mode(self.trainer.optimizers[0]))

        def configure_optimizers(self):
            return schedulefree.AdamWScheduleFree(self.parameters(), lr=0.01)

    data = torch.utils.data.TensorDataset(torch.randn(32, 4), torch.randint(0, 2, (32,)))
    loader = torch.utils.data.DataLoader(data, batch_size=8)
    module = Module()
    trainer = pl.Trainer(max_epochs=2, accelerator="cpu", devices=1, logger=False,
                         callbacks=[LRWatchCallback(every=2)], enable_progress_bar=False,
                         enable_model_summary=False, enable_checkpointing=False,
                         default_root_dir=tmp_path)  # fmt: skip
    trainer.fit(module, loader, loader)
    assert module.seen["train"] and all(module.seen["train"])
    assert module.seen["val"] and not any(module.seen["val"])
    assert not train_mode(trainer.optimizers[0])  # training ended on the averaged weights
