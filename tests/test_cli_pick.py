"""``lrkit pick`` explains itself, takes every schedule, and ``lrkit train`` names a misfit."""

from pathlib import Path

import pytest
from cli_run import call

from lrkit.find import Pick

TESTS = Path(__file__).parent
QUICK = ("--task", "wine-mlp", "--epochs", "6", "--budget", "1")  # 54-step runs, 8 short runs


@pytest.mark.parametrize("spec", ["constant", "step(100, 0.5)"])
def test_pick_takes_an_endless_schedule(capsys, spec):
    status, out, err = call(capsys, "pick", *QUICK, "--schedule", spec)
    assert status == 0 and err == ""
    assert "picked lr" in out


def test_pick_prints_its_candidates_their_metrics_and_the_correction(capsys, tmp_path):
    path = tmp_path / "pick.json"
    status, out, _ = call(capsys, "pick", *QUICK, "--json", str(path))
    pick = Pick.from_json(path.read_text())
    assert status == 0
    assert f"candidates: 8 rates 0.375 decades apart, from {max(pick.candidates):.3g}" in out
    for trial in pick.trials:  # every short run and its metric
        assert f"{trial.lr:.3g}" in out and f"{trial.metric:.4g}" in out
    assert "winner:" in out and f"{pick.winner:.4g}" in out
    assert "correction: -0.25 decades" in out and f"picked {pick.lr:.4g} = " in out
    assert f"picked lr {pick.lr:.4g}" in out


def test_pick_names_a_schedule_that_does_not_fit_the_run_on_stderr(capsys):
    status, _, err = call(capsys, "pick", *QUICK, "--schedule", "warmup(500) >> cosine(100)")
    assert status == 0
    assert err.startswith("lrkit: warning: the schedule warmup(500) >> cosine(100) lasts 600")
    assert len(err.strip().splitlines()) == 1


def test_train_names_a_schedule_that_does_not_fit_the_run_in_one_line(capsys, tmp_path):
    status, out, err = call(
        capsys, "train", "--task", "user_tasks:tiny", "--schedule", "warmup(500) >> cosine(100)",
        "--out", str(tmp_path), "-q",
    )  # fmt: skip
    assert status == 0
    assert err == (
        "lrkit: warning: the schedule warmup(500) >> cosine(100) lasts 600 steps but the run"
        " has 18: the run cuts it at step 18, where the lr is 3% of the peak\n"
    )


def test_train_says_nothing_of_a_schedule_that_fits(capsys, tmp_path):
    status, _, err = call(
        capsys, "train", "--task", "user_tasks:tiny", "--schedule", "warmup(5%) >> cosine",
        "--out", str(tmp_path), "-q",
    )  # fmt: skip
    assert status == 0 and err == ""
