"""Task.folds (k-fold cross-validation of a task's training data), Task.variant (another
optimizer, weight decay or batch size), TaskData, and `lrkit train`'s options for them."""

import dataclasses
import doctest
import math

import numpy as np
import pytest
import torch
from cli_run import call
from torch import nn

from lrkit.errors import UserError
from lrkit.tasks import (
    OPTIMIZERS,
    Task,
    TaskData,
    fold_indices,
    folds,
    get_task,
    list_tasks,
    optimizers,
    split_indices,
    tensor_data,
    tensor_loader,
)
from lrkit.train import fit

# -- a task whose examples carry their own index: what a fold trains and validates on is visible


def _ids_task(n=60, classes=3, split=None, batch_size=8):
    """x[:, 0] is the example's index (train part: 0..n-1, validation part: 1000+)."""
    x = torch.arange(n, dtype=torch.float32).unsqueeze(1).repeat(1, 2)
    y = torch.arange(n) % classes
    xv = 1000 + torch.arange(10, dtype=torch.float32).unsqueeze(1).repeat(1, 2)
    data = tensor_data((x, y), (xv, torch.arange(10) % classes), batch_size=batch_size, split=split)
    return Task(name="ids", make_model=lambda: nn.Linear(2, classes), data=data, threads=1)


def _ids(loader) -> list[int]:
    return sorted(int(i) for x, _ in loader for i in x[:, 0])


def test_folds_validate_every_training_example_exactly_once():
    seen = [_ids(fold.build_loaders()[1]) for fold in _ids_task().folds(4)]
    assert sorted(i for ids in seen for i in ids) == list(range(60))


def test_a_fold_trains_on_exactly_the_other_folds():
    for fold in _ids_task().folds(4):
        train, val = (_ids(loader) for loader in fold.build_loaders())
        assert not set(train) & set(val) and sorted(train + val) == list(range(60))


def test_the_task_validation_data_stay_out_of_every_fold():
    for fold in _ids_task().folds(3):
        assert all(i < 1000 for loader in fold.build_loaders() for i in _ids(loader))


def test_stratified_folds_keep_class_proportions_within_one_example_per_class():
    data = get_task("digits-mlp").data
    counts = np.array(
        [np.bincount(data.labels[val], minlength=10) for _, val in fold_indices(data, 5)]
    )
    assert data.split == "stratified" and (counts.max(axis=0) - counts.min(axis=0) <= 1).all()


def test_classification_tasks_split_stratified_and_regression_shuffled():
    splits = {name: get_task(name).data.split for name in list_tasks()}
    assert splits == {
        "digits-mlp": "stratified",
        "digits-cnn": "stratified",
        "digits-transfer": "stratified",
        "wine-mlp": "stratified",
        "diabetes-mlp": "kfold",
        "pychar-gru": "contiguous",
    }


def test_regression_folds_are_shuffled():
    _, val = fold_indices(get_task("diabetes-mlp").data, 4)[0]
    assert np.diff(val).max() > 1


def test_sequence_folds_are_contiguous_blocks_whatever_the_seed():
    data = get_task("pychar-gru").data
    for _, val in fold_indices(data, 3, seed=0):
        assert (np.diff(val) == 1).all()
    assert all(
        np.array_equal(a[1], b[1])
        for a, b in zip(fold_indices(data, 3, seed=0), fold_indices(data, 3, seed=7))
    )


def test_the_same_seed_gives_the_same_folds():
    a = [_ids(f.build_loaders()[1]) for f in _ids_task().folds(3, seed=5)]
    b = [_ids(f.build_loaders()[1]) for f in _ids_task().folds(3, seed=5)]
    assert a == b


def test_another_seed_gives_other_folds():
    a = [_ids(f.build_loaders()[1]) for f in _ids_task().folds(3, seed=0)]
    b = [_ids(f.build_loaders()[1]) for f in _ids_task().folds(3, seed=1)]
    assert a != b


def test_a_bundled_fold_standardises_with_its_training_part_only():
    fold = get_task("wine-mlp").folds(3)[0]
    train, val = fold.build_loaders()
    x = torch.cat([b[0] for b in train])
    assert torch.allclose(x.mean(0), torch.zeros(13), atol=1e-5)
    assert torch.allclose(x.std(0, unbiased=False), torch.ones(13), atol=1e-4)
    xv = torch.cat([b[0] for b in val])
    assert xv.mean(0).abs().max() > 0.05  # the held-out fold is scaled with the others' stats


