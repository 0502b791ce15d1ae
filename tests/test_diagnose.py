"""``lrkit.diagnose``: each verdict on a constructed run, the evidence it names, bad input."""

import doctest
import importlib
import json
import math
import re

import numpy as np
import pytest

from lrkit import Diagnosis, History, diagnose, fit
from lrkit.watch import Guard, Signals, Watch
from lrkit.watch.diagnose import VERDICTS, Finding

RNG = np.random.default_rng(0)


def signals(loss, lr=None, val=None, ratio=None, optimizer="SGD"):
    """Signals from a loss curve, an lr per step (default constant 0.1), validation losses
    ``[(step, value), ...]`` and an update/weight ratio recorded every 10 steps."""
    steps = np.arange(len(loss))
    data = {
        "train/loss": (steps, np.asarray(loss, dtype=float)),
        f"lr-{optimizer}": (steps, np.full(len(loss), 0.1) if lr is None else np.asarray(lr)),
    }
    if val is not None:
        data["val/loss"] = ([s for s, _ in val], [v for _, v in val])
    if ratio is not None:
        data["train/update_ratio/0.weight"] = (steps[::10], np.full(len(steps[::10]), ratio))
    return Signals(data)


def noisy(curve, rel=0.03):
    """A curve with multiplicative batch noise of ``rel``."""
    curve = np.asarray(curve, dtype=float)
    return curve * np.exp(rel * RNG.standard_normal(len(curve)))


def converging(n=300, start=2.3, rate=0.03, floor=0.0):
    """A good run: fast exponential fall towards ``floor``."""
    t = np.arange(n)
    return floor + (start - floor) * np.exp(-rate * t)


def cosine_lr(n=300, peak=0.1):
    return peak * 0.5 * (1 + np.cos(np.pi * np.arange(n) / n))


# -- each verdict ---------------------------------------------------------------------------
def test_a_nan_loss_is_diverged_and_names_the_step():
    loss = list(noisy(converging(100)))
    loss[60:] = [float("nan")] * 40
    d = diagnose(signals(loss))
    assert d.verdict == "diverged"
    assert "nan at step 60" in d.primary.evidence
    assert d.primary.lr_factor == pytest.approx(0.1)


def test_a_loss_that_blows_up_far_above_its_start_is_diverged():
    t = np.arange(200)
    loss = noisy(2.3 * np.exp(0.03 * np.maximum(t - 50, 0)))  # flat, then up 90x
    d = diagnose(signals(loss))
    assert d.verdict == "diverged"
    assert "blew up from 2.3" in d.primary.evidence


def test_a_nan_the_run_recovered_from_is_too_high_not_diverged():
    loss = noisy(converging(200, floor=0.05))
    loss[80] = float("nan")  # skipped by a guard; training went on
    s = signals(loss)
    s = Signals({**{t: s.get(t) for t in s.tags()}, "guard/skip": ([80], [float("nan")])})
    d = diagnose(s)
    assert d.verdict == "too_high"
    assert "not finite at 1 step(s) from step 80" in d.primary.evidence
    assert "the guard acted: skip x1 (from step 80)" in d.primary.evidence


def test_a_guarded_real_run_names_the_guards_actions():
    watch = Watch(every=5, guard=Guard())
    fit("digits-mlp", lr=1.0, epochs=3, callbacks=[watch], progress=False)
    d = diagnose(watch)
    assert d.verdict == "too_high"  # the guard rolled the climb back: too high, not diverged
    assert "the guard acted: rollback x" in d.summary()


def test_loss_spikes_are_too_high_with_their_count_and_steps():
    loss = noisy(converging(300, floor=0.3))
    loss[60::20] += 2.0  # 12 spikes
    d = diagnose(signals(loss))
    assert d.verdict == "too_high"
    assert "12 loss spikes > 4 sigma" in d.primary.evidence
    assert "between steps 60 and 280" in d.primary.evidence
    assert "divide the lr by about 3" in d.primary.advice


