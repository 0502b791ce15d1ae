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
from typing import Any

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


@dataclass(frozen=True)
class Diagnosis:
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


__all__ = ["Finding", "Diagnosis", "VERDICTS", "squash", "uncrossed"]