def test_a_bundled_fold_validates_on_its_examples_scaled_by_the_fold_statistics():
    import sklearn.datasets

    raw, _ = sklearn.datasets.load_wine(return_X_y=True)
    raw = raw.astype(np.float32)
    data = get_task("wine-mlp").data
    train_part, _ = split_indices(len(raw), 0.2, stratify=sklearn.datasets.load_wine().target)
    fit_on, held = fold_indices(data, 3)[0]
    fitted = raw[train_part[fit_on]]
    expected = (raw[train_part[held]] - fitted.mean(0)) / fitted.std(0)
    _, val = get_task("wine-mlp").folds(3)[0].build_loaders()
    assert np.allclose(torch.cat([b[0] for b in val]).numpy(), expected, atol=1e-5)


def test_tensor_data_standardises_with_the_fold_training_part():
    x = torch.cat([torch.zeros(30, 1), 100 + torch.ones(30, 1)])  # the last fold differs
    data = tensor_data((x, torch.zeros(60)), (x[:4], torch.zeros(4)), batch_size=60,
                       split="contiguous", standardize=True)  # fmt: skip
    task = Task(name="scaled", make_model=lambda: nn.Linear(1, 1), data=data)
    train, _ = task.folds(2)[0].build_loaders()  # trains on the second block only: constant
    assert torch.equal(next(iter(train))[0], torch.zeros(30, 1))


@pytest.mark.parametrize("name", list_tasks())
def test_every_bundled_task_fold_trains(name):
    task = get_task(name)
    fold = task.folds(3)[1]
    history = fit(fold, lr=task.lr, steps=2, progress=False)
    assert history.status == "completed" and history.steps == 2
    assert math.isfinite(history.final_metric)


def test_a_fold_can_be_split_again_and_rebatched():
    fold = _ids_task().folds(3)[0]
    outer = set(_ids(fold.build_loaders()[0]))
    inner = fold.folds(2)
    assert sorted(i for f in inner for i in _ids(f.build_loaders()[1])) == sorted(outer)
    train, val = fold.variant(batch_size=40).build_loaders()
    assert (
        len(train) == 1 and set(_ids(train)) == outer and _ids(val) == _ids(fold.make_val_loader())
    )


@pytest.mark.parametrize("k", [1, 0, -3])
def test_fewer_than_two_folds_are_refused(k):
    with pytest.raises(UserError, match=rf"cv must be a whole number >= 2, got {k}"):
        _ids_task().folds(k)


@pytest.mark.parametrize("k", [True, 2.0, "3", None])
def test_folds_that_are_not_a_whole_number_are_refused(k):
    with pytest.raises(UserError, match="cv must be a whole number >= 2"):
        _ids_task().folds(k)


def test_more_folds_than_training_examples_are_refused_naming_both():
    with pytest.raises(UserError, match="cv=7 folds need at least 7 training examples.* are 6"):
        _ids_task(n=6, split="kfold").folds(7)


def test_more_folds_than_the_smallest_class_are_refused_naming_both():
    with pytest.raises(
        UserError, match=r"at least 21 training examples of every class, but class \d+ has 20$"
    ):  # the class as the user wrote it, not np.int64(0)
        _ids_task(n=60, classes=3).folds(21)


@pytest.mark.parametrize("seed", [-1, 2**32, 1.5, True])
def test_a_bad_fold_seed_is_refused(seed):
    with pytest.raises(UserError, match="fold seed must be a whole number"):
        _ids_task().folds(2, seed=seed)


def test_a_task_without_data_says_what_to_add_to_be_split():
    from user_tasks import tiny

    with pytest.raises(UserError, match="cannot be split into folds") as e:
        tiny().folds(3)
    assert "data=lrkit.tasks.TaskData(" in str(e.value) and "tensor_data(" in str(e.value)


# -- the TaskData protocol itself


def test_a_task_given_data_alone_gets_its_loaders_from_it():
    task = _ids_task(batch_size=7)
    train, val = task.build_loaders()
    assert len(train) == math.ceil(60 / 7) and _ids(val) == list(range(1000, 1010))


def test_a_task_given_neither_loaders_nor_data_is_refused():
    with pytest.raises(TypeError, match="make_train_loader and make_val_loader, or data"):
        Task(name="empty", make_model=lambda: nn.Linear(1, 1))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (dict(size=0), "size .* >= 1, got 0"),
        (dict(batch_size=0), "batch_size .* >= 1, got 0"),
        (dict(split="random"), "split must be one of stratified, kfold, contiguous"),
        (dict(split="stratified", labels=None), "needs labels"),
        (dict(labels=np.zeros(3)), r"one per training example \(4\)"),
    ],
)
def test_task_data_refuses_a_bad_description(changes, message):
    parts = dict(size=4, make_loaders=lambda t, v, b: (None, None), batch_size=2)
    with pytest.raises(ValueError, match=message):
        TaskData(**{**parts, **changes})


# -- bundled tasks' default runs are what they were before TaskData


