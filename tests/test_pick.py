"""pick_lr: the budget is a hard limit, the pick comes from what was tested, seeds repeat."""

import json
import math
import warnings

import pytest
import torch
from torch import nn

from lrkit import UserError
from lrkit.find import Pick, pick_lr
from lrkit.find import pick as pick_module
from lrkit.schedules import REGISTRY, Driver, ScheduleSyntaxError, stretch
from lrkit.tasks import Metric, Task, accuracy, tensor_loader
from lrkit.train import ScheduleFitWarning

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
    assert pick_module._winner(tied) == (pytest.approx(0.1), [1.0, 0.01])
    clear = [trial(1.0, 1.0, 0.0), trial(0.01, 0.99, 0.1)]
    assert pick_module._winner(clear) == (1.0, [1.0])
    diverged = [trial(1.0, math.nan, math.inf), trial(0.01, math.nan, math.inf)]
    assert pick_module._winner(diverged) == (0.01, [])


# -- every schedule of the catalogue, endless ones included (issue 9, section 4) ---------------
SPECS = {  # one text form per registered schedule and combinator
    "constant": "constant",
    "linear": "linear(to=0.1)",
    "warmup": "warmup(10%)",
    "cosine": "cosine",
    "polynomial": "polynomial(power=2)",
    "step": "step(100, 0.5)",
    "multistep": "multistep([10, 30])",
    "exponential": "exponential(0.99)",
    "inverse_sqrt": "inverse_sqrt(10)",
    "wsd": "wsd(decay=20%)",
    "piecewise_constant": "piecewise_constant([10, 20], [1, 0.1, 0.01])",
    "piecewise_linear": "piecewise_linear([[0, 0], [10, 1], [50, 0.1]])",
    "cosine_restarts": "cosine_restarts(10)",
    "cyclical": "cyclical(10)",
    "one_cycle": "one_cycle",
    "cycle_momentum": "cycle_momentum(one_cycle)",
    "plateau": "cosine * plateau(patience=0)",
    "seq": "warmup(5%) >> cosine",
    "product": "cosine * exponential(0.99)",
    "scale": "0.5 * cosine",
    "clip": "clip(exponential(1.05, steps=100), 0, 1)",
    "min": "min(cosine, exponential(0.98))",
    "max": "max(cosine, 0.1)",
    "repeat": "repeat(cosine(10))",
    "stretch": "stretch(cosine(10))",
}


def test_the_specs_cover_every_registered_schedule():
    assert sorted(SPECS) == sorted(REGISTRY)


@pytest.mark.parametrize("spec", SPECS.values(), ids=list(SPECS))
def test_pick_works_for_every_schedule_of_the_catalogue(spec):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ScheduleFitWarning)  # multistep([10, 30]) ends early
        p = pick_lr("wine-mlp", spec, budget=1.0, epochs=6, seed=0, progress=False)  # 54 steps
    assert math.isfinite(p.lr) and p.lr > 0 and p.cost <= 1.0
    assert len(p.trials) == 8 and all(t.steps == 4 for t in p.trials)


def test_a_short_run_replays_the_full_runs_trajectory_for_an_endless_schedule():
    full = pick_module.as_schedule("step(20, 0.5)").resolve(total_steps=80)
    short = pick_module.Compressed(full, 80, 8)
    assert [short(t) for t in range(8)] == [full(10 * t) for t in range(8)]
    assert short.length is None


def test_a_short_run_of_a_schedule_the_run_cuts_sees_only_what_the_run_sees():
    full = pick_module.as_schedule("warmup(500) >> cosine(100)").resolve(total_steps=80)
    short = pick_module.Compressed(full, 80, 8)
    assert short(7) == full(70) == pytest.approx(0.14)  # still warming up, as the run is


def test_a_short_run_of_the_usual_schedule_is_the_stretched_schedule():
    full = pick_module.as_schedule("warmup(5%) >> cosine").resolve(total_steps=80)
    stretched = stretch(full, 8)
    assert [pick_module.Compressed(full, 80, 8)(t) for t in range(8)] == [
        stretched(t) for t in range(8)
    ]


