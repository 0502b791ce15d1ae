"""lrkit.tune: the search itself (trials are calls of fit, pruning, divergence, the warm start,
the lr range from the range test, the doctor's verdicts, CV and seeds, budget, resume)."""

import math
import re
import subprocess
import sys

import optuna
import pytest

import lrkit
from lrkit.errors import UserError
from lrkit.find import pick_lr
from lrkit.tune import Space, objective
from lrkit.tune.tune import JOURNAL

FAST = {"progress": False, "seed": 0}


def _tune(tmp_path, task="wine-mlp", **kw):
    return lrkit.tune(task, out=tmp_path / "study", **{**FAST, **kw})


def _study(result):
    return result.study


def _attrs(result):
    return _study(result).user_attrs["lrkit"]


def _finished(result):
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return [t for t in _study(result).trials if t.state in states]


def test_each_trial_is_one_call_of_fit_per_split(tmp_path, monkeypatch):
    calls = []
    real = objective.fit

    def counting(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(objective, "fit", counting)
    result = _tune(tmp_path, trials=3, seeds=2, pruner=None)
    assert len(calls) == 3 * 2
    assert {c["seed"] for c in calls} == {0, 1}
    assert all(c["val_every"] >= 1 and c["report"] is not None for c in calls[::2])
    assert all(t.user_attrs["steps"] == 2 * 135 for t in _study(result).trials)


def test_import_lrkit_does_not_import_optuna():
    code = "import sys, lrkit; lrkit.Space; print('optuna' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_lrkit_tune_is_the_function_and_the_package():
    assert callable(lrkit.tune)
    assert lrkit.tune.Space is Space
    assert lrkit.Space is Space


def test_a_bad_config_is_pruned(tmp_path):
    # the grid's lowest lr (1e-6) barely trains; successive halving stops it early
    result = _tune(
        tmp_path, task="digits-mlp", space=Space(lr=(1e-6, 0.1)), sampler="grid", epochs=2
    )
    low = [t for t in _study(result).trials if t.params["lr"] == pytest.approx(1e-6)]
    assert low[0].state == optuna.trial.TrialState.PRUNED
    assert low[0].user_attrs["status"] == "pruned"
    assert low[0].user_attrs["steps"] < 46
    assert "pruned at step" in low[0].user_attrs["reason"]


def test_a_diverging_lr_fails_at_once_with_its_reason(tmp_path):
    result = _tune(
        tmp_path, task="digits-mlp", space=Space(lr=(50.0, 50.0)), trials=1, warm_start=False
    )
    (trial,) = _study(result).trials
    assert trial.state == optuna.trial.TrialState.FAIL
    assert trial.user_attrs["status"] == "diverged"
    assert re.fullmatch(r"loss (nan|inf|-inf) at step \d+", trial.user_attrs["reason"])
    assert trial.user_attrs["steps"] <= 17  # fit reads the losses back every 16 steps
    assert trial.user_attrs["verdict"] == "diverged"


def test_the_warm_start_is_trial_0_at_pick_lrs_rate(tmp_path):
    result = _tune(tmp_path, trials=2)
    first = _study(result).trials[0]
    pick = pick_lr("wine-mlp", "warmup(5%) >> cosine", budget=1.5, seed=0, progress=False)
    assert first.params["lr"] == pytest.approx(pick.lr)
    assert _attrs(result)["warm_start"]["lr"] == pytest.approx(pick.lr)
    assert _attrs(result)["pick_steps"] + _attrs(result)["find_steps"] == pick.steps


def test_the_lr_range_comes_from_the_range_test_when_not_given(tmp_path):
    result = _tune(tmp_path, trials=5)
    lo, hi = _attrs(result)["lr_window"]
    assert 0 < lo < hi
    assert _attrs(result)["find_steps"] > 0
    assert all(lo <= t.params["lr"] <= hi for t in _study(result).trials)


def test_a_given_lr_range_is_kept_and_the_warm_start_clipped_into_it(tmp_path):
    result = _tune(tmp_path, space=Space(lr=(1e-4, 1e-3)), trials=2)
    assert _attrs(result)["lr_window"] == [1e-4, 1e-3]
    assert 1e-4 <= _study(result).trials[0].params["lr"] <= 1e-3


def test_without_a_warm_start_a_range_test_alone_bounds_the_lr(tmp_path):
    result = _tune(tmp_path, trials=2, warm_start=False)
    attrs = _attrs(result)
    assert attrs["warm_start"] is None and attrs["pick_steps"] == 0
    assert attrs["find_steps"] > 0 and attrs["lr_window"] is not None


def test_every_trial_records_the_doctors_verdict(tmp_path):
    result = _tune(tmp_path, trials=4)
    for t in _study(result).trials:
        assert t.user_attrs["verdict"] in (
            "diverged", "too_high", "overfitting", "plateau", "too_low", "fine", "uncertain",
            "none",
        )  # fmt: skip
        assert 0 <= t.user_attrs["verdict_confidence"] <= 1
        assert isinstance(t.user_attrs["advice"], str)


def test_seeds_train_each_config_with_consecutive_seeds_and_record_the_spread(tmp_path):
    result = _tune(tmp_path, trials=2, seeds=2, pruner=None, seed=3)
    for t in _study(result).trials:
        splits = t.user_attrs["splits"]
        assert [s["seed"] for s in splits] == [3, 4]
        metrics = [s["metric"] for s in splits]
        assert t.value == pytest.approx(sum(metrics) / 2)
        assert t.user_attrs["metric_std"] == pytest.approx(abs(metrics[0] - metrics[1]) / 2)


def test_the_grid_sampler_covers_the_grid(tmp_path):
    space = Space(lr=(1e-3, 1e-1))
    result = _tune(tmp_path, space=space, sampler="grid", pruner=None, epochs=1)
    tried = sorted(t.params["lr"] for t in _study(result).trials)
    assert tried == pytest.approx(sorted(space.grid()["lr"]))


def test_a_budget_stops_the_study_within_one_trial(tmp_path):
    result = _tune(tmp_path, budget=3.0, trials=None)
    attrs = _attrs(result)
    run = attrs["steps_per_run"]
    spent = attrs["find_steps"] + attrs["pick_steps"]
    spent += sum(t.user_attrs["steps"] for t in _study(result).trials)
    assert 3 * run <= spent <= 3 * run + run


def test_a_resumed_study_continues_to_the_trials(tmp_path):
    _tune(tmp_path, trials=2)
    with pytest.raises(UserError, match="resume"):
        _tune(tmp_path, trials=4)
    result = _tune(tmp_path, trials=4, resume=True)
    assert len(_finished(result)) == 4
    assert _study(result).trials[0].user_attrs.get("warm_start")  # not enqueued again
    assert sum(1 for t in _study(result).trials if "warm_start" in t.user_attrs) == 1


def test_the_study_is_a_plain_optuna_study_in_the_journal_file(tmp_path):
    _tune(tmp_path, trials=2)
    from optuna.storages.journal import JournalFileBackend

    storage = optuna.storages.JournalStorage(JournalFileBackend(str(tmp_path / "study" / JOURNAL)))
    study = optuna.load_study(study_name="wine-mlp", storage=storage)
    assert len(study.trials) == 2
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    assert study.user_attrs["lrkit"]["task"] == "wine-mlp"
    assert study.trials[0].user_attrs["status"] == "completed"


def _toy_task():
    import torch

    from lrkit.tasks import Task, tensor_loader

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 3, generator=g), torch.randint(0, 2, (64,), generator=g)
    return Task(
        name="toy",
        make_model=lambda: torch.nn.Linear(3, 2),
        make_train_loader=lambda: tensor_loader(x, y, batch_size=16, shuffle=True),
        make_val_loader=lambda: tensor_loader(x, y, batch_size=64),
        epochs=2,
    )


