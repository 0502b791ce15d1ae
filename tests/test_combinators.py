"""Combinators: sequence boundaries, rest-of-run filling, product/scale algebra, errors."""

import math

import pytest

from lrkit.schedules import (
    Maximum,
    Minimum,
    Product,
    Scale,
    Sequence,
    as_schedule,
    clip,
    constant,
    cosine,
    exponential,
    from_dict,
    inverse_sqrt,
    linear,
    maximum,
    minimum,
    plateau,
    repeat,
    seq,
    step,
    stretch,
    warmup,
)


def test_sequence_switches_parts_at_their_lengths():
    s = warmup(10) >> constant(0.5, 5) >> linear(10, start=0.5, to=0.0)
    assert s(0) == 0.0 and s(5) == 0.5 and s(9) == pytest.approx(0.9)
    assert s(10) == 0.5 and s(14) == 0.5
    assert s(15) == 0.5 and s(20) == pytest.approx(0.25) and s(25) == 0.0
    assert s.length == 25


def test_sequence_part_sees_its_local_step():
    s = constant(1.0, 100) >> cosine(100)
    assert s(100) == cosine(100)(0)
    assert s(150) == pytest.approx(cosine(100)(50))


def test_sequence_holds_last_value_past_the_end():
    s = warmup(10) >> cosine(10, to=0.1)
    assert s(10_000) == pytest.approx(0.1)


def test_fraction_lengths_resolve_against_the_run():
    s = (warmup("5%") >> cosine(to=0.1)).resolve(total_steps=1000)
    assert s == warmup(50) >> cosine(950, to=0.1)


def test_epoch_lengths_resolve_with_steps_per_epoch():
    s = (warmup("2ep") >> cosine).resolve(total_steps=100, steps_per_epoch=10)
    assert s.parts[0].steps == 20 and s.parts[1].steps == 80


def test_one_part_without_length_takes_what_the_others_leave():
    s = (warmup(10) >> cosine >> constant(0.01, "10%")).resolve(total_steps=200)
    assert [p.length for p in s.parts] == [10, 170, 20]
    assert s.length == 200


def test_two_parts_without_length_are_an_error_naming_the_part():
    with pytest.raises(ValueError, match="has no length"):
        (cosine() >> cosine >> constant(0.1)).resolve(total_steps=100)


def test_fraction_without_total_steps_is_an_error():
    with pytest.raises(ValueError, match="total steps are unknown"):
        warmup("5%").resolve()


def test_epochs_without_steps_per_epoch_is_an_error():
    with pytest.raises(ValueError, match="steps per epoch are unknown"):
        warmup("1ep").resolve(total_steps=10)


def test_fixed_parts_longer_than_the_run_is_an_error():
    with pytest.raises(ValueError, match="more than"):
        (warmup(80) >> cosine >> constant(0.1, 50)).resolve(total_steps=100)


def test_calling_an_unresolved_schedule_says_what_to_do():
    with pytest.raises(ValueError, match="resolve"):
        (warmup("5%") >> cosine)(3)


def test_explicit_boundaries_accept_steps_and_fractions():
    s = seq(constant(1.0), constant(0.1), constant(0.01), boundaries=[10, "50%"]).resolve(100)
    assert [s(9), s(10), s(49), s(50), s(99)] == [1.0, 0.1, 0.1, 0.01, 0.01]


@pytest.mark.parametrize("bounds", [[20, 10], [10, 10]])
def test_boundaries_out_of_order_are_an_error(bounds):
    with pytest.raises(ValueError, match="increasing"):
        seq(constant(1.0), constant(0.5), constant(0.1), boundaries=bounds)


def test_boundary_at_step_zero_is_an_error():
    with pytest.raises(ValueError, match="seq boundary must be >= 1, got 0"):
        seq(constant(1.0), constant(0.5), boundaries=[0])


def test_boundaries_count_must_match_parts():
    with pytest.raises(ValueError, match="needs 1 boundaries, got 2"):
        seq(constant(1.0), constant(0.5), boundaries=[10, 20])


def test_boundary_past_the_end_of_the_run_is_an_error():
    with pytest.raises(ValueError, match="past the end"):
        seq(constant(1.0), constant(0.5), boundaries=[200]).resolve(total_steps=100)


