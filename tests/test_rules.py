"""Suggestion rules and the confidence check, on synthetic range-test curves with known answers.

A synthetic curve is a logistic drop from ``high`` to ``low`` centred on ``log10(lr) = center``
(``width`` decades wide), then an exponential blow-up from ``log10(lr) = blowup`` on. A
*sweep* of it adds Gaussian noise, smooths it like a range test (bias-corrected EMA, 0.98)
and stops when the smoothed loss passes 4 x its best, as ``find_lr`` does.
"""

import doctest
import math

import numpy as np
import pytest

from lrkit.find import rules
from lrkit.find.rules import DEFAULT_RULE, RULES, Confidence, assess, get_rule, suggest_all


def true_loss(x, high=2.3, low=0.3, center=-3.0, width=0.3, blowup=-0.5, rate=4.0):
    drop = (high - low) / (1 + np.exp(-(x - center) / width))
    rise = low * np.expm1(rate * np.clip(x - blowup, 0, None))
    return high - drop + rise


def ema(raw, beta=0.98):
    out, avg = [], 0.0
    for i, value in enumerate(raw):
        avg = beta * avg + (1 - beta) * value
        out.append(avg / (1 - beta ** (i + 1)))
    return np.array(out)


def sweep(seed=0, noise=0.0, n=100, start=-7.0, end=1.0, beta=0.98, **shape):
    """``(lrs, smoothed, raw, true)`` of one synthetic range test, cut like find_lr cuts it."""
    x = np.linspace(start, end, n)
    true = true_loss(x, **shape)
    raw = true + noise * np.random.default_rng(seed).standard_normal(n)
    smoothed = ema(raw, beta)
    best = np.minimum.accumulate(smoothed)
    past = np.nonzero(smoothed > 4 * best)[0]
    stop = past[0] + 1 if past.size else n
    return 10 ** x[:stop], smoothed[:stop], raw[:stop], true[:stop]


def decades(lr):
    return math.log10(lr)


# -- the registry -------------------------------------------------------------------------------


def test_the_rules_are_registered_and_lrkit_is_the_default():
    assert set(RULES) == {"steep", "valley", "minimum", "slide", "lrkit"}
    assert DEFAULT_RULE == "lrkit" and RULES[DEFAULT_RULE] is rules.lrkit


def test_get_rule_names_the_known_rules_when_asked_for_an_unknown_one():
    assert get_rule("valley") is rules.valley
    with pytest.raises(ValueError, match="unknown rule 'vally'; known: steep, valley"):
        get_rule("vally")


def test_suggest_all_gives_every_rule_in_order():
    lrs, smoothed, _, _ = sweep()
    got = suggest_all(lrs, smoothed)
    assert list(got) == list(RULES)
    assert all(v is None or lrs[0] <= v <= lrs[-1] for v in got.values())


def test_the_module_examples_run():
    assert doctest.testmod(rules).failed == 0


# -- known answers on clean curves (the curve is its own smoothing) ---------------------------------

X = np.linspace(-7, 1, 161)  # 0.05 decades apart
CLEAN = true_loss(X)
LRS = 10**X


def test_steep_is_the_centre_of_a_logistic_drop():
    assert decades(rules.steep(LRS, CLEAN)) == pytest.approx(-3.0, abs=0.1)


def test_steep_measures_the_slope_against_log_lr_not_lr():
    # Against the raw lr, a small drop at a large lr looks steepest: here 0.3 at 1e-1
    # against 2.0 at 1e-4. Per decade, the big drop is steeper.
    y = 3.0 - 2.0 / (1 + np.exp(-(X + 4) / 0.2)) - 0.3 / (1 + np.exp(-(X + 1) / 0.2))
    y = y + 0.1 * np.expm1(4 * np.clip(X - 0.3, 0, None))
    assert decades(rules.steep(LRS, y)) == pytest.approx(-4.0, abs=0.1)


def test_minimum_is_the_lowest_loss_divided_by_ten():
    i = int(np.argmin(CLEAN))
    assert rules.minimum(LRS, CLEAN) == pytest.approx(LRS[i] / 10)


def test_valley_is_halfway_along_the_longest_descent():
    # strictly falling from the first point to the minimum: halfway is half the points
    i = int(np.argmin(CLEAN))
    assert rules.valley(LRS, CLEAN) == pytest.approx(LRS[round(i / 2)])


def test_valley_skips_a_bump_inside_the_descent():
    y = CLEAN.copy()
    y[60] += 0.5  # one point up: the longest decreasing run goes around it
    assert rules.valley(LRS, y) == pytest.approx(rules.valley(LRS, CLEAN))


def test_slide_walks_back_from_the_blow_up_to_where_the_slope_is_steady():
    # flat (slope 0) until 1e-2, then a rise that keeps steepening (log-loss quadratic in
    # log lr): the window's two slopes agree once its right end is back on the (nearly)
    # flat part, so the answer is one window below 1e-2
    y = np.exp(np.clip(X + 2, 0, None) ** 2) - 1e-3 * (X + 7)
    width = round(0.15 * X.size) * 0.05  # decades
    assert decades(rules.slide(LRS, y)) == pytest.approx(-2 - width, abs=0.15)


