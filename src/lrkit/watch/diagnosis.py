"""The doctor's result: a :class:`Diagnosis` of :class:`Finding` s, plain data that prints itself.

>>> d = Diagnosis((Finding("too_low", "loss fell 3% in 200 steps", "multiply the lr by 10", 0.8),), 200)
>>> print(d)
verdict: too_low (confidence 0.80, 200 steps)
  evidence: loss fell 3% in 200 steps
  advice: multiply the lr by 10
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from ..checks import number, whole
from ..results import Result
from .curves import HUGE

if TYPE_CHECKING:
    from .curves import Curves

# by severity; ``uncertain``: the evidence does not settle a verdict (what would, is in its advice)
VERDICTS = ("diverged", "too_high", "overfitting", "plateau", "too_low", "fine", "uncertain")


@dataclass(frozen=True)
class Finding:
    """One verdict: ``evidence`` (numbers and steps), ``advice`` and ``confidence`` in [0, 1].

    ``lr_factor`` is the factor the advice multiplies the lr by (None when it advises a
    schedule or something else instead).
    """

    verdict: str
    evidence: str
    advice: str
    confidence: float
    lr_factor: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "evidence": self.evidence,
            "advice": self.advice,
            "confidence": round(self.confidence, 3),
            "lr_factor": self.lr_factor,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Finding:
        """The finding :meth:`to_dict` described; ValueError naming what is wrong."""
        verdict = data.get("verdict")
        if verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {', '.join(VERDICTS)}, got {verdict!r}")
        for key in ("evidence", "advice"):
            if not isinstance(data.get(key), str):
                raise ValueError(f"{key} must be a string, got {data.get(key)!r}")
        factor = data.get("lr_factor")
        return cls(
            verdict,
            data["evidence"],
            data["advice"],
            number(data.get("confidence"), "confidence", low=0, high=1),
            None if factor is None else number(factor, "lr_factor", low=0, low_open=True),
        )


@dataclass(frozen=True)
class Diagnosis(Result):
    """Every finding, the primary (most severe confident one) first; ``fine`` when none and
    nothing is in doubt, ``uncertain`` when the evidence does not settle it."""

    findings: tuple[Finding, ...]
    steps: int

    @property
    def primary(self) -> Finding:
        return self.findings[0]

    @property
    def verdict(self) -> str:
        return self.primary.verdict

    @property
    def confidence(self) -> float:
        return self.primary.confidence

    def summary(self) -> str:
        """Readable lines: each finding's verdict, confidence, evidence and advice."""
        lines = [f"verdict: {self.verdict} (confidence {self.confidence:.2f}, {self.steps} steps)"]
        for i, f in enumerate(self.findings):
            if i:
                lines.append(f"also: {f.verdict} (confidence {f.confidence:.2f})")
            lines.append(f"  evidence: {f.evidence}")
            lines.append(f"  advice: {f.advice}")
        return "\n".join(lines)

    __str__ = summary

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "confidence": round(self.confidence, 3),
            "steps": self.steps,
            "findings": [f.to_dict() for f in self.findings],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Diagnosis:
        """The diagnosis :meth:`to_dict` described (``verdict`` and ``confidence`` are the
        first finding's); ValueError naming what is wrong."""
        findings = data.get("findings")
        if not isinstance(findings, list) or not findings:
            raise ValueError(f"findings must be a non-empty list, got {findings!r}")
        parsed = []
        for i, f in enumerate(findings):
            if not isinstance(f, dict):
                raise ValueError(f"findings[{i}] must be an object, got {f!r}")
            try:
                parsed.append(Finding.from_dict(f))
            except ValueError as e:
                raise ValueError(f"findings[{i}]: {e}") from None
        return cls(tuple(parsed), whole(data.get("steps"), "steps"))


def squash(x: float) -> float:
    """Map a margin >= 0 (how far past its threshold a statistic is) to a confidence 0.5..0.99."""
    return round(min(0.99, 0.5 + 0.5 * (1 - math.exp(-max(x, 0.0)))), 3)


# -- rules ----------------------------------------------------------------------------------


def uncrossed(findings: tuple[Finding, ...]) -> tuple[Finding, ...]:
    """A later finding whose lr factor points the other way from the primary's (raise vs
    lower) says so in its advice: the primary, more severe, is the one to act on first."""
    lead = findings[0].lr_factor
    if lead is None or lead == 1:
        return findings
    out = [findings[0]]
    for f in findings[1:]:
        if f.lr_factor is not None and (f.lr_factor - 1) * (lead - 1) < 0:
            note = f"{findings[0].verdict} above points the other way: act on it first, then look again"
            f = replace(f, advice=f"{f.advice} ({note})")
        out.append(f)
    return tuple(out)


def never_finite(c: Curves) -> Finding:
    """``diverged`` from step 0: no logged loss was finite (nor under ``HUGE``)."""
    values = sorted({str(float(x)) if not np.isfinite(x) else f"{x:.3g}" for x in c.raw})
    return Finding(
        "diverged",
        f"no finite loss at any of the {c.n} logged steps (from step {int(c.steps[0])} to"
        f" {c.last_step}: {', '.join(values[:3])}{', ...' if len(values) > 3 else ''}"
        f"{'; values above ' + format(HUGE, '.3g') + ' count as overflowed' if np.any(np.isfinite(c.raw)) else ''}):"
        " it diverged from the first step, or the loss is computed wrong (check it on one batch"
        " before training)",
        "check the loss on one batch at the initial weights; if it is finite there, divide the"
        " lr by about 10 and run lrkit find to see where the loss blows up",
        0.99,
        0.1,
    )


__all__ = ["Finding", "Diagnosis", "VERDICTS", "never_finite", "squash", "uncrossed"]