def test_infinite_middle_part_keeps_an_explicit_boundary_after_resolve():
    from lrkit.schedules import constant as c

    s = (warmup(10) >> c(0.5) >> c(0.1, 10)).resolve(total_steps=100)
    assert s(10) == 0.5 and s(89) == 0.5 and s(90) == 0.1
    assert from_dict(s.to_dict()) == s


def test_product_multiplies_values_and_flattens():
    s = warmup(10) * cosine(100) * constant(0.5)
    assert isinstance(s, Product) and len(s.parts) == 3
    assert s(5) == pytest.approx(0.5 * cosine(100)(5) * 0.5)


def test_number_times_schedule_is_a_scale():
    s = 0.5 * cosine(10)
    assert isinstance(s, Scale) and s(0) == 0.5
    assert 2 * (0.5 * cosine(10)) == cosine(10) * 1.0


def test_product_binds_tighter_than_sequence_in_repr():
    s = (warmup(10) >> cosine(10)) * constant(0.5)
    assert repr(s) == "(warmup(10) >> cosine(10)) * constant(0.5)"
    assert (
        repr(warmup(10) >> cosine(10) * constant(0.5)) == "warmup(10) >> cosine(10) * constant(0.5)"
    )


def test_clip_min_max():
    c = cosine(100)
    assert clip(c, lo=0.2, hi=0.8)(0) == 0.8 and clip(c, lo=0.2)(100) == 0.2
    assert minimum(c, constant(0.5))(0) == 0.5
    assert maximum(c, constant(0.5))(100) == 0.5


def test_clip_rejects_hi_below_lo():
    with pytest.raises(ValueError, match="clip hi"):
        clip(cosine(10), lo=0.5, hi=0.1)


def test_repeat_plays_the_schedule_again_then_holds():
    r = repeat(linear(10), 2)
    assert r(0) == 1.0 and r(10) == 1.0 and r(15) == 0.5 and r(25) == 0.0
    assert r.length == 20
    assert repeat(linear(10))(1005) == 0.5


def test_repeat_rejects_zero_times():
    with pytest.raises(ValueError, match="repeat times"):
        repeat(linear(10), 0)


def test_stretch_rescales_time():
    s = stretch(linear(10), 100)
    assert s(50) == pytest.approx(0.5) and s(100) == 0.0 and s.length == 100


def test_stretch_to_the_rest_of_the_run():
    s = stretch(warmup(10) >> cosine(90)).resolve(total_steps=1000)
    assert s(100) == pytest.approx(1.0) and s(1000) == pytest.approx(0.0)


def test_walk_visits_every_node():
    s = warmup(10) >> cosine(10) * constant(0.5)
    names = [n.name for n in s.walk()]
    assert names == ["seq", "warmup", "product", "cosine", "constant"]


def test_to_dict_round_trips_nested_schedules():
    s = (warmup("5%") >> cosine(to=0.1)) * constant(0.5) >> constant(0.01, 10)
    assert from_dict(s.to_dict()) == s


def test_from_dict_names_an_unknown_type_and_argument():
    with pytest.raises(ValueError, match="unknown schedule 'cosin'"):
        from_dict({"type": "cosin"})
    with pytest.raises(ValueError, match="cosine has no argument 'floor'"):
        from_dict({"type": "cosine", "floor": 0.1})


def test_sequence_is_hashable_and_equal_by_value():
    a = warmup(10) >> cosine(10)
    b = warmup(10) >> cosine(10)
    assert a == b and hash(a) == hash(b) and isinstance(a, Sequence)
    assert math.isclose(a(15), b(15))


# -- a finite part holds its last value, so beside an endless one the whole is endless ---------
@pytest.mark.parametrize("combine", [Product, Minimum, Maximum], ids=["product", "min", "max"])
def test_a_finite_and_an_endless_schedule_side_by_side_are_endless(combine):
    # fails on 21f979a: the length was the finite part's, 4, and the driver froze there
    s = combine((linear(4, start=0.4, to=0.9), exponential(0.9)))
    assert s.length is None and not s.ends()


def test_past_the_finite_part_the_product_follows_the_endless_one():
    s = linear(4, start=0.4, to=0.9) * exponential(0.9)
    assert s(6) == pytest.approx(0.9 * 0.9**6) and s(60) == pytest.approx(0.9 * 0.9**60)


@pytest.mark.parametrize(
    "static", [constant(0.5), plateau(patience=2)], ids=["constant", "plateau"]
)
def test_a_static_part_leaves_the_length_of_the_finite_part(static):
    s = cosine(100) * static
    assert s.length == 100
    assert (s >> constant(0.1))(150) == 0.1  # so it can still lead a sequence


