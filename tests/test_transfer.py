"""The digits-transfer task: its cache (built once on first use, reused, rebuilt when stale or
damaged, written whole, a clear error when it cannot be written) and what it trains."""

import dataclasses
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import lrkit
from lrkit import paths
from lrkit.errors import UserError
from lrkit.tasks import finetune, get_task
from lrkit.train import pretrained
from lrkit.train.pretrained import Pretraining, cache_key, cache_path, pretrained_body

pytestmark = pytest.mark.usefixtures("one_thread")

FAST = Pretraining(epochs=1)  # a pretraining of a fraction of a second, for the cache tests
SRC = Path(lrkit.__file__).resolve().parents[1]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty cache folder of the test's own, and the number of pretrainings so far."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("LRKIT_CACHE", str(folder))
    builds = []
    real = pretrained._pretrain

    def counting(settings):
        builds.append(settings)
        return real(settings)

    monkeypatch.setattr(pretrained, "_pretrain", counting)
    return folder, builds


@pytest.fixture
def fast(monkeypatch):
    """The task's pretraining shortened to one epoch (another key, so its own file)."""
    monkeypatch.setattr(pretrained, "PRETRAINING", FAST)


# -- the cache folder --------------------------------------------------------------------------


def test_cache_dir_is_lrkit_cache_when_set(monkeypatch, tmp_path):
    monkeypatch.setenv("LRKIT_CACHE", str(tmp_path / "mine"))
    assert paths.cache_dir() == tmp_path / "mine"


