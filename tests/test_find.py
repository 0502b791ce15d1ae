"""find_lr: the sweep, its stops, and a restore of everything it touched, whatever happens."""

import math
import random

import numpy as np
import pytest
import torch
import user_tasks
from torch import nn
from torch.nn import functional as F

from lrkit.find import FindResult, find_lr
from lrkit.schedules import Driver
from lrkit.tasks import tensor_loader
from lrkit.train.snapshot import RNGState

pytestmark = pytest.mark.usefixtures("one_thread")


FAST = {"start": 1e-5, "end": 10.0, "steps": 30, "progress": False}


def data(n=128, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long()
    return x, y


def parts(optimizer="adam", batches=8):
    """A tiny model with BatchNorm and Dropout, an optimizer with state, and a loader."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(6, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.1), nn.Linear(16, 2)
    )
    x, y = data(16 * batches)
    loader = tensor_loader(x, y, batch_size=16, shuffle=True)
    if optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        F.cross_entropy(model(x), y).backward()  # state and grads present before the sweep
        opt.step()
    else:
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    return model, opt, loader


def fingerprint(model, opt):
    """Every tensor the sweep may touch, cloned: params, buffers, grads, optimizer state."""
    out = {k: v.detach().clone() for k, v in model.state_dict().items()}
    out.update(
        {f"{k}.grad": p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}
    )
    for i, state in enumerate(opt.state.values()):
        out.update({f"opt.{i}.{k}": v.clone() for k, v in state.items()})
    out["groups"] = [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]
    out["training"] = [m.training for m in model.modules()]
    return out


def assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], torch.Tensor):
            assert torch.equal(a[k], b[k]), k
        else:
            assert a[k] == b[k], k


def draws():
    return torch.rand(4).tolist(), np.random.rand(4).tolist(), random.random()


def failing_at(k, error):
    """A step function that raises ``error`` at its call number ``k``."""
    calls = {"n": 0}

    def step_fn(model, batch):
        calls["n"] += 1
        if calls["n"] == k:
            raise error
        x, y = batch
        return F.cross_entropy(model(x), y)

    return step_fn


# -- restore ------------------------------------------------------------------------------------


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
@pytest.mark.parametrize("outcome", ["success", "raises", "interrupted"])
def test_everything_is_restored_bitwise(optimizer, outcome):
    model, opt, loader = parts(optimizer)
    model.eval()  # a mode the sweep changes
    before = fingerprint(model, opt)
    rng = RNGState.take()
    expected = draws()
    rng.restore()
    if outcome == "success":
        find_lr(model, opt, loader, criterion=F.cross_entropy, **FAST)
    else:
        error = RuntimeError("boom") if outcome == "raises" else KeyboardInterrupt()
        with pytest.raises(type(error)):
            find_lr(model, opt, loader, step_fn=failing_at(12, error), **FAST)
    assert_same(fingerprint(model, opt), before)
    assert draws() == expected
    if optimizer == "sgd":
        assert len(opt.state) == 0


def test_the_sweep_changed_what_is_restored():
    """The restore test above means something: the sweep really moves the weights."""
    model, opt, loader = parts()
    seen = []

    def step_fn(model, batch):
        seen.append(model[0].weight.detach().clone())
        x, y = batch
        return F.cross_entropy(model(x), y)

    find_lr(model, opt, loader, step_fn=step_fn, **FAST)
    assert not torch.equal(seen[0], seen[-1])
    assert torch.equal(model[0].weight, seen[0])


def test_driver_state_is_restored():
    model, opt, loader = parts("sgd")
    driver = Driver(opt, "warmup(10) >> cosine(to=0.1)", total_steps=100)
    state = driver.state_dict()
    find_lr(model, opt, loader, criterion=F.cross_entropy, scheduler=driver, **FAST)
    assert driver.state_dict() == state and opt.param_groups[0]["lr"] == 0.0


def test_a_loss_that_is_not_a_scalar_raises_and_restores():
    model, opt, loader = parts()
    before = fingerprint(model, opt)
    with pytest.raises(ValueError, match=r"scalar tensor, got shape \(16,\)"):
        find_lr(
            model,
            opt,
            loader,
            criterion=lambda out, y: F.cross_entropy(out, y, reduction="none"),
            **FAST,
        )
    assert_same(fingerprint(model, opt), before)


# -- the curve -----------------------------------------------------------------------------------


def test_a_curve_with_nan_is_cut_before_the_nan():
    model, opt, loader = parts()
    calls = {"n": 0}

    def step_fn(model, batch):
        calls["n"] += 1
        x, y = batch
        loss = F.cross_entropy(model(x), y)
        return loss * math.nan if calls["n"] == 20 else loss

    result = find_lr(model, opt, loader, step_fn=step_fn, stop_factor=math.inf, **FAST)
    assert len(result.lrs) == len(result.raw_losses) == 19
    assert np.isfinite(result.losses).all() and np.isfinite(result.raw_losses).all()
    assert "nan" in result.stop_reason and result.steps_run == 19


def test_a_loss_not_finite_at_the_first_step_gives_low_confidence():
    model, opt, loader = parts()
    result = find_lr(model, opt, loader, step_fn=lambda m, b: m(b[0]).sum() * math.inf, **FAST)
    assert not result.confidence.ok and result.confidence.reason == "diverged at once"
    assert result.lr is None and len(result.lrs) == 0


def test_a_loss_that_does_not_depend_on_the_parameters_gives_low_confidence():
    model, opt, loader = parts()
    result = find_lr(model, opt, loader, step_fn=lambda m, b: torch.tensor(1.0), **FAST)
    assert not result.confidence.ok and result.lr is None
    assert "no gradients" in result.confidence.detail


def test_a_zero_gradient_model_gives_low_confidence():
    model, opt, loader = parts()
    result = find_lr(model, opt, loader, step_fn=lambda m, b: (m(b[0]) * 0.0).sum() + 2.0, **FAST)
    assert np.allclose(result.losses, 2.0)
    assert not result.confidence.ok and result.confidence.reason == "no descent"
    assert result.lr is None


def test_divergence_stops_the_sweep():
    model, opt, loader = parts("sgd")
    result = find_lr(
        model,
        opt,
        loader,
        criterion=F.cross_entropy,
        start=1e-3,
        end=1e4,
        steps=100,
        progress=False,
    )
    assert result.steps_run < 100 and result.stop_reason.startswith("diverged")
    assert result.losses[-1] > 4 * result.losses.min()


def test_exp_and_linear_spacing():
    model, opt, loader = parts("sgd")
    kw = {"criterion": F.cross_entropy, "start": 1e-4, "end": 1e-2, "steps": 11, "progress": False}
    exp = find_lr(model, opt, loader, **kw)
    linear = find_lr(model, opt, loader, mode="linear", **kw)
    assert np.allclose(exp.lrs, np.geomspace(1e-4, 1e-2, 11))
    assert np.allclose(linear.lrs, np.linspace(1e-4, 1e-2, 11))


def test_the_smoothed_loss_is_a_bias_corrected_moving_average():
    model, opt, loader = parts()
    result = find_lr(
        model, opt, loader, criterion=F.cross_entropy, smooth=0.9, stop_factor=math.inf, **FAST
    )
    avg, expected = 0.0, []
    for i, raw in enumerate(result.raw_losses):
        avg = 0.9 * avg + 0.1 * raw
        expected.append(avg / (1 - 0.9 ** (i + 1)))
    assert np.allclose(result.losses, expected)
    assert math.isclose(result.losses[0], result.raw_losses[0], rel_tol=1e-12)


def test_a_loader_of_3_batches_is_cycled_for_100_steps():
    model, opt, loader = parts(batches=3)
    seen = []

    def step_fn(model, batch):
        seen.append(batch[0][0, 0].item())
        return F.cross_entropy(model(batch[0]), batch[1])

    result = find_lr(
        model, opt, loader, step_fn=step_fn, start=1e-6, end=1e-3, steps=100, progress=False
    )
    assert len(loader) == 3 and len(seen) == 100 and result.steps_run == 100


def test_an_empty_loader_raises():
    model, opt, _ = parts()
    with pytest.raises(ValueError, match="no batches"):
        find_lr(model, opt, [], criterion=F.cross_entropy, **FAST)


def test_a_loader_that_is_a_one_shot_iterator_raises_saying_so():
    model, opt, loader = parts()
    before = fingerprint(model, opt)
    with pytest.raises(ValueError, match=r"ran out after 8 batches .* can be read once"):
        find_lr(model, opt, iter(loader), criterion=F.cross_entropy, **FAST)
    assert_same(fingerprint(model, opt), before)


def test_two_param_groups_keep_their_ratio():
    model, _, loader = parts()
    opt = torch.optim.SGD(
        [
            {"params": model[0].parameters(), "lr": 0.01},
            {"params": model[4].parameters(), "lr": 0.1},
        ],
        lr=0.1,
    )
    ratios = []

    def step_fn(model, batch):
        groups = opt.param_groups
        ratios.append(groups[1]["lr"] / groups[0]["lr"])
        return F.cross_entropy(model(batch[0]), batch[1])

    result = find_lr(model, opt, loader, step_fn=step_fn, **FAST)
    assert np.allclose(ratios, 10.0)
    assert np.allclose(result.group_lrs[1], result.lrs)  # the larger group's lr is reported
    assert np.allclose(np.array(result.group_lrs[1]) / np.array(result.group_lrs[0]), 10.0)
    assert [g["lr"] for g in opt.param_groups] == [0.01, 0.1]


def test_accumulate_2_reads_two_batches_per_update():
    model, opt, loader = parts()
    calls = []

    def step_fn(model, batch):
        calls.append(1)
        return F.cross_entropy(model(batch[0]), batch[1])

    result = find_lr(
        model, opt, loader, step_fn=step_fn, accumulate=2, stop_factor=math.inf, **FAST
    )
    assert result.steps_run == 30 and len(calls) == 60


def test_bf16_autocast_runs_on_the_cpu():
    model, opt, loader = parts()
    dtypes = []

    def step_fn(model, batch):
        out = model(batch[0])
        dtypes.append(out.dtype)
        return F.cross_entropy(out.float(), batch[1])

    result = find_lr(model, opt, loader, step_fn=step_fn, autocast="bf16", **FAST)
    assert set(dtypes) == {torch.bfloat16} and np.isfinite(result.losses).all()
    assert model[0].weight.dtype == torch.float32


def test_dict_batches_through_a_step_function():
    x, y = data()
    batches = [{"input": x[i : i + 16], "label": y[i : i + 16]} for i in range(0, 128, 16)]
    model = nn.Linear(6, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    result = find_lr(
        model, opt, batches, step_fn=lambda m, b: F.cross_entropy(m(b["input"]), b["label"]), **FAST
    )
    assert len(result.lrs) > 5 and np.isfinite(result.losses).all()


def test_a_validation_loss_every_10_steps():
    model, opt, loader = parts()
    x, y = data(64, seed=1)
    val = tensor_loader(x, y, batch_size=16)
    result = find_lr(
        model,
        opt,
        loader,
        criterion=F.cross_entropy,
        val_loader=val,
        val_every=10,
        val_batches=2,
        stop_factor=math.inf,
        **FAST,
    )
    assert result.val["steps"] == [9, 19, 29]
    assert np.allclose(result.val["lrs"], result.lrs[[9, 19, 29]])
    assert all(math.isfinite(v) for v in result.val["losses"])


def test_a_val_loader_alone_gives_a_validation_loss_every_tenth_of_the_sweep():
    model, opt, loader = parts()
    x, y = data(32, seed=1)
    result = find_lr(
        model,
        opt,
        loader,
        criterion=F.cross_entropy,
        stop_factor=math.inf,
        val_loader=tensor_loader(x, y, batch_size=16),
        **FAST,
    )
    assert result.val["steps"] == [2, 5, 8, 11, 14, 17, 20, 23, 26, 29]


def test_a_model_returning_an_output_object_through_a_step_function():
    class Output:
        def __init__(self, loss):
            self.loss = loss

    class HFStyle(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Linear(6, 2)

        def forward(self, input_ids, labels):
            return Output(F.cross_entropy(self.net(input_ids), labels))

    model = HFStyle()
    x, y = data()
    batches = [{"input_ids": x[i : i + 16], "labels": y[i : i + 16]} for i in range(0, 128, 16)]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    result = find_lr(model, opt, batches, step_fn=lambda m, b: m(**b).loss, **FAST)
    assert len(result.lrs) > 5 and np.isfinite(result.losses).all()


def test_seeds_3_give_a_median_curve_and_a_band():
    model, opt, loader = parts()
    result = find_lr(model, opt, loader, criterion=F.cross_entropy, seeds=3, **FAST)
    curves = result.seed_curves
    assert len(curves) == 3 and result.seeds == 3
    n = len(result.lrs)
    stack = np.array([c["losses"][:n] for c in curves])
    assert np.allclose(result.losses, np.median(stack, axis=0))
    low, high = result.band
    assert np.all(low <= result.losses) and np.all(result.losses <= high)
    assert np.any(low < high)  # the seeds really differ
    assert result.steps_run == sum(len(c["lrs"]) for c in curves)


def test_a_task_name_gives_a_sane_confident_suggestion():
    result = find_lr("digits-mlp", start=1e-5, end=10, steps=80, progress=False)
    assert isinstance(result, FindResult)
    assert result.confidence.ok, result.confidence
    assert 1e-3 <= result.lr <= 1.0
    assert result.lr == result.suggestions["lrkit"] and result.rule == "lrkit"


def test_a_task_leaves_the_random_generators_as_they_were():
    rng = RNGState.take()
    expected = draws()
    rng.restore()
    find_lr(user_tasks.tiny(), seeds=2, **FAST)  # builders and seeds 0, 1 seed the generators
    assert draws() == expected


def test_a_task_is_seeded_so_its_sweep_repeats():
    first, second = find_lr(user_tasks.tiny(), **FAST), find_lr(user_tasks.tiny(), **FAST)
    assert np.array_equal(first.raw_losses, second.raw_losses)


def test_a_grad_scaler_is_used_and_restored():
    model, opt, loader = parts()
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**8, growth_interval=1)
    scales = []

    def step_fn(model, batch):
        scales.append(scaler.get_scale())
        return F.cross_entropy(model(batch[0]), batch[1])

    state = scaler.state_dict()
    find_lr(model, opt, loader, step_fn=step_fn, scaler=scaler, **FAST)
    assert scales[1] == 2.0**9  # the sweep's updates went through the scaler
    assert scaler.state_dict() == state


def test_the_rule_argument_chooses_the_lr():
    model, opt, loader = parts("sgd")
    result = find_lr(
        model,
        opt,
        loader,
        criterion=F.cross_entropy,
        rule="minimum",
        start=1e-4,
        end=100,
        steps=60,
        progress=False,
    )
    assert result.rule == "minimum"
    assert result.lr is None or result.lr == result.suggestions["minimum"]


def test_progress_true_shows_a_bar_and_false_prints_nothing(capsys):
    model, opt, loader = parts()
    find_lr(model, opt, loader, criterion=F.cross_entropy, **{**FAST, "progress": True})
    out = capsys.readouterr().out
    assert "find lr Sequential" in out and "30/30" in out
    find_lr(model, opt, loader, criterion=F.cross_entropy, **FAST)
    assert capsys.readouterr().out == ""


# -- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"start": 1.0, "end": 0.1}, r"start must be < end, got start=1.0 and end=0.1"),
        ({"start": 0.0}, r"start must be a finite number > 0, got 0.0"),
        ({"start": -1e-3}, r"start must be a finite number > 0, got -0.001"),
        ({"steps": 3}, r"steps must be a whole number >= 5, got 3"),
        ({"mode": "log"}, r"mode must be 'exp' or 'linear', got 'log'"),
        ({"smooth": 1.0}, r"smooth must be a number in \[0, 1\), got 1.0"),
        ({"smooth": math.nan}, r"smooth must be a number in \[0, 1\), got nan"),
        ({"stop_factor": 1.0}, r"stop_factor must be a number > 1, got 1.0"),
        ({"steps": True}, r"steps must be a whole number >= 5, got True"),
        ({"steps": 10**12}, r"steps must be a whole number in \[5, 1000000\] .*got 1000000000000"),
        ({"stop_factor": math.nan}, r"stop_factor must be a number > 1, got nan"),
        ({"end": math.inf}, r"end must be a finite number > 0, got inf"),
        ({"accumulate": 0}, r"accumulate must be a whole number >= 1, got 0"),
        ({"autocast": "fp8"}, r"autocast must be None, 'bf16' or 'fp16', got 'fp8'"),
        ({"seeds": 0}, r"seeds must be a whole number >= 1, got 0"),
        ({"rule": "stepest"}, r"unknown rule 'stepest'; known: steep"),
        ({"val_every": 5}, r"val_every=5 needs val_loader"),
        ({"criterion": None}, r"needs step_fn=.* or\s+criterion="),
    ],
)
def test_bad_input_raises_naming_the_value_and_leaves_the_model_alone(kwargs, message):
    model, opt, loader = parts()
    before = fingerprint(model, opt)
    settings = {"criterion": F.cross_entropy, "progress": False, **kwargs}
    with pytest.raises(ValueError, match=message):
        find_lr(model, opt, loader, **settings)
    assert_same(fingerprint(model, opt), before)


def test_a_model_without_trainable_parameters_raises():
    model = nn.Linear(3, 1).requires_grad_(False)
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    with pytest.raises(ValueError, match="Linear.*no trainable parameters"):
        find_lr(model, opt, [(torch.zeros(1, 3), torch.zeros(1))], criterion=F.mse_loss)


def test_a_model_without_an_optimizer_raises():
    model = nn.Linear(3, 1)
    with pytest.raises(ValueError, match="optimizer must be a torch.optim.Optimizer, got NoneType"):
        find_lr(model, loader=[], criterion=F.mse_loss)
