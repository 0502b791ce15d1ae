"""``scale_lr``: the lr for another batch size by a published rule, with its source.

Two rules, for ``lr`` tuned at batch size ``from_batch`` and wanted at ``to_batch``
(``k = to_batch / from_batch``):

- ``"linear"``: ``lr * k``. Goyal et al. 2017, "Accurate, Large Minibatch SGD: Training
  ImageNet in 1 Hour" (arXiv:1706.02677), for SGD with momentum: "when the minibatch size is
  multiplied by k, multiply the learning rate by k", with a *gradual warmup* from the old lr to
  the new one over the first 5 epochs when scaling up (the early, fast-changing weights do not
  take the scaled rate at once).
- ``"sqrt"``: ``lr * sqrt(k)``. The square-root rule for Adam-type optimizers: Malladi, Lyu,
  Panigrahi and Arora 2022, "On the SDEs and Scaling Rules for Adaptive Gradient Algorithms"
  (NeurIPS 2022, arXiv:2205.10287) derive it for Adam and RMSprop from their SDE
  approximations (their rule also adjusts Adam's betas and eps with the batch size; this
  function scales the lr only). Krizhevsky 2014, "One weird trick for parallelizing
  convolutional neural networks" (arXiv:1404.5997), gave the older variance argument for
  sqrt(k) with SGD, though in practice he, like Goyal et al., scaled SGD's lr linearly.

Both rules are rules of thumb, and both break down past some batch size;
``lrkit study batch-size`` measures which holds on a given model, and up to where.

>>> scaled = scale_lr(0.1, 256, 1024)
>>> scaled.lr, scaled.factor
(0.4, 4.0)
>>> scaled.warmup
'warm up from 0.1 to 0.4 over the first 5 epochs (Goyal et al. 2017): schedule warmup(5ep, start=0.25) >> ...'
>>> round(float(scale_lr(1e-3, 32, 128, rule="sqrt")), 6)
0.002
>>> scale_lr(0.1, 256, 64).warmup is None
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..checks import check_lr, shown, whole
from ..errors import UserError

RULES = ("linear", "sqrt")
WARMUP_EPOCHS = 5  # Goyal et al. 2017's gradual warmup
SOURCES = {
    "linear": "Goyal et al. 2017, 'Accurate, Large Minibatch SGD: Training ImageNet in 1 Hour',"
    " arXiv:1706.02677 (linear scaling with a gradual warmup, for SGD)",
    "sqrt": "Malladi et al. 2022, 'On the SDEs and Scaling Rules for Adaptive Gradient"
    " Algorithms', NeurIPS 2022, arXiv:2205.10287 (square-root scaling, for Adam and"
    " RMSprop); the variance argument for it with SGD: Krizhevsky 2014, arXiv:1404.5997",
}


@dataclass(frozen=True)
class ScaledLr:
    """What :func:`scale_lr` returns: the new ``lr``, the ``factor`` it was multiplied by, the
    ``rule``, a ``warmup`` recommendation in words (None when the lr does not rise), the rule's
    ``source``, and the inputs. ``float(scaled)`` is its lr."""

    lr: float
    factor: float
    rule: str
    warmup: str | None
    source: str
    from_lr: float
    from_batch: int
    to_batch: int

    def __float__(self) -> float:
        return self.lr

    def __str__(self) -> str:
        text = (
            f"lr {self.from_lr:.4g} at batch {self.from_batch} -> {self.lr:.4g} at batch"
            f" {self.to_batch} ({self.rule} rule, x{self.factor:.4g}; {self.source})"
        )
        return f"{text}; {self.warmup}" if self.warmup else text


def scale_lr(lr: float, from_batch: int, to_batch: int, rule: str = "linear") -> ScaledLr:
    """The lr for batch size ``to_batch``, given ``lr`` tuned at ``from_batch``, by ``rule``.

    ``"linear"``: ``lr * to_batch / from_batch``; ``"sqrt"``: ``lr * sqrt(to_batch /
    from_batch)`` (sources in the module's docstring). Scaling up (a larger lr) comes with a
    warmup recommendation: rise from the old lr to the new one over the first 5 epochs, the
    gradual warmup of Goyal et al. 2017 (as an lrkit schedule: ``warmup(5ep, start=old/new)``
    before the rest of the schedule).

    Raises UserError for an lr that is not a finite number > 0, a batch size that is not a
    whole number >= 1, or an unknown rule (naming the rules accepted).
    """
    try:
        lr = check_lr(lr, "lr")
    except ValueError as e:
        raise UserError(str(e)) from None
    try:
        sizes = [whole(from_batch, "from_batch", least=1), whole(to_batch, "to_batch", least=1)]
    except ValueError as e:
        raise UserError(str(e)) from None
    name = rule.strip().lower() if isinstance(rule, str) else rule
    if name not in RULES:
        raise UserError(f"unknown rule {shown(rule)}; known: {', '.join(RULES)}")
    ratio = sizes[1] / sizes[0]
    factor = ratio if name == "linear" else math.sqrt(ratio)
    new = lr * factor
    if not math.isfinite(new):
        raise UserError(f"the scaled lr is not finite ({lr:g} x {factor:g}); give a smaller lr")
    return ScaledLr(
        lr=new,
        factor=factor,
        rule=name,
        warmup=_warmup(lr, new, factor) if factor > 1 else None,
        source=SOURCES[name],
        from_lr=lr,
        from_batch=sizes[0],
        to_batch=sizes[1],
    )


def _warmup(old: float, new: float, factor: float) -> str:
    start = f"{1 / factor:.4g}"
    return (
        f"warm up from {old:.4g} to {new:.4g} over the first {WARMUP_EPOCHS} epochs (Goyal et"
        f" al. 2017): schedule warmup({WARMUP_EPOCHS}ep, start={start}) >> ..."
    )


__all__ = ["scale_lr", "ScaledLr", "RULES"]
