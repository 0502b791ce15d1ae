"""The doctor on an instability the run recovered from: ``too_high`` only when it cost something.

A sign of a too-high lr (loss spikes, a jump, a validation jolt) that is over early, after which
the training loss converged (under 1% of its start) and the validation loss ended at its best,
is a note on a ``fine`` run; the same signs that leave the run worse, last to its end, or that a
guard had to stop stay ``too_high``.
"""

import numpy as np

from lrkit import diagnose, fit, pick_lr
from lrkit.watch import Signals, Watch

RNG = np.random.default_rng(1)
N = 300


def run(loss, val=None, extra=None):
    steps = np.arange(len(loss))
    data = {
        "train/loss": (steps, np.asarray(loss, dtype=float)),
        "lr-SGD": (steps, np.full(len(loss), 0.1)),
    }
    if val is not None:
        data["val/loss"] = ([s for s, _ in val], [v for _, v in val])
    return Signals({**data, **(extra or {})})


def unstable(floor=0.0, spikes=range(30, 120, 8)):
    """A fast fall towards ``floor`` with 2.0 added at ``spikes`` (12 early ones by default)."""
    loss = (floor + (2.3 - floor) * np.exp(-0.03 * np.arange(N))) * np.exp(
        0.03 * RNG.standard_normal(N)
    )
    loss[list(spikes)] += 2.0
    return loss


FALLING_VAL = [(s, 0.1 + 0.5 * np.exp(-s / 60)) for s in range(30, N + 1, 30)]  # best at the end


def test_an_early_instability_the_run_recovered_from_is_fine_with_a_note():
    """Fails on 21f979a: too_high on spikes the run had long recovered from."""
    d = diagnose(run(unstable(), FALLING_VAL))
    assert d.verdict == "fine"
    assert "12 loss spikes" in d.primary.evidence
    assert "cost nothing in the end: the run recovered from step 118 on" in d.primary.evidence
    assert "a warmup" in d.primary.advice
    assert all(f.verdict != "too_high" for f in d.findings)


def test_an_instability_that_left_the_training_loss_high_is_too_high():
    d = diagnose(run(unstable(floor=0.3), FALLING_VAL))  # ends at 13% of its start
    assert d.verdict == "too_high"
    assert "12 loss spikes" in d.primary.evidence


def test_an_instability_that_left_the_validation_loss_above_its_best_is_too_high():
    val = [
        (s, 0.1 + 0.5 * np.exp(-s / 60) + (0.1 if s >= 150 else 0.0)) for s in range(30, N + 1, 30)
    ]
    d = diagnose(run(unstable(), val))
    assert d.verdict == "too_high"


def test_an_instability_that_lasts_into_the_last_quarter_is_too_high():
    d = diagnose(run(unstable(spikes=range(30, 290, 20)), FALLING_VAL))
    assert d.verdict == "too_high"
    assert "between steps 30 and 270" in d.primary.evidence


def test_an_instability_with_no_validation_loss_to_show_the_recovery_is_too_high():
    assert diagnose(run(unstable())).verdict == "too_high"


def test_an_instability_the_guard_had_to_stop_is_too_high_however_it_ended():
    d = diagnose(run(unstable(), FALLING_VAL, {"guard/skip": ([40], [1.0])}))
    assert d.verdict == "too_high"
    assert "the guard acted: skip x1" in d.primary.evidence


def test_a_run_at_the_lr_pick_lr_chose_is_not_called_too_high_by_the_doctor():
    """Fails on 21f979a: wine-mlp picks 0.2015, and its run there was called too_high (its
    loss jumped 5x at step 21 and spiked until step 63; it ended at 0, validation at 0)."""
    schedule = "warmup(5%) >> cosine"
    pick = pick_lr("wine-mlp", schedule, progress=False)
    watch = Watch(every=5)
    history = fit("wine-mlp", pick.lr, schedule, callbacks=[watch], progress=False)
    d = diagnose(watch)
    assert history.final_metric == 1.0  # the run is as good as it gets
    assert d.verdict != "too_high" and "too_high" not in [f.verdict for f in d.findings]


def test_a_validation_loss_still_catching_up_at_the_end_is_not_a_recovery():
    """One validation at its best could be mid-descent: the last two must be there."""
    val = [(s, 0.1 + 0.5 * np.exp(-s / 60)) for s in range(30, N - 29, 30)] + [(N, 0.08)]
    assert diagnose(run(unstable(), val)).verdict == "too_high"


def test_a_validation_loss_only_back_where_it_was_before_the_instability_is_too_high():
    """The run must end past where it was when the instability struck, not merely back."""
    val = [(10, 0.5), (20, 0.12), *((s, 0.125) for s in range(30, N + 1, 30))]
    d = diagnose(run(unstable(), val))
    assert d.verdict == "too_high"
