"""The text form: parse() builds what the Python algebra builds, errors point at the column."""

import dataclasses
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lrkit.schedules import (
    REGISTRY,
    Minimum,
    Plateau,
    Product,
    Scale,
    Schedule,
    ScheduleSyntaxError,
    Sequence,
    clip,
    constant,
    cosine,
    linear,
    parse,
    register,
    repeat,
    seq,
    stretch,
    warmup,
)


def syntax_error(text: str) -> ScheduleSyntaxError:
    with pytest.raises(ScheduleSyntaxError) as info:
        parse(text)
    return info.value


@pytest.fixture
def probe():
    """A throwaway schedule whose fields take any value, to see what values parse to."""

    @register("probe")
    @dataclasses.dataclass(frozen=True, repr=False)
    class Probe(Schedule):
        value: Any = None
        mode: str = "a"
        inner: Schedule | None = None

        def __call__(self, t):
            return 1.0

    yield lambda text: parse(text)
    del REGISTRY["probe"]


# -- what parses to what ------------------------------------------------------------------
def test_operators_build_exactly_what_python_operators_build():
    assert parse("warmup(5%) >> cosine(to=0.01)") == warmup("5%") >> cosine(to=0.01)


def test_bare_name_is_the_schedule_with_its_defaults():
    assert parse("cosine") == cosine()


def test_positional_arguments_fill_fields_in_order():
    assert parse("cosine(100, 0.1, 0.9)") == cosine(100, to=0.1, start=0.9)


def test_keyword_arguments_name_fields():
    assert parse("linear(steps=10, to=0.5, start=0.9)") == linear(10, start=0.9, to=0.5)


def test_number_times_schedule_is_a_scale():
    s = parse("0.5 * cosine(10)")
    assert s == Scale(cosine(10), 0.5) == 0.5 * cosine(10)


def test_numbers_multiply_as_numbers_before_scaling():
    assert parse("2 * 3 * cosine") == 6 * cosine()


def test_lone_number_is_a_constant():
    assert parse("0.5") == constant(0.5)


def test_number_in_a_sequence_is_a_constant_part():
    assert parse("0.5 >> cosine(10)") == 0.5 >> cosine(10)


def test_product_binds_tighter_than_sequence():
    expected = warmup(10) >> (cosine(10) * linear(10))
    assert parse("warmup(10) >> cosine(10) * linear(10)") == expected


def test_parentheses_group_a_sequence_inside_a_product():
    expected = (warmup(10) >> cosine(90)) * linear(100)
    assert parse("(warmup(10) >> cosine(90)) * linear(100)") == expected


def test_varargs_schedule_takes_every_positional_argument_as_parts():
    s = parse("min(cosine(10), linear(10), 0.5)")
    assert s == Minimum((cosine(10), linear(10), constant(0.5)))


def test_seq_call_takes_parts_and_boundaries():
    s = parse("seq(constant, constant(0.1), boundaries=[100])")
    assert s == seq(constant(), constant(0.1), boundaries=[100])


def test_percent_may_have_a_space_and_decimals():
    assert parse("warmup(2.5 %)") == warmup("2.5%")


@pytest.mark.parametrize("text", ["2ep", "2 ep", "2epoch", "2 epochs", "2.0ep"])
def test_epochs_have_several_spellings(text):
    assert parse(f"warmup({text})") == warmup("2ep")


def test_scientific_notation_is_a_number():
    assert parse("cosine(1e3, to=1e-3)") == cosine(1000, to=0.001)


def test_whitespace_and_newlines_between_tokens_are_ignored():
    assert parse("warmup( 10 )\n  >>\tcosine(90 , to = 0.1)") == warmup(10) >> cosine(90, to=0.1)


def test_spec_string_argument_is_parsed_by_the_schedule():
    assert parse("clip('warmup(10) >> cosine', hi=0.5)") == clip(warmup(10) >> cosine(), hi=0.5)


def test_inf_and_none_are_values():
    assert parse("clip(cosine, hi=inf)") == clip(cosine())
    assert parse("repeat(cosine(10), none)") == repeat(cosine(10))


def test_bare_identifier_argument_is_a_string(probe):
    assert probe("probe(triangular2, mode=exp-range)").value == "triangular2"
    assert probe("probe(mode=exp-range)").mode == "exp-range"


def test_bare_schedule_name_in_a_string_field_is_the_string():
    assert parse("plateau(mode=max)") == Plateau(mode="max")


def test_bare_schedule_name_in_a_schedule_field_is_the_schedule(probe):
    assert probe("probe(inner=cosine)").inner == cosine()
    assert parse("clip(cosine)") == clip(cosine())


