"""The catalogue as a specification: each schedule's documented formula, its errors, its text."""

from __future__ import annotations

import dataclasses
import doctest
import inspect
import math

import pytest

from lrkit.schedules import (
    REGISTRY,
    catalogue,
    constant,
    cosine,
    cosine_restarts,
    cycle_momentum,
    cyclic,
    cyclical,
    exponential,
    from_dict,
    inverse_sqrt,
    linear,
    multistep,
    one_cycle,
    parse,
    piecewise,
    piecewise_constant,
    piecewise_linear,
    polynomial,
    step,
    stretch,
    warmup,
    wsd,
)

EXAMPLES = {
    "constant": [constant(), constant(0.5, 10)],
    "linear": [linear(100), linear(100, start=0.2, to=0.9)],
    "warmup": [warmup(50), warmup(50, start=0.1)],
    "cosine": [cosine(100), cosine(100, to=0.1, start=0.8)],
    "polynomial": [
        polynomial(100),
        polynomial(100, power=2.0, to=0.05),
        polynomial(80, power=0.5, start=0.5),
    ],
    "step": [step(30), step(7, gamma=0.5), step(10, gamma=2, steps=95)],
    "multistep": [multistep([10, 50, 60]), multistep([5], gamma=0.3)],
    "exponential": [exponential(0.99), exponential(1.01, steps=500), exponential(0.9, steps=20)],
    "inverse_sqrt": [inverse_sqrt(100), inverse_sqrt(1)],
    "wsd": [
        wsd(100, decay=20),
        wsd(100, warmup=10, decay=30, cooldown="cosine", to=0.1),
        wsd(100, warmup=5, decay=50, cooldown="1-sqrt"),
    ],
    "piecewise_constant": [piecewise_constant([10, 20], [1.0, 0.1, 0.01])],
    "piecewise_linear": [
        piecewise_linear([[0, 0.0], [10, 1.0], [100, 0.1]]),
        piecewise_linear([[20, 0.5], [40, 1.0]]),
    ],
    "cosine_restarts": [
        cosine_restarts(30),
        cosine_restarts(10, mult=2, decay=0.5, to=0.1),
        cosine_restarts(7, mult=3),
        cosine_restarts(1, mult=3, decay=0.9),  # math.log(243, 3) < 5: the cycle at step 121
    ],
    "cyclical": [
        cyclical(20),
        cyclical(20, 30, low=0.2, mode="triangular2"),
        cyclical(15, low=0.05, high=0.8, mode="exp_range", gamma=0.99),
    ],
    "one_cycle": [
        one_cycle(100),
        one_cycle(100, peak_at=0.25, anneal="linear"),
        one_cycle(100, three_phase=True),
        one_cycle(97, peak_at=0.4, div=10, final_div=100, anneal="linear", three_phase=True),
    ],
    "cycle_momentum": [
        one_cycle(100).momentum(),
        one_cycle(100, three_phase=True, anneal="linear").momentum(0.8, 0.99),
        cyclical(20, 10).momentum(),
    ],
}
CATALOGUE = sorted(
    name
    for name, cls in REGISTRY.items()
    if cls.__module__
    in ("lrkit.schedules.catalogue", "lrkit.schedules.piecewise", "lrkit.schedules.cyclic")
)
ALL = [s for name in sorted(EXAMPLES) for s in EXAMPLES[name]]
FINITE = [s for s in ALL if s.length is not None]


def documented_formula(s):
    """``formula:`` and its ``where:`` lines from the class docstring, as a function of t."""
    lines = [line.strip() for line in inspect.getdoc(type(s)).splitlines()]
    (i,) = [k for k, line in enumerate(lines) if line.startswith("formula:")]
    formula = lines[i].removeprefix("formula:").strip()
    wheres = []
    for line in lines[i + 1 :]:
        if not line.startswith("where:"):
            break
        wheres.append(line.removeprefix("where:").strip())
    names = {k: getattr(math, k) for k in dir(math) if not k.startswith("_")}
    names.update((f.name, getattr(s, f.name)) for f in dataclasses.fields(s) if f.init)
    wheres = [compile(w, "where", "exec") for w in wheres]
    formula = compile(formula, "formula", "eval")

    def value(t):
        scope = dict(names, t=t)
        for statement in wheres:
            exec(statement, scope)
        return eval(formula, scope)

    return value


