"""Watch: the signals it measures, by hand-computed values, in plain loops and inside fit."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch
from torch import nn

import lrkit
from lrkit.train import fit
from lrkit.watch import Signals, Watch


def toy(seed: int = 0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    x, y = torch.randn(32, 4), torch.randint(0, 2, (32,))
    return model, x, y


def run(model, optimizer, watch, x, y, steps: int, loss_at=None, clip=None):
    """A plain loop; ``loss_at(step, loss)`` may replace the loss (to inject faults)."""
    for t in range(steps):
        optimizer.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(model(x), y)
        if loss_at is not None:
            loss = loss_at(t, loss)
        loss.backward()
        watch.after_backward(loss)
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        watch.after_step()


def test_lrkit_watch_is_the_watch_class():
    assert lrkit.Watch is Watch


def test_records_one_value_per_step_for_the_per_step_tags():
    model, x, y = toy()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    watch = Watch(model, opt, flush_every=4)
    run(model, opt, watch, x, y, 10)
    s = watch.history
    for tag in (
        "lr-SGD",
        "lr-SGD-momentum",
        "train/loss",
        "train/loss_smooth",
        "train/grad_norm",
        "train/nonfinite",
    ):
        steps, values = s.get(tag)
        assert steps.tolist() == list(range(10)), tag
    assert s.get("lr-SGD")[1].tolist() == [0.1] * 10
    assert s.get("lr-SGD-momentum")[1].tolist() == [0.9] * 10
    assert "train/grad_clipped" not in s  # no threshold given


def test_lr_tags_follow_lightning_with_several_groups_and_adam_beta1():
    model, x, y = toy()
    opt = torch.optim.Adam(
        [{"params": model[0].parameters(), "lr": 0.01}, {"params": model[2].parameters()}],
        lr=0.001,
        betas=(0.8, 0.99),
    )
    watch = Watch(model, opt)
    run(model, opt, watch, x, y, 2)
    s = watch.history
    assert s.get("lr-Adam/pg1")[1].tolist() == [0.01, 0.01]
    assert s.get("lr-Adam/pg2")[1].tolist() == [0.001, 0.001]
    assert s.get("lr-Adam/pg2-momentum")[1].tolist() == [0.8, 0.8]
    assert s.lr(1)[1].tolist() == [0.001, 0.001]


def test_loss_raw_and_smoothed_by_a_bias_corrected_ema():
    model, x, y = toy()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    watch = Watch(model, opt, smooth=0.9, flush_every=3)
    run(model, opt, watch, x, y, 7)
    raw = watch.history.get("train/loss")[1]
    avg, expected = 0.0, []
    for n, value in enumerate(raw, 1):
        avg = 0.9 * avg + 0.1 * value
        expected.append(avg / (1 - 0.9**n))
    np.testing.assert_allclose(watch.history.get("train/loss_smooth")[1], expected, rtol=1e-12)
    with torch.no_grad():
        first = nn.functional.cross_entropy(toy()[0](x), y).item()
    assert raw[0] == pytest.approx(first, rel=1e-6)


def test_grad_norm_equals_clip_grad_norm_value():
    model, x, y = toy()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    watch = Watch(model, opt)
    opt.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    watch.after_backward()
    expected = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1e9)
    assert float(watch.grad_norm) == pytest.approx(float(expected), rel=1e-6)
    opt.step()
    watch.after_step()
    assert watch.history.get("train/grad_norm")[1][0] == pytest.approx(float(expected), rel=1e-6)


def test_grad_norm_is_measured_before_clipping_and_clipping_is_detected():
    model, x, y = toy()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    opt.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), 1e9))
    watch = Watch(model, opt, clip_grad=norm * 1.5)
    run(model, opt, watch, x, y, 1, clip=norm * 1.5)  # this step's norm: below the threshold
    run(model, opt, watch, x, y, 1, loss_at=lambda t, loss: 10 * loss, clip=norm * 1.5)
    s = watch.history
    assert s.get("train/grad_clipped")[1].tolist() == [0.0, 1.0]
    assert s.get("train/grad_norm")[1][1] > norm * 1.5  # the norm before clipping


def test_nonfinite_counts_the_loss_and_each_gradient_tensor():
    model, x, y = toy()
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    watch = Watch(model, opt)
    run(model, opt, watch, x, y, 3, loss_at=lambda t, loss: loss * math.nan if t == 2 else loss)
    steps, bad = watch.history.get("train/nonfinite")
    assert bad.tolist() == [0, 0, 5]  # the loss and all 4 parameter tensors at step 2
    assert math.isnan(watch.history.get("train/loss")[1][2])
    smooth = watch.history.get("train/loss_smooth")[1]
    assert math.isfinite(smooth[2]) and smooth[2] == smooth[1]  # NaN does not enter the EMA


@pytest.mark.parametrize(
    "make",
    [
        lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9),
        lambda p: torch.optim.Adam(p, lr=0.01),
    ],
    ids=["SGD", "Adam"],
)
def test_update_ratio_is_the_parameter_change_over_its_norm(make):
    model, x, y = toy()
    opt = make(model.parameters())
    watch = Watch(model, opt, every=3)
    expected = {}
    for t in range(7):
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        run(model, opt, watch, x, y, 1)
        if t % 3 == 0:
            expected[t] = {
                n: float((p.detach() - before[n]).norm() / before[n].norm())
                for n, p in model.named_parameters()
            }
    s = watch.history
    for name, _ in model.named_parameters():
        steps, ratios = s.get(f"train/update_ratio/{name}")
        assert steps.tolist() == [0, 3, 6]
        np.testing.assert_allclose(ratios, [expected[t][name] for t in (0, 3, 6)], rtol=1e-5)


def test_per_layer_grad_norms_every_n_steps():
    model, x, y = toy()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    watch = Watch(model, opt, every=2)
    opt.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    first = {n: float(p.grad.norm()) for n, p in model.named_parameters()}
    opt.zero_grad()
    run(model, opt, watch, x, y, 5)
    steps, values = watch.history.get("train/grad_norm/0.weight")
    assert steps.tolist() == [0, 2, 4]
    assert values[0] == pytest.approx(first["0.weight"], rel=1e-6)


def test_context_manager_form_records_like_the_two_calls():
    model, x, y = toy()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    watch = Watch(model, opt)
    for _ in range(3):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        with watch.step(loss):
            opt.step()
    assert watch.history.get("train/loss")[0].tolist() == [0, 1, 2]


def test_inside_fit_records_as_many_steps_as_fit_ran_and_validation():
    watch = Watch()
    history = fit("digits-mlp", epochs=2, callbacks=[watch], progress=False)
    s = watch.history
    steps, losses = s.get("train/loss")
    assert steps.tolist() == history.step
    np.testing.assert_allclose(losses, history.loss, rtol=1e-6)
    np.testing.assert_allclose(s.lr()[1], history.lrs)
    assert s.get("val/accuracy")[0].tolist() == [23, 46]
    assert s.get("val/accuracy")[1].tolist() == pytest.approx(history.metrics)
    assert "train/update_ratio/0.weight" in s


def test_signals_from_a_fit_history_match_the_watch():
    watch = Watch()
    history = fit("digits-mlp", epochs=1, callbacks=[watch], progress=False)
    from_history = Signals.from_history(history)
    for tag in ("train/loss", "train/loss_smooth", "val/loss", "val/accuracy"):
        a, b = from_history.get(tag), watch.history.get(tag)
        assert a[0].tolist() == b[0].tolist(), tag
        np.testing.assert_allclose(a[1], b[1], rtol=1e-6)


def test_log_adds_records_at_the_current_step():
    model, x, y = toy()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    watch = Watch(model, opt)
    run(model, opt, watch, x, y, 2)
    watch.log("guard/skip", 1)
    assert watch.history.get("guard/skip")[0].tolist() == [2]


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"every": 0}, "every must be a whole number >= 1, got 0"),
        ({"smooth": 1.0}, "smooth must be a number in [0, 1), got 1.0"),
        ({"clip_grad": -1}, "clip_grad must be a finite number > 0, got -1"),
        ({"flush_every": 2.5}, "flush_every must be a whole number >= 1, got 2.5"),
        ({"flush_secs": -1}, "flush_secs must be a finite number >= 0, got -1"),
        ({"flush_secs": math.nan}, "flush_secs must be a finite number >= 0, got nan"),
    ],
)
def test_bad_options_name_the_value(kwargs, words):
    with pytest.raises(ValueError) as err:
        Watch(**kwargs)
    assert words in str(err.value)


def test_a_sink_without_write_is_refused():
    with pytest.raises(TypeError, match="write"):
        Watch(sinks=["runs/"])


def test_unbound_watch_says_what_is_missing():
    with pytest.raises(RuntimeError, match="no optimizer"):
        Watch().after_backward(torch.tensor(1.0))


def norms_by_hand(model, x, y, steps, set_to_none=True, clip_at=()):
    """Train like run() and return each step's global gradient norm, measured by hand."""
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    watch = Watch(model, opt, flush_every=4)
    expected = []
    for t in range(steps):
        opt.zero_grad(set_to_none=set_to_none)
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        expected.append(float(torch.nn.utils.get_total_norm([p.grad for p in model.parameters()])))
        watch.after_backward(loss)
        if t in clip_at:
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1e-3)
        opt.step()
        watch.after_step()
    return watch, expected


