"""Compare: schedules at their own rates, learning-rate-free optimizers, fine-tuning.

Five parts, each a set of ``lrkit.compare`` calls (every entry's rate chosen for its own
schedule by ``pick_lr``, budget 1.5 full runs an entry, unless said; then seeded full runs of
every entry at that rate, seeds 0 and up):

- ``schedules``: on every bundled task, the entries constant, step, cosine, cyclic, onecycle
  and wsd, 3 seeds, each at its own rate and all at one rate (``same_lr="auto"``: constant's
  own rate), side by side in one result;
- ``tuned``: the same on digits-cnn and pychar-gru with each rate chosen by ``lr="tune"``
  (a small Optuna search over the lr alone, budget 6 runs an entry): does a better search
  for each schedule's own rate change the verdict?
- ``lrfree``: on four tasks, 3 seeds: AdamW with warmup-cosine at its own rate and at torch's
  default 1e-3 (not tuned), Prodigy and D-Adaptation Adam at their multiplier 1.0 (constant;
  Prodigy also with warmup-cosine, which its authors allow) and schedule-free AdamW at its
  own rate (compare gives it its authors' warmup, 5%);
- ``finetune``: on digits-transfer, scratch, full, layerwise and frozen, 10 seeds, each at its
  own rate and all at scratch's own rate (``same_lr="auto"``): the full fine-tune at the
  from-scratch rate is the same-rate ``full`` row;
- ``finetune-rates``: on digits-transfer, scratch and full at six fixed rates 1e-4..3e-2,
  5 seeds: where does each one's best rate lie?

Each compare writes ``compare.json`` and ``compare.png`` into ``benchmarks/compare/<part>/
<task>/`` (finetune-rates also ``rates.png``: the final metric against the lr); the script
then writes ``benchmarks/compare/summary.json`` (the numbers of the tables; a rerun of some
parts or tasks updates their entries only) and ``benchmarks/compare/tables.md`` (the Markdown
tables of BENCHMARKS.md) and prints them, with the wall time of every compare and of the whole.

    .venv/bin/python benchmarks/compare_schedules.py                      # every part
    .venv/bin/python benchmarks/compare_schedules.py --parts schedules --tasks wine-mlp
    .venv/bin/python benchmarks/compare_schedules.py --jobs 2             # compares in parallel

``--jobs N`` runs N compares at once, each in its own process with one torch thread.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUT = HERE / "compare"
ALL_TASKS = ("digits-mlp", "digits-cnn", "wine-mlp", "diabetes-mlp", "pychar-gru",
             "digits-transfer")  # fmt: skip
# part: (tasks, seeds, how each own rate is chosen)
PLAN = {
    "schedules": (ALL_TASKS, 3, "pick"),
    "tuned": (("digits-cnn", "pychar-gru"), 3, "tune"),
    "lrfree": (("digits-mlp", "digits-cnn", "wine-mlp", "diabetes-mlp"), 3, "pick"),
    "finetune": (("digits-transfer",), 10, "pick"),
    "finetune-rates": (("digits-transfer",), 5, "pick"),
}
PARTS = tuple(PLAN)
ADAMW_DEFAULT = 1e-3  # torch.optim.AdamW's default lr: AdamW "not tuned"
GRID = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2)  # finetune-rates: fixed rates of scratch and full


def entries(part: str) -> list[Any]:
    """The entries of one part (entry strings, or Entry objects for a fixed rate)."""
    from lrkit.tune.compare import DEFAULT_ENTRIES, SCHEDULES, Entry

    if part in ("schedules", "tuned"):
        return list(DEFAULT_ENTRIES)
    if part == "lrfree":
        return [
            "cosine+adamw",
            Entry(
                f"cosine+adamw@{ADAMW_DEFAULT:g}", SCHEDULES["cosine"], "adamw", lr=ADAMW_DEFAULT
            ),  # fmt: skip
            "prodigy",
            "cosine+prodigy",
            "dadapt-adam",
            "schedulefree-adamw",
        ]
    if part == "finetune":
        return ["scratch", "full", "layerwise", "frozen"]
    if part == "finetune-rates":
        return [Entry(f"{how}@{lr:g}", finetune=how, lr=lr) for how in ("scratch", "full")
                for lr in GRID]  # fmt: skip
    raise ValueError(f"unknown part {part!r}; known: {', '.join(PARTS)}")


def same_lr(part: str) -> str | None:
    """``"auto"`` (the first entry's own rate for every entry) where the part runs it."""
    return "auto" if part in ("schedules", "tuned", "finetune") else None


def run_one(job: tuple[str, str, int]) -> dict[str, Any]:
    """One compare: ``(part, task, seeds)``; its result is saved under ``OUT/part/task``."""
    import torch

    import lrkit

    part, task, seeds = job
    torch.set_num_threads(1)
    started = time.perf_counter()
    result = lrkit.compare(task, entries(part), seeds=seeds, lr=PLAN[part][2],
                           same_lr=same_lr(part), out=OUT / part / task,
                           progress=False)  # fmt: skip
    wall = time.perf_counter() - started
    print(f"{part} {task}: {wall:.1f} s ({len(result.rows)} rows)", flush=True)
    return {"part": part, "task": task, "wall": wall, **summarize_result(result)}


def summarize_result(result: Any) -> dict[str, Any]:
    """The numbers of the tables, from a CompareResult."""
    from dataclasses import asdict

    rows = []
    for r in result.rows:
        s = r.summary()
        rows.append({
            "label": r.label, "mode": r.mode, "schedule": r.schedule, "lr": r.lr, "how": r.how,
            "cost": r.cost, "optimizer": r.optimizer, "finetune": r.finetune,
            **{k: v for k, v in asdict(s).items()},
            "to_target": r.to_target(result.target, result.higher_is_better),
            "best_epoch": r.best_epoch(), "train_seconds": sum(x.seconds for x in r.runs),
        })  # fmt: skip
    verdicts = {m: asdict(result.verdict(m)) for m in ("own", "same") if result.mode_rows(m)}
    return {
        "metric": result.metric,
        "higher_is_better": result.higher_is_better,
        "epochs": result.epochs,
        "steps": result.steps,
        "seeds": result.seeds,
        "target": result.target,
        "same_lr": result.same_lr,
        "same_how": result.same_how,
        "rows": rows,
        "verdicts": verdicts,
        "seconds": result.seconds,
    }


# -- the tables ------------------------------------------------------------------------------
def _g(x: Any, digits: int = 4) -> str:
    if x is None or not isinstance(x, int | float) or not math.isfinite(x):
        return "-"
    return f"{x + 0.0:.{digits}g}" if x else "0"


def _metric(row: dict) -> str:
    if row["n"] >= 2:
        return f"{_g(row['mean'])} ± {_g(row['std'], 2)}"
    return f"{_g(row['mean'])} ({row['n']} run)" if row["n"] == 1 else "diverged"


def _interval(row: dict) -> str:
    ok = row["n"] >= 2 and math.isfinite(row["low"]) and math.isfinite(row["high"])
    return f"[{_g(row['low'])}, {_g(row['high'])}]" if ok else "-"


def _target(row: dict) -> str:
    t = row["to_target"]
    if not t["reached"]:
        return f"- (0/{t['runs']})"
    return f"{_g(t['steps'], 4)}, {_g(t['seconds'], 2)} s ({t['reached']}/{t['runs']})"


def _place(label: str, verdict: dict) -> str:
    if verdict["winner"] == label:
        return "**winner**"
    return "tied" if label in verdict["tied"] else ""


def spread(rows: list[dict]) -> float:
    """The range of the rows' mean final metrics (max - min over those with a mean)."""
    means = [r["mean"] for r in rows if math.isfinite(r["mean"])]
    return max(means) - min(means) if len(means) > 1 else math.nan


def markdown(s: dict) -> str:
    """One compare's table: each entry's own rate and (when run) the same rate side by side."""
    own = [r for r in s["rows"] if r["mode"] == "own"]
    same = {r["label"]: r for r in s["rows"] if r["mode"] == "same"}
    v_own, v_same = s["verdicts"]["own"], s["verdicts"].get("same")
    way = "higher" if s["higher_is_better"] else "lower"
    lines = [
        f"**{s['task']}** ({s['metric']}, {way} is better; {s['epochs']} epochs = {s['steps']}"
        f" steps a run; target {_g(s['target'])}; {s['wall']:.0f} s)",
        "",
    ]
    head = ["entry", "own lr (cost, runs)", "own: mean ± std", "95% interval", "steps to target",
            "best epoch", "own verdict"]  # fmt: skip
    if same:
        head += [f"same lr {_g(s['same_lr'], 3)}: mean ± std", "95% interval", "steps to target",
                 "same verdict"]  # fmt: skip
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in own:
        how = r["how"] if r["how"] not in ("pick", "tune") else f"{r['cost']:.2f}"
        cells = [f"`{r['label']}`", f"{_g(r['lr'], 3)} ({how})", _metric(r), _interval(r),
                 _target(r), _g(r["best_epoch"] + 1, 3), _place(r["label"], v_own)]  # fmt: skip
        if same:
            o = same.get(r["label"])
            cells += (["-", "-", "-", "-"] if o is None else
                      [_metric(o), _interval(o), _target(o), _place(o["label"], v_same)])  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"- own rates: {v_own['text']}"]
    if v_same:
        lines.append(f"- same lr ({s['same_how']}): {v_same['text']}")
        lines.append(
            f"- spread of the means: own rates {_g(spread(own), 3)}, same lr"
            f" {_g(spread(list(same.values())), 3)}"
        )
    return "\n".join(lines)


