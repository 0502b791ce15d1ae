"""Layer-wise rates: the groups' rates as documented, kept by the Driver and the range test;
finetune's four ways of training a task's model."""

import doctest
import importlib
import math
import re
from collections import OrderedDict

import pytest
import torch
from torch import nn

import lrkit
from lrkit.errors import UserError
from lrkit.find import FindResult, find_lr
from lrkit.schedules import Driver
from lrkit.tasks import FINETUNE, Task, finetune, get_task, layerwise_groups, tensor_data

pytestmark = pytest.mark.usefixtures("one_thread")


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        OrderedDict(
            fc1=nn.Linear(4, 8),
            act=nn.ReLU(),
            fc2=nn.Linear(8, 8),
            norm=nn.LayerNorm(8),
            head=nn.Linear(8, 3),
        )
    )


def _rates(groups) -> dict[str, float]:
    return {g["name"]: g["lr"] for g in groups}


# -- the rates -----------------------------------------------------------------------------------


def test_the_head_trains_at_lr_and_each_layer_below_at_decay_times_the_one_above():
    rates = _rates(layerwise_groups(_net(), 0.1, decay=0.5))
    assert rates == pytest.approx({"fc1": 0.0125, "fc2": 0.025, "norm": 0.05, "head": 0.1})


def test_parameter_free_children_are_not_layers():
    assert "act" not in _rates(layerwise_groups(_net(), 0.1))


def test_every_trainable_parameter_is_in_exactly_one_group():
    model = _net()
    model.fc1.bias.requires_grad_(False)
    params = [p for g in layerwise_groups(model, 0.1) for p in g["params"]]
    expected = [p for p in model.parameters() if p.requires_grad]
    assert len(params) == len(expected) and {id(p) for p in params} == {id(p) for p in expected}


def test_decay_one_gives_every_layer_the_same_rate():
    assert set(_rates(layerwise_groups(_net(), 0.1, decay=1.0)).values()) == {0.1}


def test_head_names_the_layers_trained_at_lr_and_the_others_decay_below_them():
    rates = _rates(layerwise_groups(_net(), 1.0, decay=0.5, head=["norm", "head"]))
    assert rates == pytest.approx({"fc1": 0.25, "fc2": 0.5, "norm": 1.0, "head": 1.0})


def test_with_a_head_not_last_the_other_layers_decay_from_the_last_one_down():
    rates = _rates(layerwise_groups(_net(), 1.0, decay=0.5, head="fc2"))
    assert rates == pytest.approx({"fc1": 0.125, "fc2": 1.0, "norm": 0.25, "head": 0.5})


