"""Plateau: a stateful factor that follows torch's ReduceLROnPlateau report for report."""

from __future__ import annotations

import math
import random

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lrkit.schedules import Plateau, cosine, plateau, warmup


def noisy_metric(n: int, seed: int, mode: str) -> list[float]:
    """A loss-like curve: fast progress, then plateaus with noise; mirrored for 'max'."""
    rng = random.Random(seed)
    out = []
    level = 2.0
    for i in range(n):
        if rng.random() < 0.3:
            level *= rng.uniform(0.9, 1.0)
        if i % 40 > 25:
            level *= 1.0005  # drifting up: a stall
        value = level + rng.gauss(0.0, 0.02 * level)
        out.append(round(value, 6) if i % 7 == 0 else value)  # some exact repeats of the best
    return out if mode == "min" else [1.0 - v for v in out]


def torch_plateau(
    lr: float, **kw
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.ReduceLROnPlateau]:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    return opt, torch.optim.lr_scheduler.ReduceLROnPlateau(opt, **kw)


CASES = [
    dict(mode="min", threshold_mode="rel", patience=3, factor=0.5, cooldown=2, min_scale=0.01),
    dict(mode="min", threshold_mode="abs", patience=5, factor=0.3, threshold=0.01, cooldown=0),
    dict(mode="max", threshold_mode="rel", patience=2, factor=0.7, cooldown=4, min_scale=0.05),
    dict(mode="max", threshold_mode="abs", patience=0, factor=0.9, threshold=1e-3, min_scale=0.2),
    dict(mode="min", threshold_mode="rel", patience=1, factor=0.5, eps=0.02, min_scale=0.03),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c['mode']}-{c['threshold_mode']}")
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_scale_equals_torch_lr_report_for_report(case, seed):
    kw = dict(case)
    p = Plateau(**kw)
    min_scale = kw.pop("min_scale", 0.0)
    opt, ref = torch_plateau(1.0, min_lr=min_scale, **kw)
    reductions = 0
    for metric in noisy_metric(600, seed, case["mode"]):
        before = p(0)
        p.report(metric)
        ref.step(metric)
        reductions += p(0) < before
        assert p(0) == opt.param_groups[0]["lr"]
        assert p.state.num_bad == ref.num_bad_epochs
        assert p.state.cooldown_left == ref.cooldown_counter
        assert p.state.best == ref.best
    assert reductions >= 2  # the sequence really exercised the rule


@settings(max_examples=80, deadline=None)
@given(
    config=st.fixed_dictionaries(
        dict(
            factor=st.floats(0.0, 0.99),
            patience=st.integers(0, 4),
            mode=st.sampled_from(["min", "max"]),
            threshold=st.floats(0.0, 0.5),
            threshold_mode=st.sampled_from(["rel", "abs"]),
            cooldown=st.integers(0, 3),
            min_scale=st.floats(0.0, 1.0),
            eps=st.sampled_from([0.0, 1e-8, 0.05]),
        )
    ),
    metrics=st.lists(
        st.floats(-10, 10, allow_nan=False) | st.sampled_from([0.0, 1.0, -1.0]),
        min_size=1,
        max_size=60,
    ),
)
def test_any_settings_and_metrics_follow_torch(config, metrics):
    p = Plateau(**config)
    kw = dict(config)
    opt, ref = torch_plateau(1.0, min_lr=kw.pop("min_scale"), **kw)
    for metric in metrics:
        p.report(metric)
        ref.step(metric)
        assert p.scale == opt.param_groups[0]["lr"]


def test_scale_never_drops_below_min_scale():
    p = plateau(patience=0, factor=0.5, min_scale=0.1)
    for i in range(50):
        p.report(float(i))  # always worse
    assert p(0) == 0.1
    assert p(12345) == 0.1


def test_scale_starts_at_one_and_drops_by_factor_per_stall():
    p = plateau(patience=2, factor=0.1)
    values = []
    for metric in [5, 5, 5, 5, 5, 5, 5, 5]:
        p.report(metric)
        values.append(p.scale)
    # reduce after patience + 1 = 3 bad reports (the first report sets the best)
    assert values == [1.0, 1.0, 1.0, 0.1, 0.1, 0.1, pytest.approx(0.01), pytest.approx(0.01)]


def test_cooldown_ignores_bad_reports():
    p = plateau(patience=0, factor=0.5, cooldown=2)
    for metric in [1.0, 2.0]:
        p.report(metric)
    assert p.scale == 0.5
    p.report(3.0)
    p.report(3.0)
    assert p.scale == 0.5  # two reports of cooldown
    p.report(3.0)
    assert p.scale == 0.25


def test_improvement_must_beat_threshold():
    p = plateau(patience=0, factor=0.5, threshold=0.1, threshold_mode="abs")
    p.report(1.0)
    p.report(0.95)  # better, but not by more than 0.1
    assert p.scale == 0.5
    p.report(0.5)
    assert p.scale == 0.5 and p.state.best == 0.5


