"""lrkit.tune: the search itself (trials are calls of fit, pruning, divergence, the warm start,
the lr range from the range test, the doctor's verdicts, CV and seeds, budget, resume)."""

import math
import re
import subprocess
import sys

import numpy as np
import optuna
import pytest

import lrkit
from lrkit.errors import UserError
from lrkit.find import pick_lr
from lrkit.tune import Space, objective

FAST = {"progress": False, "seed": 0}
SCHEDULE = "warmup(5%) >> cosine"
LR_ONLY = Space(schedule=SCHEDULE)  # the lr searched, one schedule


def _tune(tmp_path, task="wine-mlp", **kw):
    return lrkit.tune(task, out=tmp_path / "study", **{**FAST, **kw})


def _study(tmp_path, name="wine-mlp"):
    """The study tune left in ``out``'s journal file, opened with Optuna alone."""
    from optuna.storages.journal import JournalFileBackend

    journal = JournalFileBackend(str(tmp_path / "study" / "study.journal"))
    return optuna.load_study(study_name=name, storage=optuna.storages.JournalStorage(journal))


def _rows(result, state=None):
    return [r for r in result.trials if state is None or r["state"] == state]


def _finished(result):
    return [r for r in result.trials if r["state"] in ("COMPLETE", "PRUNED")]