def sample_steps(s):
    """Every whole step to past the end (three times 120 where there is no end), and between."""
    n = s.length if s.length is not None else 120
    return [*range(3 * n + 2), 0.5] + [k * n / 41 + 0.013 for k in range(90)]


DOCTESTED = {catalogue: 5, piecewise: 2, cyclic: 5}  # module: how many examples at least


@pytest.mark.parametrize("module", DOCTESTED, ids=lambda m: m.__name__)
def test_docstring_examples_run(module):
    result = doctest.testmod(module)
    assert result.attempted >= DOCTESTED[module] and result.failed == 0


def test_every_catalogue_schedule_has_examples():
    assert CATALOGUE and sorted(EXAMPLES) == CATALOGUE


@pytest.mark.parametrize("s", ALL, ids=repr)
def test_docstring_formula_is_what_the_schedule_computes(s):
    formula = documented_formula(s)
    for t in sample_steps(s):
        assert s(t) == pytest.approx(formula(t), rel=1e-9, abs=1e-12), f"t={t}"


@pytest.mark.parametrize("s", FINITE, ids=repr)
def test_schedule_holds_its_last_value_past_its_length(s):
    n = s.length
    assert s(n) == s(n + 1) == s(n + 0.5) == s(10 * n + 7)


@pytest.mark.parametrize(
    "s",
    [s for s in ALL if s.name not in ("step", "multistep", "piecewise_constant")],
    ids=repr,
)
def test_continuous_schedules_take_float_steps_between_neighbours(s):
    for t in (3, 17, 40):
        if s.name == "cosine_restarts" and s.cycle(t)[0] != s.cycle(t + 1)[0]:
            continue  # a restart between t and t + 1: no neighbours to lie between
        lo, hi = sorted((s(t), s(t + 1)))
        assert lo - 1e-12 <= s(t + 0.5) <= hi + 1e-12
        assert s(t + 1e-9) == pytest.approx(s(t), abs=1e-6)


# -- behaviours that name their schedule -----------------------------------------------------
def test_lines_end_exactly_at_their_end_values_never_below_zero():
    assert linear(55, start=1.2375367739109582)(55) == 0.0
    assert linear(100, to=0.1)(100) == 0.1 and warmup(3, start=0.1)(0) == 0.1
    assert piecewise_linear([[0, 1.7], [106, 2.2e-308]])(106) == 2.2e-308


def test_triangular2_far_into_the_run_is_the_low_value_not_an_overflow():
    assert cyclical(1, low=0.25, mode="triangular2")(5001) == 0.25


def test_step_multiplies_by_gamma_at_each_whole_period():
    s = step(10, gamma=0.5)
    assert [s(t) for t in (0, 9, 9.99, 10, 19, 20)] == [1.0, 1.0, 1.0, 0.5, 0.5, 0.25]


def test_multistep_multiplies_at_each_milestone():
    s = multistep([3, 5])
    assert [s(t) for t in range(7)] == pytest.approx([1, 1, 1, 0.1, 0.1, 0.01, 0.01])


IN_EPOCHS = [
    (step("2ep"), step(200)),
    (multistep(["1ep", "3ep"]), multistep([100, 300])),
    (inverse_sqrt("1ep"), inverse_sqrt(100)),
    (cosine_restarts("1ep", mult=2), cosine_restarts(100, mult=2)),
    (cyclical("0.5ep", "1ep"), cyclical(50, 100)),
    (wsd("10ep", warmup="1ep", decay="2ep"), wsd(1000, warmup=100, decay=200)),
    (one_cycle("5ep"), one_cycle(500)),
    (one_cycle("5ep").momentum(), one_cycle(500).momentum()),
    (piecewise_constant(["1ep"], [1, 0.1]), piecewise_constant([100], [1, 0.1])),
    (piecewise_linear([[0, 0], ["1.5ep", 1]]), piecewise_linear([[0, 0], [150, 1]])),
    (polynomial("2ep", power=2), polynomial(200, power=2)),
]


@pytest.mark.parametrize("given, steps", IN_EPOCHS, ids=[repr(g) for g, _ in IN_EPOCHS])
def test_lengths_in_epochs_resolve_to_steps(given, steps):
    assert given.resolve(steps_per_epoch=100) == steps


