"""``lrkit tune`` and ``lrkit study``: what a user types, what they see, what is refused.

Tunes here are tiny (``user_tasks:tiny``, a handful of trials; one on digits-mlp for 1 epoch).
Every refusal is one line, exit 2, no traceback; a storage password is never printed.
"""

import json
import shlex
import sys

import click
import pytest
from cli_run import call
from pg import pg_server_fixture  # noqa: F401 (the fixture pg_server)

from lrkit.cli.train_cmd import train_command
from lrkit.cli.tune_cmd import tune_command
from lrkit.tune.result import TuneResult

pytestmark = pytest.mark.usefixtures("one_thread")
SECRET = "hunter2x"
DOWN = f"postgresql://bob:{SECRET}@127.0.0.1:1/studies"  # nothing listens on port 1


def refused(capsys, *argv):
    """Run ``lrkit ARGV`` and check it is refused in one line; the line."""
    status, out, err = call(capsys, *argv)
    assert status == 2, (status, out, err)
    assert err.count("\n") == 1 and err.startswith("lrkit: error: "), err
    assert "Traceback" not in err
    return err


def test_help_explains_every_option_with_its_default(capsys):
    status, out, _ = call(capsys, "tune", "--help")
    assert status == 0
    for param in tune_command.params:
        if not isinstance(param, click.Option) or param.is_flag or param.name == "help":
            continue
        text = param.help or ""
        assert "default" in text.lower() or param.show_default, param.name
        assert "Example:" in text, param.name
        assert param.opts[0] in out


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["--sampler", "tp"], "unknown --sampler 'tp' (did you mean 'tpe'?); known: tpe, gp"),
        (["--pruner", "medain"], "unknown --pruner 'medain' (did you mean 'median'?)"),
        (["--cv", "1"], "--cv must be a whole number in [2, 1000], got 1"),
        (["--space", " "], "--space is empty"),
        (["--lr-range", "1e-1..1e-3"], "--lr-range '1e-1..1e-3': low 0.1 > high 0.001"),
        (["--lr-range", "0.1"], "--lr-range '0.1': expected LO..HI with two numbers"),
        (["--lr-range", "0..1"], "low must be a number in (0, 1000000], got 0"),
        (["--lr-range", "1e-3..inf"], "high must be a number in (0, 1000000], got inf"),
        (["--trials", "0"], "--trials must be a whole number in [1, 1000000], got 0"),
        (["--storage", "mysql+x://u@h/db"], "unknown storage scheme 'mysql+x://'"),
        (["--storage", "postgresql:/nohost"], "malformed storage URL"),
        (["--task", ""], "--task is empty"),  # was digits-mlp in silence
        (["--study", " "], "--study is empty"),  # was the task's name in silence
    ],
    ids=lambda x: " ".join(x) if isinstance(x, list) else None,
)
def test_a_bad_value_is_refused_in_one_line_naming_it(capsys, tmp_path, argv, said):
    err = refused(capsys, "tune", "--task", "user_tasks:tiny", "--out", tmp_path, *argv)
    assert said in err


def test_a_space_that_does_not_parse_names_the_option_and_the_column(capsys, tmp_path):
    err = refused(capsys, "tune", "--task", "user_tasks:tiny", "--out", tmp_path,
                  "--space", "cosin(to={1e-3..1e-1 log})")  # fmt: skip
    assert "--space 'cosin(to={1e-3..1e-1 log})'" in err and "column" in err


@pytest.mark.parametrize(
    "argv",
    [
        ["tune", "--task", "user_tasks:tiny", "--storage", DOWN, "--study", "s"],
        ["tune", "--task", "user_tasks:tiny", "--storage", DOWN],
        ["study", "create", "--storage", DOWN, "--task", "user_tasks:tiny", "s"],
        ["study", "list", "--storage", DOWN],
        ["study", "show", "--storage", DOWN, "s"],
        ["study", "list", "--storage", f"postgresql://bob:{SECRET}@[::1"],
    ],
    ids=lambda a: " ".join(a[:2]),
)
def test_an_unreachable_storage_is_one_line_without_the_password(capsys, tmp_path, argv):
    err = refused(capsys, *argv, *(["--out", tmp_path] if argv[0] == "tune" else []))
    assert SECRET not in err and "bob:***@" in err


