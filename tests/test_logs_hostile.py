"""Hostile run folders get nothing but the documented error: ValueError naming the file and
the line (CLI: exit 2, one line), and a line cut by a crash is read up to it, with a warning."""

from __future__ import annotations

import json
import os
import warnings

import pytest

from lrkit.cli import main
from lrkit.train import History, fit
from lrkit.watch import CSVSink, JSONLSink, TensorBoardSink, Watch, diagnose, read_run
from lrkit.watch.logs import read_csv, read_jsonl
from lrkit.watch.reading import LogWarning


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """One short fit's logs folder (every Watch sink), its history (--out) in ``../out``."""
    folder = tmp_path_factory.mktemp("good") / "logs"
    watch = Watch(sinks=[CSVSink(folder), JSONLSink(folder), TensorBoardSink(folder)])
    fit("wine-mlp", epochs=3, callbacks=[watch], progress=False, out=folder.parent / "out")
    return folder


def history_text(good, change) -> str:
    data = json.loads((good.parent / "out" / "history.json").read_text())
    return json.dumps(change(data))


def doctor(capsys, folder):
    status = main(["doctor", str(folder)])
    out, err = capsys.readouterr()
    return status, out, err


# -- each case: (file name, its content, what the message must say) ---------------------------
CASES = {
    "history is a list": ("history.json", "[]", "a history is a JSON object, got list"),
    "skipped row past the steps": (
        "history.json",
        '{"skipped": [0]}',
        "skipped[0] is row 0, but there are 0 rows",
    ),
    "an epoch entry without keys": (
        "history.json",
        '{"epochs_log": [{}]}',
        "epochs_log[0] has no 'epoch'",
    ),
    "garbage history": (
        "history.json",
        '{\n  "task": \n}\n',
        "line 3: not JSON: Expecting value (column 1)",
    ),
    "deeply nested history": ("history.json", "[" * 100_000, "history.json"),
    "a steps.csv row longer than its header": (
        "steps.csv",
        "step\n0,1\n",
        "line 2 has 2 cells, the header 1",
    ),
    "a step of 10**20": (
        "signals.csv",
        "step,tag,value\n100000000000000000000,train/loss,1.0\n",
        "line 2: a step must be a whole number in [0, 1000000000000000]",
    ),
    "a step of inf in a wide CSV": (
        "metrics.csv",
        "step,train/loss\ninf,1.0\n",
        "line 2: a step must be a whole number",
    ),
    "not a float": (
        "signals.csv",
        "step,tag,value\n0,train/loss,1.0\n1,train/loss,abc\n2,train/loss,0.5\n",
        "line 3: could not convert string to float: 'abc'",
    ),
    "random bytes as JSON lines": (
        "signals.jsonl",
        b"\xff" + os.urandom(1999),
        "line 1 is not UTF-8",
    ),
    "random bytes in a CSV": (
        "signals.csv",
        b"step,tag,value\n0,train/loss,1.0\n" + b"\xff\xfe" * 500,
        "line 3 is not UTF-8",
    ),
    "a JSON line that is not a record": (
        "signals.jsonl",
        '{"step": 0, "tag": "train/loss", "value": 1}\n[1, 2]\n{"step": 2}\n',
        "line 2 is not a {'step', 'tag', 'value'} record",
    ),
    "a bool step in a JSON line": (
        "signals.jsonl",
        '{"step": true, "tag": "train/loss", "value": 1}\n',
        "line 1: a step must be a whole number",
    ),
    "a deeply nested JSON line": ("signals.jsonl", "[" * 100_000 + "\n", "line 1 is not a"),
    "a CSV field past csv's limit": (
        "signals.csv",
        "step,tag,value\n0," + "x" * 200_000 + ",1\n",
        "line 2: field larger than field limit",
    ),
    "random bytes as an event file": (
        "events.out.tfevents.1.host",
        os.urandom(5000),
        "is not a TensorBoard event file",
    ),
}


def make(folder, name, content):
    path = folder / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_read_run_refuses_a_bad_file_with_a_value_error_naming_file_and_line(tmp_path, case):
    name, content, message = CASES[case]
    path = make(tmp_path, name, content)
    with pytest.raises(ValueError) as err:
        read_run(tmp_path)
    assert repr(str(path)) in str(err.value) and message in str(err.value)


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_doctor_refuses_a_bad_file_in_one_line_and_exit_2(capsys, tmp_path, case):
    name, content, message = CASES[case]
    path = make(tmp_path, name, content)
    status, out, err = doctor(capsys, tmp_path)
    assert status == 2 and out == ""
    assert err.startswith("lrkit: error: ") and err.count("\n") == 1
    assert str(path) in err and message in err


def test_a_signals_csv_that_is_a_folder_is_no_log(capsys, tmp_path):
    (tmp_path / "signals.csv").mkdir()
    status, _, err = doctor(capsys, tmp_path)
    assert status == 2 and err.startswith("lrkit: error: no logs in run directory")


def test_a_folder_given_as_a_log_file_is_a_value_error_naming_it(tmp_path):
    (tmp_path / "signals.csv").mkdir()
    with pytest.raises(ValueError, match="cannot read .*signals.csv"):
        read_csv(tmp_path / "signals.csv")


