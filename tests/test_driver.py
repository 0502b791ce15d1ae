"""Driver: one step counter, written into every param group of a torch optimizer."""

from __future__ import annotations

import gc
import math

import pytest
import torch
from torch.optim.lr_scheduler import LRScheduler

from lrkit.schedules import (
    Driver,
    Plateau,
    constant,
    cosine,
    exponential,
    linear,
    plateau,
    sequence,
    warmup,
)


def params(n: int = 2) -> list[torch.nn.Parameter]:
    return [torch.nn.Parameter(torch.ones(3)) for _ in range(n)]


def sgd(lrs=(0.1, 0.01), **kw) -> torch.optim.SGD:
    return torch.optim.SGD(
        [{"params": [p], "lr": lr} for p, lr in zip(params(len(lrs)), lrs)], **kw
    )


def lrs_of(opt) -> list[float]:
    return [g["lr"] for g in opt.param_groups]


def run(opt, driver, steps: int) -> list[list[float]]:
    seen = []
    for _ in range(steps):
        seen.append(lrs_of(opt))
        opt.step()
        driver.step()
    return seen


def test_is_a_torch_lr_scheduler():
    opt = sgd()
    driver = Driver(opt, cosine(10))
    assert isinstance(driver, LRScheduler)
    assert driver.optimizer is opt


def test_lr_is_base_lr_of_each_group_times_the_schedule():
    opt = sgd((0.1, 0.01))
    driver = Driver(opt, warmup(4) >> cosine(to=0.1), total_steps=20)
    s = driver.schedule
    for t, (a, b) in enumerate(run(opt, driver, 20)):
        assert a == 0.1 * s(t) and b == 0.01 * s(t)
        if t:
            assert a / b == pytest.approx(10.0)
    assert driver.last_step == 20
    assert driver.get_last_lr() == [0.1 * s(20), 0.01 * s(20)]
    assert [g["initial_lr"] for g in opt.param_groups] == [0.1, 0.01]


def test_base_lr_one_makes_values_absolute():
    opt = sgd((0.1, 0.01))
    Driver(opt, constant(3e-4), base_lr=1.0)
    assert lrs_of(opt) == [3e-4, 3e-4]


def test_base_lr_per_group():
    opt = sgd((0.1, 0.01))
    Driver(opt, 0.5, base_lr=[2.0, 4.0])
    assert lrs_of(opt) == [1.0, 2.0]


def test_momentum_is_absolute_and_goes_to_momentum_or_beta1():
    opt = sgd(momentum=0.9)
    driver = Driver(opt, 1.0, momentum=linear(10, start=0.95, to=0.85))
    assert [g["momentum"] for g in opt.param_groups] == [0.95, 0.95]
    run(opt, driver, 10)
    assert [g["momentum"] for g in opt.param_groups] == [pytest.approx(0.85)] * 2

    adam = torch.optim.AdamW(params(), lr=1e-3, betas=(0.9, 0.99))
    Driver(adam, 1.0, momentum=0.8)
    assert [g["betas"] for g in adam.param_groups] == [(0.8, 0.99)] * 1


def test_weight_decay_multiplies_each_groups_initial_decay():
    p1, p2 = params()
    opt = torch.optim.SGD(
        [{"params": [p1], "weight_decay": 0.1}, {"params": [p2]}], lr=0.1, weight_decay=0.02
    )
    driver = Driver(opt, 1.0, weight_decay=linear(4, start=1.0, to=0.5))
    run(opt, driver, 4)
    assert [g["weight_decay"] for g in opt.param_groups] == [
        pytest.approx(0.05),
        pytest.approx(0.01),
    ]
    assert [g["initial_weight_decay"] for g in opt.param_groups] == [0.1, 0.02]


def _scaled_step(model, opt, scaler, poison: bool):
    loss = model(torch.ones(4, 3)).sum()
    if poison:
        loss = loss * math.inf  # inf gradients: the scaler must skip optimizer.step()
    scaler.scale(loss).backward()
    scaler.step(opt)
    scaler.update()
    opt.zero_grad()


