"""Pick and Trial: what :func:`~lrkit.find.pick_lr` chose, what it tried, why, and its cost.

Plain data both ways, like every lrkit result: ``to_dict``/``from_dict``, ``to_json``/
``from_json`` (strict JSON: a diverged trial's NaN metric is written ``"nan"``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from ..results import Result, decode_floats, encode_floats


@dataclass(frozen=True)
class Trial:
    """One short run: its peak ``lr``, optimizer ``steps``, validation ``metric`` and loss."""

    lr: float
    steps: int
    metric: float
    val_loss: float
    round: int


@dataclass
class Pick(Result):
    """What :func:`~lrkit.find.pick_lr` chose, what it tried, why, and what it cost.

    ``lr``: the peak lr to use with ``schedule``; ``cost``: the optimizer steps spent, as a
    multiple of one full run (never more than ``budget``); ``candidates``: the rates of the
    first round, from the window's top down; ``trials``: every short run, with its metric;
    ``window``: the ``(low, high)`` rates the short runs covered; ``winner``: the last round's
    best rate (``tied``: the rates tied with it on the best metric, whose geometric centre the
    winner then is); ``correction``: the decades added to the winner to give ``lr`` (short runs
    favour high rates, see BENCHMARKS.md), so ``lr == winner * 10**correction``; ``find``: a
    summary of the range test (its chosen lr, the window's top, its confidence).
    """

    lr: float
    schedule: str
    budget: float
    cost: float
    steps: int
    full_run_steps: int
    window: tuple[float, float]
    trials: list[Trial] = field(default_factory=list)
    find: dict[str, Any] = field(default_factory=dict)
    candidates: list[float] = field(default_factory=list)
    winner: float = math.nan
    tied: list[float] = field(default_factory=list)
    correction: float = 0.0
    metric_name: str = ""
    higher_is_better: bool = True

    def explain(self) -> list[str]:
        """How the pick was made, in lines: the window, each round, the winner, the correction."""
        lines = []
        if self.find:
            said = "no lr" if self.find.get("lr") is None else f"lr {self.find['lr']:.3g}"
            conf = "ok" if self.find.get("confidence") else f"low ({self.find.get('reason')})"
            lines.append(
                f"range test: {self.find.get('steps')} steps, {said}, confidence {conf};"
                f" the window's top: {self.find.get('top', self.window[1]):.3g}"
            )
        if self.candidates:
            lines.append(
                f"candidates: {len(self.candidates)} rates {_spacing(self.candidates):g} decades"
                f" apart, from"
                f" {max(self.candidates):.3g} down to {min(self.candidates):.3g}"
            )
        metric = self.metric_name or "metric"
        for r in sorted({t.round for t in self.trials}):
            runs = [t for t in self.trials if t.round == r]
            best = min(runs, key=rank_key(self.higher_is_better))
            lines.append(
                f"round {r + 1}: {len(runs)} runs of {runs[0].steps} steps;"
                f" best {best.lr:.3g} ({metric} {_fmt(best.metric)})"
            )
        if self.trials:
            if len(self.tied) > 1:
                rates = ", ".join(f"{x:.3g}" for x in sorted(self.tied))
                lines.append(
                    f"winner: {self.winner:.4g}, the geometric centre of the rates tied for the"
                    f" best {metric} ({rates})"
                )
            else:
                lines.append(f"winner: {self.winner:.4g}, the last round's best")
            lines.append(
                f"correction: {self.correction:+g} decades (short runs favour high rates):"
                f" picked {self.lr:.4g} = {self.winner:.4g} x {10**self.correction:.3g}"
            )
        return lines

    # -- plain data --------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain data (numbers, strings, lists), ready for strict JSON (NaN as ``"nan"``)."""
        data = asdict(self)
        data["window"] = list(self.window)
        return encode_floats(data)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Pick:
        """The pick :meth:`to_dict` described."""
        data = decode_floats(dict(data))
        missing = {"lr", "schedule", "budget", "cost", "steps", "full_run_steps", "window"}
        missing -= set(data)
        if missing:
            raise ValueError(f"not a Pick: keys {sorted(missing)} are missing")
        known = {f.name for f in dataclasses.fields(cls)}
        data = {k: v for k, v in data.items() if k in known}
        data["window"] = tuple(data["window"])
        data["trials"] = [Trial(**t) for t in data.get("trials", [])]
        return cls(**data)

    def __repr__(self) -> str:
        return (
            f"Pick(lr={self.lr:.3g} for {self.schedule!r}; {len(self.trials)} short runs in"
            f" [{self.window[0]:.3g}, {self.window[1]:.3g}], cost {self.cost:.2f} of budget"
            f" {self.budget:g} runs)"
        )


def _spacing(rates: list[float]) -> float:
    """Decades between neighbouring candidates (they are log-spaced)."""
    return round(math.log10(rates[0] / rates[1]), 4) if len(rates) > 1 else 0.0


def _fmt(x: float) -> str:
    return f"{x:.4g}" if math.isfinite(x) else "diverged"


def rank_key(higher_is_better: bool):
    """Sort key: better metric first (NaN last), then lower validation loss."""
    sign = -1.0 if higher_is_better else 1.0

    def key(t: Trial) -> tuple[float, float]:
        return (math.inf if math.isnan(t.metric) else sign * t.metric, t.val_loss)

    return key


__all__ = ["Pick", "Trial"]
