"""``diagnose``: is the learning rate right? Verdicts with the evidence behind them and advice.

A run (a :class:`~lrkit.watch.logs.Signals`, a :class:`~lrkit.train.History`, a
:class:`~lrkit.watch.Watch` or a run folder) gets one or more findings, each a verdict with the
numbers and steps it rests on, advice (a factor for the lr, or a schedule in lrkit's text form)
and a confidence in [0, 1]. The rules use scale-free statistics only, so they hold for any task
and loss scale. The statistics are those of :class:`~lrkit.watch.curves.Curves`.

Rules, most severe first (the primary verdict is the most severe with confidence >= 0.5):

==============  ===========================================================================
``diverged``    no finite loss at all (from step 0: the only finding); a non-finite loss the
                run did not recover from; or ``end > 3 * start``; or
                ``S`` above ``10 * start``
``too_high``    non-finite losses the run went on after (a Guard skipped them); any Guard
                action (``guard/skip``, ``guard/rollback``...); ``S`` rises above
                ``1.5 * start`` in the first half; a loss above ``3 * start`` there; spikes
                at 3% of the steps (3 at least); a validation loss up 25%+ (and by a tenth
                of the first one) from one validation to the next; update ratios above
                1e-2, a verdict only with loss evidence or a validation loss that went up
                at a quarter of the validations (alone: a doubt, confidence 0.45); unless
                it cost nothing in the end (see below)
``overfitting`` validation loss 5%+ above its best at the end and at 2+ validations after it,
                while the training loss fell another 30%+ after the best
``plateau``     100+ steps; the log-loss medians of the last k tenths (k >= 3): the first
                within 10% of the last, spread < 20%, after a 20%+ fall before them and
                falling at under a tenth of that pace; the lr constant there, the loss not
                near 0 (> 1% of ``start``), the validation loss not still falling steadily
``too_low``     the lr was 0 at every step (no factor: set one); the loss moved less than 10%; or it still falls evenly in ``tau`` (5%+ of the
                drop in the last quarter with under half in the first, or 15%+ with under 50%
                total drop); or, at a constant lr in the second half, the log-loss fell over
                the last quarter by 2x+ its step-to-step noise, at half the pace of the
                quarter before or more (loss > 1% of ``start``, no overfitting); or the
                validation loss improved at 80% of 5+ validations with 15%+ of its drop in
                the last quarter; or update ratios below 1e-4
``uncertain``   nothing confident, and something in doubt: under 20 steps, a loss of 0
                from the start, or a rule of thumb with no loss evidence behind it (update
                ratios above 1e-2 alone); says what it saw and what would settle it
``fine``        none of the above, nothing in doubt
==============  ===========================================================================

Under a ``diverged`` or ``too_high`` primary no ``too_low`` is reported: the curve of an lr too
high (and the guard's cuts of it) cannot also show one too low. Jumps and blow-ups are measured
after the start's own steps (a jump within them against the first loss), so no rule reports a
rise to a step of the start itself.

An instability that cost nothing in the end is a note on ``fine``, not ``too_high``
(:func:`~lrkit.watch.validation.recovered`): every sign of it over with a quarter of the
logged steps left, the training loss then under 1% of its start (converged, the near-0 of the
plateau rule), a validation loss logged after it that ended within 5% of its lowest (the
overfitting rule's "worse") or near 0, and no guard action or non-finite loss (a guard that had
to step in is a cost). Without a validation loss, a loss that ends higher, a validation loss
above its best or signs that last into the last quarter, it stays ``too_high``.

Advice fits the schedule read off the logged lr (:class:`~lrkit.watch.curves.LrShape`): a decay
is advised only to a run whose lr did not decay already, a warmup only to one without (else a
longer one); a plateau under an lr already lowered gets a higher peak, more steps or a
reduce-on-plateau factor instead.

>>> from lrkit.watch.logs import Signals
>>> steps = list(range(100))
>>> run = Signals({"train/loss": (steps, [2.0 - 0.001 * s for s in steps])})
>>> d = diagnose(run)
>>> d.verdict
'too_low'
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .advice import decay_tip, factor_text, nice, plateau_advice, warmup_tip
from .curves import SPIKE_Z, TINY, Curves, as_signals
from .diagnosis import VERDICTS, Diagnosis, Finding, never_finite, squash, uncrossed
from .validation import overfitting, recovered, val_jump, val_still_falling, val_unsteady

HEALTHY_RATIO = 1e-3


def diagnose(run: Any) -> Diagnosis:
    """Diagnose a run's lr from its signals; works on a finished run or one in progress.

    ``run``: a :class:`Signals`, a :class:`~lrkit.train.History`, a :class:`~lrkit.watch.Watch`
    or a run folder (``signals.jsonl``/``.csv``, TensorBoard events or ``history.json``).
    ValueError when it holds no training loss.
    """
    curves = Curves(as_signals(run))
    if not curves.finite:  # nothing to read but that
        return Diagnosis((never_finite(curves),), curves.n)
    unreadable = curves.n < MIN_STEPS or curves.base <= 0  # only a divergence is a fact there
    found = [f for rule in (_RULES[:1] if unreadable else _RULES) if (f := rule(curves))]
    notes = [f for f in found if f.verdict == "fine"]  # signs that cost nothing in the end
    found = [f for f in found if f not in notes]
    confident = [f for f in found if f.confidence >= 0.5]
    if not confident:
        unsure = _uncertain(curves, found)
        if unsure is not None:
            return Diagnosis((unsure, *found), curves.n)
        shape = curves.shape
        fine = Finding(
            "fine",
            "; ".join(
                [curves.progress_text(), *([shape.text()] if shape else [])]
                + [n.evidence for n in notes]
            ),
            "; ".join(
                [
                    "keep the lr and its schedule (a warmup and a decay, as this run had)"
                    if shape and shape.decayed and shape.warmup
                    else "keep the lr and its decay"
                    if shape and shape.decayed
                    else f"keep the lr; {decay_tip(shape)}"
                ]
                + [n.advice for n in notes]
            ),
            1.0,
        )
        return Diagnosis((fine,), curves.n)
    order = {v: i for i, v in enumerate(VERDICTS)}
    confident.sort(key=lambda f: order[f.verdict])
    rest = [f for f in found if f not in confident]
    if confident[0].verdict in ("diverged", "too_high"):  # its curve cannot say "too low" too
        confident = [f for f in confident if f.verdict != "too_low"]
        rest = [f for f in rest if f.verdict != "too_low"]
    return Diagnosis(uncrossed((*confident, *rest)), curves.n)


MIN_STEPS = 20  # fewer logged steps are too few to read a curve from


def _uncertain(c: Curves, doubts: list[Finding]) -> Finding | None:
    """``uncertain`` instead of a guess: a run too short to read, a loss of 0 from the start,
    or a doubt (a rule of thumb with no loss evidence behind it) and nothing confident. Says
    what it saw and what would settle it; None when nothing is in doubt (the run is fine)."""
    saw = c.progress_text()
    if c.n < MIN_STEPS:
        why = f"only {c.n} steps logged: too few to tell a rate from noise"
        settle = f"log at least {MIN_STEPS} steps (the whole run, or a longer part of it)"
    elif c.base <= 0:
        why = "the loss was 0 from the first steps: there is no fall to read"
        settle = "diagnose a loss that can still fall (a training loss, not a solved one)"
    elif doubts:
        doubt = max(doubts, key=lambda f: f.confidence)
        why = f"a sign of {doubt.verdict}, not enough alone: {doubt.evidence}"
        settle = _SETTLE.get(doubt.verdict, "a longer run, or a validation loss logged")
    else:
        return None
    return Finding("uncertain", f"{saw}; {why}", f"to settle it: {settle}", 0.5, None)


_SETTLE = {
    "too_high": "log a validation loss every epoch (if it goes up at a quarter of the"
    " validations or more, the lr is too high), or train once at 1/3 of this lr and compare"
    " (if that run does as well or better, lower the lr)",
}


def _diverged(c: Curves) -> Finding | None:
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


def _too_high(c: Curves) -> Finding | None:
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


def _plateau(c: Curves) -> Finding | None:
    m = len(c.loss)
    if m < 100:  # tenths of 10+ steps: fewer are too noisy to call a stall
        return None
    chunks = np.array_split(np.arange(m), 10)
    med = np.array([np.median(np.log(np.maximum(c.loss[k], TINY))) for k in chunks])
    log_start = math.log(max(c.start, TINY))
    for k in range(9, 2, -1):  # the longest flat stretch of the last k tenths
        first = 10 - k
        fall = med[first] - med[-1]
        rate_before = (log_start - med[first]) / first
        lr = c.lr[chunks[first][0] : m]
        if (
            abs(fall) < math.log(1.1)
            and np.ptp(med[first:]) < math.log(1.2)
            and rate_before > math.log(1.2) / first
            and fall / k < 0.1 * rate_before
            and lr.max() <= 1.05 * lr.min()
        ):
            break
    else:
        return None
    if val_still_falling(c):  # the training loss stalls, but validation still improves
        return None
    if math.exp(med[-1]) < 0.01 * c.start:  # settled near zero: converged, not stalled
        return None
    begin = int(chunks[first][0])
    level = float(np.exp(med[-1]))
    return Finding(
        "plateau",
        f"the loss has stayed near {c.v(level):.3g} (within {math.exp(abs(fall)) - 1:.0%}) from step"
        f" {c.step(begin)} to step {c.step(m - 1)} ({k}0% of the run) while the lr stayed at"
        f" {lr[-1]:.3g}; before that it fell from {c.start_text()}",
        plateau_advice(c.shape),
        squash((k - 3) / 3 + 0.3),
        0.5,
    )


def _too_low(c: Curves) -> Finding | None:
    if c.shape is not None and c.shape.peak <= 0:  # no factor of 0 makes a rate
        return Finding(
            "too_low",
            f"{c.shape.text()}: the loss went from {c.start_text()} to {c.v(c.end):.3g} at the"
            " end without an update",
            "set a positive lr (the task's default, or the one lrkit find suggests); check that"
            " the schedule does not multiply it by 0 (`constant(0)`)",
            0.99,
            None,
        )
    drop = c.start - c.end
    rel = 1 - c.rel(c.end, c.start) if c.start > 0 or c.signed else 0.0
    evidence, margins, factor = [], [], 3.0
    if abs(rel) < 0.1 and c.start > 0:
        evidence.append(
            f"the loss barely moved: {c.start_text()}, {c.v(c.end):.3g} at the end"
            f" (step {c.last_step}), {-rel:+.0%}"
        )
        margins.append((0.1 - abs(rel)) * 20)
        factor = 10.0
    elif drop > 0:
        first = (c.start - c.at_tau(0.25)) / drop
        last = (c.at_tau(0.75) - c.end) / drop
        if (last > 0.05 and first < 0.5) or (last > 0.15 and rel < 0.5):
            i75 = min(c.n - 1, int(np.searchsorted(c.tau, 0.75)))
            evidence.append(
                f"loss still falling evenly: from {c.start_text()} to"
                f" {c.v(c.end):.3g} at the end ({rel:.0%} drop), {last:.0%} of it after step"
                f" {c.step(i75)}, only {max(first, 0):.0%} in the first quarter of lr-time"
            )
            margins.append(max(last / 0.05 - 1, (0.5 - first) * 4, 0.3))
            factor = 10.0 if rel < 0.3 else 3.0
    falling = None if evidence else _still_falling(c)
    if falling:
        evidence.append(falling[0])
        margins.append(falling[1])
    val = val_still_falling(c)
    if val:
        evidence.append(val[0])
        margins.append(val[1])
    if c.ratio is not None and c.ratio < 0.1 * HEALTHY_RATIO:
        evidence.append(f"median update/weight ratio {c.ratio:.2g} (healthy about 1e-3)")
        margins.append(math.log10(0.1 * HEALTHY_RATIO / c.ratio) * 2)
        factor = max(factor, min(100.0, nice(HEALTHY_RATIO / c.ratio)))
    if not evidence:
        return None
    keep = (
        f" (its peak; keep the schedule: {c.shape.text()})" if c.shape and c.shape.decayed else ""
    )
    return Finding(
        "too_low",
        "; ".join(evidence),
        f"{factor_text(factor)}{keep}; or use `one_cycle()` with a peak lr {factor:g}x this one"
        + ("; or train for more steps" if falling else ""),
        squash(max(margins)),
        factor,
    )


def _still_falling(c: Curves) -> tuple[str, float] | None:
    """At a constant lr, the log-loss still falling at the end: its fall over the last quarter
    of the steps 2x+ its step-to-step noise and at half the pace of the quarter before or more;
    not near 0 (> 1% of ``start``), the validation loss not turning up. A good lr has done most
    of its work by then and the noise hides what is left; a low one is still descending."""
    late = c.late_fall()
    m = len(c.loss)
    lr = c.lr[m // 2 : m]
    if late is None or lr.max() > 1.05 * lr.min() or c.end < 0.01 * c.start:
        return None
    fall, noise, before = late
    if fall < 2 * noise or fall < 0.5 * before or overfitting(c) is not None:
        return None
    pace = f"at {fall / before:.0%} of the pace of" if before > 0 else "faster than"
    text = (
        f"the loss was still falling when the run ended, at a constant lr {lr[-1]:.3g}: down"
        f" {1 - math.exp(-fall):.0%} over the last quarter (steps {c.step(m - m // 4)} to"
        f" {c.step(m - 1)}), {fall / max(noise, TINY):.1f}x its step-to-step noise, {pace} the"
        " quarter before"
    )
    return text, fall / (2 * max(noise, TINY)) - 1


_RULES = (_diverged, _too_high, overfitting, _plateau, _too_low)

__all__ = ["diagnose", "Diagnosis", "Finding", "VERDICTS"]
