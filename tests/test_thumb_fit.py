"""The power-law fit of the batch-size study: k, its t interval, the verdict, where a rule stops."""

import doctest
import math

import numpy as np
import pytest

from lrkit.tune.thumb import powerlaw
from lrkit.tune.thumb.powerlaw import (
    PowerLaw,
    fit_power_law,
    holds_up_to,
    local_slopes,
    verdict,
    where_it_stops,
)

SIZES = [16, 32, 64, 128, 256]


@pytest.mark.parametrize("k", [1.0, 0.5, 0.0, -0.3])
def test_an_exact_power_law_gives_its_k_with_a_tiny_interval(k):
    fit = fit_power_law(SIZES, [0.003 * b**k for b in SIZES])
    assert fit.k == pytest.approx(k, abs=1e-12)
    assert fit.high - fit.low < 1e-9
    assert fit.predict(512) == pytest.approx(0.003 * 512**k)


def test_the_interval_covers_the_true_k_about_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    covered = 0
    for _ in range(400):
        lrs = [0.01 * b**0.5 * math.exp(rng.normal(0, 0.3)) for b in SIZES]
        covered += fit_power_law(SIZES, lrs).inside(0.5)
    assert 0.91 <= covered / 400 <= 0.99


def test_more_noise_widens_the_interval():
    rng = np.random.default_rng(1)
    noise = rng.normal(0, 1, len(SIZES))
    narrow = fit_power_law(SIZES, [b**0.5 * math.exp(0.05 * e) for b, e in zip(SIZES, noise)])
    wide = fit_power_law(SIZES, [b**0.5 * math.exp(0.5 * e) for b, e in zip(SIZES, noise)])
    assert wide.high - wide.low > 5 * (narrow.high - narrow.low)


def test_the_interval_uses_student_t_with_n_minus_2_degrees_of_freedom():
    from scipy import stats

    lrs = [0.01, 0.018, 0.03, 0.07, 0.09]
    fit = fit_power_law(SIZES, lrs)
    x, y = np.log(SIZES), np.log(lrs)
    slope, intercept, _, _, se = stats.linregress(x, y)
    assert fit.k == pytest.approx(slope) and fit.a == pytest.approx(intercept)
    assert fit.high - fit.k == pytest.approx(stats.t.ppf(0.975, 3) * se)


def test_the_verdict_says_the_sqrt_rule_holds_when_only_half_is_inside():
    text = verdict(PowerLaw(0.0, 0.48, 0.31, 0.65, 5, 0.1))
    assert text == (
        "k = 0.48 [0.31, 0.65]: the square-root rule holds (0.5 inside), the linear rule does not"
    )


def test_the_verdict_says_the_linear_rule_holds_when_only_one_is_inside():
    assert "the linear rule holds (1 inside), the square-root rule does not" in verdict(
        PowerLaw(0.0, 0.95, 0.8, 1.1, 5, 0.1)
    )


def test_the_verdict_says_when_both_rules_are_inside():
    assert "cannot tell them apart" in verdict(PowerLaw(0.0, 0.7, 0.2, 1.3, 3, 0.5))


def test_the_verdict_says_neither_rule_holds_and_a_constant_lr_is_inside():
    text = verdict(PowerLaw(0.0, 0.05, -0.2, 0.3, 5, 0.1))
    assert "neither rule holds" in text and "more slowly than the square root" in text
    assert text.endswith("a constant lr (k = 0) is inside too")


def test_the_verdict_says_when_k_lies_between_the_rules():
    assert "between the square root and linear" in verdict(PowerLaw(0.0, 0.75, 0.6, 0.9, 5, 0.1))


def test_a_fit_needs_three_points_and_two_batch_sizes():
    with pytest.raises(ValueError, match="at least 3"):
        fit_power_law([16, 32], [0.1, 0.2])
    with pytest.raises(ValueError, match="2 different batch sizes"):
        fit_power_law([16, 16, 16], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="finite number > 0"):
        fit_power_law([16, 32, 64], [0.1, 0.0, 0.3])


def test_a_rule_holds_up_to_the_batch_before_its_first_miss_by_more_than_a_factor_of_two():
    lrs = [0.01 * b / 16 for b in (16, 32, 64)] + [0.03, 0.03]  # linear, then it saturates
    holds = holds_up_to(SIZES, lrs, "linear")
    assert holds["holds_up_to"] == 64
    assert holds["first_miss"]["batch_size"] == 128
    assert holds["first_miss"]["predicted"] == pytest.approx(0.08)
    assert "holds up to batch 64; at 128 the best lr 0.03 is x2.7 below its 0.08" in (
        where_it_stops(holds)
    )


def test_a_rule_within_a_factor_of_two_everywhere_holds_at_every_batch_size():
    lrs = [0.01 * (b / 16) ** 0.5 * f for b, f in zip(SIZES, (1, 1.9, 0.6, 1.5, 1.0))]
    holds = holds_up_to(SIZES, lrs, "sqrt")
    assert holds["holds_up_to"] == 256 and holds["first_miss"] is None
    assert where_it_stops(holds) == "the square-root rule holds at every batch size (within x2)"


def test_local_slopes_are_between_neighbours_in_ascending_order():
    slopes = local_slopes([64, 16, 32], [0.04, 0.01, 0.02])
    assert slopes[0] is None and slopes[1:] == [pytest.approx(1.0), pytest.approx(1.0)]


def test_the_module_examples_run():
    result = doctest.testmod(powerlaw)
    assert result.attempted >= 3 and result.failed == 0