@pytest.mark.parametrize("set_to_none", [True, False])
def test_grad_norms_are_right_whether_gradients_are_new_tensors_or_reused(set_to_none):
    model, x, y = toy()
    watch, expected = norms_by_hand(model, x, y, 10, set_to_none=set_to_none)
    steps, norms = watch.history.get("train/grad_norm")
    assert steps.tolist() == list(range(10))
    np.testing.assert_allclose(norms, expected, rtol=1e-5)


def test_gradients_clipped_in_place_after_the_call_keep_their_norm_before_clipping():
    model, x, y = toy()
    watch, expected = norms_by_hand(model, x, y, 10, clip_at=(5,))
    steps, norms = watch.history.get("train/grad_norm")
    assert steps.tolist() == list(range(10))
    np.testing.assert_allclose(norms, expected, rtol=1e-5)
    assert watch.history.get("train/nonfinite")[1].tolist() == [0] * 10


def test_inside_fit_with_clip_grad_the_watch_knows_the_threshold():
    watch = Watch()
    fit("digits-mlp", epochs=1, callbacks=[watch], progress=False, clip_grad=0.5)
    s = watch.history
    norms, clipped = s.get("train/grad_norm")[1], s.get("train/grad_clipped")[1]
    assert clipped.tolist() == [float(n > 0.5) for n in norms]
    assert clipped.any()  # digits-mlp's gradients start above 0.5: clipping fired


