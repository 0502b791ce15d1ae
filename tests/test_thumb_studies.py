"""The rule-of-thumb studies end to end on tiny runs: batch size and gradient clipping."""

import math
import subprocess
import sys

import pytest
from user_tasks import tiny

import lrkit
from lrkit.errors import UserError
from lrkit.tune.thumb import BatchSizeStudy, ClipStudy, batch_size_study, clip_study
from lrkit.tune.thumb import clip as clip_module
from lrkit.tune.thumb.batch_size import least_budget
from lrkit.tune.thumb.clip import lr_grid, parse_thresholds
from lrkit.tune.thumb.clip_result import Arm, within

pytestmark = pytest.mark.usefixtures("one_thread")


# -- batch size ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def wine_study():
    return batch_size_study("wine-mlp", [32, 8, 16], epochs=2, progress=False)


def test_the_batch_size_study_picks_one_lr_per_batch_size_in_ascending_order(wine_study):
    assert wine_study.batch_sizes == [8, 16, 32]
    assert all(lr > 0 and math.isfinite(lr) for lr in wine_study.lrs)
    assert [r["steps_per_epoch"] for r in wine_study.rows] == [18, 9, 5]


def test_the_batch_size_study_fits_k_on_its_picks_and_says_it_in_words(wine_study):
    direct = lrkit.tune.thumb.fit_power_law(wine_study.batch_sizes, wine_study.lrs)
    assert wine_study.k == pytest.approx(direct.k) and wine_study.fit.n == 3
    assert wine_study.verdict.startswith(f"k = {wine_study.k:.2f} [")
    assert len(wine_study.stops) == 2 and "linear rule" in wine_study.stops[0]


def test_a_run_too_short_for_the_budget_is_picked_with_the_least_budget_that_affords_it(
    wine_study,
):
    row = wine_study.rows[2]  # batch 32: 5 steps an epoch, 10 steps a run
    assert row["budget"] == least_budget(10) > 1.5
    assert "(raised)" in wine_study.table()


def test_the_batch_size_study_round_trips_through_json_and_saves_a_plot(wine_study, tmp_path):
    paths = wine_study.save(tmp_path)
    assert [p.name for p in paths] == ["batch-size.json", "batch-size.png"]
    assert paths[1].stat().st_size > 1000
    again = BatchSizeStudy.load(paths[0])
    assert again.lrs == wine_study.lrs and again.summary() == wine_study.summary()


def test_several_seeds_fit_every_pick_and_report_their_geometric_mean():
    lines = []
    study = batch_size_study("wine-mlp", [8, 16, 32], epochs=1, seeds=2, progress=lines.append)
    assert study.fit.n == 6 and len(lines) == 3 and "geometric mean" in lines[0]
    row = study.rows[0]
    assert row["lr"] == pytest.approx(math.sqrt(row["lrs"][0] * row["lrs"][1]))


def test_batch_sizes_larger_than_the_training_data_are_named_with_its_size():
    with pytest.raises(UserError, match=r"batch sizes 200, 1000 larger than .*\(142 examples\)"):
        batch_size_study("wine-mlp", [8, 200, 1000])


@pytest.mark.parametrize(
    "sizes, message",
    [
        ([8, 16, 16, 32], "given twice: 16"),
        ([0, 8, 16], "whole numbers >= 1, got 0"),
        ([8, 16.5, 32], "whole numbers >= 1, got 16.5"),
        ([8, True, 32], "whole numbers >= 1, got True"),
        ([8, 16], "at least 3 batch sizes, got 2"),
        ([], "at least 3 batch sizes, got 0"),
        ("16,32,64", "a list of whole numbers"),
    ],
)
def test_batch_sizes_that_do_not_fit_are_refused_by_name(sizes, message):
    with pytest.raises(UserError, match=message):
        batch_size_study("wine-mlp", sizes)


def test_a_task_without_a_data_description_cannot_be_rebatched():
    with pytest.raises(UserError, match="no data description"):
        batch_size_study(tiny(), [8, 16, 32])