def test_a_loss_rising_early_is_too_high():
    t = np.arange(200)
    loss = noisy(np.where(t < 60, 1.0 + 0.03 * t, 2.8 * np.exp(-0.01 * (t - 60))))
    d = diagnose(signals(loss))
    assert d.verdict == "too_high"
    assert "rose from 1" in d.primary.evidence and "at step" in d.primary.evidence


def test_update_ratios_far_above_1e_3_with_an_unsteady_validation_are_too_high():
    zigzag = [1.0, 0.8, 0.9, 0.6, 0.7, 0.5, 0.55, 0.4, 0.45, 0.3]  # best at the end
    val = list(zip(range(30, 301, 30), zigzag))
    d = diagnose(signals(noisy(converging()), ratio=0.05, val=val))
    assert d.verdict == "too_high"
    assert "update/weight ratio 0.05" in d.primary.evidence
    assert "validation loss went up at 4 of 9 validations" in d.primary.evidence
    assert d.primary.lr_factor == pytest.approx(0.1)


def test_high_update_ratios_alone_are_uncertain_not_fine_with_a_too_high_beside_it():
    """Fails on 21f979a: primary fine, secondary too_high on an update ratio alone."""
    d = diagnose(signals(noisy(converging()), ratio=0.05))
    assert d.verdict == "uncertain"
    assert "median update/weight ratio 0.05" in d.primary.evidence
    assert d.primary.advice.startswith("to settle it: log a validation loss")
    doubt = d.findings[1]
    assert doubt.verdict == "too_high" and doubt.confidence < 0.5


def test_a_slow_even_fall_is_too_low():
    loss = noisy(np.linspace(2.3, 1.9, 300), 0.01)
    d = diagnose(signals(loss))
    assert d.verdict == "too_low"
    assert d.primary.lr_factor >= 3
    assert "multiply the lr by about" in d.primary.advice


def test_tiny_update_ratios_are_too_low_with_a_factor_towards_1e_3():
    d = diagnose(signals(noisy(converging()), ratio=2e-5))
    assert d.verdict == "too_low"
    assert d.primary.lr_factor == 30  # 1e-3 / 2e-5 = 50: the nearest round factor
    assert "2e-05" in d.primary.evidence


def test_a_stalled_loss_at_a_constant_lr_is_a_plateau():
    loss = noisy(converging(400, rate=0.05, floor=0.5), 0.05)
    d = diagnose(signals(loss))
    assert d.verdict == "plateau"
    assert "plateau(factor=0.5, patience=2)" in d.primary.advice
    assert "while the lr stayed at 0.1" in d.primary.evidence


def test_a_stalled_loss_under_a_decaying_lr_is_no_plateau():
    loss = noisy(converging(400, rate=0.05, floor=0.5), 0.05)
    assert diagnose(signals(loss, lr=cosine_lr(400))).verdict != "plateau"


def test_validation_worsening_while_training_improves_is_overfitting():
    loss = noisy(converging(300, rate=0.02))
    val = [(s, 0.5 + 2e-6 * (s - 80) ** 2) for s in range(30, 301, 30)]  # best near step 90
    d = diagnose(signals(loss, val=val))
    assert d.verdict == "overfitting"
    assert "lowest at 0.5" in d.primary.evidence and "(step 90)" in d.primary.evidence


def test_a_fast_fall_that_levels_off_near_zero_is_fine():
    d = diagnose(signals(noisy(converging()), lr=cosine_lr(), ratio=1e-3))
    assert d.verdict == "fine"
    assert d.findings == (d.primary,)
    assert "fell from" in d.primary.evidence


def test_a_loss_still_falling_clearly_at_a_constant_lr_is_too_low():
    loss = noisy(2.3 * np.exp(-0.01 * np.arange(300)))  # 95% down, not levelling off
    d = diagnose(signals(loss))
    assert d.verdict == "too_low"
    assert "still falling when the run ended, at a constant lr 0.1" in d.primary.evidence
    assert "train for more steps" in d.primary.advice


def test_a_loss_that_levels_off_at_a_constant_lr_is_not_still_falling():
    d = diagnose(signals(noisy(converging(300, rate=0.03, floor=0.3))))
    assert not any("still falling" in f.evidence for f in d.findings)


