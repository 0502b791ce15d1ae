"""Files the user names on the command line: schedule files, run folders, find JSON for --lr-from.

Whatever goes wrong while reading one is exit 2 with one line that names the file (and the line
when the reader knows it); a bug elsewhere is still an internal error.
"""

import json
import shlex
from pathlib import Path

import pytest
from cli_run import call

from lrkit.errors import UserError
from lrkit.schedules import dump_schedule, parse

TESTS = Path(__file__).parent
ROOT = TESTS.parent
TINY = ("--task", "user_tasks:tiny")
SPEC = "warmup(5%) >> cosine(to=0.01)"


def one_line_error(status, err):
    return status == 2 and err.count("\n") == 1 and err.startswith("lrkit: error: ")


# --- schedule files ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["s.yaml", "s.yml", "s.json"])
def test_schedule_show_reads_a_schedule_file(capsys, tmp_path, name):
    path = dump_schedule(parse(SPEC), tmp_path / name)
    status, out, err = call(capsys, "schedule", "show", path, "--steps", "100")
    assert status == 0, err
    assert "warmup(5) >> cosine(95, to=0.01)" in out


def test_a_yaml_file_with_the_text_form_is_read(capsys, tmp_path):
    path = tmp_path / "schedule.yaml"
    path.write_text(f'schedule: "{SPEC}"\n')
    status, out, _ = call(capsys, "schedule", "show", path, "--steps", "100")
    assert status == 0 and "warmup(5) >> cosine(95, to=0.01)" in out


def test_train_takes_its_schedule_from_a_json_file(capsys, tmp_path):
    path = tmp_path / "schedule.json"
    path.write_text(json.dumps({"schedule": SPEC}))
    status, _, err = call(capsys, "train", *TINY, "--schedule", path, "--out", tmp_path / "o", "-q")
    history = json.loads((tmp_path / "o" / "history.json").read_text())
    assert status == 0, err
    assert history["schedule"] == repr(parse(SPEC))


def test_pick_takes_its_schedule_from_a_yaml_file(capsys, tmp_path):
    path = dump_schedule(parse("warmup(10%) >> cosine"), tmp_path / "schedule.yaml")
    status, out, err = call(capsys, "pick", *TINY, "--schedule", path, "--budget", "3", "-q")
    assert status == 0, err
    assert float(out) > 0


def test_a_yaml_syntax_error_names_the_file_and_the_line(capsys, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text('type: cosine\nto: "0.1\n')
    status, _, err = call(capsys, "schedule", "show", path, "--steps", "10")
    assert one_line_error(status, err)
    assert str(path) in err and "line 3" in err


def test_a_json_syntax_error_names_the_file_and_the_line(capsys, tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"schedule":\n')
    status, _, err = call(capsys, "train", *TINY, "--schedule", path)
    assert one_line_error(status, err)
    assert str(path) in err and "line 2" in err


def test_a_bad_spec_inside_a_file_names_the_file_and_the_column(capsys, tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"schedule": "warmup(5%) >> cosin"}))
    status, _, err = call(capsys, "pick", *TINY, "--schedule", path)
    assert one_line_error(status, err)
    assert str(path) in err and "unknown schedule 'cosin' at column 15" in err


def test_a_missing_schedule_file_is_named_not_parsed(capsys, tmp_path):
    path = tmp_path / "nope.yaml"
    status, _, err = call(capsys, "train", *TINY, "--schedule", path)
    assert one_line_error(status, err)
    assert str(path) in err and "does not exist" in err and "unexpected character" not in err


def test_a_schedule_file_of_random_bytes_is_one_line_naming_it(capsys, tmp_path):
    path = tmp_path / "noise.yaml"
    path.write_bytes(bytes(range(256)) * 4)
    status, _, err = call(capsys, "schedule", "show", path, "--steps", "10")
    assert one_line_error(status, err) and str(path) in err


# --- the reading policy --------------------------------------------------------------------


