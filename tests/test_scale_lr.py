"""``lrkit.scale_lr``: the linear and square-root rules, their warmup advice and sources."""

import doctest
import math

import pytest

import lrkit
from lrkit.errors import UserError
from lrkit.schedules import parse, scaling
from lrkit.schedules.scaling import ScaledLr, scale_lr


def test_the_linear_rule_doubles_the_lr_when_the_batch_doubles():
    assert scale_lr(0.1, 32, 64).lr == pytest.approx(0.2)


def test_the_sqrt_rule_multiplies_the_lr_by_root_two_when_the_batch_doubles():
    scaled = scale_lr(1e-3, 32, 64, rule="sqrt")
    assert scaled.lr == pytest.approx(1e-3 * math.sqrt(2))
    assert scaled.factor == pytest.approx(math.sqrt(2))


def test_scaling_down_divides_the_lr_by_the_rule():
    assert scale_lr(0.4, 1024, 256).lr == pytest.approx(0.1)
    assert scale_lr(0.4, 1024, 256, rule="sqrt").lr == pytest.approx(0.2)


@pytest.mark.parametrize("rule", ["linear", "sqrt"])
def test_a_warmup_is_recommended_only_when_the_lr_rises(rule):
    assert scale_lr(0.1, 64, 256, rule=rule).warmup is not None
    assert scale_lr(0.1, 256, 64, rule=rule).warmup is None
    assert scale_lr(0.1, 64, 64, rule=rule).warmup is None


def test_the_recommended_warmup_starts_at_the_old_lr_and_lasts_five_epochs():
    scaled = scale_lr(0.1, 256, 2048)  # x8
    spec = scaled.warmup.split("schedule ", 1)[1].split(" >>")[0]
    warm = parse(spec).resolve(total_steps=1000, steps_per_epoch=10)
    assert "5 epochs" in scaled.warmup and "5ep" in spec
    assert warm(0) * scaled.lr == pytest.approx(0.1)
    assert warm(50) == pytest.approx(1.0) and warm(25) < 1.0


def test_the_result_is_a_float_and_names_its_rule_and_source():
    linear, sqrt = scale_lr(0.1, 16, 32), scale_lr(0.1, 16, 32, rule="SQRT ")
    assert isinstance(linear, ScaledLr) and float(linear) == linear.lr
    assert "Goyal" in linear.source and "1706.02677" in linear.source
    assert sqrt.rule == "sqrt" and "Malladi" in sqrt.source and "2205.10287" in sqrt.source
    assert "0.1" in str(linear) and "batch 32" in str(linear)


def test_scale_lr_is_exported_from_lrkit():
    assert lrkit.scale_lr is scale_lr and lrkit.ScaledLr is ScaledLr


@pytest.mark.parametrize("lr", [math.nan, math.inf, -math.inf, 0, -0.1, "0.1", True, 10**400])
def test_an_lr_that_is_not_a_finite_positive_number_is_refused(lr):
    with pytest.raises(UserError, match="lr must be a finite number > 0"):
        scale_lr(lr, 16, 32)


@pytest.mark.parametrize("batch", [0, -4, 1.5, math.nan, True, "32", None])
def test_a_batch_size_that_is_not_a_whole_number_of_at_least_one_is_refused(batch):
    with pytest.raises(UserError, match="to_batch must be a whole number >= 1"):
        scale_lr(0.1, 16, batch)
    with pytest.raises(UserError, match="from_batch must be a whole number >= 1"):
        scale_lr(0.1, batch, 16)


def test_an_unknown_rule_names_the_rules_accepted():
    with pytest.raises(UserError, match=r"unknown rule 'cube'; known: linear, sqrt"):
        scale_lr(0.1, 16, 32, rule="cube")


def test_a_scaled_lr_beyond_float_range_is_refused():
    with pytest.raises(UserError, match="not finite"):
        scale_lr(1e300, 1, 10**10)


def test_the_module_examples_run():
    result = doctest.testmod(scaling)
    assert result.attempted >= 4 and result.failed == 0
