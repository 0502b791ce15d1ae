"""The guard with a GradScaler in a plain loop, fp16 autocast on the CPU: a scaler's overflow is
not trouble, a NaN loss still is, the scaler stays usable after every skip and rollback, and
overflows that never stop still end the run; under torchrun (real ranks, and the final
validation rule with the ranks emulated) every rank decides alike."""

import doctest
import json
import math
from pathlib import Path

import pytest
import torch
from bounded import TORCHRUN, run_bounded

from lrkit import dist
from lrkit.watch import Guard, GuardExhausted, Watch, amp, guard_messages, readback, rollback

pytestmark = pytest.mark.usefixtures("one_thread")

HIGH = 2.0**24  # a scale far too high for fp16: the first batches overflow


def task(seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(20, 64), torch.nn.ReLU(), torch.nn.Linear(64, 1))
    return model, torch.optim.SGD(model.parameters(), lr=0.01)


def batch():
    x = torch.randn(32, 20)
    return x, x.sum(1, keepdim=True)


def fp16_loss(model, x, y):
    with torch.autocast("cpu", dtype=torch.float16):
        return torch.nn.functional.mse_loss(model(x), y)


def run(guard, model, optimizer, scaler, batches=60, unscale_first=False, fault=None):
    """The documented loop; ``fault(i, loss)`` may change batch i's loss. Returns
    ``(losses, actions)``."""
    losses, actions = [], []
    for i in range(batches):
        loss = fp16_loss(model, *batch())
        if fault is not None:
            loss = fault(i, loss)
        optimizer.zero_grad()
        scaler.scale(loss).backward()
        if unscale_first:
            scaler.unscale_(optimizer)
        action = guard.check(loss, model=model, optimizer=optimizer, scaler=scaler)
        if action == "ok":
            scaler.step(optimizer)
            scaler.update()
            guard.after_step()
        losses.append(loss.item())
        actions.append(action)
    return losses, actions


def trouble(guard):
    return [(e["action"], e["reason"]) for e in guard.events if e["action"] != "snapshot"]


def nan_at(*batches):
    return lambda i, loss: loss * float("nan") if i in batches else loss


# -- overflows are the scaler's ------------------------------------------------------------------
def test_the_documented_scaler_loop_trains_through_overflows_without_rollback_or_lr_cut():
    model, optimizer = task()
    scaler = torch.amp.GradScaler("cpu", init_scale=HIGH)
    guard = Guard(every=5)
    losses, actions = run(guard, model, optimizer, scaler, batches=60)
    assert guard.overflows > 0
    assert trouble(guard) == [] and set(actions) == {"ok"} and guard.rollbacks == 0
    assert optimizer.param_groups[0]["lr"] == 0.01
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 / 4
    assert scaler.get_scale() < HIGH


def test_an_overflow_is_not_an_applied_update_nor_one_towards_a_snapshot():
    model, optimizer = task()
    scaler = torch.amp.GradScaler("cpu", init_scale=HIGH)
    guard = Guard(every=5)
    run(guard, model, optimizer, scaler, batches=30)
    assert guard.step == 30 - guard.overflows
    assert guard.snapshot_step % 5 == 0 and guard.step - guard.snapshot_step < 5


def test_without_overflows_the_scaler_loop_counts_every_update():
    model, optimizer = task()
    scaler = torch.amp.GradScaler("cpu", init_scale=256.0)
    guard = Guard(every=5)
    run(guard, model, optimizer, scaler, batches=20)
    assert guard.overflows == 0 and guard.step == 20


def test_calling_unscale_first_gives_the_same_run():
    results = []
    for unscale_first in (False, True):
        model, optimizer = task()
        scaler = torch.amp.GradScaler("cpu", init_scale=HIGH)
        guard = Guard(every=5)
        losses, _ = run(guard, model, optimizer, scaler, batches=25, unscale_first=unscale_first)
        results.append((losses, guard.overflows, scaler.get_scale()))
    assert results[0] == results[1] and results[0][1] > 0


def test_the_guard_judges_the_unscaled_gradient_norm():
    model, optimizer = task()
    scaler = torch.amp.GradScaler("cpu", init_scale=256.0)
    watch = Watch(model, optimizer, scaler=scaler, guard=Guard(every=5))
    for _ in range(5):
        loss = fp16_loss(model, *batch())
        optimizer.zero_grad()
        scaler.scale(loss).backward()
        if watch.after_backward(loss) == "ok":
            scaler.step(optimizer)
            scaler.update()
        watch.after_step()
    norms = watch.history.get("train/grad_norm")[1]
    model2, _ = task()  # the same model and first batch, without a scaler
    first = fp16_loss(model2, *batch())
    first.backward()
    true = math.hypot(*(p.grad.norm().item() for p in model2.parameters()))
    assert norms[0] == pytest.approx(true, rel=1e-2) and norms.max() < 1e3


