"""One run per diagnosis: a folder of runs is listed and each run diagnosed on its own, the
newest of Lightning's version_N folders is taken, and the doctor names the file it read."""

from __future__ import annotations

import json
import re

import pytest
from cli_run import call

from lrkit.cli import main
from lrkit.train import fit
from lrkit.watch import JSONLSink, TensorBoardSink, Watch, find_runs, read_run


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """A folder holding two ``lrkit train --logdir`` runs of wine-mlp (135 steps each), one
    at a good lr and one at a ten-thousandth of it."""
    root = tmp_path_factory.mktemp("runs")
    for name, lr in (("good", "0.01"), ("slow", "1e-6")):
        argv = ["train", "--task", "wine-mlp", "--lr", lr, "-q"]
        assert main([*argv, "--logdir", str(root / name), "--out", str(root / f"{name}-out")]) == 0
    return root


def doctor_text(folder) -> str:
    from click.testing import CliRunner

    from lrkit.cli import cli

    return CliRunner().invoke(cli, ["doctor", str(folder)]).output


def steps_in(out: str) -> list[int]:
    return [int(n) for n in re.findall(r"confidence [\d.]+, (\d+) steps", out)]


def test_doctor_on_a_folder_of_two_runs_diagnoses_each_on_its_own(capsys, two_runs):
    capsys.readouterr()
    status, out, err = call(capsys, "doctor", str(two_runs))
    assert status == 0 and err == ""
    assert f"{two_runs} holds 4 runs" in out  # two --logdir folders and two --out folders
    assert steps_in(out) == [135, 135, 135, 135]  # never one run of 270 steps
    assert f"run: {two_runs / 'good'} (read {two_runs / 'good' / 'signals.jsonl'})" in out
    assert f"run: {two_runs / 'slow-out'} (read {two_runs / 'slow-out' / 'history.json'})" in out
    blocks = out.split("\n\nrun: ")[1:]
    verdicts = {b.split(" ")[0]: re.search(r"verdict: (\w+)", b).group(1) for b in blocks}
    assert verdicts[str(two_runs / "slow")] == "too_low"
    assert verdicts[str(two_runs / "good")] != "too_low"


def test_doctor_json_on_a_folder_of_runs_gives_one_diagnosis_per_run(capsys, two_runs):
    capsys.readouterr()
    status, out, _ = call(capsys, "doctor", str(two_runs), "--json")
    data = json.loads(out)
    assert status == 0
    assert [r["run"] for r in data["runs"]] == [
        str(two_runs / n) for n in ("good", "good-out", "slow", "slow-out")
    ]
    assert data["runs"][2]["files"] == [str(two_runs / "slow" / "signals.jsonl")]


def test_read_run_of_a_folder_of_runs_asks_to_name_one(two_runs):
    with pytest.raises(ValueError, match=r"holds 4 runs: .*/good', .*name one of them"):
        read_run(two_runs)
    assert len(read_run(two_runs / "good").get("train/loss")[0]) == 135


def test_a_train_out_folder_with_its_logdir_inside_is_one_run(capsys, tmp_path):
    out = tmp_path / "demo"
    argv = ["train", "--task", "wine-mlp", "--out", str(out), "--logdir", str(out / "signals")]
    assert main([*argv, "-q"]) == 0
    capsys.readouterr()
    status, text, _ = call(capsys, "doctor", str(out))
    assert status == 0 and "holds" not in text
    assert f"(read {out / 'signals' / 'signals.jsonl'})" in text and steps_in(text) == [135]


@pytest.fixture(scope="module")
def lightning_versions(tmp_path_factory):
    """``lightning_logs/version_0`` (lr 5: diverges) and ``version_1`` (lr 1e-6: too low),
    TensorBoard event files written by Watch sinks as Lightning's logger lays them out."""
    root = tmp_path_factory.mktemp("lightning") / "lightning_logs"
    for version, lr in ((0, 5.0), (1, 1e-6)):
        watch = Watch(sinks=[TensorBoardSink(root / f"version_{version}")])
        fit("wine-mlp", lr=lr, callbacks=[watch], progress=False)
    return root