def test_a_wrapper_with_one_child_is_looked_through():
    class Wrapper(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = _net()

    rates = _rates(layerwise_groups(Wrapper(), 1.0, decay=0.5))
    assert rates == pytest.approx(
        {"net.fc1": 0.125, "net.fc2": 0.25, "net.norm": 0.5, "net.head": 1}
    )


def test_the_parents_own_parameters_train_at_the_lowest_layers_rate():
    class WithToken(nn.Module):
        def __init__(self):
            super().__init__()
            self.token = nn.Parameter(torch.zeros(4))
            self.body = nn.Linear(4, 4)
            self.head = nn.Linear(4, 2)

    rates = _rates(layerwise_groups(WithToken(), 1.0, decay=0.5))
    assert rates == {"token": 0.5, "body": 0.5, "head": 1.0}


def test_a_glob_pattern_overrides_the_layer_rate_of_the_parameters_it_names():
    model = _net()
    groups = layerwise_groups(model, 0.1, decay=0.5, patterns={"*.bias": 2.0})
    model_biases = {id(p) for n, p in model.named_parameters() if n.endswith(".bias")}
    biases = next(g for g in groups if g["name"] == "*.bias")
    assert biases["lr"] == pytest.approx(0.2) and {id(p) for p in biases["params"]} == model_biases


def test_a_regex_pattern_is_searched_in_the_parameter_name():
    groups = layerwise_groups(_net(), 0.1, patterns=[(re.compile(r"^fc1\."), 0.01)])
    assert _rates(groups)["^fc1\\."] == pytest.approx(0.001) and "fc1" not in _rates(groups)


def test_the_first_matching_pattern_wins():
    groups = layerwise_groups(_net(), 1.0, patterns={"fc1.weight": 0.1, "fc1.*": 0.5})
    assert [len(g["params"]) for g in groups if g["name"].startswith("fc1.")] == [1, 1]


def test_a_pattern_named_like_a_layer_keeps_its_own_group():
    groups = layerwise_groups(_net(), 1.0, decay=0.5, patterns={"fc2.bias": 3.0})
    names = [g["name"] for g in groups]
    assert names.count("fc2") == 1 and _rates(groups)["fc2.bias"] == 3.0


def test_weight_decay_skips_biases_and_norms_in_groups_of_their_own():
    groups = layerwise_groups(_net(), 0.1, decay=0.5, weight_decay=0.01)
    decays = {g["name"]: g["weight_decay"] for g in groups}
    assert decays == {
        "fc1": 0.01, "fc1 (no decay)": 0.0, "fc2": 0.01, "fc2 (no decay)": 0.0,
        "norm (no decay)": 0.0, "head": 0.01, "head (no decay)": 0.0,
    }  # fmt: skip
    assert _rates(groups)["norm (no decay)"] == pytest.approx(0.05)


def test_without_weight_decay_the_groups_leave_it_to_the_optimizer():
    assert all("weight_decay" not in g for g in layerwise_groups(_net(), 0.1))


def test_the_groups_build_a_torch_optimizer_with_their_rates_and_names():
    opt = torch.optim.AdamW(layerwise_groups(_net(), 0.1, decay=0.5), weight_decay=0.0)
    assert [(g["name"], g["lr"]) for g in opt.param_groups][-1] == ("head", 0.1)


def test_layerwise_groups_is_public_in_lrkit():
    assert lrkit.layerwise_groups is layerwise_groups


# -- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "model",
    [nn.ParameterList([nn.Parameter(torch.zeros(3))]), nn.Sequential(nn.Linear(2, 2)),
     nn.Linear(2, 2), nn.Sequential(nn.ReLU(), nn.Sequential(nn.Linear(2, 2)))],
    ids=["parameter-container", "one-child", "leaf", "one-nested-child"],
)  # fmt: skip
def test_a_model_without_two_named_layers_is_refused_saying_what_is_needed(model):
    with pytest.raises(UserError, match="at least two layers .*child modules holding parameters"):
        layerwise_groups(model, 0.1)


@pytest.mark.parametrize("decay", [0, -0.5, 1.5, math.nan, math.inf, "0.9", True])
def test_a_decay_outside_zero_to_one_is_refused(decay):
    with pytest.raises(UserError, match=r"decay must be a number in \(0, 1\]"):
        layerwise_groups(_net(), 0.1, decay=decay)


@pytest.mark.parametrize("lr", [0, -1e-3, math.nan, math.inf, None])
def test_an_lr_that_is_not_a_finite_positive_number_is_refused(lr):
    with pytest.raises(UserError, match="lr must be a finite number > 0"):
        layerwise_groups(_net(), lr)


def test_a_pattern_that_matches_nothing_is_named_with_the_parameter_names():
    with pytest.raises(UserError, match=r"pattern 'embed\.\*' matches no .*fc1\.weight"):
        layerwise_groups(_net(), 0.1, patterns={"embed.*": 0.1})


@pytest.mark.parametrize("scale", [0, -1, math.nan, math.inf])
def test_a_pattern_multiplier_that_is_not_positive_and_finite_is_refused(scale):
    with pytest.raises(UserError, match="multiplier of pattern 'fc1.\\*' must be a finite"):
        layerwise_groups(_net(), 0.1, patterns={"fc1.*": scale})


def test_a_head_that_is_not_a_layer_names_the_layers():
    with pytest.raises(UserError, match="head 'classifier' is not a layer.*fc1, fc2, norm, head"):
        layerwise_groups(_net(), 0.1, head="classifier")


def test_a_head_naming_every_layer_is_refused():
    with pytest.raises(UserError, match="at least one must be below the head"):
        layerwise_groups(_net(), 0.1, head=["fc1", "fc2", "norm", "head"])


def test_a_negative_weight_decay_is_refused():
    with pytest.raises(UserError, match="weight_decay must be a finite number >= 0, got -1"):
        layerwise_groups(_net(), 0.1, weight_decay=-1)


def test_a_model_with_every_parameter_frozen_is_refused():
    with pytest.raises(UserError, match="no trainable parameters"):
        layerwise_groups(_net().requires_grad_(False), 0.1)


# -- the Driver and the range test keep the ratios ----------------------------------------------


def test_the_driver_keeps_the_groups_ratios_at_every_step():
    groups = layerwise_groups(_net(), 0.1, decay=0.5)
    first = [g["lr"] for g in groups]
    opt = torch.optim.SGD(groups, lr=0.1)
    driver = Driver(opt, "warmup(5) >> cosine(to=0.01)", total_steps=30)
    for step in range(30):
        lrs = [g["lr"] for g in opt.param_groups]
        scale = driver.schedule(step)
        assert lrs == pytest.approx([scale * f for f in first], rel=1e-12, abs=0), step
        opt.step()


