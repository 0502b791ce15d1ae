"""lrkit: a learning-rate toolkit for PyTorch — find, schedule, tune and watch the learning rate."""

from ._version import __version__
from .schedules import Schedule

__all__ = ["__version__", "Schedule"]
