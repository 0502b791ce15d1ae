"""Invariants every schedule keeps, checked on random trees from tests/strategies.py."""

from __future__ import annotations

import dataclasses
import json
import math
import re

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


# -- hostile input: only the documented errors, finite values, bounded time -------------------
EXTREME = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(10**400), 10**400),
    st.sampled_from([0, 1, -1, 1e-320, 1e308, 10**12, 10**12 + 1, 2**63, 1e12, 1.0000001]),
)
STEPS = [0, 1, 7, 10**3, 10**6, 10**9, 10**12, 10**15, 2**53, 12.5, 1e18]


def _finite_everywhere(s: Schedule) -> None:
    try:
        r = resolve(s)
    except ValueError:
        return  # refused when resolved (e.g. a decay longer than the run)
    for t in STEPS + steps_to_check(r):
        v = r(t)
        assert math.isfinite(v) and v >= 0, f"{r!r} at step {t}: {v}"


@pytest.mark.parametrize("kind", sorted(REGISTRY))
def test_any_numbers_build_a_schedule_finite_at_every_step_or_a_value_error(kind):
    # fails on 21f979a: OverflowError, ZeroDivisionError, -inf and nan at some steps
    cls = REGISTRY[kind]
    fields = [f for f in dataclasses.fields(cls) if f.init]

    @settings(max_examples=60, deadline=None)
    @given(st.data())
    def check(data):
        kwargs = {}
        for f in fields:
            if data.draw(st.booleans()) or f.default is dataclasses.MISSING:
                kwargs[f.name] = data.draw(EXTREME)
        try:
            s = cls(**kwargs)
        except (ValueError, TypeError):  # TypeError: a schedule given to a number field
            return
        _finite_everywhere(s)

    check()


MUTATION_PIECES = [
    "(", ")", "[", "]", ",", "=", ">>", "*", " ", "%", "ep", "-", ".", "e308", "9" * 320,
    "1e999", "inf", "nan", "none", "true", "'", '"', "\\", "0", "1e-320", "repeat", "stretch",
    "clip(", "seq(", "min(", "maximum", "step", "exponential(2)", "cosine_restarts(1, mult=9)",
    "cyclical(", "plateau", "product(", "1000000000000000", "steps=", "boundaries=[",
]  # fmt: skip


OPERANDS = [
    "exponential(2)", "exponential(1.5, steps=100)", "step(1, 2)", "cyclical(1e308)",
    "cosine(1, 1e308)", "cosine_restarts(1, to=1e308)", "seq(step)", "max(inverse_sqrt)",
    "repeat", "stretch", "0", "1e308", "plateau", "constant", "inverse_sqrt(1000000ep)",
    "scale(warmup * cosine)", "minimum(cosine, 0.5)", "multistep([1, 2], gamma=1e200)",
    "one_cycle(10, div=1e-300)", "polynomial(5, power=1e300)", "clip(exponential(3), hi=2)",
]  # fmt: skip
EXTREME_TEXT = [
    "1e308", "1e-320", "9" * 320, "0", "1e12", "1000000000000001", "2", "1.5", "nan", "inf",
    "-1", "0.0", "4300" * 1200,
]  # fmt: skip
_NUMBER_IN_TEXT = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?:e[-+]?\d+)?")


@st.composite
def mutated_texts(draw):
    """The text form of a valid schedule, mutated as a fuzzer would: random cuts, pastes and
    repetitions, a number swapped for an extreme one, or a hostile operand chained on."""
    text = repr(draw(schedules(resolved=draw(st.booleans()), max_depth=1)))
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(text)))
        j = draw(st.integers(i, min(len(text), i + 12)))
        how = draw(st.sampled_from(["insert", "replace", "delete", "repeat", "number", "chain"]))
        piece = draw(st.sampled_from(MUTATION_PIECES) | st.text(max_size=3))
        if how == "insert":
            text = text[:i] + piece + text[i:]
        elif how == "replace":
            text = text[:i] + piece + text[j:]
        elif how == "delete":
            text = text[:i] + text[j:]
        elif how == "repeat":
            text = text[:i] + text[i:j] * draw(st.integers(2, 60)) + text[j:]
        elif how == "number" and (found := list(_NUMBER_IN_TEXT.finditer(text))):
            m = draw(st.sampled_from(found))
            text = text[: m.start()] + draw(st.sampled_from(EXTREME_TEXT)) + text[m.end() :]
        else:
            op, other = draw(st.sampled_from([" >> ", " * "])), draw(st.sampled_from(OPERANDS))
            text = f"{text}{op}{other}" if draw(st.booleans()) else f"{other}{op}({text})"
    return text


