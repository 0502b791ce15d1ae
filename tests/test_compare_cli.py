"""``lrkit compare``: what a user types, what they see, what is refused (one line, exit 2)."""

import json

import click
import pytest
from cli_run import call

from lrkit.cli.compare_cmd import compare_command
from lrkit.tune.compare import CompareResult

pytestmark = pytest.mark.usefixtures("one_thread")


def refused(capsys, *argv):
    status, out, err = call(capsys, "compare", *argv)
    assert status == 2, (status, out, err)
    assert err.count("\n") == 1 and err.startswith("lrkit: error: "), err
    assert "Traceback" not in err
    return err


def test_compare_end_to_end_on_wine(capsys, tmp_path):
    out = tmp_path / "cmp"
    status, text, err = call(capsys, "compare", "--task", "wine-mlp", "--schedules",
                             "constant,onecycle", "--seeds", "2", "--budget", "0.5",
                             "--out", out, "--json", tmp_path / "r.json",
                             "--png", tmp_path / "r.png")  # fmt: skip
    assert status == 0, err
    lines = text.splitlines()
    runs = [x for x in lines if x.startswith("compare wine-mlp: [")]
    assert len(runs) == 4 and "onecycle seed 1: accuracy" in runs[-1]
    assert any(x.startswith("  onecycle  one_cycle") for x in lines)  # the table, with the spec
    assert any(x.startswith("verdict (own rates): ") for x in lines)
    assert lines[-1] == f"results written to {out}: compare.json, compare.png"
    assert (out / "compare.png").is_file() and (tmp_path / "r.png").is_file()
    saved = CompareResult.load(out)
    assert [r.label for r in saved.rows] == ["constant", "onecycle"] and saved.seeds == 2
    assert json.loads((tmp_path / "r.json").read_text())["task"] == "wine-mlp"


def test_same_lr_adds_a_block_of_rows_at_one_rate(capsys, tmp_path):
    status, text, err = call(capsys, "compare", "--task", "wine-mlp", "--schedules", "constant",
                             "--seeds", "1", "--budget", "0.5", "--same-lr", "0.004",
                             "--out", tmp_path)  # fmt: skip
    assert status == 0, err
    assert "every entry at one rate, lr 0.004 (given):" in text
    assert "verdict (same lr): " in text


def test_the_default_out_is_runs_compare_task(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    status, text, _ = call(capsys, "compare", "--task", "wine-mlp", "--schedules", "constant",
                           "--seeds", "1", "--budget", "0.5")  # fmt: skip
    assert status == 0
    assert (tmp_path / "runs" / "compare" / "wine-mlp" / "compare.json").is_file()


def test_help_has_examples_and_every_option_says_its_default(capsys):
    status, out, _ = call(capsys, "compare", "--help")
    assert status == 0 and "Examples:" in out and "lrkit compare --task" in out
    for param in compare_command.params:
        if not isinstance(param, click.Option) or param.name == "help":
            continue
        assert "Example:" in (param.help or ""), param.name
        assert param.opts[0] in out


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["--seeds", "0"], "--seeds must be a whole number in [1, 1000], got 0"),
        (["--same-lr", "nan"], "--same-lr must be 'auto' or a number in (0, 1000000], got 'nan'"),
        (["--same-lr", "inf"], "--same-lr must be 'auto' or a number"),
        (
            ["--target", "nan"],
            "--target must be a finite number within ±1e+15, in the metric's units, got nan",
        ),
        (["--target", "inf"], "--target must be a finite number within ±1e+15"),
        (["--budget", "0"], "--budget must be a number in (0, 1000000], got 0"),
        (["--schedules", "cosin"], "unknown entry part 'cosin' (did you mean 'cosine'?)"),
        (["--schedules", "constant,warmup(5%) >> cosin"], "unknown schedule 'cosin' at column"),
        (["--schedules", ""], "--schedules ''"),
        (["--task", "wine-mpl"], "unknown task 'wine-mpl'"),
        (["--task", " "], "--task is empty"),
        (["--lr", "guess"], "unknown --lr 'guess'"),
    ],
)
def test_user_errors_exit_2_in_one_line(capsys, argv, said):
    assert said in refused(capsys, *argv)


def test_an_out_that_is_a_file_is_refused_before_training(capsys, tmp_path):
    (tmp_path / "f").write_text("")
    status, out, err = call(capsys, "compare", "--task", "wine-mlp", "--out", tmp_path / "f")
    assert status == 2 and "compare wine-mlp: [" not in out and "Traceback" not in err
