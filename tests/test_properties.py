"""Invariants every schedule keeps, checked on random trees from tests/strategies.py."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import (
    TOTAL_STEPS,
    atoms,
    continuous_chains,
    finite_atoms,
    kinds,
    resolve,
    schedules,
)

from lrkit.schedules import REGISTRY, Schedule, from_dict, repeat, stretch

any_schedule = st.one_of(schedules(resolved=True), schedules(resolved=False))


def steps_to_check(s: Schedule) -> list[float]:
    """Whole steps across the schedule and past its end, and some steps in between."""
    n = s.length if type(s.length) is int else TOTAL_STEPS
    ints = sorted({*range(0, 2 * n + 2, max(1, n // 25)), n - 1, n, n + 1, 3 * n} - {-1})
    return ints + [t + 0.37 for t in ints[:20]]


@given(any_schedule)
def test_values_are_finite_and_not_negative(s):
    r = resolve(s)
    for t in steps_to_check(r):
        v = r(t)
        assert math.isfinite(v) and v >= 0, f"{r!r} at step {t}: {v}"


@given(any_schedule)
def test_values_lie_within_the_declared_bounds(s):
    r = resolve(s)
    lo, hi = r.bounds()
    assert 0 <= lo <= hi
    for t in steps_to_check(r):
        v = r(t)
        assert lo * (1 - 1e-9) - 1e-12 <= v <= hi * (1 + 1e-9) + 1e-12, f"{r!r} at {t}: {v}"


@given(continuous_chains())
def test_parts_that_meet_join_without_a_jump(chain):
    starts = chain._starts
    for part, begin, next_ in zip(chain.parts, starts[1:], chain.parts[1:]):
        assert part(part.length) == pytest.approx(
            next_(0), rel=1e-12
        )  # this part ends where the next begins
        before, at = chain(begin - 1e-9), chain(begin)
        assert at == next_(0)
        assert abs(before - at) <= 1e-6 * max(1.0, at), f"jump at step {begin} of {chain!r}"


@given(any_schedule)
def test_from_dict_of_to_dict_is_the_same_schedule(s):
    assert from_dict(s.to_dict()) == s
    assert from_dict(json.loads(json.dumps(s.to_dict()))) == s


@given(any_schedule)
def test_resolve_is_idempotent(s):
    r = resolve(s)
    assert resolve(r) == r


@given(schedules(resolved=False))
def test_resolve_leaves_only_whole_steps(s):
    for node in resolve(s).walk():
        for f in dataclasses.fields(node):
            kind = f.metadata.get("kind")
            value = getattr(node, f.name)
            if kind == "length":
                assert value is None or type(value) is int, f"{node!r}.{f.name} = {value!r}"
            elif kind == "lengths":
                assert all(type(v) is int for v in value), f"{node!r}.{f.name} = {value!r}"
        if node.name == "piecewise_linear":
            assert all(type(step) is int for step, _ in node.points)


@given(schedules(resolved=True))
def test_a_schedule_in_whole_steps_resolves_to_itself(s):
    assert resolve(s) == s


@given(finite_atoms(resolved=True))
def test_a_catalogue_schedule_holds_its_last_value_past_its_length(s):
    n = s.length
    assert s(n) == s(n + 0.5) == s(n + 1) == s(2 * n + 3)


@given(finite_atoms(resolved=True), st.integers(1, 3))
def test_stretch_to_its_own_length_and_repeat_change_no_value(s, times):
    n = s.length
    for t in range(0, n, max(1, n // 20)):
        assert stretch(s, n)(t) == s(t)
        assert repeat(s, times)(t + (times - 1) * n) == s(t)


def test_strategies_know_every_catalogue_kind():
    catalogue = {
        name
        for name, cls in REGISTRY.items()
        if cls.__module__
        in ("lrkit.schedules.catalogue", "lrkit.schedules.piecewise", "lrkit.schedules.cyclic")
    }
    assert set(kinds()) == catalogue


@pytest.mark.parametrize("kind", kinds())
@pytest.mark.parametrize("resolved", [True, False], ids=["steps", "fractions"])
def test_every_kind_keeps_the_invariants_on_its_own(kind, resolved):
    @settings(max_examples=15)
    @given(atoms(kind, resolved))
    def check(s):
        assert s.name == kind
        r = resolve(s)
        lo, hi = r.bounds()
        for t in steps_to_check(r):
            assert lo * (1 - 1e-9) - 1e-12 <= r(t) <= hi * (1 + 1e-9) + 1e-12
        assert from_dict(s.to_dict()) == s and resolve(r) == r

    check()
