"""The statistics the doctor (:func:`lrkit.watch.diagnose`) reads off a run's signals.

- ``start`` is the loss at the start: the median over the first steps (the first 2%, 3 at
  least and ``HEAD_MAX`` at most, so that on a long run it is still the untrained model's loss,
  not the median of an epoch of training), or over the first 3 when that is lower (a loss that
  climbs within them must not raise its own start); evidence names the steps and quotes the
  first one. No rule reports a rise *to* a step inside that window. ``base``, what a
  blow-up is measured against, is the median of the first 3, the guard's start
  (:class:`~lrkit.watch.Guard`), so that the doctor calls ``diverged`` only where the guard
  would have acted; ``end`` is the median of the last tenth; a rolling
  median ``S`` smooths the loss; ``spikes`` are steps whose loss sits more than 4 robust
  standard deviations (1.4826 MAD of ``loss - S``) *and* a quarter of ``start`` above ``S``;
- progress is measured against *lr-time* ``tau`` (the cumulated lr, 0 to 1 over the run): an lr
  too low makes the loss fall slowly and evenly in ``tau``; a good one does most of its drop
  early and then levels off;
- ``update_ratio`` (when the run logged it) is the median over layers of
  ``||w_after - w_before|| / ||w_before||``; about 1e-3 is the classic healthy value;
- ``shape`` is the schedule read off the logged lr (:class:`LrShape`: constant, warmed up,
  decayed), so that advice fits the schedule the run had;
- ``late_fall`` is how fast the log-loss still fell in the last quarter of the run, against its
  step-to-step noise and the pace of the quarter before;
- a loss that goes below 0 (a Gaussian negative log-likelihood) has no "times its start":
  :meth:`Curves.rel` measures it by its difference from the start against its ``scale`` (the
  size of the start, at least a tenth of the loss's range), so that ``rel(x, start) > 3`` reads
  "3x its start" for a positive loss and "up by 2 scales" for a signed one; evidence quotes the
  logged values (the rules' log-scale statistics run on the loss shifted above 0);
- a loss above ``HUGE`` (a sixteenth of the largest float, where a sum of two overflows) counts
  as not finite, so that no statistic overflows; a run with no finite loss has ``finite`` False;
- the lr a guard cut at a rollback (``guard/rollback``) is not the schedule: ``shape`` is read
  off the lr logged before the first rollback.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..checks import shown
from .logs import Signals, read_run

SPIKE_Z = 4.0  # robust standard deviations above the running median that make a spike
TINY = 1e-12  # the floor of a loss before its log
HEAD_MAX = 5  # the most first steps whose median is the start
HUGE = sys.float_info.max / 16  # a loss beyond this overflows the doctor's sums: not finite
HEALTHY_RATIO = 1e-3  # the classic healthy update/weight ratio


def as_signals(run: Any) -> Signals:
    """Signals from Signals, a History, a Watch or a run folder (see :func:`diagnose`)."""
    if isinstance(run, Signals):
        return run
    if isinstance(run, str | Path):
        return read_run(run)
    if hasattr(run, "lr_groups") and hasattr(run, "loss"):  # a History
        if not run.loss:
            raise ValueError("the history has no steps: nothing to diagnose")
        return Signals.from_history(run)
    history = getattr(run, "history", None)  # a Watch
    if isinstance(history, Signals):
        return history
    raise TypeError(
        f"diagnose takes Signals, a History, a Watch or a run folder, got {type(run).__name__}"
    )


def rolling_median(x: np.ndarray, window: int) -> np.ndarray:
    """The median of each value's ``window`` neighbours (edges padded with the end values)."""
    half = window // 2
    padded = np.pad(x, half, mode="edge")
    view = np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1)
    return np.median(view, axis=1)


@dataclass(frozen=True)
class LrShape:
    """The shape of a run's lr schedule, read off its logged values.

    ``warmup``: the step where the lr first reached its peak when it started below half of it
    (else None); ``decayed``: the lr ended at half its peak or lower; ``constant``: it never
    moved by more than 5%.

    >>> LrShape(peak=0.1, first=0.0, last=0.001, warmup=11).text()
    'the lr warmed up to 0.1 by step 11 and decayed to 0.001 (1% of its peak) by the end'
    """

    peak: float
    first: float
    last: float
    warmup: int | None = None
    constant: bool = False

    @property
    def decayed(self) -> bool:
        return self.last <= 0.5 * self.peak

    def text(self) -> str:
        if self.peak <= 0:
            return "the lr was 0 at every logged step (nothing was trained)"
        if self.constant:
            return f"the lr was constant at {self.peak:.3g}"
        rise = f"warmed up to {self.peak:.3g} by step {self.warmup}" if self.warmup else ""
        if self.decayed:
            fall = f"decayed to {self.last:.2g} ({100 * self.last / self.peak:.2g}% of its peak) by the end"
            return "the lr " + (f"{rise} and {fall}" if rise else f"{fall} from {self.peak:.3g}")
        return f"the lr {rise or f'peaked at {self.peak:.3g}'} and ended at {self.last:.3g}"


