"""How good is ``lrkit.Guard``? False alarms on healthy runs, and faults caught or missed.

Every run uses ``Guard()`` at its defaults (every=50, window=50, z=6, max_skips=3,
max_rollbacks=3, factor=0.5) and has an unguarded twin from the same seed.

1. **Healthy runs** (no fault): the five bundled tasks at their default lr, with a constant lr
   and with ``warmup(5%) >> cosine(to=0.01)``, seeds 0-2, with three times the default epochs
   where a run is cheap (``EPOCHS``); plus plain loops (``guardq/plain.py``): AdamW on a small
   MLP, 2,000 steps of 32-row regression batches, on ``diabetes`` and on synthetic data with
   Student-t noise. Any skip or rollback is a false alarm. A guard that does nothing must
   change nothing: the guarded run's per-step losses and final validation loss are compared
   bitwise with the unguarded twin's.
2. **Faults** (``guardq/faults.py``), on the cosine runs, each at a batch drawn per task, fault
   and seed in [max(20, 10%), 80%] of the run: ``nan`` (one NaN loss), ``spike10`` and
   ``spike100`` (the loss and its gradients x10, x100 for one batch), ``explode`` (the gradients
   x1e6), ``nan-run`` (3, 4, 5 NaN batches in a row for seeds 0, 1, 2: max_skips=3, so 4 and 5
   call for a rollback), ``lr100`` (the schedule times 100 from that step on: a real
   divergence) and ``lr100-start`` (trained at 100x the good rate from the first step). Reported against the clean unguarded run (same task and seed): did the run
   finish (status completed, final losses finite), did the guard give up (``GuardExhausted``,
   status failed), did it act at the faulty batches, its other actions, and the final
   validation loss relative to the clean run's. *Recovered*: finished with a final validation
   loss at most 10% (or 0.01) above the clean run's. *Completed far above its start*: status
   completed with a final validation loss, or a median training loss over the last tenth of
   the batches, over 10x the run's start (the median of its first 3 training losses); a guarded
   run must never end so.

Nothing is cached; 282 runs, about 8 minutes with ``--jobs 1`` on a shared 2-core machine.

    .venv/bin/python benchmarks/guard_quality.py --jobs 1 [--markdown] [--verbose]
    .venv/bin/python benchmarks/guard_quality.py --tasks digits-mlp --seeds 1   # a quick look
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import math
import random
import statistics
import struct
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

TASKS = ("pychar-gru", "digits-cnn", "digits-mlp", "diabetes-mlp", "wine-mlp")  # slowest first
EPOCHS = {"digits-mlp": 30, "wine-mlp": 45, "diabetes-mlp": 36}  # else the task's default
SCHEDULES = {"const": "constant", "cos": "warmup(5%) >> cosine(to=0.01)"}
FAULTS = ("nan", "spike10", "spike100", "explode", "nan-run", "lr100", "lr100-start")
PLAIN = "plain"  # the task name of plain-loop runs; their schedule names the data set


@dataclasses.dataclass(frozen=True)
class Case:
    task: str
    schedule: str  # a SCHEDULES key, or the data set of a plain-loop run
    seed: int
    fault: str = ""
    guarded: bool = True

    @property
    def name(self) -> str:
        arm = "guard" if self.guarded else "bare"
        return f"{self.task}-{self.schedule}-s{self.seed}{'-' + self.fault if self.fault else ''}-{arm}"

    @property
    def twin(self) -> Case:
        """The unguarded clean run this one is compared with."""
        return dataclasses.replace(self, fault="", guarded=False)


def cases(tasks, seeds) -> list[Case]:
    from guardq.plain import DATASETS

    out = [
        Case(t, s, seed, guarded=g)
        for t in tasks
        for s in SCHEDULES
        for seed in seeds
        for g in (True, False)
    ]
    out += [
        Case(PLAIN, d, seed, guarded=g) for d in DATASETS for seed in seeds for g in (True, False)
    ]
    out += [
        Case(t, "cos", seed, f, g)
        for t in tasks
        for f in FAULTS
        for seed in seeds
        for g in (True, False)
    ]
    return out


def fault_plan(case: Case, total: int) -> tuple[int, int]:
    """``(batch, length)`` of the fault: the same for both arms."""
    if case.fault == "lr100-start":
        return 0, 1
    rng = random.Random(f"{case.task}/{case.fault}/{case.seed}")
    at = rng.randint(max(20, total // 10), total * 8 // 10)
    return at, (3 + case.seed % 3 if case.fault == "nan-run" else 1)


# -- running ------------------------------------------------------------------------------------
def run(case: Case) -> dict:
    start = time.perf_counter()
    if case.task == PLAIN:
        from guardq.plain import run_plain

        out = run_plain(case.schedule, case.seed, case.guarded)
        out["fault_batches"] = []
    else:
        out = run_fit(case)
    losses = out.pop("losses")
    events = [e for e in out.pop("events") if e["action"] != "snapshot"]
    return {
        "case": case,
        **out,
        "digest": hashlib.sha1(struct.pack(f"{len(losses)}d", *losses)).hexdigest(),
        "last_loss": losses[-1] if losses else math.nan,
        "start": statistics.median(losses[:3]) if losses else math.nan,
        "end": statistics.median(losses[-max(1, len(losses) // 10) :]) if losses else math.nan,
        "skips": sum(e["action"] == "skip" for e in events),
        "rollbacks": sum(e["action"] == "rollback" for e in events),
        "acted": sorted({e["batch"] for e in events}),
        "events": [(e["batch"], e["action"], e["reason"]) for e in events],
        "time": time.perf_counter() - start,
    }


def run_fit(case: Case) -> dict:
    import torch
    from guardq.faults import Recorder, lr_jump, make_fault

    from lrkit import Guard, GuardExhausted, fit, get_task

    torch.set_num_threads(1)
    task = get_task(case.task)
    epochs = EPOCHS.get(case.task, task.epochs)
    total = epochs * len(task.build_loaders(case.seed)[0])
    schedule, callbacks, fault_batches = SCHEDULES[case.schedule], [], []
    if case.fault:
        at, length = fault_plan(case, total)
        fault_batches = list(range(at, at + length))
        if case.fault.startswith("lr100"):
            schedule = lr_jump(schedule, at)
        else:
            callbacks.append(make_fault(case.fault, at, length))
    guard, recorder = Guard(), Recorder()
    callbacks += [guard, recorder] if case.guarded else [recorder]
    try:
        fit(
            task,
            schedule=schedule,
            epochs=epochs,
            seed=case.seed,
            callbacks=callbacks,
            progress=False,
        )
    except GuardExhausted:
        pass  # the history says "failed"
    history = recorder.history
    last = history.epochs_log[-1] if history.epochs_log else {}
    return {
        "status": history.status,
        "batches": history.steps,
        "losses": history.loss,
        "val_loss": last.get("val_loss", math.nan),
        "metric": last.get("metric", math.nan),
        "events": guard.events if case.guarded else [],
        "fault_batches": fault_batches,
    }


def run_all(todo: list[Case], jobs: int) -> list[dict]:
    """Every case, in ``jobs`` processes (the slowest tasks come first in ``cases``)."""
    if jobs <= 1:
        return list(map(run, todo))
    with ProcessPoolExecutor(jobs) as pool:
        return list(pool.map(run, todo, chunksize=1))


# -- reading ------------------------------------------------------------------------------------
def finished(r: dict) -> bool:
    return (
        r["status"] == "completed"
        and math.isfinite(r["last_loss"])
        and math.isfinite(r["val_loss"])
    )


def ratio(r: dict, clean: dict) -> float:
    return r["val_loss"] / clean["val_loss"] if finished(r) else math.inf


def far_above_start(r: dict) -> bool:
    """Completed, yet ended at over 10x its start (validation or training loss)."""
    worst = max(r["val_loss"], r["end"])
    return r["status"] == "completed" and not worst <= 10 * r["start"]


def recovered(r: dict, clean: dict) -> bool:
    return finished(r) and r["val_loss"] <= max(1.1 * clean["val_loss"], clean["val_loss"] + 0.01)


def healthy_rows(results: dict) -> list[list[str]]:
    groups: dict[tuple[str, str], list[dict]] = {}
    for case, r in results.items():
        if not case.fault and case.guarded:
            groups.setdefault((case.task, case.schedule), []).append(r)
    groups["all", ""] = [r for g in groups.values() for r in g]
    rows = []
    for (task, schedule), rs in groups.items():
        batches = sum(r["batches"] for r in rs)
        skips, rollbacks = sum(r["skips"] for r in rs), sum(r["rollbacks"] for r in rs)
        same = sum(
            r["digest"] == results[r["case"].twin]["digest"]
            and r["val_loss"] == results[r["case"].twin]["val_loss"]
            for r in rs
        )
        quiet = [r for r in rs if not r["events"]]
        quiet_same = sum(r["digest"] == results[r["case"].twin]["digest"] for r in quiet)
        rows.append(
            [
                task if task != PLAIN else f"plain loop, {schedule}",
                "" if task == PLAIN else SCHEDULES.get(schedule, ""),
                str(len(rs)),
                str(batches),
                f"{skips} / {rollbacks}",
                f"{1000 * skips / batches:.2f} / {1000 * rollbacks / batches:.2f}",
                str(sum(bool(r["events"]) for r in rs)),
                str(sum(r["status"] == "failed" for r in rs)),
                f"{same}/{len(rs)} ({quiet_same}/{len(quiet)})",
            ]
        )
    return rows


HEALTHY_HEAD = [
    "healthy runs",
    "schedule",
    "runs",
    "batches",
    "skips / rollbacks",
    "per 1000 batches",
    "runs with an action",
    "gave up",
    "bitwise = unguarded (quiet runs)",
]


def fault_rows(results: dict) -> list[list[str]]:
    rows = []
    for fault in FAULTS:
        for guarded in (True, False):
            rs = [r for c, r in results.items() if c.fault == fault and c.guarded == guarded]
            if not rs:
                continue
            clean = [results[r["case"].twin] for r in rs]
            ratios = sorted(ratio(r, c) for r, c in zip(rs, clean))
            caught = sum(set(r["fault_batches"]) <= set(r["acted"]) for r in rs)
            other = sum(len(set(r["acted"]) - set(r["fault_batches"])) for r in rs)
            rows.append(
                [
                    fault,
                    "guard" if guarded else "none",
                    str(len(rs)),
                    str(sum(map(finished, rs))),
                    str(sum(r["status"] == "failed" for r in rs)) if guarded else "-",
                    str(sum(map(far_above_start, rs))),
                    str(caught) if guarded and not fault.startswith("lr100") else "-",
                    f"{sum(r['skips'] for r in rs)} / {sum(r['rollbacks'] for r in rs)}"
                    if guarded
                    else "-",
                    str(other) if guarded and not fault.startswith("lr100") else "-",
                    f"{statistics.median(ratios):.3g} ({ratios[-1]:.3g})",
                    str(sum(recovered(r, c) for r, c in zip(rs, clean))),
                ]
            )
    return rows


FAULT_HEAD = [
    "fault",
    "guard",
    "runs",
    "finished",
    "gave up",
    "completed far above its start",
    "caught at the fault",
    "skips / rollbacks",
    "batches acted on elsewhere",
    "val loss / clean: median (worst)",
    "recovered",
]


def table(head: list[str], rows: list[list[str]], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])
    widths = [max(len(x) for x in col) for col in zip(head, *rows)]
    return "\n".join("  ".join(x.ljust(w) for x, w in zip(r, widths)) for r in [head, *rows])


def verbose(results: dict) -> str:
    lines = []
    for case, r in results.items():
        if case.guarded or case.fault:
            clean = results[case.twin]
            lines.append(
                f"{case.name:<40} {r['status']:<9} val {r['val_loss']:.4g}"
                f" (clean {clean['val_loss']:.4g}) fault at {r['fault_batches']}"
                f" {r['time']:.1f}s {r['events'][:6]}"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--jobs", type=int, default=1, help="processes running the runs")
    ap.add_argument("--tasks", default=",".join(TASKS), help="comma-separated task names")
    ap.add_argument("--seeds", type=int, default=3, help="seeds 0 .. N-1 (default 3)")
    ap.add_argument("--markdown", action="store_true", help="Markdown tables")
    ap.add_argument("--verbose", action="store_true", help="every run and the guard's actions")
    args = ap.parse_args(argv)
    todo = cases([t for t in TASKS if t in args.tasks.split(",")], range(args.seeds))
    start = time.perf_counter()
    results = {r["case"]: r for r in run_all(todo, args.jobs)}
    print(f"{len(todo)} runs in {time.perf_counter() - start:.0f} s with {args.jobs} job(s)\n")
    if args.verbose:
        print(verbose(results) + "\n")
    print(table(HEALTHY_HEAD, healthy_rows(results), args.markdown) + "\n")
    print(table(FAULT_HEAD, fault_rows(results), args.markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
