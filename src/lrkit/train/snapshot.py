"""One CPU snapshot of everything a few training steps touch, restored in place.

:meth:`Snapshot.take` copies, once and to the CPU: the model's parameters and buffers (also
non-persistent ones), each parameter's ``.grad`` and ``requires_grad``, each module's training
flag, the optimizer's state and param-group settings, a ``GradScaler``'s state, an attached
scheduler's (or :class:`~lrkit.schedules.Driver`'s) ``state_dict`` and the random number
generators (torch, CUDA when available, NumPy's global one, Python's ``random``).
:meth:`Snapshot.restore` puts it all back *in place*: the same ``Parameter`` and buffer objects
hold the old values again, so optimizers and a user's references stay valid, and an optimizer
whose state was empty gets empty state again. No temporary files; the extra memory is one copy
of the model and optimizer state, on the CPU (:attr:`Snapshot.nbytes`).

The range test restores from one; the watch pillar's guard rolls back a divergence with one.

>>> import torch
>>> model = torch.nn.Linear(3, 1)
>>> opt = torch.optim.Adam(model.parameters(), lr=0.1)
>>> before = model.weight.detach().clone()
>>> snap = Snapshot.take(model, opt)
>>> model(torch.randn(4, 3)).sum().backward(); opt.step()
>>> snap.restore()
>>> torch.equal(model.weight, before), len(opt.state), model.weight.grad is None
(True, 0, True)
"""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class RNGState:
    """The global random number generators' states: torch CPU, CUDA, NumPy, Python."""

    torch_cpu: torch.Tensor
    cuda: list[torch.Tensor] | None
    numpy: Any
    python: Any

    @classmethod
    def take(cls) -> RNGState:
        """The states now (CUDA's only when CUDA is available)."""
        cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
        return cls(torch.get_rng_state(), cuda, np.random.get_state(), random.getstate())

    def restore(self) -> None:
        """Set every generator back to this state: later draws repeat those after ``take``."""
        torch.set_rng_state(self.torch_cpu)
        if self.cuda is not None:
            torch.cuda.set_rng_state_all(self.cuda)
        np.random.set_state(self.numpy)
        random.setstate(self.python)


