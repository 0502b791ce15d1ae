"""``lrkit find`` and ``lrkit pick`` on the command line: output, files written, bad input."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli_run import call

from lrkit.cli import find_cmd
from lrkit.find.rules import RULES

LRKIT = Path(sys.executable).parent / "lrkit"
TESTS = Path(__file__).parent
SMALL = ("--steps", "30", "--start", "1e-5", "--end", "10")  # a sweep of a second or two
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run(*args):
    """The installed console script in a fresh process: (exit status, stdout, stderr)."""
    env = {**os.environ, "PYTHONPATH": str(TESTS)}
    done = subprocess.run([str(LRKIT), *args], capture_output=True, text=True, env=env, timeout=120)
    return done.returncode, done.stdout, done.stderr


def test_the_rule_choices_are_the_rules():
    assert find_cmd.RULE_NAMES == tuple(RULES)


def test_find_names_the_chosen_lr_its_confidence_and_every_rule(capsys):
    status, out, _ = call(capsys, "find", "--task", "digits-mlp", *SMALL)
    assert status == 0
    assert "(rule 'lrkit'), confidence ok" in out
    assert all(name in out for name in RULES) and "chosen" in out


def test_find_json_file_holds_the_suggestions_and_the_chosen_lr(capsys, tmp_path):
    path = tmp_path / "find.json"
    status, out, _ = call(capsys, "find", "--task", "digits-mlp", *SMALL, "--json", str(path))
    data = json.loads(path.read_text())
    assert status == 0 and f"JSON written to {path}" in out
    assert set(data["suggestions"]) == set(RULES)
    assert data["lr"] == data["suggestions"]["lrkit"] and data["confidence"]["ok"] is True
    assert f"lr {data['lr']:.3g} (rule 'lrkit')" in out


def test_find_json_alone_prints_only_json_to_stdout(capsys):
    status, out, _ = call(capsys, "find", "--task", "user_tasks:tiny", *SMALL, "--json")
    data = json.loads(out)
    assert status == 0 and data["rule"] == "lrkit" and len(data["lrs"]) == len(data["losses"])


def test_find_png_writes_a_png(capsys, tmp_path):
    path = tmp_path / "find.png"
    status, out, _ = call(capsys, "find", "--task", "digits-mlp", *SMALL, "--png", str(path))
    assert status == 0 and path.read_bytes()[:8] == PNG_MAGIC and "plot written to" in out


def test_find_rule_chooses_the_rule_and_quiet_prints_only_its_lr(capsys, tmp_path):
    path = tmp_path / "find.json"
    status, out, _ = call(
        capsys, "find", *SMALL, "--rule", "minimum", "--quiet", "--json", str(path)
    )
    data = json.loads(path.read_text())
    assert status == 0 and data["rule"] == "minimum"
    assert out == f"{data['suggestions']['minimum']:.6g}\n"


def test_find_with_seeds_reports_the_median_of_the_seeds(capsys, tmp_path):
    path = tmp_path / "find.json"
    status, out, _ = call(
        capsys, "find", "--task", "user_tasks:tiny", *SMALL, "--seeds", "2", "--json", str(path)
    )
    assert status == 0 and "median of 2 seeds" in out
    assert len(json.loads(path.read_text())["seed_curves"]) == 2


def test_find_on_a_flat_curve_suggests_nothing_and_says_why(capsys):
    # a start and end so small that the lr has no effect: no descent, no lr
    status, out, err = call(
        capsys, "find", "--task", "user_tasks:tiny", "--steps", "30", "--start", "1e-9",
        "--end", "1e-8",
    )  # fmt: skip
    assert status == 0 and "no lr suggested" in out and "no descent" in out
    assert err.startswith("lrkit: warning: no lr suggested")


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--start", "1", "--end", "0.1"), "--start 1 must be below --end 0.1"),
        (("--steps", "2"), "--steps"),
        (("--rule", "vally"), "--rule"),
        (("--task", "no-such-task"), "no-such-task"),
        (("--seeds", "0"), "--seeds"),
        (("--png", "/no/such/folder/find.png"), "does not exist"),
    ],
    ids=["start>=end", "steps", "rule", "task", "seeds", "png folder"],
)
def test_find_bad_input_is_one_line_on_stderr_and_exit_2(args, says):
    status, out, err = run("find", *args)
    assert status == 2 and out == ""
    assert err.startswith("lrkit: error: ") and says in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_pick_help_explains_every_option_with_an_example(capsys):
    status, out, _ = call(capsys, "pick", "--help")
    assert status == 0
    for option in ("--task", "--schedule", "--budget", "--epochs", "--seed", "--json", "--quiet"):
        assert f"Example:{option}" in "".join(out.split()), option


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--schedule", "warmup(5%) >> cosin"), "unknown schedule 'cosin'"),
        (("--budget", "0"), "--budget"),
        (("--task", "no-such-task"), "no-such-task"),
        (("--task", "user_tasks:tiny", "--budget", "1"), "too small"),
    ],
    ids=["schedule", "budget", "task", "budget too small"],
)
def test_pick_bad_input_is_one_line_on_stderr_and_exit_2(args, says):
    status, out, err = run("pick", *args)
    assert status == 2 and out == ""
    assert err.startswith("lrkit: error: ") and says in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_pick_prints_the_pick_what_it_tried_and_its_cost(capsys, tmp_path):
    path = tmp_path / "pick.json"
    status, out, _ = call(
        capsys, "pick", "--task", "digits-mlp", "--budget", "1.5", "--json", str(path)
    )
    data = json.loads(path.read_text())
    assert status == 0 and data["cost"] <= 1.5
    assert f"picked lr {data['lr']:.4g}" in out
    assert f"= {data['cost']:.2f} runs" in out and "short runs between" in out


def test_pick_quiet_prints_only_the_lr(capsys, tmp_path):
    path = tmp_path / "pick.json"
    status, out, _ = call(capsys, "pick", "--task", "user_tasks:tiny", "--budget", "5", "-q",
                          "--json", str(path))  # fmt: skip
    assert status == 0 and out == f"{json.loads(path.read_text())['lr']:.6g}\n"