def test_a_schedule_that_does_not_fit_the_run_is_named_once_before_any_training():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pick_lr(toy(), "warmup(500) >> cosine(100)", budget=0.7, seed=0, progress=False)
    fits = [w for w in caught if issubclass(w.category, ScheduleFitWarning)]
    assert len(fits) == 1 and "the run has 80" in str(fits[0].message)


# -- pick explains itself (issue 9, section 4) --------------------------------------------------
def test_the_pick_names_its_candidates_winner_and_correction(picked):
    first = [t.lr for t in picked.trials if t.round == 0]
    assert picked.candidates == first and len(first) == pick_module.CANDIDATES
    assert picked.correction == pick_module.HORIZON_CORRECTION
    assert picked.lr == pytest.approx(picked.winner * 10**picked.correction)
    last = [t.lr for t in picked.trials if t.round == 2]
    assert picked.winner in last or len(picked.tied) > 1
    assert picked.metric_name == "accuracy" and picked.higher_is_better


def test_explain_says_every_round_the_winner_and_the_correction(picked):
    text = "\n".join(picked.explain())
    assert "range test:" in text and "candidates: 8 rates 0.375 decades apart" in text
    assert text.count("round ") == 3 and "winner:" in text
    assert f"picked {picked.lr:.4g} = {picked.winner:.4g} x 0.562" in text


def test_rates_tied_for_the_best_are_named_in_the_explanation():
    tied = [pick_module.Trial(1.0, 4, 1.0, 0.1, 0), pick_module.Trial(0.01, 4, 1.0, 0.2, 0)]
    p = Pick(1e-1 * 10**-0.25, "constant", 1.0, 1.0, 80, 80, (0.01, 1.0), trials=tied,
             candidates=[1.0, 0.01], winner=0.1, tied=[1.0, 0.01], correction=-0.25)  # fmt: skip
    text = "\n".join(p.explain())
    assert "geometric centre of the rates tied for the best metric (0.01, 1)" in text


# -- the results protocol ------------------------------------------------------------------------
def test_a_pick_round_trips_through_strict_json_even_with_a_diverged_trial(picked):
    p = Pick.from_dict(picked.to_dict())
    p.trials[0] = pick_module.Trial(1e6, 4, math.nan, math.inf, 0)
    text = p.to_json()
    json.loads(text, parse_constant=lambda name: pytest.fail(f"not strict JSON: {name}"))
    again = Pick.from_json(text)
    assert math.isnan(again.trials[0].metric) and again.trials[0].val_loss == math.inf
    assert again.trials[1:] == p.trials[1:] and again.window == p.window
    assert Pick.from_json(picked.to_json()) == picked


def test_from_dict_names_missing_keys():
    with pytest.raises(ValueError, match=r"not a Pick: keys \['budget'"):
        Pick.from_dict({"lr": 0.1})


def test_a_short_run_trains_exactly_as_a_plain_loop_would():
    """fit with a step budget: the same batches, order, random draws and updates by hand."""
    task, steps, lr, seed = toy(), 20, 0.05, 3  # 8 batches an epoch: the run crosses two
    schedule = pick_module.as_schedule("warmup(5%) >> cosine").resolve(total_steps=steps)
    trial = pick_module._short_run(task, lr, schedule, steps, seed, 0)

    model = task.build_model(seed)
    optimizer = task.build_optimizer(model, lr)
    train, val = task.build_loaders(seed)
    driver = Driver(optimizer, schedule, total_steps=steps)
    torch.manual_seed(seed)
    batches = (batch for _ in range(3) for batch in train)
    for _, batch in zip(range(steps), batches):
        loss = task.loss(model, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        driver.step()
    driver.close()
    assert (trial.metric, trial.val_loss) == task.validate(model, val)


def test_pick_refuses_to_name_a_rate_when_every_short_run_diverged():
    # it used to return 0.478, a rate at which nothing trained, for a schedule reaching 1e11
    with pytest.raises(ValueError, match="every short run diverged.*reach 1e\\+11"):
        pick_lr("wine-mlp", "constant(1e11)", epochs=6, budget=1, progress=False)


def test_pick_refuses_a_schedule_that_is_zero_over_the_whole_run():
    # it named 0.579 for constant(0), where no short run trained at all
    with pytest.raises(ValueError, match="no lr can be picked: the schedule constant"):
        pick_lr("wine-mlp", "constant(0)", epochs=6, budget=1, progress=False)
