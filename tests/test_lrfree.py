"""The learning-rate-free (Prodigy, D-Adaptation) and schedule-free (AdamW, SGD) optimizers:
what ``optimizer_info`` says, how ``Task.variant`` builds them over the task's groups, the
Driver's multiplier and its refusal, a missing package, bad names, and the command line.

Each optimizer's package is optional: a test that needs one is skipped, naming it, when it is
missing, except under ``CI=true``, where the test extra installs them and a missing one fails.
"""

from __future__ import annotations

import importlib
import math
import os

import pytest
import torch
from cli_run import call
from torch import nn

import lrkit
from lrkit.errors import UserError
from lrkit.schedules import Driver, cosine
from lrkit.tasks import OPTIMIZERS, Task, get_task, is_schedule_free, optimizer_info, tensor_loader
from lrkit.tasks import lrfree as lrfree_module

pytestmark = pytest.mark.usefixtures("one_thread")

PACKAGES = {
    "prodigy": "prodigyopt",
    "dadapt-adam": "dadaptation",
    "schedulefree-adamw": "schedulefree",
    "schedulefree-sgd": "schedulefree",
}
# what each trains wine-mlp with in the tests: its authors' advice (lr-free: the multiplier 1.0
# under a cosine; schedule-free: a warmup and a hold; SGD's lr far above a classical one)
RECIPES = {
    "prodigy": (None, "cosine"),
    "dadapt-adam": (None, "cosine"),
    "schedulefree-adamw": (None, "warmup(10%)"),
    "schedulefree-sgd": (0.5, "warmup(10%)"),
}


def need(package: str):
    """``package``, or a skip that names it and the install line; under ``CI=true`` (the test
    extra installs every optional optimizer) a missing one fails instead."""
    if os.environ.get("CI", "").lower() == "true":
        return importlib.import_module(package)
    return pytest.importorskip(
        package, reason=f"{package} is not installed: pip install 'lrkit[lrfree]'"
    )


@pytest.fixture(params=sorted(PACKAGES))
def name(request):
    need(PACKAGES[request.param])
    return request.param


def untrained_val_loss(task: Task) -> float:
    model = task.build_model()
    return task.validate(model, task.build_loaders()[1])[1]


# -- what they are ---------------------------------------------------------------------------
def test_every_optimizer_name_has_its_info():
    assert set(OPTIMIZERS) == {
        "sgd", "adam", "adamw", "prodigy", "dadapt-adam", "schedulefree-adamw", "schedulefree-sgd"
    }  # fmt: skip
    for n in OPTIMIZERS:
        assert optimizer_info(n).name == n


def test_lr_free_ones_take_a_multiplier_of_one():
    for n in ("prodigy", "dadapt-adam"):
        info = optimizer_info(n)
        assert info.lr_free and info.default_lr == 1.0 and info.schedules == "any"
        assert not info.schedule_free


def test_schedule_free_ones_take_only_a_warmup_and_an_absolute_lr():
    for n in ("schedulefree-adamw", "schedulefree-sgd"):
        info = optimizer_info(n)
        assert info.schedule_free and info.schedules == "warmup"
        assert not info.lr_free and info.default_lr is None and info.package == "schedulefree"


def test_torchs_own_need_no_package():
    info = optimizer_info("AdamW")
    assert info.name == "adamw" and info.package is None and info.available


def test_optimizer_info_is_public():
    assert lrkit.optimizer_info("prodigy").package == "prodigyopt"


@pytest.mark.parametrize("bad", ["prodigi", "schedulefree", "dadapt_adam"])
def test_a_bad_name_is_a_user_error_with_did_you_mean(bad):
    with pytest.raises(UserError, match=r"did you mean '(prodigy|schedulefree-\w+|dadapt-adam)'"):
        optimizer_info(bad)
    with pytest.raises(UserError, match="known: sgd, adam, adamw, prodigy"):
        get_task("wine-mlp").variant(bad)


def test_a_missing_package_names_it_and_the_install_line(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        lrfree_module.importlib.util,
        "find_spec",
        lambda n, *a: None if n == "prodigyopt" else real(n, *a),
    )
    assert not optimizer_info("prodigy").available
    with pytest.raises(UserError, match=r"'prodigyopt'.*pip install 'lrkit\[lrfree\]'"):
        get_task("wine-mlp").variant("prodigy")


