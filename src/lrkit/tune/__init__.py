"""tune: measured answers to "which lr and schedule are best on my model?" (built on Optuna).

- :class:`Config`: one point of a search space (lr, schedule, optional optimizer...);
- :class:`Space`: the search space.
"""

from .config import Config
from .space import Space, as_space

__all__ = ["Config", "Space", "as_space"]
