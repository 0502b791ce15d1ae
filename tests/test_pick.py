"""pick_lr: the budget is a hard limit, the pick comes from what was tested, seeds repeat."""

import json
import math

import pytest
import torch
from torch import nn

from lrkit import UserError
from lrkit.find import Pick, pick_lr
from lrkit.find import pick as pick_module
from lrkit.schedules import ScheduleSyntaxError
from lrkit.tasks import Metric, Task, accuracy, tensor_loader

g = torch.Generator().manual_seed(0)
X = torch.randn(320, 8, generator=g)
Y = (X[:, 0] + 0.5 * X[:, 1] > 0).long()


def toy(epochs: int = 10) -> Task:
    """A tiny classification task: 8 batches an epoch, 80 steps a run, milliseconds a step."""
    return Task(
        name="toy",
        make_model=lambda: nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2)),
        make_optimizer=lambda params, lr: torch.optim.SGD(params, lr=lr, momentum=0.9),
        make_train_loader=lambda: tensor_loader(X[:256], Y[:256], batch_size=32, shuffle=True),
        make_val_loader=lambda: tensor_loader(X[256:], Y[256:], batch_size=64),
        metric=Metric("accuracy", accuracy),
        epochs=epochs,
        threads=1,
    )


@pytest.fixture(scope="module")
def picked() -> Pick:
    return pick_lr(toy(), budget=1.5, seed=0, progress=False)


@pytest.mark.parametrize("budget", [1.1, 1.5, 2.5])
def test_cost_never_exceeds_the_budget(budget):
    p = pick_lr(toy(), budget=budget, seed=0, progress=False)
    assert p.full_run_steps == 80
    assert p.steps <= budget * p.full_run_steps
    assert p.cost == p.steps / p.full_run_steps <= budget


def test_every_step_spent_is_counted(picked):
    spent = picked.find["steps"] + sum(t.steps for t in picked.trials)
    assert picked.steps == spent
    assert picked.find["steps"] > 0 and len(picked.trials) == 8 + 4 + 2


def test_a_bigger_budget_buys_longer_short_runs():
    small = pick_lr(toy(), budget=1.1, seed=0, progress=False)
    big = pick_lr(toy(), budget=3.0, seed=0, progress=False)
    assert max(t.steps for t in big.trials) > max(t.steps for t in small.trials)


def test_the_pick_lies_inside_the_window_and_the_swept_range(picked):
    low, high = picked.window
    shift = 10**pick_module.HORIZON_CORRECTION
    assert low * min(1, shift) <= picked.lr <= high * max(1, shift)
    assert pick_module.SWEEP_START <= low < high <= pick_module.SWEEP_END
    assert all(low * 0.999 <= t.lr <= high * 1.001 for t in picked.trials)


def test_the_pick_is_the_last_rounds_best_trial_moved_by_the_correction(picked):
    last = max(t.round for t in picked.trials)
    finals = [t for t in picked.trials if t.round == last]
    best = max(finals, key=lambda t: (t.metric, -t.val_loss))
    assert picked.lr == pytest.approx(best.lr * 10**pick_module.HORIZON_CORRECTION)


def test_each_round_keeps_the_better_half_and_doubles_the_horizon(picked):
    first = [t for t in picked.trials if t.round == 0]
    second = [t for t in picked.trials if t.round == 1]
    ranked = sorted(first, key=lambda t: (-t.metric, t.val_loss))
    assert {t.lr for t in second} == {t.lr for t in ranked[:4]}
    assert second[0].steps == 2 * first[0].steps


def test_the_same_seed_gives_the_same_pick(picked):
    again = pick_lr(toy(), budget=1.5, seed=0, progress=False)
    assert again.lr == picked.lr
    assert again.trials == picked.trials


def test_the_run_length_is_the_one_asked_for():
    p = pick_lr(
        toy(), "warmup(10%) >> cosine(to=0.01)", budget=1.5, epochs=20, seed=0, progress=False
    )
    assert p.full_run_steps == 160 and p.cost <= 1.5
    assert p.schedule == "warmup(10%) >> cosine(to=0.01)"


