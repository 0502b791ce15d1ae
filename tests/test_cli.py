"""The lrkit command line: help, tasks, schedule list/show, train, and its error policy."""

import doctest
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli_run import call

from lrkit import __version__, errors
from lrkit.cli import cli, schedule_cmd
from lrkit.schedules import REGISTRY
from lrkit.tasks import list_tasks

LRKIT = Path(sys.executable).parent / "lrkit"
TESTS = Path(__file__).parent
SPEC = "warmup(5%) >> cosine(to=0.01)"


def run(*args):
    """The installed console script in a fresh process: (exit status, stdout, stderr)."""
    env = {**os.environ, "PYTHONPATH": str(TESTS)}
    done = subprocess.run([str(LRKIT), *args], capture_output=True, text=True, env=env, timeout=120)
    return done.returncode, done.stdout, done.stderr


def test_version_prints_the_package_version():
    status, out, _ = run("--version")
    assert (status, out.strip()) == (0, f"lrkit {__version__}")


def test_help_lists_the_commands_and_an_example(capsys):
    status, out, _ = call(capsys, "--help")
    assert status == 0
    assert all(name in out for name in ("train", "tasks", "schedule")) and "Example" in out


def _commands(group, path=()):
    for name, command in group.commands.items():
        yield (*path, name)
        if hasattr(command, "commands"):
            yield from _commands(command, (*path, name))


@pytest.mark.parametrize("path", sorted(_commands(cli)), ids=" ".join)
def test_every_command_help_gives_an_example(capsys, path):
    status, out, _ = call(capsys, *path, "--help")
    assert status == 0 and "Example" in out


def test_every_train_option_is_explained_with_an_example(capsys):
    _, out, _ = call(capsys, "train", "--help")
    for option in ("--task", "--lr", "--schedule", "--epochs", "--seed", "--out", "--quiet"):
        assert f"Example:{option}" in "".join(out.split()), option  # as wrapped at any width


def test_tasks_prints_one_line_per_task(capsys):
    status, out, _ = call(capsys, "tasks")
    lines = out.strip().splitlines()
    assert status == 0 and [line.split()[0] for line in lines] == list_tasks()


def test_schedule_list_names_every_registered_schedule_with_a_summary(capsys):
    status, out, _ = call(capsys, "schedule", "list")
    rows = {line.split()[0]: line.split(maxsplit=1)[1] for line in out.strip().splitlines()}
    assert status == 0 and set(rows) == set(REGISTRY)
    assert all(summary.strip() for summary in rows.values())


def test_schedule_show_prints_values_and_a_sparkline(capsys):
    status, out, _ = call(capsys, "schedule", "show", SPEC, "--steps", "100")
    assert status == 0
    assert "warmup(5) >> cosine(95, to=0.01)" in out
    assert "0.01" in out and any(c in out for c in "▁▂▃▄▅▆▇█")


def test_schedule_show_resolves_epochs_with_steps_per_epoch(capsys):
    status, out, _ = call(
        capsys,
        "schedule",
        "show",
        "warmup(1ep) >> cosine",
        "--steps",
        "40",
        "--steps-per-epoch",
        "10",
    )
    assert status == 0 and "warmup(10) >> cosine(30)" in out


def test_schedule_show_png_writes_a_png(capsys, tmp_path):
    png = tmp_path / "lr.png"
    status, _, _ = call(capsys, "schedule", "show", SPEC, "--steps", "200", "--png", str(png))
    assert status == 0 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_train_writes_the_history_and_prints_a_summary(capsys, tmp_path):
    status, out, _ = call(
        capsys,
        "train",
        "--task",
        "digits-mlp",
        "--schedule",
        SPEC,
        "--epochs",
        "1",
        "--out",
        str(tmp_path),
    )
    history = json.loads((tmp_path / "history.json").read_text())
    assert status == 0 and history["status"] == "completed" and history["epochs"] == 1
    assert "final accuracy" in out and str(tmp_path / "history.json") in out


def test_train_ends_with_the_doctors_verdict_and_its_evidence(capsys, tmp_path):
    status, out, _ = call(
        capsys,
        "train",
        "--task",
        "wine-mlp",
        "--lr",
        "3",
        "--out",
        str(tmp_path / "o"),
        "--logdir",
        str(tmp_path / "logs"),
    )
    assert status == 0
    verdict = out.split("doctor's verdict: ", 1)[1]
    assert verdict.split()[0] in ("too_high", "diverged")
    assert "evidence:" in verdict and "advice:" in verdict


