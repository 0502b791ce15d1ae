"""compare's numbers: the 95% t-interval, the separation rule, the target and the time to it."""

import math

import pytest
from scipy import stats as scipy_stats

from lrkit.tune.compare.stats import (
    Summary,
    default_target,
    reach,
    summarize,
    verdict,
)


@pytest.mark.parametrize(
    "values", [[0.9, 0.92, 0.94], [0.5, 0.7], [1.0, 0.97, 0.99, 0.95, 0.96], [3.2, 3.1, 3.6, 2.9]]
)
def test_interval_is_scipys_t_interval(values):
    s = summarize(values)
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    low, high = scipy_stats.t.interval(0.95, n - 1, loc=mean, scale=std / math.sqrt(n))
    assert s.n == n and s.mean == pytest.approx(mean)
    assert s.std == pytest.approx(std)  # the sample std, ddof=1
    assert (s.low, s.high) == pytest.approx((low, high))


def test_one_value_has_no_std_and_no_interval():
    s = summarize([0.9])
    assert s.n == 1 and s.mean == 0.9
    assert math.isnan(s.std) and math.isnan(s.low) and not s.has_interval


def test_diverged_runs_are_left_out_and_counted():
    s = summarize([0.9, math.nan, 0.92])
    assert (s.n, s.diverged) == (2, 1)
    assert s.mean == pytest.approx(0.91)


def _s(mean, half, n=3, diverged=0):
    return Summary(n, mean, half, mean - half, mean + half, diverged)


def test_a_winner_is_named_when_its_interval_is_above_the_runner_ups():
    v = verdict({"a": _s(0.90, 0.01), "b": _s(0.95, 0.01), "c": _s(0.80, 0.05)}, True)
    assert v.winner == "b" and v.tied == ()
    assert v.text.startswith("b wins:") and "runner-up a" in v.text


def test_overlapping_intervals_are_tied_with_the_numbers():
    v = verdict({"a": _s(0.94, 0.02), "b": _s(0.95, 0.02), "c": _s(0.80, 0.01)}, True)
    assert v.winner is None
    assert v.tied == ("b", "a")  # c is separated from the best: not tied
    assert v.text.startswith("tied:") and "0.95" in v.text and "0.94" in v.text


def test_intervals_that_touch_are_tied():
    v = verdict({"a": Summary(3, 0.9, 0.1, 0.8, 0.9), "b": Summary(3, 1.0, 0.1, 0.9, 1.1)}, True)
    assert v.winner is None and v.tied == ("b", "a")


def test_lower_is_better_names_the_lowest_when_separated():
    v = verdict({"a": _s(0.30, 0.01), "b": _s(0.20, 0.01)}, higher_is_better=False)
    assert v.winner == "b" and "below" in v.text


def test_one_seed_names_no_winner_and_says_why():
    v = verdict({"a": _s(0.9, 0.0, n=1), "b": _s(0.5, 0.0, n=1)}, True)
    assert v.winner is None and v.tied == ("a", "b")
    assert "no interval" in v.text and "2 seeds" in v.text and "best by mean: a" in v.text


def test_an_entry_with_a_diverged_seed_cannot_win_and_ranks_below_the_others():
    v = verdict({"a": _s(0.99, 0.001, n=2, diverged=1), "b": _s(0.90, 0.01)}, True)
    assert v.winner == "b"
    assert "diverged" in v.text


def test_every_run_diverged_names_no_winner():
    nan = Summary(0, math.nan, math.nan, math.nan, math.nan, 3)
    assert verdict({"a": nan, "b": nan}, True).winner is None


def test_default_target_is_95_percent_of_the_way_from_worst_initial_to_best_final():
    assert default_target([0.1, 0.2], [0.8, 0.9], True) == pytest.approx(0.1 + 0.95 * 0.8)
    assert default_target([2.0, 3.0], [0.5, 0.4], False) == pytest.approx(3.0 - 0.95 * 2.6)
    assert math.isnan(default_target([math.nan], [0.9], True))


def test_reach_is_the_first_validation_at_or_past_the_target():
    curve = [[10, 0.1, 0.5, 1.0], [20, 0.2, 0.9, 0.5], [30, 0.3, 0.95, 0.4]]
    assert reach(curve, 0.9, True) == (20, 0.2)
    assert reach(curve, 0.99, True) is None
    falling = [[10, 0.1, 2.0, 2.0], [20, 0.2, 0.7, 0.7], [30, 0.3, 0.4, 0.4]]
    assert reach(falling, 0.5, False) == (30, 0.3)  # lower is better: at or below
    assert reach(curve, math.nan, True) is None


def test_the_modules_docstring_examples_run():
    import doctest

    from lrkit.tune.compare import entries, stats

    for module in (stats, entries):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0, module.__name__