def test_each_trial_is_one_call_of_fit_per_split(tmp_path, monkeypatch):
    calls = []
    real = objective.fit

    def counting(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(objective, "fit", counting)
    result = _tune(tmp_path, trials=3, seeds=2, pruner=None)
    assert len(calls) == 3 * 2
    assert [c["seed"] for c in calls] == [0, 1] * 3
    assert [c["report"].trial is not None for c in calls] == [True, False] * 3  # reports: split 0
    assert all(r["steps"] == 2 * 135 for r in result.trials)  # 15 epochs of 9 batches, twice
    assert all(c["schedule"] == r["config"]["schedule"] for c, r in zip(calls[::2], result.trials))


def test_import_lrkit_does_not_import_optuna():
    code = "import sys, lrkit; lrkit.Space; print('optuna' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_lrkit_tune_is_the_function_and_the_package():
    from lrkit.tune.result import TuneResult

    assert callable(lrkit.tune)
    assert lrkit.tune.Space is Space and lrkit.Space is Space
    assert lrkit.TuneResult is TuneResult and lrkit.tune.TuneResult is TuneResult


def test_a_trial_validates_about_eight_times_a_run(tmp_path):
    result = _tune(tmp_path, trials=1, pruner=None, space=LR_ONLY)
    study = _study(tmp_path)
    assert sorted(study.trials[0].intermediate_values) == [17, 34, 51, 68, 85, 102, 119, 135]
    assert result.trials[0]["last_report"][0] == 135


def test_a_bad_config_is_pruned(tmp_path):
    # the warm start trains well; the rates below 1e-4 barely train: successive halving stops them
    space = Space(lr=(1e-6, 0.1), schedule=SCHEDULE)
    result = _tune(tmp_path, task="digits-mlp", space=space, epochs=2, trials=8)
    assert result.trials[0]["state"] == "COMPLETE"
    low = [r for r in result.trials if r["params"]["lr"] < 1e-4]
    assert low and all(r["state"] == "PRUNED" and r["status"] == "pruned" for r in low)
    for r in low:
        assert 46 / 4 <= r["steps"] < 46  # 2 epochs of 23 batches; no rung before a quarter
        assert re.fullmatch(r"pruned at step \d+ \(metric [0-9.]+\)", r["reason"])


def test_a_diverging_lr_fails_at_once_with_its_reason(tmp_path):
    result = _tune(
        tmp_path, task="digits-mlp", space=Space(lr=(50.0, 50.0)), trials=1, warm_start=False
    )
    (trial,) = result.trials
    assert trial["state"] == "FAIL" and trial["status"] == "diverged"
    assert re.fullmatch(r"loss (nan|inf|-inf) at step \d+", trial["reason"])
    assert trial["steps"] <= 17  # fit reads the losses back every 16 steps
    assert trial["verdict"] == "diverged"
    assert result.best is None


def test_the_warm_start_is_trial_0_at_pick_lrs_rate(tmp_path):
    result = _tune(tmp_path, space=LR_ONLY, trials=2)
    pick = pick_lr("wine-mlp", SCHEDULE, budget=1.5, seed=0, progress=False)
    assert result.trials[0]["params"]["lr"] == pytest.approx(pick.lr)
    assert result.attrs["warm_start"]["lr"] == pytest.approx(pick.lr)
    assert result.attrs["pick_steps"] + result.attrs["find_steps"] == pick.steps
    assert _study(tmp_path).trials[0].user_attrs["warm_start"].startswith("pick_lr")


def test_the_warm_start_trains_the_first_family_at_the_middle_of_its_ranges(tmp_path):
    space = Space(schedule="warmup({0..10%}) >> cosine(to={0..0.1}) | constant")
    result = _tune(tmp_path, space=space, trials=1)
    assert result.trials[0]["config"]["schedule"] == "warmup(5%) >> cosine(to=0.05)"
    assert result.trials[0]["params"]["family"] == "cosine"


def test_pick_lr_measures_with_the_spaces_own_optimizer(tmp_path):
    result = _tune(tmp_path, space=Space(schedule=SCHEDULE, optimizer="sgd"), trials=1)
    sgd = lrkit.get_task("wine-mlp").variant(optimizer="sgd")
    pick = pick_lr(sgd, SCHEDULE, budget=1.5, seed=0, progress=False)
    assert result.attrs["warm_start"]["lr"] == pytest.approx(pick.lr)
    assert result.trials[0]["config"]["optimizer"] == "sgd"


def test_the_warm_start_trains_the_task_s_own_optimizer_when_the_space_may(tmp_path):
    space = Space(schedule=SCHEDULE, optimizer=[None, "sgd"])
    result = _tune(tmp_path, space=space, trials=1)
    assert result.trials[0]["params"]["optimizer"] is None


def test_the_default_space_searches_several_families(tmp_path):
    result = _tune(tmp_path, trials=6, epochs=2)
    assert len({r["family"] for r in result.trials}) > 1
    assert "|" in result.attrs["space"] and result.attrs["space"].startswith("lr={")


def test_an_empty_space_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(UserError, match="empty space"):
        _tune(tmp_path, space="", trials=1)
    assert not (tmp_path / "study").exists()


def test_a_space_with_low_above_high_is_refused(tmp_path):
    with pytest.raises(UserError, match="low"):
        _tune(tmp_path, space="lr={1..1e-3}; constant", trials=1)


def test_the_lr_range_comes_from_the_range_test_when_not_given(tmp_path):
    result = _tune(tmp_path, trials=5)
    lo, hi = result.attrs["lr_window"]
    pick = result.attrs["warm_start"]["lr"]
    assert lo < pick < hi
    assert result.attrs["find_steps"] > 0
    assert all(lo <= r["params"]["lr"] <= hi for r in result.trials)


def test_the_bounded_range_wastes_no_trial_on_a_diverging_rate(tmp_path):
    # digits-mlp (SGD, Nesterov) diverges from lr 3 on: the range test's top keeps clear of it
    result = _tune(tmp_path, task="digits-mlp", space=LR_ONLY, trials=10, epochs=2)
    assert result.attrs["lr_window"][1] < 3
    assert not [r for r in result.trials if r["status"] == "diverged"]


def test_a_given_lr_range_is_kept_and_the_warm_start_clipped_into_it(tmp_path):
    result = _tune(tmp_path, space=Space(lr=(1e-4, 1e-3)), trials=2)
    assert result.attrs["lr_window"] == [1e-4, 1e-3]
    assert result.trials[0]["params"]["lr"] == pytest.approx(1e-3)  # pick_lr chose higher


def test_without_a_warm_start_a_range_test_alone_bounds_the_lr(tmp_path):
    result = _tune(tmp_path, trials=2, warm_start=False)
    attrs = result.attrs
    assert attrs["warm_start"] is None and attrs["pick_steps"] == 0
    assert attrs["find_steps"] > 0 and attrs["lr_window"] is not None


def test_on_a_short_run_pick_lr_gets_its_minimum_budget_and_the_range_test_one_run(tmp_path):
    with_pick = _tune(tmp_path / "a", space=LR_ONLY, trials=1, epochs=3)  # 27-step runs
    assert with_pick.attrs["warm_start"] is not None
    assert with_pick.attrs["find_steps"] + with_pick.attrs["pick_steps"] <= 52  # 20 + 8 x 4
    alone = _tune(tmp_path / "b", space=LR_ONLY, trials=1, epochs=3, warm_start=False)
    assert alone.attrs["find_steps"] <= 27


def test_the_opening_line_says_where_the_lr_range_came_from(tmp_path, capsys):
    _tune(tmp_path, space=LR_ONLY, trials=1, progress=True)
    first = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("tune "))
    assert re.match(r"tune wine-mlp: lr \S+\.\.\S+ \(from the range test\); first trial: lr", first)
    assert "a run is 135 steps, validated every 17" in first


