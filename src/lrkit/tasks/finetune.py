"""Four ways to train a (pretrained) task's model: :func:`finetune`.

- ``"scratch"``: every module's weights re-initialised (each module's ``reset_parameters()``,
  seeded by the build's seed), so the pretrained weights are thrown away: training from
  scratch, the baseline that says what pretraining was worth;
- ``"full"``: every weight trained, all at one rate (the task's lr);
- ``"layerwise"``: every weight trained, over :func:`~lrkit.tasks.layerwise_groups` with
  ``decay``: the head at the lr, each layer below at ``decay`` times the one above;
- ``"frozen"``: the body's parameters get ``requires_grad=False`` and only the head is given
  to the optimizer (the head: the model's last layer, as :func:`~lrkit.tasks.model_layers`
  sees it).

The task's optimizer class and its settings are kept: its factory is called as before and,
for ``"layerwise"``, its param groups are then split by layer, each part keeping its group's
settings (weight decay, momentum, ...) at its group's lr times the layer's multiplier; a
task with a no-decay group (``wine-mlp``'s biases) keeps it.

>>> from lrkit.tasks import get_task
>>> task = finetune(get_task("digits-mlp"), "layerwise", decay=0.5)
>>> model = task.build_model()
>>> [(g["name"], g["lr"]) for g in task.build_optimizer(model, lr=0.1).param_groups]
[('0', 0.05), ('2', 0.1)]
>>> frozen = finetune("digits-mlp", "frozen")
>>> model = frozen.build_model()
>>> sum(p.numel() for g in frozen.build_optimizer(model).param_groups for p in g["params"])
1290
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from ..checks import number, shown
from ..errors import UserError
from ..runtime import seed_everything
from .layerwise import layerwise_groups, model_layers, trainable
from .registry import get_task
from .task import Task

FINETUNE = ("scratch", "full", "layerwise", "frozen")
TAG = "lrkit_layerwise"  # a parameter's (group index, name, lr multiplier), set by make_model


def finetune(task: Task | str, how: str, decay: float = 0.9) -> Task:
    """A copy of ``task`` whose model is trained ``how``: one of :data:`FINETUNE` (see the
    module doc). ``decay`` (in (0, 1]) is the per-layer factor of ``"layerwise"``.

    The copy keeps the task's name, data, loss, metric and defaults; its description says
    how it fine-tunes. Raises a UserError for an unknown ``how`` (naming those accepted) or a
    ``decay`` outside (0, 1]; building the model raises one when it has fewer than two layers
    (``"layerwise"``, ``"frozen"``) or, for ``"scratch"``, a module with parameters of its
    own and no ``reset_parameters()``.
    """
    task = get_task(task)
    how = check_finetune(how)
    try:
        decay = number(decay, "fine-tuning decay", low=0, high=1, low_open=True)
    except ValueError as e:
        raise UserError(str(e)) from None
    make_model, make_optimizer = task.make_model, task.make_optimizer
    if how == "scratch":
        make_model = _scratch(make_model)
    elif how == "full":
        make_model = _full(make_model)
    elif how == "layerwise":
        make_model = _tagged(make_model, decay)
        make_optimizer = _layerwise_optimizer(make_optimizer, task.name)
    else:
        make_model = _frozen(make_model)
        make_optimizer = _trainable_optimizer(make_optimizer)
    note = f"fine-tuning: {how}" + (f" (decay {decay:g})" if how == "layerwise" else "")
    description = f"{task.description}; {note}" if task.description else note
    return replace(
        task, make_model=make_model, make_optimizer=make_optimizer, description=description
    )


def check_finetune(how: Any) -> str:
    """A name of :data:`FINETUNE` (any case), lower-cased; a UserError naming them otherwise."""
    if isinstance(how, str) and how.strip().lower() in FINETUNE:
        return how.strip().lower()
    close = difflib.get_close_matches(str(how).lower(), FINETUNE, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise UserError(f"unknown fine-tuning {shown(how)}{hint}; known: {', '.join(FINETUNE)}")


# -- the models ------------------------------------------------------------------------------


def _scratch(make_model: Callable[[], nn.Module]) -> Callable[[], nn.Module]:
    def make() -> nn.Module:
        seed = torch.initial_seed()  # the build's seed (make_model may draw or seed itself)
        model = make_model()
        seed_everything(seed)
        for name, module in model.named_modules():
            if callable(getattr(module, "reset_parameters", None)):
                module.reset_parameters()
            elif any(True for _ in module.parameters(recurse=False)):
                raise UserError(
                    f"cannot train from scratch: module {name or 'the model'!r}"
                    f" ({type(module).__name__}) has parameters of its own and no"
                    " reset_parameters() to re-initialise them"
                )
        return model

    return make


def _full(make_model: Callable[[], nn.Module]) -> Callable[[], nn.Module]:
    def make() -> nn.Module:
        return make_model().requires_grad_(True)

    return make


def _frozen(make_model: Callable[[], nn.Module]) -> Callable[[], nn.Module]:
    def make() -> nn.Module:
        model = make_model()
        layers = model_layers(model, purpose="a frozen body and a trained head")
        for pname, param in model.named_parameters():
            if layers.layer_of(pname) not in layers.heads:
                param.requires_grad_(False)
        return model

    return make


def _tagged(make_model: Callable[[], nn.Module], decay: float) -> Callable[[], nn.Module]:
    """make_model, with each parameter tagged with its layer-wise group (lr at 1.0)."""

    def make() -> nn.Module:
        model = make_model()
        for i, group in enumerate(layerwise_groups(model, 1.0, decay)):
            for param in group["params"]:
                setattr(param, TAG, (i, group["name"], group["lr"]))
        return model

    return make


# -- the optimizers ---------------------------------------------------------------------------


def _trainable_optimizer(make_optimizer: Callable) -> Callable:
    def make(params: Any, lr: float) -> torch.optim.Optimizer:
        return make_optimizer(trainable(params), lr)

    return make


def _layerwise_optimizer(make_optimizer: Callable, task: str) -> Callable:
    """The task's optimizer, its groups then split by the parameters' layer-wise tags."""

    def make(params: Any, lr: float) -> torch.optim.Optimizer:
        params = trainable(params)
        for p in params:
            if getattr(p, TAG, None) is None:
                raise UserError(
                    f"task {task!r} trains layer-wise: give its optimizer the parameters of a"
                    " model from its own build_model() (a parameter of another model has no"
                    " layer)"
                )
        optimizer = make_optimizer(params, lr)
        parts: dict[tuple[int, int], dict[str, Any]] = {}
        for g, group in enumerate(optimizer.param_groups):
            settings = {k: v for k, v in group.items() if k not in ("params", "initial_lr")}
            for p in group["params"]:
                index, name, scale = getattr(p, TAG)
                part = parts.get((index, g))
                if part is None:
                    part = {**settings, "params": [], "lr": settings["lr"] * scale, "name": name}
                    parts[(index, g)] = part
                part["params"].append(p)
        optimizer.param_groups.clear()  # the same optimizer, regrouped: its class and settings
        for key in sorted(parts):
            optimizer.add_param_group(parts[key])
        return optimizer

    return make


__all__ = ["finetune", "FINETUNE", "check_finetune"]
