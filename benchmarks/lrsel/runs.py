"""Full training runs of the benchmark, cached on disk, run in worker processes.

A run is identified by a *spec*, a small dict: task, lr, seed, schedule, and the method-specific
settings that change the run (``optimizer``: ``"task"`` or ``"prodigy"``). Its result (final
metric, steps, status) is stored in ``benchmarks/.cache/runs/<hash>.json`` with the spec, so a
rerun with the same spec reads it instead of training.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import torch

CACHE = Path(__file__).resolve().parent.parent / ".cache"


def spec(task: str, lr: float, seed: int, schedule: str, optimizer: str = "task") -> dict:
    return {
        "task": task,
        "lr": float(lr),
        "seed": int(seed),
        "schedule": schedule,
        "optimizer": optimizer,
    }


def _path(kind: str, key: dict) -> Path:
    text = json.dumps(key, sort_keys=True)
    return CACHE / kind / (hashlib.sha1(text.encode()).hexdigest()[:20] + ".json")


def cached(kind: str, key: dict, compute: Callable[[], dict]) -> dict:
    """``compute()``'s result for ``key``, from the cache when it holds it (then stored)."""
    path = _path(kind, key)
    if path.is_file():
        return json.loads(path.read_text())["result"]
    result = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"key": key, "result": result}))
    tmp.replace(path)
    return result


def is_cached(kind: str, key: dict) -> bool:
    return _path(kind, key).is_file()


def _train(s: dict) -> dict:
    from lrkit.train import fit

    from .tasks import load_task

    task = load_task(s["task"])
    if s["optimizer"] == "prodigy":
        task = dataclasses.replace(task, make_optimizer=_prodigy)
    history = fit(task, s["lr"], s["schedule"], seed=s["seed"], progress=False)
    metric = history.final_metric
    finite = metric is not None and math.isfinite(metric) and history.status == "completed"
    return {"metric": metric if finite else None, "steps": history.steps, "status": history.status}


def _prodigy(params, lr):
    from prodigyopt import Prodigy

    # safeguard_warmup: the schedule starts with a warmup, as Prodigy's README advises
    return Prodigy(params, lr=lr, safeguard_warmup=True)


def full_run(s: dict) -> dict:
    """The result of one full training run: ``{"metric", "steps", "status"}`` (cached)."""
    return cached("runs", s, lambda: _train(s))


def _init_worker() -> None:
    torch.set_num_threads(1)


def run_all(specs: Iterable[dict], jobs: int = 1) -> list[dict]:
    """``full_run`` of every spec, in ``jobs`` processes (torch on one thread in each)."""
    specs = list(specs)
    todo = [s for s in specs if not is_cached("runs", s)]
    if todo and jobs > 1:
        with ProcessPoolExecutor(jobs, initializer=_init_worker) as pool:
            list(pool.map(full_run, todo, chunksize=1))
    return [full_run(s) for s in specs]


def mean_metric(results: list[dict]) -> float:
    """The seeds' mean final metric; NaN when any run diverged or failed."""
    values = [r["metric"] for r in results]
    if any(v is None for v in values):
        return math.nan
    return sum(values) / len(values)


def total_steps(task: str) -> int:
    """Optimizer steps of one full training run of ``task`` (its epochs x batches per epoch)."""
    from .tasks import load_task

    t = load_task(task)
    return t.epochs * len(t.build_loaders(0)[0])


def runs_for(
    task: str, lrs: Iterable[float], seeds: Iterable[int], schedule: str, optimizer: str = "task"
) -> list[dict]:
    return [spec(task, lr, seed, schedule, optimizer) for lr in lrs for seed in seeds]


Result = dict[str, Any]