def test_counts_only_updates_really_applied_with_grad_scaler():
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    driver = Driver(opt, linear(100))
    scaler = torch.amp.GradScaler("cpu")
    applied = []
    for i in range(10):
        before = model.weight.detach().clone()
        _scaled_step(model, opt, scaler, poison=i in (3, 4, 7))
        driver.step()
        applied.append(not torch.equal(before, model.weight))
    assert sum(applied) == 7  # the scaler really skipped three updates
    assert driver.last_step == 7
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1 * (1 - 7 / 100))


def test_count_calls_advances_on_every_step_call_like_torch():
    opt = sgd((0.1,))
    driver = Driver(opt, linear(10), count="calls")
    for _ in range(3):
        driver.step()  # no optimizer.step(): counted anyway
    opt.step()  # not counted
    assert driver.last_step == 3 == driver.last_epoch
    assert opt.param_groups[0]["lr"] == pytest.approx(0.07)


def test_step_without_optimizer_update_does_not_advance_when_counting_applied():
    opt = sgd((0.1,))
    driver = Driver(opt, linear(10))
    driver.step()
    driver.step()
    assert driver.last_step == 0 and opt.param_groups[0]["lr"] == 0.1


def test_holds_the_last_value_past_the_end_by_default():
    opt = sgd((0.1,))
    driver = Driver(opt, cosine(5, to=0.1))
    seen = run(opt, driver, 9)
    assert [a for (a,) in seen[5:]] == [pytest.approx(0.01)] * 4
    assert driver.last_step == 9


def test_after_end_error_raises_once_the_schedule_is_over():
    opt = sgd((0.1,))
    driver = Driver(opt, cosine(5), after_end="error")
    run(opt, driver, 5)  # updates 1..5 use steps 0..4; the counter reaches the length: fine
    with pytest.raises(RuntimeError, match="ended at step 5 but update 6 was applied"):
        opt.step()


def test_unbounded_schedule_never_ends():
    opt = sgd((0.1,))
    driver = Driver(opt, warmup(2) >> constant(0.5), after_end="error")
    run(opt, driver, 50)
    assert driver.end == math.inf and opt.param_groups[0]["lr"] == 0.05


def test_numbers_are_constant_schedules():
    opt = sgd((0.1, 0.2))
    Driver(opt, 0.5)
    assert lrs_of(opt) == [0.05, 0.1]


def test_text_spec_is_parsed():
    opt = sgd((0.1,), momentum=0.9)
    driver = Driver(opt, "warmup(10%) >> cosine", momentum="0.85", total_steps=100)
    assert driver.schedule == (warmup("10%") >> cosine).resolve(total_steps=100)
    assert opt.param_groups[0]["momentum"] == 0.85


def test_text_spec_with_a_syntax_error_is_a_value_error():
    with pytest.raises(ValueError, match="column 15"):
        Driver(sgd(), "warmup(10) >> >> cosine(5)")


def test_lengths_in_epochs_and_fractions_are_resolved_once():
    opt = sgd((0.1,))
    driver = Driver(opt, warmup("1ep") >> cosine("50%"), total_steps=40, steps_per_epoch=10)
    assert repr(driver.schedule) == "warmup(10) >> cosine(20)"
    assert driver.end == 30