def test_multistep_milestones_as_fractions_resolve_against_the_run():
    assert multistep(["30%", "80%"]).resolve(total_steps=1000) == multistep([300, 800])


def test_exponential_with_gamma_above_one_grows_until_its_steps_then_holds():
    s = exponential(1.1, steps=50)
    assert s(10) == pytest.approx(1.1**10)
    assert s(50) == s(10**9) == pytest.approx(1.1**50)
    assert s.bounds() == (1.0, pytest.approx(1.1**50)) and s.length == 50


@pytest.mark.parametrize(
    "build, step_named",
    [
        (lambda: exponential(2), "at step 40"),
        (lambda: exponential(2, steps=2000), "at step 40"),
        (lambda: step(1, 2), "at step 40"),
        (lambda: step(10, gamma=2, steps=10**6), "at step 400"),
        (lambda: step("1ep", gamma=2), "after 40 factors of gamma"),
    ],
)
def test_growth_without_an_end_in_range_is_refused_naming_the_step(build, step_named):
    # fails on 21f979a: exponential(2)(1024) and step(1, 2)(10**6) raised OverflowError
    with pytest.raises(ValueError, match=f"grows past 1e\\+12 {step_named}.*needs steps=N"):
        build()


def test_growth_with_steps_in_a_fraction_is_checked_once_resolved():
    s = exponential(2, steps="50%")
    assert s.resolve(total_steps=60)(10**6) == 2.0**30
    with pytest.raises(ValueError, match="at step 40"):
        s.resolve(total_steps=1000)


def test_polynomial_power_one_is_the_straight_line():
    for t in (0, 13, 50, 100, 150):
        assert polynomial(100, to=0.1)(t) == pytest.approx(linear(100, to=0.1)(t))


def test_warmup_then_inverse_sqrt_is_the_noam_schedule():
    w = 400
    s = warmup(w) >> inverse_sqrt(w)
    for t in (1, 100, 399, 400, 401, 1000, 10_000):
        assert s(t) == pytest.approx(min(t / w, math.sqrt(w / t)), rel=1e-12)


def test_wsd_warms_up_holds_the_peak_then_cools_down_to_to():
    s = wsd(1000, warmup=100, decay=200, to=0.1)
    assert [s(0), s(50), s(100), s(500), s(800)] == [0.0, 0.5, 1.0, 1.0, 1.0]
    assert s(900) == pytest.approx(0.55)
    assert s(1000) == s(5000) == pytest.approx(0.1)


def test_wsd_default_decay_is_the_last_fifth_of_the_run():
    assert wsd().resolve(total_steps=1000) == wsd(1000, decay=200)


@pytest.mark.parametrize(
    "cooldown, halfway", [("linear", 0.5), ("cosine", 0.5), ("1-sqrt", 0.2929)]
)
def test_wsd_cooldown_shapes(cooldown, halfway):
    s = wsd(100, decay=50, cooldown=cooldown)
    assert s(75) == pytest.approx(halfway, abs=1e-4)


def test_piecewise_constant_switches_value_at_each_boundary():
    s = piecewise_constant([10, 20], [1.0, 0.1, 0.01])
    assert [s(9), s(10), s(19.5), s(20), s(10**6)] == [1.0, 0.1, 0.1, 0.01, 0.01]


def test_piecewise_linear_holds_the_first_value_before_its_first_point():
    s = piecewise_linear([[20, 0.5], [40, 1.0]])
    assert s(0) == s(20) == 0.5 and s(30) == 0.75


def test_piecewise_linear_steps_as_fractions_resolve_against_the_run():
    s = piecewise_linear([[0, 0], ["10%", 1], ["100%", 0]]).resolve(total_steps=1000)
    assert s.points == ((0, 0.0), (100, 1.0), (1000, 0.0))
    assert s(50) == 0.5 and s.length == 1000


def test_piecewise_linear_points_from_lists_equal_points_from_tuples():
    s = piecewise_linear([[0, 0.0], ["50%", 1.0]])
    assert s == piecewise_linear(((0, 0.0), ("50%", 1.0)))
    assert s.to_dict() == {"type": "piecewise_linear", "points": [[0, 0.0], ["50%", 1.0]]}
    assert from_dict(s.to_dict()) == s