def lr_shape(steps: np.ndarray, lr: np.ndarray) -> LrShape:
    """The :class:`LrShape` of lrs ``lr`` logged at ``steps``."""
    peak, first, last = float(np.max(lr)), float(lr[0]), float(lr[-1])
    at_peak = int(np.argmax(lr >= 0.99 * peak))
    warmup = int(steps[at_peak]) if first < 0.5 * peak and at_peak > 0 else None
    return LrShape(peak, first, last, warmup, bool(np.max(lr) <= 1.05 * np.min(lr)))


class Curves:
    """The loss, lr, validation and ratios of a run, aligned, with the statistics rules use."""

    def __init__(self, s: Signals):
        if "train/loss" not in s or len(s.get("train/loss")[0]) == 0:
            tags = [shown(t) for t in s.tags()[:20]] + (["..."] if len(s.tags()) > 20 else [])
            raise ValueError(
                f"no training loss to diagnose (tag 'train/loss'); tags: {', '.join(tags)}"
            )
        self.steps, loss = s.get("train/loss")
        self.raw = loss
        self.n = len(loss)
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(loss) | (np.abs(loss) > HUGE)
        self.finite = not bad.all()
        self.first_bad = int(self.steps[bad.argmax()]) if bad.any() else None
        self.bad_count = int(bad.sum())
        self.recovered = bool(bad.any() and not bad[-1])  # e.g. a Guard skipped them
        self.guard = {
            t.split("/", 1)[1]: [int(x) for x in s.get(t)[0]]
            for t in s.tags()
            if t.startswith("guard/") and t not in ("guard/snapshot",)
        }
        lr = s.lr(0)
        self.lr = (
            np.ones(self.n) if lr is None else np.interp(self.steps, lr[0], lr[1]).astype(float)
        )
        if lr is not None and self.guard.get("rollback"):  # the guard's cuts are no schedule
            before = lr[0] < self.guard["rollback"][0]
            lr = (lr[0][before], lr[1][before]) if before.any() else (lr[0][:1], lr[1][:1])
        self.shape = None if lr is None or len(lr[1]) == 0 else lr_shape(*lr)
        self.val = s.get("val/loss") if "val/loss" in s else None
        ratios = [s.get(t) for t in s.tags() if t.startswith("train/update_ratio/")]
        moved = np.concatenate([v for _, v in ratios]) if ratios else np.array([])
        moved = moved[np.isfinite(moved) & (moved > 0)]  # frozen layers do not count
        self.ratio = float(np.median(moved)) if len(moved) else None
        good = loss[~bad] if self.finite else np.zeros(1)  # no finite loss: only diverged reads it
        self.good_steps = self.steps[~bad] if self.finite else self.steps[:1]
        self.signed = bool(good.min() < 0)
        self.offset = 0.0  # what the rules' loss is above the logged one
        if self.signed:  # log-scale statistics need a loss > 0: shift it 1% of its range above 0
            self.offset = 0.01 * (float(np.ptp(good)) + 1e-12) - float(good.min())
            good = good + self.offset
        self.loss = good
        m = len(good)
        self.head = min(
            m, max(3, min(m // 50, HEAD_MAX))
        )  # the first steps, whose median is the start
        self.base = float(np.median(good[:3]))
        self.start = min(float(np.median(good[: self.head])), self.base)
        self._start_k = 3 if self.start == self.base else self.head  # the steps it is of
        logged = good - self.offset
        self.scale = max(abs(float(np.median(logged[:3]))), 0.1 * float(np.ptp(logged)), TINY)
        self.end = float(np.median(good[-max(3, m // 10) :]))
        self.smooth = rolling_median(good, max(5, m // 20))
        tau = np.cumsum(self.lr[:m])
        self.tau = tau / tau[-1] if tau[-1] > 0 else np.linspace(0, 1, m)
        resid = good - self.smooth
        sigma = 1.4826 * float(np.median(np.abs(resid - np.median(resid)))) + 1e-12
        late = np.arange(m) >= m // 10
        self.spikes = np.flatnonzero(late & (resid > SPIKE_Z * sigma) & (resid > 0.25 * self.start))

    def rel(self, x: float, of: float | None = None) -> float:
        """How many times ``of`` (``base`` by default) ``x`` is: ``x / of`` for a positive loss;
        for a loss that goes below 0, ``1 + (x - of) / scale`` (a difference against the
        loss's scale, so the same thresholds read "up by k - 1 scales")."""
        of = self.base if of is None else of
        if self.signed:
            return 1 + (x - of) / self.scale
        return x / of if of > 0 else math.inf

    def v(self, x: float) -> float:
        """A value of the rules' loss as it was logged (a signed loss is shifted for them)."""
        return x - self.offset

    def start_text(self, value: float | None = None) -> str:
        """``2.31 at step 0``, or ``29 (the median of steps 0-3; 2.305 at step 0)``: where
        ``value`` (``start`` by default) comes from, exactly, as logged."""
        value = self.start if value is None else value
        k = self._start_k if value == self.start else 3
        shown = self.v(value)
        if k <= 1 or len(self.loss) <= 1:
            return f"{shown:.3g} at step {self.step(0)}"
        span = f"the median of steps {self.step(0)}-{self.step(min(k, len(self.loss)) - 1)}"
        if self.step(0) != int(self.steps[0]):
            return f"{shown:.3g} ({span} with a finite loss)"
        return f"{shown:.3g} ({span}; {self.raw[0]:.4g} at step {self.step(0)})"

    def times(self, value: float, of: float | None = None) -> str:
        """``value`` against ``of`` (``base``): ``12.9x its start``; for a signed loss ``up by
        2.2, 0.98x its scale 2.25``; no division by a zero loss."""
        of = self.base if of is None else of
        if self.signed:
            return f"{value - of:+.3g} from its start, {(value - of) / self.scale:.2g}x its scale {self.scale:.3g}"
        return f"{value / of:.3g}x its start" if of > 0 else "up from 0"

    def step(self, i: int) -> int:
        """The step of the ``i``-th finite loss (the rules index the finite losses)."""
        return int(self.good_steps[min(i, len(self.good_steps) - 1)])

    @property
    def last_step(self) -> int:
        return int(self.steps[-1])

    def at_tau(self, q: float) -> float:
        return float(self.smooth[min(len(self.smooth) - 1, np.searchsorted(self.tau, q))])

    def jump(self) -> tuple[int, float]:
        """The highest loss of the first half against what it jumped from: ``(index, from)``;
        within the start's own steps a loss is measured against the first one (a start cannot be
        the median of the jump itself), after them against ``start``. Index 0: no loss to jump to."""
        half = max(2, len(self.loss) // 2)
        best, of, worst = 0, self.start, -math.inf
        for lo, hi, ref in ((1, self.head, float(self.loss[0])), (self.head, half, self.start)):
            part = self.loss[lo:hi]
            if len(part):
                i = lo + int(np.argmax(part))
                if self.rel(float(self.loss[i]), ref) > worst:
                    best, of, worst = i, ref, self.rel(float(self.loss[i]), ref)
        return best, of

    def peak_after_start(self) -> int:
        """The index of the highest rolling median after the start's own steps (0 if none)."""
        after = self.smooth[self.head :]
        return self.head + int(np.argmax(after)) if len(after) else 0

    def span_above(self, x: np.ndarray, of: float, times: float) -> tuple[int, int]:
        """The first and last step at which ``x`` (the loss or its rolling median) was above
        ``times`` times ``of`` (:meth:`rel`)."""
        above = np.flatnonzero(np.array([self.rel(v, of) for v in x]) > times)
        return self.step(int(above[0])), self.step(int(above[-1]))

    def late_fall(self) -> tuple[float, float, float] | None:
        """``(fall, noise, before)``: how much the log-loss fell over the last quarter of the
        steps (a straight line's fit), the noise about that line (1.4826 MAD) and the fall over
        the quarter before, alike; None under 40 steps."""
        q = len(self.loss) // 4
        if q < 10:
            return None
        log = np.log(np.maximum(self.loss, TINY))
        x = np.arange(q)
        slope, icpt = np.polyfit(x, log[-q:], 1)
        resid = log[-q:] - (slope * x + icpt)
        noise = 1.4826 * float(np.median(np.abs(resid - np.median(resid))))
        before = -float(np.polyfit(x, log[-2 * q : -q], 1)[0]) * q
        return -float(slope) * q, noise, before

    def progress_text(self) -> str:
        i = int(np.argmin(self.smooth))
        return (
            f"loss fell from {self.start_text()} to {self.v(self.end):.3g} at the end"
            f" (step {self.last_step}; lowest {self.v(self.smooth[i]):.3g} at step"
            f" {self.step(i)})" + self._ratio_text()
        )

    def _ratio_text(self) -> str:
        return "" if self.ratio is None else f"; median update/weight ratio {self.ratio:.2g}"


__all__ = [
    "Curves",
    "LrShape",
    "as_signals",
    "lr_shape",
    "rolling_median",
    "HEAD_MAX",
    "HUGE",
    "SPIKE_Z",
    "TINY",
]
