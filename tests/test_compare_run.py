"""lrkit.compare on a real (tiny) task: own rates, same-lr rows, seeds, the target, errors.

One compare of wine-mlp (2 entries x 2 seeds, budget 0.5 runs a pick) is shared by the
tests that only read it.
"""

import math

import pytest

import lrkit
from lrkit.errors import UserError
from lrkit.tasks import optimizer_info
from lrkit.tune.compare import Entry, compare
from lrkit.tune.compare import run as run_module

pytestmark = pytest.mark.usefixtures("one_thread")
SAME = 0.003  # far below what pick_lr picks on wine-mlp


def needs(package):
    """Skip, saying why, only when an optional optimizer's package is missing (CI has them)."""
    name = {"prodigyopt": "prodigy", "schedulefree": "schedulefree-adamw"}[package]
    return pytest.mark.skipif(not optimizer_info(name).available,
                              reason=f"{package} is not installed (pip install lrkit[lrfree])")  # fmt: skip


@pytest.fixture(scope="module")
def result():
    return compare("wine-mlp", ["constant", "cosine"], seeds=2, budget=0.5, same_lr=SAME,
                   progress=False)  # fmt: skip


def test_compare_and_its_result_are_lazy_names_of_lrkit():
    assert lrkit.compare is compare
    assert lrkit.CompareResult.__name__ == "CompareResult"


def test_each_entry_runs_at_the_rate_pick_lr_picks_for_its_schedule(result):
    own = result.mode_rows("own")
    for row in own:
        picked = lrkit.pick_lr("wine-mlp", row.schedule, budget=0.5, seed=0,
                               progress=False)  # fmt: skip
        assert row.how == "pick" and row.lr == pytest.approx(picked.lr)
        assert 0 < row.cost <= 0.5


def test_own_rate_and_same_lr_rows_really_train_at_different_rates(result):
    own, same = result.mode_rows("own"), result.mode_rows("same")
    assert [r.label for r in same] == ["constant", "cosine"]
    assert all(r.lr == SAME and r.how == "same" for r in same)
    const_own, const_same = own[0], same[0]
    assert const_own.lr != SAME
    # a constant schedule's lr curve is its lr at every step: what fit really used
    assert [lr for _, lr in const_own.lr_curve] == pytest.approx([const_own.lr] * 135)
    assert [lr for _, lr in const_same.lr_curve] == pytest.approx([SAME] * 135)


def test_every_entry_runs_once_per_seed_from_seed(result):
    for row in result.rows:
        assert [r.seed for r in row.runs] == [0, 1]
        assert all(r.status == "completed" and r.steps == result.steps for r in row.runs)


def test_the_default_target_lies_between_the_untrained_and_the_best_final(result):
    initial = min(r.initial for row in result.rows for r in row.runs)
    best = max(row.summary().mean for row in result.rows)
    assert result.target == pytest.approx(initial + 0.95 * (best - initial))
    assert "95% of the way" in result.target_how


def test_runs_are_validated_often_enough_to_time_the_target(result):
    curve = result.rows[0].runs[0].curve
    assert len(curve) >= 18  # VAL_POINTS validations for a 15-epoch run, not 15
    assert all(math.isfinite(p[1]) for p in curve)


def test_auto_same_lr_is_the_first_entrys_own_rate_and_reuses_its_runs():
    r = compare("wine-mlp", ["cosine", "constant"], seeds=1, budget=0.5, same_lr="auto",
                progress=False)  # fmt: skip
    first_own, first_same = r.rows[0], r.mode_rows("same")[0]
    assert r.same_lr == first_own.lr and r.same_how == "cosine's own rate"
    assert first_same.runs == first_own.runs
    assert r.mode_rows("same")[1].lr == first_own.lr


def test_an_entry_with_its_own_lr_keeps_it_and_spends_nothing():
    r = compare("wine-mlp", [Entry("fixed", "constant", lr=0.02)], seeds=1, epochs=1,
                progress=False)  # fmt: skip
    assert (r.rows[0].lr, r.rows[0].how, r.rows[0].cost) == (0.02, "given", 0.0)


@needs("prodigyopt")
def test_an_lr_free_optimizer_is_not_picked_but_runs_at_1_and_has_no_same_lr_row():
    r = compare("wine-mlp", ["prodigy", "constant"], seeds=1, same_lr=0.01, budget=0.5,
                progress=False)  # fmt: skip
    prodigy = r.rows[0]
    assert (prodigy.lr, prodigy.how, prodigy.cost, prodigy.optimizer) == (1.0, "lr-free", 0.0,
                                                                         "prodigy")  # fmt: skip
    assert prodigy.runs[0].status == "completed"
    assert [row.label for row in r.mode_rows("same")] == ["constant"]


