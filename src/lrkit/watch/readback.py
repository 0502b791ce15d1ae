"""A :class:`~lrkit.watch.Watch`'s buffer read back: the numbers its records are made of.

On a CPU the buffer holds numbers already (plain Python, no array round trip); elsewhere 0-d
tensors and update-ratio vectors, read back in one transfer (:func:`~lrkit.watch.signals.to_host`).

>>> read_back(True, [0.5], [[3.0, 4.0]], [], 2, [0], [])
([0.5], [5.0], [0], [], [])
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from . import signals as sig


def read_back(
    on_cpu: bool,
    losses: Sequence[torch.Tensor | float | None],
    norms: Sequence[Sequence[torch.Tensor | float]],
    measured: Sequence[tuple[int, Any]],
    p: int,
    have_loss: list[int],
    rows: list[int],
) -> tuple[list[float], list[float], list[int], list[float], list[float]]:
    """``(losses, global norms, non-finite counts, layer norms, update ratios)``: the losses
    of the steps ``have_loss``, per step the global gradient norm and how many of its ``p``
    per-tensor norms are not finite (0 when the global norm is finite), and the per-layer
    norms and update ratios of the measured ``rows`` (flat, row by row)."""
    if on_cpu:  # numbers already: plain Python, no array round trip
        totals = [math.hypot(*row) for row in norms]
        bad = [
            0 if math.isfinite(t) else sum(not math.isfinite(x) for x in row)
            for t, row in zip(totals, norms)
        ]
        kept = [float(losses[i]) for i in have_loss]  # type: ignore[arg-type]
        layer_norms = [x for i in rows for x in norms[i]]
        ratios = [x for _, r in measured for x in r]
        return kept, totals, bad, layer_norms, ratios
    scalars = [losses[i] for i in have_loss]
    scalars += [t for row in norms for t in row]
    flat = sig.to_host(scalars, [r for _, r in measured])
    k, n = len(have_loss), len(norms)
    table = flat[k : k + n * p].reshape(n, p)
    totals = np.sqrt(np.square(table).sum(1)).tolist()
    bad = (~np.isfinite(table)).sum(1).tolist()
    return (
        flat[:k].tolist(),
        totals,
        bad,
        table[rows].ravel().tolist(),
        flat[k + n * p :].tolist(),
    )


__all__ = ["read_back"]