def test_train_runs_a_user_task_from_module_function(capsys, tmp_path):
    status, _, _ = call(capsys, "train", "--task", "user_tasks:tiny", "--out", str(tmp_path), "-q")
    assert status == 0 and json.loads((tmp_path / "history.json").read_text())["task"] == "tiny"


def test_train_without_out_writes_under_runs_task_timestamp(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    status, out, _ = call(capsys, "train", "--task", "user_tasks:tiny", "--quiet")
    written = list((tmp_path / "runs").glob("tiny-*/history.json"))
    assert status == 0 and len(written) == 1 and out.startswith("history written to runs")


def test_quiet_train_prints_only_the_history_path(capsys, tmp_path):
    _, out, _ = call(capsys, "train", "--task", "user_tasks:tiny", "--out", str(tmp_path), "-q")
    assert out.strip().splitlines() == [f"history written to {tmp_path / 'history.json'}"]


@pytest.fixture
def a_file(tmp_path):
    path = tmp_path / "a-file"
    path.write_text("not a folder")
    return path


USER_ERRORS = {
    "bad spec": (
        ["train", "--schedule", "warmup(5%) >> cosin(to=0.01)"],
        "unknown schedule 'cosin' at column 15",
    ),
    "unknown task": (
        ["train", "--task", "digit-mlp"],
        "unknown task 'digit-mlp'; known: diabetes-mlp",
    ),
    "task module missing": (
        ["train", "--task", "no_such_module:make"],
        "cannot import module 'no_such_module'",
    ),
    "task attribute missing": (["train", "--task", "user_tasks:nope"], "has no attribute 'nope'"),
    "task not a Task": (["train", "--task", "user_tasks:returns_none"], "returned NoneType"),
    "zero epochs": (
        ["train", "--epochs", "0"],
        "--epochs must be a whole number in [1, 1000000], got 0",
    ),
    "negative lr": (["train", "--lr", "-1"], "--lr must be a number in (0, 1000000], got -1"),
    "lr not a number": (
        ["train", "--lr", "fast"],
        "--lr must be a number in (0, 1000000], got 'fast'",
    ),
    "unknown option": (["train", "--bogus"], "No such option '--bogus'"),
    "unknown command": (["trian"], "No such command 'trian'"),
    "unwritable out": (["train", "--out", "{a_file}/runs"], "cannot create --out folder"),
    "spec past the run": (
        ["train", "--schedule", "seq(warmup, cosine, boundaries=[5000])"],
        "lies past the end of the run",
    ),
    "spec without steps": (["schedule", "show", "warmup(5%)"], "the run's total steps are unknown"),
    "png folder missing": (
        ["schedule", "show", "cosine", "--steps", "9", "--png", "{a_file}/x.png"],
        "cannot write --png",
    ),
}


@pytest.mark.parametrize("case", sorted(USER_ERRORS))
def test_user_error_prints_one_line_and_exits_2(capsys, a_file, case):
    args, expected = USER_ERRORS[case]
    status, _, err = call(capsys, *(a.format(a_file=a_file) for a in args))
    assert status == 2
    assert err.count("\n") == 1 and err.startswith("lrkit: error: ")
    assert expected in err and "Traceback" not in err


def test_user_error_from_the_console_script_has_no_traceback():
    status, out, err = run("train", "--task", "digit-mlp")
    assert (status, out) == (2, "")
    assert err.startswith("lrkit: error: unknown task 'digit-mlp'") and "Traceback" not in err


def test_internal_error_exits_1_with_the_traceback(capsys):
    status, _, err = call(capsys, "train", "--task", "user_tasks:raises")
    assert status == 1
    assert (
        "Traceback" in err
        and "lrkit: internal error: RuntimeError: a bug in the user's task" in err
    )


def test_train_finds_a_user_task_module_in_the_current_folder(capsys, tmp_path, monkeypatch):
    (tmp_path / "my_tasks_here.py").write_text("from user_tasks import tiny as make\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    status, _, err = call(capsys, "train", "--task", "my_tasks_here:make", "--out", "out", "-q")
    assert status == 0, err
    assert (tmp_path / "out" / "history.json").is_file()


@pytest.mark.parametrize("module", [schedule_cmd, errors])
def test_docstring_examples_run(module):
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0


def test_every_schedule_show_option_is_explained_with_an_example(capsys):
    _, out, _ = call(capsys, "schedule", "show", "--help")
    for option in ("--steps", "--steps-per-epoch", "--lr", "--png"):
        assert f"Example:{option}" in "".join(out.split()), option  # as wrapped at any width