def test_no_lr_range_and_no_range_test_is_refused(tmp_path):
    with pytest.raises(UserError, match="no lr range and bound_lr=False"):
        _tune(tmp_path, trials=2, bound_lr=False)


def test_every_trial_records_the_doctors_verdict(tmp_path):
    result = _tune(tmp_path, trials=4)
    verdicts = {"diverged", "too_high", "overfitting", "plateau", "too_low", "fine", "uncertain"}
    for r in result.trials:
        assert r["verdict"] in verdicts | {"none"}
        assert 0 <= r["verdict_confidence"] <= 1
        assert isinstance(r["advice"], str)


def test_seeds_train_each_config_with_consecutive_seeds_and_record_the_spread(tmp_path):
    result = _tune(tmp_path, trials=2, seeds=2, pruner=None, seed=3)
    for r in result.trials:
        assert [s["seed"] for s in r["splits"]] == [3, 4]
        metrics = [s["metric"] for s in r["splits"]]
        assert r["metric_mean"] == pytest.approx(sum(metrics) / 2)
        assert r["metric_std"] == pytest.approx(abs(metrics[0] - metrics[1]) / 2)


def test_cv_trains_each_config_on_every_fold_and_records_mean_and_std(tmp_path):
    result = _tune(tmp_path, trials=2, cv=3, pruner=None)
    for r in result.trials:
        assert [(s["fold"], s["seed"]) for s in r["splits"]] == [(0, 0), (1, 0), (2, 0)]
        metrics = np.array([s["metric"] for s in r["splits"]])
        assert r["metric_mean"] == pytest.approx(metrics.mean())
        assert r["metric_std"] == pytest.approx(metrics.std())
    assert result.attrs["cv"] == 3


def test_cv_and_seeds_train_folds_times_seeds_and_report_only_the_first_split(tmp_path):
    result = _tune(tmp_path, trials=1, cv=2, seeds=2, pruner=None)
    (r,) = result.trials
    assert [(s["fold"], s["seed"]) for s in r["splits"]] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    reports = _study(tmp_path).trials[0].intermediate_values
    assert max(reports) == r["splits"][0]["steps"]  # one run's reports, not four
    assert r["steps"] == sum(s["steps"] for s in r["splits"])


def test_a_diverging_split_fails_the_trial_and_skips_the_rest(tmp_path):
    space = Space(lr=(50.0, 50.0))
    result = _tune(tmp_path, task="digits-mlp", space=space, trials=1, cv=3, warm_start=False)
    (r,) = result.trials
    assert r["state"] == "FAIL" and r["status"] == "diverged"
    assert [s["status"] for s in r["splits"]] == ["diverged"]
    assert "(fold 0, seed 0)" in r["reason"]


def test_the_grid_sampler_covers_the_grid(tmp_path):
    space = Space(lr=(1e-3, 1e-1))
    result = _tune(tmp_path, space=space, sampler="grid", pruner=None, epochs=1)
    tried = sorted(r["params"]["lr"] for r in result.trials)
    assert tried == pytest.approx(sorted(space.grid()["lr"]))