def test_a_part_that_takes_the_rest_gets_its_length_beside_a_static_part():
    assert (cosine() * plateau()).resolve(total_steps=80).length == 80


@pytest.mark.parametrize("build", [repeat, stretch], ids=["repeat", "stretch"])
@pytest.mark.parametrize(
    "endless", [constant(0.5), exponential(0.9), inverse_sqrt(10), cosine(10) * exponential(0.9)]
)
def test_repeat_and_stretch_refuse_a_schedule_that_never_ends(build, endless):
    # fails on 21f979a: built, then failed only when called
    with pytest.raises(ValueError, match=f"{build.__name__} needs a schedule that ends"):
        build(endless)


def test_repeat_and_stretch_take_a_schedule_that_will_end_once_resolved():
    assert repeat(cosine(), 2).resolve(total_steps=100).length == 100
    assert stretch(cosine()).resolve(total_steps=100).length == 100


def test_the_algebra_takes_schedules_and_numbers_not_text():
    with pytest.raises(ValueError, match="got the text 'cosine'.*as_schedule"):
        warmup(10) >> "cosine"
    assert warmup(10) >> as_schedule("cosine") == warmup(10) >> cosine()


def test_a_schedule_class_without_defaults_names_what_it_needs():
    # fails on 21f979a: TypeError: Step.__init__() missing 1 required positional argument
    with pytest.raises(ValueError, match=r"step needs every: write step\(every=...\)"):
        seq(warmup(10), step)


def test_no_module_of_the_schedules_imports_one_above_it():
    """Imports point one way: units < base < catalogue... < algebra < text < config < driver."""
    import ast
    from pathlib import Path

    import lrkit.schedules as package

    order = [
        "units", "base", "fields", "catalogue", "cyclic", "piecewise", "plateau", "combinators",
        "shaping", "tokens", "parse", "config", "groups", "lrfree", "driver", "scaling", "__init__",
    ]  # fmt: skip
    folder = Path(package.__file__).parent
    assert sorted(p.stem for p in folder.glob("*.py")) == sorted(order)
    for name in order:
        tree = ast.parse((folder / f"{name}.py").read_text())
        for node in ast.walk(tree):  # function-level imports count too
            if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
                used = node.module.split(".")[0]
                assert order.index(used) < order.index(name), f"{name} imports {used}"
    algebra = (
        "base",
        "fields",
        "catalogue",
        "cyclic",
        "piecewise",
        "plateau",
        "combinators",
        "shaping",
    )
    for name in algebra:
        text = (folder / f"{name}.py").read_text()
        assert "parse" not in {
            n.module for n in ast.walk(ast.parse(text)) if isinstance(n, ast.ImportFrom)
        }


@pytest.mark.parametrize("build", [repeat, stretch], ids=["repeat", "stretch"])
def test_an_unresolved_repeat_or_stretch_says_to_resolve_it_in_plain_words(build):
    # on 21f979a: "... has no length (its schedule needs steps): give it length (its schedule
    # needs steps)=N ..."
    with pytest.raises(
        ValueError,
        match=r"cannot be evaluated yet: the length of its schedule is"
        r" the rest of the run; call resolve\(total_steps=",
    ):
        build(cosine())(3)


def test_a_momentum_cycle_that_takes_the_rest_of_the_run_can_be_repeated():
    from lrkit.schedules import one_cycle

    s = repeat(one_cycle().momentum(), 2).resolve(total_steps=100)
    assert s.length == 100 and s(0) == s(50) == 0.95


def test_repeat_refuses_times_that_make_it_longer_than_any_run():
    from lrkit.schedules import cosine, repeat

    with pytest.raises(ValueError, match="longer than 1000000000000 steps"):
        repeat(cosine(10), 10**12)
    assert repeat(cosine(10), 10**6).length == 10**7


def test_a_positive_fraction_of_a_short_run_is_at_least_one_step():
    from lrkit.schedules import cosine, warmup

    # 5% of 9 steps rounds to 0, and warmup(0) is refused: `lrkit train --epochs 1` failed
    assert (warmup("5%") >> cosine()).resolve(total_steps=9) == warmup(1) >> cosine(8)
    assert (warmup("5%") >> cosine()).resolve(total_steps=100) == warmup(5) >> cosine(95)
