"""fit's mixed precision on the CPU (torch runs fp16 autocast and a GradScaler there, with
real fp16 overflows): bf16 and fp16 train, an update the scaler skips is not a step (the
Driver, state.step and the history agree), the scaler is updated once a batch, callbacks and
clip_grad see unscaled gradients, a NaN loss still ends the run, bad settings are refused."""

import dataclasses
import doctest
import math

import pytest
import torch
from cli_run import call

from lrkit import History
from lrkit.find import find_lr
from lrkit.tasks import get_task
from lrkit.train import Callback, amp, fit
from lrkit.watch import Guard, Watch, diagnose

pytestmark = pytest.mark.usefixtures("one_thread")

HIGH = 2.0**24  # a scale far too high for fp16: the first updates overflow
TASK = "digits-mlp"  # 23 batches an epoch


def train(steps=30, **kwargs):
    return fit(TASK, lr=0.05, steps=steps, progress=False, **kwargs)


def mean(values):
    return sum(values) / len(values)


class Seen(Callback):
    """What the loop showed: steps after each event, the driver's count at the end."""

    def __init__(self):
        self.after_step, self.scalers, self.norms, self.clipped = 0, set(), [], []

    def on_after_backward(self, state):
        self.scalers.add(id(state.scaler))
        self.norms.append(_norm(state.model))

    def on_after_step(self, state):
        self.after_step += 1
        self.clipped.append(_norm(state.model))

    def on_train_end(self, state):
        self.step, self.driver_step = state.step, state.driver.last_step


def _norm(model):
    grads = [p.grad.norm() for p in model.parameters() if p.grad is not None]
    return float(torch.stack(grads).norm())


class Counting(torch.amp.GradScaler):
    """A GradScaler that counts its update() calls."""

    updates = 0

    def update(self, new_scale=None):
        self.updates += 1
        super().update(new_scale)


# -- training --------------------------------------------------------------------------------
def test_fit_with_bf16_trains_and_the_loss_falls():
    history = train(autocast="bf16")
    assert history.status == "completed" and history.autocast == "bf16"
    assert mean(history.loss[-5:]) < mean(history.loss[:5]) / 2
    assert history.scale is None and history.overflows == 0 and history.skipped == []


def test_fit_with_fp16_trains_through_overflows_and_the_scale_falls():
    scaler = torch.amp.GradScaler("cpu", init_scale=HIGH)
    history = train(autocast="fp16", scaler=scaler)
    assert history.status == "completed" and history.overflows > 0
    assert mean(history.loss[-5:]) < mean(history.loss[:5]) / 2
    assert history.scale == scaler.get_scale() < HIGH


def test_an_update_the_scaler_skipped_is_not_a_step_for_the_driver_the_state_or_the_history():
    seen = Seen()
    history = train(autocast="fp16", scaler=torch.amp.GradScaler("cpu", init_scale=HIGH),
                    callbacks=[seen])  # fmt: skip
    applied = 30 - history.overflows
    assert history.overflows > 0
    assert seen.step == seen.driver_step == seen.after_step == applied
    assert history.skipped == [] and len(history.overflowed) == history.overflows
    assert history.step[-1] == applied - 1  # an overflowed row's step repeats in the next


def test_without_overflows_fp16_counts_every_update():
    seen = Seen()
    history = train(steps=20, autocast="fp16", callbacks=[seen])  # the default scale, 65536
    assert history.overflows == 0 and seen.step == seen.driver_step == 20


def test_the_scaler_is_updated_once_a_batch_and_callbacks_see_it_on_the_state():
    scaler, seen = Counting("cpu", init_scale=HIGH), Seen()
    history = train(steps=25, autocast="fp16", scaler=scaler, callbacks=[seen])
    assert scaler.updates == 25 and history.overflows > 0
    assert seen.scalers == {id(scaler)}


def test_fp16_builds_its_own_scaler_when_none_is_given():
    seen = Seen()
    history = train(steps=5, autocast="fp16", callbacks=[seen])
    assert history.scale == 65536.0 and None not in seen.scalers  # torch's default scale


def test_without_autocast_the_state_has_no_scaler():
    seen = Seen()
    history = train(steps=3, callbacks=[seen])
    assert seen.scalers == {id(None)} and history.autocast is None and history.scale is None