def test_the_grid_of_several_families_runs_each_distinct_point_once(tmp_path):
    space = Space(lr=(1e-2, 1e-1), schedule="cosine(to={0..0.1}) | constant")
    result = _tune(tmp_path, space=space, sampler="grid", pruner=None, epochs=1, trials=None)
    tried = [r["params"] for r in result.trials]
    assert len(tried) == len(space.grid_params()) == 9 * 3 + 9
    assert {tuple(sorted(p.items())) for p in tried} == {
        tuple(sorted(p.items())) for p in space.grid_params()
    }


def test_a_budget_counts_the_measurements_and_is_never_exceeded(tmp_path):
    result = _tune(tmp_path, space=LR_ONLY, budget=3.3, trials=None, pruner=None)
    run = result.attrs["steps_per_run"]
    measured = result.attrs["find_steps"] + result.attrs["pick_steps"]
    spent = measured + sum(r["steps"] for r in result.trials)
    assert measured > 0
    assert 3.3 * run - 17 < spent <= 3.3 * run  # wine-mlp validates every 17 of its 135 steps


def test_the_trial_running_when_the_budget_runs_out_stops_at_its_last_validation_within(
    tmp_path,
):
    space = Space(lr=(1e-2, 1e-1), schedule=SCHEDULE)  # nothing to measure
    result = _tune(tmp_path, space=space, budget=1.5, trials=None, warm_start=False, pruner=None)
    assert [(r["state"], r["steps"]) for r in result.trials] == [("COMPLETE", 135), ("PRUNED", 51)]
    assert result.trials[1]["reason"] == "stopped at step 51: the tune's budget is spent"
    # 202 steps of budget: 135 + 51, as the validation after 51 (at 68) would pass it


def test_a_resumed_study_continues_to_the_trials(tmp_path):
    _tune(tmp_path, trials=2)
    with pytest.raises(UserError, match="resume"):
        _tune(tmp_path, trials=4)
    result = _tune(tmp_path, trials=4, resume=True)
    assert len(_finished(result)) == 4
    warm = [t for t in _study(tmp_path).trials if "warm_start" in t.user_attrs]
    assert [t.number for t in warm] == [0]  # not enqueued again


def test_a_resumed_study_keeps_its_settings_and_refuses_others(tmp_path):
    _tune(tmp_path, trials=1, seeds=2, pruner=None)
    with pytest.raises(UserError, match="seeds=3 differs from the study's seeds=2"):
        _tune(tmp_path, trials=2, seeds=3, resume=True, pruner=None)
    result = _tune(tmp_path, trials=2, resume=True, pruner=None)  # seeds: the study's
    assert [len(r["splits"]) for r in _finished(result)] == [2, 2]


def test_a_resumed_study_keeps_its_seed_and_refuses_another(tmp_path):
    _tune(tmp_path, space=LR_ONLY, trials=1, epochs=1, pruner=None, seed=3)
    with pytest.raises(UserError, match="seed=5 differs from the study's seed=3"):
        _tune(tmp_path, space=LR_ONLY, trials=2, epochs=1, pruner=None, seed=5, resume=True)
    result = _tune(tmp_path, space=LR_ONLY, trials=2, epochs=1, pruner=None, resume=True)
    assert [r["splits"][0]["seed"] for r in _finished(result)] == [3, 3]  # not the default 0


def test_a_study_resumed_with_cv_when_it_ran_on_the_tasks_own_split_is_refused(tmp_path):
    # the study records cv=None (the task's split): folds now would mix incomparable metrics
    _tune(tmp_path, space=LR_ONLY, trials=1, epochs=1, pruner=None)
    with pytest.raises(UserError, match="cv=3 differs from the study's cv=None"):
        _tune(tmp_path, space=LR_ONLY, trials=2, epochs=1, cv=3, resume=True)


@pytest.mark.parametrize("kw", [{"task": "diabetes-mlp"}, {"study": "another"}])
def test_a_second_study_in_a_run_folder_is_refused(tmp_path, kw):
    # it would overwrite the first study's tune.json, trials.csv and tune.png
    _tune(tmp_path, space=LR_ONLY, trials=1, epochs=1)
    with pytest.raises(UserError, match="holds study 'wine-mlp' already"):
        _tune(tmp_path, space=LR_ONLY, trials=1, epochs=1, resume=True, **kw)