class Snapshot:
    """A CPU copy of model, optimizer, scaler, scheduler and RNG state; see the module doc."""

    def __init__(self) -> None:  # use Snapshot.take
        self._tensors: list[tuple[dict[str, Any], str, torch.Tensor | None]] = []
        self._copies: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self._grads: list[tuple[torch.Tensor, torch.Tensor | None, bool]] = []
        self._flags: list[tuple[nn.Module, bool]] = []
        self._optimizer: torch.optim.Optimizer | None = None
        self._opt_state: dict[Any, dict[str, Any]] = {}
        self._opt_groups: list[dict[str, Any]] = []
        self._scaler: Any = None
        self._scaler_state: dict[str, Any] | None = None
        self._scheduler: Any = None
        self._scheduler_state: dict[str, Any] | None = None
        self.rng: RNGState | None = None

    @classmethod
    def take(
        cls,
        model: nn.Module,
        optimizer: torch.optim.Optimizer | None = None,
        *,
        scaler: Any = None,
        scheduler: Any = None,
        rng: RNGState | None = None,
    ) -> Snapshot:
        """Copy the state of ``model`` and the other given objects to the CPU, once.

        ``scheduler`` is anything with ``state_dict()``/``load_state_dict()`` (a Driver, a torch
        scheduler). ``rng``: the RNG state to restore (default: the state now), for a caller
        that seeded the generators after deciding to take a snapshot.
        """
        if not isinstance(model, nn.Module):
            raise TypeError(f"Snapshot.take needs an nn.Module, got {type(model).__name__}")
        if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(
                f"Snapshot.take: optimizer must be a torch.optim.Optimizer or None,"
                f" got {type(optimizer).__name__}"
            )
        snap = cls()
        with torch.no_grad():
            for module in model.modules():
                snap._flags.append((module, module.training))
                for table in (module._parameters, module._buffers):
                    for name, tensor in table.items():
                        snap._tensors.append((table, name, tensor))
                        if tensor is not None and id(tensor) not in snap._copies:
                            snap._copies[id(tensor)] = (tensor, _cpu_copy(tensor))
            params = list(model.parameters())
            if optimizer is not None:  # and tensors an optimizer updates outside the model
                for group in optimizer.param_groups:
                    params += [p for p in group["params"] if id(p) not in snap._copies]
                    for p in group["params"]:
                        snap._copies.setdefault(id(p), (p, _cpu_copy(p)))
            for p in params:
                grad = None if p.grad is None else _cpu_copy(p.grad)
                snap._grads.append((p, grad, p.requires_grad))
        if optimizer is not None:
            snap._optimizer = optimizer
            snap._opt_state = {key: _deep_cpu(value) for key, value in optimizer.state.items()}
            snap._opt_groups = [
                {k: _deep_cpu(v) for k, v in group.items() if k != "params"}
                for group in optimizer.param_groups
            ]
        if scaler is not None:
            snap._scaler, snap._scaler_state = scaler, _deep_cpu(scaler.state_dict())
        if scheduler is not None:
            snap._scheduler = scheduler
            snap._scheduler_state = _deep_cpu(scheduler.state_dict())
        snap.rng = RNGState.take() if rng is None else rng
        return snap

    @property
    def nbytes(self) -> int:
        """Bytes of tensor data this snapshot holds (parameters, buffers, grads, optimizer)."""
        total = sum(saved.nbytes for _, saved in self._copies.values())
        total += sum(grad.nbytes for _, grad, _ in self._grads if grad is not None)
        total += _held_bytes(self._opt_state) + _held_bytes(self._opt_groups)
        return total

    def restore(self) -> None:
        """Put everything back in place; the snapshot stays valid for another restore."""
        with torch.no_grad():
            for table, name, tensor in self._tensors:
                if table.get(name) is not tensor:  # a module swapped a tensor: put ours back
                    table[name] = tensor
            for tensor, saved in self._copies.values():
                tensor.copy_(saved)
            for p, grad, requires_grad in self._grads:
                p.requires_grad_(requires_grad)
                if grad is None:
                    p.grad = None
                elif p.grad is not None and p.grad.shape == grad.shape:
                    p.grad.copy_(grad)
                else:
                    p.grad = grad.to(p.device, copy=True)
        for module, training in self._flags:
            module.training = training
        if self._optimizer is not None:
            self._restore_optimizer(self._optimizer)
        if self._scaler is not None:
            self._scaler.load_state_dict(_back(self._scaler_state))
            per_optimizer = getattr(self._scaler, "_per_optimizer_states", None)
            if per_optimizer is not None:  # forget an unscale_() an interrupted step made
                per_optimizer.clear()
        if self._scheduler is not None:
            self._scheduler.load_state_dict(_back(self._scheduler_state))
        if self.rng is not None:
            self.rng.restore()

    def _restore_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        optimizer.state.clear()
        for key, value in self._opt_state.items():
            optimizer.state[key] = _back(value)
        for group, saved in zip(optimizer.param_groups, self._opt_groups):
            for key in [k for k in group if k != "params" and k not in saved]:
                del group[key]
            for key, value in saved.items():
                now = group.get(key)
                if isinstance(now, torch.Tensor) and isinstance(value, _Held):
                    if now.shape == value.tensor.shape:
                        now.copy_(value.tensor)  # a tensor lr stays the same object
                        continue
                group[key] = _back(value)

    def __repr__(self) -> str:
        return f"Snapshot({len(self._copies)} tensors, {self.nbytes} bytes)"


def _cpu_copy(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.detach().to("cpu", copy=True)


@dataclass(frozen=True)
class _Held:
    """A tensor's CPU copy and the device it goes back to."""

    tensor: torch.Tensor
    device: torch.device


def _deep_cpu(value: Any) -> Any:
    """A deep copy with every tensor replaced by a :class:`_Held` CPU copy."""
    if isinstance(value, torch.Tensor):
        return _Held(_cpu_copy(value), value.device)
    if isinstance(value, dict):
        return {k: _deep_cpu(v) for k, v in value.items()}
    if type(value) in (list, tuple):
        return type(value)(_deep_cpu(v) for v in value)
    return copy.deepcopy(value)


def _back(value: Any) -> Any:
    """A fresh deep copy of a :func:`_deep_cpu` value, each tensor on its own device again."""
    if isinstance(value, _Held):
        return value.tensor.to(value.device, copy=True)
    if isinstance(value, dict):
        return {k: _back(v) for k, v in value.items()}
    if type(value) in (list, tuple):
        return type(value)(_back(v) for v in value)
    return copy.deepcopy(value)


def _held_bytes(value: Any) -> int:
    if isinstance(value, _Held):
        return value.tensor.nbytes
    if isinstance(value, dict):
        return sum(_held_bytes(v) for v in value.values())
    if isinstance(value, list | tuple):
        return sum(_held_bytes(v) for v in value)
    return 0


__all__ = ["Snapshot", "RNGState"]