def test_callbacks_see_the_unscaled_gradients():
    seen = Seen()
    train(steps=3, autocast="fp16", scaler=torch.amp.GradScaler("cpu", init_scale=4096.0),
          callbacks=[seen])  # fmt: skip
    plain = Seen()
    train(steps=3, callbacks=[plain])
    assert seen.norms == pytest.approx(plain.norms, rel=0.05)


def test_clip_grad_with_fp16_clips_the_unscaled_norm():
    seen = Seen()
    train(steps=10, autocast="fp16", scaler=torch.amp.GradScaler("cpu", init_scale=4096.0),
          clip_grad=0.1, callbacks=[seen])  # fmt: skip
    assert min(seen.norms) > 0.1  # every update is clipped...
    assert seen.clipped == pytest.approx([0.1] * 10, rel=1e-3)  # ...to 0.1, not 0.1 / scale


def nan_at(batch):
    """The task whose loss is NaN at the 0-based ``batch``."""
    task, count = get_task(TASK), iter(range(10**6))

    def loss(model, data):
        value = task.loss(model, data)
        return value * math.nan if next(count) == batch else value

    return dataclasses.replace(task, step_fn=loss)


def test_a_nan_loss_under_fp16_is_not_an_overflow_it_ends_the_run():
    history = fit(nan_at(5), lr=0.05, steps=20, autocast="fp16", progress=False)
    assert history.status == "diverged" and "nan at step 5" in history.reason
    assert history.overflows == 0


def test_a_schedule_free_optimizer_trains_under_fp16():
    pytest.importorskip("schedulefree")
    task = get_task(TASK).variant(optimizer="schedulefree-sgd")
    history = fit(task, steps=30, autocast="fp16", progress=False,
                  scaler=torch.amp.GradScaler("cpu", init_scale=HIGH))  # fmt: skip
    assert history.status == "completed" and history.overflows > 0
    assert mean(history.loss[-5:]) < mean(history.loss[:5])


# -- with a Guard -----------------------------------------------------------------------------
def guard_trouble(guard):
    return [(e["action"], e["reason"]) for e in guard.events if e["action"] != "snapshot"]


def test_a_guarded_fp16_run_trains_through_overflows_without_skip_rollback_or_lr_cut():
    guard, seen = Guard(every=5), Seen()
    scaler = torch.amp.GradScaler("cpu", init_scale=HIGH)
    history = train(autocast="fp16", scaler=scaler, callbacks=[guard, seen])
    assert history.status == "completed" and guard.overflows == history.overflows > 0
    assert guard_trouble(guard) == [] and guard.rollbacks == 0
    assert history.lr_groups[-1][0] == 0.05  # a constant schedule: no cut
    assert guard.step == seen.step == seen.driver_step == 30 - history.overflows
    assert mean(history.loss[-5:]) < mean(history.loss[:5]) / 2


@pytest.mark.parametrize("through_a_watch", [False, True])
def test_with_a_guard_the_scaler_is_updated_exactly_once_a_batch(through_a_watch):
    guard = Guard(every=5)
    scaler = Counting("cpu", init_scale=HIGH)
    callback = Watch(guard=guard) if through_a_watch else guard
    history = fit(nan_at(20), lr=0.05, steps=25, autocast="fp16", scaler=scaler,
                  progress=False, callbacks=[callback])  # fmt: skip
    assert scaler.updates == 25 and history.overflows > 0
    assert guard_trouble(guard) == [("skip", "loss nan")]


def test_a_nan_loss_under_fp16_with_a_guard_is_skipped_and_the_run_goes_on():
    guard = Guard(every=5)
    history = fit(nan_at(12), lr=0.05, steps=30, autocast="fp16", progress=False,
                  callbacks=[guard])  # fmt: skip
    assert history.status == "completed" and guard_trouble(guard) == [("skip", "loss nan")]
    assert 12 in history.skipped and math.isnan(history.loss[12])
    assert all(torch.isfinite(torch.tensor(history.loss[13:])))


