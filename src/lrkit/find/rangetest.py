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
is interrupted.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ..checks import check_lr
from ..runtime import seed_everything, torch_threads
from ..tasks import Task, get_task
from ..train.callbacks import ProgressBar
from ..train.snapshot import RNGState, Snapshot
from .result import Curve, FindResult
from .rules import DEFAULT_RULE, Confidence, get_rule

LossFn = Callable[[nn.Module, Any], torch.Tensor]
_MODES = ("exp", "linear")
_AUTOCAST = {None: None, "bf16": torch.bfloat16, "fp16": torch.float16}


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
            updates; a loader shorter than that is cycled.
        smooth, stop_factor: the moving average's factor in [0, 1); stop when the smoothed
            loss exceeds ``stop_factor`` (> 1, ``math.inf`` never) times the best.
        accumulate: micro-batches per update (each loss divided by ``accumulate``).
        autocast: None, ``"bf16"`` (CPU or CUDA) or ``"fp16"`` (CUDA, with a GradScaler:
            ``scaler`` or a new one).
        scaler, scheduler: a GradScaler, a scheduler or :class:`~lrkit.schedules.Driver`
            attached to the optimizer: restored with the rest afterwards (a Driver keeps
            counting the sweep's updates while it runs; pass it here so its count comes back).
        val_loader, val_every, val_batches: every ``val_every`` updates (default with a
            ``val_loader``: ``steps // 10``), the mean loss on the first ``val_batches``
            batches of ``val_loader`` (a task's own when ``val_every`` is given).
        seeds: ``k > 1`` runs ``k`` sweeps from the same start, seeded ``seed..seed+k-1``
            (the task's seed, else 0), and reports the median curve and the band.
        rule: the rule that picks ``result.lr`` (default :data:`~lrkit.find.rules.DEFAULT_RULE`).
        progress: a rich progress bar; None shows it only when stdout is a terminal.

    Raises ValueError naming the bad value before anything is touched; a loss that is not a
    scalar tensor raises ValueError (after restoring). A curve that cannot be trusted gives a
    result with ``confidence.ok`` False and ``lr`` None, never a silent number.
    """
    cfg = _Config(
        start,
        end,
        steps,
        mode,
        smooth,
        stop_factor,
        accumulate,
        autocast,
        val_every,
        val_batches,
        seeds,
        rule,
        progress,
    )
    rng = RNGState.take()  # before a task's builders seed the generators
    try:
        parts = _Parts.build(task_or_model, optimizer, loader, step_fn, criterion, val_loader, cfg)
    except BaseException:
        rng.restore()  # a task's builders seeded the generators
        raise
    threads = parts.task.threads if parts.task is not None else None
    with torch_threads(threads):
        snapshot = Snapshot.take(
            parts.model, parts.optimizer, scaler=scaler, scheduler=scheduler, rng=rng
        )
        try:
            if cfg.autocast == "fp16" and scaler is None:
                scaler = torch.amp.GradScaler(parts.device.type)
            sweeps = []
            with _progress(cfg, parts.name) as advance:
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
        rule=cfg.rule,
        mode=cfg.mode,
        extra={"task": parts.name, **settings},
    )


# -- inputs ------------------------------------------------------------------------------------


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise ValueError(f"{what} must be a number, got {value!r}")
    return float(value)


def _whole(value: Any, what: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{what} must be a whole number >= {low}, got {value!r}")
    return value


@dataclass
class _Config:
    """The sweep's settings, checked on construction (ValueError naming the bad value)."""

    start: float
    end: float
    steps: int
    mode: str
    smooth: float
    stop_factor: float
    accumulate: int
    autocast: str | None
    val_every: int | None
    val_batches: int
    seeds: int
    rule: str | None
    progress: bool | None

    def __post_init__(self) -> None:
        check_lr(self.start, "start"), check_lr(self.end, "end")
        if self.start >= self.end:
            raise ValueError(f"start must be < end, got start={self.start!r} and end={self.end!r}")
        _whole(self.steps, "steps", 5)
        if self.mode not in _MODES:
            raise ValueError(f"mode must be 'exp' or 'linear', got {self.mode!r}")
        if not 0.0 <= _number(self.smooth, "smooth") < 1.0:
            raise ValueError(f"smooth must lie in [0, 1) (0: no smoothing), got {self.smooth!r}")
        if not _number(self.stop_factor, "stop_factor") > 1.0:
            raise ValueError(
                f"stop_factor must be > 1 (math.inf: never stop), got {self.stop_factor!r}"
            )
        _whole(self.accumulate, "accumulate", 1)
        if self.autocast not in _AUTOCAST:
            raise ValueError(f"autocast must be None, 'bf16' or 'fp16', got {self.autocast!r}")
        if self.val_every is not None:
            _whole(self.val_every, "val_every", 1)
        _whole(self.val_batches, "val_batches", 1)
        _whole(self.seeds, "seeds", 1)
        self.rule = DEFAULT_RULE if self.rule is None else self.rule
        get_rule(self.rule)  # ValueError listing the known rules
        if self.progress is not None and not isinstance(self.progress, bool):
            raise ValueError(f"progress must be None, True or False, got {self.progress!r}")

    def plan(self) -> np.ndarray:
        """The ``steps`` lrs of the sweep, from ``start`` to ``end``."""
        if self.mode == "exp":
            return np.geomspace(self.start, self.end, self.steps)
        return np.linspace(self.start, self.end, self.steps)


@dataclass
class _Parts:
    model: nn.Module
    optimizer: torch.optim.Optimizer
    loader: Iterable
    loss: LossFn
    val_loader: Iterable | None
    name: str
    task: Task | None = None
    seed: int | None = None
    device: torch.device = field(init=False)
    ratios: list[float] = field(init=False)  # each group's base lr over the largest

    def __post_init__(self) -> None:
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        if not trainable:
            raise ValueError(
                f"the model ({self.name}) has no trainable parameters (none with"
                " requires_grad=True): there is no lr to find"
            )
        self.device = trainable[0].device
        base = [float(g.get("initial_lr", g["lr"])) for g in self.optimizer.param_groups]
        top = max(base)
        self.ratios = [b / top if top > 0 else 1.0 for b in base]

    @classmethod
    def build(cls, what, optimizer, loader, step_fn, criterion, val_loader, cfg) -> _Parts:
        if step_fn is not None and not callable(step_fn):
            raise ValueError(f"step_fn must be callable(model, batch) -> loss, got {step_fn!r}")
        if criterion is not None and not callable(criterion):
            raise ValueError(f"criterion must be callable(output, target), got {criterion!r}")
        if isinstance(what, nn.Module):
            parts = cls._from_model(what, optimizer, loader, step_fn, criterion, val_loader)
        elif isinstance(what, Task | str):
            parts = cls._from_task(
                get_task(what), optimizer, loader, step_fn, criterion, val_loader, cfg
            )
        else:
            raise ValueError(
                f"find_lr needs a Task, a task name or an nn.Module, got {type(what).__name__}"
            )
        if cfg.val_every is not None and parts.val_loader is None:
            raise ValueError(f"val_every={cfg.val_every} needs val_loader=... (got None)")
        if cfg.val_every is None and parts.val_loader is not None:
            cfg.val_every = max(1, cfg.steps // 10)
        if cfg.autocast == "fp16" and parts.device.type != "cuda":
            raise ValueError(
                f"autocast='fp16' needs a model on CUDA, got one on {parts.device.type!r};"
                " use autocast='bf16' on the CPU"
            )
        return parts

    @classmethod
    def _from_model(cls, model, optimizer, loader, step_fn, criterion, val_loader) -> _Parts:
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise ValueError(
                "find_lr(model, optimizer, loader): optimizer must be a torch.optim.Optimizer,"
                f" got {type(optimizer).__name__}"
            )
        if loader is None or not isinstance(loader, Iterable):
            raise ValueError(
                f"find_lr(model, optimizer, loader): loader must be an iterable of"
                f" batches (a DataLoader), got {type(loader).__name__}"
            )
        if step_fn is None and criterion is None:
            raise ValueError(
                "find_lr(model, ...) needs step_fn=f(model, batch) -> loss, or"
                " criterion=f(output, target) for (x, y) batches; got neither"
            )
        loss = step_fn if step_fn is not None else _criterion_loss(criterion)
        return cls(model, optimizer, loader, loss, val_loader, type(model).__name__)

    @classmethod
    def _from_task(cls, task, optimizer, loader, step_fn, criterion, val_loader, cfg) -> _Parts:
        for name, value in (("optimizer", optimizer), ("loader", loader), ("criterion", criterion)):
            if value is not None:
                raise ValueError(
                    f"find_lr(task) builds its own {name}; got {name}={value!r}."
                    " Give a model instead to use your own parts"
                )
        model = task.build_model()
        optimizer = task.build_optimizer(model)
        train, val = task.build_loaders()
        if val_loader is None and cfg.val_every is not None:
            val_loader = val
        loss = step_fn if step_fn is not None else task.loss
        return cls(model, optimizer, train, loss, val_loader, task.name, task, task.seed)


def _criterion_loss(criterion: Callable) -> LossFn:
    def loss(model: nn.Module, batch: Any) -> torch.Tensor:
        x, y = batch
        return criterion(model(x), y)

    return loss


# -- the sweep ----------------------------------------------------------------------------------


def _sweep(parts: _Parts, cfg: _Config, scaler: Any, advance: Callable[..., None]) -> Curve:
    model, optimizer = parts.model, parts.optimizer
    groups, ratios = optimizer.param_groups, parts.ratios
    amp = _amp(parts.device, cfg.autocast)
    batches = _cycle(parts.loader, "loader")
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
    return torch.autocast(device_type=device.type, dtype=_AUTOCAST[autocast])


def _cycle(loader: Iterable, what: str) -> Iterator[Any]:
    """The loader's batches, starting again at its end; ValueError when it has none."""
    while True:
        empty = True
        for batch in loader:
            empty = False
            yield batch
        if empty:
            raise ValueError(f"the {what} yielded no batches; it needs at least one")


def _check_loss(loss: Any, step: int) -> None:
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        got = f"shape {tuple(loss.shape)}" if isinstance(loss, torch.Tensor) else repr(loss)
        raise ValueError(
            f"the loss must be a scalar tensor, got {got} at step {step}; reduce it (.mean())"
            " or return the loss tensor itself (e.g. outputs.loss)"
        )


def _val_loss(parts: _Parts, cfg: _Config, amp: contextlib.AbstractContextManager) -> float:
    """The mean loss of the first ``val_batches`` batches, in eval mode, without gradients."""
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
    return total / count if count else math.nan


@contextlib.contextmanager
def _progress(cfg: _Config, name: str) -> Iterator[Callable[..., None]]:
    """``advance(n, lr=None, loss=None)`` of a rich progress bar over every sweep's steps."""
    if not ProgressBar.wanted(cfg.progress):
        yield lambda n, lr=None, loss=None: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    columns = (TextColumn("[bold]find lr {task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TextColumn("{task.fields[info]}")) as bar:
        task = bar.add_task(name, total=cfg.steps * cfg.seeds, info="")

        def advance(n: int, lr: float | None = None, loss: float | None = None) -> None:
            fields = {} if lr is None else {"info": f"lr {lr:.3g}  loss {loss:.4g}"}
            bar.update(task, advance=n, **fields)

        yield advance


__all__ = ["find_lr"]
