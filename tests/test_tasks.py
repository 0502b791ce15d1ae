"""Tasks: built from plain parts, reproducible, bundled ones learn, get_task finds them."""

import doctest
import math

import pytest
import torch
import user_tasks
from torch import nn

from lrkit.errors import UserError
from lrkit.tasks import Metric, Task, data, get_task, list_tasks, registry
from lrkit.tasks import task as task_module
from lrkit.tasks.pychar import _data, corpus
from lrkit.train import fit

BUNDLED = ["diabetes-mlp", "digits-cnn", "digits-mlp", "digits-transfer", "pychar-gru", "wine-mlp"]


def test_list_tasks_names_the_bundled_tasks_sorted():
    assert list_tasks() == BUNDLED


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_task_beats_the_untrained_model_after_one_epoch(name):
    task = get_task(name)
    _, val = task.build_loaders()
    untrained, _ = task.validate(task.build_model(), val)
    trained = fit(task, epochs=1, progress=False).final_metric
    assert task.metric.better(trained, untrained), (untrained, trained)


def test_build_model_gives_the_same_weights_for_the_same_seed():
    task = get_task("digits-mlp")
    a, b = task.build_model(seed=3), task.build_model(seed=3)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_build_model_gives_other_weights_for_another_seed():
    task = get_task("digits-mlp")
    a, b = task.build_model(seed=3), task.build_model(seed=4)
    assert not torch.equal(next(a.parameters()), next(b.parameters()))


def test_validation_split_is_the_same_on_every_build():
    task = get_task("wine-mlp")
    first = [x for x, _ in task.build_loaders(seed=0)[1]]
    again = [x for x, _ in task.build_loaders(seed=5)[1]]
    assert all(torch.equal(a, b) for a, b in zip(first, again))


@pytest.mark.parametrize("name", BUNDLED)
def test_a_pass_over_the_validation_data_leaves_the_global_generator_alone(name):
    _, val = get_task(name).build_loaders(seed=0)
    before = torch.get_rng_state()
    for _ in val:
        pass
    assert torch.equal(torch.get_rng_state(), before)


def test_how_often_a_run_validates_does_not_change_its_training():
    # a tune trial validates every run/8 steps; the 'lrkit train' line it prints validates
    # once an epoch, and must reproduce the trial's metric
    runs = [
        fit("wine-mlp", lr=0.06, schedule="cosine", epochs=2, seed=0, progress=False, **kw)
        for kw in ({}, {"val_every": 2})
    ]
    assert runs[0].epochs_log[-1]["val_loss"] == runs[1].epochs_log[-1]["val_loss"]


def test_digits_split_covers_every_example_once():
    train, val = get_task("digits-mlp").build_loaders()
    sizes = sum(len(x) for x, _ in train) + sum(len(x) for x, _ in val)
    assert sizes == 1797


def test_wine_features_are_standardised_with_training_statistics():
    train, _ = get_task("wine-mlp").build_loaders()
    x = torch.cat([x for x, _ in train])
    assert x.mean(0).abs().max() < 1e-4
    assert (x.std(0, unbiased=False) - 1).abs().max() < 1e-3


def test_pychar_vocabulary_holds_every_character_of_the_text():
    vocab, train, val = _data()
    assert set(corpus()) == set(vocab)
    assert train.max() < len(vocab) and val.shape[1] == train.shape[1]


def test_pychar_metric_is_the_validation_loss_in_bits():
    task = get_task("pychar-gru")
    _, val = task.build_loaders()
    bits, val_loss = task.validate(task.build_model(), val)
    assert bits == pytest.approx(val_loss / math.log(2), rel=1e-4)
    assert not task.metric.higher_is_better


def test_diabetes_is_a_regression_scored_by_r2():
    task = get_task("diabetes-mlp")
    _, val = task.build_loaders()
    x, y = next(iter(val))
    assert y.dtype == torch.float32 and task.metric.name == "r2"


def test_a_task_without_a_metric_is_scored_by_validation_loss():
    task = user_tasks.tiny()
    _, val = task.build_loaders()
    metric, val_loss = task.validate(task.build_model(), val)
    assert task.metric.name == "val_loss" and not task.metric.higher_is_better
    assert metric == val_loss


def test_step_fn_replaces_the_criterion():
    calls = []

    def step_fn(model, batch):
        calls.append(len(batch[0]))
        return model(batch[0]).pow(2).mean()

    task = user_tasks.tiny(step_fn=step_fn)
    model = task.build_model()
    loss = task.loss(model, next(iter(task.build_loaders()[0])))
    assert calls == [16] and loss.item() >= 0


def test_the_default_optimizer_is_adamw_and_accepts_param_groups():
    task = user_tasks.tiny(make_optimizer=Task.__dataclass_fields__["make_optimizer"].default)
    model = task.build_model()
    groups = [{"params": [model.weight]}, {"params": [model.bias], "weight_decay": 0.0}]
    opt = task.build_optimizer(groups, lr=0.01)
    assert isinstance(opt, torch.optim.AdamW) and len(opt.param_groups) == 2


def test_task_rejects_a_non_positive_lr_naming_it():
    with pytest.raises(ValueError, match=r"lr must be a finite number > 0, got -1"):
        user_tasks.tiny(lr=-1)


def test_task_rejects_zero_epochs_naming_them():
    with pytest.raises(ValueError, match=r"epochs must be a whole number >= 1, got 0"):
        user_tasks.tiny(epochs=0)


def test_task_rejects_a_model_that_is_not_a_factory():
    with pytest.raises(TypeError, match="make_model must be callable"):
        user_tasks.tiny(make_model=nn.Linear(4, 2).weight)


def test_metric_better_follows_its_direction():
    assert Metric("acc", None, higher_is_better=True).better(0.9, 0.8)
    assert Metric("loss", None, higher_is_better=False).better(0.8, 0.9)


def test_get_task_loads_module_function():
    task = get_task("user_tasks:tiny")
    assert isinstance(task, Task) and task.name == "tiny"


def test_get_task_unknown_name_lists_the_known_ones():
    with pytest.raises(
        UserError, match=r"unknown task 'digit-mlp'; known: diabetes-mlp, digits-cnn"
    ):
        get_task("digit-mlp")


def test_get_task_module_not_importable_names_the_module():
    with pytest.raises(UserError, match=r"cannot import module 'no_such_module'"):
        get_task("no_such_module:make")


def test_get_task_missing_attribute_names_it():
    with pytest.raises(UserError, match=r"module 'user_tasks' has no attribute 'nope'"):
        get_task("user_tasks:nope")


def test_get_task_attribute_that_is_not_callable_is_refused():
    with pytest.raises(UserError, match=r"'not_callable' is a int, not a function"):
        get_task("user_tasks:not_callable")


def test_get_task_function_not_returning_a_task_is_refused():
    with pytest.raises(UserError, match=r"returns_none\(\) returned NoneType, not an lrkit"):
        get_task("user_tasks:returns_none")


def test_get_task_path_with_two_colons_is_refused():
    with pytest.raises(UserError, match=r"must be written 'package.module:function'"):
        get_task("user_tasks:tiny:extra")


def test_wine_optimizer_decays_weights_but_not_biases():
    task = get_task("wine-mlp")
    groups = task.build_optimizer(task.build_model()).param_groups
    assert [(g["weight_decay"], {p.dim() for p in g["params"]}) for g in groups] == [
        (0.01, {2}),
        (0.0, {1}),
    ]


@pytest.mark.parametrize("module", [task_module, data, registry])
def test_docstring_examples_run(module):
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