def _old_sklearn_tensors(name, stratify):
    """The bundled tasks' data as built before TaskData (a pinned reference)."""
    import sklearn.datasets

    x, y = getattr(sklearn.datasets, f"load_{name}")(return_X_y=True)
    x = x.astype(np.float32)
    train, val = split_indices(len(x), 0.2, stratify=y if stratify else None)
    mean, std = x[train].mean(axis=0), x[train].std(axis=0)
    std[std < 1e-3] = 1.0
    x = (x - mean) / std
    y = (
        y.astype(np.int64)
        if stratify
        else ((y - y[train].mean()) / y[train].std()).astype(np.float32)
    )
    return [torch.from_numpy(a) for a in (x[train], y[train], x[val], y[val])]


@pytest.mark.parametrize(
    ("task", "name", "stratify"),
    [
        ("digits-mlp", "digits", True),
        ("wine-mlp", "wine", True),
        ("diabetes-mlp", "diabetes", False),
    ],
)
def test_bundled_loaders_hold_bitwise_the_tensors_they_held_before(task, name, stratify):
    xt, yt, xv, yv = _old_sklearn_tensors(name, stratify)
    train, val = get_task(task).build_loaders()
    assert torch.equal(train.dataset.tensors[0], xt) and torch.equal(train.dataset.tensors[1], yt)
    assert torch.equal(val.dataset.tensors[0], xv) and torch.equal(val.dataset.tensors[1], yv)


def test_digits_mlp_trains_to_the_same_numbers_as_before():
    task = get_task("digits-mlp")
    xt, yt, xv, yv = _old_sklearn_tensors("digits", True)
    before = dataclasses.replace(
        task,
        make_train_loader=lambda: tensor_loader(xt, yt, batch_size=64, shuffle=True),
        make_val_loader=lambda: tensor_loader(xv, yv, batch_size=256),
        data=None,
    )
    now, then = (fit(t, lr=0.05, steps=30, val_every=15, progress=False) for t in (task, before))
    assert now.loss == then.loss
    assert [(e["metric"], e["val_loss"]) for e in now.epochs_log] == [
        (e["metric"], e["val_loss"]) for e in then.epochs_log
    ]


def test_a_variant_at_the_task_batch_size_trains_like_the_task():
    task = get_task("digits-mlp")
    runs = [fit(t, steps=10, progress=False) for t in (task, task.variant(batch_size=64))]
    assert runs[0].loss == runs[1].loss


# -- Task.variant


@pytest.mark.parametrize(("name", "cls"), [("sgd", "SGD"), ("adam", "Adam"), ("adamw", "AdamW")])
def test_variant_builds_the_named_optimizer(name, cls):
    task = get_task("digits-cnn").variant(optimizer=name)
    assert type(task.build_optimizer(task.build_model())).__name__ == cls


def test_variant_sgd_has_momentum_point_nine():
    task = get_task("diabetes-mlp").variant(optimizer="SGD")
    assert task.build_optimizer(task.build_model()).param_groups[0]["momentum"] == 0.9


def test_variant_keeps_the_task_optimizer_when_none_is_named():
    task = get_task("digits-mlp").variant(weight_decay=0.1)
    opt = task.build_optimizer(task.build_model(), lr=0.2)
    assert type(opt).__name__ == "SGD" and opt.param_groups[0]["nesterov"] is True
    assert opt.param_groups[0]["lr"] == 0.2


def test_variant_weight_decay_reaches_every_group_of_a_task_without_a_no_decay_group():
    task = get_task("digits-mlp").variant(weight_decay=1e-3)
    groups = task.build_optimizer(task.build_model()).param_groups
    assert [g["weight_decay"] for g in groups] == [1e-3]


@pytest.mark.parametrize("optimizer", [None, "sgd", "adam"])
def test_variant_weight_decay_keeps_a_no_decay_group_at_zero(optimizer):
    task = get_task("wine-mlp").variant(optimizer, weight_decay=0.2)
    groups = task.build_optimizer(task.build_model()).param_groups
    assert [(g["weight_decay"], {p.dim() for p in g["params"]}) for g in groups] == [
        (0.2, {2}),
        (0.0, {1}),
    ]


def test_a_variant_of_a_variant_still_knows_the_no_decay_group():
    task = get_task("wine-mlp").variant(weight_decay=0.0).variant(optimizer="sgd", weight_decay=0.3)
    opt = task.build_optimizer(task.build_model())
    assert type(opt).__name__ == "SGD" and [g["weight_decay"] for g in opt.param_groups] == [
        0.3,
        0.0,
    ]