def test_reading_names_the_file_of_an_os_error():
    from lrkit.cli.app import reading

    with pytest.raises(UserError, match=r"cannot read run 'x/signals.csv': Is a directory"):
        with reading("x", "run"):
            raise IsADirectoryError(21, "Is a directory", "x/signals.csv")


def test_reading_prefixes_a_value_error_that_does_not_name_the_file():
    from lrkit.cli.app import reading

    with pytest.raises(UserError, match=r"^run 'runs/a': 'utf-8' codec can't decode"):
        with reading("runs/a", "run"):
            b"\xff".decode("utf-8")


def test_reading_lets_a_bug_through():
    from lrkit.cli.app import reading

    with pytest.raises(KeyError):
        with reading("x", "run"):
            raise KeyError("a bug in lrkit, not the user's file")


def test_one_line_keeps_where_a_yaml_error_happened():
    import yaml

    from lrkit.cli.app import one_line

    with pytest.raises(yaml.YAMLError) as caught:
        yaml.safe_load('a: 1\nb: "x\n')
    assert one_line(caught.value) == (
        "while scanning a quoted scalar: found unexpected end of stream (line 3, column 1)"
    )


def test_doctor_on_a_signals_file_that_is_a_folder_names_it(capsys, tmp_path):
    (tmp_path / "signals.csv").mkdir()
    status, _, err = call(capsys, "doctor", tmp_path)
    assert one_line_error(status, err)
    assert "signals.csv" in err and "Traceback" not in err


def test_doctor_on_random_bytes_names_the_run(capsys, tmp_path):
    (tmp_path / "signals.jsonl").write_bytes(b"\xff\xfe\x00garbage\x81" * 50)
    status, _, err = call(capsys, "doctor", tmp_path)
    assert one_line_error(status, err)
    assert str(tmp_path) in err


# --- --lr-from ------------------------------------------------------------------------------


def _history(folder):
    return json.loads((folder / "history.json").read_text())


def test_train_lr_from_uses_the_lr_of_a_find_json(capsys, tmp_path):
    found = tmp_path / "find.json"
    status, _, err = call(capsys, "find", "--task", "digits-mlp", "--steps", "30", "--start",
                          "1e-5", "--json", found, "-q")  # fmt: skip
    lr = json.loads(found.read_text())["lr"]
    assert status == 0 and lr is not None, err
    status, out, _ = call(capsys, "train", *TINY, "--lr-from", found, "--out", tmp_path / "o")
    assert status == 0 and f"lr {lr:.4g} from {found}" in out
    assert _history(tmp_path / "o")["lr"] == pytest.approx(lr)


def test_train_lr_from_a_find_that_trusted_no_lr_says_why_and_uses_the_task_lr(capsys, tmp_path):
    found = tmp_path / "find.json"
    status, _, _ = call(capsys, "find", *TINY, "--steps", "10", "--json", found, "-q")
    assert status == 3 and json.loads(found.read_text())["lr"] is None
    status, _, err = call(capsys, "train", *TINY, "--lr-from", found, "--out", tmp_path / "o", "-q")
    assert status == 0
    assert f"{found} holds no lr (the range test trusted none: no descent)" in err
    assert "default lr 0.1" in err and _history(tmp_path / "o")["lr"] == 0.1


def test_train_lr_from_reads_a_pick_json(capsys, tmp_path):
    picked = tmp_path / "pick.json"
    assert call(capsys, "pick", *TINY, "--budget", "3", "--json", picked, "-q")[0] == 0
    lr = json.loads(picked.read_text())["lr"]
    status, _, _ = call(capsys, "train", *TINY, "--lr-from", picked, "--out", tmp_path / "o", "-q")
    assert status == 0 and _history(tmp_path / "o")["lr"] == pytest.approx(lr)


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("not json", "is not valid JSON: Expecting value: line 1 column 1"),
        ("[1, 2]", 'holds no "lr"'),
        ('{"lr": -1}', 'its "lr" must be a number in (0, 1000000], got -1'),
        ('{"lr": 1e300}', 'its "lr" must be a number in (0, 1000000], got 1e+300'),
        ('{"lr": NaN}', "got nan"),
        ('{"lr": true}', "got True"),
        ('{"lr": "fast"}', "got 'fast'"),
    ],
)
def test_a_bad_lr_from_file_is_one_line_naming_it(capsys, tmp_path, content, says):
    path = tmp_path / "find.json"
    path.write_text(content)
    status, _, err = call(capsys, "train", *TINY, "--lr-from", path)
    assert one_line_error(status, err)
    assert str(path) in err and says in err