def test_lrkit_is_halfway_down_the_drop():
    # a logistic has fallen half of the way at its centre
    y = true_loss(X, center=-2.0)  # 1.5 decades below the blow-up: no clamp applies
    assert decades(rules.lrkit(LRS, y)) == pytest.approx(-2.0, abs=0.1)


def test_lrkit_takes_the_fraction_of_the_fall_it_is_given():
    # a logistic has fallen 2/3 of the way at centre + width * ln 2 (the rule's own
    # smoothing over +-0.2 decades moves it a little right, where the drop is convex)
    y = true_loss(X, center=-2.0)
    got = decades(rules.lrkit(LRS, y, fall=2 / 3))
    assert got == pytest.approx(-2 + 0.3 * math.log(2), abs=0.15)


def test_lrkit_keeps_half_a_decade_below_the_minimum():
    # a drop that runs straight into the blow-up: halfway down is too close to it
    y = true_loss(X, center=-1.0, width=0.3, blowup=-0.6)
    bottom = X[np.argmin(y)]
    assert decades(rules.lrkit(LRS, y)) == pytest.approx(bottom - 0.5, abs=0.1)


def test_lrkit_stays_within_two_decades_of_the_minimum():
    # a long, shallow descent over six decades: no further than the minimum / 100
    y = 2.0 - 0.2 * (X + 7) + np.expm1(4 * np.clip(X - 0.0, 0, None))
    bottom = X[np.argmin(y)]  # the rule's smoothing moves its minimum a little left
    assert decades(rules.lrkit(LRS, y)) == pytest.approx(bottom - 2, abs=0.2)


def test_lrkit_takes_the_last_descent_before_the_minimum():
    # two drops with a rise between them (from 2 back up to 2.5): the answer is on the second
    y = 3.0 - 1.0 / (1 + np.exp(-(X + 5) / 0.2)) - 1.5 / (1 + np.exp(-(X + 2) / 0.2))
    y = y + 0.5 / (1 + np.exp(-(X + 3.5) / 0.2)) + np.expm1(4 * np.clip(X + 0.5, 0, None))
    assert decades(rules.lrkit(LRS, y)) == pytest.approx(-2.0, abs=0.2)


def test_lrkit_walks_over_a_plateau_inside_a_descent():
    # two drops of 1 with a flat plateau between: one descent from 3 to 1, halfway is 2
    y = 3.0 - 1.0 / (1 + np.exp(-(X + 5) / 0.2)) - 1.0 / (1 + np.exp(-(X + 2) / 0.2))
    y = y + np.expm1(4 * np.clip(X + 0.5, 0, None))
    assert -5.0 < decades(rules.lrkit(LRS, y)) < -2.0


@pytest.mark.parametrize("seed", range(5))
def test_lrkit_walks_over_noise_on_a_long_flat_bottom(seed):
    # an Adam-like curve: a drop at 1e-4.5, flat for four decades, then the blow-up; with
    # light smoothing the flat bottom wiggles, and a wiggle must not pass for the descent
    lrs, smoothed, _, _ = sweep(seed, noise=0.3, beta=0.9, center=-4.5, blowup=-0.3)
    assert -4.5 < decades(rules.lrkit(lrs, smoothed)) < -2.0


@pytest.mark.parametrize("name", sorted(RULES))
def test_every_rule_finds_nothing_on_a_rising_curve(name):
    assert RULES[name](LRS, 1.0 + np.expm1(X - X[0])) is None


@pytest.mark.parametrize("name", sorted(RULES))
def test_every_rule_finds_nothing_in_four_points(name):
    assert RULES[name](LRS[:4], CLEAN[:4]) is None


@pytest.mark.parametrize("name", sorted(RULES))
def test_every_rule_reads_only_up_to_the_first_non_finite_loss(name):
    y = CLEAN.copy()
    y[120:] = np.nan
    y[130] = np.inf
    assert RULES[name](LRS, y) == RULES[name](LRS[:120], CLEAN[:120])


def test_rules_refuse_lrs_that_do_not_increase():
    with pytest.raises(ValueError, match="strictly increasing"):
        rules.lrkit(LRS[::-1], CLEAN)
    with pytest.raises(ValueError, match="same length"):
        rules.steep(LRS, CLEAN[:-1])
    with pytest.raises(ValueError, match="> 0"):
        rules.minimum(np.linspace(0, 1, 20), np.ones(20))


