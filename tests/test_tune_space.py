"""The search space of lrkit.tune: its text form with ranges, sampling, grids, errors."""

from __future__ import annotations

import json
import math

import optuna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from optuna.trial import FixedTrial

from lrkit.errors import UserError
from lrkit.schedules import ScheduleSyntaxError, parse
from lrkit.tune.config import Config
from lrkit.tune.space import (
    MAX_GRID,
    Choice,
    Range,
    Space,
    as_space,
    default_space,
    parse_space,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)

EXAMPLE = "warmup({0..10%}) >> cosine(to={1e-3..1e-1 log})"


def sample(space: Space, n: int = 20, seed: int = 0) -> list[tuple[dict, Config]]:
    """``n`` trials of a random search: (params, config) of each."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    out = []
    for _ in range(n):
        trial = study.ask()
        config = space.suggest(trial)
        study.tell(trial, 0.0)
        out.append((trial.params, config))
    return out


def caret_column(error: ScheduleSyntaxError) -> int:
    """The 1-based column the message's caret stands under."""
    return error.args[0].splitlines()[2].index("^") - 1


# -- ranges in the text form ------------------------------------------------------------
def test_the_issue_example_samples_schedules_inside_its_ranges():
    space = parse_space(EXAMPLE).with_lr(1e-3, 1.0)
    for params, config in sample(space):
        assert 0 <= params["cosine.warmup.steps"] <= 0.1
        assert 1e-3 <= params["cosine.to"] <= 1e-1
        assert parse(config.schedule).parts[-1].to == pytest.approx(params["cosine.to"], rel=1e-3)


def test_a_log_range_is_sampled_on_a_log_scale():
    trial = optuna.create_study().ask()
    parse_space("cosine(to={1e-3..1e-1 log})").with_lr(0.1, 0.1).suggest(trial)
    assert trial.distributions["cosine.to"].log


def test_an_int_range_samples_whole_numbers():
    space = parse_space("warmup({1..100 int}) >> cosine").with_lr(0.1, 0.1)
    values = {params["cosine.warmup.steps"] for params, _ in sample(space)}
    assert all(isinstance(v, int) and 1 <= v <= 100 for v in values)


def test_a_percent_range_is_a_fraction_of_the_run_written_back_in_percent():
    config = (
        parse_space("warmup({0..10%}) >> cosine")
        .with_lr(0.1, 0.1)
        .config({"cosine.warmup.steps": 0.05})
    )
    assert config.schedule == "warmup(5%) >> cosine"


def test_an_epochs_range_is_written_in_epochs():
    space = parse_space("cosine_restarts({1..4ep})").with_lr(0.1, 0.1)
    assert space.config({"cosine_restarts.period": 2.5}).schedule == "cosine_restarts(2.5ep)"


def test_a_choice_of_bare_names_is_categorical():
    space = parse_space("cyclical(10, mode={triangular, triangular2})").with_lr(0.1, 0.1)
    seen = {config.schedule for _, config in sample(space)}
    assert seen == {"cyclical(10, mode=triangular)", "cyclical(10, mode=triangular2)"}


def test_a_choice_of_percentages_has_fractions_as_params():
    trial = optuna.create_study().ask()
    parse_space("warmup({2%, 5%}) >> cosine").with_lr(0.1, 0.1).suggest(trial)
    assert trial.distributions["cosine.warmup.steps"].choices == (0.02, 0.05)


def test_a_range_of_one_value_is_fixed_and_no_param():
    trial = optuna.create_study().ask()
    config = parse_space("cosine(to={0.1})").with_lr(0.1, 0.1).suggest(trial)
    assert trial.params == {} and config.schedule == "cosine(to=0.1)"


def test_a_zero_length_leaves_its_sequence_part_out():
    config = (
        parse_space(EXAMPLE)
        .with_lr(0.1, 0.1)
        .config({"cosine.warmup.steps": 0.0, "cosine.to": 0.01})
    )
    assert config.schedule == "cosine(to=0.01)"