@settings(max_examples=300, deadline=None)
@given(mutated_texts())
def test_a_mutated_text_parses_to_a_sound_schedule_or_gives_a_syntax_error(text):
    import time

    from lrkit.schedules import ScheduleSyntaxError, parse

    begin = time.perf_counter()
    try:
        s = parse(text)
    except ScheduleSyntaxError:
        assert time.perf_counter() - begin < 2.0
        return
    assert time.perf_counter() - begin < 2.0
    assert parse(repr(s)) == s and from_dict(json.loads(json.dumps(s.to_dict()))) == s
    try:
        r = resolve(s)
    except ValueError:
        return  # e.g. parts that take more than the run: refused when resolved
    for t in STEPS + steps_to_check(r):
        try:
            v = r(t)
        except ValueError as e:  # only a schedule that is not resolved may say so
            assert "resolve" in str(e) or "has no" in str(e), str(e)
            return
        assert math.isfinite(v) and v >= 0, f"{r!r} at step {t}: {v}"


JUNK = st.recursive(
    st.one_of(
        st.none(), st.booleans(), EXTREME, st.text(max_size=8),
        st.sampled_from(["cosine", "type", "schedule", "5%", "2ep", "x" * 10_000]),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=6), st.integers(), st.just("type")), inner,
                        max_size=4),
    ),
    max_leaves=12,
)  # fmt: skip


@st.composite
def mutated_data(draw):
    """``to_dict()`` data of a valid schedule with one value, key or mapping replaced by junk."""
    data = draw(schedules(resolved=draw(st.booleans()), max_depth=1)).to_dict()
    holders = []

    def collect(x):
        if isinstance(x, dict):
            holders.append(x)
            for v in x.values():
                collect(v)
        elif isinstance(x, list):
            holders.append(x)
            for v in x:
                collect(v)

    collect(data)
    for _ in range(draw(st.integers(1, 3))):
        holder = draw(st.sampled_from(holders))
        if isinstance(holder, dict):
            key = draw(st.sampled_from(sorted(holder, key=str)) | JUNK.filter(_hashable))
            holder[key] = draw(JUNK)
        elif holder:
            holder[draw(st.integers(0, len(holder) - 1))] = draw(JUNK)
    return data


def _hashable(x) -> bool:
    try:
        hash(x)
    except TypeError:
        return False
    return True


@settings(max_examples=150, deadline=None)
@given(mutated_data())
def test_mutated_config_data_loads_to_a_sound_schedule_or_gives_a_value_error(data):
    import time

    from lrkit.schedules import load_schedule

    begin = time.perf_counter()
    try:
        s = load_schedule(data)
    except ValueError:
        assert time.perf_counter() - begin < 2.0
        return
    assert time.perf_counter() - begin < 2.0
    try:
        r = resolve(s)
    except ValueError:
        return
    for t in STEPS:
        try:
            v = r(t)
        except ValueError as e:
            assert "resolve" in str(e) or "has no" in str(e), str(e)
            return
        assert math.isfinite(v) and v >= 0, f"{r!r} at step {t}: {v}"


@settings(max_examples=80, deadline=None)
@given(mutated_data(), st.sampled_from([".json", ".yaml"]), st.integers(0, 40), st.text(max_size=4))
def test_a_corrupted_config_file_loads_or_gives_a_user_error_naming_the_file(
    tmp_path_factory, data, suffix, cut, noise
):
    import yaml as pyyaml

    from lrkit.errors import UserError
    from lrkit.schedules import load_schedule

    try:
        text = json.dumps(data) if suffix == ".json" else pyyaml.safe_dump(data)
    except (TypeError, ValueError, pyyaml.YAMLError):
        return  # junk that the writer itself refuses
    at = len(text) * cut // 40
    path = tmp_path_factory.mktemp("cfg") / f"lr{suffix}"
    path.write_text(text[:at] + noise + text[at:], encoding="utf-8")
    try:
        load_schedule(path)
    except UserError as e:
        assert str(e).startswith(f"schedule file '{path}'")