def test_a_validation_loss_that_jumps_a_quarter_is_too_high():
    loss = noisy(converging(300, floor=0.05))
    val = list(zip(range(50, 301, 50), [0.8, 1.2, 0.6, 0.5, 0.45, 0.44]))  # +50% at step 100
    d = diagnose(signals(loss, val=val))
    assert d.verdict == "too_high"
    assert "validation loss jumped 50% from 0.8 at step 50 to 1.2 at step 100" in d.primary.evidence


# -- advice fits the schedule the run had ----------------------------------------------------
def warmup_cosine_lr(n=300, peak=0.1, warmup=15):
    t = np.arange(n)
    return np.where(t < warmup, peak * t / warmup, cosine_lr(n - warmup, peak)[t - warmup])


def test_a_fine_run_at_a_constant_lr_is_advised_a_decay():
    d = diagnose(signals(noisy(converging())))
    assert d.verdict == "fine"
    assert "the lr was constant at 0.1" in d.primary.evidence
    assert "a decay at the end (`warmup(5%) >> cosine(to=0.01)`)" in d.primary.advice


def test_a_fine_run_under_a_warmup_and_cosine_is_not_advised_the_decay_it_had():
    d = diagnose(signals(noisy(converging()), lr=warmup_cosine_lr()))
    assert d.verdict == "fine"
    assert "the lr warmed up to 0.1 by step 15 and decayed to" in d.primary.evidence
    assert "cosine" not in d.primary.advice and "decay at the end" not in d.primary.advice
    assert (
        d.primary.advice == "keep the lr and its schedule (a warmup and a decay, as this run had)"
    )


def test_a_plateau_after_the_lr_was_already_lowered_is_advised_something_else():
    lr = np.where(np.arange(400) < 100, 0.1, 0.01)  # a step decay, then constant
    d = diagnose(signals(noisy(converging(400, rate=0.05, floor=0.5), 0.05), lr=lr))
    assert d.verdict == "plateau"
    assert "decayed to 0.01 (10% of its peak)" in d.primary.advice
    assert "higher peak lr" in d.primary.advice and "cosine" not in d.primary.advice


def test_overfitting_under_a_decay_is_advised_the_same_schedule_over_fewer_steps():
    val = [(s, 0.5 + 2e-6 * (s - 80) ** 2) for s in range(30, 301, 30)]
    d = diagnose(signals(noisy(converging(300, rate=0.02)), lr=warmup_cosine_lr(), val=val))
    assert d.verdict == "overfitting"
    assert "the same schedule over fewer steps (the lr warmed up" in d.primary.advice


def test_a_divergence_after_a_warmup_is_advised_a_longer_one():
    loss = list(noisy(converging(100)))
    loss[60:] = [float("nan")] * 40
    d = diagnose(signals(loss, lr=warmup_cosine_lr(100, warmup=10)))
    assert d.verdict == "diverged"
    assert "a warmup longer than its 10 steps" in d.primary.advice


# -- statistics are scale-free -------------------------------------------------------------
@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e4])
def test_the_verdict_does_not_depend_on_the_loss_scale(scale):
    base = noisy(converging(300, floor=0.3))
    base[60::20] += 2.0
    slow = noisy(np.linspace(2.3, 1.9, 300), 0.01)
    assert diagnose(signals(base * scale)).verdict == "too_high"
    assert diagnose(signals(slow * scale)).verdict == "too_low"


def test_a_loss_with_negative_values_is_shifted_not_rejected():
    d = diagnose(signals(np.linspace(-1.0, -1.2, 200)))
    assert d.verdict in VERDICTS


# -- the kinds of input --------------------------------------------------------------------
def test_real_run_at_100x_the_lr_diverges():
    history = fit("digits-mlp", lr=5.0, epochs=2, progress=False)  # inf at step 27
    first_bad = next(s for s, x in zip(history.step, history.loss) if not math.isfinite(x))
    d = diagnose(history)
    assert d.verdict == "diverged"
    assert f"at step {first_bad} " in d.primary.evidence


