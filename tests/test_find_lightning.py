"""LRFindCallback in a real (tiny, CPU) Lightning Trainer: the sweep, the restore, the lr written."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn

pl = pytest.importorskip("lightning.pytorch")

from lrkit.find import FindResult, LRFindCallback  # noqa: E402


class Tiny(pl.LightningModule):
    def __init__(self, lr=0.05, poison=False, scheduler=False):
        super().__init__()
        self.lr = lr
        self.poison, self.scheduler = poison, scheduler
        self.calls = 0
        self.net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))

    def training_step(self, batch, batch_idx):
        x, y = batch
        self.calls += 1
        loss = nn.functional.cross_entropy(self.net(x), y)
        self.log("train_loss", loss)  # logging is dropped during the sweep, kept in training
        return loss * float("nan") if self.poison else loss

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9)
        if not self.scheduler:
            return opt
        return [opt], [torch.optim.lr_scheduler.StepLR(opt, step_size=1000, gamma=0.5)]


def loader():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 4, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long()
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16)


class Before(pl.Callback):
    """What the training starts from: the weights, optimizer state and lr after the finder."""

    def on_train_start(self, trainer, pl_module):
        self.weights = {k: v.clone() for k, v in pl_module.state_dict().items()}
        self.opt_state = dict(trainer.optimizers[0].state)
        self.lrs = [g["lr"] for g in trainer.optimizers[0].param_groups]
        self.module_lr = pl_module.lr


def trainer(*callbacks, **kwargs):
    return pl.Trainer(
        max_steps=kwargs.pop("max_steps", 3),
        accelerator="cpu",
        devices=1,
        logger=False,
        callbacks=list(callbacks),
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        **kwargs,
    )


@pytest.fixture(scope="module")
def found(tmp_path_factory):
    torch.manual_seed(0)
    model = Tiny()
    start = {k: v.clone() for k, v in model.state_dict().items()}
    finder = LRFindCallback(1e-4, 10, steps=40, plot=tmp_path_factory.mktemp("f") / "f.png")
    before = Before()
    t = trainer(finder, before)
    t.fit(model, loader())
    return model, start, finder, before, t


def test_the_finder_writes_its_lr_into_the_optimizer_and_the_module_attribute(found):
    model, _, finder, before, _ = found
    assert isinstance(finder.result, FindResult) and finder.result.confidence.ok
    assert before.lrs == [pytest.approx(finder.result.lr)]
    assert before.module_lr == pytest.approx(finder.result.lr) != 0.05


def test_the_training_starts_from_the_weights_and_empty_optimizer_state_of_before(found):
    _, start, _, before, _ = found
    assert all(torch.equal(before.weights[k], v) for k, v in start.items())
    assert before.opt_state == {}


def test_the_sweep_does_not_count_as_training_steps(found):
    *_, finder, _, t = found
    assert finder.result.steps_run > 3 and t.global_step == 3


def test_what_training_step_logs_is_dropped_in_the_sweep_and_kept_in_training(found):
    model, *_, t = found
    assert "log" not in vars(model) and "train_loss" in t.callback_metrics


def test_the_finder_saves_its_plot(found):
    finder = found[2]
    assert finder.plot.stat().st_size > 0


def test_an_untrusted_curve_leaves_the_lr_as_it_was_and_says_why():
    finder, before = LRFindCallback(1e-4, 1, steps=10), Before()
    with pytest.warns(UserWarning, match="trusted no lr .*diverged at once.* stays 0.05"):
        trainer(finder, before, max_steps=1).fit(Tiny(poison=True), loader())
    assert finder.result.lr is None and before.lrs == [0.05] and before.module_lr == 0.05


def test_an_attached_scheduler_keeps_its_shape_around_the_new_lr():
    finder = LRFindCallback(1e-4, 10, steps=30)
    t = trainer(finder, max_steps=1)
    t.fit(Tiny(scheduler=True), loader())
    scheduler = t.lr_scheduler_configs[0].scheduler
    assert scheduler.base_lrs == [pytest.approx(finder.result.lr)]
    assert t.optimizers[0].param_groups[0]["initial_lr"] == pytest.approx(finder.result.lr)


def test_the_sweep_accumulates_as_many_batches_per_update_as_the_trainer():
    finder, model = LRFindCallback(1e-4, 10, steps=10, stop_factor=float("inf")), Tiny()
    trainer(finder, max_steps=1, accumulate_grad_batches=3).fit(model, loader())
    assert finder.result.extra["accumulate"] == 3 and finder.result.steps_run == 10
    assert model.calls == 10 * 3 + 3  # the sweep's 10 updates, then one training update


def test_update_attr_false_leaves_the_module_attribute_alone():
    finder, before = LRFindCallback(1e-4, 10, steps=30, update_attr=False), Before()
    trainer(finder, before, max_steps=1).fit(Tiny(), loader())
    assert before.module_lr == 0.05 and before.lrs == [pytest.approx(finder.result.lr)]


def test_an_attr_the_module_lacks_is_refused_by_name():
    with pytest.raises(ValueError, match="Tiny has no attribute or hparams entry 'rate'"):
        trainer(LRFindCallback(attr="rate"), max_steps=1).fit(Tiny(), loader())


def test_manual_optimization_is_refused_with_what_to_do():
    class Manual(Tiny):
        def __init__(self):
            super().__init__()
            self.automatic_optimization = False

    with pytest.raises(ValueError, match="needs automatic optimization.*find_lr"):
        trainer(LRFindCallback(), max_steps=1).fit(Manual(), loader())


def test_bad_options_are_refused_when_the_callback_is_built():
    with pytest.raises(ValueError, match="start must be < end"):
        LRFindCallback(start=1, end=0.1)
    with pytest.raises(ValueError, match="steps must be"):
        LRFindCallback(steps=2)


def test_import_lrkit_does_not_import_lightning():
    code = "import sys, lrkit, lrkit.find; print('lightning' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_lr_goes_into_hparams_when_the_module_keeps_it_there():
    class Hparams(Tiny):
        def __init__(self, learning_rate=0.05):
            super().__init__(lr=learning_rate)
            del self.lr
            self.save_hyperparameters()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=self.hparams.learning_rate)

    finder, model = LRFindCallback(1e-4, 10, steps=30), Hparams()
    trainer(finder, max_steps=1).fit(model, loader())
    assert model.hparams.learning_rate == pytest.approx(finder.result.lr) != 0.05


def test_the_sweep_reads_the_batches_of_a_datamodule():
    class Data(pl.LightningDataModule):
        def train_dataloader(self):
            return loader()

    finder, before = LRFindCallback(1e-4, 10, steps=30), Before()
    trainer(finder, before, max_steps=1).fit(Tiny(), datamodule=Data())
    assert finder.result.steps_run >= 10 and before.lrs == [pytest.approx(finder.result.lr)]


def test_the_optimizer_is_built_again_by_configure_optimizers_with_the_new_lr():
    class Counted(Tiny):
        built = 0

        def configure_optimizers(self):
            self.built += 1
            return super().configure_optimizers()

    finder, before, model = LRFindCallback(1e-4, 10, steps=30), Before(), Counted()
    t = trainer(finder, before, max_steps=1)
    t.fit(model, loader())
    assert model.built == 2  # fit's own, then the finder's with model.lr = the found lr
    assert before.lrs == [pytest.approx(finder.result.lr)] and before.opt_state == {}


def test_a_configure_optimizers_that_ignores_the_lr_attribute_still_trains_at_the_found_lr():
    class Fixed(Tiny):
        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.05)

    finder, before = LRFindCallback(1e-4, 10, steps=30), Before()
    trainer(finder, before, max_steps=1).fit(Fixed(), loader())
    assert before.module_lr == pytest.approx(finder.result.lr) != 0.05
    assert before.lrs == [pytest.approx(finder.result.lr)]


def test_without_an_lr_attribute_a_cyclic_lr_peaks_at_the_found_lr():
    class Cyclic(Tiny):
        def __init__(self):
            super().__init__()
            del self.lr

        def configure_optimizers(self):
            opt = torch.optim.SGD(self.parameters(), lr=0.005, momentum=0.9)
            cyclic = torch.optim.lr_scheduler.CyclicLR(opt, 0.005, 0.05, step_size_up=4)
            return [opt], [{"scheduler": cyclic, "interval": "step"}]

    finder = LRFindCallback(1e-4, 10, steps=30)
    t = trainer(finder, max_steps=1)
    t.fit(Cyclic(), loader())
    cyclic, lr = t.lr_scheduler_configs[0].scheduler, finder.result.lr
    assert cyclic.max_lrs == [pytest.approx(lr)] and cyclic.base_lrs == [pytest.approx(lr / 10)]


def test_configure_optimizers_returning_none_is_refused_before_the_sweep():
    class NoOptimizer(Tiny):
        def configure_optimizers(self):
            return None

    model = NoOptimizer()
    with (
        pytest.warns(UserWarning, match="configure_optimizers"),
        pytest.raises(ValueError, match="NoOptimizer.configure_optimizers returned None"),
    ):
        trainer(LRFindCallback(), max_steps=1).fit(model, loader())
    assert model.calls == 0


def test_several_optimizers_are_refused_by_lightning_itself_before_the_callback_runs():
    # what the README says: automatic optimization takes one optimizer (Lightning's own
    # RuntimeError); manual optimization is LRFindCallback's ValueError (tested above)
    class Two(Tiny):
        def configure_optimizers(self):
            return [torch.optim.SGD(self.net[0].parameters(), lr=0.1),
                    torch.optim.SGD(self.net[2].parameters(), lr=0.1)]  # fmt: skip

    model = Two()
    with pytest.raises(RuntimeError, match="multiple optimizers is only supported with manual"):
        trainer(LRFindCallback(), max_steps=1).fit(model, loader())
    assert model.calls == 0


def test_repr_shows_the_options():
    text = repr(LRFindCallback(1e-4, 1, steps=30, plot="find.png"))
    assert text.startswith("LRFindCallback(start=0.0001, end=1, steps=30, mode='exp',")
    assert text.endswith("update_attr=True, attr=None, plot='find.png')")


def test_a_training_step_that_skips_every_batch_is_refused_with_what_it_needs():
    class SkipsAll(Tiny):
        def training_step(self, batch, batch_idx):
            return None

    with pytest.raises(ValueError, match="returned None for every batch of the train dataloader"):
        trainer(LRFindCallback(1e-4, 10, steps=30), max_steps=1).fit(SkipsAll(), loader())


def test_a_plot_that_is_not_a_path_is_refused_when_the_callback_is_built():
    # plot=3 raised AttributeError after the whole sweep (tests/test_review12.py: the folder)
    with pytest.raises(ValueError, match=r"LRFindCallback plot must be a file path .* got 3"):
        LRFindCallback(1e-4, 10, steps=30, plot=3)
