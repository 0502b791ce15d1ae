"""The ground floor: doctests of its modules, and the one progress reporter."""

import doctest
import importlib

import pytest

from lrkit.progress import progress, wanted


@pytest.mark.parametrize("name", ["checks", "progress", "errors", "runtime", "paths"])
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