def grid_markdown(s: dict) -> str:
    """finetune-rates: the final metric of scratch and full at each fixed rate, a row a rate."""
    cells = {r["label"]: r for r in s["rows"]}
    ways = ("scratch", "full")
    lines = [
        f"**{s['task']}** ({s['metric']}; {s['seeds']} seeds a rate; {s['wall']:.0f} s)", "",
        "| lr | " + " | ".join(f"{w}: mean ± std | 95% interval" for w in ways) + " |",
        "|---|" + "---|---|" * len(ways),
    ]  # fmt: skip
    for lr in GRID:
        row = [f"{lr:g}"]
        for w in ways:
            c = cells[f"{w}@{lr:g}"]
            row += [_metric(c), _interval(c)]
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    for w in ways:
        mine = [cells[f"{w}@{lr:g}"] for lr in GRID]
        best = max(mine, key=lambda c: c["mean"] if math.isfinite(c["mean"]) else -math.inf)
        lines.append(f"- {w}: best by mean at lr {_g(best['lr'], 3)}, {_metric(best)}")
    lines.append(f"- verdict over all {len(cells)} (how, lr) pairs: {s['verdicts']['own']['text']}")
    return "\n".join(lines)


DECAY = ("step", "cosine", "wsd")  # the decaying schedules of the usual table's "decay" row