def test_whole_steps_that_a_long_run_would_hold_are_not_refused():
    space = parse_space("warmup({100..20000 int}) >> cosine(90%)")
    assert space.family_names() == ["cosine"]


def test_sampled_values_are_written_compactly():
    config = (
        parse_space("cosine(to={0..0.1})").with_lr(0.1, 0.1).config({"cosine.to": 0.012345678901})
    )
    assert config.schedule == "cosine(to=0.01235)"


@settings(max_examples=40, deadline=None)
@given(
    lo=st.floats(0, 1, allow_nan=False),
    width=st.floats(0, 1, allow_nan=False),
    seed=st.integers(0, 2**16),
    log=st.booleans(),
)
def test_every_sampled_schedule_parses_and_lies_in_its_range(lo, width, seed, log):
    lo = max(lo, 1e-6) if log else lo
    hi = lo + width
    space = parse_space(f"cosine(to={{{lo!r}..{hi!r}{' log' if log else ''}}})").with_lr(1, 1)
    for params, config in sample(space, n=3, seed=seed):
        assert lo <= parse(config.schedule).to <= hi
        assert space.config(params) == config


def _range(draw, low, high, integer=False, unit="", least_high=None):
    lo = draw(st.integers(low, high) if integer else st.floats(low, high, allow_nan=False))
    if least_high is not None and 0 < lo < least_high / 2:  # a warmup of 1e-300% has no step
        lo = 0.0
    floor = lo if least_high is None else max(lo, least_high)
    hi = draw(st.integers(floor, high) if integer else st.floats(floor, high, allow_nan=False))
    log = draw(st.booleans()) and lo > 0
    return Range(lo, hi, log=log, integer=integer, unit=unit).text()


@st.composite
def spaces(draw):
    """Spaces of a few families from a pool, with random ranges."""
    pool = [
        lambda: f"cosine(to={_range(draw, 0, 1)})",
        # a warmup range that ends below one step of any run is refused (test below): not here
        lambda: f"warmup({_range(draw, 0, 20, unit='%', least_high=1)}) >> cosine",
        lambda: f"one_cycle(peak_at={_range(draw, 0, 1)})",
        lambda: f"cyclical({_range(draw, 1, 100, integer=True)}, mode={{triangular, exp_range}})",
        lambda: f"cosine_restarts({_range(draw, 1, 3, unit='ep')})",
        lambda: "constant",
    ]
    picks = draw(st.lists(st.sampled_from(pool), min_size=1, max_size=4))
    return parse_space(" | ".join(make() for make in picks))


@settings(max_examples=40, deadline=None)
@given(space=spaces(), seed=st.integers(0, 2**16))
def test_any_space_round_trips_and_samples_parseable_configs(space, seed):
    assert parse_space(space.text()) == space
    for params, config in sample(space.with_lr(1e-3, 1), n=3, seed=seed):
        parse(config.schedule)
        assert space.with_lr(1e-3, 1).config(params) == config


def test_the_modules_examples_run():
    import doctest

    from lrkit.tune import config, space

    for module in (space, config):
        assert doctest.testmod(module).failed == 0


# -- families ---------------------------------------------------------------------------
def test_only_the_chosen_familys_params_are_suggested():
    space = default_space().with_lr(1e-3, 1)
    for params, config in sample(space, n=30):
        own = {k for k in params if "." in k}
        assert all(k.startswith(config.family + ".") for k in own)
        assert params["family"] == config.family


def test_one_alternative_has_no_family_param():
    params, config = sample(parse_space(EXAMPLE).with_lr(0.01, 1), n=1)[0]
    assert "family" not in params and config.family == "cosine"


def test_params_are_named_by_family_schedule_and_argument():
    names = [p.name for f in default_space().families for p in f.params]
    assert names == [
        "cosine.warmup.steps",
        "cosine.to",
        "one_cycle.peak_at",
        "wsd.warmup",
        "wsd.decay",
    ]


