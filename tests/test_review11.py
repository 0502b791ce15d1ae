"""Issue 11 as a hostile user meets it: compare's verdict with diverged seeds, entries that
cannot train refused before anything trains, --same-lr auto with only lr-free entries, the
transfer task's cache folder when it is a file."""

import math

import pytest

from lrkit.tune.compare.stats import summarize, verdict

pytestmark = pytest.mark.usefixtures("one_thread")
NAN = math.nan


# -- the verdict ------------------------------------------------------------------------------
def test_a_clean_best_wins_over_a_runner_up_that_diverged_on_most_seeds():
    # b diverged on 2 of 3 seeds: it ranks below a and cannot win; with 3 seeds each, "give 2
    # seeds or more" would be wrong advice
    v = verdict({"a": summarize([0.90, 0.91, 0.92]), "b": summarize([0.95, NAN, NAN])}, True)
    assert v.winner == "a" and v.tied == ()
    assert "diverged on 2 of 3 seeds" in v.text and "2 seeds or more" not in v.text


def test_when_every_entry_diverged_somewhere_the_verdict_says_so_not_give_more_seeds():
    v = verdict({"a": summarize([0.9, NAN, NAN]), "b": summarize([0.80, 0.85, NAN])}, True)
    assert v.winner is None
    assert "every entry had a diverged run" in v.text and "2 seeds or more" not in v.text


def test_one_seed_still_names_no_winner_when_the_runner_up_diverged():
    v = verdict({"a": summarize([0.9]), "b": summarize([NAN])}, True)
    assert v.winner is None and "no interval" in v.text