def test_keywords_and_signed_numbers_are_values(probe):
    value = probe("probe([true, false, none, inf, -inf, -2, 0.5])").value
    assert value == (True, False, None, math.inf, -math.inf, -2, 0.5)


def test_quoted_strings_take_escapes(probe):
    assert probe(r"probe('it\'s', mode=" + '"a\\"b")').value == "it's"
    assert probe('probe(mode="a\\"b")').mode == 'a"b'


def test_lists_nest_and_become_tuples(probe):
    assert probe("probe([[0, 1.0], [5%, 0.5], []])").value == ((0, 1.0), ("5%", 0.5), ())


def test_integers_stay_integers_and_decimals_floats(probe):
    assert type(probe("probe(5)").value) is int
    assert type(probe("probe(5.0)").value) is float


# -- errors ---------------------------------------------------------------------------------
def test_error_shows_the_spec_with_a_caret_under_the_column():
    e = syntax_error("warmup(5%) >> cosin(to=0.01)")
    assert str(e) == (
        "unknown schedule 'cosin' at column 15 (did you mean 'cosine'?)\n"
        "  warmup(5%) >> cosin(to=0.01)\n"
        "                ^"
    )


def test_error_keeps_column_and_spec_and_is_a_value_error():
    e = syntax_error("warmup(5%) >> cosin")
    assert isinstance(e, ValueError)
    assert (e.column, e.spec) == (15, "warmup(5%) >> cosin")


def test_unknown_schedule_without_a_close_name_lists_the_known_ones():
    e = syntax_error("zzzz(10)")
    assert e.column == 1
    assert "unknown schedule 'zzzz' at column 1; known: " in str(e) and "cosine" in str(e)


def test_unknown_schedule_as_an_argument_points_at_it():
    e = syntax_error("clip(cosin, hi=0.5)")
    assert e.column == 6 and "unknown schedule 'cosin'" in str(e) and "'cosine'" in str(e)


def test_unknown_keyword_lists_what_the_schedule_takes():
    e = syntax_error("warmup(5%) >> cosine(too=0.1)")
    assert e.column == 22
    assert str(e).splitlines()[0] == (
        "unknown argument 'too' for cosine at column 22 (did you mean 'to'?);"
        " cosine takes: steps, to, start"
    )


def test_too_many_positional_arguments_points_at_the_first_extra():
    e = syntax_error("cosine(100, 0.1, 1.0, 7)")
    assert e.column == 23
    assert "too many positional arguments for cosine at column 23" in str(e)
    assert "it takes at most 3 (steps, to, start), got 4" in str(e)


def test_unclosed_parenthesis_points_at_it():
    e = syntax_error("warmup(10) >> cosine(90, to=0.1")
    assert e.column == 21
    assert str(e).startswith("unbalanced parentheses: '(' at column 21 is never closed;")
    assert "expected ')' but found the end of the spec" in str(e)


def test_unmatched_closing_parenthesis_points_at_it():
    e = syntax_error("warmup(5%)) >> cosine")
    assert e.column == 11
    assert str(e).startswith("unbalanced parentheses: ')' at column 11 has no matching '('")


def test_unclosed_bracket_points_at_it():
    e = syntax_error("seq(cosine(10), linear, boundaries=[10")
    assert e.column == 36
    assert str(e).startswith("unbalanced brackets: '[' at column 36 is never closed;")


def test_closing_parenthesis_inside_a_list_is_unbalanced():
    e = syntax_error("seq(cosine(10), linear, boundaries=[10)")
    assert e.column == 39
    assert str(e).splitlines()[0] == (
        "unbalanced parentheses: ')' at column 39 has no matching '('; expected ',' or ']'"
    )


def test_trailing_garbage_names_what_was_found_and_expected():
    e = syntax_error("cosine(10) linear")
    assert e.column == 12
    assert str(e).splitlines()[0] == (
        "unexpected name 'linear' at column 12; expected '>>', '*' or the end of the spec"
    )


@pytest.mark.parametrize("text", ["", "   ", "\n"])
def test_empty_spec_is_an_error_at_column_1(text):
    e = syntax_error(text)
    assert e.column == 1 and str(e).startswith("empty schedule spec at column 1; expected")


def test_constructor_error_points_at_the_argument_it_names():
    e = syntax_error("warmup(10) >> cosine(90, to=-0.1)")
    assert e.column == 29
    assert str(e).splitlines()[0] == (
        "invalid argument to cosine at column 29: cosine to must be >= 0, got -0.1"
    )


