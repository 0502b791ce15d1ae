"""Our closed forms give torch's learning rates: ``base_lr * schedule(t)`` equals the lr that a
real ``torch.optim.lr_scheduler`` puts in the optimizer at step ``t``, for 2,000 steps.

Tolerances (relative; measured with torch 2.13 over these 2,000 steps at base lr 0.1):

- 1e-12 where torch computes each lr in closed form: CosineAnnealingWarmRestarts, CyclicLR,
  OneCycleLR with cosine annealing, and the momentum / Adam beta1 of OneCycleLR and CyclicLR.
  Measured: at most 2.3e-15.
- 3e-14 where torch multiplies the lr already in the optimizer, step after step (StepLR,
  MultiStepLR, ConstantLR, ExponentialLR, PolynomialLR, LinearLR, CosineAnnealingLR): the
  rounding errors of the chained products add up. Measured: at most 2.0e-14 (LinearLR from 1
  down to 0.05), 1.6e-14 for CosineAnnealingLR, 3.5e-15 for ExponentialLR, 4e-16 for StepLR.
- 1e-11 for OneCycleLR with ``anneal_strategy='linear'``: torch writes the line as
  ``(end - start) * pct + start``, which cancels near the end, where the lr is 4e-6 of its
  peak. Measured: 5.9e-12, all of it torch's own rounding error (checked against exact
  rational arithmetic: ours, ``start * (1 - pct) + end * pct``, is within 1e-15).

Deliberate differences, each pinned by a test below:

- torch's CosineAnnealingLR keeps going past ``T_max`` (the lr rises again, a cosine of period
  ``2 * T_max``); ``cosine(steps)`` holds its floor ``to``.
- OneCycleLR raises once stepped past ``total_steps``; ``one_cycle(steps)`` holds its last value.
- Values are multipliers: torch's ``eta_min`` is ``to * base_lr``, CyclicLR's ``base_lr`` and
  ``max_lr`` are ``low * base_lr`` and ``high * base_lr``, OneCycleLR's ``max_lr`` is the base.
"""

from __future__ import annotations

import functools
import math
import warnings

import pytest
import torch
from torch.optim import lr_scheduler as sched

from lrkit.schedules import (
    constant,
    cosine,
    cosine_restarts,
    cyclical,
    exponential,
    linear,
    multistep,
    one_cycle,
    polynomial,
    step,
)

BASE = 0.1
STEPS = 2000
CLOSED = 1e-12
RECURSIVE = 3e-14
TORCH_LINEAR_CANCELS = 1e-11


def torch_run(make, steps=STEPS, optimizer=torch.optim.SGD, **options):
    """Step a real scheduler ``steps`` times; the (lr, momentum or beta1) in use at each step."""
    p = torch.nn.Parameter(torch.zeros(1))
    opt = optimizer([p], lr=BASE, **options)
    scheduler = make(opt)
    lrs, momenta = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning from torch means the test misuses it
        for _ in range(steps):
            group = opt.param_groups[0]
            lrs.append(group["lr"])
            momenta.append(group["betas"][0] if "betas" in group else group.get("momentum"))
            opt.step()
            scheduler.step()
    return lrs, momenta


def ours(schedule, steps=STEPS, base=BASE):
    return [base * schedule(t) for t in range(steps)]


def assert_same(mine, theirs, rel):
    assert len(mine) == len(theirs) >= 1000
    assert mine == pytest.approx(theirs, rel=rel, abs=0.0)


