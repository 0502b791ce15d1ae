"""Issue 11 as a hostile user meets it: compare's verdict with diverged seeds, entries that
cannot train refused before anything trains, --same-lr auto with only lr-free entries, the
transfer task's cache folder when it is a file."""

import math

import pytest

from lrkit.errors import UserError
from lrkit.tasks import optimizer_info
from lrkit.tune.compare import Entry, compare
from lrkit.tune.compare import run as run_module
from lrkit.tune.compare.stats import summarize, verdict

pytestmark = pytest.mark.usefixtures("one_thread")
NAN = math.nan


# -- the verdict ------------------------------------------------------------------------------
def test_a_clean_best_wins_over_a_runner_up_that_diverged_on_most_seeds():
    # b diverged on 2 of 3 seeds: it ranks below a and cannot win; with 3 seeds each, "give 2
    # seeds or more" would be wrong advice
    v = verdict({"a": summarize([0.90, 0.91, 0.92]), "b": summarize([0.95, NAN, NAN])}, True)
    assert v.winner == "a" and v.tied == ()
    assert "diverged on 2 of 3 seeds" in v.text and "2 seeds or more" not in v.text


def test_when_every_entry_diverged_somewhere_the_verdict_says_so_not_give_more_seeds():
    v = verdict({"a": summarize([0.9, NAN, NAN]), "b": summarize([0.80, 0.85, NAN])}, True)
    assert v.winner is None
    assert "every entry had a diverged run" in v.text and "2 seeds or more" not in v.text


def test_one_seed_still_names_no_winner_when_the_runner_up_diverged():
    v = verdict({"a": summarize([0.9]), "b": summarize([NAN])}, True)
    assert v.winner is None and "no interval" in v.text


# -- entries that cannot train: refused before any training -----------------------------------
@pytest.fixture
def no_training(monkeypatch):
    """compare's fit and pick_lr, counted."""
    calls = []

    def counted(real):
        def call(*args, **kwargs):
            calls.append(real.__name__)
            return real(*args, **kwargs)

        return call

    monkeypatch.setattr(run_module, "fit", counted(run_module.fit))
    monkeypatch.setattr(run_module, "pick_lr", counted(run_module.pick_lr))
    return calls


def test_a_model_too_small_for_frozen_is_refused_before_the_first_entry_trains(no_training):
    entries = [Entry("plain", lr=0.1), Entry("frozen", finetune="frozen", lr=0.1)]
    with pytest.raises(UserError, match="entry 'frozen': .*at least two layers"):
        compare("user_tasks:tiny", entries, seeds=1, progress=False)
    assert no_training == []


def test_a_schedule_that_is_0_throughout_is_refused_before_the_first_entry_trains(no_training):
    entries = [Entry("plain", lr=0.1), Entry("zero", "0", lr=0.1)]
    with pytest.raises(UserError, match="entry 'zero': .*0 at every step"):
        compare("user_tasks:tiny", entries, seeds=1, progress=False)
    assert no_training == []


@pytest.mark.skipif(not optimizer_info("schedulefree-adamw").available,
                    reason="schedulefree is not installed (pip install lrkit[lrfree])")  # fmt: skip
def test_a_schedule_free_entry_with_a_decay_is_refused_before_the_first_entry_trains(
    no_training,
):
    entries = ["constant", "cosine+schedulefree-adamw"]
    with pytest.raises(UserError, match="entry 'cosine\\+schedulefree-adamw': .*no decaying") as e:
        compare("wine-mlp", entries, seeds=1, budget=0.5, progress=False)
    assert no_training == []
    assert "compressed" not in str(e.value)  # the run's schedule, not pick_lr's short one


@pytest.mark.skipif(not optimizer_info("prodigy").available,
                    reason="prodigyopt is not installed (pip install lrkit[lrfree])")  # fmt: skip
def test_prodigy_over_layerwise_groups_is_refused_before_the_first_entry_trains(no_training):
    with pytest.raises(UserError, match="entry 'layerwise\\+prodigy': .*dadapt-adam"):
        compare("digits-mlp", ["constant", "layerwise+prodigy"], seeds=1, progress=False)
    assert no_training == []


# -- same lr ------------------------------------------------------------------------------------
@pytest.mark.skipif(not optimizer_info("prodigy").available,
                    reason="prodigyopt is not installed (pip install lrkit[lrfree])")  # fmt: skip
def test_same_lr_auto_with_only_lr_free_entries_spends_nothing_on_a_rate_no_entry_uses(
    no_training, capsys
):
    r = compare("user_tasks:tiny", ["prodigy"], seeds=1, same_lr="auto", progress=True)
    assert "pick_lr" not in no_training
    assert r.same_lr is None and r.mode_rows("same") == []
    assert "no same-lr rows: every entry is lr-free" in capsys.readouterr().out