def test_to_dict_is_json_and_repr_is_readable(picked):
    data = json.loads(json.dumps(picked.to_dict()))
    assert data["lr"] == picked.lr and len(data["trials"]) == len(picked.trials)
    assert set(data["trials"][0]) == {"lr", "steps", "metric", "val_loss", "round"}
    text = repr(picked)
    assert text.startswith(f"Pick(lr={picked.lr:.3g}") and "cost" in text


@pytest.mark.parametrize("budget", [0, -1.0, math.nan, math.inf, "1.5", True])
def test_a_budget_that_is_not_a_positive_number_is_refused(budget):
    with pytest.raises(ValueError, match="budget"):
        pick_lr(toy(), budget=budget, progress=False)


def test_a_budget_too_small_says_the_minimum():
    with pytest.raises(ValueError, match=r"too small .* the minimum is 0\.65"):
        pick_lr(toy(), budget=0.5, progress=False)
    assert pick_lr(toy(), budget=0.65, seed=0, progress=False).cost <= 0.65


def test_a_small_budget_runs_fewer_rounds_of_the_same_candidates():
    p = pick_lr(toy(), budget=0.7, seed=0, progress=False)
    assert {t.round for t in p.trials} == {0} and len(p.trials) == 8
    assert p.cost <= 0.7


def test_unknown_task_and_bad_schedule_are_user_errors():
    with pytest.raises(UserError, match="unknown task"):
        pick_lr("no-such-task", progress=False)
    with pytest.raises(ScheduleSyntaxError, match="cosin"):
        pick_lr(toy(), "warmup(5%) >> cosin", progress=False)
    with pytest.raises(ValueError, match="epochs"):
        pick_lr(toy(), epochs=0, progress=False)


def test_a_diverging_short_run_scores_worst():
    trial = pick_module._short_run(
        toy(),
        1e6,
        pick_module.as_schedule("warmup(5%) >> cosine").resolve(total_steps=20),
        20,
        0,
        0,
    )
    assert math.isnan(trial.metric) and trial.val_loss == math.inf


def test_the_window_top_is_the_curves_minimum_when_the_curve_is_trusted():
    lrs = torch.logspace(-6, 1, 30).numpy()
    losses = 2.0 - 0.05 * torch.arange(30).numpy()
    losses[25:] = [3.0, 5.0, 8.0, 12.0, 20.0]
    assert pick_module._top(lrs, losses, ok=True) == lrs[24]


def test_an_untrusted_curve_tops_at_the_edge_of_divergence_not_at_early_noise():
    lrs = torch.logspace(-7, 1, 24).numpy()
    losses = [1.4, 1.1, 1.3] + [1.2] * 17 + [1.15, 1.3, 2.2, 14.0]  # lowest point early
    assert pick_module._top(lrs, losses, ok=False) == lrs[20]
    no_blow_up = [1.0] * 20 + [0.9, 0.8, 0.7, 0.6]
    assert pick_module._top(lrs, no_blow_up, ok=False) == lrs[-1]


def test_a_curve_of_fewer_than_five_points_tops_two_decades_above_its_start():
    lrs = torch.logspace(-7, -6, 3).numpy()
    assert pick_module._top(lrs, [1.0, 2.0, 9.0], ok=False) == pytest.approx(1e-5)


def test_rates_tied_for_the_best_metric_give_their_geometric_centre_diverged_the_lowest():
    def trial(lr, metric, val_loss):
        return pick_module.Trial(lr, 10, metric, val_loss, 2)

    tied = [trial(1.0, 1.0, 0.0), trial(0.01, 1.0, 0.1), trial(0.1, 0.9, 0.2)]
    assert pick_module._winner(tied) == pytest.approx(0.1)
    clear = [trial(1.0, 1.0, 0.0), trial(0.01, 0.99, 0.1)]
    assert pick_module._winner(clear) == 1.0
    diverged = [trial(1.0, math.nan, math.inf), trial(0.01, math.nan, math.inf)]
    assert pick_module._winner(diverged) == 0.01
