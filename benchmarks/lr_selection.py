"""How good is each way of choosing a learning rate? Regret against a dense grid, and cost.

Every task trains with the same schedule, ``warmup(5%) >> cosine``, for its own epochs. The
*oracle* is a grid of full runs at quarter-decade rates over five decades around where the task
trains (21 rates), two seeds each. Each method chooses one rate; that rate is trained in full
with the same two seeds, and scored by its mean final metric:

- normalised regret: ``clip((best - s*x) / (best - median), 0, 3)`` where ``best`` and
  ``median`` are the grid's best and median-ranked seed-mean metrics, ``x`` the method's, ``s``
  +1 when higher is better and -1 when lower is (diverged: 3), see ``lrsel/report.py``;
- cost: optimizer steps the method spent *choosing* (range tests, short runs, search trials),
  divided by the steps of one full run. The final training run at the chosen rate is not
  included (add 1 for it), except for Optuna, whose best trial is that run already.

Every training run, range test and choice is cached in ``benchmarks/.cache/`` (keys: task, lr,
seed, schedule, optimizer; for lrkit's methods also a hash of ``src/lrkit/find``), so a rerun
reads what it has and trains only what is missing.

    .venv/bin/python benchmarks/lr_selection.py --jobs 2             # everything
    .venv/bin/python benchmarks/lr_selection.py --tasks wine-mlp --methods pick_lr,default
    .venv/bin/python benchmarks/lr_selection.py --quick              # 3 fast tasks, no Optuna

Method ``tune-4`` (and ``tune-4-seed1`` ... ``-seed4``) is ``lrkit.tune`` on the lr alone, the
benchmark's schedule, a budget of 4 full runs in all (its range test, pick_lr's short runs and
every trial, a pruned one by the steps it ran), the lr range from its own range test; its rate
is the best complete trial's. Its cache key holds a hash of ``src/lrkit/tune`` as well.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lrsel.methods import LABELS, METHODS, optimizer_of, select  # noqa: E402
from lrsel.report import fmt, markdown, oracle, regret  # noqa: E402
from lrsel.runs import CACHE, mean_metric, run_all, runs_for  # noqa: E402
from lrsel.tasks import BENCH_TASKS, SCHEDULE, SEEDS, load_task  # noqa: E402

QUICK_TASKS = ("wine-mlp", "diabetes-mlp", "breast-cancer-sgd")


def _select(job: tuple[str, str]) -> dict:
    import torch

    torch.set_num_threads(1)
    return select(*job)


def choose_all(jobs: list[tuple[str, str]], processes: int) -> list[dict]:
    if processes > 1 and len(jobs) > 1:
        # run the slow ones first so the pool ends together
        with ProcessPoolExecutor(processes) as pool:
            list(pool.map(_select, jobs, chunksize=1))
    return [_select(job) for job in jobs]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tasks", default=",".join(BENCH_TASKS), help="comma-separated task names")
    ap.add_argument("--methods", default=",".join(METHODS), help="comma-separated methods")
    ap.add_argument("--jobs", type=int, default=1, help="processes (torch on 1 thread in each)")
    ap.add_argument("--quick", action="store_true", help="3 fast tasks, no Optuna")
    ap.add_argument("--markdown", action="store_true", help="print Markdown tables")
    args = ap.parse_args(argv)
    os.environ.setdefault("TQDM_DISABLE", "1")
    tasks = [t for t in args.tasks.split(",") if t]
    methods = [m for m in args.methods.split(",") if m]
    if args.quick:
        tasks = [t for t in tasks if t in QUICK_TASKS]
        methods = [m for m in methods if not m.startswith("optuna")]
    for name, known, what in ((tasks, BENCH_TASKS, "task"), (methods, METHODS, "method")):
        bad = [x for x in name if x not in known]
        if bad:
            ap.error(f"unknown {what} {bad[0]!r}; known: {', '.join(known)}")
    start = time.perf_counter()

    # 1. the oracle grid
    grid_specs = [s for t in tasks for s in runs_for(t, BENCH_TASKS[t].grid, SEEDS, SCHEDULE)]
    run_all(grid_specs, args.jobs)
    # 2. every method's choice, then 3. its full runs
    jobs = [(t, m) for t in tasks for m in methods]
    jobs.sort(key=lambda j: not j[1].startswith(("optuna", "tune", "pick_lr", "torch-lr-finder")))
    choices = dict(zip(jobs, choose_all(jobs, args.jobs)))
    evals = [
        s
        for (t, m), c in choices.items()
        if c["lr"] is not None
        for s in runs_for(t, [c["lr"]], SEEDS, SCHEDULE, optimizer_of(m))
    ]
    run_all(evals, args.jobs)

    results = {}
    for t in tasks:
        bench, task = BENCH_TASKS[t], load_task(t)
        hib = task.metric.higher_is_better
        means = [mean_metric(run_all(runs_for(t, [lr], SEEDS, SCHEDULE))) for lr in bench.grid]
        o = oracle(bench.grid, means, hib)
        full = task.epochs * len(task.build_loaders(0)[0])
        rows = {}
        for m in methods:
            c = choices[(t, m)]
            metric = None
            if c["lr"] is not None:
                runs = run_all(runs_for(t, [c["lr"]], SEEDS, SCHEDULE, optimizer_of(m)))
                metric = mean_metric(runs)
            rows[m] = {
                "lr": c["lr"],
                "metric": metric,
                "regret": regret(o, metric, hib),
                "cost": c["steps"] / full,
                "note": c["note"],
            }
        results[t] = {
            "oracle": o,
            "metric": task.metric.name,
            "full_steps": full,
            "grid": dict(zip(bench.grid, means)),
            "methods": rows,
        }
    _print(results, tasks, methods, args.markdown)
    out = CACHE / "lr_selection.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1, default=str))
    print(f"\n{time.perf_counter() - start:.0f} s; results in {out}")
    return 0


def _print(results: dict, tasks: list[str], methods: list[str], md: bool) -> None:
    for t in tasks:
        r = results[t]
        o = r["oracle"]
        print(
            f"\n{t} ({BENCH_TASKS[t].kind}, {BENCH_TASKS[t].optimizer}; {r['metric']},"
            f" one run = {r['full_steps']} steps): oracle lr {o['lr']:.3g} -> {o['metric']:.4f},"
            f" grid median {abs(o['median']):.4f}"
        )
        rows = [
            [
                LABELS[m],
                fmt(v["lr"]),
                fmt(v["metric"], ".4f"),
                fmt(v["regret"], ".2f"),
                fmt(v["cost"], ".2f"),
                v["note"],
            ]
            for m, v in r["methods"].items()
        ]
        _table(["method", "lr", r["metric"], "regret", "cost (runs)", "note"], rows, md)
    print("\noverall (mean over tasks; worst task's regret)")
    rows = []
    for m in methods:
        regs = [results[t]["methods"][m]["regret"] for t in tasks]
        costs = [results[t]["methods"][m]["cost"] for t in tasks]
        rows.append(
            [
                LABELS[m],
                fmt(statistics.mean(regs), ".3f"),
                fmt(max(regs), ".2f"),
                fmt(statistics.mean(costs), ".2f"),
            ]
            + [fmt(results[t]["methods"][m]["regret"], ".2f") for t in tasks]
        )
    for family, label in (("pick_lr", "lrkit pick_lr"), ("tune-4", "lrkit tune (budget 4)")):
        rows += _over_seeds([m for m in methods if m.startswith(family)], label, results, tasks)
    _table(["method", "mean regret", "worst", "mean cost (runs)", *tasks], rows, md)


def _over_seeds(seeded: list[str], label: str, results: dict, tasks: list[str]) -> list[list]:
    """A method over its seeds: the mean of every (task, seed) regret; [] for one seed."""
    if len(seeded) < 2:
        return []
    per_task = [statistics.mean(results[t]["methods"][m]["regret"] for m in seeded) for t in tasks]
    every = [results[t]["methods"][m]["regret"] for t in tasks for m in seeded]
    costs = [results[t]["methods"][m]["cost"] for t in tasks for m in seeded]
    return [
        [
            f"{label}, mean of {len(seeded)} seeds",
            fmt(statistics.mean(every), ".3f"),
            fmt(max(every), ".2f"),
            fmt(statistics.mean(costs), ".2f"),
        ]
        + [fmt(v, ".2f") for v in per_task]
    ]


def _table(headers: list[str], rows: list[list[str]], md: bool) -> None:
    if md:
        print(markdown(headers, rows))
        return
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    for line in [headers, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip())


if __name__ == "__main__":
    sys.exit(main())
