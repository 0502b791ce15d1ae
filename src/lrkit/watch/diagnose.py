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

The rules live by idea: :mod:`lrkit.watch.unstable` (``diverged``, ``too_high``),
:mod:`lrkit.watch.slow` (``plateau``, ``too_low``), :mod:`lrkit.watch.validation`
(``overfitting`` and the validation loss's signs); this module combines their findings.

>>> from lrkit.watch.logs import Signals
>>> steps = list(range(100))
>>> run = Signals({"train/loss": (steps, [2.0 - 0.001 * s for s in steps])})
>>> d = diagnose(run)
>>> d.verdict
'too_low'
"""

from __future__ import annotations

from typing import Any

from .advice import decay_tip
from .curves import HEALTHY_RATIO as HEALTHY_RATIO  # re-exported: it was defined here
from .curves import Curves, as_signals
from .diagnosis import VERDICTS, Diagnosis, Finding, never_finite, uncrossed
from .slow import plateau, too_low
from .unstable import diverged, too_high
from .validation import overfitting


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


_RULES = (diverged, too_high, overfitting, plateau, too_low)

__all__ = ["diagnose", "Diagnosis", "Finding", "VERDICTS"]
