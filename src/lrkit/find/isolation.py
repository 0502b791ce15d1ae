"""What keeps a range test apart from the training around it: its hooks.

A sweep is not training, so nothing that follows the training may see its updates:

- :func:`suspended_hooks` suspends, while the sweep runs, every step hook of the optimizer
  (``register_step_pre_hook`` / ``register_step_post_hook``: an attached
  :class:`~lrkit.schedules.Driver`'s counter, an EMA of the weights, a user's own) and, for this
  optimizer's steps only, every global optimizer hook
  (``torch.optim.optimizer.register_optimizer_step_pre_hook`` / ``..._post_hook``). Afterwards
  each one is back in its place; a hook registered during the sweep stays, one removed stays
  removed. It also puts back the optimizer's own attributes that a step sets, such as
  ``_opt_called``, which a torch ``LRScheduler`` attached to the optimizer reads.

>>> import torch
>>> opt = torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=0.1)
>>> seen = []
>>> handle = opt.register_step_post_hook(lambda o, args, kwargs: seen.append(1))
>>> with suspended_hooks(opt):
...     opt.step()
>>> opt.step()
>>> seen
[1]
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.optim import optimizer as _torch_optimizer

_MISSING = object()


class _Suspended:
    """Stands in for a hook while a sweep runs: does nothing for ``only`` (for every
    optimizer when ``only`` is None) and calls the hook for any other optimizer."""

    __slots__ = ("hook", "only")

    def __init__(self, hook: Callable[..., Any], only: torch.optim.Optimizer | None) -> None:
        self.hook, self.only = hook, only

    def __call__(self, opt: torch.optim.Optimizer, args: Any, kwargs: Any) -> Any:
        if self.only is not None and opt is not self.only:
            return self.hook(opt, args, kwargs)
        return None


@contextlib.contextmanager
def suspended_hooks(optimizer: torch.optim.Optimizer) -> Iterator[None]:
    """Run the block with ``optimizer``'s step hooks suspended, then put back each one and the
    optimizer's attributes as they were (see the module doc); also after an exception."""
    tables: list[tuple[dict[int, Any], torch.optim.Optimizer | None]] = [
        (getattr(optimizer, "_optimizer_step_pre_hooks", {}), None),
        (getattr(optimizer, "_optimizer_step_post_hooks", {}), None),
        (getattr(_torch_optimizer, "_global_optimizer_pre_hooks", {}), optimizer),
        (getattr(_torch_optimizer, "_global_optimizer_post_hooks", {}), optimizer),
    ]
    attributes = dict(vars(optimizer))
    swapped = []
    try:
        for table, only in tables:
            for key, hook in list(table.items()):
                stand_in = _Suspended(hook, only)
                table[key] = stand_in
                swapped.append((table, key, hook, stand_in))
        yield
    finally:
        for table, key, hook, stand_in in swapped:
            if table.get(key) is stand_in:  # else removed (or replaced) during the sweep
                table[key] = hook
        _put_back(vars(optimizer), attributes)


def _put_back(now: dict[str, Any], saved: dict[str, Any]) -> None:
    """Make the attribute table ``now`` hold exactly the objects of ``saved`` again."""
    for key in [k for k in now if k not in saved]:
        del now[key]
    for key, value in saved.items():
        if now.get(key, _MISSING) is not value:
            now[key] = value


__all__ = ["suspended_hooks"]