@pytest.mark.parametrize("budget", [math.nan, math.inf, 0, -1])
def test_a_bad_budget_is_refused(budget):
    with pytest.raises(ValueError, match="budget"):
        batch_size_study("wine-mlp", [8, 16, 32], budget=budget)


@pytest.mark.parametrize("study", ["batch", "clip"])
def test_a_negative_seed_is_refused_as_compare_and_tune_refuse_it(study):
    with pytest.raises(ValueError, match="seed must be"):
        if study == "batch":
            batch_size_study("wine-mlp", [8, 16, 32], seed=-1)
        else:
            clip_study("wine-mlp", [1.0], lrs=[0.1], seed=-1)


# -- clipping: the pieces --------------------------------------------------------------------
def test_thresholds_are_absolute_norms_or_multiples_of_the_median():
    assert parse_thresholds(None) == [(0.25, True), (1.0, True), (4.0, True)]
    assert parse_thresholds([0.5, "2x", "1.5"]) == [(0.5, False), (2.0, True), (1.5, False)]
    assert parse_thresholds("0.5, 3X") == [(0.5, False), (3.0, True)]


@pytest.mark.parametrize("bad", [[math.nan], [math.inf], [0], [-1], ["abc"], ["nanx"], ["0x"], []])
def test_a_bad_threshold_is_refused_with_what_is_accepted(bad):
    with pytest.raises(UserError, match="threshold"):
        parse_thresholds(bad)


def test_the_default_grid_climbs_a_quarter_decade_at_a_time_from_a_tenth_of_the_tasks_lr():
    grid = lr_grid(tiny(), None)
    assert grid[0] == pytest.approx(0.01)
    assert grid[1] / grid[0] == pytest.approx(10**0.25)
    assert lr_grid(tiny(), [1.0, 0.1, 0.1]) == [0.1, 1.0]


@pytest.mark.parametrize("lrs", [[math.nan], [0.1, math.inf], [0], [-0.1], []])
def test_a_bad_lr_of_the_grid_is_refused(lrs):
    with pytest.raises(UserError):
        lr_grid(tiny(), lrs)


def test_within_tolerance_is_relative_to_the_best_and_follows_the_metrics_direction():
    assert within(0.96, 1.0, 0.05, True) and not within(0.94, 1.0, 0.05, True)
    assert within(2.1, 2.0, 0.05, False) and not within(2.2, 2.0, 0.05, False)
    assert not within(math.nan, 1.0, 0.05, True)


def _fake_runs(monkeypatch, limits):
    """Runs that train up to ``limits[threshold]`` and diverge above it."""

    def run(task, lr, arm, schedule, epochs, seed, seeds):
        diverged = lr > limits[arm.threshold] * 1.0001
        return {"lr": lr, "metric": math.nan if diverged else 0.9, "metrics": [],
                "diverged": diverged, "statuses": [], "seconds": 0.0}  # fmt: skip

    monkeypatch.setattr(clip_module, "_run", run)


def test_an_arm_stops_climbing_after_two_divergences_in_a_row(monkeypatch):
    _fake_runs(monkeypatch, {None: 0.1, 1.0: 1.0})
    grid = [10 ** (i / 4) * 0.01 for i in range(16)]
    study = clip_study(tiny(), [1.0], lrs=grid, progress=False)
    tried = [r["lr"] for r in study.runs if r["arm"] == 0]
    assert max(tried) == pytest.approx(grid[6])  # 0.1 is grid[4]; grid[5], grid[6] diverge
    assert study.largest(0) == pytest.approx(0.1) and study.largest(1) == pytest.approx(1.0)
    assert study.verdicts == ["clipping at 1 raised the largest trainable lr from 0.1 to 1 (x10)"]


def _study(largest_none: float, largest_clip: float) -> ClipStudy:
    runs = [{"arm": 0, "lr": lr, "metric": 0.9, "diverged": False} for lr in (0.1, largest_none)]
    runs += [{"arm": 1, "lr": lr, "metric": 0.9, "diverged": False} for lr in (0.1, largest_clip)]
    runs += [{"arm": a, "lr": 100.0, "metric": math.nan, "diverged": True} for a in (0, 1)]
    return ClipStudy("t", "constant", 1, 1, 0, 0.05, "accuracy", True, 2.0,
                     [Arm(None), Arm(2.0, 1.0)], runs, [0.1, 0.3, 1.0, 100.0])  # fmt: skip


