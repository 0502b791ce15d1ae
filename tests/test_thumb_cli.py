"""``lrkit study batch-size`` and ``lrkit study clip`` from the command line."""

import json

import pytest
from cli_run import call

pytestmark = pytest.mark.usefixtures("one_thread")


def test_study_batch_size_prints_a_line_per_pick_the_table_the_verdict_and_where(
    capsys, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    status, out, err = call(
        capsys, "study", "batch-size", "--task", "wine-mlp", "--batch-sizes", "8,16,32",
        "--epochs", "1",
    )  # fmt: skip
    assert status == 0, err
    lines = out.strip().splitlines()
    assert [ln.split(":")[0] for ln in lines[:3]] == ["batch 8", "batch 16", "batch 32"]
    assert any(ln.startswith("k = ") for ln in lines)
    folder = tmp_path / "runs" / "study" / "batch-size" / "wine-mlp"
    assert (
        lines[-1]
        == f"results written to {folder.relative_to(tmp_path)}: batch-size.json, batch-size.png"
    )
    data = json.loads((folder / "batch-size.json").read_text())
    assert [r["batch_size"] for r in data["rows"]] == [8, 16, 32]
    assert (folder / "batch-size.png").stat().st_size > 1000


def test_study_clip_prints_a_line_per_run_the_tables_the_verdict_and_where(capsys, tmp_path):
    status, out, err = call(
        capsys, "study", "clip", "--task", "wine-mlp", "--lrs", "0.01,0.1", "--thresholds",
        "1x,0.5", "--epochs", "1", "--out", tmp_path / "clip",
    )  # fmt: skip
    assert status == 0, err
    lines = out.strip().splitlines()
    assert lines[0].startswith("median gradient norm")
    assert any(ln.startswith("no clipping: lr 0.01:") for ln in lines)
    assert any("clipping at 0.5" in ln for ln in lines)
    assert lines[-1] == f"results written to {tmp_path / 'clip'}: clip.json, clip.png"
    assert json.loads((tmp_path / "clip" / "clip.json").read_text())["kind"] == "clip study"


@pytest.mark.parametrize("command", ["batch-size", "clip"])
def test_the_study_commands_help_shows_examples(capsys, command):
    status, out, _ = call(capsys, "study", command, "--help")
    assert status == 0 and "Examples:" in out and f"lrkit study {command} --task" in out


@pytest.mark.parametrize(
    "args, message",
    [
        (["--batch-sizes", "8,16,nan"], "'nan' is not a whole number"),
        (["--batch-sizes", "8,16,inf"], "'inf' is not a whole number"),
        (["--batch-sizes", "0,8,16"], "'0' is not a whole number"),
        (["--batch-sizes", "8,,16"], "numbers separated by commas"),
        (
            ["--batch-sizes", "8,16,1000"],
            "larger than the training data of task 'wine-mlp' (142 examples)",
        ),
        (["--batch-sizes", "8,16"], "at least 3 batch sizes"),
        (["--batch-sizes", "8,16,32", "--budget", "nan"], "--budget must be"),
        (["--batch-sizes", "8,16,32", "--budget", "0"], "--budget must be"),
        (["--batch-sizes", "8,16,32", "--schedule", "cosine(("], "--schedule"),
        (["--batch-sizes", "8,16,32", "--task", "no-such-task"], "unknown task 'no-such-task'"),
    ],
)
def test_study_batch_size_refuses_bad_input_in_one_line_with_status_2(capsys, args, message):
    base = ["study", "batch-size", "--task", "wine-mlp"]
    status, out, err = call(capsys, *base, *args)
    assert status == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and message in err, err


@pytest.mark.parametrize(
    "args, message",
    [
        (["--lrs", "0.1,nan"], "--lrs '0.1,nan': 'nan' is not a number in (0, 1000000]"),
        (["--lrs", "inf"], "'inf' is not a number in (0, 1000000]"),
        (["--lrs", "0"], "'0' is not a number in (0, 1000000]"),
        (["--thresholds", "nan"], "--thresholds 'nan'"),
        (["--thresholds", "0"], "--thresholds '0'"),
        (["--thresholds", "inf,1x"], "--thresholds 'inf,1x'"),
        (["--tolerance", "1"], "--tolerance must be"),
        (["--tolerance", "nan"], "--tolerance must be"),
        (["--task", "no-such-task"], "unknown task 'no-such-task'"),
    ],
)
def test_study_clip_refuses_bad_input_in_one_line_with_status_2(capsys, args, message):
    status, out, err = call(capsys, "study", "clip", "--task", "wine-mlp", *args)
    assert status == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and message in err, err


def test_scale_lr_prints_the_new_lr_its_source_and_the_warmup(capsys):
    status, out, err = call(capsys, "scale-lr", "0.1", "--from-batch", "256", "--to-batch", "1024")
    assert status == 0, err
    lines = out.splitlines()
    assert lines[0] == "lr 0.4 at batch 1024 (linear rule: x4 the lr 0.1 at batch 256)"
    assert "Goyal" in lines[1] and "warmup(5ep, start=0.25)" in lines[2]


def test_scale_lr_quiet_prints_only_the_number(capsys):
    args = ("scale-lr", "1e-3", "--from-batch", "32", "--to-batch", "128", "--rule", "sqrt", "-q")
    status, out, _ = call(capsys, *args)
    assert status == 0 and out == "0.002\n"


@pytest.mark.parametrize(
    "args, message",
    [
        (["nan", "--from-batch", "1", "--to-batch", "2"], "LR must be"),
        (["inf", "--from-batch", "1", "--to-batch", "2"], "LR must be"),
        (["0", "--from-batch", "1", "--to-batch", "2"], "LR must be"),
        (["0.1", "--from-batch", "0", "--to-batch", "2"], "--from-batch must be a whole number"),
        (["0.1", "--from-batch", "2", "--to-batch", "2.5"], "--to-batch must be a whole number"),
        (["0.1", "--from-batch", "2", "--to-batch", "4", "--rule", "cube"], "known: linear, sqrt"),
    ],
)
def test_scale_lr_refuses_bad_input_in_one_line_with_status_2(capsys, args, message):
    status, out, err = call(capsys, "scale-lr", *args)
    assert status == 2 and out == "" and len(err.strip().splitlines()) == 1 and message in err, err