@needs("schedulefree")
def test_a_schedule_free_optimizer_alone_gets_a_warmup_and_a_decay_is_refused_naming_the_entry():
    r = compare("wine-mlp", ["schedulefree-adamw"], seeds=1, budget=0.5, progress=False)
    assert r.rows[0].schedule == "warmup(5%)" and r.rows[0].runs[0].status == "completed"
    with pytest.raises(UserError, match="entry 'cosine\\+schedulefree-adamw': .*no decaying"):
        compare("wine-mlp", ["cosine+schedulefree-adamw"], seeds=1, budget=0.5, progress=False)


def test_finetune_entries_train_the_task_that_lrkit_tasks_finetune_makes(monkeypatch):
    made = []

    def spy(task, how):
        made.append((task.name, how))
        return real(task, how)

    real = run_module.finetune
    monkeypatch.setattr(run_module, "finetune", spy)
    r = compare("wine-mlp", ["frozen", "layerwise+cosine"], seeds=1, budget=0.5, progress=False)
    assert made == [("wine-mlp", "frozen"), ("wine-mlp", "layerwise")]
    assert [(row.finetune, row.runs[0].status) for row in r.rows] == [
        ("frozen", "completed"),
        ("layerwise", "completed"),
    ]


def test_progress_prints_a_line_per_rate_and_per_run(capsys):
    compare("wine-mlp", ["constant"], seeds=2, budget=0.5, progress=None)
    lines = capsys.readouterr().out.splitlines()
    assert any(x.startswith("compare wine-mlp: constant: lr ") for x in lines)
    assert sum(x.startswith("compare wine-mlp: [") for x in lines) == 2


def test_out_saves_the_json_and_the_plot(tmp_path):
    compare("wine-mlp", ["constant"], seeds=1, out=tmp_path / "c", progress=False, budget=0.5)
    assert (tmp_path / "c" / "compare.json").is_file() and (
        tmp_path / "c" / "compare.png"
    ).is_file()
    assert lrkit.CompareResult.load(tmp_path / "c").rows[0].label == "constant"


def test_tune_chooses_each_rate_with_a_small_tune_over_lr():
    r = compare("wine-mlp", ["constant"], seeds=1, lr="tune", budget=3, progress=False)
    row = r.rows[0]
    assert row.how == "tune" and 0 < row.cost <= 3.0 + 0.5 and row.lr > 0


@pytest.mark.parametrize(
    ("kwargs", "said"),
    [
        ({"seeds": 0}, "seeds must be a whole number >= 1, got 0"),
        ({"seeds": 2.5}, "seeds must be a whole number"),
        ({"lr": "guess"}, "lr must be one of pick, tune, got 'guess'"),
        ({"same_lr": math.nan}, "same_lr must be a finite number > 0, got nan"),
        ({"same_lr": "sometimes"}, "same_lr must be a peak lr > 0, 'auto' or None"),
        ({"target": math.inf}, "target (a metric value) must be a finite number, got inf"),
        ({"budget": 0}, "budget (full runs) must be a finite number > 0, got 0"),
        ({"epochs": 0}, "epochs must be a whole number >= 1"),
        ({"progress": "yes"}, "progress must be None, True or False"),
    ],
)
def test_bad_arguments_are_refused_before_any_training(kwargs, said):
    with pytest.raises(UserError) as e:
        compare("wine-mlp", ["constant"], **kwargs)
    assert said in str(e.value)


def test_an_unknown_task_is_refused():
    with pytest.raises(UserError, match="unknown task 'wine-mpl'"):
        compare("wine-mpl", ["constant"])


def test_a_budget_too_small_for_pick_lr_names_the_entry():
    with pytest.raises(UserError, match="entry 'constant': budget 0.01 runs .* too small"):
        compare("wine-mlp", ["constant"], budget=0.01, epochs=1, progress=False)


def test_a_given_target_is_used_as_it_is():
    r = compare("wine-mlp", ["constant"], seeds=1, budget=0.5, target=0.9, progress=False)
    assert (r.target, r.target_how) == (0.9, "given")
    hit = r.rows[0].to_target(0.9, True)
    first = next(p for p in r.rows[0].runs[0].curve if p[2] >= 0.9)
    assert hit["steps"] == first[0] and hit["reached"] == 1


def test_an_interrupt_saves_the_rows_that_finished_and_says_they_are_partial(monkeypatch, tmp_path):
    calls = []

    def fit_then_interrupt(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # the second entry's first seed
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    real = run_module.fit
    monkeypatch.setattr(run_module, "fit", fit_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        compare("wine-mlp", ["constant", "cosine"], seeds=2, budget=0.5, out=tmp_path,
                progress=False)  # fmt: skip
    saved = lrkit.CompareResult.load(tmp_path)
    assert [r.label for r in saved.rows] == ["constant"] and len(saved.rows[0].runs) == 2
    assert saved.note.startswith("interrupted") and saved.note in saved.table()