def test_the_verdict_says_when_clipping_did_not_raise_the_largest_lr():
    assert _study(0.3, 0.3).verdicts == [
        "clipping at 2 (1x the median norm 2) did not raise it (0.3 with and without)"
    ]


def test_the_verdict_says_when_clipping_lowered_the_largest_lr():
    assert "lowered the largest trainable lr from 1 to 0.3 (x0.3)" in _study(1.0, 0.3).verdicts[0]


def test_a_run_that_ends_beyond_the_tolerance_of_the_best_does_not_train():
    study = _study(0.3, 1.0)
    study.runs.append({"arm": 0, "lr": 0.5, "metric": 0.8, "diverged": False})
    assert not study.trains(study.runs[-1]) and study.largest(0) == pytest.approx(0.3)


# -- clipping: end to end --------------------------------------------------------------------
@pytest.fixture(scope="module")
def clip_wine():
    return clip_study("wine-mlp", ["1x", 0.5], lrs=[0.01, 0.1, 1.0], epochs=2, progress=False)


def test_the_clip_study_measures_the_median_norm_and_sets_multiples_from_it(clip_wine):
    assert clip_wine.median_norm > 0
    assert [a.threshold for a in clip_wine.arms] == [None, clip_wine.median_norm, 0.5]
    assert clip_wine.arms[1].label.endswith("(1x median)")


def test_the_clip_study_trains_every_arm_on_the_grid_and_gives_a_verdict_per_threshold(clip_wine):
    assert {(r["arm"], r["lr"]) for r in clip_wine.runs} <= {
        (a, lr) for a in range(3) for lr in (0.01, 0.1, 1.0)
    }
    assert len(clip_wine.verdicts) == 2 and clip_wine.verdict.startswith("largest trainable lr")
    for i in range(3):
        assert clip_wine.largest(i) in (None, 0.01, 0.1, 1.0)
    assert "no clipping" in clip_wine.table() and "0.01" in clip_wine.grid_table()


def test_the_clip_study_round_trips_through_json_and_saves_a_plot(clip_wine, tmp_path):
    paths = clip_wine.save(tmp_path)
    assert [p.name for p in paths] == ["clip.json", "clip.png"]
    again = ClipStudy.load(paths[0])
    assert again.verdict == clip_wine.verdict and again.arms == clip_wine.arms


def test_only_absolute_thresholds_need_no_median_norm():
    study = clip_study(tiny(), [1.0], lrs=[0.1], epochs=1, progress=False)
    assert study.median_norm is None and len(study.runs) == 2


@pytest.mark.parametrize("tolerance", [0, 1, math.nan, -0.1])
def test_a_bad_tolerance_is_refused(tolerance):
    with pytest.raises(ValueError, match="tolerance"):
        clip_study(tiny(), [1.0], lrs=[0.1], tolerance=tolerance)


def test_import_lrkit_does_not_import_the_studies_until_asked():
    code = (
        "import sys, lrkit; a = 'lrkit.tune.thumb' in sys.modules;"
        " f = lrkit.batch_size_study; print(a, 'lrkit.tune.thumb' in sys.modules, 'optuna' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True", "False"]
    assert lrkit.clip_study is clip_study and lrkit.BatchSizeStudy is BatchSizeStudy


def test_a_lucky_run_above_a_failure_does_not_raise_the_largest_trainable_lr():
    study = _study(0.3, 0.3)
    study.runs.append({"arm": 0, "lr": 1.0, "metric": 0.5, "diverged": False})
    study.runs.append({"arm": 0, "lr": 3.0, "metric": 0.9, "diverged": False})
    assert study.trains(study.runs[-1]) and study.largest(0) == pytest.approx(0.3)


