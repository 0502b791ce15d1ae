import math

import pytest

from lrkit.checks import check_lr, describe, is_finite_number, is_number, number, whole


@pytest.mark.parametrize("bad", [True, 1.5, "3", None, -1])
def test_whole_refuses_what_is_not_a_whole_number_at_least_the_bound(bad):
    with pytest.raises(ValueError, match=r"^steps must be a whole number >= 0, got "):
        whole(bad, "steps")


def test_whole_without_a_bound_takes_negative_numbers():
    assert whole(-3, "seed", least=None) == -3


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, 0, -1, True, "1"])
def test_check_lr_refuses_nan_inf_zero_and_non_numbers(bad):
    with pytest.raises(ValueError, match=r"lr must be a finite number > 0, got"):
        check_lr(bad)


def test_number_names_an_interval_with_its_open_ends():
    with pytest.raises(ValueError, match=r"must be a number in \(0, 1\], got 1.5"):
        number(1.5, "factor", low=0, high=1, low_open=True)
    assert number(1, "factor", low=0, high=1, low_open=True) == 1.0
    assert isinstance(number(1, "factor", low=0, high=1), float)


def test_number_takes_inf_only_when_asked():
    with pytest.raises(ValueError, match="finite"):
        number(math.inf, "stop_factor", low=1)
    assert number(math.inf, "stop_factor", low=1, finite=False) == math.inf
    with pytest.raises(ValueError):
        number(math.nan, "stop_factor", low=1, finite=False)


def test_bool_is_not_a_number():
    assert not is_number(True) and is_number(2) and is_number(math.nan)
    assert not is_finite_number(math.inf) and is_finite_number(0.5)
    assert describe(low=0) == "a finite number >= 0"


def test_an_int_beyond_float_range_is_refused_not_an_overflow_error():
    with pytest.raises(ValueError, match="got an integer of 401 digits"):
        number(10**400, "lr", low=0)
    assert not is_finite_number(10**400) and number(10**400, "cap", finite=False) == math.inf


def test_messages_shorten_long_values():
    with pytest.raises(ValueError, match=r"got 'xxxx.*\.\.\.$"):
        number("x" * 10_000, "lr")
