"""What the command line promises a script and a new user: find --quiet's exit status, and no
pillar announced before it exists."""

import re
from pathlib import Path

from cli_run import call

import lrkit

TESTS = Path(__file__).parent
ROOT = TESTS.parent


def test_quiet_find_without_a_trustworthy_lr_exits_3_with_the_reason(capsys):
    status, out, err = call(capsys, "find", "--task", "user_tasks:tiny", "--steps", "10", "-q")
    assert (status, out) == (3, "")
    assert err.startswith("lrkit: warning: no lr suggested: low confidence, no descent")


def test_quiet_find_with_a_trustworthy_lr_exits_0_and_prints_it(capsys):
    status, out, _ = call(capsys, "find", "--steps", "30", "--start", "1e-5", "-q")
    assert status == 0 and float(out) > 0


def test_find_without_quiet_still_exits_0_when_no_lr_can_be_trusted(capsys):
    status, out, err = call(capsys, "find", "--task", "user_tasks:tiny", "--steps", "10")
    assert status == 0 and "no lr suggested" in out + err


def test_find_help_documents_the_exit_status_3(capsys):
    _, out, _ = call(capsys, "find", "--help")
    assert "3 with --quiet when no lr can be trusted" in " ".join(out.split())


def test_help_announces_tune_with_its_commands(capsys):
    _, out, _ = call(capsys, "--help")
    assert "find, schedule, tune and watch" in out
    assert "tune " in out and "study " in out and "lrkit tune --task" in out


def test_the_package_docstring_names_tune_among_the_pillars():
    first = lrkit.__doc__.splitlines()[0]
    assert "find, schedule, tune and watch" in first
    assert "planned" not in lrkit.__doc__ and ":func:`tune`" in lrkit.__doc__


def test_the_package_description_names_tune_now_that_it_is_here():
    description = re.search(r'^description = "(.*)"$', (ROOT / "pyproject.toml").read_text(), re.M)
    assert description and "find, schedule, tune and watch" in description[1]
