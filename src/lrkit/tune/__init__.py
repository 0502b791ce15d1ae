"""tune: measured answers to "which lr and schedule are best on my model?" (built on Optuna).

- :func:`tune`: the search (a range test and ``pick_lr`` first, then Optuna's sampler and
  pruner over trials that are calls of :func:`~lrkit.train.fit`), see :mod:`lrkit.tune.tune`;
- :class:`Config`: one point of a search space (lr, schedule, optional optimizer...);
- :class:`Space`: the search space;
- :class:`TuneResult`: what a tune found (imported, with Optuna, on first use).

Each trial's ``user_attrs`` (JSON-able): ``config`` (``Config.to_dict()``), ``status``
(``"completed"``, ``"pruned"``, ``"diverged"``, ``"failed"``), ``reason``, ``metric_mean``,
``metric_std`` and ``splits`` (one ``{"fold", "seed", "metric", "val_loss", "status",
"steps"}`` per split), ``steps`` (all splits), and the doctor's ``verdict``,
``verdict_confidence`` and ``advice`` on the first split. A diverged trial is state FAIL.
The study's ``user_attrs["lrkit"]``: ``version``, ``task``, ``metric``, ``higher_is_better``,
``space`` (text), ``cv``, ``seeds``, ``epochs``, ``steps_per_run``, ``sampler``, ``pruner``,
``lr_window``, ``warm_start`` (``{"lr", "how"}`` or None), ``budget``, ``find_steps``,
``pick_steps``.
"""

import sys
import types

from .config import Config
from .space import Space, as_space
from .tune import tune

__all__ = ["Config", "Space", "as_space", "tune", "TuneResult"]


class _CallableModule(types.ModuleType):
    """``lrkit.tune`` is this package *and* the function: ``lrkit.tune(task, ...)`` calls
    :func:`tune` (importing a submodule makes the package an attribute of ``lrkit``, so the
    package itself must be callable)."""

    def __call__(self, *args, **kwargs):
        return tune(*args, **kwargs)

    def __getattr__(self, name: str):
        if name == "TuneResult":  # it imports Optuna: only when asked for
            from .result import TuneResult

            return TuneResult
        raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")


sys.modules[__name__].__class__ = _CallableModule