def test_a_storage_from_the_environment_keeps_its_password_hidden(capsys, monkeypatch):
    monkeypatch.setenv("LRKIT_STORAGE", DOWN)
    err = refused(capsys, "study", "list")
    assert SECRET not in err and "bob:***@127.0.0.1:1" in err


def test_an_internal_error_mentioning_the_url_prints_no_password(capsys, monkeypatch, tmp_path):
    def broken(*args, **kwargs):
        raise RuntimeError(f"lost postgresql://bob:{SECRET}@db/x")

    monkeypatch.setattr(sys.modules["lrkit.tune"], "tune", broken)
    status, out, err = call(capsys, "tune", "--task", "user_tasks:tiny", "--out", tmp_path)
    assert status == 1 and "internal error: RuntimeError: lost postgresql://bob:***@db/x" in err
    assert "Traceback" in err and SECRET not in out + err


def test_ctrl_c_says_how_to_continue_the_study(capsys, monkeypatch, tmp_path):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(sys.modules["lrkit.tune"], "tune", interrupted)
    status, _, err = call(capsys, "tune", "--task", "user_tasks:tiny", "--out", tmp_path)
    assert status == 130 and "Traceback" not in err
    assert f"to continue it: lrkit tune --task user_tasks:tiny --out {tmp_path} --resume" in err


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """One tiny tune of digits-mlp (3 trials of 1 epoch), through the command line."""
    import torch

    from lrkit.cli import main

    out = tmp_path_factory.mktemp("tune") / "run"
    torch.set_num_threads(1)
    capture = pytest.MonkeyPatch()
    try:
        import io

        stdout, stderr = io.StringIO(), io.StringIO()
        capture.setattr(sys, "stdout", stdout)
        capture.setattr(sys, "stderr", stderr)
        status = main(["tune", "--task", "digits-mlp", "--trials", "3", "--epochs", "1",
                       "--out", str(out), "--png", str(out.parent / "extra.png")])  # fmt: skip
    finally:
        capture.undo()
    return status, stdout.getvalue(), stderr.getvalue(), out


def test_a_tiny_tune_on_digits_prints_the_table_the_best_and_where_it_saved(digits_run):
    status, out, err, folder = digits_run
    assert status == 0, err
    assert "lrkit tune: digits-mlp, study 'digits-mlp'" in out
    assert "accuracy (mean ± std)" in out and "best: trial " in out
    assert "train the best: lrkit train --task digits-mlp --lr " in out
    assert "lrkit.fit('digits-mlp', lr=" in out
    assert f"results written to {folder}: study.journal, trials.csv, tune.json, tune.png" in out
    assert f"also written: {folder.parent / 'extra.png'}" in out
    assert "to continue it: lrkit tune --task digits-mlp --out" in out and "--resume" in out


def test_off_a_terminal_it_still_prints_a_line_per_trial_before_the_table(digits_run):
    _, out, _, _ = digits_run  # stdout is a StringIO here, as a log file would be
    lines = out.splitlines()
    trials = [i for i, x in enumerate(lines) if x.startswith("trial ")]
    assert len(trials) == 3 and "(3/3 done)" in lines[trials[-1]]
    assert lines[0].startswith("tune digits-mlp: lr ")  # the range and where it came from
    assert trials[-1] < lines.index("lrkit tune: digits-mlp, study 'digits-mlp'")


def test_the_saved_result_loads_and_its_train_line_parses_with_train(digits_run):
    _, out, _, folder = digits_run
    result = TuneResult.load(folder / "tune.json")
    assert len(result.trials) == 3 and result.best is not None
    line = next(x for x in out.splitlines() if x.startswith("train the best: "))
    argv = shlex.split(line.removeprefix("train the best: "))
    params = train_command.make_context("train", argv[2:]).params
    assert params["lr"] == float(f"{result.best.lr:.6g}") and params["epochs"] == 1
    assert params["spec"] == result.best.schedule
    header = (folder / "trials.csv").read_text().splitlines()[0]
    assert header.startswith("number,state,status,lr,family,schedule")