def test_a_watch_with_a_scaler_and_a_guard_trains_through_overflows():
    model, optimizer = task()
    scaler = torch.amp.GradScaler("cpu", init_scale=HIGH)
    watch = Watch(model, optimizer, every=5, scaler=scaler, guard=Guard(every=5))
    for _ in range(30):
        loss = fp16_loss(model, *batch())
        optimizer.zero_grad()
        scaler.scale(loss).backward()
        with watch.step(loss) as go:
            if go:
                scaler.step(optimizer)
                scaler.update()
    guard = watch.guard
    assert guard.overflows > 0 and trouble(guard) == [] and guard.step == 30 - guard.overflows
    assert len(watch.history.get("train/grad_norm")[0]) == 30


def test_max_overflows_is_checked():
    with pytest.raises(ValueError, match="max_overflows"):
        Guard(max_overflows=-1)


def test_a_scaler_of_another_type_is_unscaled_once_per_batch():
    class Scaler:  # keeps no per-optimizer stage the guard can read
        def __init__(self):
            self.unscaled = self.updates = 0

        def unscale_(self, optimizer):
            self.unscaled += 1

        def update(self):
            self.updates += 1

        def state_dict(self):
            return {}

    model, optimizer = task()
    scaler, guard = Scaler(), Guard(every=5)
    for i in range(3):
        model(torch.randn(4, 20)).sum().backward()
        guard.check(math.nan if i == 2 else 1.0, model, optimizer, scaler=scaler)
    assert scaler.unscaled == 3 and scaler.updates == 1  # the skip's


# -- trouble with a scaler -----------------------------------------------------------------------
def test_a_nan_loss_with_a_scaler_is_skipped_and_the_next_batch_works():
    model, optimizer = task()
    scaler = torch.amp.GradScaler("cpu", init_scale=256.0)
    guard = Guard(every=5)
    losses, actions = run(guard, model, optimizer, scaler, batches=30, fault=nan_at(20))
    assert actions[20] == "skip" and actions[21:] == ["ok"] * 9
    assert trouble(guard) == [("skip", "loss nan")] and guard.overflows == 0
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_a_nan_loss_with_unscale_first_is_skipped_and_the_next_batch_works():
    model, optimizer = task()
    scaler = torch.amp.GradScaler("cpu", init_scale=HIGH)
    guard = Guard(every=5)
    _, actions = run(guard, model, optimizer, scaler, 30, unscale_first=True, fault=nan_at(20))
    assert actions[20] == "skip" and actions[21:] == ["ok"] * 9


def test_a_rollback_with_a_scaler_restores_its_scale_and_the_next_batch_works():
    model, optimizer = task()
    scaler = torch.amp.GradScaler("cpu", init_scale=256.0)
    guard = Guard(every=5, max_skips=0)
    run(guard, model, optimizer, scaler, batches=10)
    assert guard.snapshot_step == 10  # taken just now, at this scale
    kept = scaler.get_scale()
    scaler.update(new_scale=8.0)
    _, actions = run(guard, model, optimizer, scaler, batches=1, fault=nan_at(0))
    assert actions == ["rollback"] and scaler.get_scale() == kept
    assert amp.stage(scaler, optimizer) == "READY"
    _, actions = run(guard, model, optimizer, scaler, batches=5)
    assert actions == ["ok"] * 5


def test_persistent_overflow_becomes_trouble_after_max_overflows_in_a_row():
    model, optimizer = task()
    model[0].weight.register_hook(lambda g: g * math.inf)  # no scale makes it finite
    scaler = torch.amp.GradScaler("cpu", init_scale=256.0)
    guard = Guard(every=5, max_overflows=4, max_skips=1, max_rollbacks=1)
    with pytest.raises(GuardExhausted, match="overflows in a row") as caught:
        run(guard, model, optimizer, scaler, batches=100)
    # 4 overflows, skip, rollback; 4 overflows, skip, gave up
    assert guard.batch == 12 and guard.overflows == 12
    assert [e["action"] for e in caught.value.events if e["action"] != "snapshot"] == [
        "skip",
        "rollback",
        "skip",
        "gave_up",
    ]


def test_persistent_overflow_ends_the_run_with_the_default_guard():
    model, optimizer = task()
    model[0].weight.register_hook(lambda g: g * math.inf)
    scaler = torch.amp.GradScaler("cpu")
    with pytest.raises(GuardExhausted):
        run(Guard(), model, optimizer, scaler, batches=400)


def test_overflows_now_and_then_are_not_trouble_only_overflows_in_a_row_are():
    model, optimizer = task()
    scaler = torch.amp.GradScaler("cpu", init_scale=256.0, growth_interval=1)
    guard = Guard(every=5, max_overflows=3)  # the scale grows into an overflow every few steps
    _, actions = run(guard, model, optimizer, scaler, batches=40)
    assert guard.overflows > 3 * 3 and set(actions) == {"ok"}


def test_a_nan_loss_is_trouble_not_an_overflow():
    model, optimizer = task()
    scaler = torch.amp.GradScaler("cpu", init_scale=256.0)
    guard = Guard(every=5, max_overflows=100)
    _, actions = run(guard, model, optimizer, scaler, batches=12, fault=nan_at(10))
    assert actions[10] == "skip" and guard.overflows == 0


