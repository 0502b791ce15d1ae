"""Hypothesis strategies: random valid schedules of every catalogue kind and their compositions.

``schedules(resolved=True)`` draws trees whose lengths are whole steps; with
``resolved=False`` lengths may also be fractions of the run (``"5%"``), epochs (``"2ep"``) or
left out to take the rest of the run. :func:`resolve` turns those into steps for the run that
:data:`TOTAL_STEPS` and :data:`STEPS_PER_EPOCH` describe; every drawn schedule resolves there.
``continuous_chains()`` draws sequences whose parts meet: each part starts at the value where
the one before it ends.
"""

from __future__ import annotations

from hypothesis import strategies as st

from lrkit.schedules import (
    Schedule,
    clip,
    constant,
    cosine,
    cosine_restarts,
    cyclical,
    exponential,
    inverse_sqrt,
    linear,
    maximum,
    minimum,
    multistep,
    one_cycle,
    piecewise_constant,
    piecewise_linear,
    polynomial,
    product,
    repeat,
    scale,
    sequence,
    step,
    stretch,
    warmup,
    wsd,
)

TOTAL_STEPS = 2000
STEPS_PER_EPOCH = 50

__all__ = [
    "STEPS_PER_EPOCH",
    "TOTAL_STEPS",
    "atoms",
    "continuous_chains",
    "finite_atoms",
    "infinite_atoms",
    "kinds",
    "lengths",
    "resolve",
    "schedules",
]


def resolve(s: Schedule) -> Schedule:
    """``s`` with every length in whole steps, for a run of TOTAL_STEPS and STEPS_PER_EPOCH."""
    return s.resolve(total_steps=TOTAL_STEPS, steps_per_epoch=STEPS_PER_EPOCH)


# -- numbers and lengths ----------------------------------------------------------------------
def values(lo: float = 0.0, hi: float = 2.0) -> st.SearchStrategy[float]:
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False)


def ordered_pair(lo: float = 0.0, hi: float = 2.0) -> st.SearchStrategy[tuple[float, float]]:
    return st.tuples(values(lo, hi), values(lo, hi)).map(sorted).map(tuple)


# Every length drawn is at most MOST steps (5% of the run, 2 epochs), so that trees up to
# max_depth=3 fit in the run with room to spare for a part that takes the rest.
MOST = 100


def lengths(resolved: bool = True) -> st.SearchStrategy:
    """One length: whole steps, or (unresolved) also '0.5%'..'5%' or '0.5ep'..'2ep' of the run."""
    steps = st.integers(1, MOST)
    if resolved:
        return steps
    percents = st.integers(1, 10).map(lambda k: f"{k / 2:g}%")
    epochs = st.sampled_from(["0.5ep", "1ep", "1.5ep", "2ep"])
    return st.one_of(steps, percents, epochs)


@st.composite
def increasing_lengths(draw, resolved: bool, size: int, *, zero: bool = False):
    """``size`` strictly increasing lengths, all whole steps or (unresolved) all fractions."""
    fractions = not resolved and draw(st.booleans())
    ks = st.integers(0 if zero else 1, 10 if fractions else MOST)
    ks = sorted(draw(st.lists(ks, min_size=size, max_size=size, unique=True)))
    return [f"{k / 2:g}%" for k in ks] if fractions else ks


# -- atoms ------------------------------------------------------------------------------------
def _finite_kinds(resolved: bool) -> dict[str, st.SearchStrategy[Schedule]]:
    """Catalogue schedules with a length, by kind: their value stops changing after it."""
    n = lengths(resolved)
    return {
        "constant": st.builds(constant, values(), n),
        "linear": st.builds(lambda n, ab: linear(n, start=ab[1], to=ab[0]), n, ordered_pair()),
        "warmup": st.builds(
            lambda n, a, b: warmup(n, start=a, to=b), n, values(0, 0.5), values(0.5, 2)
        ),
        "cosine": st.builds(lambda n, a, b: cosine(n, to=a, start=b), n, values(), values()),
        "polynomial": st.builds(
            lambda n, p, a, b: polynomial(n, power=p, to=a, start=b),
            n,
            values(0.1, 4),
            values(),
            values(),
        ),  # fmt: skip
        "wsd": _wsd(resolved),
        "piecewise_constant": _piecewise_constant(resolved),
        "piecewise_linear": _piecewise_linear(resolved),
        "multistep": _multistep(resolved),
        # a gamma above 1 needs steps; 1.05 ** 100 is 131, so products of a few stay in range
        "exponential": st.builds(lambda g, n: exponential(g, steps=n), values(0.9, 1.05), n),
        "step": st.builds(
            lambda e, g, n: step(e, gamma=g, steps=n), st.integers(1, 10), values(0.5, 1.05), n
        ),
        "one_cycle": _one_cycle(n),
        "cycle_momentum": _one_cycle(n).flatmap(_momentum),
    }