def test_doctor_takes_the_newest_lightning_version_and_names_its_file(capsys, lightning_versions):
    status, out, _ = call(capsys, "doctor", str(lightning_versions))
    assert status == 0 and "holds" not in out
    (event_file,) = (lightning_versions / "version_1").glob("events.out.tfevents.*")
    assert f"run: {lightning_versions / 'version_1'} (read {event_file})" in out
    assert "older versions not read: version_0" in out
    assert "verdict: too_low" in out


def test_find_runs_lists_the_newest_version_of_each_experiment(tmp_path):
    for folder in ("exp_a/version_0", "exp_a/version_2", "exp_a/version_10", "exp_b/version_0"):
        JSONLSink(tmp_path / folder).close()
    runs = find_runs(tmp_path)
    assert [r.folder.relative_to(tmp_path).as_posix() for r in runs] == [
        "exp_a/version_10",
        "exp_b/version_0",
    ]
    assert [p.name for p in runs[0].older] == ["version_0", "version_2"]


def test_two_runs_into_one_tensorboard_folder_read_as_tensorboard_shows_the_latest(tmp_path):
    for lr in (5.0, 1e-6):  # the second run's event file replaces the first one's steps
        fit("wine-mlp", lr=lr, callbacks=[Watch(sinks=[TensorBoardSink(tmp_path)])], progress=False)
    assert len(list(tmp_path.glob("events.out.tfevents.*"))) == 2
    assert f"(read 2 event files in {tmp_path})" in doctor_text(tmp_path)
    steps, losses = read_run(tmp_path).get("train/loss")
    assert steps.tolist() == list(range(135))  # one run, not 270 records
    assert losses.max() < 2  # the lr=5 run blew up; this is the second one


def test_a_run_folder_holding_only_steps_csv_is_diagnosed(capsys, two_runs, tmp_path):
    (tmp_path / "steps.csv").write_bytes((two_runs / "slow-out" / "steps.csv").read_bytes())
    status, out, err = call(capsys, "doctor", str(tmp_path))
    assert status == 0, err
    assert f"(read {tmp_path / 'steps.csv'})" in out and "verdict: too_low" in out


def test_a_run_that_cannot_be_read_is_an_error_line_the_others_are_diagnosed(
    capsys, two_runs, tmp_path
):
    for name in ("good", "slow"):
        (tmp_path / name).mkdir()
        data = (two_runs / name / "signals.jsonl").read_bytes()
        (tmp_path / name / "signals.jsonl").write_bytes(data if name == "good" else b"\xff\n")
    status, out, err = call(capsys, "doctor", str(tmp_path))
    assert status == 2
    assert f"run: {tmp_path / 'good'}" in out and "verdict: " in out
    assert err.count("\n") == 1 and err.startswith("lrkit: error: ")
    assert f"'{tmp_path / 'slow' / 'signals.jsonl'}' line 1" in err


@pytest.mark.parametrize("module", ["lrkit.watch.sinks", "lrkit.watch.logs", "lrkit.watch.runs"])
def test_the_module_examples_run(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0 and result.failed == 0


def test_a_lightning_metrics_csv_with_the_usual_names_is_read(tmp_path):
    # self.log("train_loss") / self.log("val_loss"): the doctor said "no training loss"
    from lrkit.watch import read_run

    folder = tmp_path / "lightning_logs" / "version_0"
    folder.mkdir(parents=True)
    rows = ["step,epoch,lr-SGD,train_loss_step,train_loss_epoch,val_loss"]
    rows += [f"{i},0,0.1,{2.0 - i / 100},,{'1.5' if i == 9 else ''}" for i in range(10)]
    (folder / "metrics.csv").write_text("\n".join(rows) + "\n")
    signals = read_run(tmp_path / "lightning_logs")
    assert signals.get("train/loss")[1].tolist()[:2] == [2.0, 1.99]
    assert signals.get("val/loss")[1].tolist() == [1.5]
