"""Grids of a :class:`~lrkit.tune.space.Space` for Optuna's GridSampler: what
:meth:`Space.grid <lrkit.tune.space.Space.grid>` and :meth:`Space.grid_params
<lrkit.tune.space.Space.grid_params>` return (the rule is in :mod:`lrkit.tune.space`'s doc).
"""

from __future__ import annotations

import itertools
import math
from typing import Any

from ..checks import whole
from ..errors import UserError
from . import lrfree
from .ranges import Range
from .settings import SETTINGS

MAX_GRID = 10_000  # a grid with more points is refused
_FAMILY_POINTS = 3  # grid points of a family's continuous param


def grid_of(space: Any, points: int) -> dict[str, list[Any]]:
    """GridSampler's search space of ``space`` (see :meth:`Space.grid
    <lrkit.tune.space.Space.grid>`)."""
    points = whole(points, "grid points", least=1)
    if space.lr is None:
        raise UserError("a grid needs an lr range: give one, or let tune's range test set it")
    grid: dict[str, list[Any]] = {}
    lo, hi = space.lr
    if lo != hi:
        grid["lr"] = Range(lo, hi, log=True).grid(points)
    if len(space.families) > 1:
        grid["family"] = space.family_names()
    for f in space.families:
        for p in f.params:
            if not p.dim.fixed:
                grid[p.name] = p.dim.grid(min(points, _FAMILY_POINTS))
    for key in SETTINGS[1:]:
        dim = getattr(space, key)
        if dim is not None and not dim.fixed:
            grid[key] = dim.grid(min(points, _FAMILY_POINTS))
    size = math.prod(len(v) for v in grid.values())
    if size > MAX_GRID:
        shape = " x ".join(f"{len(v)} {k}" for k, v in grid.items())
        raise UserError(
            f"a grid of this space would have {size:,} points ({shape}), more than"
            f" {MAX_GRID:,}; give fewer families, choices or grid points, or use"
            " sampler='tpe'"
        )
    return grid


def params_of(space: Any, points: int) -> list[dict[str, Any]]:
    """The distinct points of :func:`grid_of`, each as one trial's params (see
    :meth:`Space.grid_params <lrkit.tune.space.Space.grid_params>`)."""
    grid = grid_of(space, points)
    shared = [k for k in ("lr", *SETTINGS[1:]) if k in grid]
    out, seen = [], set()
    for f in space.families:
        keys = shared + [p.name for p in f.params if p.name in grid]
        for combo in itertools.product(*(grid[k] for k in keys)):
            params = dict(zip(keys, combo))
            if len(space.families) > 1:
                params["family"] = f.name
            if space.optimizer is not None:
                config = space.config(params)
                if lrfree.skip_reason(config.optimizer, config.schedule, None):
                    continue
                if lrfree.lr_free(config.optimizer):
                    params.pop("lr", None)
                    key = tuple(sorted(config.to_dict().items()))
                    if key in seen:
                        continue
                    seen.add(key)
            out.append(params)
    return out