def test_cosine_restarts_cycles_grow_by_mult():
    s = cosine_restarts(10, mult=2)
    assert [s.cycle(t)[1:] for t in (0, 9, 10, 29, 30, 69, 70)] == [
        (0, 10), (0, 10), (10, 20), (10, 20), (30, 40), (30, 40), (70, 80)
    ]  # fmt: skip
    assert s(10) == s(30) == s(70) == 1.0


def test_cosine_restarts_first_steps_of_late_cycles_are_found_exactly():
    s = cosine_restarts(1, mult=2)
    for i in range(1, 50):
        first = 2**i - 1
        assert s.cycle(first)[:2] == (i, first) and s.cycle(first - 1)[0] == i - 1


def test_cosine_restarts_decay_shrinks_the_height_above_the_floor():
    s = cosine_restarts(10, decay=0.5, to=0.2)
    assert [s(0), s(10), s(20)] == pytest.approx([1.0, 0.6, 0.4])


def test_cyclical_down_defaults_to_up():
    assert [cyclical(10)(t) for t in range(40)] == [cyclical(10, 10)(t) for t in range(40)]
    assert cyclical(10, low=0.2)(10) == 1.0 and cyclical(10, low=0.2)(20) == 0.2


def test_cyclical_triangular2_halves_the_height_every_cycle():
    s = cyclical(10, low=0.0, mode="triangular2")
    assert [s(10), s(30), s(50)] == [1.0, 0.5, 0.25]


def test_one_cycle_rises_to_one_at_peak_at_then_falls_to_its_last_value():
    s = one_cycle(1000, div=25, final_div=1e4)
    assert s(0) == pytest.approx(1 / 25)
    assert s(299) == 1.0 and max(s(t) for t in range(1000)) == 1.0
    assert s(999) == s(1000) == pytest.approx(1 / 25 / 1e4)


def test_one_cycle_three_phase_returns_to_its_first_value_before_the_end():
    s = one_cycle(1000, three_phase=True)
    assert s(598) == pytest.approx(1 / 25)
    assert s(999) == pytest.approx(1 / 25 / 1e4)


def test_one_cycle_momentum_falls_while_the_lr_rises():
    s = one_cycle(1000)
    m = s.momentum(low=0.85, high=0.95)
    assert [m(0), m(299), m(999)] == pytest.approx([0.95, 0.85, 0.95])
    lrs = [s(t) for t in range(0, 1000, 7)]
    ms = [m(t) for t in range(0, 1000, 7)]
    assert all((a < b) == (c > d) for a, b, c, d in zip(lrs, lrs[1:], ms, ms[1:]) if a != b)


def test_momentum_is_a_registered_schedule_with_a_text_form():
    m = one_cycle(1000, anneal="linear").momentum(0.8, 0.9)
    assert m == cycle_momentum(one_cycle(1000, anneal="linear"), 0.8, 0.9)
    assert parse(repr(m)) == m and from_dict(m.to_dict()) == m
    assert m.length == 1000 and m.bounds() == (0.8, 0.9)


def test_stretch_of_a_catalogue_schedule_reads_it_at_float_steps():
    s = stretch(one_cycle(100), 1000)
    assert s(5) == pytest.approx(one_cycle(100)(0.5))


