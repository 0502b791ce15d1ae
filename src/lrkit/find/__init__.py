"""Find: the learning-rate range test, its suggestions, and (see ``pick``) an automatic pick.

>>> from lrkit.find import find_lr
>>> result = find_lr("digits-mlp", start=1e-4, end=10, steps=60, progress=False)
>>> result.confidence.ok
True

:func:`find_lr` sweeps the lr, restores everything it touched from one CPU
:class:`~lrkit.train.snapshot.Snapshot`, and returns a :class:`FindResult`: the curve, every
rule's suggestion (:mod:`lrkit.find.rules`), the chosen lr and a confidence flag.
:func:`pick_lr` chooses the peak lr for a schedule within a budget of runs (a :class:`Pick`).
In Lightning, :class:`~lrkit.find.lightning.LRFindCallback` runs the range test at the start
of ``fit`` and trains at its lr.
"""

from .pick import pick_lr
from .pick_result import Pick, Trial
from .rangetest import find_lr
from .result import FindResult


def __getattr__(name: str):
    if name == "LRFindCallback":  # imports lightning, so only when asked for
        from .lightning import LRFindCallback

        return LRFindCallback
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["find_lr", "FindResult", "pick_lr", "Pick", "Trial", "LRFindCallback"]