def test_quiet_prints_only_the_train_line(capsys, tmp_path):
    status, out, err = call(capsys, "tune", "--task", "user_tasks:tiny", "--trials", "2",
                            "--out", tmp_path, "--quiet")  # fmt: skip
    assert status == 0, err
    assert out.count("\n") == 1 and out.startswith("lrkit train --task user_tasks:tiny --lr ")


def test_quiet_exits_3_with_the_reason_when_no_trial_completed(capsys, monkeypatch, tmp_path):
    import optuna
    from optuna.distributions import FloatDistribution

    study = optuna.create_study()
    study.add_trial(optuna.trial.create_trial(
        state=optuna.trial.TrialState.FAIL, params={"lr": 0.5},
        distributions={"lr": FloatDistribution(1e-3, 1, log=True)},
        user_attrs={"status": "diverged", "reason": "loss nan at step 3"},
    ))  # fmt: skip
    monkeypatch.setattr(sys.modules["lrkit.tune"], "tune",
                        lambda *a, **k: TuneResult.from_study(study))  # fmt: skip
    status, out, err = call(capsys, "tune", "--task", "user_tasks:tiny", "--out", tmp_path, "-q")
    assert status == 3 and out == ""
    assert "no trial completed (1 diverged); first reason: loss nan at step 3" in err


def test_a_second_tune_in_the_same_folder_needs_resume_and_then_continues(capsys, tmp_path):
    base = ["tune", "--task", "user_tasks:tiny", "--out", tmp_path, "-q"]
    assert call(capsys, *base, "--trials", "2")[0] == 0
    err = refused(capsys, *base, "--trials", "2")
    assert "exists already" in err and "--resume" in err
    status, _, err = call(capsys, *base, "--trials", "3", "--resume")
    assert status == 0, err
    assert len(TuneResult.load(tmp_path / "tune.json").trials) == 3


def test_workers_read_what_study_create_recorded(capsys, tmp_path):
    storage = "sqlite:///" + str(tmp_path / "studies.db")
    status, out, err = call(capsys, "study", "create", "--storage", storage, "--task",
                            "user_tasks:tiny", "--trials", "3", "--sampler", "random",
                            "--epochs", "2", "shared")  # fmt: skip
    assert status == 0, err
    assert "created study 'shared' (maximize)" in out or "created study 'shared' (minimize)" in out
    assert "on every worker: lrkit tune --storage" in out and "--study shared" in out
    status, out, err = call(capsys, "tune", "--storage", storage, "--study", "shared",
                            "--out", tmp_path / "w", "-q")  # fmt: skip
    assert status == 0, err
    assert out.startswith("lrkit train --task user_tasks:tiny ") and "--epochs 2" in out
    result = TuneResult.load(tmp_path / "w" / "tune.json")
    assert len(result.trials) == 3 and result.attrs["sampler"] == "random"
    status, out, _ = call(capsys, "study", "show", "--storage", storage, "shared")
    assert status == 0 and "lrkit tune: tiny, study 'shared'" in out and "best: trial" in out
    assert "train the best: lrkit train --task user_tasks:tiny " in out
    status, out, _ = call(capsys, "study", "list", "--storage", storage)
    assert status == 0 and out.splitlines()[1].split()[:4] == ["shared", "tiny", "minimize", "3"]


def test_a_worker_option_that_differs_from_the_study_is_refused(capsys, tmp_path):
    storage = "sqlite:///" + str(tmp_path / "studies.db")
    call(capsys, "study", "create", "--storage", storage, "--task", "user_tasks:tiny",
         "--sampler", "random", "s")  # fmt: skip
    err = refused(capsys, "tune", "--storage", storage, "--study", "s", "--sampler", "tpe",
                  "--out", tmp_path)  # fmt: skip
    assert "--sampler 'tpe' differs from the study's sampler 'random'" in err


def test_a_worker_may_repeat_what_the_study_recorded(capsys, tmp_path):
    storage = "sqlite:///" + str(tmp_path / "studies.db")
    call(capsys, "study", "create", "--storage", storage, "--task", "user_tasks:tiny",
         "--pruner", "none", "--trials", "2", "s")  # fmt: skip
    status, _, err = call(capsys, "tune", "--storage", storage, "--study", "s", "--pruner",
                          "none", "--trials", "2", "--out", tmp_path / "w", "-q")  # fmt: skip
    assert status == 0, err
    rows = TuneResult.load(tmp_path / "w" / "tune.json").trials
    assert [r["status"] for r in rows] == ["completed", "completed"]