def test_lr_and_lr_from_together_are_refused(capsys, tmp_path):
    path = tmp_path / "find.json"
    path.write_text('{"lr": 0.1}')
    status, _, err = call(capsys, "train", *TINY, "--lr", "0.2", "--lr-from", path)
    assert one_line_error(status, err) and "either --lr or --lr-from" in err


def _demo_commands():
    lines, inside = [], False
    for line in (ROOT / "Makefile").read_text().splitlines():
        if line.startswith("demo:"):
            inside = True
        elif inside and line.startswith("\t"):
            lines.append(shlex.split(line.strip()))
        elif inside:
            break
    return lines


def test_make_demo_trains_at_the_lr_its_range_test_wrote():
    commands = _demo_commands()
    find = next(c for c in commands if c[:2] == ["$(BIN)/lrkit", "find"])
    train = next(c for c in commands if c[:2] == ["$(BIN)/lrkit", "train"])
    assert train[train.index("--lr-from") + 1] == find[find.index("--json") + 1]
    assert "--lr" not in train


def test_a_task_module_with_a_syntax_error_is_one_line_naming_file_and_line(
    capsys, tmp_path, monkeypatch
):
    (tmp_path / "broken_task_mod.py").write_text("def make():\n    return (\n")
    monkeypatch.chdir(tmp_path)
    status, _, err = call(capsys, "train", "--task", "broken_task_mod:make", "-q")
    assert status == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert "broken_task_mod.py line " in err


def test_a_task_function_that_needs_arguments_is_one_line_not_a_traceback(capsys):
    status, _, err = call(capsys, "train", "--task", "json:loads", "-q")
    assert status == 2 and err.count("\n") == 1
    assert "loads() must take no arguments" in err


@pytest.mark.parametrize(
    "args, option",
    [
        (("train", "--task", "user_tasks:tiny", "--logdir", ""), "--logdir"),
        (("train", "--task", "user_tasks:tiny", "--out", " "), "--out"),
        (("doctor", ""), "RUN_DIR"),
        (("find", "--task", "user_tasks:tiny", "--json", ""), "--json"),
        (("find", "--task", "user_tasks:tiny", "--png", ""), "--png"),
    ],
)
def test_an_empty_path_is_refused_not_read_as_the_current_folder(capsys, args, option):
    # --logdir "" wrote signals.csv into the current folder; --out "" fell back silently
    status, _, err = call(capsys, *args)
    assert status == 2 and err.count("\n") == 1 and f"{option} is empty" in err


def test_a_folder_given_as_a_json_file_is_refused_with_a_json_example(capsys, tmp_path):
    status, _, err = call(capsys, "find", "--task", "user_tasks:tiny", "--json", str(tmp_path))
    assert status == 2 and "such as result.json" in err


def test_a_logdir_that_already_holds_a_run_is_refused_before_training(capsys, tmp_path):
    # a second run there replaced the CSV/JSONL and mixed its TensorBoard events with the first
    logs = tmp_path / "logs"

    def train(out):
        return call(capsys, "train", "--task", "user_tasks:tiny", "--logdir", logs,
                    "--out", tmp_path / out, "-q")  # fmt: skip

    assert train("a")[0] == 0
    events = sorted(p.name for p in logs.iterdir())
    status, _, err = train("b")
    assert status == 2 and err.count("\n") == 1 and "already holds a run's signals" in err
    assert sorted(p.name for p in logs.iterdir()) == events and not (tmp_path / "b").exists()
