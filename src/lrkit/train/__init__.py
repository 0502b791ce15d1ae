"""Train: one small training loop with events, returning a History."""

from .callbacks import EVENTS, Callback, ProgressBar, State
from .history import History
from .loop import fit
from .misfit import ScheduleFitWarning, schedule_misfit
from .pretrained import digits_transfer  # noqa: F401  (registers the digits-transfer task)
from .snapshot import RNGState, Snapshot

__all__ = [
    "fit",
    "History",
    "ScheduleFitWarning",
    "schedule_misfit",
    "Callback",
    "State",
    "ProgressBar",
    "EVENTS",
    "Snapshot",
    "RNGState",
]