# -- errors name the bad value and what is accepted --------------------------------------------
ERRORS = [
    (lambda: linear(0), r"linear steps must be >= 1, got 0"),
    (lambda: cosine(-5), r"cosine steps must be >= 1, got -5"),
    (lambda: warmup("150%"), r"warmup steps must be a fraction of at most 100%, got '150%'"),
    (lambda: polynomial(10, power=0), r"polynomial power must be > 0, got 0"),
    (lambda: linear(10, to=-0.1), r"linear to must be >= 0, got -0.1"),
    (lambda: step(0), r"step every must be >= 1, got 0"),
    (lambda: step(None), r"step every must be a whole number of steps >= 1, .*; got None"),
    (lambda: cyclical(None), r"cyclical up must be a whole number of steps >= 1, .*; got None"),
    (lambda: step(10, gamma=0), r"step gamma must be a finite number > 0, got 0"),
    (lambda: exponential(math.nan), r"exponential gamma must be a finite number > 0, got nan"),
    (lambda: multistep([]), r"multistep milestones must be a non-empty list of steps, got \[\]"),
    (lambda: multistep([50, 30]), r"multistep milestones must be increasing steps, got \[50, 30\]"),
    (lambda: multistep([30, 30]), r"must be increasing steps, got \[30, 30\]"),
    (
        lambda: multistep(["50%", "20%"]).resolve(total_steps=100),
        r"multistep milestones must be increasing steps, got \[50, 20\]",
    ),
    (lambda: inverse_sqrt(0), r"inverse_sqrt timescale must be >= 1, got 0"),
    (
        lambda: wsd(100, warmup=50, decay=60),
        r"wsd warmup \(50\) \+ decay \(60\) must fit in its 100",
    ),
    (lambda: wsd(100, warmup=-1), r"wsd warmup must be >= 0, got -1"),
    (lambda: wsd(100, cooldown="exp"), r"wsd cooldown must be one of 'linear', 'cosine', '1-sqrt'"),
    (
        lambda: piecewise_constant([10, 20], [1.0, 0.1]),
        r"needs one value more than boundaries \(3\), got values=\[1.0, 0.1\]",
    ),
    (lambda: piecewise_constant([20, 10], [1, 2, 3]), r"boundaries must be increasing steps"),
    (lambda: piecewise_linear([[0, 1.0]]), r"at least two \[step, value\] pairs"),
    (lambda: piecewise_linear([[10, 1.0], [5, 0.0]]), r"points' steps must be increasing"),
    (lambda: piecewise_linear([[0, -1.0], [5, 0.0]]), r"piecewise_linear value must be >= 0"),
    (lambda: cosine_restarts(10, mult=1.5), r"cosine_restarts mult must be a whole number >= 1"),
    (lambda: cosine_restarts(10, mult=0), r"mult must be a whole number >= 1, got 0"),
    (lambda: cosine_restarts(10, decay=1.5), r"cosine_restarts decay must be 0 < x <= 1, got 1.5"),
    (
        lambda: cyclical(10, mode="triangle"),
        r"cyclical mode must be one of 'triangular', 'triangular2', 'exp_range'; got 'triangle'",
    ),
    (lambda: cyclical(10, low=1.0, high=0.5), r"cyclical low \(1.0\) must be <= high \(0.5\)"),
    (lambda: cyclical(10, 0), r"cyclical down must be >= 1, got 0"),
    (lambda: cyclical(10, gamma=1.5), r"cyclical gamma must be 0 < x <= 1, got 1.5"),
    (lambda: one_cycle(100, anneal="cosine"), r"one_cycle anneal must be one of 'cos', 'linear'"),
    (lambda: one_cycle(100, peak_at=1.5), r"peak_at must be a fraction of the steps from 0 to 1"),
    (
        lambda: one_cycle(100, peak_at=0.6, three_phase=True),
        r"from 0 to 0.5 with three_phase, got 0.6",
    ),
    (lambda: one_cycle(100, div=0), r"one_cycle div must be > 0, got 0"),
    (lambda: one_cycle(100).momentum(0.99, 0.9), r"needs 0 <= low <= high < 1 .*, got low=0.99"),
    (lambda: cyclical(10).momentum(0.9, 1.0), r"cycle_momentum needs 0 <= low <= high < 1"),
    (lambda: cycle_momentum(cosine(100)), r"needs a one_cycle or cyclical schedule, got cosine"),
    (
        lambda: (constant(0.5, 10) >> warmup() >> exponential(0.9)).resolve(total_steps=100),
        r"seq part 2 \(warmup\) has no length, so the parts after it cannot start",
    ),
    (lambda: step("2ep")(5), r"step\(2ep\) has every='2ep', which is relative to the run"),
    (lambda: one_cycle()(5), r"one_cycle has no steps: give it steps=N"),
]


@pytest.mark.parametrize("make, message", ERRORS, ids=[m for _, m in ERRORS])
def test_bad_arguments_raise_a_value_error_naming_them(make, message):
    with pytest.raises(ValueError, match=message):
        make()


