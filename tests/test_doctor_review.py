"""The doctor on the runs a reviewer found it misread: a long run, a guarded run, a loss below 0,
logs with no finite loss, and an lr of 0. Each test fails on 21f979a."""

import re
import warnings

import numpy as np
import pytest

from lrkit import diagnose, fit
from lrkit.watch import Guard, Signals, Watch
from lrkit.watch.curves import HEAD_MAX, Curves

RNG = np.random.default_rng(7)


def curve_signals(loss, lr=None, extra=None):
    steps = np.arange(len(loss))
    lrs = np.full(len(loss), 0.05) if lr is None else np.asarray(lr, dtype=float)
    return Signals(
        {"train/loss": (steps, np.asarray(loss, float)), "lr-SGD": (steps, lrs), **(extra or {})}
    )


def numbers(text):
    """Every number the evidence quotes."""
    return [float(x) for x in re.findall(r"[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?", text)]


# -- 1. a long run: the start is its first steps, whatever the run's length ------------------
def test_a_long_ordinary_run_is_not_called_too_high_from_its_own_first_step():
    watch = Watch()
    fit("digits-mlp", epochs=100, callbacks=[watch], progress=False)  # 2,300 steps at lr 0.05
    d = diagnose(watch)
    assert "too_high" not in [f.verdict for f in d.findings]
    assert "to 2.31 at step 0" not in d.summary()


def test_the_start_of_a_long_run_is_the_median_of_a_few_first_steps():
    n = 5000
    loss = 2.3 * np.exp(-np.arange(n) / 30) + 0.01 + 0.001 * RNG.random(n)
    c = Curves(curve_signals(loss))
    assert c.head == HEAD_MAX  # not the 2% (100 steps) of an already trained model
    d = diagnose(curve_signals(loss))
    assert d.verdict == "fine"
    assert f"the median of steps 0-{HEAD_MAX - 1}" in d.primary.evidence


def test_a_jump_inside_the_start_window_is_measured_from_the_first_step():
    loss = 0.5 + 1.8 * np.exp(-np.arange(300) / 30)
    loss[1] = 300.0  # a jolt at step 1: the start (median of steps 0-2) must not contain it
    d = diagnose(curve_signals(loss))
    assert d.verdict == "too_high"
    assert "the loss jumped from 2.3 at step 0 to 300 at step 1" in d.primary.evidence


def test_no_rule_reports_a_rise_to_a_step_inside_the_start_window():
    n = 3000  # the first step the highest, then a long fall: nothing jumped
    loss = 0.05 + 2.25 * np.exp(-np.arange(n) / 15)
    d = diagnose(curve_signals(loss))
    for step in range(HEAD_MAX):
        assert f"at step {step}\n" not in d.summary() + "\n"
        assert not re.search(
            rf"(jumped|rose|blew up) from .* to [\d.e+-]+ at step {step}\b", d.summary()
        )


# -- 2. the guard's lr cuts are not a schedule ----------------------------------------------
def test_a_guarded_run_at_a_high_lr_gets_no_too_low_beside_its_too_high():
    watch = Watch(guard=Guard())
    fit("digits-mlp", lr=5.0, callbacks=[watch], progress=False)
    d = diagnose(watch)
    assert d.verdict in ("too_high", "diverged")
    assert "too_low" not in [f.verdict for f in d.findings]
    assert "decayed" not in d.summary()


def test_the_recovery_after_guard_rollbacks_is_not_called_too_low():
    t = np.arange(150)  # a climb the guard rolled back 3 times, cutting the lr; then an even fall
    lr = np.where(t < 10, 1.0, np.where(t < 20, 0.5, np.where(t < 30, 0.125, 0.0156)))
    loss = np.where(t < 30, 1.3, 1.3 - 0.7 * (t - 30) / 120)
    loss[[8, 9, 18, 19, 28, 29]] = 40.0
    rollbacks = {"guard/rollback": ([10, 20, 30], [0.5, 0.125, 0.0156])}
    d = diagnose(curve_signals(loss, lr, rollbacks))
    assert d.verdict == "too_high"
    assert [f.verdict for f in d.findings] == ["too_high"]
    assert "decayed" not in d.summary()


def test_lr_cuts_made_at_guard_rollbacks_are_not_read_as_a_decay():
    n = 300
    lr = np.full(n, 0.5)
    lr[40:], lr[80:] = 0.25, 0.0625  # the guard's cuts at its two rollbacks
    loss = 0.05 + 2.0 * np.exp(-np.arange(n) / 40)
    s = curve_signals(loss, lr, {"guard/rollback": ([40, 80], [0.25, 0.0625])})
    shape = Curves(s).shape
    assert shape.constant and shape.peak == 0.5


# -- 3. a loss below 0 ----------------------------------------------------------------------
def test_a_negative_loss_is_quoted_as_logged_and_not_in_times_its_start():
    loss = -(2.215 * np.exp(-np.arange(230) / 20) + 0.09)  # -2.305 up to -0.09
    d = diagnose(curve_signals(loss))
    text = d.summary()
    assert "x its start" not in text
    quoted = [x for x in numbers(d.primary.evidence) if x != int(x)]  # steps are whole
    assert quoted and all(x < 0 for x in quoted)  # every loss quoted is one the run logged: < 0
    assert f"{np.median(loss[:3]):.3g} (the median of steps 0-2; -2.305 at step 0)" in text
    assert d.verdict != "diverged"  # it rose by about its own size, not 3x


def test_a_negative_loss_that_blows_up_is_diverged_by_its_difference_from_the_start():
    t = np.arange(300)
    loss = np.where(t < 150, 1.0 - 3.0 * (1 - np.exp(-t / 20)), -2.0 + 0.3 * (t - 150))
    d = diagnose(curve_signals(loss))
    assert d.verdict == "diverged"
    assert "from its start" in d.primary.evidence and "x its scale" in d.primary.evidence
    assert "x its start" not in d.primary.evidence


# -- 4. no finite loss ----------------------------------------------------------------------
def test_a_run_with_only_nan_losses_is_diverged_from_step_0_with_nothing_invented():
    d = diagnose(curve_signals(np.full(50, np.nan)))
    assert [f.verdict for f in d.findings] == ["diverged"]
    assert "no finite loss at any of the 50 logged steps" in d.primary.evidence
    assert "it was 1" not in d.primary.evidence and "lowest 1" not in d.primary.evidence


def test_losses_at_the_edge_of_float_are_diverged_without_a_numpy_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        d = diagnose(curve_signals(np.full(50, 1e308)))
    assert d.verdict == "diverged"
    assert "inf" not in d.primary.evidence
    assert "count as overflowed" in d.primary.evidence


# -- 5. an lr of 0 --------------------------------------------------------------------------
def test_a_run_at_an_lr_of_0_says_so_and_multiplies_nothing():
    history = fit("digits-mlp", lr=0.05, schedule="constant(0)", epochs=2, progress=False)
    d = diagnose(history)
    assert "the lr was 0" in d.primary.evidence
    assert "multiply the lr" not in d.primary.advice
    assert d.primary.lr_factor is None


@pytest.mark.parametrize("lr", [0.0, 0.05])
def test_lr_shape_text_names_an_lr_of_0(lr):
    s = curve_signals(2.3 * np.exp(-np.arange(100) / 30), np.full(100, lr))
    assert ("the lr was 0" in Curves(s).shape.text()) == (lr == 0)