@pytest.mark.parametrize(
    "text, names",
    [
        (
            "multistep([{10..40 int}, {50..90 int}])",
            ["multistep.milestones", "multistep.milestones_2"],
        ),
        ("{0.5..1} * cosine", ["cosine.scale"]),
        ("maximum(constant({0.01..0.1}), cosine)", ["max.constant.value"]),
        ("linear({1..5ep}, to={0..0.1}) >> cosine", ["cosine.linear.steps", "cosine.linear.to"]),
    ],
)
def test_a_param_is_named_for_the_argument_it_is_given_to(text, names):
    assert [p.name for p in parse_space(text).families[0].params] == names


def test_a_family_name_used_twice_gets_a_suffix():
    space = parse_space("cosine(to={0..0.1}) | warmup(5%) >> cosine(to={0..0.2})")
    assert space.family_names() == ["cosine", "cosine_2"]
    assert [p.name for p in space.families[1].params] == ["cosine_2.to"]


def test_config_is_the_inverse_of_suggest():
    space = Space.from_text(
        "optimizer={sgd, adam, none}; weight_decay={0..1e-3}; batch_size={16, 32};"
        " warmup({0..10%}) >> cosine(to={0..0.1}) | one_cycle(peak_at={0.1..0.5}) | constant"
    ).with_lr(1e-3, 1)
    for params, config in sample(space, n=30):
        assert space.config(params) == config


def test_config_refuses_a_param_outside_the_space():
    space = parse_space("cosine(to={0..0.1})").with_lr(0.1, 0.1)
    with pytest.raises(UserError, match=r"cosine.to=0.5 is outside"):
        space.config({"cosine.to": 0.5})


def test_a_fixed_trial_gives_its_config():
    space = default_space().with_lr(1e-3, 1)
    trial = FixedTrial({"lr": 0.01, "family": "wsd", "wsd.warmup": 0.0, "wsd.decay": 0.2})
    assert space.suggest(trial) == Config(0.01, "wsd(warmup=0%, decay=20%)", "wsd")


# -- settings ---------------------------------------------------------------------------
def test_settings_are_sampled_with_their_own_names():
    space = Space(
        lr=(1e-3, 1),
        schedule="constant",
        optimizer=["sgd", "adamw"],
        weight_decay="{1e-5..1e-2 log}",
        batch_size=[16, 64],
    )
    for params, config in sample(space):
        assert config.optimizer == params["optimizer"] in ("sgd", "adamw")
        assert 1e-5 <= config.weight_decay <= 1e-2
        assert config.batch_size in (16, 64)


def test_optimizer_none_is_the_tasks_own():
    space = parse_space("optimizer={none, adam}; constant").with_lr(0.1, 0.1)
    assert space.config({"optimizer": None}).optimizer is None


def test_a_fixed_setting_is_no_param():
    trial = optuna.create_study().ask()
    config = Space(lr=(0.1, 0.1), schedule="constant", optimizer="adam").suggest(trial)
    assert trial.params == {} and config.optimizer == "adam"


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"optimizer": "adm"}, "did you mean 'adam'"),
        ({"weight_decay": -1e-4}, "weight_decay must be a finite number >= 0"),
        ({"weight_decay": float("nan")}, "finite"),
        ({"batch_size": [16, 0]}, "batch_size must be a whole number >= 1"),
        ({"batch_size": "{16..64}"}, "whole numbers"),
        ({"lr": (1.0, 1e-3)}, "low 1 > high 0.001"),
        ({"lr": (0.0, 1.0)}, "lr range bound must be a finite number > 0"),
        ({"lr": (1e-3, math.inf)}, "lr range bound"),
    ],
)
def test_bad_settings_are_refused_naming_the_value(kwargs, fragment):
    with pytest.raises(UserError, match=fragment):
        Space(schedule="constant", **kwargs)


# -- the text form written back ---------------------------------------------------------
@pytest.mark.parametrize(
    "text",
    [
        EXAMPLE,
        "constant",
        "lr={1e-05..0.3}; optimizer={sgd, adam, none}; weight_decay={0, 0.0001};"
        " batch_size={16..128 int log}; cyclical({1..3ep}, mode={triangular, triangular2})"
        " | one_cycle(peak_at={0.1..0.5}) | constant",
        "lr=0.01; optimizer=adamw; cosine(to={0.001, 0.01}) | warmup({2..20 int}) >> linear",
    ],
)
def test_text_round_trips(text):
    space = parse_space(text)
    assert Space.from_text(space.text()) == space
    assert parse_space(str(space)).text() == space.text()


