"""Mixed precision in :func:`~lrkit.train.fit`: the autocast names, and one batch's
forward, backward, step and scaler update.

``autocast`` is None (full precision), ``"bf16"`` or ``"fp16"`` (:data:`AUTOCAST`, the names
``find_lr`` takes too). The forward pass and the loss run under
``torch.autocast(device_type, dtype)``, the backward pass outside it. With ``"fp16"`` a
``torch.amp.GradScaler`` (the one given, or a new one for the model's device) scales the loss
before ``backward()``; the gradients are unscaled once, right after it, so every callback's
``on_after_backward`` (a Watch's gradient norms, a Guard) and ``clip_grad`` see the true
gradients; ``scaler.step(optimizer)`` then skips an update whose gradients are not finite, and
``scaler.update()`` closes every batch, skipped or not (exactly once: fit's Guard leaves it to
the loop).

**What counts as a step.** An update the scaler skipped (an *overflow*) is not applied: the
:class:`~lrkit.schedules.Driver` (which counts applied updates) does not advance, nor does
``state.step``, and ``on_after_step`` does not fire. When its loss is finite its row in the
history is listed in ``history.overflowed`` (``history.overflows`` counts them; not in
``history.skipped``, the rows a callback such as the Guard skipped); a loss that is not finite
is not an overflow but the run's divergence, as in full precision (unless a callback skipped
that batch).

>>> import torch
>>> from lrkit.schedules import Driver
>>> _ = torch.manual_seed(0)
>>> model = torch.nn.Linear(2, 1)
>>> optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
>>> driver = Driver(optimizer, 1.0)
>>> mixed = Mixed("fp16", torch.amp.GradScaler("cpu", init_scale=2.0**24), "cpu")
>>> applied = []
>>> for _ in range(12):
...     with mixed.autocast():
...         loss = model(torch.ones(4, 2)).pow(2).mean()
...     optimizer.zero_grad()
...     mixed.backward(loss, optimizer)
...     applied.append(mixed.step(optimizer, driver))
...     mixed.update()
>>> applied.count(False), driver.last_step  # 9 overflows (the scale halving), 3 updates
(9, 3)
>>> check_autocast("fp8")
Traceback (most recent call last):
...
ValueError: autocast must be None, 'bf16' or 'fp16', got 'fp8'
"""

from __future__ import annotations

import contextlib
import math
from typing import Any

import torch

AUTOCAST = {None: None, "bf16": torch.bfloat16, "fp16": torch.float16}


def check_autocast(autocast: Any) -> str | None:
    """``autocast`` itself when it is one of :data:`AUTOCAST`'s names (or None); ValueError
    naming the accepted ones otherwise."""
    if not (autocast is None or isinstance(autocast, str)) or autocast not in AUTOCAST:
        raise ValueError(f"autocast must be None, 'bf16' or 'fp16', got {autocast!r}")
    return autocast


class Mixed:
    """One run's precision: ``autocast`` (checked), the fp16 ``scaler``, the overflow count.

    ``scaler`` is for ``autocast="fp16"`` only (ValueError otherwise); None there: a new
    ``torch.amp.GradScaler(device_type)``.
    """

    def __init__(self, autocast: str | None, scaler: Any, device_type: str):
        self.mode = check_autocast(autocast)
        if scaler is not None and self.mode != "fp16":
            raise ValueError(
                f"scaler= is for autocast='fp16' (a GradScaler), got autocast={self.mode!r}"
            )
        for method in ("scale", "unscale_", "step", "update", "get_scale", "state_dict"):
            if scaler is not None and not callable(getattr(scaler, method, None)):
                raise ValueError(
                    f"scaler must be a torch.amp.GradScaler (it has no {method}()), got {scaler!r}"
                )
        if self.mode == "fp16" and scaler is None:
            scaler = torch.amp.GradScaler(device_type)
        self.scaler = scaler
        self.device_type = device_type

    def autocast(self) -> contextlib.AbstractContextManager:
        """The context for the forward pass and the loss."""
        if self.mode is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=AUTOCAST[self.mode])

    def backward(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        """``loss.backward()``; with a scaler, of the scaled loss, then the gradients unscaled."""
        if self.scaler is None:
            loss.backward()
            return
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(optimizer)  # once: what callbacks and clip_grad see is true

    def step(self, optimizer: torch.optim.Optimizer, driver: Any) -> bool:
        """Apply the update; False when the scaler skipped it (read from the driver, which
        counts applied updates)."""
        if self.scaler is None:
            optimizer.step()
            return True
        before = driver.last_step
        self.scaler.step(optimizer)
        return driver.last_step != before

    def update(self) -> None:
        """Close the batch's scaler iteration (every batch, the update skipped or not)."""
        if self.scaler is not None:
            self.scaler.update()

    def overflowed(self, loss: torch.Tensor) -> bool:
        """After a step the scaler skipped: True when ``loss`` is finite (an overflow), False
        for a loss that is not (the run's divergence)."""
        return math.isfinite(float(loss))

    def record(self, history: Any) -> None:
        """Write the mode and the scaler's scale now into ``history``."""
        history.autocast = self.mode
        if self.scaler is not None:
            history.scale = float(self.scaler.get_scale())


__all__ = ["AUTOCAST", "Mixed", "check_autocast"]
