"""What a tune costs: steps to the grid's best with pruning, trials per minute, storage overhead.

Three measurements, each side by side in one run (the machine is shared and noisy):

1. **Steps to the grid's best.** Per task, the *full grid* (``lrkit.tune`` with the grid sampler
   and no pruner: 9 rates, half a decade apart, over 4 decades around where the task trains,
   every one trained in full) against ``tune`` with its default successive-halving pruner, (a)
   on the same 9 rates (grid sampler) and (b) with its defaults (TPE, the range test and
   ``pick_lr``'s warm start; lr from its own range test; a budget of as many runs as the grid).
   A study *reaches the grid's best* at the first trial after which its best complete trial's
   metric is within the grid best's seed noise (the standard deviation of the grid's best rate
   over seeds 0, 1, 2) of the grid's best metric. Its cost to get there: the optimizer steps
   of every trial up to that one (pruned trials by the steps they ran), the range test and
   the pick included; the figure is that over the full grid's steps (goal: at most 1/3).
2. **Trials per minute** of one study (Optuna's journal file, tune's default storage) with 1
   and 2 worker processes, each ``lrkit.tune(..., storage=<journal>, study=<name>)`` on
   ``wine-mlp`` (its 15 epochs, random sampler, no pruner); the rate is the study's finished
   trials over the span from its first trial's start to its last trial's end (the workers' start-up
   is not counted). The arms alternate 1, 2, 2, 1... The same with trials that sleep 0.1 s and
   use no CPU (``run_trials`` on the journal file) shows what the workers' coordination allows
   when the cores are not the limit.
3. **Storage overhead per trial**, a trivial objective (``x**2``), random sampler: Optuna's
   ``study.optimize`` on its in-memory storage, tune's ``run_trials`` on the in-memory storage,
   and ``run_trials`` on the journal file; blocks of ``--trivial`` trials, each on a fresh study,
   rotating through the arms; medians of the blocks' time per trial.

    .venv/bin/python benchmarks/tune_cost.py              # 5 tasks; about 5 min on 2 cores
    .venv/bin/python benchmarks/tune_cost.py --quick      # 2 tasks, fewer rounds; about 1 min
    .venv/bin/python benchmarks/tune_cost.py --seed 1 --skip workers,storage   # another order
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lrsel.tasks import BENCH_TASKS, SCHEDULE  # noqa: E402

TASKS = ("wine-mlp", "digits-mlp", "digits-cnn", "diabetes-mlp", "pychar-gru")
QUICK_TASKS = ("wine-mlp", "digits-mlp")
GRID_POINTS = 9  # tune's grid sampler: Space.grid()'s default


def _tune(task: str, space, out: str, **kw):
    from lrkit.tune import tune

    return tune(task, space, out=out, progress=False, **kw)


def _reach(result, target: float, noise: float, hib: bool, measured: int) -> dict:
    """Steps until the study's best complete trial is within ``noise`` of ``target``."""
    rows = sorted(result.trials, key=lambda r: r["number"])
    whole = measured + sum(int(r["steps"]) for r in rows)
    spent, best = measured, None
    for row in rows:
        spent += int(row["steps"])
        if row["status"] == "completed" and math.isfinite(row["metric_mean"]):
            v = row["metric_mean"]
            best = v if best is None or (v > best if hib else v < best) else best
        if best is not None and (best >= target - noise if hib else best <= target + noise):
            return {"steps": spent, "reached": True, "best": best, "whole": whole}
    return {"steps": spent, "reached": False, "best": best, "whole": whole}