@pytest.mark.parametrize(
    "kw, message",
    [
        (dict(after_end="stop"), "after_end must be one of 'hold', 'error'; got 'stop'"),
        (dict(count="epochs"), "count must be one of 'applied', 'calls'; got 'epochs'"),
        (dict(base_lr=[0.1]), "base_lr must be None, a number or a list of 2 numbers"),
        (dict(base_lr=-1.0), "base_lr values must be finite numbers >= 0, got -1.0"),
        (dict(total_steps=0), "total_steps must be a whole number of steps >= 1 (or None), got 0"),
        (
            dict(total_steps="5%"),
            "total_steps must be a whole number of steps >= 1 (or None), got '5%'",
        ),
        (dict(steps_per_epoch=2.5), "steps_per_epoch must be a whole number of steps >= 1"),
    ],
)
def test_bad_arguments_are_named(kw, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Driver(sgd(), cosine(10), **kw)


def test_schedule_taking_the_rest_of_the_run_needs_total_steps():
    with pytest.raises(ValueError, match=r"cosine.*Driver\(total_steps=N\)"):
        Driver(sgd(), warmup(10) >> cosine)
    with pytest.raises(ValueError, match="'5%', a fraction of the run"):
        Driver(sgd(), warmup("5%") >> cosine(100))


def test_momentum_schedule_needs_an_optimizer_with_momentum():
    opt = torch.optim.Adagrad(params(), lr=0.1)
    with pytest.raises(ValueError, match="'momentum' .* or 'betas'.*group 0 has keys"):
        Driver(opt, 1.0, momentum=0.9)


def test_momentum_values_must_be_absolute():
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\).*gives 1.0 at step 0"):
        Driver(sgd(momentum=0.9), 1.0, momentum=cosine(10))


def test_not_an_optimizer_is_a_type_error():
    with pytest.raises(TypeError, match="needs a torch.optim.Optimizer, got list"):
        Driver([], 1.0)


def test_report_without_a_plateau_is_an_error():
    with pytest.raises(ValueError, match="no plateau factor"):
        Driver(sgd(), cosine(10)).report(1.0)


def test_report_feeds_every_plateau_and_rewrites_the_lr_at_once():
    opt = sgd((0.1,))
    driver = Driver(opt, warmup(2) >> cosine(10) * plateau(patience=0, factor=0.5))
    assert [type(p) for p in driver.plateaus] == [Plateau]
    run(opt, driver, 5)
    before = opt.param_groups[0]["lr"]
    driver.report(1.0)
    driver.report(2.0)
    assert opt.param_groups[0]["lr"] == pytest.approx(before * 0.5)
    assert driver.get_last_lr() == [opt.param_groups[0]["lr"]]


def test_step_with_a_metric_matches_reduce_lr_on_plateau():
    # lr 0.5 and factor 0.5 keep every product exact, so the two must agree bit for bit
    kw = dict(patience=2, factor=0.5, cooldown=1, threshold=0.01)
    ours, theirs = sgd((0.5,)), sgd((0.5,))
    driver = Driver(ours, plateau(min_scale=1 / 64, eps=2e-8, **kw))
    ref = torch.optim.lr_scheduler.ReduceLROnPlateau(theirs, min_lr=0.5 / 64, **kw)
    metrics = [1.0 / (1 + i // 9) + 0.05 * math.sin(i) for i in range(200)]
    for m in metrics:
        ours.step()
        theirs.step()
        driver.step(m)  # what Lightning calls for a monitored metric
        ref.step(m)
        assert lrs_of(ours) == lrs_of(theirs)
    assert lrs_of(ours)[0] < 0.5 / 4


def _torch_parity(schedule, make_ref, steps=1000, lrs=(0.1, 0.03)):
    ours, theirs = sgd(lrs), sgd(lrs)
    driver = Driver(ours, schedule, total_steps=steps)
    ref = make_ref(theirs)
    for _ in range(steps):
        assert lrs_of(ours) == pytest.approx(lrs_of(theirs), rel=1e-9, abs=1e-15)
        for opt, sched in ((ours, driver), (theirs, ref)):
            opt.step()
            sched.step()
    return ours


def test_step_lr_equivalent_reproduces_torch():
    staircase = sequence(*[constant(0.1**k, 100) for k in range(10)], constant(1e-10))
    _torch_parity(staircase, lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=100, gamma=0.1))


def test_cosine_annealing_reproduces_torch():
    # torch's eta_min is one absolute floor for every group, so one group here
    _torch_parity(
        cosine(to=0.01),
        lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, 1000, eta_min=0.001),
        lrs=(0.1,),
    )


