"""Watch: is the learning rate right while training runs? Signals, their logs and sinks.

- :class:`Watch`: per-step lr, momentum, loss, gradient norm, clipping, non-finite counts, and
  every N steps per-layer gradient norms and update-to-weight ratios; for plain loops, as a
  callback of :func:`lrkit.train.fit`, and in Lightning (:class:`LRWatchCallback`);
- sinks: :class:`TensorBoardSink`, :class:`CSVSink`, :class:`JSONLSink`,
  :class:`LightningLoggerSink`;
- :class:`Guard`: skips non-finite or spiking updates and rolls back repeated trouble with a
  lower lr (:class:`GuardExhausted` when its limits are spent); Keras-familiar
  :class:`StopOnNaN` and :class:`ReduceLROnPlateau` for :func:`lrkit.train.fit`;
- :func:`diagnose`: verdicts on the lr (diverged, too high, too low, plateau, overfitting,
  fine) with evidence and advice, as a :class:`Diagnosis`;
- :class:`Signals` and :func:`read_run`: the long ``(step, tag, value)`` format, read back from
  a run folder (see :mod:`lrkit.watch.logs`); :func:`find_runs` lists the runs a folder holds
  (see :mod:`lrkit.watch.runs`).
"""

from .diagnose import Diagnosis, Finding, diagnose
from .guard import Guard, GuardExhausted
from .keras import ReduceLROnPlateau, StopOnNaN
from .logs import Signals
from .runs import Run, find_runs, read_run
from .sinks import CSVSink, JSONLSink, LightningLoggerSink, TensorBoardSink
from .watch import Watch


def __getattr__(name: str):
    if name == "LRWatchCallback":  # imports lightning, so only when asked for
        from .lightning import LRWatchCallback

        return LRWatchCallback
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Watch",
    "Signals",
    "read_run",
    "find_runs",
    "Run",
    "CSVSink",
    "JSONLSink",
    "TensorBoardSink",
    "LightningLoggerSink",
    "LRWatchCallback",
    "Guard",
    "GuardExhausted",
    "StopOnNaN",
    "ReduceLROnPlateau",
    "diagnose",
    "Diagnosis",
    "Finding",
]