def _infinite_kinds(resolved: bool) -> dict[str, st.SearchStrategy[Schedule]]:
    """Catalogue schedules without a length, by kind: they never stop changing."""
    n = lengths(resolved)
    return {
        "constant": st.builds(constant, values()),
        "step": st.builds(lambda n, g: step(n, gamma=g), n, values(0.01, 1.0)),
        "exponential": st.builds(exponential, values(0.99, 1.0)),
        "inverse_sqrt": st.builds(inverse_sqrt, n),
        "cosine_restarts": st.builds(
            lambda n, m, d, to: cosine_restarts(n, mult=m, decay=d, to=to),
            n,
            st.integers(1, 3),
            values(0.1, 1.0),
            values(0, 1),
        ),  # fmt: skip
        "cyclical": _cyclical(resolved),
        "cycle_momentum": _cyclical(resolved).flatmap(_momentum),
    }


def kinds() -> list[str]:
    """Names of every catalogue kind the strategies draw."""
    return sorted(set(_finite_kinds(True)) | set(_infinite_kinds(True)))


def atoms(kind: str, resolved: bool = True) -> st.SearchStrategy[Schedule]:
    """Random valid schedules of one catalogue kind (with and without a length)."""
    found = [k[kind] for k in (_finite_kinds(resolved), _infinite_kinds(resolved)) if kind in k]
    return st.one_of(*found)


def _evenly(table: dict[str, st.SearchStrategy[Schedule]]) -> st.SearchStrategy[Schedule]:
    """Each kind equally likely, however many ways a kind has of being drawn."""
    return st.sampled_from(sorted(table)).flatmap(table.__getitem__)


def finite_atoms(resolved: bool) -> st.SearchStrategy[Schedule]:
    """Catalogue schedules with a length, every kind equally likely."""
    return _evenly(_finite_kinds(resolved))


def infinite_atoms(resolved: bool) -> st.SearchStrategy[Schedule]:
    """Catalogue schedules without a length, every kind equally likely."""
    return _evenly(_infinite_kinds(resolved))


@st.composite
def _wsd(draw, resolved: bool):
    cooldown = draw(st.sampled_from(["linear", "cosine", "1-sqrt"]))
    to = draw(values(0, 1))
    if resolved:
        n = draw(st.integers(1, MOST))
        decay = draw(st.integers(1, n))
        return wsd(n, warmup=draw(st.integers(0, n - decay)), decay=decay, cooldown=cooldown, to=to)
    # 80 or 100 steps, warmup at most 20 and decay at most 40: always fits once resolved
    n = draw(st.sampled_from(["4%", "5%", "2ep", 80]))
    w = draw(st.one_of(st.integers(0, 20), st.sampled_from(["0%", "1%", "0.4ep"])))
    d = draw(st.one_of(st.integers(1, 40), st.sampled_from(["2%", "0.5%", "0.8ep"])))
    return wsd(n, warmup=w, decay=d, cooldown=cooldown, to=to)


@st.composite
def _piecewise_constant(draw, resolved: bool):
    k = draw(st.integers(1, 4))
    return piecewise_constant(
        draw(increasing_lengths(resolved, k)),
        draw(st.lists(values(), min_size=k + 1, max_size=k + 1)),
    )


@st.composite
def _piecewise_linear(draw, resolved: bool):
    k = draw(st.integers(2, 5))
    steps = draw(increasing_lengths(resolved, k, zero=True))
    return piecewise_linear([[s, draw(values())] for s in steps])


@st.composite
def _multistep(draw, resolved: bool):
    k = draw(st.integers(1, 4))
    return multistep(draw(increasing_lengths(resolved, k)), gamma=draw(values(0.01, 1.5)))


@st.composite
def _one_cycle(draw, n):
    three_phase = draw(st.booleans())
    return one_cycle(
        draw(n),
        peak_at=draw(values(0, 0.5 if three_phase else 1.0)),
        div=draw(values(1, 100)),
        final_div=draw(values(1, 1e4)),
        anneal=draw(st.sampled_from(["cos", "linear"])),
        three_phase=three_phase,
    )


@st.composite
def _cyclical(draw, resolved: bool):
    low, high = draw(ordered_pair())
    return cyclical(
        draw(lengths(resolved)),
        draw(st.none() | lengths(resolved)),
        low=low,
        high=high,
        mode=draw(st.sampled_from(["triangular", "triangular2", "exp_range"])),
        gamma=draw(values(0.9, 1.0)),
    )


def _momentum(s: Schedule) -> st.SearchStrategy[Schedule]:
    return ordered_pair(0, 0.999).map(lambda lh: s.momentum(low=lh[0], high=lh[1]))