def test_linear_lr_reproduces_torch():
    _torch_parity(
        linear(300, start=0.25, to=1.0) >> constant(1.0),
        lambda o: torch.optim.lr_scheduler.LinearLR(o, start_factor=0.25, total_iters=300),
    )


def test_state_dict_is_plain_data_and_restores_everything():
    opt = sgd((0.1,))
    spec = warmup(5) >> cosine(50) * plateau(patience=0)
    driver = Driver(opt, spec)
    run(opt, driver, 12)
    driver.report(1.0)
    driver.report(2.0)
    state = driver.state_dict()
    assert state["step"] == 12 and state["plateaus"][0]["scale"] == pytest.approx(0.1)
    assert state["schedule"] == driver.schedule.to_dict()
    plain = (dict, list, str, int, float, type(None))
    stack = [state]
    while stack:
        item = stack.pop()
        assert isinstance(item, plain)
        stack.extend(
            item.values() if isinstance(item, dict) else item if isinstance(item, list) else []
        )

    fresh = sgd((0.1,))
    other = Driver(fresh, spec)
    other.load_state_dict(state)
    assert other.last_step == 12 and lrs_of(fresh) == lrs_of(opt)
    assert other.plateaus[0].state_dict() == driver.plateaus[0].state_dict()


def test_loading_a_state_of_another_schedule_is_refused():
    driver = Driver(sgd(), cosine(50))
    with pytest.raises(ValueError, match=r"saved with schedule cosine\(50\).*runs cosine\(60\)"):
        Driver(sgd(), cosine(60)).load_state_dict(driver.state_dict())


def test_close_and_garbage_collection_remove_the_hook():
    opt = sgd((0.1,))
    driver = Driver(opt, linear(10))
    driver.close()
    opt.step()
    assert driver.last_step == 0 and not opt._optimizer_step_post_hooks
    Driver(opt, linear(10))  # dropped at once
    gc.collect()
    assert not opt._optimizer_step_post_hooks
    opt.step()  # nothing left that would fail


def test_tensor_lrs_are_filled_in_place():
    opt = torch.optim.Adam(params(1), lr=torch.tensor(0.01))
    tensor = opt.param_groups[0]["lr"]
    Driver(opt, 0.5)
    assert opt.param_groups[0]["lr"] is tensor and tensor.item() == pytest.approx(0.005)


def test_a_refused_driver_leaves_the_optimizer_untouched():
    opt = torch.optim.Adagrad(params(), lr=0.1)
    before = [dict(g) for g in opt.param_groups]
    with pytest.raises(ValueError):
        Driver(opt, 0.5, momentum=0.9)
    assert [dict(g) for g in opt.param_groups] == before


def test_count_calls_past_the_end_raises_from_step():
    opt = sgd((0.1,))
    driver = Driver(opt, linear(3), count="calls", after_end="error")
    for _ in range(3):
        driver.step()
    with pytest.raises(RuntimeError, match="ended at step 3 but update 4"):
        driver.step()


def test_step_with_a_metric_when_counting_calls_advances_and_reports():
    opt = sgd((0.1,))
    driver = Driver(opt, plateau(patience=0, factor=0.5), count="calls")
    driver.step(1.0)
    driver.step(2.0)
    assert driver.last_step == 2 and opt.param_groups[0]["lr"] == 0.05


def test_set_base_lrs_rewrites_the_groups_now_and_keeps_the_schedule_shape():
    opt = sgd((0.1, 0.01))
    driver = Driver(opt, cosine(10))
    run(opt, driver, 4)
    driver.set_base_lrs([0.05, 0.005])
    s = driver.schedule
    assert lrs_of(opt) == [0.05 * s(4), 0.005 * s(4)]
    assert run(opt, driver, 2)[1] == [0.05 * s(5), 0.005 * s(5)]
    assert driver.state_dict()["base_lrs"] == [0.05, 0.005]


def test_set_base_lrs_rejects_a_wrong_number_of_groups():
    driver = Driver(sgd((0.1, 0.01)), cosine(10))
    with pytest.raises(ValueError, match=r"a list of 2 numbers .* got \[0.1\]"):
        driver.set_base_lrs([0.1])


