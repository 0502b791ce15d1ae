"""The methods compared: how each chooses a rate for a task, and what that costs in steps.

``select(task_name, method) -> {"lr", "steps", "note"}`` (cached on disk): ``lr`` the rate it
chose (None when it chose nothing), ``steps`` the optimizer steps it spent choosing (range
tests, short runs, search trials). The chosen rate's final training runs are not counted here.
"""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path

from . import rivals
from .runs import cached, full_run, spec
from .tasks import BENCH_TASKS, SCHEDULE, load_task

RULES = ("lrkit", "steep", "valley", "minimum", "slide")
PICK_SEEDS = 5  # pick_lr runs with seeds 0..4 (its short runs are noisy): rows pick_lr-seed1...
TUNE_SEEDS = 5  # lrkit.tune with seeds 0..4: rows tune-4, tune-4-seed1...
TUNE_BUDGET = 4.0  # full-run equivalents: range test, pick_lr and every trial's steps
METHODS = (
    *(f"find-{r}" for r in RULES),
    "pick_lr",
    *(f"pick_lr-seed{i}" for i in range(1, PICK_SEEDS)),
    "torch-lr-finder",
    "lightning",
    "default",
    "prodigy",
    "optuna-tpe-8",
    "tune-4",
    *(f"tune-4-seed{i}" for i in range(1, TUNE_SEEDS)),
)
LABELS = {
    "find-lrkit": "lrkit find_lr, rule lrkit",
    "find-steep": "rule steep (fastai steep)",
    "find-valley": "rule valley (fastai valley)",
    "find-minimum": "rule minimum (fastai minimum)",
    "find-slide": "rule slide (fastai slide)",
    "pick_lr": "lrkit pick_lr (budget 1.5)",
    **{f"pick_lr-seed{i}": f"lrkit pick_lr (budget 1.5), seed {i}" for i in range(1, 5)},
    "torch-lr-finder": "torch-lr-finder, steepest gradient",
    "lightning": "Lightning Tuner.lr_find",
    "default": "default (Adam 1e-3, SGD 1e-2)",
    "prodigy": "Prodigy (lr=1.0)",
    "optuna-tpe-8": "Optuna TPE, 8 full runs",
    "tune-4": "lrkit tune (budget 4)",
    **{f"tune-4-seed{i}": f"lrkit tune (budget 4), seed {i}" for i in range(1, TUNE_SEEDS)},
}
PICK_BUDGET = 1.5
SRC = Path(__file__).resolve().parents[2] / "src" / "lrkit" / "find"
TUNE_SRC = SRC.parent / "tune"


def code_version(*folders: Path) -> str:
    """A hash of lrkit's find package (and ``folders``): a changed rule, pick or tune
    invalidates their cached choices."""
    h = hashlib.sha1()
    for folder in (SRC, *folders):
        for path in sorted(folder.glob("*.py")):
            h.update(path.read_bytes())
    return h.hexdigest()[:12]


def select(task: str, method: str) -> dict:
    key = {"task": task, "method": method, "schedule": SCHEDULE}
    if method.startswith(("find-", "pick_lr")):
        key["lrkit_find"] = code_version()
    if method.startswith("pick_lr"):
        key["budget"] = PICK_BUDGET
    if method.startswith("tune-"):
        key["lrkit_tune"] = code_version(TUNE_SRC)
        key["budget"] = TUNE_BUDGET
    kind = "find" if method.startswith("find-") else "select"
    if kind == "find":  # one range test serves every rule
        result = cached(
            "find", {k: v for k, v in key.items() if k != "method"}, lambda: _find(task)
        )
        rule = method.removeprefix("find-")
        lr = result["suggestions"].get(rule)
        return {"lr": lr, "steps": result["steps"], "note": result["note"]}
    return cached(kind, key, lambda: _select(task, method))


def _find(task: str) -> dict:
    from lrkit.find import find_lr

    r = find_lr(load_task(task), progress=False)
    note = "" if r.confidence.ok else f"low confidence: {r.confidence.reason}"
    return {"suggestions": dict(r.suggestions), "steps": int(r.steps_run), "note": note}


def _select(task: str, method: str) -> dict:
    os.environ.setdefault("TQDM_DISABLE", "1")
    t = load_task(task)
    bench = BENCH_TASKS[task]
    if method.startswith("pick_lr"):  # "pick_lr" is seed 0, "pick_lr-seed1" seed 1...
        from lrkit.find import pick_lr

        p = pick_lr(t, SCHEDULE, budget=PICK_BUDGET, seed=_seed_of(method), progress=False)
        return {
            "lr": p.lr,
            "steps": p.steps,
            "note": f"window {p.window[0]:.2g}..{p.window[1]:.2g}",
        }
    if method.startswith("tune-"):
        return _tune(t, _seed_of(method))
    if method == "torch-lr-finder":
        lr, steps = rivals.torch_lr_finder(t)
        return {"lr": lr, "steps": steps, "note": ""}
    if method == "lightning":
        lr, steps = rivals.lightning_lr_find(t)
        return {"lr": lr, "steps": steps, "note": ""}
    if method == "default":
        return {"lr": bench.default_lr, "steps": 0, "note": ""}
    if method == "prodigy":
        return {"lr": 1.0, "steps": 0, "note": "Prodigy's own step size"}
    if method == "optuna-tpe-8":
        sign = 1.0 if t.metric.higher_is_better else -1.0

        def objective(lr: float) -> float:
            metric = full_run(spec(task, lr, 0, SCHEDULE))["metric"]
            return math.nan if metric is None else sign * metric

        steps = 8 * _steps(t)
        lr = rivals.optuna_tpe(objective, bench.grid[0], bench.grid[-1], trials=8)
        return {"lr": lr, "steps": steps, "note": "its best trial is a full run already"}
    raise ValueError(f"unknown method {method!r}; known: {', '.join(METHODS)}")


def _tune(t, seed: int) -> dict:
    """``lrkit.tune`` on the lr alone (the range test bounds it), the benchmark's schedule,
    ``TUNE_BUDGET`` full runs in all; its best complete trial's rate, the steps it spent."""
    import tempfile

    from lrkit.tune import Space, tune

    with tempfile.TemporaryDirectory() as out:
        r = tune(
            t, Space(schedule=SCHEDULE), trials=None, budget=TUNE_BUDGET, seed=seed, out=out,
            progress=False,
        )  # fmt: skip
    a = r.attrs
    steps = int(a["find_steps"]) + int(a["pick_steps"]) + sum(int(x["steps"]) for x in r.trials)
    done = sum(x["status"] == "completed" for x in r.trials)
    lo, hi = a["lr_window"]
    note = f"{len(r.trials)} trials, {done} complete; window {lo:.2g}..{hi:.2g}"
    trials = [[x["lr"], x["status"], x["metric_mean"], x["steps"]] for x in r.trials]
    best = None if r.best is None else r.best.lr
    return {"lr": best, "steps": steps, "note": note, "trials": trials, "window": [lo, hi]}


def _seed_of(method: str) -> int:
    """``"pick_lr"``/``"tune-4"``: seed 0; ``"pick_lr-seed1"``/``"tune-4-seed1"``: seed 1."""
    head, _, seed = method.rpartition("-seed")
    return int(seed) if head else 0


def _steps(t) -> int:
    return t.epochs * len(t.build_loaders(0)[0])


def optimizer_of(method: str) -> str:
    """Which optimizer the method's final runs use: the task's, or Prodigy."""
    return "prodigy" if method == "prodigy" else "task"
