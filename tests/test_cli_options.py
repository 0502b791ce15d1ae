"""Every numeric option of every command keeps the contract: a value is used or refused (exit 2,
one line naming the option, the value and what is accepted), never a traceback (exit 1).

The options are discovered from the click command tree, so an option added later is walked too.
"""

from pathlib import Path

import click
import pytest
from cli_run import call

from lrkit.cli import cli

TESTS = Path(__file__).parent
HOSTILE = ("nan", "inf", "-inf", "-1", "0", "1e400", "1e-400", "", str(10**30))

COMPARE = ["--task", "user_tasks:tiny", "--schedules", "constant", "--seeds", "1", "--budget", "3"]
# What each command needs besides the option under test, chosen to run in about a second.
# A command with a numeric option that is missing here fails test_every_numeric_command_has_a_base.
BASE = {
    ("find",): (["--task", "user_tasks:tiny", "--steps", "10", "--json", "-"], []),
    ("pick",): (["--task", "user_tasks:tiny", "--budget", "3", "--quiet"], []),
    ("train",): (["--task", "user_tasks:tiny", "--quiet", "--out", "{tmp}"], []),
    ("schedule", "show"): (["--steps", "10"], ["cosine"]),
    ("tune",): (["--task", "user_tasks:tiny", "--trials", "1", "--quiet", "--out", "{tmp}"], []),
    ("study", "create"): (["--storage", "{tmp}.journal", "--task", "user_tasks:tiny"], ["s"]),
    ("compare",): ([*COMPARE, "--out", "{tmp}"], []),
    ("study", "batch-size"): (["--task", "wine-mlp", "--batch-sizes", "8,16,32", "--epochs", "1",
                               "--out", "{tmp}"], []),  # fmt: skip
    ("study", "clip"): (["--task", "user_tasks:tiny", "--thresholds", "1.0", "--lrs", "0.1",
                         "--epochs", "1", "--out", "{tmp}"], []),  # fmt: skip
    ("scale-lr",): (["--from-batch", "2", "--to-batch", "4"], ["0.1"]),
}


def _commands(group, path=()):
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from _commands(command, (*path, name))
        else:
            yield (*path, name), command


def _numeric(param):
    return isinstance(param.type, click.types.IntParamType | click.types.FloatParamType)


def _numeric_options():
    return [
        (path, param)
        for path, command in _commands(cli)
        for param in command.params
        if isinstance(param, click.Option) and _numeric(param)
    ]


def _long(param):
    return next(o for o in param.opts if o.startswith("--"))


CASES = [(path, _long(param), value) for path, param in _numeric_options() for value in HOSTILE]


def _argv(path, option, value, tmp):
    options, arguments = BASE[path]
    kept, i = [], 0
    while i < len(options):  # drop the base's own value of the option under test
        if options[i] == option:
            i += 2
            continue
        kept.append(options[i].format(tmp=tmp))
        i += 1
    return [*path, *arguments, option, value, *kept]


def test_the_walk_finds_the_numeric_options_of_every_verb():
    found = {(path, _long(p)) for path, p in _numeric_options()}
    assert {(("train",), "--lr"), (("find",), "--end"), (("schedule", "show"), "--steps")} <= found
    assert {(("pick",), "--budget"), (("pick",), "--seed"), (("find",), "--seeds")} <= found


def test_every_numeric_command_has_a_base():
    assert {path for path, _ in _numeric_options()} <= set(BASE)


def test_every_numeric_parameter_is_bounded_and_finite():
    from lrkit.cli.options import FiniteFloat, WholeNumber

    numeric = [(p, q) for p, c in _commands(cli) for q in c.params if _numeric(q)]
    assert len(numeric) >= len(_numeric_options()) > 0
    for path, param in numeric:  # arguments too: a numeric argument must be bounded as well
        where = f"{' '.join(path)} {param.human_readable_name}"
        assert isinstance(param.type, FiniteFloat | WholeNumber), where
        assert param.type.min is not None and param.type.max is not None, where


