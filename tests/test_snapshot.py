"""Snapshot: everything a few training steps touch comes back bitwise, in place."""

import random

import numpy as np
import pytest
import torch
from torch import nn

from lrkit.schedules import Driver
from lrkit.train.snapshot import RNGState, Snapshot

pytestmark = pytest.mark.usefixtures("one_thread")


def small_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.1), nn.Linear(8, 2)
    )


def train_steps(model, optimizer, n=3, scaler=None):
    model.train()
    for _ in range(n):
        loss = model(torch.randn(16, 4)).pow(2).mean()
        optimizer.zero_grad()
        (scaler.scale(loss) if scaler else loss).backward()
        if scaler:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()


def tensors(model):
    """Every parameter, buffer and grad of ``model``, cloned, by name."""
    out = {k: v.detach().clone() for k, v in model.state_dict().items()}
    out.update(
        {f"{k}.grad": p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}
    )
    return out


def assert_same(a: dict, b: dict):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def opt_tensors(optimizer):
    return {
        f"{i}.{k}": v.clone() for i, s in enumerate(optimizer.state.values()) for k, v in s.items()
    }


def test_parameters_buffers_and_grads_come_back_bitwise():
    model = small_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    train_steps(model, opt, 1)  # grads and BatchNorm statistics present
    before = tensors(model)
    snap = Snapshot.take(model, opt)
    train_steps(model, opt, 5)
    snap.restore()
    assert_same(tensors(model), before)


def test_restore_keeps_the_same_parameter_objects():
    model = small_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    ids = [id(p) for p in model.parameters()]
    group = opt.param_groups[0]
    snap = Snapshot.take(model, opt)
    train_steps(model, opt)
    snap.restore()
    assert [id(p) for p in model.parameters()] == ids
    assert opt.param_groups[0] is group and [id(p) for p in group["params"]] == ids


def test_grads_that_were_none_are_none_again():
    model = small_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    snap = Snapshot.take(model, opt)
    train_steps(model, opt)
    snap.restore()
    assert all(p.grad is None for p in model.parameters())


def test_adam_state_present_before_comes_back_bitwise():
    model = small_model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    train_steps(model, opt, 2)
    before = opt_tensors(opt)
    snap = Snapshot.take(model, opt)
    train_steps(model, opt, 4)
    snap.restore()
    assert_same(opt_tensors(opt), before)


def test_sgd_without_state_gets_empty_state_again():
    model = small_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    snap = Snapshot.take(model, opt)
    train_steps(model, opt)
    assert len(opt.state) > 0
    snap.restore()
    assert len(opt.state) == 0


def test_param_group_settings_come_back():
    model = small_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    snap = Snapshot.take(model, opt)
    opt.param_groups[0].update(lr=5.0, momentum=0.1, added="x")
    snap.restore()
    group = opt.param_groups[0]
    assert group["lr"] == 0.1 and group["momentum"] == 0.9 and "added" not in group


def test_training_flags_come_back_per_module():
    model = small_model()
    model.train()
    model[1].eval()  # a frozen BatchNorm inside a training model
    snap = Snapshot.take(model)
    model.eval()
    snap.restore()
    assert [m.training for m in model.modules()] == [True, True, False, True, True, True]


def test_a_swapped_buffer_is_put_back():
    model = small_model()
    bn = model[1]
    mean = bn.running_mean
    before = mean.clone()
    snap = Snapshot.take(model)
    bn.running_mean = torch.full_like(mean, 7.0)
    snap.restore()
    assert bn.running_mean is mean and torch.equal(mean, before)


def test_subsequent_random_draws_repeat():
    model = small_model()
    snap = Snapshot.take(model)
    first = (torch.rand(3), np.random.rand(3), random.random())
    snap.restore()
    again = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(first[0], again[0])
    assert np.array_equal(first[1], again[1]) and first[2] == again[2]


def test_rng_state_given_is_the_one_restored():
    rng = RNGState.take()
    expected = torch.rand(2)
    torch.manual_seed(123)  # e.g. a task's builder seeding the generators
    snap = Snapshot.take(small_model(), rng=rng)
    torch.rand(5)
    snap.restore()
    assert torch.equal(torch.rand(2), expected)


def test_driver_state_comes_back():
    model = small_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    driver = Driver(opt, "warmup(10) >> cosine(to=0.1)", total_steps=100)
    train_steps(model, opt, 3)
    state = driver.state_dict()
    snap = Snapshot.take(model, opt, scheduler=driver)
    train_steps(model, opt, 20)
    assert driver.last_step == 23
    snap.restore()
    assert driver.state_dict() == state and opt.param_groups[0]["lr"] == pytest.approx(0.03)


def test_grad_scaler_state_comes_back():
    model = small_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10, growth_interval=1)
    train_steps(model, opt, 1, scaler)
    state = scaler.state_dict()
    snap = Snapshot.take(model, opt, scaler=scaler)
    train_steps(model, opt, 3, scaler)
    assert scaler.state_dict() != state
    snap.restore()
    assert scaler.state_dict() == state


def test_nbytes_is_one_copy_of_model_grads_and_optimizer_state():
    model = nn.Linear(100, 10)
    opt = torch.optim.Adam(model.parameters())
    model(torch.randn(3, 100)).sum().backward()
    opt.step()
    params = sum(p.nbytes for p in model.parameters())
    snap = Snapshot.take(model, opt)
    # params + grads + exp_avg + exp_avg_sq, plus Adam's step counters (4 bytes each)
    assert snap.nbytes == 4 * params + 2 * 4


def test_restore_can_be_repeated():
    model = small_model()
    opt = torch.optim.Adam(model.parameters())
    before = tensors(model)
    snap = Snapshot.take(model, opt)
    for _ in range(2):
        train_steps(model, opt)
        snap.restore()
    assert_same(tensors(model), before)
    assert len(opt.state) == 0


def test_a_tensor_the_optimizer_updates_outside_the_model_comes_back():
    model = small_model()
    extra = torch.ones(3, requires_grad=True)  # e.g. a learned temperature kept by the user
    opt = torch.optim.SGD([*model.parameters(), extra], lr=0.1)
    snap = Snapshot.take(model, opt)
    extra.sum().backward()
    opt.step()
    snap.restore()
    assert torch.equal(extra, torch.ones(3)) and extra.grad is None


def test_take_refuses_what_is_not_a_module():
    with pytest.raises(TypeError, match="nn.Module, got list"):
        Snapshot.take([torch.zeros(2)])