def test_real_run_at_a_hundredth_of_the_lr_is_too_low():
    assert diagnose(fit("wine-mlp", lr=1e-4, progress=False)).verdict == "too_low"


def test_real_run_at_the_tasks_lr_with_a_cosine_is_fine_and_keeps_its_schedule():
    d = diagnose(fit("wine-mlp", schedule="warmup(5%) >> cosine(to=0.01)", progress=False))
    assert d.verdict == "fine"
    assert "decayed to 0.0001 (1% of its peak)" in d.primary.evidence
    assert d.primary.advice.startswith("keep the lr and its schedule")


def test_a_watch_and_a_run_folder_are_read_too(tmp_path):
    watch = Watch(every=5)
    history = fit("wine-mlp", lr=1e-4, callbacks=[watch], progress=False, out=tmp_path)
    from_watch, from_folder = diagnose(watch), diagnose(tmp_path)
    assert from_watch.verdict == from_folder.verdict == diagnose(history).verdict == "too_low"
    assert any(t.startswith("train/update_ratio/") for t in watch.history.tags())


def test_a_partial_run_is_diagnosed_like_a_live_one():
    loss = list(noisy(converging(100)))
    history = History(step=list(range(100)), lr_groups=[[0.1]] * 100, loss=loss)
    assert diagnose(history).steps == 100


# -- the result ------------------------------------------------------------------------------
def test_the_summary_names_verdict_confidence_evidence_and_advice():
    d = diagnose(signals(noisy(np.linspace(2.3, 1.9, 300), 0.01)))
    text = d.summary()
    assert text.startswith("verdict: too_low (confidence ")
    assert "evidence: " in text and "advice: " in text and "300 steps" in text
    assert str(d) == text


def test_to_dict_is_json_with_every_finding():
    d = diagnose(signals(noisy(converging(300, floor=0.3)), ratio=0.05))
    assert len(d.findings) >= 2
    data = json.loads(json.dumps(d.to_dict()))
    assert data["verdict"] == d.verdict
    assert [f["verdict"] for f in data["findings"]] == [f.verdict for f in d.findings]
    assert 0 <= data["confidence"] <= 1


def test_confidences_are_between_0_and_1():
    for loss in (converging(), np.linspace(2.3, 2.2, 100), converging(300, floor=0.5)):
        d = diagnose(signals(noisy(loss)))
        assert all(0 <= f.confidence <= 1 for f in d.findings)
        assert isinstance(d, Diagnosis) and all(isinstance(f, Finding) for f in d.findings)


# -- bad input -------------------------------------------------------------------------------
def test_a_history_with_no_steps_is_a_value_error():
    with pytest.raises(ValueError, match="no steps"):
        diagnose(History())


def test_a_folder_with_no_logs_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match="no logs"):
        diagnose(tmp_path)


def test_signals_without_a_training_loss_are_a_value_error():
    with pytest.raises(ValueError, match="no training loss"):
        diagnose(Signals({"val/loss": ([1], [0.5])}))


def test_something_else_is_a_type_error():
    with pytest.raises(TypeError, match="got list"):
        diagnose([1.0, 2.0])


def test_a_single_step_is_diagnosed_without_error():
    d = diagnose(signals([2.3]))
    assert d.verdict in VERDICTS and not math.isnan(d.confidence)


@pytest.mark.parametrize(
    "module",
    ["lrkit.watch.diagnose", "lrkit.watch.diagnosis", "lrkit.watch.curves", "lrkit.watch.advice"],
)
def test_the_module_examples_run(module):
    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0 and result.failed == 0


def test_advice_that_crosses_the_primary_verdict_says_so():
    from lrkit.watch.diagnosis import Finding, uncrossed

    high = Finding("too_high", "spikes", "divide the lr by about 10", 0.9, 0.1)
    low = Finding("too_low", "slow", "multiply the lr by about 3", 0.8, 3.0)
    plateau = Finding("plateau", "flat", "add a decay", 0.7)
    first, second, third = uncrossed((high, low, plateau))
    assert first == high and third == plateau
    assert second.advice.startswith("multiply the lr by about 3 (too_high above points")
    assert uncrossed((low, plateau)) == (low, plateau)