def test_a_missing_package_is_one_line_and_exit_2_on_the_command_line(monkeypatch, capsys):
    monkeypatch.setattr(lrfree_module.importlib.util, "find_spec", lambda n, *a: None)
    status, _, err = call(capsys, "train", "--task", "wine-mlp", "--optimizer", "dadapt-adam")
    assert status == 2 and err.count("\n") == 1 and "dadaptation" in err and "lrfree" in err


# -- building over the task's groups -----------------------------------------------------------
def test_each_builds_over_the_tasks_groups_keeping_its_no_decay_group(name):
    task = get_task("wine-mlp").variant(name)
    optimizer = task.build_optimizer(task.build_model())
    assert type(optimizer).__module__.split(".")[0] == PACKAGES[name]
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.01, 0.0]


def test_each_trains_wine_mlp_and_its_loss_goes_down(name):
    task = get_task("wine-mlp").variant(name)
    lr, schedule = RECIPES[name]
    history = lrkit.fit(task, lr=lr, schedule=schedule, epochs=3, progress=False)
    assert history.status == "completed"
    assert history.epochs_log[-1]["val_loss"] < 0.7 * untrained_val_loss(task)
    assert history.final_metric >= 0.9  # accuracy on wine's 3 classes


def test_an_lr_free_variant_trains_at_the_multiplier_one_and_gives_the_lr_back():
    need("prodigyopt")
    wine = get_task("wine-mlp")
    prodigy = wine.variant("prodigy")
    assert prodigy.lr == 1.0
    opt = prodigy.build_optimizer(prodigy.build_model())
    assert [g["lr"] for g in opt.param_groups] == [1.0, 1.0]
    assert prodigy.variant(weight_decay=0.1).lr == 1.0  # still Prodigy
    assert prodigy.variant("sgd").lr == wine.lr


def _two_rates(**overrides) -> Task:
    """A task whose own optimizer trains the head at lr and the body at lr / 10 (or 0)."""
    x, y = torch.randn(32, 4), torch.randint(0, 2, (32,))
    body_share = overrides.pop("body_share", 0.1)

    def make_optimizer(model, lr):
        params = list(model)
        return torch.optim.AdamW(
            [{"params": params[:2], "lr": lr * body_share}, {"params": params[2:], "lr": lr}]
        )

    return Task(
        name="two-rates",
        make_model=lambda: nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)),
        make_optimizer=make_optimizer,
        make_train_loader=lambda: tensor_loader(x, y, batch_size=8),
        make_val_loader=lambda: tensor_loader(x, y, batch_size=32),
        lr=3e-3,
    )


def test_dadaptation_keeps_group_ratios_as_layer_scale_with_one_multiplier():
    need("dadaptation")
    task = _two_rates().variant("dadapt-adam")
    opt = task.build_optimizer(task.build_model(), lr=0.5)
    assert [g["lr"] for g in opt.param_groups] == [0.5, 0.5]
    assert [g["layer_scale"] for g in opt.param_groups] == pytest.approx([0.1, 1.0])


def test_prodigy_refuses_groups_at_different_rates_naming_dadaptation():
    need("prodigyopt")
    task = _two_rates().variant("prodigy")
    with pytest.raises(UserError, match="different lrs .*'dadapt-adam'"):
        task.build_optimizer(task.build_model())


def test_a_frozen_group_stays_at_zero_under_an_lr_free_optimizer():
    need("prodigyopt")
    task = _two_rates(body_share=0.0).variant("prodigy")
    opt = task.build_optimizer(task.build_model())
    assert [g["lr"] for g in opt.param_groups] == [0.0, 1.0]


def test_schedule_free_ones_keep_absolute_group_lrs_and_start_in_train_mode():
    need("schedulefree")
    task = _two_rates().variant("schedulefree-adamw")
    opt = task.build_optimizer(task.build_model(), lr=0.01)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.001, 0.01])
    assert is_schedule_free(opt) and opt.param_groups[0]["train_mode"]


def test_is_schedule_free_is_false_for_the_others():
    need("prodigyopt")
    model = nn.Linear(2, 1)
    assert not is_schedule_free(torch.optim.AdamW(model.parameters()))
    assert not is_schedule_free(OPTIMIZERS["prodigy"](model.parameters(), 1.0))


# -- the Driver ----------------------------------------------------------------------------------
def _step(task, opt, n):
    model_params = [p for g in opt.param_groups for p in g["params"]]
    for _ in range(n):
        for p in model_params:
            p.grad = torch.randn_like(p)
        opt.step()