@pytest.mark.parametrize(
    ("path", "option", "value"), CASES, ids=lambda x: " ".join(x) if isinstance(x, tuple) else x
)
def test_a_hostile_value_is_used_or_refused_in_one_line(capsys, tmp_path, path, option, value):
    status, _, err = call(capsys, *_argv(path, option, value, tmp_path / "out"))
    assert status in (0, 2), err
    if status == 2:
        assert err.count("\n") == 1 and err.startswith("lrkit: error: "), err
        assert option in err and value in err and "Traceback" not in err


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "--lr", "nan"],
        ["train", "--lr", "inf"],
        ["find", "--start", "nan"],
        ["find", "--end", "inf"],
        ["schedule", "show", "cosine", "--steps", "10", "--lr", "nan"],
        ["schedule", "show", "cosine", "--steps", "10", "--lr", "inf"],
    ],
    ids=" ".join,
)
def test_the_reported_non_finite_values_say_what_is_accepted(capsys, argv):
    status, _, err = call(capsys, *argv)
    assert status == 2
    assert f"{argv[-2]} must be a number in (0, 1000000], got {argv[-1]}" in err


def test_a_whole_number_option_refuses_a_fraction_and_says_so(capsys):
    status, _, err = call(capsys, "train", "--epochs", "2.5")
    assert status == 2 and "--epochs must be a whole number in [1, 1000000], got 2.5" in err


def test_an_lr_torch_cannot_hold_is_refused_before_training(capsys, tmp_path):
    status, _, err = call(capsys, "train", "--task", "user_tasks:tiny", "--lr", "1e300",
                          "--out", str(tmp_path), "-q")  # fmt: skip
    assert status == 2 and "--lr must be a number in (0, 1000000], got 1e300" in err


def test_the_largest_lr_accepted_trains_without_a_traceback(capsys, tmp_path):
    status, _, err = call(capsys, "train", "--task", "user_tasks:tiny", "--lr", "1e6",
                          "--out", str(tmp_path), "-q")  # fmt: skip
    assert status == 0 and "Traceback" not in err


def test_a_seed_torch_cannot_hold_is_refused(capsys, tmp_path):
    status, _, err = call(capsys, "train", "--task", "user_tasks:tiny", "--seed", str(10**30),
                          "--out", str(tmp_path), "-q")  # fmt: skip
    assert status == 2 and "--seed must be a whole number in [0, 4294967295]" in err


def test_schedule_show_previews_a_billion_steps(capsys):
    status, out, _ = call(capsys, "schedule", "show", "cosine", "--steps", str(10**9))
    assert status == 0 and "1000000000" in out


def test_schedule_show_at_the_largest_steps_accepted_works(capsys):
    status, out, _ = call(
        capsys, "schedule", "show", "warmup(5%) >> cosine", "--steps", str(10**12)
    )
    assert status == 0 and "warmup(50000000000)" in out


def test_schedule_show_of_a_schedule_that_overflows_names_the_step(capsys):
    status, _, err = call(capsys, "schedule", "show", "exponential(2)", "--steps", "2000")
    assert status == 2 and err.count("\n") == 1 and "step" in err and "Traceback" not in err


def test_schedule_show_refuses_an_lr_whose_product_is_not_finite(capsys):
    # a schedule value is at most 1e12 (refused when built) and --lr at most 1e6, so the
    # product stays finite: the refusal comes from the schedule, in one line naming the value
    status, _, err = call(capsys, "schedule", "show", "constant(1e305)", "--steps", "10",
                          "--lr", "1e6")  # fmt: skip
    assert status == 2 and err.count("\n") == 1 and "1e+305" in err


def test_train_refuses_a_schedule_that_takes_the_lr_past_the_largest_before_training(
    capsys, tmp_path
):
    status, _, err = call(capsys, "train", "--task", "user_tasks:tiny", "--schedule",
                          "constant(1e11)", "--out", str(tmp_path), "-q")  # fmt: skip
    assert status == 2 and err.count("\n") == 1 and "at step 0 is 1e+10, above 1e+06" in err
    assert not (tmp_path / "history.json").exists()