def _tiny_task(**changes) -> Task:
    torch.manual_seed(0)
    x = torch.randn(96, 4)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
    defaults = dict(
        name="tiny-layers",
        make_model=_net,
        make_optimizer=lambda params, lr: torch.optim.SGD(params, lr=lr, momentum=0.9),
        data=tensor_data((x, y), (x[:32], y[:32]), batch_size=16),
        epochs=2,
        lr=0.1,
        threads=1,
    )
    return Task(**{**defaults, **changes})


def test_the_range_test_sweeps_every_group_keeping_its_ratio():
    task = finetune(_tiny_task(), "layerwise", decay=0.5)
    result = find_lr(task, start=1e-4, end=1.0, steps=20, progress=False)
    for lrs, ratio in zip(result.group_lrs, [0.125, 0.25, 0.5, 1.0]):
        assert lrs == pytest.approx([ratio * lr for lr in result.lrs])


def test_the_range_test_reports_each_groups_rate_at_the_suggestion():
    task = finetune(_tiny_task(), "layerwise", decay=0.5)
    result = find_lr(task, start=1e-4, end=3.0, steps=50, progress=False)
    assert result.group_names == ["fc1", "fc2", "norm", "head"]
    lr = result.lr
    assert result.group_lr() == pytest.approx([lr / 8, lr / 4, lr / 2, lr])


def test_each_groups_rate_is_saved_in_the_result():
    task = finetune(_tiny_task(), "layerwise", decay=0.5)
    result = find_lr(task, start=1e-4, end=3.0, steps=50, progress=False)
    data = result.to_dict()
    assert len(data["group_lr"]) == 4 and data["group_lr"] == pytest.approx(result.group_lr())
    assert FindResult.from_dict(data).group_lr() == pytest.approx(result.group_lr())


def test_a_result_without_a_suggestion_has_no_group_rates():
    task = finetune(_tiny_task(), "layerwise", decay=0.5)
    result = find_lr(task, start=1e-4, end=1.0, steps=20, progress=False)
    result.lr = None
    assert result.group_lr() is None and result.group_lr(0.01)[-1] == pytest.approx(0.01)


SWEEP = ("--steps", "30", "--start", "1e-5", "--end", "10")


def test_lrkit_find_prints_each_groups_lr_when_there_are_several(capsys):
    from cli_run import call

    status, out, _ = call(capsys, "find", "--task", "wine-mlp", *SWEEP)
    assert status == 0 and "each param group at the chosen lr" in out
    assert "group 0" in out and "group 1" in out


def test_lrkit_find_prints_no_group_table_for_one_group(capsys):
    from cli_run import call

    status, out, _ = call(capsys, "find", "--task", "digits-mlp", *SWEEP)
    assert status == 0 and "confidence ok" in out and "each param group" not in out


# -- finetune ------------------------------------------------------------------------------------


def test_finetune_names_the_four_ways():
    assert FINETUNE == ("scratch", "full", "layerwise", "frozen")


@pytest.mark.parametrize("how", ["warm", "", None, 3])
def test_an_unknown_way_is_refused_naming_those_accepted(how):
    with pytest.raises(UserError, match="known: scratch, full, layerwise, frozen"):
        finetune(_tiny_task(), how)


def test_a_close_misspelling_gets_a_suggestion():
    with pytest.raises(UserError, match="did you mean 'frozen'"):
        finetune(_tiny_task(), "frozn")


@pytest.mark.parametrize("decay", [0, 2, math.nan])
def test_finetune_refuses_a_decay_outside_zero_to_one(decay):
    with pytest.raises(UserError, match=r"decay must be a number in \(0, 1\]"):
        finetune(_tiny_task(), "layerwise", decay=decay)


def test_scratch_reinitialises_every_weight_the_same_way_for_the_same_seed():
    base = _tiny_task()
    task = finetune(base, "scratch")
    trained = base.build_model()
    a, b = task.build_model(seed=3), task.build_model(seed=3)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    other = task.build_model(seed=4)
    assert not torch.equal(a.fc1.weight, other.fc1.weight)
    assert not torch.equal(a.fc1.weight, trained.fc1.weight)