@pytest.mark.parametrize("lr_free", ["prodigy", "dadapt-adam"])
def test_the_driver_multiplies_an_lr_free_multiplier_by_the_schedule(lr_free):
    need(PACKAGES[lr_free])
    task = get_task("wine-mlp").variant(lr_free)
    opt = task.build_optimizer(task.build_model(), lr=0.5)
    schedule = cosine(to=0.1)
    driver = Driver(opt, schedule, total_steps=20)
    _step(task, opt, 7)
    value = driver.schedule(7)
    assert value < 1.0 and [g["lr"] for g in opt.param_groups] == pytest.approx([0.5 * value] * 2)
    driver.close()


@pytest.fixture
def schedule_free_adamw():
    need("schedulefree")
    task = get_task("wine-mlp").variant("schedulefree-adamw")
    return task.build_optimizer(task.build_model())


REFUSAL = (
    "schedule-free AdamW needs no decaying schedule: its authors recommend none, the averaging"
    " replaces the decay; give constant, or warmup(N) / its warmup_steps"
)


@pytest.mark.parametrize(
    "spec", ["cosine", "warmup(5%) >> cosine", "step(5, 0.5)", "one_cycle", "linear(to=0.5)"]
)
def test_the_driver_refuses_a_decaying_schedule_on_schedule_free_adamw(schedule_free_adamw, spec):
    with pytest.raises(ValueError) as caught:
        Driver(schedule_free_adamw, spec, total_steps=100)
    assert str(caught.value).startswith(REFUSAL) and "falls from" in str(caught.value)


def test_the_refusal_names_schedule_free_sgd_for_sgd():
    need("schedulefree")
    task = get_task("wine-mlp").variant("schedulefree-sgd")
    with pytest.raises(UserError, match="^schedule-free SGD needs no decaying schedule"):
        Driver(task.build_optimizer(task.build_model()), "cosine", total_steps=50)


def test_a_plateau_factor_is_a_decay_too(schedule_free_adamw):
    with pytest.raises(UserError, match="plateau factor lowers the lr"):
        Driver(schedule_free_adamw, "constant * plateau(patience=2)", total_steps=50)


@pytest.mark.parametrize(
    "spec", ["constant", "0.5", "warmup(10)", "warmup(5%) >> constant", "warmup(10, start=0.1)"]
)
def test_a_constant_or_a_warmup_then_a_hold_is_accepted(schedule_free_adamw, spec):
    driver = Driver(schedule_free_adamw, spec, total_steps=100)
    assert driver.schedule(100) == max(driver.schedule(t) for t in range(101))
    driver.close()


def test_a_momentum_schedule_is_refused_on_a_schedule_free_optimizer(schedule_free_adamw):
    with pytest.raises(UserError, match="takes no momentum schedule"):
        Driver(schedule_free_adamw, "constant", momentum="linear(start=0.95, to=0.85)",
               total_steps=50)  # fmt: skip


def test_a_warmup_over_a_ten_million_step_run_is_accepted(schedule_free_adamw):
    driver = Driver(schedule_free_adamw, "warmup(10%)", total_steps=10**7)
    assert driver.schedule(10**7) == 1.0
    driver.close()


# -- the command line ------------------------------------------------------------------------------
def test_train_with_schedule_free_and_cosine_exits_2_with_the_refusal(capsys, tmp_path):
    need("schedulefree")
    status, _, err = call(capsys, "train", "--task", "wine-mlp", "--optimizer",
                          "schedulefree-adamw", "--schedule", "cosine", "--out", tmp_path, "-q")  # fmt: skip
    assert status == 2 and err.count("\n") == 1
    assert err.startswith("lrkit: error: " + REFUSAL)


def test_train_with_prodigy_trains_at_the_multiplier(capsys, tmp_path):
    need("prodigyopt")
    status, out, err = call(capsys, "train", "--task", "wine-mlp", "--optimizer", "prodigy",
                            "--schedule", "cosine", "--epochs", "2", "--out", tmp_path)  # fmt: skip
    assert status == 0, err
    history = lrkit.History.load(tmp_path)
    assert "prodigy" in out and history.lr == 1.0 and math.isfinite(history.loss[-1])


def test_train_help_lists_the_optional_optimizers(capsys):
    status, out, _ = call(capsys, "train", "--help")
    assert status == 0 and "schedulefree-adamw" in out and "dadapt-adam" in out
    assert "multiplier" in out