def test_rejected_bare_identifier_points_at_it():
    e = syntax_error("cyclical(10, mode=triangle)")
    assert e.column == 19
    assert "cyclical mode must be one of 'triangular', 'triangular2', 'exp_range'" in str(e)


def test_rejected_part_of_a_varargs_schedule_points_at_that_part():
    e = syntax_error("min(cosine(10), -0.5)")
    assert e.column == 17 and "got -0.5" in str(e)


def test_constructor_error_without_a_named_argument_points_at_the_call():
    e = syntax_error("warmup(5) >> seq(cosine(10), linear, boundaries=[10, 20])")
    assert e.column == 14
    assert "invalid seq at column 14: seq with 2 parts needs 1 boundaries, got 2" in str(e)


def test_negative_steps_give_the_constructors_error():
    e = syntax_error("cosine(-5)")
    assert e.column == 8 and "cosine steps must be >= 1, got -5" in str(e)


def test_fraction_above_100_percent_points_at_the_fraction():
    e = syntax_error("constant(0.5, 10) >> warmup(150%)")
    assert e.column == 29
    assert "warmup steps must be a fraction of at most 100%, got '150%'" in str(e)


def test_negative_scale_factor_points_at_the_factor():
    e = syntax_error("warmup(10) >> -0.5 * cosine")
    assert e.column == 15 and "invalid product at column 15: a factor must be >= 0" in str(e)


def test_fractional_steps_give_the_constructors_error():
    e = syntax_error("cosine(1e-3)")
    assert e.column == 8 and "cosine steps must be a whole number of steps" in str(e)


def test_positional_argument_after_keyword_is_an_error():
    e = syntax_error("cosine(to=0.1, 100)")
    assert e.column == 16 and "positional argument after a keyword argument" in str(e)


def test_argument_given_twice_is_an_error():
    e = syntax_error("cosine(100, steps=200)")
    assert e.column == 13 and "argument 'steps' of cosine given twice" in str(e)


def test_unterminated_string_points_at_its_quote():
    e = syntax_error("clip('cosine, hi=0.5)")
    assert e.column == 6 and "unterminated string at column 6" in str(e)


def test_unexpected_character_points_at_it():
    e = syntax_error("warmup(10) + cosine")
    assert e.column == 12 and str(e).startswith("unexpected character '+' at column 12")


def test_value_keyword_where_a_schedule_is_needed_is_an_error():
    e = syntax_error("true >> cosine")
    assert e.column == 1
    assert "unexpected name 'true' at column 1; expected a schedule, a number or '('" in str(e)


def test_caret_lines_up_in_a_multi_line_spec():
    e = syntax_error("warmup(10)\n>> cosin")
    assert e.column == 15
    spec_line, caret_line = str(e).splitlines()[1:]
    assert spec_line[caret_line.index("^")] == "c"


def test_parse_rejects_a_non_string():
    with pytest.raises(TypeError, match="text form"):
        parse(5)  # type: ignore[arg-type]


# -- round trips: repr(s) is the text form --------------------------------------------------
HAND_BUILT = [
    cosine(),
    cosine(100, to=0.1),
    warmup("5%") >> cosine(to=0.1),
    warmup(10, start=0.1) >> constant(1.0, "2ep") >> linear(to=0.01),
    0.5 * (warmup(10) >> cosine(90)),
    0.25 * cosine(10) * linear(10),
    constant(0.5) * cosine(10),
    seq(constant(), constant(0.1), boundaries=[100]),
    seq(warmup(10), cosine(), boundaries=["2.5%"]) >> linear(5),
    (warmup(10) >> cosine(90)) * linear(100, start=1.0, to=0.5),
    clip(warmup(10) >> cosine(90), lo=0.1, hi=0.9),
    Minimum((cosine(10), linear(20))),
    repeat(warmup(5) >> cosine(45), 3),
    stretch(warmup(5) >> cosine(45), "50%"),
    Plateau(factor=0.5, patience=3, mode="max", threshold_mode="abs"),
    (warmup("5%") >> cosine(to=0.1)).resolve(total_steps=1000),
    cosine(to=1e-5, start=1e3),
]

# trees that the operators would flatten or merge: repr falls back to the call form
NOT_OPERATOR_SHAPED = [
    Sequence((Sequence((cosine(10), linear(10))), warmup(5))),
    Sequence((cosine(10),)),
    Product((cosine(10),)),
    Product((Product((cosine(10), linear(10))), warmup(5))),
    Product((Scale(cosine(10), 0.5), linear(10))),
    Scale(Scale(cosine(10), 0.5), 0.5),
    Scale(Product((cosine(10),)), 2.0),
]