# -- text form -------------------------------------------------------------------------------
TEXTS = [
    (step(30), "step(30)"),
    (step(30, gamma=0.5), "step(30, gamma=0.5)"),
    (multistep([30, 80], gamma=0.5), "multistep([30, 80], gamma=0.5)"),
    (exponential(0.999), "exponential(0.999)"),
    (polynomial(100, power=2), "polynomial(100, power=2.0)"),
    (inverse_sqrt("5%"), "inverse_sqrt(5%)"),
    (wsd(), "wsd"),
    (
        wsd("100%", warmup="2ep", decay="10%", cooldown="1-sqrt"),
        "wsd(100%, warmup=2ep, decay=10%, cooldown='1-sqrt')",
    ),
    (
        piecewise_constant([10, 20], [1, 0.1, 0.01]),
        "piecewise_constant([10, 20], [1.0, 0.1, 0.01])",
    ),
    (piecewise_linear([[0, 0], ["10%", 1]]), "piecewise_linear([[0, 0.0], [10%, 1.0]])"),
    (cosine_restarts(50, mult=2, decay=0.5), "cosine_restarts(50, mult=2, decay=0.5)"),
    (cyclical(2000, 1000, low=0.2), "cyclical(2000, 1000, low=0.2)"),
    (cyclical(2000, mode="triangular2"), "cyclical(2000, mode=triangular2)"),
    (
        one_cycle(1000, anneal="linear", three_phase=True),
        "one_cycle(1000, anneal='linear', three_phase=true)",
    ),
    (one_cycle(1000).momentum(), "cycle_momentum(one_cycle(1000))"),
    (warmup(100) >> inverse_sqrt(100), "warmup(100) >> inverse_sqrt(100)"),
]


@pytest.mark.parametrize("s, text", TEXTS, ids=[t for _, t in TEXTS])
def test_repr_is_the_text_form_with_obvious_arguments_positional(s, text):
    assert repr(s) == text
    assert parse(text) == s


def test_numbers_are_stored_as_floats_so_equal_schedules_print_alike():
    assert (
        linear(10, start=1, to=0) == linear(10) and repr(linear(10, start=1, to=0)) == "linear(10)"
    )
    assert type(step(10, gamma=1).gamma) is float


# -- values stay in range: refused when built, never an arithmetic error when called ---------
@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: cyclical(1e308), r"cyclical up must be at most 1,000,000,000,000 steps"),
        (lambda: cosine(1, 1e308), r"cosine to must be at most 1e\+12, got 1e\+308"),
        (lambda: cosine_restarts(1, to=1e308), r"cosine_restarts to must be at most 1e\+12"),
        (lambda: constant(10**400), r"constant value must be a finite number, got 1000"),
        (lambda: linear(10**400), r"linear steps must be at most 1,000,000,000,000 steps"),
        (lambda: one_cycle(100, div=1e-300), r"one_cycle\(100, div=1e-300\) can reach 1e\+300"),
        (lambda: multistep([1, 2], gamma=1e10), r"can reach 1e\+20, outside the values"),
    ],
)
def test_values_that_would_leave_float_range_are_refused_when_built(build, message):
    # fails on 21f979a: cyclical(1e308)(0) ZeroDivisionError, cosine(1, 1e308)(0) -inf,
    # cosine_restarts(1, to=1e308) * 0 nan, constant(10**400) OverflowError
    with pytest.raises(ValueError, match=message):
        build()


def test_a_length_in_epochs_past_the_longest_is_refused_when_resolved():
    with pytest.raises(ValueError, match="more than the most a length may be"):
        cosine("100000000000ep").resolve(steps_per_epoch=1000)


@pytest.mark.parametrize("kind", sorted(EXAMPLES))
def test_values_are_finite_far_past_any_run(kind):
    for s in EXAMPLES[kind]:
        for t in (10**6, 10**9, 10**12, 10**15, 2**53, 1e18):
            v = s(t)
            assert math.isfinite(v) and v >= 0, f"{s!r} at step {t}: {v}"


@pytest.mark.parametrize(
    "spec", ["exponential(2)", "step(1, 2)", "cyclical(1e308)", "cosine(1, 1e308)"]
)
def test_schedule_show_refuses_an_out_of_range_schedule_in_one_line(capsys, spec):
    # fails on 21f979a: `lrkit schedule show "exponential(2)" --steps 2000` ended in a traceback
    from lrkit.cli import main

    status = main(["schedule", "show", spec, "--steps", "2000"])
    out, err = capsys.readouterr()
    assert status == 2 and err.startswith("lrkit: error: schedule") and "Traceback" not in err


def test_schedule_show_of_a_growth_with_steps_holds_past_them(capsys):
    from lrkit.cli import main

    assert main(["schedule", "show", "exponential(2, steps=30)", "--steps", "2000"]) == 0
    assert "max 1.074e+09" in capsys.readouterr().out.replace("\n", "")