def steps_to_grid_best(task_name: str, seed: int) -> dict:
    """Measurement 1 on one task (see the module's doc)."""
    from lrkit.tasks import get_task
    from lrkit.train import fit
    from lrkit.tune import Space

    task = get_task(task_name)
    hib = task.metric.higher_is_better
    b = BENCH_TASKS[task_name]
    lo, hi = 10 ** (b.lo + 0.5), 10 ** (b.hi - 0.5)
    grid_space = Space(lr=(lo, hi), schedule=SCHEDULE)
    run_steps = task.epochs * len(task.build_loaders(0)[0])
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        full = _tune(task, grid_space, f"{tmp}/full", sampler="grid", pruner=None, trials=GRID_POINTS,
                     seed=seed)  # fmt: skip
        t_full = time.perf_counter() - t0
        done = [r for r in full.trials if r["status"] == "completed"]
        best_row = (max if hib else min)(done, key=lambda r: r["metric_mean"])
        best, best_lr = best_row["metric_mean"], best_row["lr"]
        others = [
            fit(task, best_lr, SCHEDULE, seed=s, progress=False).final_metric
            for s in (seed + 1, seed + 2)
        ]
        noise = statistics.stdev([best, *others])
        t0 = time.perf_counter()
        sha = _tune(task, grid_space, f"{tmp}/sha", sampler="grid", trials=GRID_POINTS, seed=seed)
        t_sha = time.perf_counter() - t0
        t0 = time.perf_counter()
        default = _tune(task, Space(schedule=SCHEDULE), f"{tmp}/tpe", trials=None,
                        budget=float(GRID_POINTS), seed=seed)  # fmt: skip
        t_tpe = time.perf_counter() - t0
    full_steps = sum(int(r["steps"]) for r in full.trials)
    a = default.attrs
    measured = int(a.get("find_steps") or 0) + int(a.get("pick_steps") or 0)
    arms = {
        "grid+sha": _reach(sha, best, noise, hib, 0) | {"seconds": t_sha},
        "tune defaults": _reach(default, best, noise, hib, measured) | {"seconds": t_tpe},
    }
    for name, res in (("grid+sha", sha), ("tune defaults", default)):
        arms[name]["trials"] = len(res.trials)
        arms[name]["complete"] = sum(r["status"] == "completed" for r in res.trials)
        arms[name]["best_lr"] = None if res.best is None else res.best.lr
    return {
        "task": task_name,
        "run_steps": run_steps,
        "full_steps": full_steps,
        "full_seconds": t_full,
        "grid_best_lr": best_lr,
        "grid_best": best,
        "noise": noise,
        "arms": arms,
    }


WORKER = """
import sys, lrkit
lrkit.tune("wine-mlp", "lr={1e-3..3e-1}; warmup(5%) >> cosine", sampler="random", pruner=None,
           trials=int(sys.argv[2]), storage=sys.argv[1], study="w", warm_start=False,
           seed=int(sys.argv[3]), progress=False)
"""


SLEEPER = """
import sys, time, optuna
from lrkit.tune.storage import create_study, open_storage
from lrkit.tune.workers import run_trials
optuna.logging.set_verbosity(optuna.logging.WARNING)
study = create_study(open_storage(sys.argv[1]), "w", exist_ok=True,
                     sampler=optuna.samplers.RandomSampler(seed=int(sys.argv[3])))
run_trials(study, lambda t: time.sleep(0.1) or t.suggest_float("x", 0, 1), int(sys.argv[2]))
"""


def trials_per_minute(workers: int, trials: int, seed: int, script: str = WORKER) -> dict:
    """Measurement 2: ``workers`` processes on one journal-file study of ``trials`` trials
    (``script``: a tune of wine-mlp, or ``SLEEPER``, trials that sleep 0.1 s and use no CPU)."""
    import optuna

    env = dict(os.environ, OMP_NUM_THREADS="1", TQDM_DISABLE="1")
    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/study.journal"
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", script, path, str(trials), str(seed + i)], env=env
            )  # fmt: skip
            for i in range(workers)
        ]
        codes = [p.wait() for p in procs]
        if any(codes):
            raise RuntimeError(f"a worker failed: exit codes {codes}")
        from lrkit.tune.storage import open_storage

        study = optuna.load_study(study_name="w", storage=open_storage(path))
        done = [t for t in study.trials if t.state.is_finished() and t.datetime_complete]
        finished = [t for t in done if t.state.name in ("COMPLETE", "PRUNED")]
        start = min(t.datetime_start for t in done)
        end = max(t.datetime_complete for t in done)
        span = (end - start).total_seconds()
        by = {json.dumps(t.system_attrs.get("lrkit:worker", {}).get("pid")) for t in finished}
    return {
        "workers": workers,
        "finished": len(finished),
        "other": len(done) - len(finished),
        "span_s": span,
        "per_min": 60 * len(finished) / span,
        "processes_seen": len(by),
    }