def test_to_dict_round_trips_through_json():
    space = Space.from_text("lr={1e-4..1}; optimizer={sgd, adam}; batch_size=32; " + EXAMPLE)
    assert Space.from_dict(json.loads(json.dumps(space.to_dict()))) == space


def test_from_dict_refuses_an_unknown_field():
    with pytest.raises(UserError, match="unknown space field 'schedules'"):
        Space.from_dict({"schedules": "constant"})


def test_with_lr_sets_the_range_and_keeps_the_families():
    space = default_space().with_lr(1e-3, 0.5)
    assert space.lr == (1e-3, 0.5) and space.families == default_space().families


# -- grids --------------------------------------------------------------------------------
def test_a_grid_has_lr_on_a_log_grid_and_choices_as_they_are():
    space = parse_space("cyclical(10, mode={triangular, triangular2}) | constant").with_lr(
        1e-3, 1e-1
    )
    grid = space.grid(points=3)
    assert grid["lr"] == pytest.approx([1e-3, 1e-2, 1e-1])
    assert grid["family"] == ["cyclical", "constant"]
    assert grid["cyclical.mode"] == ["triangular", "triangular2"]


def test_a_grid_runs_with_optunas_grid_sampler_through_every_point():
    space = parse_space("cosine(to={0..0.1}) | constant").with_lr(1e-3, 1e-1)
    grid = space.grid(points=3)
    study = optuna.create_study(sampler=optuna.samplers.GridSampler(grid, seed=0))
    configs = set()
    study.optimize(lambda trial: configs.add(space.suggest(trial)) or 0.0)
    assert len(study.trials) == math.prod(map(len, grid.values()))
    assert len(configs) == 3 * (3 + 1)  # lrs x (cosine floors + constant)


def test_grid_params_lists_each_configuration_once():
    space = parse_space("cosine(to={0..0.1}) | constant").with_lr(1e-3, 1e-1)
    params = space.grid_params(points=3)
    configs = [space.config(p) for p in params]
    assert len(params) == 3 * (3 + 1) and len(set(configs)) == len(configs)
    assert all("cosine.to" not in p for p in params if p["family"] == "constant")


def test_grid_params_are_enqueued_trials_of_a_study():
    space = parse_space("cosine(to={0..0.1}) | constant").with_lr(1e-3, 1e-1)
    study = optuna.create_study()
    for params in space.grid_params(points=3):
        study.enqueue_trial(params)
    seen = set()
    study.optimize(lambda trial: seen.add(space.suggest(trial)) or 0.0, n_trials=12)
    assert len(seen) == 12


def test_a_grid_too_large_is_refused_saying_how_large():
    space = parse_space(
        "cosine(to={0..0.1}, start={0.5..1}) | one_cycle(peak_at={0.1..0.5}, div={10..30})"
        " | wsd(warmup={0..10%}, decay={10..40%})"
    ).with_lr(1e-4, 1)
    with pytest.raises(UserError, match=r"19,683 points .* more than 10,000"):
        space.grid(points=9)
    assert MAX_GRID == 10_000


def test_a_grid_needs_an_lr_range():
    with pytest.raises(UserError, match="a grid needs an lr range"):
        default_space().grid()


def test_suggest_needs_an_lr_range():
    with pytest.raises(UserError, match="no lr range yet"):
        default_space().suggest(FixedTrial({}))


# -- default space and as_space --------------------------------------------------------
def test_the_default_space_leaves_lr_to_the_range_test_and_offers_four_families():
    space = default_space("digits-mlp")
    assert space.lr is None
    assert space.family_names() == ["cosine", "one_cycle", "wsd", "constant"]