def test_a_run_whose_validation_loss_exploded_while_the_metric_held_does_not_train():
    study = _study(0.3, 1.0)
    study.start_loss = 2.3  # the untrained model's
    for r in study.runs:
        r["val_loss"] = 5000.0 if (r["arm"], r["lr"]) == (1, 1.0) else 0.2
    blown_run = next(r for r in study.runs if (r["arm"], r["lr"]) == (1, 1.0))
    assert not study.trains(blown_run) and study.largest(1) < 1.0
    assert "validation loss no higher than the untrained model's 2.3" in study.verdict


def test_a_tiny_validation_loss_far_below_the_best_still_trains():
    """Ratios to the best loss would fail every run of a separable task (best 2e-6)."""
    study = _study(0.3, 1.0)
    study.start_loss = 1.1
    for i, r in enumerate(study.runs):
        r["val_loss"] = 2e-6 if i == 0 else 3e-4
    assert study.largest(0) == pytest.approx(0.3) and study.largest(1) == pytest.approx(1.0)


def test_an_arm_that_fails_while_still_improving_keeps_climbing(monkeypatch):
    """Below its peak a run fails for being too slow: the arm climbs on until it is past it."""

    def run(task, lr, arm, schedule, epochs, seed, seeds):
        # tiny's metric is its validation loss: no clipping 0.1 at every lr up to 1; the
        # clipped arm improves until lr 1, where it reaches 0.1 too
        metric = 0.1 if arm.threshold is None else 0.5 - 0.4 * min(lr, 1.0)
        diverged = lr > 1.0001
        return {"lr": lr, "metric": math.nan if diverged else metric, "metrics": [],
                "diverged": diverged, "statuses": [], "seconds": 0.0}  # fmt: skip

    monkeypatch.setattr(clip_module, "_run", run)
    study = clip_study(tiny(), [1.0], lrs=[0.1, 0.2, 0.4, 0.7, 1.0, 2.0, 4.0, 8.0], progress=False)
    clipped = [r["lr"] for r in study.runs if r["arm"] == 1]
    assert clipped == [0.1, 0.2, 0.4, 0.7, 1.0, 2.0, 4.0]  # stops after two divergences
    assert study.largest(1) == pytest.approx(1.0)


def test_an_arm_whose_validation_loss_blows_up_stops_climbing(monkeypatch):
    """Accuracy held while the loss blew up past the untrained model's (digits-mlp with
    clipping at lr 5,000): such runs neither train nor count as progress, so the arm stops
    after two of them."""

    def run(task, lr, arm, schedule, epochs, seed, seeds):
        loss = 0.2 if lr <= 0.4 else 1e8  # the untrained tiny model's is about 1
        return {"lr": lr, "metric": 0.1, "val_loss": loss, "metrics": [], "diverged": False,
                "statuses": [], "seconds": 0.0}  # fmt: skip

    monkeypatch.setattr(clip_module, "_run", run)
    study = clip_study(tiny(), [1.0], lrs=[0.1, 0.2, 0.4, 0.7, 1.0, 2.0, 4.0], progress=False)
    assert [r["lr"] for r in study.runs if r["arm"] == 1] == [0.1, 0.2, 0.4, 0.7, 1.0]
    assert study.largest(0) == study.largest(1) == pytest.approx(0.4)


@pytest.mark.parametrize("module", ["batch_size", "clip"])
def test_the_study_examples_run(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(f"lrkit.tune.thumb.{module}"))
    assert result.attempted >= 2 and result.failed == 0


def test_numpy_batch_sizes_are_whole_numbers_too():
    import numpy as np

    from lrkit.tasks import get_task
    from lrkit.tune.thumb.batch_size import check_batch_sizes

    assert check_batch_sizes(get_task("wine-mlp"), np.array([32, 8, 16])) == [8, 16, 32]
    with pytest.raises(UserError, match=r"batch size 1e\+30 larger"):
        check_batch_sizes(get_task("wine-mlp"), [8, 16, 10**30])


def test_a_clip_study_with_diverged_runs_round_trips_through_json():
    study = _study(0.3, 1.0)
    again = ClipStudy.from_json(study.to_json())
    assert math.isnan(again.runs[-1]["metric"]) and again.runs[-1]["diverged"]
    assert again.verdicts == study.verdicts and again.largest(1) == pytest.approx(1.0)
