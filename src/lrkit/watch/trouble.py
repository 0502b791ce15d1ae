"""The guard's rule: is this batch trouble? (:class:`~lrkit.watch.Guard` acts on the answer.)

A batch is *trouble* when, in this order:

- its loss or global gradient norm is not finite;
- its loss is far above the run's **start** (the median of its first three good losses, taken
  as they come, so the rule holds from the third batch on): 100x the start for the batch alone
  (``loss 1e+03 is 435x its start``), or 3x the start for the median of it and the four batches
  checked before it (``loss level``: a climb, whatever its pace). These are the doctor's own
  thresholds for ``diverged`` (:func:`~lrkit.watch.diagnose`: a loss that ends at 3x its start),
  so a run the guard let through is not one the doctor calls diverged;
- a *spike*: ``z = (x - mean) / std > z`` over the last ``window`` good values (of the log of
  the loss, as spikes are multiplicative and a mini-batch loss is skewed, or of the loss itself
  when it is not always positive; and of the log of the gradient norm; at least 10 of them; the
  std is floored at 0.05 in logs, or 1% of the mean loss, so a flat curve with a small bump is
  not a spike);
- a *drift*: the same z of the loss against the window's mean and std when the last snapshot
  was taken (or when the window first filled): a loss that climbs step by step, each step no
  spike against a window that climbs with it.

The start rules need a positive start (a loss that can be 0 or negative has no "times its
start") and compare ratios, so a loss that starts at 1e-9 and moves to 2e-9 is 2x its start,
not trouble.

>>> t = Trouble(z=6.0, window=50)
>>> [t.judge(x, 1.0) for x in (2.3, 2.2, 2.1)]
[None, None, None]
>>> t.judge(500.0, 1.0)
'loss 500 is 227x its start (2.2)'
"""

from __future__ import annotations

import math
import statistics
from collections import deque

MIN_VALUES = 10  # good values needed before a spike can be called
LOSS_STD_FLOOR = 0.01  # of |mean loss|, for losses that are not all positive
LOG_STD_FLOOR = 0.05  # of the log loss and the log gradient norm
START_VALUES = 3  # good losses whose median is the start
LEVEL_BATCHES = 5  # batches whose median loss is the level
LEVEL_TIMES = 3.0  # the level above this many times the start is trouble (the doctor's 3x)
BATCH_TIMES = 100.0  # one batch above this many times the start is trouble


class Trouble:
    """The statistics of the losses and gradient norms seen so far, and the rule over them."""

    def __init__(self, z: float, window: int):
        self.z, self.window = z, window
        self.losses: deque[float] = deque(maxlen=window)  # good losses
        self.log_norms: deque[float] = deque(maxlen=window)
        self.recent: deque[float] = deque(maxlen=LEVEL_BATCHES - 1)  # checked, good or not
        self.start_values: list[float] = []
        # (in logs?, mean, std, step) of the losses when the last snapshot was taken
        self.reference: tuple[bool, float, float, int] | None = None
        # whether the last trouble says the model itself is bad (a climb), not one batch
        self.lasting = False

    @property
    def start(self) -> float | None:
        """The median of the first good losses (None before the first one)."""
        return statistics.median(self.start_values) if self.start_values else None

    def judge(self, loss: float, norm: float) -> str | None:
        """Why this batch is trouble (``"loss nan"``, ``"grad norm spike (z=9.3)"``), or None."""
        self.lasting = False
        if not math.isfinite(loss):
            return f"loss {loss}"
        if not math.isfinite(norm):
            return f"grad norm {norm}"
        reason = self._above_start(loss)
        self.recent.append(loss)
        self.lasting = reason is not None
        return reason or self._spike(loss, norm)

    def good(self, loss: float, norm: float, step: int) -> None:
        """Count a batch judged good (its update is applied)."""
        self.losses.append(loss)
        if len(self.start_values) < START_VALUES:
            self.start_values.append(loss)
        if self.reference is None and len(self.losses) >= MIN_VALUES:
            self.reference = self.level(step)
        if norm > 0:
            self.log_norms.append(math.log(norm))

    def rolled_back(self) -> None:
        """The model is back at a snapshot: the recent losses no longer describe it."""
        self.recent.clear()

    def _above_start(self, loss: float) -> str | None:
        start = self.start
        if start is None or start <= 0:
            return None
        if loss > BATCH_TIMES * start:
            return f"loss {loss:.3g} is {loss / start:.3g}x its start ({start:.3g})"
        level = statistics.median([*self.recent, loss])
        if len(self.recent) >= 2 and level > LEVEL_TIMES * start:
            return (
                f"loss level {level:.3g} (median of the last {len(self.recent) + 1} batches) is"
                f" {level / start:.3g}x its start ({start:.3g})"
            )
        return None

    def _spike(self, loss: float, norm: float) -> str | None:
        in_logs, x, values = self._scale(loss)
        z = (
            zscore(x, values, floor=LOG_STD_FLOOR)
            if in_logs
            else zscore(x, values, relative_floor=LOSS_STD_FLOOR)
        )
        if z is not None and z > self.z:
            return f"loss spike (z={z:.1f})"
        ref = self.reference
        if ref is not None and ref[0] == in_logs and (x - ref[1]) / ref[2] > self.z:
            self.lasting = True
            return f"loss drift (z={(x - ref[1]) / ref[2]:.1f} above its level at step {ref[3]})"
        if norm > 0:
            z = zscore(math.log(norm), self.log_norms, floor=LOG_STD_FLOOR)
            if z is not None and z > self.z:
                return f"grad norm spike (z={z:.1f})"
        return None

    def _scale(self, loss: float) -> tuple[bool, float, deque[float]]:
        """``(in_logs, x, values)``: the loss and the window in logs when all are positive
        (spikes are multiplicative and a mini-batch loss is skewed), else as they are."""
        if loss > 0 and all(v > 0 for v in self.losses):
            return True, math.log(loss), deque(map(math.log, self.losses))
        return False, loss, self.losses

    def level(self, step: int) -> tuple[bool, float, float, int] | None:
        """The window's mean and (floored) std on the loss's scale, and the step: the level a
        slow climb is measured against (a spike is judged against the moving window)."""
        if len(self.losses) < MIN_VALUES:
            return None
        in_logs, _, values = self._scale(self.losses[-1])
        mean = statistics.fmean(values)
        floor = LOG_STD_FLOOR if in_logs else max(LOSS_STD_FLOOR * abs(mean), 1e-12)
        return in_logs, mean, max(pstdev(values, mean), floor), step


def zscore(
    x: float, values: deque[float], floor: float = 0.0, relative_floor: float = 0.0
) -> float | None:
    """How many standard deviations ``x`` lies above the mean of ``values``; the std is at
    least ``floor`` and ``relative_floor * |mean|``. None with fewer than MIN_VALUES values."""
    if len(values) < MIN_VALUES:
        return None
    mean = statistics.fmean(values)
    std = max(pstdev(values, mean), floor, relative_floor * abs(mean), 1e-12)
    return (x - mean) / std


def pstdev(values: deque[float], mean: float) -> float:
    """The population standard deviation of ``values`` about ``mean``: a correctly rounded
    sum (``math.fsum``), within an ulp or two of ``statistics.pstdev`` at an eighth of its cost
    (the guard takes two a batch)."""
    return math.sqrt(math.fsum((v - mean) ** 2 for v in values) / len(values))


__all__ = ["Trouble", "zscore"]
