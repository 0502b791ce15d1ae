"""compare's entries: short names, optimizers, fine-tuning modes and specs, joined with '+'."""

import pytest

from lrkit.errors import UserError
from lrkit.schedules import parse
from lrkit.tune.compare import SCHEDULES, Entry, as_entries, parse_entry
from lrkit.tune.compare.entries import split_top


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_each_short_name_is_its_documented_spec_and_resolves_against_a_run(name):
    entry = parse_entry(name)
    assert entry.schedule == SCHEDULES[name] and entry.label == name
    resolved = parse(entry.schedule).resolve(total_steps=1000, steps_per_epoch=100)
    values = [resolved(t) for t in range(0, 1000, 50)]
    assert max(values) == pytest.approx(1.0, abs=0.05)  # a peak of 1: the lr is the peak
    assert all(0.0 <= v <= 1.0 + 1e-9 for v in values)


def test_the_six_of_the_usual_table_are_short_names():
    assert {"constant", "step", "cosine", "cyclic", "onecycle", "wsd"} <= set(SCHEDULES)


def test_cosine_is_warmup_then_cosine():
    assert parse_entry("cosine").schedule == "warmup(5%) >> cosine"


def test_parts_join_with_plus_in_any_order():
    a, b = parse_entry("cosine+sgd"), parse_entry("sgd + cosine")
    assert (a.schedule, a.optimizer) == (b.schedule, b.optimizer) == (SCHEDULES["cosine"], "sgd")


def test_an_optimizer_alone_runs_a_constant_schedule():
    entry = parse_entry("adam")
    assert (entry.schedule, entry.optimizer, entry.finetune) == ("constant", "adam", None)


def test_a_finetune_mode_is_an_entry_part():
    entry = parse_entry("layerwise+cosine")
    assert entry.finetune == "layerwise" and entry.schedule == SCHEDULES["cosine"]


def test_any_spec_is_an_entry_and_keeps_its_text():
    entry = parse_entry("warmup(10%) >> cosine(to=0.01)+adamw")
    assert entry.schedule == "warmup(10%) >> cosine(to=0.01)" and entry.optimizer == "adamw"


def test_a_plus_in_a_numbers_exponent_does_not_split():
    assert split_top("constant(1e+0)+sgd", "+") == ["constant(1e+0)", "sgd"]


def test_an_unknown_name_says_did_you_mean_and_what_is_accepted():
    with pytest.raises(UserError) as e:
        parse_entry("cosin")
    said = str(e.value)
    assert "unknown entry part 'cosin'" in said and "did you mean 'cosine'?" in said
    for accepted in ("onecycle", "sgd", "layerwise", "spec"):
        assert accepted in said


def test_an_unknown_optimizer_in_a_joined_entry_names_the_entry():
    with pytest.raises(UserError, match=r"'sgdd' in entry 'cosine\+sgdd' \(did you mean 'sgd'"):
        parse_entry("cosine+sgdd")


def test_a_spec_that_does_not_parse_gives_the_parsers_message():
    with pytest.raises(UserError, match=r"unknown schedule 'cosin' at column 15"):
        parse_entry("warmup(5%) >> cosin")


def test_two_schedules_in_one_entry_are_refused():
    with pytest.raises(UserError, match=r"names two schedules, 'cosine' and 'step'"):
        parse_entry("cosine+step")


def test_an_empty_part_is_refused():
    with pytest.raises(UserError, match="empty part"):
        parse_entry("cosine++sgd")


def test_a_comma_list_splits_outside_brackets():
    entries = as_entries("constant, step(25%, 0.5),cosine")
    assert [e.label for e in entries] == ["constant", "step(25%, 0.5)", "cosine"]


def test_no_entries_means_the_six():
    assert [e.label for e in as_entries(None)] == [
        "constant",
        "step",
        "cosine",
        "cyclic",
        "onecycle",
        "wsd",
    ]


def test_an_entry_given_twice_is_refused():
    with pytest.raises(UserError, match="'cosine' is given twice"):
        as_entries(["cosine", "constant", "cosine"])


def test_an_empty_list_is_refused():
    with pytest.raises(UserError, match="no entries"):
        as_entries([])


@pytest.mark.parametrize("lr", [float("nan"), float("inf"), 0, -1e-3, True])
def test_an_entrys_lr_must_be_a_finite_positive_number(lr):
    with pytest.raises(UserError, match="lr must be"):
        Entry("x", lr=lr)


def test_an_entry_object_checks_its_optimizer_and_schedule():
    with pytest.raises(UserError, match="did you mean 'adam'"):
        Entry("x", optimizer="adan")
    with pytest.raises(UserError, match="entry 'x'"):
        Entry("x", schedule="cosine(")


def test_an_entry_keeps_a_schedule_object_as_its_text():
    assert Entry("x", schedule=parse("warmup(5%) >> cosine")).schedule == "warmup(5%) >> cosine"


def test_each_short_names_spec_is_documented_in_the_module_and_the_readme():
    from pathlib import Path

    from lrkit.tune.compare import entries

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    for name, spec in SCHEDULES.items():
        assert f"``{name}``: ``{spec}``" in entries.__doc__, name
        assert f"| `{name}` | `{spec}` |" in readme, name


def test_a_catalogue_name_missing_its_arguments_gets_the_parsers_message_not_unknown():
    with pytest.raises(UserError) as e:
        parse_entry("cyclical")
    assert "unknown entry part" not in str(e.value) and "entry 'cyclical'" in str(e.value)