def test_scratch_throws_the_weights_of_make_model_away():
    def pretrained():
        model = _net()
        with torch.no_grad():
            for p in model.parameters():
                p.fill_(7.0)
        return model

    model = finetune(_tiny_task(make_model=pretrained), "scratch").build_model()
    assert not any(bool((p == 7.0).all()) for p in model.parameters())


def test_scratch_refuses_a_module_it_cannot_reinitialise():
    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.ones(3))
            self.head = nn.Linear(4, 3)

    with pytest.raises(UserError, match="no reset_parameters"):
        finetune(_tiny_task(make_model=Scaled), "scratch").build_model()


def test_full_trains_every_weight_at_one_rate():
    task = finetune(_tiny_task(), "full")
    model = task.build_model()
    opt = task.build_optimizer(model, lr=0.05)
    assert [g["lr"] for g in opt.param_groups] == [0.05]
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))


def test_layerwise_builds_the_tasks_optimizer_over_the_layer_groups():
    task = finetune(_tiny_task(), "layerwise", decay=0.5)
    opt = task.build_optimizer(task.build_model(), lr=0.2)
    assert type(opt) is torch.optim.SGD and {g["momentum"] for g in opt.param_groups} == {0.9}
    assert [(g["name"], g["lr"]) for g in opt.param_groups] == [
        ("fc1", 0.025), ("fc2", 0.05), ("norm", 0.1), ("head", 0.2)
    ]  # fmt: skip


def test_a_variant_of_a_layerwise_task_keeps_the_ratios_and_the_names():
    task = finetune(_tiny_task(), "layerwise", decay=0.5).variant("adam")
    opt = task.build_optimizer(task.build_model(), lr=0.2)
    assert type(opt) is torch.optim.Adam
    assert [g["lr"] for g in opt.param_groups] == [0.025, 0.05, 0.1, 0.2]
    assert [g["name"] for g in opt.param_groups] == ["fc1", "fc2", "norm", "head"]


def test_layerwise_keeps_a_no_decay_group_of_the_task():
    task = finetune(get_task("wine-mlp"), "layerwise", decay=0.5)
    opt = task.build_optimizer(task.build_model(), lr=0.01)
    rows = [(g["name"], g["lr"], g["weight_decay"]) for g in opt.param_groups]
    assert rows == [("0", 0.005, 0.01), ("0", 0.005, 0.0), ("2", 0.01, 0.01), ("2", 0.01, 0.0)]


def test_layerwise_refuses_parameters_of_a_model_it_did_not_build():
    task = finetune(_tiny_task(), "layerwise")
    with pytest.raises(UserError, match="from its own build_model"):
        task.build_optimizer(_net())


def test_frozen_trains_only_the_head():
    task = finetune(_tiny_task(), "frozen")
    model = task.build_model()
    opt = task.build_optimizer(model)
    trained = {id(p) for g in opt.param_groups for p in g["params"]}
    assert trained == {id(model.head.weight), id(model.head.bias)}
    assert not any(p.requires_grad for p in model.fc1.parameters())


def test_frozen_training_leaves_the_body_as_it_was():
    task = finetune(_tiny_task(), "frozen")
    body = task.build_model().fc1.weight.detach().clone()
    seen = {}

    class Look:
        def on_train_end(self, state):
            seen["fc1"], seen["head"] = state.model.fc1.weight, state.model.head.weight

    history = lrkit.fit(task, callbacks=[Look()], progress=False)
    assert history.status == "completed" and torch.equal(seen["fc1"], body)


@pytest.mark.parametrize("how", FINETUNE)
def test_every_way_trains_and_keeps_the_tasks_name_and_data(how):
    base = _tiny_task()
    task = finetune(base, how)
    history = lrkit.fit(task, steps=4, progress=False)
    assert history.status == "completed" and task.name == base.name and task.data is base.data
    assert how in task.description


def test_a_fine_tuned_task_still_has_folds_and_variants():
    task = finetune(_tiny_task(), "layerwise").variant(batch_size=32).folds(2)[0]
    assert lrkit.fit(task, steps=2, progress=False).status == "completed"


@pytest.mark.parametrize("module", ["lrkit.tasks.layerwise", "lrkit.tasks.finetune"])
def test_the_docstring_examples_hold(module):
    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0 and result.failed == 0


def test_frozen_on_a_one_layer_model_says_what_it_needed():
    x, y = torch.randn(32, 3), torch.randint(0, 2, (32,))
    task = Task(name="one", make_model=lambda: nn.Linear(3, 2),
                data=tensor_data((x, y), (x, y), batch_size=8))  # fmt: skip
    with pytest.raises(UserError, match="a frozen body and a trained head need a model with at"):
        finetune(task, "frozen").build_model()