def test_every_default_family_parses_at_every_grid_point():
    space = default_space().with_lr(1e-3, 1)
    grid = space.grid(points=3)
    for family in space.families:
        names = [p.name for p in family.params]
        for i in range(3):
            params = {"lr": 0.1, "family": family.name, **{n: grid[n][i] for n in names}}
            config = space.config(params)
            assert config.family == family.name
            parse(config.schedule)  # a ScheduleSyntaxError fails the test


def test_as_space_takes_each_documented_form():
    assert as_space(None, "digits-mlp") == default_space("digits-mlp")
    space = parse_space(EXAMPLE)
    assert as_space(space) is space
    assert as_space(EXAMPLE) == space
    assert as_space([EXAMPLE, "constant"]).family_names() == ["cosine", "constant"]
    assert as_space({"lr": [0.01, 0.1], "schedule": "constant"}).lr == (0.01, 0.1)


def test_as_space_refuses_anything_else():
    with pytest.raises(UserError, match="space must be a Space, a text"):
        as_space(42)


@pytest.mark.parametrize(
    "make, fragment",
    [
        (lambda: Range(float("nan"), 1), "range low must be a finite number, got nan"),
        (lambda: Range(0, float("inf")), "range high must be a finite number, got inf"),
        (lambda: Range(2, 1), "range low 2 > high 1"),
        (lambda: Range(0.5, 2, integer=True), "whole number"),
        (lambda: Choice(()), "at least one value"),
        (lambda: Choice((1, float("nan"))), "finite"),
        (lambda: Choice(([1],)), "numbers or names"),
    ],
)
def test_a_bad_range_built_in_python_is_a_user_error(make, fragment):
    with pytest.raises(UserError, match=None) as info:
        make()
    assert fragment in str(info.value)


def test_range_and_choice_can_be_built_in_python():
    space = Space(
        lr=(0.1, 0.1), schedule="constant", weight_decay=Range(0, 1e-3), batch_size=Choice((8, 16))
    )
    assert space.text() == "lr=0.1; weight_decay={0..0.001}; batch_size={8, 16}; constant"


# -- errors, pointing at the column -----------------------------------------------------
ERRORS = [
    ("", 1, "empty space"),
    ("   ", 1, "empty space"),
    ("cosine | | constant", 10, "empty alternative"),
    ("warmup({0..10%}) >> cosin", 21, "did you mean 'cosine'"),
    ("cosine(to={0.1..0.01})", 11, "low 0.1 > high 0.01"),
    ("cosine(to={0..1 log})", 12, "a log range needs a low end > 0, got 0"),
    ("cosine(to={})", 11, "empty choice {}"),
    ("cosine(to={1..})", 15, "no high end"),
    ("cosine(to={..2})", 12, "no low end"),
    ("cosine(to={1...2})", 13, "'...'"),
    ("cosine(to={a..b})", 12, "'a' is not a number"),
    ("cosine(to={0..b})", 15, "'b' is not a number"),
    ("cosine(to={nan..1})", 12, "finite"),
    ("cosine(to={0..inf})", 15, "finite"),
    ("cosine(to={{0..1}})", 12, "ranges do not nest"),
    ("cosine(to={0..1)", 11, "is never closed"),
    ("cosine(to=0..1})", 15, "has no matching '{'"),
    ("cosine(to={0..1 lgo})", 17, "did you mean 'log'"),
    ("cosine(to={0..1 int}, start={1.5..2 int})", 29, "whole number"),
    ("warmup({1..10% int}) >> cosine", 8, "cannot be in %"),
    ("warmup({0..10 int log}) >> cosine", 9, "a log range needs a low end > 0, got 0"),
    ("warmup({5%..1%}) >> cosine", 8, "write the low end first: {1..5%}"),
    ("warmup({0..200%}) >> cosine", 8, "at most 100%"),
    ("cosine(to={-1..0.1})", 11, "cosine to must be >= 0, got -1"),
    ("cyclical(10, mode={triangular, triangle2})", 19, "'triangle2'"),
    ("wsd(warmup={0..60%}, decay={10..50%})", 12, "must fit in its"),
    ("cosine(to={0.1, 0.1})", 17, "given twice"),
    ("cosine(to={0.1, })", 17, "empty item"),
    ("{0..1}(5%)", 1, "a range where a name is expected"),
    ("cosine({0..1}=0.5)", 8, "a range where a name is expected"),
    ("cosine(to={1e400..2})", 12, "finite"),
    ("lrr={1..2}; cosine", 1, "did you mean 'lr'"),
    ("lr={0..1}; cosine", 4, "lr range low must be a finite number > 0"),
    ("lr={1..2ep}; cosine", 4, "lr is a number range"),
    ("optimizer={sgd, adm}; cosine", 11, "did you mean 'adam'"),
    ("batch_size={1.5}; cosine", 12, "whole number"),
    ("lr={1e-3..1}", 13, "no schedule"),
    ("cosine; constant", 8, "separate alternatives with '|'"),
    ("lr=0.1; lr=0.2; cosine", 9, "given twice"),
]


