"""The doctor's rules on an lr too high (:func:`lrkit.watch.diagnose`): ``diverged`` (a loss
that blew up, or went non-finite and did not recover) and ``too_high`` (rises, jumps, spikes,
non-finite steps the run went on after, guard actions, a validation jolt, large update ratios),
or a note on ``fine`` when the instability cost nothing in the end.
"""

from __future__ import annotations

import math

import numpy as np

from .advice import factor_text, nice, warmup_tip
from .curves import HEALTHY_RATIO, SPIKE_Z, Curves
from .diagnosis import Finding, squash
from .validation import overfitting, recovered, val_jump, val_unsteady

__all__ = ["diverged", "too_high"]


def diverged(c: Curves) -> Finding | None:
    advice = (
        f"divide the lr by about 10; {warmup_tip(c.shape)}; or run lrkit find to see where"
        " the loss blows up"
    )
    if c.first_bad is not None and not c.recovered:
        value = c.raw[np.flatnonzero(c.steps == c.first_bad)[0]]
        shown = str(float(value)) if not np.isfinite(value) else f"{value:.3g}"
        before = (
            f"it was {c.start_text()}, lowest {c.v(c.loss.min()):.3g}"
            if c.step(0) < c.first_bad
            else f"no finite loss before it; {c.v(c.loss[0]):.3g} at step {c.step(0)}"
        )
        return Finding(
            "diverged",
            f"the loss was {shown} at step {c.first_bad} ({before})",
            advice,
            0.99,
            0.1,
        )
    if c.base <= 0 and not c.signed:  # a loss of 0 at the start: no "times its start"
        return None
    peak = c.peak_after_start()
    top = float(c.smooth[peak])
    # a blow-up the run came back from (or that the guard rolled back) is too_high, not this
    came_back = c.end <= c.base or bool(c.guard.get("rollback"))
    if c.rel(c.end) > 3 or (c.rel(top) > 10 and not came_back):
        worst = max(c.rel(c.end), c.rel(top))
        return Finding(
            "diverged",
            f"the loss blew up from {c.start_text(c.base)} to {c.v(top):.3g} at step"
            f" {c.step(peak)} and ended at {c.v(c.end):.3g} ({c.times(c.end)})",
            advice,
            squash(math.log(worst / 3)),
            0.1,
        )
    return None


def too_high(c: Curves) -> Finding | None:
    evidence, margins, spans = [], [], []  # spans: the first and last step of each sign
    early = c.smooth[: max(c.head + 1, len(c.loss) // 2)]
    peak = c.head + int(np.argmax(early[c.head :])) if len(early) > c.head else 0
    readable = c.start > 0 or c.signed  # a loss of 0 at the start has no "times its start"
    if readable and len(early) > c.head and c.rel(early[peak], c.start) > 1.5:
        evidence.append(
            f"the loss rose from {c.start_text()} to {c.v(early[peak]):.3g} at step {c.step(peak)}"
        )
        margins.append(math.log(c.rel(early[peak], c.start) / 1.5) * 3)
        spans.append(c.span_above(c.smooth, c.start, 1.5))
    jump, of = c.jump()
    if readable and jump and c.rel(c.loss[jump], of) > 3 and not evidence:
        since = c.start_text() if of == c.start else f"{c.v(of):.4g} at step {c.step(0)}"
        evidence.append(
            f"the loss jumped from {since} to {c.v(c.loss[jump]):.3g} at step {c.step(jump)}"
        )
        margins.append(math.log(c.rel(c.loss[jump], of) / 3))
        spans.append(c.span_above(c.loss, of, 3))
    top = c.peak_after_start()
    if (c.base > 0 or c.signed) and c.rel(c.smooth[top]) > 10 and not evidence:  # came back
        evidence.append(
            f"the loss blew up from {c.start_text(c.base)} to {c.v(c.smooth[top]):.3g} at step"
            f" {c.step(top)} and came back to {c.v(c.end):.3g} by the end"
        )
        margins.append(math.log(c.rel(c.smooth[top]) / 10) + 1)
        spans.append(c.span_above(c.smooth, c.base, 10))
    if len(c.spikes) >= max(3, 0.03 * c.n):
        first, last = c.step(int(c.spikes[0])), c.step(int(c.spikes[-1]))
        top = c.v(float(np.max(c.loss[c.spikes])))
        evidence.append(
            f"{len(c.spikes)} loss spikes > {SPIKE_Z:g} sigma above the running median between"
            f" steps {first} and {last} (highest {top:.3g})"
        )
        margins.append(len(c.spikes) / max(3, 0.03 * c.n) - 0.5)
        spans.append((first, last))
    lasting = c.recovered or any(c.guard.values())  # a guard had to step in: it cost something
    if c.recovered:
        evidence.append(
            f"the loss was not finite at {c.bad_count} step(s) from step {c.first_bad} on, and"
            " training went on"
        )
        margins.append(2.0)
    acted = {a: steps for a, steps in c.guard.items() if steps}
    if acted:
        evidence.append(
            "the guard acted: "
            + ", ".join(f"{a} x{len(st)} (from step {st[0]})" for a, st in sorted(acted.items()))
        )
        margins.append(sum(map(len, acted.values())) / 2 - 0.5 + 2 * ("rollback" in acted))
    jumped = val_jump(c)
    if jumped:
        evidence.append(jumped[0])
        margins.append(jumped[1])
        spans.append(jumped[2])
    backed = bool(evidence)
    if c.ratio is not None and c.ratio > 10 * HEALTHY_RATIO:
        evidence.append(f"median update/weight ratio {c.ratio:.2g} (healthy about 1e-3)")
        margins.append(math.log10(c.ratio / (10 * HEALTHY_RATIO)) * 2)
        unsteady = val_unsteady(c) if overfitting(c) is None else None  # not explained by it
        if unsteady:
            evidence.append(unsteady[0])
            spans.append(unsteady[1])
            backed = True
    if not evidence:
        return None
    factor = 1 / 3
    if c.ratio is not None and c.ratio > HEALTHY_RATIO:  # towards 1e-3, by 10 at most
        factor = max(0.1, min(factor, nice(HEALTHY_RATIO / c.ratio)))
    first, last = (min(f for f, _ in spans), max(t for _, t in spans)) if spans else (-1, -1)
    calm = None if lasting else recovered(c, first, last)
    if calm:  # it cost nothing at the end: a note on a fine run, not a verdict
        signs = [e for e in evidence if not e.startswith("median update/weight")] or evidence
        return Finding(
            "fine",
            f"signs of instability ({'; '.join(signs)}) cost nothing in the end: {calm}",
            f"if a smoother start matters, {warmup_tip(c.shape)}",
            1.0,
        )
    return Finding(
        "too_high",
        "; ".join(evidence),
        f"{factor_text(factor)}: the loss is unstable at this lr; {warmup_tip(c.shape)}",
        squash(max(margins)) if backed else 0.45,  # a rule of thumb alone: a doubt, no verdict
        factor,
    )