def test_the_train_line_and_python_of_a_tune_with_another_seed_reproduce_its_best(tmp_path):
    # tune(seed=3) trains its trials with seed 3; without --seed the line trained seed 0
    space = Space(schedule=SCHEDULE, lr=(1e-2, 1e-1))
    result = _tune(tmp_path, space=space, trials=1, epochs=2, warm_start=False, seed=3)
    assert result.train_line().endswith("--epochs 2 --seed 3")
    assert result.python().endswith("epochs=2, seed=3)")
    again = lrkit.fit(
        "wine-mlp", lr=result.best.lr, schedule=result.best.schedule, epochs=2, seed=3,
        progress=False,
    )  # fmt: skip
    assert again.final_metric == result.best_value


def test_a_second_tune_on_shared_storage_joins_the_study(tmp_path):
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    first = lrkit.tune("wine-mlp", LR_ONLY, storage=url, study="s", trials=2, **FAST)
    again = lrkit.tune("wine-mlp", storage=url, study="s", trials=4, **FAST)  # no resume needed
    assert len(_finished(again)) == 4
    assert again.attrs["lr_window"] == first.attrs["lr_window"]  # measured once
    assert again.attrs["space"] == first.attrs["space"]  # the study's, not the default space
    storage = optuna.storages.RDBStorage(url)
    trials = optuna.load_study(study_name="s", storage=storage).trials
    assert [t.number for t in trials if "warm_start" in t.user_attrs] == [0]


def _created(tmp_path, **plan):
    from lrkit.tune.storage import create_study, open_storage

    url = f"sqlite:///{tmp_path / 'studies.db'}"
    create_study(open_storage(url), "made", direction="maximize", attrs={"lrkit": plan})
    return url


def test_a_worker_reads_cv_seeds_and_space_from_a_study_made_for_it(tmp_path):
    url = _created(tmp_path, task="wine-mlp", cv=2, seeds=2, space="lr={1e-2..1e-1}; constant")
    result = lrkit.tune("wine-mlp", storage=url, study="made", trials=1, pruner=None, **FAST)
    (r,) = result.trials
    assert [(s["fold"], s["seed"]) for s in r["splits"]] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert r["config"]["schedule"] == "constant" and 1e-2 <= r["lr"] <= 1e-1


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"cv": 3}, "cv=3 differs from the study's cv=2"),
        ({"space": "lr={1e-3..1e-2}; constant"}, "differs from the study's space"),
    ],
)
def test_an_argument_that_differs_from_the_studys_is_refused(tmp_path, kw, match):
    url = _created(tmp_path, task="wine-mlp", cv=2, space="lr={1e-2..1e-1}; constant")
    with pytest.raises(UserError, match=match):
        lrkit.tune("wine-mlp", storage=url, study="made", trials=1, **{**FAST, **kw})


def test_a_study_of_another_task_is_refused(tmp_path):
    url = _created(tmp_path, task="digits-mlp")
    with pytest.raises(
        UserError, match="task 'wine-mlp' differs from the study's task 'digits-mlp'"
    ):
        lrkit.tune("wine-mlp", storage=url, study="made", trials=1, **FAST)


def test_the_study_is_a_plain_optuna_study_in_the_journal_file(tmp_path):
    _tune(tmp_path, trials=2)
    study = _study(tmp_path)
    assert len(study.trials) == 2
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE  # accuracy
    assert study.user_attrs["lrkit"]["task"] == "wine-mlp"
    assert study.trials[0].user_attrs["status"] == "completed"
    assert study.trials[0].value == study.trials[0].user_attrs["metric_mean"]


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


def test_a_trial_that_raises_is_recorded_as_failed_and_the_error_raised(tmp_path):
    import dataclasses

    def broken(model, batch):
        raise RuntimeError("the data loader fell over")

    task = dataclasses.replace(_toy_task(), step_fn=broken)
    with pytest.raises(RuntimeError, match="fell over"):
        _tune(tmp_path, task=task, trials=2, space=Space(lr=(1e-3, 1e-1)), warm_start=False)
    (trial,) = _study(tmp_path, "toy").trials
    assert trial.state == optuna.trial.TrialState.FAIL
    assert trial.user_attrs["status"] == "failed"
    assert trial.user_attrs["reason"] == "RuntimeError: the data loader fell over"
    assert trial.user_attrs["verdict"] == "none"