# -- exact evidence, tiny and zero losses, uncertain (issue 9) ----------------------------------
def test_a_fine_verdict_comes_alone():
    d = diagnose(signals(noisy(converging())))
    assert d.verdict == "fine" and len(d.findings) == 1


def test_the_start_quoted_is_the_logged_first_step_or_named_a_median():
    """Fails on 21f979a: 'the loss blew up from 29 at step 0' when step 0 logged 2.305."""
    loss = [2.305, 2.564, 55.4, 1034.0] + [1e4 * 1.1**i for i in range(226)]
    d = diagnose(signals(loss))
    assert d.verdict == "diverged"
    evidence = d.primary.evidence
    assert "2.305 at step 0" in evidence and "29 at step 0" not in evidence
    assert "the median of steps 0-" in evidence


def test_a_rise_of_a_loss_near_zero_is_not_overfitting():
    """Fails on 21f979a: 3.31e-09 to 6.62e-09 was 'overfitting (confidence 0.99)'."""
    loss = noisy(converging(300, rate=0.1, floor=0.0)) + 1e-9
    val = [(s, 3.31e-9 * (1 + 0.1 * k)) for k, s in enumerate(range(0, 300, 15))]
    val[0] = (0, 0.9)
    d = diagnose(signals(loss, val=val))
    assert "overfitting" not in [f.verdict for f in d.findings]


def test_a_jump_from_a_tiny_validation_loss_is_measured_against_the_losss_scale():
    """Fails on 21f979a: 'validation loss jumped 24242922%'."""
    loss = noisy(converging(300, rate=0.1))
    val = [(s, 2e-9) for s in range(0, 300, 20)]
    val[0], val[8] = (0, 0.02), (160, 0.5)
    d = diagnose(signals(loss, val=val))
    text = d.summary()
    assert "validation loss jumped by 0.5" in text and "% of the training loss at the start" in text
    assert not re.search(r"jumped \d{4,}%", text)


@pytest.mark.parametrize(
    "loss",
    [
        [0.0] * 100,
        [0.0] * 3 + [1.0] * 97,
        [0.0, 1.0, 0.0] * 40,
        list(np.linspace(1.0, 0.0, 100)),
    ],
    ids=["all-zero", "zero-then-one", "zero-and-one", "falls-to-zero"],
)
def test_a_loss_of_zero_raises_nothing(loss):
    """Fails on 21f979a: ZeroDivisionError."""
    val = [(s, 0.0) for s in range(0, len(loss), 10)]
    d = diagnose(signals(loss, val=val, ratio=1e-3))
    assert d.verdict in VERDICTS
    assert d.verdict != "diverged" or not loss[0] == loss[1] == 0.0


def test_a_loss_of_zero_from_the_start_is_uncertain_and_says_why():
    d = diagnose(signals([0.0] * 100))
    assert d.verdict == "uncertain" and "the loss was 0 from the first steps" in d.primary.evidence


def test_a_run_too_short_to_read_is_uncertain():
    d = diagnose(signals(list(converging(12))))
    assert d.verdict == "uncertain" and "only 12 steps" in d.primary.evidence
    assert d.primary.advice.startswith("to settle it: log at least 20 steps")


def test_uncertain_is_a_verdict_of_its_own():
    assert "uncertain" in VERDICTS and "uncertain" in Diagnosis.__doc__


def test_a_blow_up_the_guard_rolled_back_is_too_high_not_diverged():
    """Fails on 21f979a: a loss that peaked at 20x its start before the guard's rollback,
    then trained on to below its start, was called diverged."""
    loss = list(noisy(converging(200)))
    loss[40:50] = [2.3 * 3**k for k in range(1, 11)]
    s = signals(loss)
    s = Signals({**{t: s.get(t) for t in s.tags()}, "guard/rollback": ([50], [0.05])})
    d = diagnose(s)
    assert d.verdict == "too_high" and "the guard acted: rollback x1" in d.primary.evidence
