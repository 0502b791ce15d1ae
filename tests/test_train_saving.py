"""fit(out=...) saves the history while the run trains: on a time cadence, after each
validation, whole files only, marked partial, at a bounded share of the run's time.
(The SIGKILL of a real ``lrkit train --out`` is in test_logs_crash.py.)"""

import math
import time

import pytest
import user_tasks

from lrkit.errors import UserError
from lrkit.train import Callback, History, fit, saver


@pytest.fixture
def free_saves(monkeypatch):
    """Saving costs nothing against the run's time: only the cadence under test decides."""
    monkeypatch.setattr(saver, "SAVE_COST", math.inf)


class ReadBack(Callback):
    """Loads what ``out`` holds at an event: ``seen[(event, step)] = History``."""

    def __init__(self, out, event):
        self.out, self.seen = out, {}
        setattr(self, event, lambda state: self.seen.__setitem__(state.step, History.load(out)))


def test_a_history_is_in_out_as_soon_as_training_starts(tmp_path):
    reader = ReadBack(tmp_path, "on_train_start")
    fit(user_tasks.tiny(), progress=False, out=tmp_path, callbacks=[reader])
    (first,) = reader.seen.values()
    assert first.status == "running" and first.steps == 0 and first.task == "tiny"


def test_the_history_is_saved_after_each_validation_marked_running(tmp_path, free_saves):
    reader = ReadBack(tmp_path, "on_epoch_end")  # fires before that epoch's validation
    final = fit(user_tasks.tiny(), epochs=3, save_secs=math.inf, progress=False, out=tmp_path,
                callbacks=[reader])  # fmt: skip
    # tiny has 6 steps an epoch: at the end of epochs 2 and 3, the last save was after the
    # validation before
    assert [h.steps for h in reader.seen.values()] == [0, 6, 12]
    assert [len(h.epochs_log) for h in reader.seen.values()] == [0, 1, 2]
    assert all(h.status == "running" for h in reader.seen.values())
    assert reader.seen[18].reason.endswith("after step 12: partial")
    assert History.load(tmp_path) == final and final.status == "completed"


def test_between_validations_the_history_is_saved_on_its_time_cadence(tmp_path, free_saves):
    reader = ReadBack(tmp_path, "on_after_step")
    fit(user_tasks.tiny(), steps=5, save_secs=0, progress=False, out=tmp_path, callbacks=[reader])
    # save_secs=0: a save after every batch; at a step's on_after_step, the batch before it
    assert {step: h.steps for step, h in reader.seen.items()} == {1: 0, 2: 1, 3: 2, 4: 3, 5: 4}
    assert reader.seen[4].loss == pytest.approx(History.load(tmp_path).loss[:3])


def test_no_save_waits_for_save_secs_to_pass(tmp_path, free_saves):
    reader = ReadBack(tmp_path, "on_after_step")
    fit(user_tasks.tiny(), steps=5, save_secs=3600, progress=False, out=tmp_path,
        callbacks=[reader])  # fmt: skip
    assert {h.steps for h in reader.seen.values()} == {0}  # only the one made at the start


def test_saving_while_training_takes_about_one_percent_of_the_run(tmp_path, monkeypatch):
    spent = []
    save = History.save

    def timed(history, folder):
        started = time.perf_counter()
        save(history, folder)
        spent.append(time.perf_counter() - started)

    monkeypatch.setattr(History, "save", timed)
    started = time.perf_counter()
    fit("digits-mlp", steps=3000, save_secs=0, progress=False, out=tmp_path)
    run = time.perf_counter() - started
    # saves on every batch are asked for: the cost rule allows about 1% (and the final save)
    assert len(spent) > 3
    assert sum(spent[:-1]) < 0.03 * run, (sum(spent[:-1]), run, len(spent))


def test_a_save_leaves_only_its_two_files(tmp_path):
    fit(user_tasks.tiny(), steps=4, save_secs=0, progress=False, out=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history.json", "steps.csv"]


@pytest.mark.parametrize("value", [-1, math.nan, "2", True])
def test_a_bad_save_secs_is_refused_naming_it(tmp_path, value):
    with pytest.raises(ValueError, match=f"save_secs must be .*, got {value!r}"):
        fit(user_tasks.tiny(), progress=False, out=tmp_path, save_secs=value)


def test_an_out_folder_under_a_file_is_a_clear_error_before_training(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(UserError, match=r"cannot save the history into out=.*afile/sub.*Not a dir"):
        fit("wine-mlp", epochs=1, out=tmp_path / "afile" / "sub", progress=False)