def test_a_lower_is_better_metric_is_minimised(tmp_path):
    result = _tune(tmp_path, task=_toy_task(), trials=2, space=Space(lr=(1e-3, 1e-1)))
    assert _study(result).direction == optuna.study.StudyDirection.MINIMIZE  # val_loss


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"sampler": "tpee"}, "unknown sampler 'tpee' \\(did you mean 'tpe'\\?\\)"),
        ({"pruner": "hyperbnd"}, "unknown pruner 'hyperbnd' \\(did you mean 'hyperband'\\?\\)"),
        ({"cv": 1}, "cv must be a whole number >= 2 .* got 1"),
        ({"cv": 0}, "cv must be a whole number >= 2 .* got 0"),
        ({"trials": 0}, "trials must be a whole number >= 1, got 0"),
        ({"seeds": 0}, "seeds must be a whole number >= 1, got 0"),
        ({"budget": -1.0}, "budget .* got -1"),
        ({"budget": math.nan}, "budget .* got nan"),
        ({"timeout": 0}, "timeout .* got 0"),
        ({"trials": None}, "needs a budget or a timeout"),
    ],
)
def test_bad_arguments_are_named(tmp_path, kw, match):
    with pytest.raises(ValueError, match=match):
        _tune(tmp_path, **kw)


def test_bad_arguments_are_refused_before_any_training(tmp_path, monkeypatch):
    monkeypatch.setattr(objective, "fit", lambda *a, **k: pytest.fail("trained"))
    with pytest.raises(UserError):
        _tune(tmp_path, sampler="nope")
    assert not (tmp_path / "study").exists()