def test_cache_dir_is_under_xdg_cache_home_without_lrkit_cache(monkeypatch, tmp_path):
    monkeypatch.delenv("LRKIT_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert paths.cache_dir() == tmp_path / "lrkit"


def test_cache_dir_is_in_the_home_folder_otherwise(monkeypatch, tmp_path):
    monkeypatch.delenv("LRKIT_CACHE")
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert paths.cache_dir() == tmp_path / ".cache" / "lrkit"


def test_the_test_session_never_caches_in_the_users_home():
    assert not paths.cache_dir().resolve().is_relative_to(Path.home() / ".cache")


# -- built once, reused, rebuilt -----------------------------------------------------------------


def test_getting_the_task_builds_nothing_until_its_model_is_built(cache, fast):
    folder, builds = cache
    task = get_task("digits-transfer")
    assert builds == [] and not folder.exists()
    task.build_model()
    assert builds == [FAST] and cache_path(FAST).is_file()


def test_the_body_is_built_once_and_reused(cache, fast):
    _, builds = cache
    task = get_task("digits-transfer")
    first, second = task.build_model(), task.build_model()
    assert len(builds) == 1 and torch.equal(first.conv1.weight, second.conv1.weight)


def test_the_pretraining_is_a_run_of_lrkits_training_loop(cache, monkeypatch):
    runs = []
    real = pretrained.fit
    monkeypatch.setattr(pretrained, "fit", lambda *a, **k: runs.append(a[0].name) or real(*a, **k))
    pretrained_body(FAST)
    assert runs == ["digits-pretrain"]


def test_another_setting_is_another_key_and_is_built_again(cache):
    _, builds = cache
    pretrained_body(FAST)
    other = Pretraining(epochs=1, seed=1)
    pretrained_body(other)
    pretrained_body(other)
    assert builds == [FAST, other] and cache_key(FAST) != cache_key(other)


@pytest.mark.parametrize(
    "change",
    ["format", "torch", "lrkit", "architecture", "epochs", "lr", "batch_size", "seed", "split"],
)
def test_the_key_changes_with_everything_that_determines_the_weights(change, monkeypatch):
    before = cache_key(FAST)
    settings = FAST
    if change == "format":
        monkeypatch.setattr(pretrained, "CACHE_FORMAT", pretrained.CACHE_FORMAT + 1)
    elif change == "torch":
        monkeypatch.setattr(torch, "__version__", "0.0.1")
    elif change == "lrkit":
        monkeypatch.setattr(pretrained, "__version__", "0.0.0")
    elif change == "architecture":
        monkeypatch.setattr(pretrained, "CHANNELS", (8, 16))
    elif change == "split":
        settings = dataclasses.replace(FAST, val_fraction=0.3)
    else:
        value = getattr(FAST, change)
        settings = dataclasses.replace(FAST, **{change: value * 2 if value else 1})
    assert cache_key(settings) != before


def _damaged(path: Path, how: str) -> None:
    if how == "garbage":
        path.write_bytes(b"not a torch file at all")
    elif how == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "other key":
        saved = torch.load(path, weights_only=True)
        torch.save({**saved, "key": "0" * 64}, path)
    elif how == "wrong shapes":
        saved = torch.load(path, weights_only=True)
        state = {**saved["state"], "conv1.weight": torch.zeros(3, 1, 3, 3)}
        torch.save({**saved, "state": state}, path)
    elif how == "missing tensor":
        saved = torch.load(path, weights_only=True)
        state = {k: v for k, v in saved["state"].items() if k != "conv2.bias"}
        torch.save({**saved, "state": state}, path)
    elif how == "not finite":
        saved = torch.load(path, weights_only=True)
        state = {
            **saved["state"],
            "conv2.bias": torch.full_like(saved["state"]["conv2.bias"], float("inf")),
        }
        torch.save({**saved, "state": state}, path)


DAMAGE = [
    "garbage",
    "truncated",
    "empty",
    "other key",
    "wrong shapes",
    "missing tensor",
    "not finite",
]


@pytest.mark.parametrize("how", DAMAGE)
def test_a_damaged_or_stale_file_is_rebuilt(cache, how):
    _, builds = cache
    good = pretrained_body(FAST)
    _damaged(cache_path(FAST), how)
    again = pretrained_body(FAST)
    assert len(builds) == 2 and all(torch.equal(good[k], again[k]) for k in good)
    assert pretrained_body(FAST) and len(builds) == 2  # and the rebuilt file is good


def test_a_deleted_file_is_rebuilt(cache):
    _, builds = cache
    pretrained_body(FAST)
    cache_path(FAST).unlink()
    pretrained_body(FAST)
    assert len(builds) == 2 and cache_path(FAST).is_file()


def test_the_pretraining_is_reproducible(cache):
    first = pretrained_body(FAST)
    cache_path(FAST).unlink()
    assert all(torch.equal(first[k], v) for k, v in pretrained_body(FAST).items())


# -- written whole -------------------------------------------------------------------------------


def test_the_file_is_written_whole_and_no_temporary_file_is_left(cache):
    folder, _ = cache
    pretrained_body(FAST)
    assert [p.name for p in folder.iterdir()] == [cache_path(FAST).name]


def test_a_write_that_fails_midway_leaves_no_file_behind(cache, monkeypatch):
    folder, builds = cache

    def half_then_fail(obj, f):
        f.write(b"PK\x03\x04 half a file")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", half_then_fail)
    with pytest.raises(UserError, match="No space left on device"):
        pretrained_body(FAST)
    assert list(folder.iterdir()) == []


KILLED = """
import os, signal, torch
from lrkit.train import pretrained

def half_then_die(obj, f):
    f.write(b"PK\\x03\\x04 half a file")
    f.flush()
    os.kill(os.getpid(), signal.SIGKILL)

torch.save = half_then_die
pretrained.pretrained_body(pretrained.Pretraining(epochs=1))
"""


def test_a_build_killed_while_writing_leaves_no_half_file_and_the_next_one_builds(cache):
    folder, builds = cache
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(KILLED)], env=env, capture_output=True, timeout=120
    )
    assert done.returncode == -signal.SIGKILL
    assert not cache_path(FAST).exists()
    pretrained_body(FAST)
    assert len(builds) == 1 and cache_path(FAST).is_file()


BUILD = """
from lrkit.train import pretrained
state = pretrained.pretrained_body(pretrained.Pretraining(epochs=1))
print(sorted(state))
"""


def test_two_processes_building_at_once_both_get_the_body_and_leave_one_whole_file(cache):
    folder, _ = cache
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    command = [sys.executable, "-c", textwrap.dedent(BUILD)]
    procs = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True) for _ in "ab"]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0] and outs[0] == outs[1] != ""
    assert [p.name for p in folder.iterdir()] == [cache_path(FAST).name]
    saved = torch.load(cache_path(FAST), weights_only=True)
    assert saved["key"] == cache_key(FAST)


# -- a folder that cannot be written --------------------------------------------------------------