# -- compositions -----------------------------------------------------------------------------
def finite(resolved: bool, depth: int) -> st.SearchStrategy[Schedule]:
    """Schedules with a length once resolved (what sequences, repeat and stretch need)."""
    leaves = finite_atoms(resolved)
    if depth == 0:
        return leaves
    inner = finite(resolved, depth - 1)
    # beside a finite part: another finite one or a static one (an endless part would make
    # the product endless: past its length a finite part holds, the endless one goes on)
    beside = st.one_of(inner, st.builds(constant, values()))
    return st.one_of(
        leaves,
        st.lists(inner, min_size=2, max_size=3).map(lambda ps: sequence(*ps)),
        st.builds(product, inner, beside),
        st.builds(scale, inner, values()),
        st.builds(lambda s, lh: clip(s, *lh), inner, ordered_pair()),
        st.builds(lambda a, b: minimum(a, b), inner, inner),
        st.builds(lambda a, b: maximum(a, b), inner, beside),
        st.builds(repeat, inner, st.integers(1, 3)),
        st.builds(stretch, inner, lengths(resolved)),
    )


def anything(resolved: bool, depth: int) -> st.SearchStrategy[Schedule]:
    """Any schedule, with or without a length (no part left to take the rest of the run)."""
    leaves = st.one_of(finite_atoms(resolved), infinite_atoms(resolved))
    if depth == 0:
        return leaves
    fin = finite(resolved, depth - 1)
    inner = anything(resolved, depth - 1)
    return st.one_of(
        leaves,
        finite(resolved, depth).map(_same),  # one branch, not flattened into this one_of
        st.builds(
            lambda ps, last: sequence(*ps, last), st.lists(fin, min_size=1, max_size=2), inner
        ),
        _with_boundaries(resolved, anything(resolved, 0)),
        st.builds(product, inner, inner),
        st.builds(scale, inner, values()),
        st.builds(lambda s, lh: clip(s, *lh), inner, ordered_pair()),
        st.builds(lambda a, b: minimum(a, b), inner, inner),
        st.builds(repeat, fin, st.none()),
    )


def _same(s: Schedule) -> Schedule:
    return s


@st.composite
def _with_boundaries(draw, resolved: bool, parts):
    """``seq(a, b, ..., boundaries=[...])`` of catalogue parts. (Parts that hold a sequence
    with boundaries of its own past the span its part gets would not resolve: the span is
    that inner sequence's whole run.)"""
    k = draw(st.integers(2, 3))
    bounds = draw(increasing_lengths(resolved, k - 1))
    return sequence(*draw(st.lists(parts, min_size=k, max_size=k)), boundaries=bounds)


def open_atoms() -> st.SearchStrategy[Schedule]:
    """Schedules with no steps: they take whatever the run leaves over."""
    return st.one_of(
        st.builds(lambda ab: linear(start=ab[1], to=ab[0]), ordered_pair()),
        st.builds(lambda a: warmup(start=a), values(0, 1)),
        st.builds(lambda a: cosine(to=a), values(0, 1)),
        st.builds(lambda p: polynomial(power=p), values(0.1, 4)),
        st.builds(lambda d: wsd(decay=d), st.sampled_from(["20%", "10%", "1ep", 100])),
        _one_cycle(st.none()),
    )


def schedules(resolved: bool = True, max_depth: int = 2) -> st.SearchStrategy[Schedule]:
    """Random valid schedules: every catalogue kind, composed with every combinator.

    ``resolved=True``: all lengths in whole steps, callable as drawn. ``resolved=False``: lengths
    may be ``'5%'``, ``'2ep'`` or left out for the rest of the run; call :func:`resolve` first.
    """
    trees = anything(resolved, max_depth)
    if resolved:
        return trees
    fin = finite(False, max_depth - 1)
    return st.one_of(
        trees,
        open_atoms(),
        st.builds(lambda a, b: sequence(a, b), fin, open_atoms()),
        st.builds(lambda a, b, c: sequence(a, b, c), fin, open_atoms(), finite_atoms(False)),
    )


# -- sequences whose parts meet ---------------------------------------------------------------
def _from(start: float) -> st.SearchStrategy[Schedule]:
    """A finite, continuous schedule that begins at ``start``."""
    n = st.integers(1, 300)
    return st.one_of(
        st.builds(lambda n: constant(start, n), n),
        st.builds(lambda n, b: linear(n, start=start, to=b), n, values()),
        st.builds(lambda n, b: cosine(n, start=start, to=b), n, values()),
        st.builds(
            lambda n, p, b: polynomial(n, power=p, start=start, to=b), n, values(1, 4), values()
        ),
        st.builds(
            lambda steps, vs: piecewise_linear([[0, start]] + [[s, v] for s, v in zip(steps, vs)]),
            st.lists(st.integers(1, 300), min_size=1, max_size=3, unique=True).map(sorted),
            st.lists(values(), min_size=3, max_size=3),
        ),
    )


def _ends(s: Schedule) -> float:
    return s(s.length)


@st.composite
def continuous_chains(draw, max_parts: int = 4):
    """``a >> b >> ...`` where each part starts at the value where the part before it ends."""
    first = draw(
        st.one_of(
            _from(draw(values())),
            st.builds(lambda n: warmup(n), st.integers(1, 300)),
            _one_cycle(st.integers(1, 300)),
            _wsd(True),
        )
    )
    parts = [first]
    for _ in range(draw(st.integers(1, max_parts - 1))):
        parts.append(draw(_from(_ends(parts[-1]))))
    return sequence(*parts)