def storage_overhead(trials: int, rounds: int) -> dict:
    """Measurement 3: seconds per trial of a trivial objective on three arms, rotated."""
    import optuna

    from lrkit.tune.storage import create_study, open_storage
    from lrkit.tune.workers import run_trials

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def objective(trial):
        return trial.suggest_float("x", -1.0, 1.0) ** 2

    def optuna_memory(i, tmp):
        s = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=i))
        s.optimize(objective, n_trials=trials)

    def lrkit_memory(i, tmp):
        s = create_study(optuna.storages.InMemoryStorage(), f"m{i}",
                         sampler=optuna.samplers.RandomSampler(seed=i))  # fmt: skip
        run_trials(s, objective, trials)

    def lrkit_journal(i, tmp):
        storage = open_storage(None, Path(tmp) / f"j{i}")
        s = create_study(storage, f"j{i}", sampler=optuna.samplers.RandomSampler(seed=i))
        run_trials(s, objective, trials)

    arms = {
        "optuna optimize, in-memory": optuna_memory,
        "lrkit run_trials, in-memory": lrkit_memory,
        "lrkit run_trials, journal file": lrkit_journal,
    }
    names = list(arms)
    times: dict[str, list[float]] = {n: [] for n in names}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            order = names if r % 2 == 0 else names[::-1]
            for n in order:
                t0 = time.perf_counter()
                arms[n](r * 10 + names.index(n), tmp)
                times[n].append((time.perf_counter() - t0) / trials)
    base = times[names[0]]
    out = {}
    for n in names:
        paired = [t - b for t, b in zip(times[n], base)]
        out[n] = {
            "ms_per_trial": 1000 * statistics.median(times[n]),
            "overhead_ms": 1000 * statistics.median(paired),
            "ratio": statistics.median(t / b for t, b in zip(times[n], base)),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tasks", default=",".join(TASKS), help="comma-separated task names")
    ap.add_argument("--quick", action="store_true", help="2 tasks, fewer rounds")
    ap.add_argument("--seed", type=int, default=0, help="seed of the studies (samplers, runs)")
    ap.add_argument("--worker-trials", type=int, default=40, help="trials per workers study")
    ap.add_argument("--worker-rounds", type=int, default=2, help="rounds of the 1/2 arms")
    ap.add_argument("--trivial", type=int, default=200, help="trials per overhead block")
    ap.add_argument("--rounds", type=int, default=6, help="rounds of the overhead blocks")
    ap.add_argument(
        "--skip", default="", help="comma-separated parts to skip: steps,workers,storage"
    )
    args = ap.parse_args(argv)
    os.environ.setdefault("TQDM_DISABLE", "1")
    import torch

    torch.set_num_threads(1)
    tasks = [t for t in args.tasks.split(",") if t]
    if args.quick:
        tasks = [t for t in tasks if t in QUICK_TASKS] or list(QUICK_TASKS)
        args.worker_trials, args.worker_rounds = 20, 1
        args.trivial, args.rounds = 100, 4
    skip = set(args.skip.split(","))
    report: dict = {}
    start = time.perf_counter()
    if "steps" not in skip:
        report["steps"] = [steps_to_grid_best(t, args.seed) for t in tasks]
        _print_steps(report["steps"])
    if "workers" not in skip:
        order = [1, 2, 2, 1] * args.worker_rounds
        runs = [trials_per_minute(w, args.worker_trials, args.seed) for w in order]
        report["workers"] = runs
        _print_workers(runs, "wine-mlp, 15 epochs = 135 steps a trial")
        runs = [trials_per_minute(w, args.worker_trials, args.seed, SLEEPER) for w in order]
        report["workers_sleeping"] = runs
        _print_workers(runs, "trials that sleep 0.1 s: the coordination alone")
    if "storage" not in skip:
        report["storage"] = storage_overhead(args.trivial, args.rounds)
        _print_storage(report["storage"], args.trivial, args.rounds)
    out = Path(__file__).resolve().parent / ".cache" / "tune_cost.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1, default=str))
    print(f"\n{time.perf_counter() - start:.0f} s; results in {out}")
    return 0


def _print_steps(rows: list[dict]) -> None:
    print("\n1. optimizer steps to reach the full grid's best (ratio to the full grid's steps);"
          f" load {_load()}")  # fmt: skip
    print("task | run steps | grid best lr -> metric (noise) | arm | steps to reach | ratio |"
          " whole study: steps, ratio | trials (complete) | best lr")  # fmt: skip
    totals = {}
    for r in rows:
        for arm, a in r["arms"].items():
            ratio = a["steps"] / r["full_steps"]
            mark = "" if a["reached"] else " (not reached)"
            lr = "-" if a["best_lr"] is None else f"{a['best_lr']:.3g}"
            print(
                f"{r['task']} | {r['run_steps']} | {r['grid_best_lr']:.3g} ->"
                f" {r['grid_best']:.4f} ({r['noise']:.4f}) | {arm} | {a['steps']} |"
                f" {ratio:.3f}{mark} | {a['whole']}, {a['whole'] / r['full_steps']:.3f} |"
                f" {a['trials']} ({a['complete']}) | {lr}"
            )
            t = totals.setdefault(arm, [0, 0, 0, 0])
            t[0] += a["steps"]
            t[1] += r["full_steps"]
            t[2] += a["reached"]
            t[3] += a["whole"]
    for arm, (steps, full, reached, whole) in totals.items():
        print(f"all tasks, {arm}: to reach {steps} / {full} steps = {steps / full:.3f}"
              f" (reached on {reached} of {len(rows)}); whole study {whole / full:.3f}")  # fmt: skip


def _print_workers(runs: list[dict], what: str) -> None:
    print(f"\n2. trials per minute, one journal-file study ({what}); load {_load()}")
    for w in (1, 2):
        rates = [r["per_min"] for r in runs if r["workers"] == w]
        spans = [f"{r['finished']} in {r['span_s']:.1f} s" for r in runs if r["workers"] == w]
        print(f"{w} worker(s): {statistics.median(rates):.1f} trials/min (runs: "
              f"{', '.join(f'{x:.1f}' for x in rates)}; {'; '.join(spans)})")  # fmt: skip
    one = [r["per_min"] for r in runs if r["workers"] == 1]
    two = [r["per_min"] for r in runs if r["workers"] == 2]
    print(f"speed-up 2 / 1: {statistics.median(two) / statistics.median(one):.2f}")
    extra = sum(r["other"] for r in runs)
    print(f"trials not finished (surplus or failed) over all runs: {extra}")


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def _print_storage(out: dict, trials: int, rounds: int) -> None:
    print(f"\n3. time per trial, trivial objective ({rounds} blocks of {trials} trials per arm);"
          f" load {_load()}")  # fmt: skip
    for name, v in out.items():
        print(f"{name}: {v['ms_per_trial']:.2f} ms/trial; over Optuna in-memory"
              f" {v['overhead_ms']:+.2f} ms (x{v['ratio']:.2f})")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
