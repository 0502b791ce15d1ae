"""find_lr leaves alone what it was not handed: an attached Driver or torch scheduler, the
optimizer's step hooks (its own and the global ones), after success, an exception or Ctrl-C."""

import warnings

import pytest
import torch
from torch.nn import functional as F
from torch.optim.optimizer import register_optimizer_step_post_hook

from lrkit.find import find_lr
from lrkit.schedules import Driver

pytestmark = pytest.mark.usefixtures("one_thread")

OUTCOMES = ["success", "raises", "interrupted"]
SCHEDULE = "warmup(5%) >> cosine(to=0.01)"


def regression(seed=0):
    """A linear model, an Adam optimizer at lr 3e-3 and three (x, y) batches."""
    torch.manual_seed(seed)
    model = torch.nn.Linear(8, 1)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    data = [(torch.randn(32, 8), torch.randn(32, 1)) for _ in range(3)]
    return model, opt, data


def sweep(model, opt, data, outcome, steps=60):
    """A range test that succeeds, or raises at its 12th batch (RuntimeError or Ctrl-C)."""
    if outcome == "success":
        find_lr(model, opt, data, criterion=F.mse_loss, steps=steps, progress=False)
        return
    error = RuntimeError("boom") if outcome == "raises" else KeyboardInterrupt()
    calls = []

    def step_fn(model, batch):
        calls.append(1)
        if len(calls) == 12:
            raise error
        return F.mse_loss(model(batch[0]), batch[1])

    with pytest.raises(type(error)):
        find_lr(model, opt, data, step_fn=step_fn, steps=steps, progress=False)


def train(model, opt, data, steps, scheduler=None):
    """``steps`` real training steps; the lr each one ran at."""
    lrs = []
    for i in range(steps):
        x, y = data[i % len(data)]
        opt.zero_grad()
        F.mse_loss(model(x), y).backward()
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        if scheduler is not None:
            scheduler.step()
    return lrs


# -- a Driver attached to the optimizer, not passed as scheduler= ------------------------------


@pytest.mark.parametrize("outcome", OUTCOMES)
def test_an_attached_driver_keeps_its_step_and_state(outcome):
    model, opt, data = regression()
    driver = Driver(opt, SCHEDULE, total_steps=200)
    state = driver.state_dict()
    sweep(model, opt, data, outcome)
    assert driver.last_step == 0
    assert driver.state_dict() == state
    assert opt.param_groups[0]["lr"] == 0.0  # the warmup's start


@pytest.mark.parametrize("outcome", OUTCOMES)
def test_training_after_the_sweep_runs_at_the_lrs_it_would_have_without_it(outcome):
    model, opt, data = regression()
    twin_model, twin_opt, twin_data = regression()
    driver = Driver(opt, SCHEDULE, total_steps=200)
    twin = Driver(twin_opt, SCHEDULE, total_steps=200)
    sweep(model, opt, data, outcome)
    lrs = train(model, opt, data, 12)
    assert lrs == train(twin_model, twin_opt, twin_data, 12)
    assert lrs[1] == pytest.approx(3e-4)  # one warmup step of ten: the warmup is not skipped
    assert driver.last_step == twin.last_step == 12
    assert torch.equal(model.weight, twin_model.weight)


def test_a_driver_that_refuses_to_run_past_its_end_lets_a_longer_sweep_run():
    model, opt, data = regression()
    driver = Driver(opt, "linear(10)", after_end="error")  # 10 updates, then RuntimeError
    find_lr(model, opt, data, criterion=F.mse_loss, steps=30, progress=False)
    assert driver.last_step == 0


def test_a_driver_passed_as_scheduler_is_restored_too():
    model, opt, data = regression()
    driver = Driver(opt, SCHEDULE, total_steps=200)
    state = driver.state_dict()
    find_lr(model, opt, data, criterion=F.mse_loss, steps=30, scheduler=driver, progress=False)
    assert driver.state_dict() == state


# -- a torch scheduler attached, not passed ----------------------------------------------------


TORCH_SCHEDULERS = {  # a closed form, a recursive one (it reads the lr now), a lambda
    "one_cycle": lambda opt: torch.optim.lr_scheduler.OneCycleLR(opt, 3e-3, total_steps=200),
    "exponential": lambda opt: torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.9),
    "lambda": lambda opt: torch.optim.lr_scheduler.LambdaLR(opt, lambda t: min(1, (t + 1) / 10)),
}


def torch_scheduler(opt, kind="one_cycle"):
    return TORCH_SCHEDULERS[kind](opt)