def test_a_lower_is_better_metric_is_minimised(tmp_path):
    result = _tune(tmp_path, task=_toy_task(), trials=2, space=Space(lr=(1e-3, 1e-1)))
    assert result.direction == "minimize"  # the task's val_loss


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
        ({"progress": "yes"}, "progress must be None, True or False, got 'yes'"),
        ({"seed": 1.5}, "seed must be a whole number >= 0, got 1.5"),
        ({"seed": -1}, "seed must be a whole number >= 0, got -1"),
        ({"epochs": 0}, "epochs must be a whole number >= 1, got 0"),
    ],
)
def test_bad_arguments_are_named(tmp_path, kw, match):
    with pytest.raises(UserError, match=match):
        _tune(tmp_path, **kw)


def test_an_optuna_sampler_and_pruner_can_be_given_as_objects(tmp_path):
    sampler = optuna.samplers.RandomSampler(seed=1)
    pruner = optuna.pruners.NopPruner()
    result = _tune(tmp_path, space=LR_ONLY, sampler=sampler, pruner=pruner, trials=3)
    assert (result.attrs["sampler"], result.attrs["pruner"]) == ("RandomSampler", "NopPruner")
    assert [r["state"] for r in result.trials] == ["COMPLETE"] * 3


def test_progress_prints_one_line_per_finished_trial(tmp_path, capsys):
    _tune(tmp_path, space=LR_ONLY, trials=2, pruner=None, progress=True)
    lines = [x for x in capsys.readouterr().out.splitlines() if x.startswith("trial ")]
    assert len(lines) == 2
    assert re.fullmatch(
        r"trial 0 \(1/2 done\): lr [0-9.e-]+ cosine  [0-9.]+  completed  verdict \w+", lines[0]
    )


@pytest.mark.parametrize("pruner", ["sha", "hyperband", "median", None])
def test_every_pruner_runs_a_study(tmp_path, pruner):
    result = _tune(tmp_path, space=LR_ONLY, pruner=pruner, trials=5, epochs=4)
    assert len(_finished(result)) == 5
    assert result.attrs["pruner"] == pruner


@pytest.mark.parametrize("sampler", ["tpe", "gp", "random"])
def test_every_sampler_searches_the_default_space(tmp_path, sampler):
    result = _tune(tmp_path, sampler=sampler, trials=7, epochs=2)  # 5 random ones, then the model
    assert len(_finished(result)) == 7
    assert len({r["lr"] for r in result.trials}) == 7


def test_a_timeout_stops_starting_trials(tmp_path):
    _tune(tmp_path, space=LR_ONLY, trials=None, timeout=0.5, pruner=None)
    starts = [t.datetime_start for t in _study(tmp_path).trials if t.datetime_start]
    assert len(starts) >= 1
    assert (max(starts) - min(starts)).total_seconds() < 0.5 + 0.25


def test_an_out_that_is_not_a_path_is_named():
    with pytest.raises(UserError, match="out must be a folder path, got int 3"):
        lrkit.tune("wine-mlp", out=3, **FAST)


def test_bad_arguments_are_refused_before_any_training(tmp_path, monkeypatch):
    monkeypatch.setattr(objective, "fit", lambda *a, **k: pytest.fail("trained"))
    with pytest.raises(UserError):
        _tune(tmp_path, sampler="nope")
    assert not (tmp_path / "study").exists()


def test_tune_writes_its_result_into_the_run_directory(tmp_path):
    from lrkit.tune import TuneResult

    result = _tune(tmp_path, space=LR_ONLY, trials=3)
    saved = TuneResult.load(tmp_path / "study" / "tune.json")
    assert saved.best == result.best and len(saved.trials) == len(result.trials)
    rows = (tmp_path / "study" / "trials.csv").read_text().splitlines()
    assert len(rows) == len(result.trials) + 1  # a header, then one row per trial