LR_CASES = {
    "StepLR": (lambda o: sched.StepLR(o, step_size=30, gamma=0.1), step(30), RECURSIVE),
    "StepLR gamma 0.5": (
        lambda o: sched.StepLR(o, 100, gamma=0.5),
        step(100, gamma=0.5),
        RECURSIVE,
    ),
    "MultiStepLR": (
        lambda o: sched.MultiStepLR(o, milestones=[100, 700, 1500], gamma=0.1),
        multistep([100, 700, 1500]),
        RECURSIVE,
    ),
    "ConstantLR": (
        lambda o: sched.ConstantLR(o, factor=0.25, total_iters=700),
        constant(0.25, 700) >> constant(1.0),
        RECURSIVE,
    ),
    "ExponentialLR": (lambda o: sched.ExponentialLR(o, 0.998), exponential(0.998), RECURSIVE),
    "PolynomialLR power 1": (
        lambda o: sched.PolynomialLR(o, total_iters=1500, power=1.0),
        polynomial(1500),
        RECURSIVE,
    ),
    "PolynomialLR power 2": (
        lambda o: sched.PolynomialLR(o, total_iters=1500, power=2.0),
        polynomial(1500, power=2.0),
        RECURSIVE,
    ),
    "LinearLR up": (
        lambda o: sched.LinearLR(o, start_factor=0.01, end_factor=1.0, total_iters=1500),
        linear(1500, start=0.01, to=1.0),
        RECURSIVE,
    ),
    "LinearLR down": (
        lambda o: sched.LinearLR(o, start_factor=1.0, end_factor=0.05, total_iters=1500),
        linear(1500, start=1.0, to=0.05),
        RECURSIVE,
    ),
    "CosineAnnealingLR": (
        lambda o: sched.CosineAnnealingLR(o, T_max=STEPS, eta_min=0.01 * BASE),
        cosine(STEPS, to=0.01),
        RECURSIVE,
    ),
    "CosineAnnealingLR eta_min 0": (
        lambda o: sched.CosineAnnealingLR(o, T_max=STEPS),
        cosine(STEPS),
        RECURSIVE,
    ),
    "CosineAnnealingWarmRestarts T_mult 1": (
        lambda o: sched.CosineAnnealingWarmRestarts(o, T_0=300, T_mult=1, eta_min=0.01 * BASE),
        cosine_restarts(300, to=0.01),
        CLOSED,
    ),
    "CosineAnnealingWarmRestarts T_mult 2": (
        lambda o: sched.CosineAnnealingWarmRestarts(o, T_0=50, T_mult=2),
        cosine_restarts(50, mult=2),
        CLOSED,
    ),
    "CyclicLR triangular": (
        lambda o: sched.CyclicLR(
            o, 0.1 * BASE, BASE, step_size_up=200, step_size_down=300, cycle_momentum=False
        ),
        cyclical(200, 300, low=0.1),
        CLOSED,
    ),
    "CyclicLR triangular2": (
        lambda o: sched.CyclicLR(
            o, 0.1 * BASE, BASE, step_size_up=250, mode="triangular2", cycle_momentum=False
        ),
        cyclical(250, low=0.1, mode="triangular2"),
        CLOSED,
    ),
    "CyclicLR exp_range": (
        lambda o: sched.CyclicLR(
            o, 0.1 * BASE, BASE, 250, mode="exp_range", gamma=0.999, cycle_momentum=False
        ),
        cyclical(250, low=0.1, mode="exp_range", gamma=0.999),
        CLOSED,
    ),
}


@pytest.mark.parametrize("case", LR_CASES, ids=str)
def test_lr_equals_torch_scheduler(case):
    make, schedule, rel = LR_CASES[case]
    lrs, _ = torch_run(make)
    assert_same(ours(schedule), lrs, rel)


ONE_CYCLE = [
    ("cos", False, CLOSED),
    ("linear", False, TORCH_LINEAR_CANCELS),
    ("cos", True, CLOSED),
    ("linear", True, TORCH_LINEAR_CANCELS),
]
OPTIMIZERS = {
    "SGD momentum": (torch.optim.SGD, {"momentum": 0.9}),
    "Adam beta1": (torch.optim.Adam, {}),
}


@functools.cache
def _one_cycle_pair(anneal, three_phase, optimizer):
    """torch's (lrs, momenta) for OneCycleLR, and our one_cycle with the same settings."""
    opt_cls, options = OPTIMIZERS[optimizer]

    def make(o):
        return sched.OneCycleLR(
            o, max_lr=BASE, total_steps=STEPS, anneal_strategy=anneal, three_phase=three_phase
        )

    schedule = one_cycle(STEPS, anneal=anneal, three_phase=three_phase)
    return torch_run(make, optimizer=opt_cls, **options), schedule


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("anneal, three_phase, rel", ONE_CYCLE)
def test_one_cycle_lr_equals_torch(anneal, three_phase, rel, optimizer):
    (lrs, _), schedule = _one_cycle_pair(anneal, three_phase, optimizer)
    assert_same(ours(schedule), lrs, rel)


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("anneal, three_phase, rel", ONE_CYCLE)
def test_one_cycle_momentum_equals_torch(anneal, three_phase, rel, optimizer):
    (_, momenta), schedule = _one_cycle_pair(anneal, three_phase, optimizer)
    assert_same(ours(schedule.momentum(low=0.85, high=0.95), base=1.0), momenta, CLOSED)