# -- the transfer task's cache --------------------------------------------------------------------
def test_a_cache_folder_that_is_a_file_says_so(tmp_path, monkeypatch):
    from lrkit.train.pretrained import Pretraining, pretrained_body

    blocker = tmp_path / "cache"
    blocker.write_text("not a folder")
    monkeypatch.setenv("LRKIT_CACHE", str(blocker))
    with pytest.raises(UserError, match=rf"'{blocker}': it is a file, not a folder; set LRKIT"):
        pretrained_body(Pretraining(epochs=1))


# -- the plot -------------------------------------------------------------------------------------
def test_the_plot_keeps_an_lr_free_multiplier_off_the_lr_axis_and_says_what_it_is():
    from lrkit.tune.compare import CompareResult, Row, SeedRun

    def row(label, lr, how):
        run = SeedRun(seed=0, status="completed", final=0.9, best=0.9, best_epoch=0,
                      best_step=10, initial=0.1, steps=10, seconds=0.1,
                      curve=[[5, 0.05, 0.5, 1.0], [10, 0.1, 0.9, 0.5]])  # fmt: skip
        return Row(label=label, schedule="constant", lr=lr, how=how, runs=[run],
                   lr_curve=[[0, lr], [10, lr]])  # fmt: skip

    result = CompareResult(task="toy", metric="accuracy", higher_is_better=True, seeds=1,
                           seed=0, epochs=1, steps=10, lr_how="pick", budget=1.5, target=0.8,
                           target_how="given",
                           rows=[row("adamw", 3e-3, "pick"), row("prodigy", 1.0, "lr-free")])  # fmt: skip
    fig = result.plot()
    lr_ax = next(ax for ax in fig.axes if ax.get_yscale() == "log")
    assert len(lr_ax.get_lines()) == 1  # adamw's lr only: prodigy's 1.0 is not an lr
    assert lr_ax.get_ylim()[1] < 0.1  # the axis spans the absolute rates
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert "prodigy (lr-free, multiplier 1)" in labels


# -- a compare that is killed -------------------------------------------------------------------
def test_compare_json_holds_the_rows_finished_so_far_while_it_runs(monkeypatch, tmp_path):
    import lrkit

    seen = []

    def fit_and_look(*args, **kwargs):
        seen.append((tmp_path / "compare.json").is_file() and lrkit.CompareResult.load(tmp_path))
        return real(*args, **kwargs)

    real = run_module.fit
    monkeypatch.setattr(run_module, "fit", fit_and_look)
    entries = [Entry("slow", lr=0.05), Entry("fast", lr=0.1)]
    compare("user_tasks:tiny", entries, seeds=2, out=tmp_path, progress=False)
    assert seen[:2] == [False, False]  # nothing has finished yet: nothing is saved
    during = seen[2]  # the second entry's first run: a kill -9 now leaves this
    assert [row.label for row in during.rows] == ["slow"] and "partial" in during.note
    assert lrkit.CompareResult.load(tmp_path).note == ""  # the whole result, at the end


def test_the_cached_body_is_readable_like_any_file_the_user_writes(tmp_path, monkeypatch):
    import os

    from lrkit.train.pretrained import Pretraining, cache_path, pretrained_body

    monkeypatch.setenv("LRKIT_CACHE", str(tmp_path / "cache"))
    settings = Pretraining(epochs=1)
    umask = os.umask(0o022)
    try:
        pretrained_body(settings)
    finally:
        os.umask(umask)
    # a shared cache folder: others can read it (mkstemp's 0600 made them rebuild it)
    assert cache_path(settings).stat().st_mode & 0o777 == 0o644


# -- the clip study's plot ----------------------------------------------------------------------
def test_the_clip_plot_draws_a_blown_run_hollow_and_says_what_the_dotted_lines_are():
    from lrkit.tune.thumb.clip_result import Arm, ClipStudy

    runs = [
        {"arm": 0, "lr": 0.1, "metric": 0.9, "val_loss": 0.5, "diverged": False},
        {"arm": 0, "lr": 1.0, "metric": 0.9, "val_loss": 9.0, "diverged": False},  # blown
    ]
    study = ClipStudy("t", "constant", 1, 1, 0, 0.05, "accuracy", True, None, [Arm(None)], runs,
                      [0.1, 1.0], start_loss=2.0)  # fmt: skip
    assert not study.trains(runs[1])  # accuracy held, the loss blew up
    ax = study.plot().axes[0]
    hollow = [line for line in ax.get_lines() if line.get_markerfacecolor() == "white"]
    assert len(hollow) == 1 and list(hollow[0].get_xdata()) == [1.0]
    assert "dotted: each arm's largest trainable lr" in ax.get_title()


def test_a_clip_threshold_given_twice_is_refused_before_any_run():
    from lrkit.tune.thumb.clip import parse_thresholds

    with pytest.raises(UserError, match="threshold 1x is given twice"):
        parse_thresholds(["1x", "0.25x", "1x"])
    assert parse_thresholds(["1x", "1"]) == [(1.0, True), (1.0, False)]  # 1x is not 1


def test_one_entry_with_one_seed_names_no_winner_as_one_seed_never_does():
    v = verdict({"a": summarize([0.9])}, True)
    assert v.winner is None and v.text.startswith("a is the only entry") and "no interval" in v.text
