"""How ``fit(out=...)`` saves a run's history while it trains, on a bounded cadence."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from .. import dist
from ..errors import UserError
from .history import RUNNING, History

SAVE_SECS = 2.0  # fit(out=...) saves the history at least this often while it trains...
SAVE_COST = 0.01  # ...and at validations, but spends at most this share of the time saving
SMALL = 1000  # a history this short costs a save's fixed cost more than its rows'


class Saver:
    """Saves a run's history into ``out`` on a bounded cadence: once ``secs`` have passed since
    the last save, and only when the time since then is ``1 / SAVE_COST`` times what this save
    will take (the last save's time, or its time per row times the rows now, if more), so
    saving, whose cost grows with the history, takes about ``SAVE_COST`` of the run's time
    at most."""

    def __init__(self, out: str | Path, secs: float):
        self.out, self.secs = out, secs
        self.cost = 0.0  # seconds the last save took
        self.per_row = 0.0  # ...per row, over SMALL rows at least (a save's fixed cost)
        self.last = time.monotonic()

    def due(self, now: float, rows: int) -> bool:
        """The time cadence: ``secs`` since the last save, and :meth:`affordable`."""
        return now - self.last >= self.secs and self.affordable(now, rows)

    def affordable(self, now: float, rows: int) -> bool:
        """A save of ``rows`` rows now keeps saving within its share of the time."""
        return now - self.last >= max(self.cost, self.per_row * rows) / SAVE_COST

    def save(self, history: History) -> None:
        started = time.monotonic()
        history.save(self.out)
        self.last = time.monotonic()
        self.cost = self.last - started
        self.per_row = self.cost / max(history.steps, SMALL)

    def save_running(self, history: History, step: int, elapsed: float) -> None:
        """Save ``history`` as it is, marked partial (the lists are shared, not copied)."""
        reason = f"saved while the run was still training, after step {step}: partial"
        self.save(dataclasses.replace(history, status=RUNNING, reason=reason, time=elapsed))


def save_first(saver: Saver | None, history: History, step: int) -> None:
    """``fit``'s first save: the history as it starts; under torchrun rank 0 saves, and a failure there
    ends every rank's run at once."""
    failure = None
    try:
        if saver is not None:
            saver.save_running(history, step, 0.0)
    except OSError as e:  # a path under a file, no permission...: the user's to fix
        failure = UserError(
            f"fit: cannot save the history into out={str(saver.out)!r}:"
            f" {e.strerror or e}; give a folder that can be created and written"
        )
    except Exception as e:
        failure = e
    if dist.agree(failure is not None):
        if failure is not None:
            raise failure
        raise RuntimeError("fit: rank 0 could not save the history into out=; see its error")
