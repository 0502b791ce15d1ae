"""lrkit: a learning-rate toolkit for PyTorch — find, schedule, tune and watch the learning rate.

The public API:

- ``lrkit.schedules``: every schedule as a closed form (``warmup``, ``cosine``, ``one_cycle``...),
  their algebra (``>>``, ``*``, ``clip``, ``repeat``...), the text form (:func:`parse`,
  :func:`load_schedule`) and the :class:`Driver` that writes them into a torch optimizer;
- ``lrkit.tasks``: :class:`Task`, the bundled example tasks and :func:`get_task`;
- ``lrkit.train``: :func:`fit`, one training loop with events, returning a :class:`History`;
- ``lrkit.find``: :func:`pick_lr`, the peak lr for a schedule within a budget of runs;
- ``lrkit.watch``: :class:`Watch`, the signals of a running training, their sinks and
  :func:`read_run`; :func:`diagnose`, verdicts on the lr with evidence and advice;
  :class:`Guard`, which skips bad updates and rolls back a divergence;
- ``lrkit.tune``: :func:`tune`, a measured search over rates and schedules (on Optuna,
  imported only when first used), its :class:`Space`, :class:`Config` and :class:`TuneResult`;
  :func:`compare`, entries side by side at their own rates over seeds, and its
  :class:`CompareResult` (imported on first use too).
- rules of thumb: :func:`scale_lr` (the linear and square-root batch-size rules, with their
  sources), :func:`batch_size_study` and :func:`clip_study` (which rule holds, and whether
  clipping allows higher rates, measured; from ``lrkit.tune.thumb``, imported on first use).
"""

from ._version import __version__
from .errors import UserError
from .find import Pick, pick_lr
from .schedules import Driver, Schedule, ScheduleSyntaxError, load_schedule, parse
from .schedules.scaling import ScaledLr, scale_lr
from .tasks import Metric, Task, get_task, layerwise_groups, list_tasks, optimizer_info
from .train import History, ScheduleFitWarning, fit
from .watch import Diagnosis, Guard, GuardExhausted, Signals, Watch, diagnose, read_run

__all__ = [
    "__version__",
    "UserError",
    "Schedule",
    "Driver",
    "parse",
    "load_schedule",
    "ScheduleSyntaxError",
    "Task",
    "Metric",
    "get_task",
    "list_tasks",
    "layerwise_groups",
    "fit",
    "History",
    "ScheduleFitWarning",
    "pick_lr",
    "Pick",
    "Watch",
    "Signals",
    "read_run",
    "diagnose",
    "Diagnosis",
    "Guard",
    "GuardExhausted",
    "tune",
    "Space",
    "Config",
    "TuneResult",
    "compare",
    "CompareResult",
    "optimizer_info",
    "scale_lr",
    "ScaledLr",
    "batch_size_study",
    "BatchSizeStudy",
    "clip_study",
    "ClipStudy",
]

# names imported on first use, so ``import lrkit`` stays light (Optuna only when needed)
_LAZY = {
    **dict.fromkeys(("tune", "Space", "Config", "TuneResult"), ".tune"),
    **dict.fromkeys(("compare", "CompareResult"), ".tune.compare"),
    **dict.fromkeys(
        ("batch_size_study", "BatchSizeStudy", "clip_study", "ClipStudy"), ".tune.thumb"
    ),
}


def __getattr__(name: str):
    """The names of :data:`_LAZY` (``lrkit.tune``, ``lrkit.compare``, the studies...):
    imported on first use, so ``import lrkit`` does not import Optuna."""
    if name in _LAZY:
        import importlib

        module = importlib.import_module(_LAZY[name], __name__)
        return module if name == "tune" else getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
