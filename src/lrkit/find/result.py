"""FindResult: a range test's curve, every rule's suggestion, the chosen lr and its confidence.

>>> import numpy as np
>>> from lrkit.find.rules import Confidence
>>> lrs = np.logspace(-4, 0, 20)
>>> losses = 2.0 - np.log10(lrs) / 10
>>> r = FindResult(lrs=lrs, losses=losses, raw_losses=losses, group_lrs=[lrs.tolist()],
...                suggestions={"lrkit": 0.01}, lr=0.01, rule="lrkit",
...                confidence=Confidence(True, "ok"), stop_reason="completed 20 steps",
...                steps_run=20)
>>> print(r)
FindResult(lr=0.01 by rule 'lrkit', confidence ok; 20 points from 0.0001 to 1, completed 20 steps)
>>> FindResult.from_dict(r.to_dict()).to_dict() == r.to_dict()
True
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..results import Result, decode_floats
from .rules import Confidence, assess, suggest_all


def _array(values: Any) -> np.ndarray:
    return np.asarray(values, dtype=float)


@dataclass
class Curve:
    """One sweep as measured: its points, validation points, cost and why it stopped.

    ``problem`` is a low :class:`~lrkit.find.rules.Confidence` the sweep itself found (a
    non-finite first loss; a loss that gave the parameters no gradients), or None.
    """

    lrs: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    raw_losses: list[float] = field(default_factory=list)
    val: list[tuple[int, float, float]] = field(default_factory=list)  # (step, lr, loss)
    updates: int = 0
    stop: str = ""
    problem: Confidence | None = None


@dataclass(eq=False)
class FindResult(Result):
    """What :func:`~lrkit.find.find_lr` measured and suggests.

    - ``lrs``, ``losses`` (smoothed), ``raw_losses``: the curve, cut before its first
      non-finite loss; with several seeds, the median curves on a common lr grid;
    - ``group_lrs``: each param group's lr at every point (groups keep their ratios);
      ``group_names``: each group's ``"name"`` (as :func:`~lrkit.layerwise_groups` sets it),
      else ``"group <i>"``; :meth:`group_lr` gives each group's rate at the suggestion;
    - ``suggestions``: every rule's suggestion (None where a rule finds nothing);
    - ``lr``: the chosen rule's suggestion, or None when ``confidence.ok`` is False (the
      rules' numbers are still in ``suggestions``) or the rule found nothing;
    - ``rule``: the chosen rule's name; ``confidence``: ``ok`` and the ``reason`` if not;
    - ``stop_reason``: why the sweep (each sweep, with seeds) ended; ``steps_run``: the
      optimizer updates applied over all sweeps (the cost, in steps);
    - ``val``: ``{"steps", "lrs", "losses"}`` of the validation signal, or None;
    - ``seed_curves``: each seed's ``{"lrs", "losses", "raw_losses"}`` when ``seeds > 1``,
      and ``band``: the ``(low, high)`` smoothed losses across seeds on ``lrs``.
    """

    lrs: np.ndarray
    losses: np.ndarray
    raw_losses: np.ndarray
    group_lrs: list[list[float]]
    suggestions: dict[str, float | None]
    lr: float | None
    rule: str
    confidence: Confidence
    stop_reason: str
    steps_run: int
    mode: str = "exp"
    val: dict[str, list[float]] | None = None
    seed_curves: list[dict[str, list[float]]] | None = None
    band: tuple[np.ndarray, np.ndarray] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    group_names: list[str] | None = None

    def __post_init__(self) -> None:
        self.lrs, self.losses = _array(self.lrs), _array(self.losses)
        self.raw_losses = _array(self.raw_losses)
        if self.group_names is None:
            self.group_names = [f"group {i}" for i in range(len(self.group_lrs))]
        if self.band is not None:
            self.band = (_array(self.band[0]), _array(self.band[1]))

    @classmethod
    def from_curves(
        cls,
        curves: list[Curve],
        *,
        ratios: list[float],
        rule: str,
        mode: str = "exp",
        extra: dict[str, Any] | None = None,
        names: list[str] | None = None,
    ) -> FindResult:
        """The result of one or more sweeps over the same planned lrs.

        Several curves give the median (smoothed and raw) at the lrs every sweep reached,
        and the band from the lowest to the highest smoothed loss there. Every rule sees the
        (median) curve; the chosen ``rule``'s suggestion becomes ``lr`` when the curve is
        trusted. ``ratios``: each param group's lr over the reported one; ``names``: each
        group's name.
        """
        n = min(len(c.lrs) for c in curves)
        lrs = np.asarray(curves[0].lrs[:n], dtype=float)
        smoothed = np.array([c.losses[:n] for c in curves], dtype=float).reshape(len(curves), n)
        raw = np.array([c.raw_losses[:n] for c in curves], dtype=float).reshape(len(curves), n)
        losses, raw_losses = np.median(smoothed, axis=0), np.median(raw, axis=0)
        suggestions = suggest_all(lrs, losses)
        problem = next((c.problem for c in curves if c.problem is not None), None)
        confidence = problem or assess(lrs, losses, raw_losses)
        several = len(curves) > 1
        reasons = [c.stop for c in curves]
        stop = reasons[0]
        if len(set(reasons)) > 1:  # each seed's, up to its "(" or ":"
            stop = "; ".join(
                f"seed {i}: {re.split(r' [(]|:', r)[0]}" for i, r in enumerate(reasons)
            )
        return cls(
            lrs=lrs,
            losses=losses,
            raw_losses=raw_losses,
            group_lrs=[(lrs * r).tolist() for r in ratios],
            suggestions=suggestions,
            lr=suggestions.get(rule) if confidence.ok else None,
            rule=rule,
            confidence=confidence,
            stop_reason=stop,
            steps_run=sum(c.updates for c in curves),
            mode=mode,
            val=_median_val(curves),
            seed_curves=[
                {"lrs": c.lrs, "losses": c.losses, "raw_losses": c.raw_losses} for c in curves
            ]
            if several
            else None,
            band=(smoothed.min(axis=0), smoothed.max(axis=0)) if several else None,
            extra=dict(extra or {}),
            group_names=None if names is None else list(names),
        )

    # -- reading -----------------------------------------------------------------------------
    @property
    def seeds(self) -> int:
        """How many sweeps the curve comes from."""
        return len(self.seed_curves) if self.seed_curves else 1

    def group_lr(self, lr: float | None = None) -> list[float] | None:
        """Each param group's rate when the swept lr is ``lr`` (default: the suggestion),
        in the order of ``group_names``: ``lr`` times the group's ratio to the largest group
        (the groups keep their ratios). None without an lr, or without a point to read the
        ratios from.

        >>> r = FindResult([1e-3, 1e-2], [1.0, 0.9], [1.0, 0.9], [[5e-4, 5e-3], [1e-3, 1e-2]],
        ...                {}, 0.004, "lrkit", Confidence(True, "ok"), "", 2)
        >>> [round(x, 6) for x in r.group_lr()], r.group_names
        ([0.002, 0.004], ['group 0', 'group 1'])
        """
        lr = self.lr if lr is None else lr
        if lr is None or not len(self.lrs) or not self.group_lrs:
            return None
        first = float(self.lrs[0])
        return [float(lr) * float(g[0]) / first for g in self.group_lrs]

    def summary(self) -> str:
        """One or two readable lines: the chosen lr, its confidence, the curve, the stop."""
        if self.lr is not None:
            head = f"lr {self.lr:.3g} (rule {self.rule!r}), confidence ok"
            if not self.confidence.ok:
                head = f"lr {self.lr:.3g} (rule {self.rule!r}), LOW confidence: {self.confidence}"
        elif not self.confidence.ok:
            head = f"no lr suggested: low confidence, {self.confidence.reason}"
            if self.confidence.detail:
                head += f" ({self.confidence.detail})"
        else:
            head = f"no lr suggested: rule {self.rule!r} found no descent"
        n = len(self.lrs)
        span = f"from {self.lrs[0]:.3g} to {self.lrs[-1]:.3g}" if n else "(empty)"
        seeds = f", median of {self.seeds} seeds" if self.seeds > 1 else ""
        return f"{head}\n{n} points {span}{seeds}; {self.stop_reason}"

    def __repr__(self) -> str:
        chosen = "None" if self.lr is None else f"{self.lr:.3g}"
        conf = "ok" if self.confidence.ok else f"low ({self.confidence.reason})"
        n = len(self.lrs)
        span = f"from {self.lrs[0]:.3g} to {self.lrs[-1]:.3g}" if n else "(empty)"
        return (
            f"FindResult(lr={chosen} by rule {self.rule!r}, confidence {conf};"
            f" {n} points {span}, {self.stop_reason})"
        )

    def __eq__(self, other: object) -> bool:
        """Equal when they save the same data (arrays compared by value, NaN equal to NaN)."""
        if not isinstance(other, FindResult):
            return NotImplemented
        return self.to_json() == other.to_json()

    __hash__ = None  # mutable, like a dataclass with eq

    # -- saving --------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain data (lists, numbers, strings): what :meth:`to_json` writes."""
        return {
            "lrs": self.lrs.tolist(),
            "losses": self.losses.tolist(),
            "raw_losses": self.raw_losses.tolist(),
            "group_lrs": [list(map(float, g)) for g in self.group_lrs],
            "group_names": list(self.group_names),
            "group_lr": self.group_lr(),
            "suggestions": dict(self.suggestions),
            "lr": self.lr,
            "rule": self.rule,
            "confidence": {
                "ok": self.confidence.ok,
                "reason": self.confidence.reason,
                "detail": self.confidence.detail,
            },
            "stop_reason": self.stop_reason,
            "steps_run": self.steps_run,
            "mode": self.mode,
            "val": self.val,
            "seed_curves": self.seed_curves,
            "band": None if self.band is None else [b.tolist() for b in self.band],
            "extra": dict(self.extra),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FindResult:
        """The result :meth:`to_dict` described (``"nan"``/``"inf"`` strings read as floats)."""
        data = decode_floats(dict(data))
        missing = {"lrs", "losses", "raw_losses", "lr", "rule", "confidence"} - set(data)
        if missing:
            raise ValueError(f"not a FindResult: keys {sorted(missing)} are missing")
        conf = data.pop("confidence")
        band = data.pop("band", None)
        return cls(
            confidence=Confidence(bool(conf["ok"]), conf["reason"], conf.get("detail", "")),
            band=None if band is None else (band[0], band[1]),
            **{k: v for k, v in data.items() if k in cls.__dataclass_fields__},
        )

    # -- plotting ------------------------------------------------------------------------------
    def plot(self, path: str | Path | None = None, ax: Any = None) -> Any:
        """Loss against lr (log axis): raw and smoothed, suggestions marked, the seeds' band.

        Draws into ``ax`` when given, else into a new figure (matplotlib's Agg canvas, no
        window); ``path`` saves the figure (a PNG for ``.png``). Returns the Axes.
        """
        if ax is None:
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            from matplotlib.figure import Figure

            fig = Figure(figsize=(7, 4.5))
            FigureCanvasAgg(fig)
            ax = fig.add_subplot()
        fig = ax.figure
        if len(self.lrs):
            ax.plot(self.lrs, self.raw_losses, color="0.7", lw=0.8, label="raw")
            if self.band is not None:
                ax.fill_between(
                    self.lrs, *self.band, color="C0", alpha=0.2, label=f"{self.seeds} seeds"
                )
            ax.plot(self.lrs, self.losses, color="C0", lw=1.8, label="smoothed")
            if self.val:
                ax.plot(
                    self.val["lrs"], self.val["losses"], "o-", color="C2", ms=3, label="validation"
                )
            for i, (name, lr) in enumerate(self.suggestions.items()):
                if lr is not None:
                    y = float(np.interp(np.log10(lr), np.log10(self.lrs), self.losses))
                    marker = "*" if name == self.rule else "o"
                    size = 12 if marker == "*" else 6
                    ax.plot(
                        [lr],
                        [y],
                        marker,
                        color=f"C{(i + 3) % 10}",
                        ms=size,
                        label=f"{name} {lr:.2g}",
                        zorder=5,
                    )
            ax.set_ylim(*self._ylim())
        ax.set_xscale("log")
        ax.set_xlabel("learning rate")
        ax.set_ylabel("loss")
        conf = "" if self.confidence.ok else f" — low confidence: {self.confidence.reason}"
        chosen = "no suggestion" if self.lr is None else f"lr {self.lr:.3g} ({self.rule})"
        ax.set_title(f"range test: {chosen}{conf}", fontsize=10)
        ax.grid(True, which="major", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
        if path is not None:
            fig.savefig(path, dpi=110, bbox_inches="tight")
        return ax

    def _ylim(self) -> tuple[float, float]:
        """From the lowest loss to a little over the highest one before it: the divergent
        end and raw spikes may leave the frame, the descent fills it."""
        lows = [float(np.min(self.losses))]
        if self.band is not None:
            lows.append(float(np.min(self.band[0])))
        if self.val:
            lows.append(float(np.nanmin(self.val["losses"])))
        lo = min(lows)
        hi = float(np.max(self.losses[: int(np.argmin(self.losses)) + 1]))
        pad = 0.25 * max(hi - lo, 1e-6 * max(abs(hi), 1.0))
        return lo - pad, hi + 2 * pad


def _median_val(curves: list[Curve]) -> dict[str, list[float]] | None:
    """The validation points: the median loss over the sweeps at the steps all reached."""
    n = min(len(c.val) for c in curves)
    if n == 0:
        return None
    losses = np.median([[v[2] for v in c.val[:n]] for c in curves], axis=0)
    first = curves[0].val[:n]
    return {"steps": [v[0] for v in first], "lrs": [v[1] for v in first], "losses": losses.tolist()}


__all__ = ["FindResult", "Curve"]
