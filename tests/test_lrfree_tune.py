"""Learning-rate-free and schedule-free optimizers in a tune's space: an lr-free trial trains at
the multiplier 1.0 (no lr sampled), a schedule-free one only with a constant or a warmup (a
decaying family is skipped with its reason, or refused up front when it is all the space has)."""

from __future__ import annotations

import optuna
import pytest
from test_lrfree import need

import lrkit
from lrkit.errors import UserError
from lrkit.tune import Config, Space, plan

pytestmark = pytest.mark.usefixtures("one_thread")

MIXED = (
    "lr={1e-3..1e-1}; optimizer={adamw, prodigy, schedulefree-adamw};"
    " warmup({0..10%}) >> cosine(to={0..0.1}) | constant"
)


@pytest.fixture(autouse=True)
def _packages():
    need("prodigyopt")
    need("schedulefree")


def _configs(space, n=40, seed=0):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    out = []
    for _ in range(n):
        trial = study.ask()
        out.append((space.suggest(trial), trial.params))
    return out


def test_a_space_takes_lr_free_and_schedule_free_optimizers():
    space = Space.from_text(MIXED)
    assert space.optimizer.values == ("adamw", "prodigy", "schedulefree-adamw")
    assert Space.from_text(space.text()) == space


def test_an_lr_free_trial_trains_at_the_multiplier_one_and_samples_no_lr():
    configs = _configs(Space.from_text(MIXED))
    prodigy = [(c, p) for c, p in configs if c.optimizer == "prodigy"]
    assert prodigy and all(c.lr == 1.0 and "lr" not in p for c, p in prodigy)


def test_the_other_trials_sample_the_lr_in_the_spaces_range():
    configs = [(c, p) for c, p in _configs(Space.from_text(MIXED)) if c.optimizer != "prodigy"]
    assert configs and all(1e-3 <= c.lr <= 1e-1 and p["lr"] == c.lr for c, p in configs)


def test_an_lr_free_trials_params_give_back_its_config():
    space = Space.from_text(MIXED)
    config = space.config({"optimizer": "prodigy", "family": "constant", "lr": 0.02})
    assert config.lr == 1.0 and config.optimizer == "prodigy"


def test_an_lr_free_config_trains_from_the_command_line_at_the_multiplier():
    config = Config(lr=1.0, schedule="cosine", optimizer="dadapt-adam")
    assert "--lr 1 --schedule cosine --optimizer dadapt-adam" in config.train_line("wine-mlp")


def test_a_grid_holds_no_schedule_free_decaying_pair_and_each_lr_free_point_once():
    points = Space.from_text(MIXED).grid_params(3)
    configs = [Space.from_text(MIXED).config(p) for p in points]
    free = [c for c in configs if c.optimizer == "schedulefree-adamw"]
    assert free and all(c.schedule == "constant" for c in free)
    prodigy = [c for c in configs if c.optimizer == "prodigy"]
    assert len(prodigy) == len({c for c in prodigy}) == 3 * 3 + 1  # the family points, once
    assert all("lr" not in p for p, c in zip(points, configs) if c.optimizer == "prodigy")


def test_a_schedule_free_optimizer_without_a_family_it_takes_is_refused_up_front():
    with pytest.raises(UserError, match="none of its schedules .* 'constant' or 'warmup"):
        Space.from_text("optimizer={adamw, schedulefree-sgd}; cosine | one_cycle")


def test_a_warmup_family_is_enough_for_a_schedule_free_optimizer():
    space = Space.from_text("optimizer=schedulefree-adamw; warmup({1..10%})")
    assert space.optimizer.values == ("schedulefree-adamw",)


def test_an_unknown_optimizer_in_a_space_says_did_you_mean():
    with pytest.raises(UserError, match="did you mean 'prodigy'"):
        Space.from_text("optimizer={adamw, prodigi}; constant")


def test_the_lr_window_is_measured_with_an_optimizer_that_takes_an_absolute_lr():
    space = Space.from_text("optimizer={prodigy, schedulefree-adamw, sgd}; constant")
    config, params = plan.reference_config(space, 0.01)
    assert config.optimizer == params["optimizer"] == "sgd"


def test_a_grid_tune_trains_no_schedule_free_decaying_pair_and_prodigy_once_a_family(tmp_path):
    space = Space.from_text(
        "lr={1e-3..3e-2}; optimizer={schedulefree-adamw, prodigy}; cosine | constant"
    )
    result = lrkit.tune("wine-mlp", space, sampler="grid", trials=11, epochs=1, progress=False,
                        out=tmp_path / "study", pruner=None)  # fmt: skip
    done = [r["config"] for r in result.trials if r["state"] == "COMPLETE"]
    pairs = [(c["optimizer"], c["family"]) for c in done]
    assert len(done) == 11  # 9 lrs of schedule-free constant, prodigy once per family
    assert set(pairs) == {
        ("schedulefree-adamw", "constant"), ("prodigy", "cosine"), ("prodigy", "constant")
    }  # fmt: skip
    assert pairs.count(("prodigy", "cosine")) == 1
    assert all(c["lr"] == 1.0 for c in done if c["optimizer"] == "prodigy")


def test_a_sampled_schedule_free_trial_with_a_decaying_schedule_is_skipped_saying_why(tmp_path):
    space = Space.from_text("lr={1e-3..3e-2}; optimizer=schedulefree-adamw; cosine | constant")
    result = lrkit.tune("wine-mlp", space, sampler="random", trials=6, epochs=2, progress=False,
                        out=tmp_path / "study", pruner=None, warm_start=False)  # fmt: skip
    skipped = [r for r in result.trials if r["config"]["family"] == "cosine"]
    trained = [r for r in result.trials if r["config"]["family"] == "constant"]
    assert skipped and trained
    for r in skipped:
        assert r["state"] == "PRUNED" and r["steps"] == 0
        assert r["reason"].startswith("skipped: schedulefree-adamw takes no decaying schedule")
    assert all(r["state"] == "COMPLETE" and r["steps"] > 0 for r in trained)