# -- finite times endless, torch's wrappers, torch's last_epoch -------------------------------
@pytest.mark.parametrize("count", ["calls", "applied"])
def test_a_finite_times_an_endless_schedule_keeps_changing_past_the_finite_part(count):
    # fails on 21f979a: the driver held the lr from step 4 on (0.0295 at step 6)
    opt = torch.optim.SGD(params(1), lr=0.05)
    driver = Driver(opt, linear(4, start=0.4, to=0.9) * exponential(0.9), count=count)
    seen = run(opt, driver, 8)
    assert seen[6][0] == pytest.approx(0.05 * 0.9 * 0.9**6)  # 0.0239
    assert seen[7][0] < seen[6][0]


@pytest.mark.parametrize("count", ["applied", "calls"])
@pytest.mark.parametrize("first", [True, False], ids=["driver first", "driver second"])
def test_inside_torchs_sequential_lr_the_driver_refuses_and_keeps_its_lr(count, first):
    # fails on 21f979a: a wrong first value, then the driver overwrote the lr past the milestone
    opt = torch.optim.SGD(params(1), lr=0.1)
    driver = Driver(opt, warmup(5) >> constant(1.0), count=count, base_lr=0.1)
    other = torch.optim.lr_scheduler.ExponentialLR(opt, 0.9)
    driver.last_epoch = 0  # ExponentialLR's construction wrote the lr; start clean
    with pytest.raises(ValueError, match="cannot run inside torch's SequentialLR.*>>"):
        torch.optim.lr_scheduler.SequentialLR(
            opt, [driver, other] if first else [other, driver], milestones=[5]
        )
    assert lrs_of(opt) == [0.0] and driver.last_step == 0


@pytest.mark.parametrize("count", ["applied", "calls"])
@pytest.mark.parametrize("first", [True, False], ids=["driver first", "driver second"])
def test_inside_torchs_chained_scheduler_the_driver_refuses_at_the_first_step(count, first):
    opt = torch.optim.SGD(params(1), lr=0.1)
    driver = Driver(opt, warmup(5), count=count)
    other = torch.optim.lr_scheduler.ExponentialLR(opt, 0.9)
    chained = torch.optim.lr_scheduler.ChainedScheduler(
        [driver, other] if first else [other, driver], optimizer=opt
    )
    opt.step()
    with pytest.raises(ValueError, match="cannot run inside torch's ChainedScheduler.*\\*"):
        chained.step()


def test_a_plain_loop_calling_step_is_not_mistaken_for_a_wrapper():
    opt = torch.optim.SGD(params(1), lr=0.1)
    driver = Driver(opt, warmup(5), count="calls")
    for _ in range(3):
        driver.step()
    assert driver.last_step == 3


def test_torchs_last_epoch_argument_is_refused_with_how_to_resume():
    opt = sgd()
    with pytest.raises(ValueError, match=r"last_epoch=9 .*load_state_dict\(state\)"):
        Driver(opt, cosine(100), last_epoch=9)
    assert Driver(opt, cosine(100), last_epoch=-1).last_step == 0  # torch's default: fresh


def test_a_negative_last_epoch_is_refused():
    driver = Driver(sgd(), cosine(100))
    with pytest.raises(ValueError):
        driver.last_epoch = -3


def test_base_lr_too_large_for_a_float_is_refused():
    with pytest.raises(ValueError, match="base_lr values must be finite numbers >= 0"):
        Driver(sgd(), cosine(100), base_lr=10**400)


def test_a_base_lr_whose_product_with_the_schedule_overflows_is_refused():
    with pytest.raises(ValueError, match=r"a base lr of 1e\+300 times the schedule's largest"):
        Driver(sgd(), constant(1e10), base_lr=1e300)
    driver = Driver(sgd(), constant(2.0))
    with pytest.raises(ValueError, match="not a finite lr"):
        driver.set_base_lrs(1e308)