def test_the_accelerator_read_back_gives_the_cpu_path_s_records():
    """Off the CPU the buffer keeps 0-d tensors and reads them back in one transfer; forced
    onto that path here, it must record what the CPU path (numbers at once) records."""
    paths = []
    for on_cpu in (True, False):
        model, x, y = toy()
        opt = torch.optim.Adam(model.parameters(), lr=0.05)
        watch = Watch(model, opt, every=3, flush_every=5)
        watch._on_cpu = on_cpu
        run(model, opt, watch, x, y, 12, loss_at=lambda t, v: v * math.nan if t == 7 else v)
        paths.append(watch.history)
    cpu, device = paths
    assert sorted(cpu.tags()) == sorted(device.tags())
    for tag in cpu.tags():
        (s1, v1), (s2, v2) = cpu.get(tag), device.get(tag)
        assert s1.tolist() == s2.tolist(), tag
        np.testing.assert_allclose(v1, v2, rtol=1e-6, equal_nan=True, err_msg=tag)
    assert cpu.get("train/nonfinite")[1][7] >= 1
    assert len(cpu.get("train/update_ratio/0.weight")[0]) == 4


class Batches:
    """A sink that keeps the step numbers of each batch it is handed."""

    def __init__(self):
        self.batches = []

    def write(self, records):
        self.batches.append(sorted({r[0] for r in records}))

    def flush(self): ...

    def close(self): ...


def test_a_slow_run_hands_its_records_over_once_flush_secs_have_passed():
    model, x, y = toy()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sink = Batches()
    watch = Watch(model, opt, sinks=[sink], flush_every=1000, flush_secs=0.5)
    run(model, opt, watch, x, y, 3)
    assert sink.batches == []  # well within both bounds
    time.sleep(0.55)
    run(model, opt, watch, x, y, 1)  # this step ends after the 0.5 s: its end hands over
    assert sink.batches == [[0, 1, 2, 3]]
    run(model, opt, watch, x, y, 2)
    assert sink.batches == [[0, 1, 2, 3]]  # the clock restarted at the handover


def test_flush_secs_zero_hands_over_after_every_step():
    model, x, y = toy()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sink = Batches()
    run(model, opt, Watch(model, opt, sinks=[sink], flush_secs=0), x, y, 3)
    assert sink.batches == [[0], [1], [2]]