def test_a_history_with_columns_of_unequal_length_is_refused(good, tmp_path):
    text = history_text(good, lambda d: {**d, "loss": d["loss"][:-1]})
    (tmp_path / "history.json").write_text(text)
    n = len(json.loads(text)["step"])
    with pytest.raises(ValueError, match=f"loss has {n - 1} entries, step has {n}"):
        History.load(tmp_path)


def test_a_history_value_error_names_the_line_of_its_key(good, tmp_path):
    text = (good.parent / "out" / "history.json").read_text().replace('"seed": 0', '"seed": "x"')
    (tmp_path / "history.json").write_text(text)
    line = next(n for n, t in enumerate(text.splitlines(), 1) if t.lstrip().startswith('"seed"'))
    with pytest.raises(ValueError, match=f'history.json\' line {line} \\("seed"\\): seed'):
        History.load(tmp_path)


# -- a cut last line ---------------------------------------------------------------------------
@pytest.mark.parametrize("name, reader", [("signals.jsonl", read_jsonl), ("signals.csv", read_csv)])
@pytest.mark.parametrize("cut", [2, 5, 9])
def test_a_last_line_cut_by_a_crash_is_read_up_to_it_with_a_warning(
    good, tmp_path, name, reader, cut
):
    whole = (good / name).read_bytes()
    lines = whole.count(b"\n")
    (tmp_path / name).write_bytes(whole[:-cut])  # the last line loses its end
    with pytest.warns(LogWarning, match=f"line {lines} has no line end"):
        got = reader(tmp_path / name)
    want = reader(good / name)
    assert len(got) == len(want) - 1
    assert got.get("train/loss")[0].tolist() == want.get("train/loss")[0].tolist()


def test_a_cut_jsonl_line_that_still_parses_is_kept(tmp_path):
    (tmp_path / "signals.jsonl").write_text('{"step": 0, "tag": "train/loss", "value": 1.5}')
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_jsonl(tmp_path / "signals.jsonl").get("train/loss")[1].tolist() == [1.5]


def test_a_bad_line_before_the_last_is_still_an_error(good, tmp_path):
    lines = (good / "signals.jsonl").read_text().splitlines(keepends=True)
    lines[3] = lines[3][:10] + "\n"
    (tmp_path / "signals.jsonl").write_text("".join(lines))
    with pytest.raises(ValueError, match="signals.jsonl' line 4 is not a"):
        read_jsonl(tmp_path / "signals.jsonl")


def test_doctor_prints_the_cut_line_warning_and_diagnoses(capsys, good, tmp_path):
    (tmp_path / "signals.jsonl").write_bytes((good / "signals.jsonl").read_bytes()[:-5])
    status, out, err = doctor(capsys, tmp_path)
    assert status == 0 and "verdict: " in out
    assert err.startswith("lrkit: warning: ") and "has no line end" in err


# -- TensorBoard event files -------------------------------------------------------------------
def event_file(folder):
    (path,) = folder.glob("events.out.tfevents.*")
    return path


def test_a_corrupt_event_file_is_read_up_to_the_bad_record_with_a_warning(good, tmp_path):
    data = bytearray(event_file(good).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / event_file(good).name).write_bytes(bytes(data))
    with pytest.warns(LogWarning, match=r"record \d+ at byte \d+ is corrupt: read the \d+"):
        got = read_run(tmp_path)
    steps = got.get("train/loss")[0].tolist()
    full = read_run(good).get("train/loss")[0].tolist()
    assert 0 < len(steps) < len(full) and steps == full[: len(steps)]


def test_an_event_file_cut_by_a_crash_is_read_up_to_its_last_whole_record(good, tmp_path):
    data = event_file(good).read_bytes()
    (tmp_path / event_file(good).name).write_bytes(data[:-7])
    with pytest.warns(LogWarning, match="is cut"):
        got = read_run(tmp_path).get("train/loss")[0].tolist()
    full = read_run(good).get("train/loss")[0].tolist()
    assert got == full[: len(got)] and len(got) >= len(full) - 1


def test_an_empty_event_file_holds_no_scalars(tmp_path):
    (tmp_path / "events.out.tfevents.1.host").write_bytes(b"")
    assert len(read_run(tmp_path)) == 0


# -- a loss of 0.0 -----------------------------------------------------------------------------
def test_a_run_whose_first_losses_are_zero_is_diagnosed(tmp_path):
    rows = "".join(f"{i},train/loss,{0.0 if i < 5 else 1.0}\n" for i in range(60))
    (tmp_path / "signals.csv").write_text("step,tag,value\n" + rows)
    assert diagnose(read_run(tmp_path)).verdict


def test_a_huge_tag_is_not_echoed_whole_in_the_error(tmp_path, capsys):
    # a 5 MB tag name made a 5 MB error line
    import json

    from cli_run import call

    line = json.dumps({"step": 0, "tag": "x" * 5_000_000, "value": 1.0})
    (tmp_path / "signals.jsonl").write_text(line + "\n")
    status, _, err = call(capsys, "doctor", tmp_path)
    assert status == 2 and err.count("\n") == 1 and len(err) < 500