def test_a_rollback_under_fp16_in_fit_cuts_the_lr_and_the_scaler_goes_on_once_a_batch():
    guard = Guard(every=5, max_skips=0)
    scaler = Counting("cpu", init_scale=256.0)
    history = fit(nan_at(12), lr=0.05, steps=30, autocast="fp16", scaler=scaler,
                  progress=False, callbacks=[guard])  # fmt: skip
    assert history.status == "completed" and guard.rollbacks == 1
    assert scaler.updates == 30 and history.lr_groups[-1][0] == 0.025


def test_lrkit_train_autocast_fp16_guard_completes(capsys, tmp_path):
    status, out, err = call(capsys, "train", "--autocast", "fp16", "--guard", "--epochs", "1",
                            "--out", tmp_path / "run")  # fmt: skip
    assert status == 0, err
    assert "guard: no action" in out and "mixed precision: fp16" in out


# -- the record --------------------------------------------------------------------------------
def test_the_history_keeps_the_mode_the_scale_and_the_overflows_through_json(tmp_path):
    history = train(steps=10, autocast="fp16", scaler=torch.amp.GradScaler("cpu", init_scale=HIGH),
                    out=tmp_path)  # fmt: skip
    back = History.load(tmp_path)
    assert (back.autocast, back.scale, back.overflows) == ("fp16", 2.0**18, 6)  # 24 - 6
    assert history.overflows == 6


def test_the_doctor_does_not_read_overflows_as_a_guard_s_skips():
    history = train(autocast="fp16", scaler=torch.amp.GradScaler("cpu", init_scale=HIGH))
    assert history.overflows > 0
    assert "guard" not in diagnose(history).summary()


def test_an_old_history_without_the_fields_reads_as_full_precision():
    data = train(steps=2).to_dict()
    for key in ("autocast", "scale", "overflowed"):
        del data[key]
    back = History.from_dict(data)
    assert (back.autocast, back.scale, back.overflows) == (None, None, 0)


@pytest.mark.parametrize(
    "key, bad", [("autocast", "fp8"), ("scale", "big"), ("overflowed", [-1]), ("overflowed", [9])]
)
def test_a_history_with_a_bad_precision_field_is_refused(key, bad):
    data = train(steps=2).to_dict()
    data[key] = bad
    with pytest.raises(ValueError, match=key):
        History.from_dict(data)


# -- bad settings --------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", ["fp8", "FP16", ["bf16"], 16, True])
def test_a_bad_autocast_is_a_value_error_naming_the_accepted_ones(bad):
    with pytest.raises(ValueError, match=r"autocast must be None, 'bf16' or 'fp16', got"):
        train(steps=2, autocast=bad)


def test_find_lr_refuses_a_bad_autocast_with_the_same_words():
    with pytest.raises(ValueError, match=r"autocast must be None, 'bf16' or 'fp16', got 'fp8'"):
        find_lr(TASK, autocast="fp8", progress=False)


@pytest.mark.parametrize("autocast", [None, "bf16"])
def test_a_scaler_without_fp16_is_refused(autocast):
    with pytest.raises(ValueError, match="scaler= is for autocast='fp16'"):
        train(steps=2, autocast=autocast, scaler=torch.amp.GradScaler("cpu"))


def test_a_scaler_that_is_not_one_is_refused():
    with pytest.raises(ValueError, match="GradScaler.*no scale"):
        train(steps=2, autocast="fp16", scaler=object())


def test_the_amp_module_doctests_run():
    result = doctest.testmod(amp)
    assert result.attempted > 0 and result.failed == 0


# -- lrkit train -------------------------------------------------------------------------------
def test_lrkit_train_autocast_fp16_completes_and_says_so(capsys, tmp_path):
    run = tmp_path / "run"
    status, out, err = call(capsys, "train", "--autocast", "fp16", "--epochs", "1", "--out", run)
    assert status == 0, err
    assert "mixed precision: fp16, GradScaler scale 65536 at the end" in out
    assert History.load(run).autocast == "fp16"


def test_lrkit_train_autocast_fp8_exits_2_naming_the_choices(capsys):
    status, _, err = call(capsys, "train", "--autocast", "fp8")
    assert status == 2 and "Traceback" not in err
    assert "'fp8' is not one of 'bf16', 'fp16'" in err


def test_lrkit_train_help_describes_autocast(capsys):
    status, out, _ = call(capsys, "train", "--help")
    assert status == 0 and "--autocast [bf16|fp16]" in out and "GradScaler" in out
