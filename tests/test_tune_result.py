"""TuneResult from hand-made Optuna studies: the best on the mean, the table, importance, the
train line, JSON and the plot (no training: each trial is added with the attrs tune writes)."""

import math
import shlex

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial

from lrkit.tune.config import Config
from lrkit.tune.result import TuneResult

optuna.logging.set_verbosity(optuna.logging.WARNING)
LR = FloatDistribution(1e-4, 1.0, log=True)
TO = FloatDistribution(1e-3, 0.5, log=True)
FAMILY = CategoricalDistribution(["cosine", "constant"])
STATE = {"completed": TrialState.COMPLETE, "pruned": TrialState.PRUNED,
         "diverged": TrialState.FAIL, "failed": TrialState.FAIL}  # fmt: skip


def add(study, lr, mean=None, std=0.0, status="completed", family="constant", to=None,
        reason="", verdict="healthy", splits=1, steps=100, report=None):  # fmt: skip
    """One trial with the user attrs tune writes."""
    params, dists = {"lr": lr}, {"lr": LR}
    schedule = "constant"
    if family != "constant" or to is not None:
        params["family"], dists["family"] = family, FAMILY
    if to is not None:
        params["cosine.to"], dists["cosine.to"] = to, TO
        schedule = f"warmup(5%) >> cosine(to={to:g})"
    config = Config(lr=lr, schedule=schedule, family=family)
    complete = status == "completed"
    study.add_trial(create_trial(
        state=STATE[status], params=params, distributions=dists,
        value=mean if complete else None,
        intermediate_values={} if report is None else {report[0]: report[1]},
        user_attrs={
            "config": config.to_dict(), "status": status, "reason": reason,
            "metric_mean": mean if mean is not None else math.nan, "metric_std": std,
            "splits": [{"fold": i, "seed": 0, "metric": mean, "val_loss": 0.1,
                        "status": status, "steps": steps // splits} for i in range(splits)],
            "steps": steps, "verdict": verdict, "verdict_confidence": 0.9, "advice": "",
        },
    ))  # fmt: skip


def make_study(direction="maximize", **attrs):
    study = optuna.create_study(direction=direction, study_name="demo")
    study.set_user_attr("lrkit", {"task": "digits-mlp", "metric": "accuracy", **attrs})
    return study


def test_the_best_is_chosen_on_the_mean_metric_of_the_complete_trials():
    study = make_study()
    add(study, 0.01, 0.90)
    add(study, 0.05, 0.95, std=0.03)
    add(study, 0.2, 0.93)
    result = TuneResult.from_study(study)
    assert (result.best.lr, result.best_value, result.best_std, result.best_trial) == (
        0.05,
        0.95,
        0.03,
        1,
    )


def test_a_lower_is_better_metric_picks_the_lowest_mean():
    study = make_study(direction="minimize", metric="loss")
    add(study, 0.01, 0.5)
    add(study, 0.05, 0.2)
    assert TuneResult.from_study(study).best.lr == 0.05


def test_a_pruned_trial_never_wins_even_with_a_better_report():
    study = make_study()
    add(study, 0.01, 0.90)
    add(study, 0.3, status="pruned", report=(20, 0.99), reason="pruned at step 20")
    assert TuneResult.from_study(study).best.lr == 0.01


def test_a_tie_on_mean_and_spread_goes_to_the_middle_lr_of_the_flat_top():
    study = make_study()
    for lr in (0.2, 0.01, 0.05, 0.1):  # a flat top over a decade and more, in trial order
        add(study, lr, 1.0)
    add(study, 0.5, 0.8)
    # of 0.01, 0.05, 0.1, 0.2 the two in the middle are 0.05 (trial 2) and 0.1 (trial 3)
    assert TuneResult.from_study(study).best.lr == 0.05
    study = make_study()
    for lr in (0.3, 0.01, 0.05):
        add(study, lr, 1.0)
    assert TuneResult.from_study(study).best.lr == 0.05  # not the earlier edge, 0.3


def test_a_tie_on_the_mean_goes_to_the_smaller_spread_then_the_earlier_trial():
    study = make_study()
    add(study, 0.01, 0.9, std=0.05)
    add(study, 0.02, 0.9, std=0.01)
    add(study, 0.03, 0.9, std=0.01)
    assert TuneResult.from_study(study).best_trial == 1


def test_all_trials_failed_gives_no_best_and_says_why():
    study = make_study()
    add(study, 0.5, status="diverged", reason="loss nan at step 7")
    add(study, 0.8, status="failed", reason="CUDA out of memory")
    result = TuneResult.from_study(study)
    assert result.best is None and math.isnan(result.best_value)
    assert "no trial completed (1 diverged, 1 failed)" in result.summary()
    assert "loss nan at step 7" in result.summary()
    with pytest.raises(ValueError, match="no best configuration: no trial completed"):
        result.train_line()


def test_an_empty_study_gives_no_best_and_an_empty_table():
    result = TuneResult.from_study(make_study())
    assert result.best is None and result.trials == []
    assert "no trial ran" in result.summary()


def test_the_table_has_a_row_per_trial_with_mean_std_status_verdict_and_reason():
    study = make_study()
    add(study, 0.01, 0.9012, std=0.0123, family="cosine", to=0.01, verdict="lr too low",
        splits=3)  # fmt: skip
    add(study, 0.9, status="diverged", reason="loss nan at step 7", verdict="diverged")
    add(study, 0.3, status="pruned", report=(20, 0.55), reason="pruned at step 20")
    lines = TuneResult.from_study(study).table().splitlines()
    assert "accuracy (mean ± std)" in lines[1]
    first, second, third = lines[2:5]
    assert first.lstrip().startswith("*0") and "0.9012 ± 0.012" in first
    assert "cosine" in first and " to=0.01" in first and "lr too low" in first
    assert "diverged" in second and "loss nan at step 7" in second
    assert "pruned" in third and "(0.55)" in third and "pruned at step 20" in third


def test_a_trial_of_one_split_shows_its_metric_without_a_spread():
    study = make_study()
    add(study, 0.01, 0.9012, std=0.0)
    row = TuneResult.from_study(study).table().splitlines()[2]
    assert "0.9012" in row and "±" not in row


def test_the_summary_names_the_best_its_spread_the_splits_and_the_verdicts():
    study = make_study()
    add(study, 0.05, 0.95, std=0.01, splits=6, verdict="healthy")
    add(study, 0.9, status="diverged", reason="loss nan", verdict="diverged")
    text = TuneResult.from_study(study).summary()
    assert "best: trial 0, accuracy 0.95 ± 0.01 (higher is better, mean over 6 splits)" in text
    assert "lr 0.05, schedule constant" in text
    assert "doctor: " in text and "healthy 1 (trials 0)" in text and "diverged 1 (trials 1)" in text


def test_importance_of_a_single_param_is_all_of_it_with_a_note():
    study = make_study()
    for i, lr in enumerate((0.001, 0.01, 0.1, 0.3, 0.5)):
        add(study, lr, 0.8 + 0.01 * i)
    result = TuneResult.from_study(study)
    assert result.importance() == {"lr": 1.0}
    assert result.importance_note() == "lr only (the one param searched)"


def test_importance_with_too_few_trials_is_empty_with_a_reason():
    study = make_study()
    add(study, 0.01, 0.9, family="cosine", to=0.01)
    add(study, 0.1, 0.8, family="cosine", to=0.1)
    result = TuneResult.from_study(study)
    assert result.importance() == {}
    assert "2 complete trials, needs at least 4" in result.importance_note()
    assert "importance: not measured" in result.summary()


def test_importance_ranks_the_param_the_metric_depends_on():
    study = make_study()
    for i in range(12):
        lr, to = 10 ** (-4 + 4 * i / 11), 10 ** (-3 + 2.5 * ((i * 7) % 12) / 11)
        add(study, lr, 0.5 + 0.04 * i, family="cosine", to=to)
    for evaluator in ("fanova", "ped-anova"):
        found = TuneResult.from_study(study).importance(evaluator)
        assert max(found, key=found.get) == "lr", (evaluator, found)


def test_an_unknown_importance_evaluator_is_named():
    with pytest.raises(ValueError, match="unknown importance evaluator 'shap'"):
        TuneResult.from_study(make_study()).importance("shap")


def test_the_train_line_parses_back_with_the_train_commands_own_parser():
    from lrkit.cli.train_cmd import train_command

    study = make_study(epochs=3)
    add(study, 0.0421, 0.9, family="cosine", to=0.05)
    line = TuneResult.from_study(study).train_line()
    argv = shlex.split(line)
    assert argv[:2] == ["lrkit", "train"]
    params = train_command.make_context("train", argv[2:]).params
    assert params["task_name"] == "digits-mlp" and params["lr"] == 0.0421
    assert params["spec"] == "warmup(5%) >> cosine(to=0.05)" and params["epochs"] == 3


def test_python_trains_the_best_with_fit():
    study = make_study(epochs=3)
    add(study, 0.0421, 0.9)
    code = TuneResult.from_study(study).python()
    assert code.endswith("lrkit.fit('digits-mlp', lr=0.0421, schedule='constant', epochs=3)")
    compile(code, "python()", "exec")


def test_json_round_trip_keeps_everything_nan_included():
    study = make_study(epochs=2, space="lr {1e-3..1 log}")
    add(study, 0.05, 0.95, std=math.nan)
    add(study, 0.9, status="diverged", reason="loss nan")
    result = TuneResult.from_study(study, storage="sqlite:///x.db")
    text = result.to_json()
    assert "NaN" not in text and '"nan"' in text
    back = TuneResult.from_json(text)
    assert back.to_dict() == result.to_dict()
    assert back.best == result.best and math.isnan(back.best_std)
    assert back.importance() == {"lr": 1.0}  # the distributions travel with the trials


def test_json_that_is_not_a_tune_result_is_refused_by_name():
    with pytest.raises(ValueError, match="keys \\['direction', 'metric', 'task', 'trials'\\]"):
        TuneResult.from_json('{"kind": "x"}')


def test_a_storage_password_is_never_kept():
    study = make_study()
    add(study, 0.05, 0.9, reason="")
    add(study, 0.5, status="failed",
        reason="could not connect to postgresql://bob:hunter2@db:5432/lr")  # fmt: skip
    result = TuneResult.from_study(study, storage="postgresql://bob:hunter2@db:5432/lr")
    everything = result.to_json() + result.table() + result.summary() + result.to_csv()
    assert "hunter2" not in everything and "bob:***@db" in everything


def test_the_plot_is_a_png_matplotlib_reads(tmp_path):
    import matplotlib.image

    study = make_study()
    add(study, 0.01, 0.9, family="cosine", to=0.01)
    add(study, 0.1, 0.95)
    add(study, 0.3, status="pruned", report=(20, 0.5))
    add(study, 0.9, status="diverged", reason="loss nan")
    path = tmp_path / "tune.png"
    TuneResult.from_study(study).plot(path)
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 200
    assert list(tmp_path.iterdir()) == [path]  # the temporary file is gone


def test_the_plot_of_a_study_with_no_complete_trial_is_drawn(tmp_path):
    study = make_study()
    add(study, 0.9, status="diverged", reason="loss nan")
    TuneResult.from_study(study).plot(tmp_path / "tune.png")
    assert (tmp_path / "tune.png").stat().st_size > 0


@pytest.mark.parametrize(("name", "magic"), [("plot.txt", b"\x89PNG"), ("plot.pdf", b"%PDF")])
def test_the_plot_is_a_png_unless_its_suffix_names_a_format_matplotlib_writes(
    tmp_path, name, magic
):
    # 'lrkit tune --png plot.txt' failed with a traceback at the very end of the tune
    study = make_study()
    add(study, 0.1, 0.95)
    TuneResult.from_study(study).plot(tmp_path / name)
    assert (tmp_path / name).read_bytes().startswith(magic)


def test_save_to_a_folder_writes_the_json_the_csv_and_the_plot(tmp_path):
    study = make_study()
    add(study, 0.05, 0.9, family="cosine", to=0.02)
    written = TuneResult.from_study(study).save(tmp_path)
    assert written == tmp_path / "tune.json"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["trials.csv", "tune.json", "tune.png"]
    header, row = (tmp_path / "trials.csv").read_text().splitlines()
    assert header.startswith("number,state,status,lr,family,schedule,cosine.to,metric_mean")
    assert row.startswith("0,COMPLETE,completed,0.05,cosine,warmup(5%) >> cosine(to=0.02),0.02,0.9")
    assert TuneResult.load(written).best.lr == 0.05


def test_a_trial_without_lrkit_attrs_is_read_from_its_params_and_value():
    study = optuna.create_study(direction="maximize")
    study.add_trial(create_trial(params={"lr": 0.02}, distributions={"lr": LR}, value=0.7))
    result = TuneResult.from_study(study)
    assert result.best == Config(lr=0.02) and result.best_value == 0.7
    assert result.trials[0]["status"] == "completed" and result.metric == "value"


def test_the_module_example_runs():
    import doctest

    import lrkit.tune.result

    result = doctest.testmod(lrkit.tune.result)
    assert result.attempted > 0 and result.failed == 0


def test_queued_trials_not_run_are_one_line_not_a_row_each():
    # the grid sampler queues every point; with fewer trials asked for, the rest wait
    study = make_study()
    add(study, 0.01, 0.90)
    for lr in (0.02, 0.03, 0.04):
        study.enqueue_trial({"lr": lr})
    result = TuneResult.from_study(study)
    table, summary = result.table(), result.summary()
    assert "waiting" not in table and "3 more queued trials (grid points) not run" in table
    assert summary.startswith("lrkit tune: digits-mlp, 1 trials (1 completed); 3 more queued")


def test_a_budget_spent_before_any_trial_says_so():
    result = TuneResult.from_study(
        make_study(budget=0.5, steps_per_run=18, find_steps=20, pick_steps=0)
    )
    assert "the budget of 0.5 full runs (9 steps) left no room" in result.no_best_reason()