@pytest.mark.parametrize("text, column, fragment", ERRORS)
def test_a_bad_space_is_refused_at_its_column(text, column, fragment):
    with pytest.raises(ScheduleSyntaxError, match=None) as info:
        parse_space(text)
    assert fragment in str(info.value)
    assert info.value.column == column
    assert caret_column(info.value) == column


def test_an_error_in_a_list_of_alternatives_points_into_that_text():
    with pytest.raises(ScheduleSyntaxError) as info:
        Space(schedule=["constant", "warmup(5%) >> cosin"])
    assert info.value.column == 15 and info.value.spec == "warmup(5%) >> cosin"


def test_a_space_error_is_a_user_error():
    assert issubclass(ScheduleSyntaxError, UserError)


# -- Config -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"lr": float("nan")}, "lr must be a finite number > 0, got nan"),
        ({"lr": float("inf")}, "lr must be a finite number > 0, got inf"),
        ({"lr": 0.0}, "lr must be a finite number > 0"),
        ({"lr": 0.1, "weight_decay": -1.0}, "weight_decay must be a finite number >= 0"),
        ({"lr": 0.1, "weight_decay": float("inf")}, "weight_decay"),
        ({"lr": 0.1, "batch_size": 0}, "batch_size must be a whole number >= 1, got 0"),
        ({"lr": 0.1, "batch_size": 2.5}, "batch_size must be a whole number"),
        ({"lr": 0.1, "optimizer": "adm"}, "optimizer must be one of sgd, adam, adamw"),
        ({"lr": 0.1, "schedule": ""}, "schedule must be a non-empty text"),
        ({"lr": 0.1, "family": None}, "family must be a non-empty text"),
    ],
)
def test_config_refuses_a_bad_value_naming_it(kwargs, fragment):
    with pytest.raises(UserError, match=None) as info:
        Config(**kwargs)
    assert fragment in str(info.value)


def test_config_round_trips_through_a_dict():
    config = Config(0.05, "warmup(5%) >> cosine", "cosine", "adamw", 1e-4, 32)
    assert Config.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_config_from_dict_refuses_an_unknown_field():
    with pytest.raises(UserError, match="unknown config field 'rate'"):
        Config.from_dict({"lr": 0.1, "rate": 1})


def test_config_train_line_carries_every_setting():
    line = Config(0.05, "constant", "constant", "adam", 1e-4, 32).train_line("digits-mlp")
    assert line == (
        "lrkit train --task digits-mlp --lr 0.05 --schedule constant --optimizer adam"
        " --weight-decay 0.0001 --batch-size 32"
    )


def test_config_python_builds_a_variant_when_settings_are_given():
    code = Config(0.05, "constant", "constant", "adam").python("digits-mlp")
    assert "lrkit.get_task('digits-mlp').variant(optimizer='adam')" in code


def test_a_warmup_range_below_one_step_of_any_run_is_refused_when_read():
    with pytest.raises(ScheduleSyntaxError, match="warmup steps must be"):
        parse_space("warmup({0..1e-300%}) >> cosine")