def test_a_cache_folder_that_cannot_be_created_names_it_and_lrkit_cache(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("LRKIT_CACHE", str(blocker / "cache"))
    with pytest.raises(UserError, match=rf"cache folder '{blocker}/cache'.*set LRKIT_CACHE"):
        pretrained_body(FAST)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder all the same")
def test_a_read_only_cache_folder_names_it_and_lrkit_cache(tmp_path, monkeypatch):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    monkeypatch.setenv("LRKIT_CACHE", str(folder))
    try:
        with pytest.raises(UserError, match=rf"'{folder}': permission denied; set LRKIT_CACHE"):
            pretrained_body(FAST)
    finally:
        folder.chmod(0o700)


def test_a_write_refused_by_the_system_names_the_folder_and_lrkit_cache(cache, monkeypatch):
    folder, _ = cache  # as root a read-only folder is still writable: refuse the rename itself

    def refuse(src, dst):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(UserError, match=rf"'{folder}': Permission denied; set LRKIT_CACHE"):
        pretrained_body(FAST)
    assert list(folder.iterdir()) == []


def test_a_good_cached_file_is_read_without_writing(cache, monkeypatch):
    pretrained_body(FAST)

    def no_writing(folder):
        raise AssertionError("tried to write")

    monkeypatch.setattr(pretrained, "_writable", no_writing)
    assert pretrained_body(FAST)


def test_the_cli_says_so_in_one_line_when_the_cache_cannot_be_written(
    capsys, tmp_path, monkeypatch
):
    from cli_run import call

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("LRKIT_CACHE", str(blocker / "cache"))
    monkeypatch.setattr(pretrained, "PRETRAINING", FAST)
    status, _, err = call(capsys, "train", "--task", "digits-transfer", "--epochs", "1")
    assert status == 2 and err.count("\n") == 1, err
    assert err.startswith("lrkit: error: cannot write the pretrained") and "LRKIT_CACHE" in err


# -- the task ------------------------------------------------------------------------------------


def test_the_fine_tuning_set_is_small_and_the_validation_set_the_other_digits():
    task = get_task("digits-transfer")
    train, val = task.build_loaders()
    y_train = torch.cat([y for _, y in train]).numpy()
    y_val = torch.cat([y for _, y in val]).numpy()
    assert len(y_train) == pretrained.TRAIN_SIZE == 50 and len(y_val) > 800
    assert np.bincount(y_train).tolist() == [10] * 5 and set(y_val.tolist()) == set(range(5))


def test_the_fine_tuning_digits_are_not_the_pretraining_ones():
    x5, _ = pretrained._part(pretrained.TRANSFER_CLASSES)
    x0, _ = pretrained._part(pretrained.PRETRAIN_CLASSES)
    assert len(x5) + len(x0) == 1797 and not set(map(bytes, x0)) & set(map(bytes, x5))


def test_the_model_is_the_pretrained_body_and_a_fresh_head():
    task = get_task("digits-transfer")
    body = pretrained_body()
    a, b = task.build_model(seed=1), task.build_model(seed=2)
    assert torch.equal(a.conv1.weight, body["conv1.weight"]) and torch.equal(
        a.conv2.bias, body["conv2.bias"]
    )
    assert a.head.out_features == 5 and not torch.equal(a.head.weight, b.head.weight)


def test_the_first_build_gives_the_same_model_as_a_cached_one(cache, fast):
    task = get_task("digits-transfer")
    cold = task.build_model(seed=3)  # pretrains: the generators are left as they were
    warm = task.build_model(seed=3)
    assert all(torch.equal(p, q) for p, q in zip(cold.parameters(), warm.parameters()))


def test_the_task_has_folds_and_variants():
    task = get_task("digits-transfer").variant("sgd", batch_size=10).folds(2)[1]
    history = lrkit.fit(task, steps=3, progress=False)
    assert history.status == "completed" and history.steps_per_epoch == 3


def test_the_pretrained_body_learns_far_faster_than_from_scratch():
    task = get_task("digits-transfer")
    scratch = lrkit.fit(finetune(task, "scratch"), progress=False).final_metric
    full = lrkit.fit(finetune(task, "full"), progress=False).final_metric
    assert full > scratch + 0.2, (scratch, full)


def test_layerwise_fine_tuning_groups_the_conv_layers_and_the_head():
    task = finetune("digits-transfer", "layerwise", decay=0.5)
    opt = task.build_optimizer(task.build_model(), lr=1e-3)
    assert [(g["name"], g["lr"]) for g in opt.param_groups] == [
        ("conv1", 2.5e-4), ("conv2", 5e-4), ("head", 1e-3)
    ]  # fmt: skip
