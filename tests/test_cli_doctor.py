"""``lrkit doctor RUN_DIR``: verdicts with evidence from a run's logs, --json, bad folders."""

import json
import re
import shutil

import pytest
from cli_run import call

from lrkit.cli import main
from lrkit.train import fit
from lrkit.watch import TensorBoardSink, Watch


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A run folder written by ``lrkit train --out`` at a hundredth of wine-mlp's lr."""
    out = tmp_path_factory.mktemp("run")
    assert main(["train", "--task", "wine-mlp", "--lr", "1e-4", "--out", str(out), "-q"]) == 0
    return out


def test_doctor_prints_the_verdict_evidence_and_advice_of_a_train_out_folder(capsys, trained):
    status, out, err = call(capsys, "doctor", str(trained))
    assert status == 0 and err == ""
    assert f"run: {trained}" in out
    assert "verdict: too_low (confidence" in out
    evidence = next(line for line in out.splitlines() if "evidence:" in line)
    assert re.search(r"\d\.\d+ at step \d+", evidence)  # numbers and steps, not just a label
    assert "advice: multiply the lr by about" in out


def test_doctor_json_is_the_diagnosis(capsys, trained):
    status, out, _ = call(capsys, "doctor", str(trained), "--json")
    data = json.loads(out)
    assert status == 0
    assert data["run"] == str(trained) and data["verdict"] == "too_low"
    assert data["findings"][0]["lr_factor"] >= 3 and data["findings"][0]["evidence"]


def test_doctor_reads_a_tensorboard_logdir(capsys, tmp_path):
    logdir = tmp_path / "tb"
    fit(
        "digits-mlp",
        lr=5.0,
        epochs=1,
        progress=False,
        callbacks=[Watch(sinks=[TensorBoardSink(logdir)])],
    )
    assert list(logdir.glob("events.out.tfevents.*"))
    status, out, _ = call(capsys, "doctor", str(logdir))
    assert status == 0
    assert "verdict: diverged" in out and "at step" in out


def test_doctor_reads_the_signals_of_train_logdir(capsys, tmp_path):
    logs = tmp_path / "logs"
    argv = ["train", "--task", "wine-mlp", "--logdir", str(logs), "--out", str(tmp_path / "o")]
    assert main([*argv, "-q"]) == 0
    capsys.readouterr()
    status, out, _ = call(capsys, "doctor", str(logs))
    assert status == 0 and "verdict: " in out


def test_a_folder_with_no_logs_is_one_line_and_exit_2(capsys, tmp_path):
    status, out, err = call(capsys, "doctor", str(tmp_path))
    assert status == 2 and out == ""
    assert err.startswith("lrkit: error: no logs in run directory") and err.count("\n") == 1


def test_a_missing_folder_is_one_line_and_exit_2(capsys, tmp_path):
    status, _, err = call(capsys, "doctor", str(tmp_path / "nope"))
    assert status == 2 and "does not exist" in err and err.count("\n") == 1


def test_a_history_without_steps_is_one_line_and_exit_2(capsys, trained, tmp_path):
    folder = tmp_path / "empty-history"
    shutil.copytree(trained, folder)
    data = json.loads((folder / "history.json").read_text())
    data.update(step=[], epoch=[], lr_groups=[], loss=[], epochs_log=[])
    (folder / "history.json").write_text(json.dumps(data))
    status, _, err = call(capsys, "doctor", str(folder))
    assert status == 2 and err.startswith("lrkit: error: ") and err.count("\n") == 1