def test_one_cycle_peak_and_ends_are_where_torch_puts_them():
    (lrs, _), schedule = _one_cycle_pair("cos", False, "SGD momentum")
    peak = round(0.3 * STEPS) - 1
    assert max(range(STEPS), key=lrs.__getitem__) == peak
    assert schedule(peak) == 1.0
    assert schedule(STEPS - 1) == pytest.approx(1 / 25 / 1e4, rel=1e-15)


def test_cyclical_momentum_equals_torch():
    def make(o):
        return sched.CyclicLR(o, 0.1 * BASE, BASE, step_size_up=200, step_size_down=300)

    _, momenta = torch_run(make, momentum=0.9)
    momentum = cyclical(200, 300, low=0.1).momentum(low=0.8, high=0.9)
    assert_same(ours(momentum, base=1.0), momenta, CLOSED)


def test_cosine_holds_its_floor_where_torch_rises_again():
    n = 1000
    lrs, _ = torch_run(lambda o: sched.CosineAnnealingLR(o, T_max=n), steps=2 * n + 1)
    schedule = cosine(n)
    assert lrs[2 * n] == pytest.approx(BASE)  # torch: back at the top after 2 * T_max
    assert BASE * schedule(2 * n) == 0.0 == BASE * schedule(n)  # ours: holds the floor


def test_one_cycle_holds_where_torch_refuses_to_step():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=BASE, momentum=0.9)
    scheduler = sched.OneCycleLR(opt, max_lr=BASE, total_steps=10)
    for _ in range(10):
        opt.step()
        scheduler.step()
    with pytest.raises(ValueError, match="Tried to step"):
        opt.step()
        scheduler.step()
    schedule = one_cycle(10)
    assert schedule(10) == schedule(50) == schedule(9) == pytest.approx(1 / 25 / 1e4)


def test_each_param_group_gets_its_own_base_lr_times_the_same_multiplier():
    groups = [torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))]
    opt = torch.optim.SGD(
        [{"params": [groups[0]], "lr": 0.1}, {"params": [groups[1]], "lr": 0.003}]
    )
    scheduler = sched.OneCycleLR(opt, max_lr=[0.1, 0.003], total_steps=1000)
    schedule = one_cycle(1000)
    for t in range(1000):
        lrs = [g["lr"] for g in opt.param_groups]
        assert lrs == pytest.approx([0.1 * schedule(t), 0.003 * schedule(t)], rel=CLOSED, abs=0)
        opt.step()
        scheduler.step()


def test_a_growing_exponential_holds_at_its_steps_where_torchs_grows_until_it_overflows():
    lrs, _ = torch_run(lambda o: sched.ExponentialLR(o, gamma=2.0), steps=1100)
    assert lrs[1099] == math.inf  # torch: the lr overflows after about 1,024 steps
    schedule = exponential(2.0, steps=30)
    assert [BASE * schedule(t) for t in range(31)] == pytest.approx(lrs[:31], rel=RECURSIVE)
    assert schedule(1099) == schedule(30) == 2.0**30  # ours: holds from its steps on
    with pytest.raises(ValueError, match="grows past 1e\\+12 at step 40"):
        exponential(2.0)  # without steps: refused when built


def test_linear_may_start_at_zero_where_torchs_start_factor_must_be_above_zero():
    p = torch.nn.Parameter(torch.zeros(1))
    with pytest.raises(ValueError, match="greater than 0"):
        sched.LinearLR(torch.optim.SGD([p], lr=BASE), start_factor=0.0)
    assert linear(10, start=0.0, to=1.0)(5) == 0.5


def test_cyclical_leaves_momentum_alone_unless_asked_where_torchs_cycles_it_by_default():
    from lrkit.schedules import Driver

    _, momenta = torch_run(
        lambda o: sched.CyclicLR(o, 0.01, 0.1, step_size_up=10), 11, momentum=0.9
    )
    assert momenta[10] == pytest.approx(0.8)  # torch: cycle_momentum=True by default
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=BASE, momentum=0.9)
    driver = Driver(opt, cyclical(10, low=0.1), count="calls")
    for _ in range(10):
        driver.step()
    assert opt.param_groups[0]["momentum"] == 0.9