@pytest.mark.parametrize("kind", TORCH_SCHEDULERS)
@pytest.mark.parametrize("outcome", OUTCOMES)
def test_an_attached_torch_scheduler_keeps_its_state_and_its_lrs(outcome, kind):
    model, opt, data = regression()
    twin_model, twin_opt, twin_data = regression()
    scheduler, twin = torch_scheduler(opt, kind), torch_scheduler(twin_opt, kind)
    state = scheduler.state_dict()
    sweep(model, opt, data, outcome)
    assert scheduler.state_dict() == state
    assert train(model, opt, data, 8, scheduler) == train(twin_model, twin_opt, twin_data, 8, twin)


def test_an_attached_torch_scheduler_still_sees_that_the_optimizer_never_stepped():
    """torch warns when scheduler.step() comes before the first optimizer.step(); the
    sweep's steps must not count as the user's (torch keeps that in ``opt._opt_called``)."""
    model, opt, data = regression()
    scheduler = torch_scheduler(opt)
    sweep(model, opt, data, "success")
    assert not hasattr(opt, "_opt_called")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scheduler.step()
    assert any("before `optimizer.step()`" in str(w.message) for w in caught)


# -- the optimizer's own step hooks -----------------------------------------------------------


@pytest.mark.parametrize("outcome", OUTCOMES)
def test_a_users_stateful_step_hooks_do_not_see_the_sweep_and_run_again_after_it(outcome):
    model, opt, data = regression()
    seen = {"pre": 0, "post": 0}
    opt.register_step_pre_hook(lambda o, args, kwargs: seen.__setitem__("pre", seen["pre"] + 1))
    opt.register_step_post_hook(lambda o, args, kwargs: seen.__setitem__("post", seen["post"] + 1))
    sweep(model, opt, data, outcome)
    assert seen == {"pre": 0, "post": 0}
    train(model, opt, data, 2)
    assert seen == {"pre": 2, "post": 2}


def test_an_ema_of_the_weights_in_a_post_step_hook_ignores_the_sweep():
    model, opt, data = regression()
    ema = model.weight.detach().clone()

    def update_ema(o, args, kwargs):
        ema.mul_(0.9).add_(model.weight.detach(), alpha=0.1)

    opt.register_step_post_hook(update_ema)
    before = ema.clone()
    find_lr(model, opt, data, criterion=F.mse_loss, steps=30, progress=False)
    assert torch.equal(ema, before)


@pytest.mark.parametrize("outcome", OUTCOMES)
def test_a_global_optimizer_hook_does_not_see_the_sweep_and_runs_again_after_it(outcome):
    model, opt, data = regression()
    seen = []
    handle = register_optimizer_step_post_hook(lambda o, args, kwargs: seen.append(o))
    try:
        sweep(model, opt, data, outcome)
        assert seen == []
        opt.step()
        assert seen == [opt]
    finally:
        handle.remove()


def test_other_optimizers_still_run_the_global_hooks_during_the_sweep():
    model, opt, data = regression()
    other = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    seen = []

    def step_fn(model, batch):
        other.step()
        return F.mse_loss(model(batch[0]), batch[1])

    handle = register_optimizer_step_post_hook(lambda o, args, kwargs: seen.append(o))
    try:
        find_lr(model, opt, data, step_fn=step_fn, steps=10, progress=False)
    finally:
        handle.remove()
    assert seen == [other] * 10


def test_suspended_hooks_alone_puts_every_hook_back_after_an_exception():
    from lrkit.find.isolation import suspended_hooks

    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    seen = []
    opt.register_step_post_hook(lambda o, args, kwargs: seen.append("post"))
    with pytest.raises(RuntimeError, match="boom"), suspended_hooks(opt):
        opt.step()
        raise RuntimeError("boom")
    opt.step()
    assert seen == ["post"]


def test_a_hook_registered_during_the_sweep_stays_and_one_removed_stays_removed():
    model, opt, data = regression()
    removed = opt.register_step_post_hook(lambda o, args, kwargs: None)
    added = []

    def step_fn(model, batch):
        if not added:
            added.append(opt.register_step_post_hook(lambda o, args, kwargs: None))
            removed.remove()
        return F.mse_loss(model(batch[0]), batch[1])

    find_lr(model, opt, data, step_fn=step_fn, steps=10, progress=False)
    assert list(opt._optimizer_step_post_hooks) == [added[0].id]


def test_what_a_step_sets_on_the_optimizer_is_put_back():
    model, opt, data = regression()
    opt.custom = "mine"

    def step_fn(model, batch):
        opt.custom, opt.extra = "sweep", 1
        return F.mse_loss(model(batch[0]), batch[1])

    find_lr(model, opt, data, step_fn=step_fn, steps=10, progress=False)
    assert opt.custom == "mine" and not hasattr(opt, "extra")


def test_the_module_example_runs():
    import doctest

    from lrkit.find import isolation

    result = doctest.testmod(isolation)
    assert result.attempted >= 4 and result.failed == 0