# -- a caller that updates the scaler itself (Lightning) ------------------------------------------
def test_with_update_scaler_false_a_skip_leaves_the_update_to_the_caller():
    model, optimizer = task()
    scaler = torch.amp.GradScaler("cpu", init_scale=256.0)
    guard = Guard(every=5)
    loss = fp16_loss(model, *batch()) * math.nan
    scaler.scale(loss).backward()
    assert guard.check(loss, model, optimizer, scaler=scaler, update_scaler=False) == "skip"
    assert amp.stage(scaler, optimizer) == "UNSCALED"
    scaler.step(optimizer)  # what Lightning does after every batch
    scaler.update()
    assert scaler.get_scale() == 128.0


def test_with_update_scaler_false_a_rollback_keeps_the_stage_for_the_callers_step():
    model, optimizer = task()
    scaler = torch.amp.GradScaler("cpu", init_scale=256.0)
    guard = Guard(every=100, max_skips=0)
    loss = fp16_loss(model, *batch())
    scaler.scale(loss).backward()
    assert guard.check(loss, model, optimizer, scaler=scaler, update_scaler=False) == "ok"
    scaler.step(optimizer)
    scaler.update(new_scale=1024.0)
    optimizer.zero_grad()
    loss = fp16_loss(model, *batch()) * math.nan
    scaler.scale(loss).backward()
    assert guard.check(loss, scaler=scaler, update_scaler=False) == "rollback"
    assert amp.stage(scaler, optimizer) == "UNSCALED"
    scaler.step(optimizer)
    scaler.update()
    assert scaler.get_scale() == 128.0  # the snapshot's 256, halved for this batch's nan


# -- under torchrun ------------------------------------------------------------------------------
def test_the_overflow_decision_is_taken_on_the_mean_over_ranks(monkeypatch):
    """Rank 1's gradients overflow, this rank's do not: the mean norm is inf on every rank,
    so every rank calls the batch an overflow ("ok", the scalers skip it alike)."""
    other_rank = [None, math.inf]  # its loss (the same as ours), then its grad norm

    def mean(values):  # the list form: [loss, norm] in one all-reduce
        assert isinstance(values, list) and len(values) == 2
        return [float(v) if o is None else (float(v) + o) / 2 for v, o in zip(values, other_rank)]

    monkeypatch.setattr(dist, "is_distributed", lambda: True)
    monkeypatch.setattr(dist, "mean", mean)
    model, optimizer = task()
    scaler = torch.amp.GradScaler("cpu", init_scale=256.0)
    guard = Guard(every=5)
    loss = fp16_loss(model, *batch())
    scaler.scale(loss).backward()
    assert guard.check(loss, model, optimizer, scaler=scaler) == "ok"
    assert guard.overflowed and guard.overflows == 1


def started_guard():
    """A guard that has seen one good batch (its start, a loss of 1.0)."""
    model, optimizer = task()
    guard = Guard()
    model(torch.randn(4, 20)).sum().backward()
    assert guard.check(1.0, model, optimizer) == "ok"
    return guard


def test_the_final_validation_rule_judges_the_mean_over_ranks(monkeypatch):
    started_guard().check_final(5.0)  # alone: 5x the start, not far above it
    guard = started_guard()
    monkeypatch.setattr(dist, "is_distributed", lambda: True)
    monkeypatch.setattr(dist, "agree", lambda flag, how="any": flag)
    monkeypatch.setattr(dist, "mean", lambda v: (float(v) + 30.0) / 2)  # the other rank: 30
    with pytest.raises(GuardExhausted, match="validation loss of 17.5"):
        guard.check_final(5.0)


def test_the_final_validation_rule_is_skipped_on_every_rank_when_one_has_no_loss(monkeypatch):
    guard = started_guard()
    monkeypatch.setattr(dist, "is_distributed", lambda: True)
    monkeypatch.setattr(dist, "agree", lambda flag, how="any": False)  # another rank has none
    guard.check_final(100.0)  # no collective mean (no process group here), no GuardExhausted


@pytest.mark.skipif(not torch.distributed.is_available(), reason="no torch.distributed")
def test_under_torchrun_both_ranks_take_the_same_actions_on_overflows_and_a_nan(tmp_path):
    """Two real ranks (gloo), a DDP model in the scaler loop: rank 1's NaN loss is skipped on
    both, its inf gradient is an overflow on both, and the ranks end identical."""
    worker = Path(__file__).parent / "dist_amp_worker.py"
    run_bounded([*TORCHRUN, str(worker), str(tmp_path)], 300, "torchrun")
    zero, one = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2))
    assert zero == one
    assert zero["actions"][25] == ["skip", False] and zero["actions"][30] == ["ok", True]
    assert zero["overflows"] > 1 and zero["step"] == 40 - zero["overflows"] - 1


def test_the_new_modules_doctests_run():
    for module in (amp, guard_messages, readback, rollback):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0, module.__name__