def rates_plot(s: dict, path: Path) -> None:
    """finetune-rates' figure: each way's mean final metric against the lr (log), with its 95%
    interval as error bars."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    cells = {r["label"]: r for r in s["rows"]}
    for i, way in enumerate(("scratch", "full")):
        rows = [cells[f"{way}@{lr:g}"] for lr in GRID]
        lrs = [lr * (0.96 if i == 0 else 1.04) for lr in GRID]  # apart, so the bars show
        mean = [r["mean"] for r in rows]
        err = [[r["mean"] - r["low"] for r in rows], [r["high"] - r["mean"] for r in rows]]
        ax.errorbar(lrs, mean, yerr=err, marker="o", capsize=3, label=way)
    ax.set_xscale("log")
    ax.set_xlabel("lr (constant schedule)")
    ax.set_ylabel(f"final validation {s['metric']} (mean, 95% interval)")
    ax.set_title(f"{s['task']}: from scratch vs full fine-tune ({s['seeds']} seeds a point)",
                 fontsize=10)  # fmt: skip
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def claims_markdown(compares: list[dict]) -> str:
    """The usual table's rows as numbers, one line a task of the ``schedules`` part: "better
    by" is in the metric's units, positive when the first is better."""
    head = ["task", "constant's rank (own)", "constant std vs decay std (own)",
            "cyclic better than constant by (own; steps to target)",
            "onecycle own better than at same lr by", "spread own / same",
            "entries tied own / same"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in compares:
        sign = 1 if c["higher_is_better"] else -1
        own = {r["label"]: r for r in c["rows"] if r["mode"] == "own"}
        same = {r["label"]: r for r in c["rows"] if r["mode"] == "same"}
        if not all(k in own and k in same for k in ("constant", "cyclic", "onecycle", *DECAY)):
            continue
        mean = own["constant"]["mean"]
        better = sum(1 for r in own.values() if sign * (r["mean"] - mean) > 0)
        equal = sum(1 for r in own.values() if r["mean"] == mean) - 1
        decay = ", ".join(_g(own[k]["std"], 2) for k in DECAY)
        steps = [own[k]["to_target"]["steps"] for k in ("cyclic", "constant")]
        lines.append("| " + " | ".join([
            c["task"] + (" (lr by tune)" if c["part"] == "tuned" else ""),
            f"{better + 1} of {len(own)}" + (f" ({equal} equal)" if equal else ""),
            f"{_g(own['constant']['std'], 2)} vs {decay}",
            f"{_g(sign * (own['cyclic']['mean'] - own['constant']['mean']), 2)};"
            f" {_g(steps[0], 3)} vs {_g(steps[1], 3)}",
            _g(sign * (own["onecycle"]["mean"] - same["onecycle"]["mean"]), 2),
            f"{_g(spread(list(own.values())), 2)} / {_g(spread(list(same.values())), 2)}",
            f"{_tied(c['verdicts']['own'])} / {_tied(c['verdicts']['same'])}",
        ]) + " |")  # fmt: skip
    return "\n".join(lines)


def _tied(v: dict) -> str:
    return f"winner {v['winner']}" if v["winner"] else str(len(v["tied"]))


def report(summaries: list[dict]) -> str:
    out = []
    sched = [s for s in summaries if s["part"] in ("schedules", "tuned")]
    if sched:
        out += ["### the usual table, in numbers", "", claims_markdown(sched), ""]
    for part in PARTS:
        mine = [s for s in summaries if s["part"] == part]
        if mine:
            out += [f"### {part}", ""]
            for s in mine:
                out += [grid_markdown(s) if part == "finetune-rates" else markdown(s), ""]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--parts", default=",".join(PARTS), help="comma-separated: " + ", ".join(PARTS))
    ap.add_argument("--tasks", default=None, help="only these tasks (comma-separated)")
    ap.add_argument("--seeds", type=int, default=None,
                    help="full runs of every entry (default: the part's, 3; finetune 10,"
                    " finetune-rates 5)")  # fmt: skip
    ap.add_argument("--jobs", type=int, default=1, help="compares at once (1 torch thread each)")
    args = ap.parse_args(argv)
    parts = [p for p in args.parts.split(",") if p]
    bad = [p for p in parts if p not in PARTS]
    if bad:
        ap.error(f"unknown part {bad[0]!r}; known: {', '.join(PARTS)}")
    if (args.seeds is not None and args.seeds < 1) or args.jobs < 1:
        ap.error(f"--seeds and --jobs must be >= 1, got {args.seeds} and {args.jobs}")
    only = None if args.tasks is None else {t for t in args.tasks.split(",") if t}
    tasks = {p: PLAN[p][0] for p in PARTS}
    jobs = [(p, t, args.seeds or PLAN[p][1]) for p in parts for t in tasks[p]
            if only is None or t in only]  # fmt: skip
    if not jobs:
        ap.error("no compare to run: the --tasks given are in none of the --parts")
    os.environ.setdefault("TQDM_DISABLE", "1")
    started = time.perf_counter()
    if args.jobs > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            done = list(pool.map(run_one, jobs, chunksize=1))
    else:
        done = [run_one(j) for j in jobs]
    wall = time.perf_counter() - started

    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "summary.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    keep = {(s["part"], s["task"]): s for s in old.get("compares", [])}
    keep.update({(s["part"], s["task"]): s for s in done})  # a partial rerun updates its own
    order = [(p, t) for p in PARTS for t in tasks[p]]
    compares = [keep[k] for k in order if k in keep]
    path.write_text(json.dumps({"compares": compares}, indent=1, default=str) + "\n")
    for s in compares:
        if s["part"] == "finetune-rates":
            rates_plot(s, OUT / s["part"] / s["task"] / "rates.png")
    text = report(compares)
    (OUT / "tables.md").write_text(text + "\n")
    print("\n" + text)
    print(f"{len(jobs)} compares, --jobs {args.jobs}: {wall:.1f} s wall in all; results in {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
