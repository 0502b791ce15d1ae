"""The Keras-familiar callbacks: StopOnNaN stops before the NaN update with status diverged;
ReduceLROnPlateau reduces the lr after ``patience`` epochs without improvement (Keras's count),
keeping the schedule's shape."""

import doctest

import pytest
import torch
import user_tasks
from faults import faulty

from lrkit.tasks import Metric
from lrkit.train import Callback, fit
from lrkit.watch import ReduceLROnPlateau, StopOnNaN
from lrkit.watch import keras as keras_module


class KeepModel(Callback):
    def on_train_end(self, state):
        self.model = state.model


def test_stop_on_nan_stops_at_the_first_nan_before_its_update():
    keep = KeepModel()
    history = fit(faulty(nan_at={20}), callbacks=[StopOnNaN(), keep], progress=False)
    assert history.status == "diverged" and history.steps == 21 and history.skipped == [20]
    assert "the loss was nan at step 20 (epoch 3); StopOnNaN stopped the run" in history.reason
    assert all(torch.isfinite(p).all() for p in keep.model.parameters())


def test_without_stop_on_nan_the_nan_is_noticed_later():
    history = fit(faulty(nan_at={20}), progress=False)
    assert history.status == "diverged" and history.steps > 21


def test_stop_on_nan_leaves_a_healthy_run_alone():
    history = fit(user_tasks.tiny(), callbacks=[StopOnNaN()], progress=False)
    assert (
        history.status == "completed"
        and history.loss == fit(user_tasks.tiny(), progress=False).loss
    )


def lrs_by_epoch(history):
    return [history.lr_groups[i][0] for i in range(0, history.steps, history.steps_per_epoch)]


def test_reduce_lr_on_plateau_reduces_after_patience_epochs_without_improvement():
    reduce = ReduceLROnPlateau(factor=0.5, patience=2, min_delta=100.0)  # never improves
    history = fit(user_tasks.tiny(epochs=7), lr=0.1, callbacks=[reduce], progress=False)
    # epoch 0 sets the best, epochs 1 and 2 are bad: reduce after 2, and again after 4 and 6
    assert [r["epoch"] for r in reduce.reductions] == [2, 4, 6]
    assert lrs_by_epoch(history) == [0.1, 0.1, 0.1, 0.05, 0.05, 0.025, 0.025]


def test_reduce_lr_on_plateau_keeps_the_lr_while_the_monitor_improves():
    reduce = ReduceLROnPlateau(patience=1, min_delta=0.0)
    history = fit(user_tasks.tiny(epochs=5), lr=0.01, callbacks=[reduce], progress=False)
    assert reduce.reductions == [] and set(history.lrs) == {0.01}


def rising_metric_task():
    values = iter([0.1, 0.2, 0.3, 0.4, 0.5])
    return user_tasks.tiny(epochs=5, metric=Metric("accuracy", lambda m, v: next(values), True))


def test_reduce_lr_on_plateau_auto_mode_follows_the_metrics_direction():
    rising = ReduceLROnPlateau(monitor="val_accuracy", patience=1)
    fit(rising_metric_task(), callbacks=[rising], progress=False)
    falling = ReduceLROnPlateau(monitor="accuracy", patience=1, mode="min")
    fit(rising_metric_task(), callbacks=[falling], progress=False)
    assert rising.reductions == [] and [r["epoch"] for r in falling.reductions] == [1, 2, 3, 4]


def test_reduce_lr_on_plateau_can_monitor_the_epochs_training_loss():
    reduce = ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1, min_delta=100.0)
    history = fit(user_tasks.tiny(), callbacks=[reduce], progress=False)
    epoch_1 = history.loss[6:12]
    assert reduce.reductions[0]["value"] == pytest.approx(sum(epoch_1) / 6)


def test_reduce_lr_on_plateau_keeps_the_schedules_shape_and_stops_at_min_lr():
    reduce = ReduceLROnPlateau(factor=0.1, patience=0, min_delta=100.0, min_lr=0.02)
    history = fit(
        user_tasks.tiny(epochs=4), lr=0.1, schedule="cosine", callbacks=[reduce], progress=False
    )
    full = fit(user_tasks.tiny(epochs=4), lr=0.1, schedule="cosine", progress=False)
    assert [r["epoch"] for r in reduce.reductions] == [1]  # then min_lr holds it
    assert history.lrs[:12] == full.lrs[:12]
    assert history.lrs[12:] == pytest.approx([0.2 * lr for lr in full.lrs[12:]])


def test_reduce_lr_on_plateau_refuses_what_it_cannot_monitor():
    with pytest.raises(
        ValueError, match=r"cannot monitor 'val_acc' .*accepted: 'val_loss', 'loss'"
    ):
        fit(user_tasks.tiny(), callbacks=[ReduceLROnPlateau(monitor="val_acc")], progress=False)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(factor=1.5), "plateau factor must be >= 0 and < 1, got 1.5"),
        (dict(patience=-1), "patience must be a whole number >= 0, got -1"),
        (dict(mode="up"), "mode must be one of ('auto', 'min', 'max'), got 'up'"),
        (dict(min_lr=-1), "min_lr must be a finite number >= 0, got -1"),
        (dict(min_lr=float("nan")), "min_lr must be a finite number >= 0, got nan"),
        (dict(patience=True), "patience must be a whole number >= 0, got True"),
    ],
)
def test_reduce_lr_on_plateau_refuses_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ReduceLROnPlateau(**kwargs)


def test_docstring_examples_run():
    result = doctest.testmod(keras_module)
    assert result.attempted > 0 and result.failed == 0
