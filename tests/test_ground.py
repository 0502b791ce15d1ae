"""The ground floor: doctests of its modules, and the one progress reporter."""

import doctest
import importlib

import pytest

from lrkit.progress import progress, wanted
from lrkit.results import Result


@pytest.mark.parametrize("name", ["checks", "progress", "errors", "runtime", "paths", "results"])
def test_ground_floor_docstring_examples_hold(name):
    result = doctest.testmod(importlib.import_module(f"lrkit.{name}"))
    assert result.failed == 0


def test_a_shown_reporter_prints_its_notes_and_counts_steps(capsys):
    with progress(
        "work", total=4, show=True, fields={"info": ""}, template="{task.fields[info]}"
    ) as bar:
        bar.advance(3, info="lr 0.1")
        bar.note("round 1: 4 runs")
    assert bar.shown and bar.completed == 3
    assert "round 1: 4 runs" in capsys.readouterr().out


def test_a_hidden_reporter_prints_nothing(capsys):
    with progress("work", total=4, show=False) as bar:
        bar.advance(2)
        bar.note("hidden")
    assert not bar.shown and bar.completed == 2
    assert capsys.readouterr().out == ""


def test_progress_flag_must_be_none_or_a_bool():
    assert wanted(False) is False
    with pytest.raises(ValueError, match="progress must be None, True or False, got 'yes'"):
        wanted("yes")


class _Point(Result):
    def __init__(self, x):
        self.x = x

    def to_dict(self):
        return {"x": self.x}

    @classmethod
    def from_dict(cls, data):
        return cls(float(data["x"]))


def test_a_result_round_trips_through_a_json_file(tmp_path):
    path = tmp_path / "point.json"
    _Point(0.25).to_json(path)
    assert _Point.load(path).x == 0.25
    assert not (tmp_path / "point.json.partial").exists()


@pytest.mark.parametrize(
    "text, message",
    [
        ('{"x":\n', r"point.json' line 2: not JSON: Expecting value \(column 1\)"),
        ("[]", r"point.json': expected a JSON object, got list"),
        ('{"y": 1}', r"point.json': not a _Point: KeyError"),
        ('{"x": "abc"}', r"point.json': could not convert string to float"),
    ],
)
def test_a_bad_result_file_is_a_value_error_naming_the_file(tmp_path, text, message):
    path = tmp_path / "point.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        _Point.load(path)


def test_a_result_file_of_random_bytes_names_the_file(tmp_path):
    path = tmp_path / "point.json"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ValueError, match=r"point.json' line 1 is not UTF-8 text"):
        _Point.load(path)


def test_counted_says_one_seed_and_two_entries():
    from lrkit.progress import counted

    assert (counted(1, "seed"), counted(3, "seed")) == ("1 seed", "3 seeds")
    assert (counted(1, "entry", "entries"), counted(0, "entry", "entries")) == (
        "1 entry",
        "0 entries",
    )
