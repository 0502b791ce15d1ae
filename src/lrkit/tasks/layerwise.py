"""Layer-wise learning rates: param groups whose lr decays from the head down.

The rule of :func:`layerwise_groups`:

- **Layers** are the model's top-level children that hold parameters, in the order they were
  registered (parameter-free children such as ``nn.ReLU`` are not layers). A *wrapper* — a
  module with no parameters of its own and exactly one child holding parameters — is looked
  through: its child's children are the layers (repeatedly). At least two layers are needed.
  A layer is named by its path from the model (``"fc1"``, ``"net.0"``).
- **Rates**: the head (``head``: layer names; default the last layer) trains at ``lr``; the
  other layers, counted down from the last one, at ``lr * decay``, ``lr * decay**2``, ...
  Parameters of the layers' parent itself (a ``cls_token``, a position embedding) train at
  the lowest layer's rate, in a group named after them.
- **Patterns** override by parameter name: ``{"fc1.*": 0.1}`` or ``[(re.compile(r"bias$"),
  2.0)]`` puts every parameter whose full name (as in ``model.named_parameters()``) matches
  into a group of its own at ``lr * multiplier``. A string is a glob (``fnmatch``, matched
  against the whole name), a compiled ``re.Pattern`` a regex (``search``ed in the name); the
  first pattern that matches a parameter wins.
- **Weight decay**: with ``weight_decay`` given, every group carries it, except that the
  parameters with fewer than 2 dimensions (biases, the scales and shifts of norm layers) go
  to a group of their own at weight decay 0, named ``"<group> (no decay)"``. Without it the
  groups set none (the optimizer's own applies).
- Parameters with ``requires_grad=False`` are left out. Groups are listed in the order their
  first parameter has in the model; each is ``{"params", "lr", "name"}`` (and
  ``"weight_decay"``).

>>> from collections import OrderedDict
>>> from torch import nn
>>> model = nn.Sequential(OrderedDict(
...     fc1=nn.Linear(4, 8), act=nn.ReLU(), fc2=nn.Linear(8, 8), head=nn.Linear(8, 2)))
>>> [(g["name"], round(g["lr"], 6)) for g in layerwise_groups(model, 1e-3, decay=0.5)]
[('fc1', 0.00025), ('fc2', 0.0005), ('head', 0.001)]
>>> groups = layerwise_groups(model, 1e-3, 0.5, patterns={"fc1.*": 0.1}, weight_decay=0.01)
>>> [(g["name"], round(g["lr"], 6), g["weight_decay"]) for g in groups][:3]
[('fc1.*', 0.0001, 0.01), ('fc1.* (no decay)', 0.0001, 0.0), ('fc2', 0.0005, 0.01)]
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..checks import check_lr, number, shown
from ..errors import UserError

Patterns = Mapping[str | re.Pattern, float] | Iterable[tuple[str | re.Pattern, float]]


@dataclass(frozen=True)
class Layers:
    """A model's layers as :func:`layerwise_groups` sees them (see the module's rule).

    ``names``: the layers, bottom first; ``heads``: those trained at the full lr; ``depth``:
    each layer's power of ``decay`` (0 for the heads); ``prefix``: the path of the module the
    layers are children of (``""``: the model itself); ``own``: that module's own parameters.
    """

    names: tuple[str, ...]
    heads: tuple[str, ...]
    depth: dict[str, int]
    prefix: str
    own: tuple[str, ...]

    def layer_of(self, param_name: str) -> str | None:
        """The layer a parameter belongs to (None: the parent's own parameters)."""
        for name in self.names:
            if param_name.startswith(name + "."):
                return name
        return None


def model_layers(
    model: nn.Module, head: str | Iterable[str] | None = None, purpose: str = "layer-wise rates"
) -> Layers:
    """The layers of ``model`` and their depths below the head (the rule in the module doc).

    Raises a UserError for a model with fewer than two layers, or a ``head`` naming none;
    its message says what needed them (``purpose``).
    """
    if not isinstance(model, nn.Module):
        raise UserError(f"{purpose} need an nn.Module, got {type(model).__name__}")
    module, prefix = model, ""
    while True:
        own = [n for n, p in module.named_parameters(recurse=False) if p is not None]
        children = [(n, c) for n, c in module.named_children() if _has_params(c)]
        if len(children) == 1 and not own:
            name, module = children[0]
            prefix = f"{prefix}{name}."
            continue
        break
    if len(children) < 2:
        what = type(model).__name__
        found = f"one ({prefix}{children[0][0]})" if children else "none"
        raise UserError(
            f"{purpose} need a model with at least two layers (child modules holding"
            f" parameters, like the Linear layers of an nn.Sequential); {what} has {found}"
            + (f" besides its own parameters {', '.join(own)}" if own else "")
            + ". Give a model built of named sub-modules, or param groups of your own"
        )
    names = tuple(prefix + n for n, _ in children)
    heads = _heads(head, names)
    depth, d = {}, 0
    for name in reversed(names):
        if name in heads:
            depth[name] = 0
        else:
            d += 1
            depth[name] = d
    return Layers(names, heads, depth, prefix, tuple(prefix + n for n in own))


def layerwise_groups(
    model: nn.Module,
    lr: float,
    decay: float = 0.9,
    *,
    head: str | Iterable[str] | None = None,
    patterns: Patterns | None = None,
    weight_decay: float | None = None,
) -> list[dict[str, Any]]:
    """Param groups of ``model`` whose lr decays by ``decay`` per layer from the head down.

    ``head`` names the head layer(s) (default: the last layer); ``patterns`` maps parameter
    names (globs, or compiled regexes) to lr multipliers; ``weight_decay`` sets weight decay,
    0 on parameters of fewer than 2 dimensions. The rule in full: :mod:`lrkit.tasks.layerwise`.
    Give the groups to any optimizer (``torch.optim.AdamW(groups)``); a
    :class:`~lrkit.schedules.Driver` and the range test keep their ratios.

    Raises a UserError for ``lr`` not a finite number > 0, ``decay`` outside (0, 1], a model
    with fewer than two layers, a ``head`` that names no layer, a pattern that matches no
    parameter, or a model with no trainable parameters.
    """
    try:
        lr = check_lr(lr, "layer-wise lr")
        decay = number(decay, "layer-wise decay", low=0, high=1, low_open=True)
        if weight_decay is not None:
            weight_decay = number(weight_decay, "weight_decay", low=0)
    except ValueError as e:
        raise UserError(str(e)) from None
    layers = model_layers(model, head)
    rules = _patterns(patterns, lr)
    lowest = max(layers.depth.values())
    groups: dict[tuple, dict[str, Any]] = {}
    used = [0] * len(rules)
    for pname, param in model.named_parameters():
        if not param.requires_grad:
            continue
        match = next((i for i, (_, test, _) in enumerate(rules) if test(pname)), None)
        if match is not None:
            used[match] += 1
            name, scale = rules[match][0], rules[match][2]
        else:
            name = layers.layer_of(pname)
            if name is None:  # the parent's own parameters: the lowest layer's rate
                name, scale = ",".join(layers.own), decay**lowest
            else:
                scale = decay ** layers.depth[name]
        no_decay = weight_decay is not None and param.dim() < 2
        key = (match, name, no_decay)
        group = groups.get(key)
        if group is None:
            label = f"{name} (no decay)" if no_decay else name
            group = {"params": [], "lr": lr * scale, "name": label}
            if weight_decay is not None:
                group["weight_decay"] = 0.0 if no_decay else weight_decay
            groups[key] = group
        group["params"].append(param)
    for (text, _, _), n in zip(rules, used):
        if n == 0:
            names = [n for n, _ in model.named_parameters()]
            sample = ", ".join(names[:6]) + (", ..." if len(names) > 6 else "")
            raise UserError(
                f"layer-wise pattern {text!r} matches no trainable parameter of"
                f" {type(model).__name__}; its parameters are named: {sample}"
            )
    if not groups:
        raise UserError(
            f"{type(model).__name__} has no trainable parameters (none with requires_grad=True)"
        )
    return list(groups.values())


def _has_params(module: nn.Module) -> bool:
    return any(True for _ in module.parameters())


def _heads(head: Any, names: tuple[str, ...]) -> tuple[str, ...]:
    if head is None:
        return (names[-1],)
    wanted = (head,) if isinstance(head, str) else tuple(head)
    if not wanted or not all(isinstance(h, str) for h in wanted):
        raise UserError(f"head must be a layer name or a list of them, got {shown(head)}")
    for h in wanted:
        if h not in names:
            raise UserError(
                f"head {h!r} is not a layer of the model; its layers: {', '.join(names)}"
            )
    if set(wanted) == set(names):
        raise UserError(
            f"head names every layer ({', '.join(names)}): at least one must be below the head"
        )
    return wanted


def _patterns(patterns: Any, lr: float) -> list[tuple[str, Any, float]]:
    """``(text, test(name) -> bool, multiplier)`` for each pattern, checked."""
    if patterns is None:
        return []
    items = list(patterns.items()) if isinstance(patterns, Mapping) else list(patterns)
    rules = []
    for item in items:
        if not isinstance(item, tuple | list) or len(item) != 2:
            raise UserError(
                "layer-wise patterns must be a dict {name pattern: lr multiplier} or a list of"
                f" (pattern, multiplier) pairs, got {shown(item)}"
            )
        key, scale = item
        try:
            scale = number(scale, f"the lr multiplier of pattern {key!r}", low=0, low_open=True)
            check_lr(lr * scale, f"lr x the multiplier of pattern {key!r}")
        except ValueError as e:
            raise UserError(str(e)) from None
        if isinstance(key, re.Pattern):
            rules.append((key.pattern, lambda name, key=key: key.search(name) is not None, scale))
        elif isinstance(key, str) and key:
            rules.append((key, lambda name, key=key: fnmatch.fnmatchcase(name, key), scale))
        else:
            raise UserError(
                "a layer-wise pattern must be a glob string ('embed.*') or a compiled regex"
                f" (re.compile(r'bias$')), got {shown(key)}"
            )
    return rules


def trainable(params: Any) -> list[torch.Tensor]:
    """The parameters of ``params`` (tensors or param-group dicts) that require gradients."""
    out = []
    for p in params:
        out.extend(
            trainable(p["params"]) if isinstance(p, dict) else [p] if p.requires_grad else []
        )
    return out


__all__ = ["layerwise_groups", "model_layers", "Layers"]