def test_reduction_smaller_than_eps_is_ignored():
    p = plateau(patience=0, factor=0.5, min_scale=0.9, eps=0.2)
    p.report(1.0)
    p.report(2.0)
    assert p.scale == 1.0  # 1.0 -> 0.9 changes it by 0.1 <= eps


def test_config_only_in_equality_repr_and_to_dict():
    a, b = plateau(patience=2), plateau(patience=2)
    a.report(1.0)
    a.report(2.0)
    a.report(3.0)
    a.report(4.0)
    assert a.scale < 1.0 == b.scale
    assert a == b and hash(a) == hash(b)
    assert repr(a) == "plateau(patience=2)"
    assert a.to_dict() == {"type": "plateau", "patience": 2}
    assert Plateau.from_dict(a.to_dict()) == a
    assert Plateau.from_dict(a.to_dict()).scale == 1.0


def test_state_dict_round_trip_continues_identically():
    a = plateau(patience=1, factor=0.5, cooldown=1)
    metrics = noisy_metric(200, 3, "min")
    for m in metrics[:100]:
        a.report(m)
    b = plateau(patience=1, factor=0.5, cooldown=1)
    b.load_state_dict(a.state_dict())
    assert b.state_dict() == a.state_dict()
    for m in metrics[100:]:
        assert a.report(m) == b.report(m)


def test_state_dict_is_plain_data():
    p = plateau(mode="max")
    state = p.state_dict()
    assert all(type(v) in (int, float) for v in state.values())
    assert state["best"] == -math.inf and state["scale"] == 1.0


def test_load_state_dict_rejects_other_keys():
    with pytest.raises(ValueError, match="keys scale, best"):
        plateau().load_state_dict({"scale": 0.5})


def test_resolved_copy_has_fresh_state():
    p = plateau(patience=0)
    p.report(1.0)
    p.report(2.0)
    assert p.scale == 0.1
    assert p.resolve(total_steps=10).scale == 1.0


def test_multiplies_into_composed_schedules():
    s = (warmup(10) >> cosine * plateau(patience=0, factor=0.5)).resolve(total_steps=110)
    p = next(n for n in s.walk() if isinstance(n, Plateau))
    before = s(60)
    p.report(1.0)
    p.report(1.0)
    assert s(60) == pytest.approx(before * 0.5)
    assert s(5) == 0.5  # the warmup is not inside the product: untouched
    assert s.length == 110


@pytest.mark.parametrize(
    "metric", [float("nan"), float("inf"), "0.5", None, True, torch.tensor([1.0, 2.0])]
)
def test_report_rejects_non_finite_or_non_numbers(metric):
    with pytest.raises(ValueError, match="finite number"):
        plateau().report(metric)


def test_report_accepts_tensors_and_ints():
    p = plateau(patience=0, factor=0.5)
    p.report(torch.tensor(2.0))
    p.report(3)
    assert p.scale == 0.5 and p.state.best == 2.0


@pytest.mark.parametrize(
    "kw, message",
    [
        (dict(factor=1.0), "factor must be >= 0 and < 1, got 1.0"),
        (dict(factor=-0.1), "factor must be >= 0"),
        (dict(patience=-1), "patience must be a whole number >= 0, got -1"),
        (dict(patience=1.5), "patience must be a whole number"),
        (dict(cooldown=-2), "cooldown must be a whole number >= 0, got -2"),
        (dict(mode="lowest"), "mode must be one of 'min', 'max'; got 'lowest'"),
        (dict(threshold_mode="pct"), "threshold_mode must be one of 'rel', 'abs'"),
        (dict(min_scale=2.0), "min_scale must be between 0 and 1, got 2.0"),
        (dict(threshold=-1e-3), "threshold must be >= 0"),
        (dict(eps=float("nan")), "eps must be a finite number"),
    ],
)
def test_bad_settings_name_the_value(kw, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Plateau(**kw)


def test_text_form_round_trips_through_the_parser():
    from lrkit.schedules import parse

    s = warmup(100) >> cosine * plateau(
        patience=2, mode="max", threshold_mode="abs", min_scale=0.01
    )
    assert parse(repr(s)) == s
    assert isinstance(parse("cosine * plateau(factor=0.5)").parts[1], Plateau)


def test_eps_is_in_units_of_the_base_lr_where_torchs_is_an_absolute_lr():
    # a deliberate difference, documented in the README next to ReduceLROnPlateau
    base = 1e-7
    opt, ref = torch_plateau(base, patience=0, factor=0.5, eps=1e-8)
    p = Plateau(patience=0, factor=0.5, eps=1e-8)
    for metric in [1.0] + [2.0] * 6:
        p.report(metric)
        ref.step(metric)
    assert opt.param_groups[0]["lr"] == pytest.approx(base / 8)  # torch stops: a change < eps
    assert base * p.scale == pytest.approx(base / 64)  # ours: 1e-8 of the base lr is far smaller
