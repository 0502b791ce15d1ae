"""The learning-rate range test: sweep, smooth, stop, restore.

>>> from lrkit.find import find_lr
>>> result = find_lr("digits-mlp", start=1e-4, end=10, steps=60, progress=False)
>>> result.confidence.ok, 1e-3 <= result.lr <= 1
(True, True)

One sweep, top to bottom: before each of ``steps`` updates every param group's lr is set to
``ratio_of_group * lr_i``, where ``lr_i`` runs from ``start`` to ``end`` (exponentially or
linearly spaced) and ``ratio_of_group`` is the group's base lr over the largest base lr, so
discriminative lrs keep their ratios; the loss of the batch (averaged over ``accumulate``
micro-batches) is recorded, smoothed by an exponential moving average with bias correction
(``avg = smooth * avg + (1 - smooth) * loss``, reported as ``avg / (1 - smooth ** (i + 1))``),
and the sweep stops when the smoothed loss exceeds ``stop_factor`` times the best one (for a
negative best: ``best + (stop_factor - 1) * |best|``) or a loss is not finite; the curve is
cut before the first non-finite loss. Everything the sweep touched is then restored from one
CPU :class:`~lrkit.train.snapshot.Snapshot`, also when the step function raises or the sweep
is interrupted; the optimizer's step hooks are suspended while it runs, so an attached
:class:`~lrkit.schedules.Driver` does not count the sweep's updates
(:mod:`lrkit.find.isolation`). The settings and parts are checked in :mod:`lrkit.find.inputs`.

Under torchrun (a torch.distributed group of several processes, typically a
``DistributedDataParallel`` model and each rank its own shard of batches) every rank runs
``find_lr`` in step. A task is swept as :func:`~lrkit.train.fit` trains it there
(:func:`lrkit.train.ranks.as_fit_trains`): its model in ``DistributedDataParallel``, its train
loader sharded with a ``DistributedSampler``, each rank keeping the loader's batch size, so
the global batch of a step is ``world_size`` times the task's batch size (validation data are
not sharded). Your own model and loader are swept as you give them: shard them yourself.
On every rank: the loss of each update (and each validation loss) is the mean over the
ranks (:func:`lrkit.dist.mean`), so the smoothed loss, the stop check and the divergence check
agree, every rank records the same curve, stops at the same step and returns the same
suggestion; a non-finite loss on one rank makes the mean non-finite and stops every rank at
that step. Each rank restores its own snapshot; only rank 0 shows a progress bar. A rank that
dies or hangs makes the others raise :class:`~lrkit.errors.UserError` (:func:`lrkit.dist.failures`).

Before anything is checked or touched, the ranks compare their settings
(:func:`lrkit.dist.same_settings` of :func:`~lrkit.find.inputs.shared_settings`): the task or
the model's type, whether there is a ``val_loader``, ``start``, ``end``, ``steps``, ``mode``,
``smooth``, ``stop_factor``, ``accumulate``, ``autocast``, ``val_every``, ``val_batches``,
``seeds`` and ``rule``. They decide which collectives each rank runs (a ``val_loader`` on rank 0
only would put its validation all-reduce against the other ranks' gradient all-reduce), when
the ranks stop, and the result, so where one differs every rank raises the same
:class:`~lrkit.errors.UserError` naming it and each rank's value. A model in neither
``DistributedDataParallel`` nor FSDP is swept with a ``UserWarning`` (each rank would train its
own copy on its own gradients, the losses averaged): it is refused by no rule, since a user who
averages the gradients in hooks of their own has a sweep that is right.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from torch import nn

from .. import dist
from ..progress import progress
from ..runtime import seed_everything, torch_threads
from ..tasks import Task
from ..train import ranks
from ..train.snapshot import RNGState, Snapshot
from .inputs import AUTOCAST, LossFn, Parts, Settings, shared_settings
from .isolation import suspended_hooks
from .result import Curve, FindResult
from .rules import Confidence

UNSHARED = (
    "find_lr under torchrun: the model is not in DistributedDataParallel (nor FSDP), so each"
    " rank sweeps its own copy with its own gradients while the losses are averaged over the"
    " ranks: the curve is of no one model. Wrap it, DistributedDataParallel(model), or ignore"
    " this warning if you average the gradients yourself"
)


def find_lr(
    task_or_model: Task | str | nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    loader: Iterable | None = None,
    *,
    step_fn: LossFn | None = None,
    criterion: Callable[[Any, Any], torch.Tensor] | None = None,
    start: float = 1e-7,
    end: float = 10.0,
    steps: int = 100,
    mode: str = "exp",
    smooth: float = 0.98,
    stop_factor: float = 4.0,
    accumulate: int = 1,
    autocast: str | None = None,
    scaler: Any = None,
    scheduler: Any = None,
    val_loader: Iterable | None = None,
    val_every: int | None = None,
    val_batches: int = 1,
    seeds: int = 1,
    rule: str | None = None,
    progress: bool | None = None,
) -> FindResult:
    """Run the range test and return a :class:`FindResult` (curve, suggestions, confidence).

    Args:
        task_or_model: a :class:`~lrkit.tasks.Task` or task name (model, optimizer at the
            task's lr, loaders and loss are built from it), or a model with ``optimizer=``
            and ``loader=`` given.
        step_fn: ``step_fn(model, batch) -> scalar loss tensor`` (dict batches, Hugging Face
            style models, several losses); else ``criterion(model(x), y)`` on ``(x, y)``
            batches; with a task, default: the task's loss.
        start, end, steps, mode: the lrs swept, ``"exp"`` or ``"linear"`` spacing, ``steps``
            updates (5 to 1,000,000); a loader shorter than that is cycled.
        smooth, stop_factor: the moving average's factor in [0, 1); stop when the smoothed
            loss exceeds ``stop_factor`` (> 1, ``math.inf`` never) times the best.
        accumulate: micro-batches per update (each loss divided by ``accumulate``).
        autocast: None, ``"bf16"`` or ``"fp16"``: the forward pass (and ``step_fn``) runs
            under ``torch.autocast`` on the model's device, the weights stay in their dtype.
            ``"fp16"`` steps through a GradScaler (``scaler``, else a new one for the model's
            device), so an update whose gradients overflowed is skipped and the scale backs
            off; the sweep records that step's loss and goes on. On CUDA ``"fp16"`` is the
            fast one; on the CPU it works, slower than ``"bf16"``, the CPU's usual choice.
        scaler, scheduler: a GradScaler, and a scheduler or :class:`~lrkit.schedules.Driver`
            whose ``state_dict`` is restored with the rest afterwards. Without being told,
            the sweep suspends the optimizer's step hooks (an attached Driver's counter, an
            EMA, your own) and puts back what a step sets on the optimizer (a torch
            scheduler's ``_opt_called``): see :mod:`lrkit.find.isolation`.
        val_loader, val_every, val_batches: every ``val_every`` updates (default with a
            ``val_loader``: ``steps // 10``), the mean loss on the first ``val_batches``
            batches of ``val_loader`` (a task's own when ``val_every`` is given).
        seeds: ``k > 1`` runs ``k`` sweeps from the same start, seeded ``seed..seed+k-1``
            (the task's seed, else 0), and reports the median curve and the band.
        rule: the rule that picks ``result.lr`` (default :data:`~lrkit.find.rules.DEFAULT_RULE`).
        progress: a rich progress bar; None shows it only when stdout is a terminal.

    Under torchrun, call it on every rank (see the module doc): the loss of each step is
    averaged over the ranks, every rank gets the same result, only rank 0 shows progress.
    A task sweeps as ``fit`` trains it: the model in DistributedDataParallel, each rank its
    shard of the train loader at the task's batch size, so a step's global batch is
    ``world_size`` x that batch size (2 ranks of a task batching 16 sweep the global batches
    of one process batching 32, when the loader does not shuffle). Give a model, optimizer
    and loader to shard as you like (each rank its own loader, the model in DDP); every rank
    must give the same settings (a UserError on every rank names one that differs), and a
    model outside DistributedDataParallel (or FSDP) gets a UserWarning.

    Raises ValueError naming the bad value before anything is touched; a loss that is not a
    scalar tensor raises ValueError (after restoring); inside a torch.distributed group,
    :class:`~lrkit.errors.UserError` (after restoring) when another rank died or did not
    answer within the group's timeout. A curve that cannot be trusted gives a result with
    ``confidence.ok`` False and ``lr`` None, never a silent number.
    """
    how = dict(start=start, end=end, steps=steps, mode=mode, smooth=smooth,
               stop_factor=stop_factor, accumulate=accumulate, autocast=autocast,
               val_every=val_every, val_batches=val_batches, seeds=seeds, rule=rule)  # fmt: skip
    dist.same_settings("find_lr", shared_settings(task_or_model, val_loader, how))
    cfg = Settings(**how, progress=progress)
    rng = RNGState.take()  # before a task's builders seed the generators
    try:
        parts = Parts.build(task_or_model, optimizer, loader, step_fn, criterion, val_loader, cfg)
        if dist.is_distributed() and not dist.shares_gradients(parts.model):
            warnings.warn(UNSHARED, UserWarning, stacklevel=2)
    except BaseException:
        rng.restore()  # a task's builders seeded the generators
        raise
    threads = parts.task.threads if parts.task is not None else None
    if cfg.autocast == "fp16" and scaler is None:  # in the snapshot: each seed starts afresh
        scaler = torch.amp.GradScaler(parts.device.type)
    with torch_threads(threads):
        snapshot = Snapshot.take(
            parts.model, parts.optimizer, scaler=scaler, scheduler=scheduler, rng=rng
        )
        try:
            sweeps = []
            with (
                dist.failures("find_lr"),
                suspended_hooks(parts.optimizer),
                _progress(cfg, parts.name) as advance,
            ):
                for i in range(cfg.seeds):
                    if i:
                        snapshot.restore()
                    if parts.seed is not None or cfg.seeds > 1:
                        seed_everything((parts.seed or 0) + i)
                    sweeps.append(_sweep(parts, cfg, scaler, advance))
        finally:
            snapshot.restore()
    settings = {k: v for k, v in vars(cfg).items() if k not in ("rule", "progress")}
    return FindResult.from_curves(
        sweeps,
        ratios=parts.ratios,
        names=[
            str(g.get("name", f"group {i}")) for i, g in enumerate(parts.optimizer.param_groups)
        ],
        rule=cfg.rule,
        mode=cfg.mode,
        extra={"task": parts.name, **settings},
    )


# -- the sweep ----------------------------------------------------------------------------------


def _sweep(parts: Parts, cfg: Settings, scaler: Any, advance: Callable[..., None]) -> Curve:
    model, optimizer = parts.model, parts.optimizer
    groups, ratios = optimizer.param_groups, parts.ratios
    amp = _amp(parts.device, cfg.autocast)
    batches = _cycle(parts.loader, "loader", epochs=parts.task is not None)
    out = Curve()
    avg, best = 0.0, math.inf
    model.train()
    for i, lr in enumerate(cfg.plan().tolist()):
        for group, ratio in zip(groups, ratios):
            _set_lr(group, ratio * lr)
        optimizer.zero_grad(set_to_none=True)
        losses = []
        for _ in range(cfg.accumulate):
            with amp:
                loss = parts.loss(model, next(batches))
            _check_loss(loss, i)
            if loss.requires_grad:
                scaled = loss / cfg.accumulate if cfg.accumulate > 1 else loss
                (scaler.scale(scaled) if scaler is not None else scaled).backward()
            losses.append(loss.detach())
        # one device sync per update
        value = losses[0].item() if len(losses) == 1 else float(sum(losses)) / len(losses)
        value = dist.mean(value)  # over the ranks: one curve and one decision for all
        if not math.isfinite(value):
            out.stop = f"stopped at step {i}: the loss was {value} at lr {lr:.3g}"
            if i == 0:
                out.problem = Confidence(
                    False, "diverged at once", f"the loss was {value} at the first step"
                )
            break
        if i == 0 and all(p.grad is None for p in model.parameters()):
            out.problem = Confidence(
                False,
                "no descent",
                "the loss gave the trainable parameters no gradients: the lr has no effect on it",
            )
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        out.updates += 1
        avg = cfg.smooth * avg + (1 - cfg.smooth) * value
        smoothed = avg / (1 - cfg.smooth ** (i + 1))
        best = min(best, smoothed)
        out.lrs.append(lr)
        out.raw_losses.append(value)
        out.losses.append(smoothed)
        if cfg.val_every is not None and (i + 1) % cfg.val_every == 0:
            out.val.append((i, lr, _val_loss(parts, cfg, amp)))
        advance(1, lr, value)
        if smoothed > best + (cfg.stop_factor - 1) * abs(best):
            out.stop = (
                f"diverged at step {i} (lr {lr:.3g}): smoothed loss {smoothed:.4g} >"
                f" {cfg.stop_factor:g} x best {best:.4g}"
            )
            break
    else:
        out.stop = f"completed {cfg.steps} steps"
    advance(cfg.steps - out.updates)  # the steps a stop skipped
    return out


def _set_lr(group: dict[str, Any], lr: float) -> None:
    if isinstance(group["lr"], torch.Tensor):
        group["lr"].fill_(lr)
    else:
        group["lr"] = lr


def _amp(device: torch.device, autocast: str | None) -> contextlib.AbstractContextManager:
    if autocast is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=AUTOCAST[autocast])


def _cycle(loader: Iterable, what: str, epochs: bool = False) -> Iterator[Any]:
    """The loader's batches, starting again at its end; ValueError when a pass has none.
    ``epochs`` (a task's loader, ours): each pass is the next epoch of a sharded loader."""
    seen, passes = 0, 0
    while True:
        if epochs:  # under torchrun each pass reshuffles the shards, as fit's epochs do
            ranks.set_epoch(loader, passes)
            passes += 1
        before = seen
        for batch in loader:
            seen += 1
            yield batch
        if seen == before and seen:
            raise ValueError(
                f"the {what} ran out after {seen} batches and yields none when read again (an"
                " iterator or generator can be read once): give a list or a DataLoader, which"
                " the sweep cycles"
            )
        if not seen:
            raise ValueError(f"the {what} yielded no batches; it needs at least one")


def _check_loss(loss: Any, step: int) -> None:
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        got = f"shape {tuple(loss.shape)}" if isinstance(loss, torch.Tensor) else repr(loss)
        raise ValueError(
            f"the loss must be a scalar tensor, got {got} at step {step}; reduce it (.mean())"
            " or return the loss tensor itself (e.g. outputs.loss)"
        )


def _val_loss(parts: Parts, cfg: Settings, amp: contextlib.AbstractContextManager) -> float:
    """The mean loss of the first ``val_batches`` batches, in eval mode, without gradients;
    under torchrun, of every rank's batches."""
    flags = [(m, m.training) for m in parts.model.modules()]
    parts.model.eval()
    total, count = 0.0, 0
    try:
        with torch.no_grad():
            for batch in parts.val_loader:
                with amp:
                    total += float(parts.loss(parts.model, batch))
                count += 1
                if count == cfg.val_batches:
                    break
    finally:
        for module, training in flags:
            module.training = training
    total, count = dist.mean([total, count])  # over the ranks, in one all-reduce
    return total / count if count else math.nan


@contextlib.contextmanager
def _progress(cfg: Settings, name: str) -> Iterator[Callable[..., None]]:
    """``advance(n, lr=None, loss=None)`` of the progress bar over every sweep's steps."""
    total = cfg.steps * cfg.seeds
    with progress(
        f"find lr {name}",
        total,
        show=cfg.progress if dist.is_main() else False,  # one bar, on rank 0
        fields={"info": ""},
        template="{task.fields[info]}",
    ) as bar:

        def advance(n: int, lr: float | None = None, loss: float | None = None) -> None:
            fields = {} if lr is None else {"info": f"lr {lr:.3g}  loss {loss:.4g}"}
            bar.advance(n, **fields)

        yield advance


__all__ = ["find_lr"]