def test_study_create_refuses_a_name_in_use_and_a_space_without_a_task(capsys, tmp_path):
    storage = "sqlite:///" + str(tmp_path / "studies.db")
    assert call(capsys, "study", "create", "--storage", storage, "--task", "user_tasks:tiny",
                "s")[0] == 0  # fmt: skip
    assert "already exists" in refused(capsys, "study", "create", "--storage", storage,
                                       "--task", "user_tasks:tiny", "s")  # fmt: skip
    assert "need --task" in refused(capsys, "study", "create", "--storage", storage,
                                    "--lr-range", "1e-3..1", "t")  # fmt: skip
    assert "cannot be split into folds" in refused(
        capsys, "study", "create", "--storage", storage, "--task", "user_tasks:tiny",
        "--cv", "3", "u",
    )  # fmt: skip


def test_study_show_of_a_missing_study_lists_those_there(capsys, tmp_path):
    storage = "sqlite:///" + str(tmp_path / "studies.db")
    call(capsys, "study", "create", "--storage", storage, "--task", "user_tasks:tiny", "here")
    assert "studies there: 'here'" in refused(capsys, "study", "show", "--storage", storage, "x")


def test_the_json_written_is_strict_json(capsys, tmp_path):
    status, _, err = call(capsys, "tune", "--task", "user_tasks:tiny", "--trials", "2",
                          "--out", tmp_path / "r", "--json", tmp_path / "t.json", "-q")  # fmt: skip
    assert status == 0, err
    json.loads((tmp_path / "t.json").read_text(), parse_constant=pytest.fail)


def test_on_a_real_postgresql_no_output_or_file_holds_the_password(capsys, tmp_path, pg_server):
    url = pg_server.url
    said = []
    for argv in (
        ["study", "create", "--storage", url, "--task", "user_tasks:tiny", "--trials", "2", "pg"],
        ["tune", "--storage", url, "--study", "pg", "--out", tmp_path, "--json", tmp_path / "j"],
        ["study", "list", "--storage", url],
        ["study", "show", "--storage", url, "pg", "--json", tmp_path / "k"],
    ):
        status, out, err = call(capsys, *argv)
        assert status == 0, err
        said.append(out + err)
    files = [p.read_text(errors="replace") for p in tmp_path.iterdir() if p.suffix != ".png"]
    assert len(files) >= 4  # tune.json, trials.csv and the two --json files
    assert pg_server.password not in "".join(said + files)
    assert f"study 'pg' in postgresql://lrkit:***@127.0.0.1:{pg_server.port}/lrkit" in said[1]
    assert "best: trial" in said[3]


def test_a_wrong_password_is_one_line_without_either_password(capsys, tmp_path, pg_server):
    wrong = pg_server.url.replace(pg_server.password, "not-the-pw-" + SECRET)
    err = refused(capsys, "tune", "--task", "user_tasks:tiny", "--storage", wrong, "--study",
                  "x", "--out", tmp_path)  # fmt: skip
    assert SECRET not in err and pg_server.password not in err and "lrkit:***@" in err


def test_resume_without_a_study_there_says_a_new_one_starts(capsys, tmp_path):
    status, _, err = call(capsys, "tune", "--task", "user_tasks:tiny", "--trials", "1",
                          "--out", tmp_path / "typo", "--resume")  # fmt: skip
    assert status == 0
    assert "no study 'tiny' to resume in" in err and "a new one starts" in err


@pytest.mark.parametrize("command", [["list"], ["show", "nope"]])
@pytest.mark.parametrize("form", ["{}", "sqlite:///{}"])
def test_study_list_and_show_of_a_missing_file_are_refused_and_create_nothing(
    capsys, tmp_path, command, form
):
    path = tmp_path / "new.journal"
    status, _, err = call(capsys, "study", command[0], "--storage", form.format(path), *command[1:])
    assert status == 2 and "no storage file" in err and err.count("\n") == 1
    assert not path.exists()
