"""find_lr with fp16 autocast and a GradScaler, on the CPU (torch autocasts to fp16 there too,
with real fp16 overflows): the scaler is used, restored, and skipped steps do not break the
curve."""

import math

import numpy as np
import pytest
import torch
from test_find import assert_same, draws, fingerprint, parts
from torch import nn
from torch.nn import functional as F

from lrkit.find import find_lr
from lrkit.train.snapshot import RNGState

pytestmark = pytest.mark.usefixtures("one_thread")

SWEEP = {"start": 1e-4, "end": 10.0, "steps": 60, "progress": False}


def recording(scaler=None, dtypes=None):
    """A step function that notes the scaler's scale (and the output's dtype) at each call."""
    scales = []

    def step_fn(model, batch):
        if scaler is not None:
            scales.append(scaler.get_scale())
        out = model(batch[0])
        if dtypes is not None:
            dtypes.append(out.dtype)
        return F.cross_entropy(out, batch[1])

    return step_fn, scales


def test_fp16_autocast_runs_on_the_cpu_and_suggests_an_lr():
    model, opt, loader = parts("sgd")
    dtypes = []
    step_fn, _ = recording(dtypes=dtypes)
    result = find_lr(model, opt, loader, step_fn=step_fn, autocast="fp16", **SWEEP)
    assert set(dtypes) == {torch.float16} and np.isfinite(result.losses).all()
    assert result.confidence.ok and 1e-3 < result.lr < 1
    assert model[0].weight.dtype == torch.float32


def test_fp16_suggests_about_what_fp32_does():
    fp32 = find_lr(*parts("sgd"), criterion=F.cross_entropy, **SWEEP)
    fp16 = find_lr(*parts("sgd"), criterion=F.cross_entropy, autocast="fp16", **SWEEP)
    assert 0.5 < fp16.lr / fp32.lr < 2


def test_fp16_restores_model_optimizer_and_random_generators():
    model, opt, loader = parts()  # Adam with state and grads, BatchNorm, Dropout
    before = fingerprint(model, opt)
    rng = RNGState.take()
    expected = draws()
    rng.restore()
    find_lr(model, opt, loader, criterion=F.cross_entropy, autocast="fp16", **SWEEP)
    assert_same(before, fingerprint(model, opt))
    assert draws() == expected


def test_a_given_scaler_is_the_one_used():
    model, opt, loader = parts("sgd")
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**8, growth_interval=1)
    step_fn, scales = recording(scaler)
    find_lr(model, opt, loader, step_fn=step_fn, autocast="fp16", scaler=scaler, **SWEEP)
    assert scales[:3] == [2.0**8, 2.0**9, 2.0**10]  # each good update grew it


def test_a_given_scaler_gets_its_scale_and_growth_tracker_back():
    model, opt, loader = parts("sgd")
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10, growth_interval=5)
    for x, y in list(loader)[:3]:  # three good steps, as mid-training: growth tracker 3
        opt.zero_grad()
        with torch.autocast("cpu", dtype=torch.float16):
            loss = F.cross_entropy(model(x), y)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
    state = scaler.state_dict()
    assert (state["scale"], state["_growth_tracker"]) == (2.0**10, 3)
    step_fn, scales = recording(scaler)
    find_lr(model, opt, loader, step_fn=step_fn, autocast="fp16", scaler=scaler, **SWEEP)
    assert max(scales) > 2.0**10  # the sweep grew the scale
    assert scaler.state_dict() == state


def test_overflows_at_the_start_skip_updates_and_the_curve_goes_on():
    model, opt, loader = parts("sgd")
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**24)  # fp16 gradients overflow
    step_fn, scales = recording(scaler)
    result = find_lr(model, opt, loader, step_fn=step_fn, autocast="fp16", scaler=scaler, **SWEEP)
    backoffs = sum(b < a for a, b in zip(scales, scales[1:]))
    assert backoffs >= 3  # that many updates were skipped
    assert len(result.lrs) == 60 and np.isfinite(result.losses).all()
    plain = find_lr(*parts("sgd"), criterion=F.cross_entropy, autocast="fp16", **SWEEP)
    assert result.confidence.ok and 0.5 < result.lr / plain.lr < 2


def test_overflows_on_every_step_apply_no_update_and_suggest_no_lr():
    model, opt, loader = parts("sgd")
    before = fingerprint(model, opt)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**100, backoff_factor=0.999)
    step_fn, _ = recording()
    weights = []

    def watching(m, b):
        weights.append(m[0].weight.detach().clone())
        return step_fn(m, b)

    result = find_lr(model, opt, loader, step_fn=watching, autocast="fp16", scaler=scaler, **SWEEP)
    assert all(torch.equal(weights[0], w) for w in weights)  # no update was applied
    assert len(result.lrs) == 60 and np.isfinite(result.raw_losses).all()
    assert result.lr is None and not result.confidence.ok  # a flat curve: no descent
    assert_same(before, fingerprint(model, opt))


class Made(torch.amp.GradScaler):
    """A GradScaler that notes every instance; starts high, so the first updates overflow."""

    made: list["Made"] = []

    def __init__(self, device="cuda", init_scale=2.0**24, **kwargs):
        super().__init__(device, init_scale=init_scale, **kwargs)
        self.device = device
        Made.made.append(self)


def scale_noting(monkeypatch):
    """``(model, opt, loader, step_fn, scales)``: GradScaler is :class:`Made`, and ``step_fn``
    notes the scale of the one find_lr makes at every step in ``scales``."""
    monkeypatch.setattr(torch.amp, "GradScaler", Made)
    Made.made.clear()
    model, opt, loader = parts("sgd")
    scales = []

    def step_fn(m, b):
        scales.append(Made.made[0].get_scale())
        return F.cross_entropy(m(b[0]), b[1])

    return model, opt, loader, step_fn, scales


def test_without_a_scaler_fp16_makes_one_for_the_models_device(monkeypatch):
    model, opt, loader, step_fn, scales = scale_noting(monkeypatch)
    find_lr(model, opt, loader, step_fn=step_fn, autocast="fp16", **SWEEP)
    assert [s.device for s in Made.made] == ["cpu"]
    assert scales[0] == 2.0**24 and min(scales) < 2.0**24  # its steps went through it


def test_each_seed_starts_from_the_scale_the_sweep_started_with(monkeypatch):
    model, opt, loader, step_fn, scales = scale_noting(monkeypatch)
    settings = {**SWEEP, "end": 1e-2, "stop_factor": math.inf}  # every sweep runs 60 steps
    find_lr(model, opt, loader, step_fn=step_fn, autocast="fp16", seeds=2, **settings)
    assert len(scales) == 120 and scales[60] == scales[0] == 2.0**24 > scales[59]


def test_bf16_needs_no_scaler_and_makes_none(monkeypatch):
    monkeypatch.setattr(torch.amp, "GradScaler", Made)
    Made.made.clear()
    find_lr(*parts("sgd"), criterion=F.cross_entropy, autocast="bf16", **SWEEP)
    assert Made.made == []


def test_autocast_on_a_device_torch_cannot_autocast_on_raises_naming_it():
    model = nn.Linear(6, 2, device="meta")
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    batches = [(torch.randn(4, 6, device="meta"), torch.zeros(4, dtype=torch.long))]
    with pytest.raises(ValueError, match=r"autocast='fp16' needs a device .* on 'meta'"):
        find_lr(model, opt, batches, criterion=F.cross_entropy, autocast="fp16", **SWEEP)