# -- noisy sweeps ---------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize(("name", "within"), [("lrkit", 0.35), ("steep", 0.75)])
def test_heavy_noise_moves_the_suggestion_little(name, within, seed):
    # noise with a std of a quarter of the whole drop, smoothed as find_lr smooths it; a
    # slope (steep) moves more with noise than a level (lrkit)
    lrs, smoothed, _, _ = sweep()
    noisy_lrs, noisy, _, _ = sweep(seed, noise=0.5)
    clean = decades(RULES[name](lrs, smoothed))
    assert decades(RULES[name](noisy_lrs, noisy)) == pytest.approx(clean, abs=within)


@pytest.mark.parametrize("seed", range(5))
def test_lrkit_is_below_the_divergence_and_on_the_drop_of_a_noisy_sweep(seed):
    lrs, smoothed, _, true = sweep(seed, noise=0.5)
    x = decades(rules.lrkit(lrs, smoothed))
    assert -3.5 < x < decades(lrs[np.argmin(true)])


def _random_sweep(rng):
    """A sweep of a random shape: SGD-like (long flat start) or Adam-like (falls at once)."""
    high = rng.uniform(0.5, 5)
    low = high * rng.uniform(0.05, 0.8)
    center = rng.uniform(-6.5, -1.5)
    shape = dict(
        high=high,
        low=low,
        center=center,
        width=rng.uniform(0.1, 0.8),
        blowup=center + rng.uniform(0.8, 3.0),
        rate=rng.uniform(1.5, 8),
    )
    noise = (high - low) * rng.choice([0.0, 0.05, 0.2, 0.4])
    n = int(rng.choice([60, 100, 200]))
    beta = float(rng.choice([0.8, 0.9, 0.95, 0.98]))  # find_lr's smooth=
    return sweep(int(rng.integers(1 << 30)), noise=noise, n=n, beta=beta, **shape), shape


def test_lrkit_stays_inside_the_descent_on_50_noisy_curves_of_varied_shapes():
    """Property: never in the divergent region (past the true minimum), never before the drop."""
    rng = np.random.default_rng(2026)
    for case in range(50):
        (lrs, smoothed, _, true), shape = _random_sweep(rng)
        lr = rules.lrkit(lrs, smoothed)
        assert lr is not None, (case, shape)
        x = decades(lr)
        xs = np.log10(lrs)
        i = int(np.argmin(true))
        bottom = xs[i]  # the divergent region starts past the true minimum
        fallen = true[0] - true[:i] <= 0.02 * (true[0] - true[i])
        top = xs[np.nonzero(fallen)[0][-1]]  # the last point before the loss has fallen 2%
        assert top <= x < bottom, (case, shape, x, top, bottom)


# -- confidence -----------------------------------------------------------------------------------


def test_a_clean_sweep_is_ok():
    lrs, smoothed, raw, _ = sweep(noise=0.05)
    assert assess(lrs, smoothed, raw) == Confidence(True, "ok", assess(lrs, smoothed, raw).detail)


def test_a_flat_curve_has_no_descent():
    lrs = np.logspace(-7, 1, 100)
    assert assess(lrs, np.full(100, 2.3)).reason == "no descent"
    slow = 2.3 - 0.001 * np.linspace(0, 1, 100)  # monotone, but the lr hardly matters
    assert assess(lrs, slow) == Confidence(False, "no descent", assess(lrs, slow).detail)


@pytest.mark.parametrize("seed", range(10))
def test_a_noisy_flat_curve_has_no_descent(seed):
    raw = 2.3 + 0.3 * np.random.default_rng(seed).standard_normal(100)
    got = assess(np.logspace(-7, 1, 100), ema(raw), raw)
    assert (got.ok, got.reason) == (False, "no descent")


def test_a_curve_that_diverges_at_once_is_not_ok():
    lrs = np.logspace(-1, 1, 40)
    losses = 2.3 * np.exp(np.linspace(0, 2, 40))
    got = assess(lrs, losses)
    assert (got.ok, got.reason) == (False, "diverged at once")


def test_too_few_points_are_not_ok():
    lrs, smoothed, raw, _ = sweep()
    got = assess(lrs[:8], smoothed[:8], raw[:8])
    assert (got.ok, got.reason, got.detail) == (False, "too few points", "8 < 10")


def test_noise_larger_than_the_fall_is_too_noisy():
    # a real but small drop (0.2) under per-step noise of 0.5
    lrs, smoothed, raw, _ = sweep(3, noise=0.5, high=2.3, low=2.1)
    got = assess(lrs, smoothed, raw)
    assert got.reason in ("too noisy", "no descent") and not got.ok


def test_a_noisy_but_long_descent_is_ok():
    # noise about 0.7 of the fall, but sustained over many points (like a small-batch
    # regression): the trend is clear
    lrs, smoothed, raw, _ = sweep(1, noise=0.2, high=1.2, low=0.9, center=-4, width=1.0)
    assert assess(lrs, smoothed, raw).ok


def test_confidence_prints_its_reason():
    assert str(Confidence(False, "no descent", "fall 0")) == "low: no descent (fall 0)"
    assert str(Confidence(True, "ok")) == "ok"
