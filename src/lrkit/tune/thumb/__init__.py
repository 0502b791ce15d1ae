"""Rules of thumb about the lr, measured on the user's own model.

- :func:`batch_size_study`: the best lr at each batch size and the fit ``lr ∝ batch^k``: does
  the linear or the square-root rule hold, and up to where (:mod:`.batch_size`);
- :func:`clip_study`: the largest lr that trains with and without gradient clipping
  (:mod:`.clip`).
"""

from .batch_size import BatchSizeStudy, batch_size_study
from .clip import clip_study
from .clip_result import ClipStudy
from .powerlaw import PowerLaw, fit_power_law

__all__ = [
    "batch_size_study",
    "BatchSizeStudy",
    "clip_study",
    "ClipStudy",
    "PowerLaw",
    "fit_power_law",
]