# one text per registered name at least (checked below), so that new entries are covered
TEXTS = [
    "warmup(5%) >> cosine(to=0.01)",
    "0.5 * (warmup(10) >> cosine(90))",
    "seq(constant, constant(0.1), boundaries=[100])",
    "product(cosine(10), linear(10)) >> scale(cosine(5), 0.5)",
    "max(cosine(10), 0.1) >> min(linear(10), 0.5)",
    "clip(cosine(10), lo=0.1) >> repeat(warmup(2), 2) >> stretch(linear(4), 8)",
    "plateau(0.5, 2, mode=max)",
    "polynomial(100, power=2.0) >> step(10, gamma=0.5) >> multistep([10, 20])",
    "exponential(0.9) >> inverse_sqrt(100) >> wsd(1000, warmup=10, cooldown=cosine)",
    "piecewise_constant([10, 20], [1.0, 0.5, 0.1]) >> piecewise_linear([[0, 0.0], [10, 1.0]])",
    "cosine_restarts(100, mult=2, decay=0.5, to=0.01)",
    "cyclical(10, 20, mode=triangular2) >> cyclical(5, low=0.2, mode=exp_range, gamma=0.99)",
    "one_cycle(1000, anneal=linear, three_phase=true)",
    "cycle_momentum(one_cycle(100, peak_at=0.25), low=0.8)",
]


@pytest.mark.parametrize("s", HAND_BUILT + NOT_OPERATOR_SHAPED, ids=repr)
def test_repr_parses_back_to_an_equal_schedule(s):
    assert parse(repr(s)) == s


def _parse_example(text):
    """``parse(text)``, skipping while the catalogue lacks a schedule the text names."""
    try:
        return parse(text)
    except ScheduleSyntaxError as e:
        if str(e).startswith("unknown schedule"):
            pytest.skip(f"not in the catalogue yet: {str(e).splitlines()[0]}")
        raise


@pytest.mark.parametrize("text", TEXTS)
def test_text_survives_parse_repr_parse(text):
    s = _parse_example(text)
    assert parse(repr(s)) == s


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_registered_schedule_round_trips(name):
    examples = [s for s in map(_parse_or_none, TEXTS) if s and name in _names(s)]
    try:
        examples.append(REGISTRY[name]())
    except (TypeError, ValueError):
        pass  # no defaults: a text example must use it
    assert examples, f"add a text example using {name!r} to TEXTS"
    for s in examples:
        assert parse(repr(s)) == s


def _parse_or_none(text):
    try:
        return parse(text)
    except ScheduleSyntaxError:
        return None


def _names(s):
    return {node.name for node in s.walk()}


# -- property: the text form round-trips any tree -------------------------------------------
lengths = st.one_of(
    st.integers(1, 10_000),
    st.integers(1, 100).map(lambda k: f"{k}%"),
    st.floats(0.5, 50).map(lambda k: f"{k:.3g}ep"),
)
levels = st.floats(0, 10, allow_nan=False, allow_infinity=False)
leaves = st.one_of(
    st.builds(cosine, st.none() | lengths, to=levels, start=levels),
    st.builds(warmup, lengths, start=levels, to=levels),
    st.builds(linear, st.none() | lengths, start=levels, to=levels),
    st.builds(constant, levels, st.none() | lengths),
)


def _trees(children):
    """Trees built both by the operators and straight from the classes (unflattened)."""
    two = st.tuples(children, children)
    some = st.lists(children, min_size=1, max_size=3).map(tuple)
    return st.one_of(
        two.map(lambda ab: ab[0] >> ab[1]),
        two.map(lambda ab: ab[0] * ab[1]),
        st.builds(lambda k, a: k * a, levels, children),
        st.builds(Scale, children, levels),
        st.builds(Sequence, some),
        st.builds(Sequence, two, st.tuples(st.integers(1, 100))),
        st.builds(Product, some),
        st.builds(Minimum, some),
        st.builds(clip, children, lo=st.floats(0, 1), hi=st.floats(1, 10)),
        st.builds(repeat, children, st.none() | st.integers(1, 5)),
        st.builds(stretch, children, st.none() | lengths),
    )


own_schedules = st.recursive(leaves, _trees, max_leaves=8)


@settings(max_examples=150, deadline=None)
@given(own_schedules)
def test_text_form_round_trips_generated_schedules(s):
    assert parse(repr(s)) == s