def test_another_optimizer_keeps_the_task_weight_decay_when_none_is_given():
    task = get_task("wine-mlp").variant(optimizer="adam")
    assert [g["weight_decay"] for g in task.build_optimizer(task.build_model()).param_groups] == [
        0.01,
        0.0,
    ]


def test_variant_batch_size_sets_the_train_loader_batches():
    train, val = get_task("digits-mlp").variant(batch_size=100).build_loaders()
    assert len(train) == 15 and len(next(iter(train))[0]) == 100
    assert len(val) == len(get_task("digits-mlp").build_loaders()[1])


def test_variant_batch_size_of_the_sequence_task():
    train, _ = get_task("pychar-gru").variant(batch_size=1000).build_loaders()
    assert len(train) == 1


def test_a_variant_with_nothing_changed_is_the_task():
    task = get_task("wine-mlp")
    assert task.variant() is task


def test_an_unknown_optimizer_is_refused_with_a_suggestion():
    with pytest.raises(
        UserError, match=r"unknown optimizer 'adm' \(did you mean 'adam'\?\); known"
    ):
        get_task("digits-mlp").variant(optimizer="adm")


@pytest.mark.parametrize("wd", [float("nan"), float("inf"), -1e-3, True, "0.1"])
def test_a_bad_weight_decay_is_refused(wd):
    with pytest.raises(UserError, match="weight decay must be a finite number >= 0"):
        get_task("digits-mlp").variant(weight_decay=wd)


@pytest.mark.parametrize("bs", [0, -1, 2.5, True])
def test_a_bad_batch_size_is_refused(bs):
    with pytest.raises(UserError, match="batch size must be a whole number >= 1"):
        get_task("digits-mlp").variant(batch_size=bs)


def test_a_task_without_data_says_how_to_change_its_batch_size():
    from user_tasks import tiny

    with pytest.raises(UserError, match="cannot change its batch size.*data=lrkit.tasks"):
        tiny().variant(batch_size=4)


def test_a_task_without_data_still_changes_optimizer_and_weight_decay():
    from user_tasks import tiny

    task = tiny().variant("adamw", 0.5)
    opt = task.build_optimizer(task.build_model())
    assert type(opt).__name__ == "AdamW" and opt.param_groups[0]["weight_decay"] == 0.5


@pytest.mark.parametrize("module", [folds, optimizers])
def test_docstring_examples_run(module):
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0


# -- lrkit train --optimizer / --weight-decay / --batch-size


def test_train_options_reach_the_run(capsys, tmp_path, monkeypatch):
    built = []
    variant = Task.variant
    monkeypatch.setattr(
        Task, "variant", lambda *a, **k: built.append(variant(*a, **k)) or built[-1]
    )
    status, out, err = call(capsys, "train", "--task", "wine-mlp", "--optimizer", "sgd",
                            "--weight-decay", "0.001", "--batch-size", "32", "--epochs", "1",
                            "--out", tmp_path, "-q")  # fmt: skip
    assert status == 0, err
    opt = built[0].build_optimizer(built[0].build_model())
    assert type(opt).__name__ == "SGD" and [g["weight_decay"] for g in opt.param_groups] == [
        0.001,
        0.0,
    ]
    from lrkit.train import History

    history = History.from_json((tmp_path / "history.json").read_text())
    assert history.steps_per_epoch == 5  # 142 training examples in batches of 32


def test_train_refuses_an_unknown_optimizer(capsys):
    status, _, err = call(capsys, "train", "--optimizer", "adm")
    assert status == 2 and "--optimizer" in err and "'adm'" in err


def test_train_batch_size_on_a_task_without_data_is_one_line_saying_what_to_add(capsys, tmp_path):
    status, _, err = call(capsys, "train", "--task", "user_tasks:tiny", "--batch-size", "4",
                          "--out", tmp_path, "-q")  # fmt: skip
    assert status == 2 and err.count("\n") == 1
    assert err.startswith("lrkit: error: --batch-size 4: task 'tiny' cannot change its batch size")


def test_train_help_explains_the_new_options(capsys):
    status, out, _ = call(capsys, "train", "--help")
    assert status == 0
    assert "sgd (momentum 0.9)" in out and "stays at 0" in out and "Examples per training" in out


def test_train_offers_the_optimizers_tasks_know():
    from lrkit.cli.train_cmd import OPTIMIZER_NAMES

    assert set(OPTIMIZER_NAMES) == set(OPTIMIZERS)


def test_train_summary_names_the_options_it_changed(capsys, tmp_path):
    status, out, err = call(capsys, "train", "--task", "wine-mlp", "--optimizer", "adam",
                            "--weight-decay", "1e-4", "--epochs", "1", "--out", tmp_path)  # fmt: skip
    assert status == 0, err
    assert "wine-mlp (--optimizer adam --weight-decay 0.0001)" in out
