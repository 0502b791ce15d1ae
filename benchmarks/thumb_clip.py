"""Does gradient clipping allow higher rates? ``lrkit.clip_study`` on every bundled task.

For each task, its defaults: thresholds 0.25x, 1x and 4x the median gradient norm of a short run
at the task's lr; lrs from the task's lr / 10 up, 0.25 decades apart, each arm climbing until it
is past its peak (two runs in a row that neither train nor beat its own best); ``warmup(5%) >>
cosine`` over the task's epochs; a run trains when it does not diverge, its final metric is
within 5% (relative) of the study's best and its final validation loss is no higher than the
untrained model's; ``--seeds`` seeds per point (default 1). Writes
``benchmarks/thumb/<task>-clip.json`` and ``.png`` and prints a Markdown table: the largest
trainable lr per arm and the verdicts.

    .venv/bin/python benchmarks/thumb_clip.py --jobs 1                 # about 6 min on 2 cores
    .venv/bin/python benchmarks/thumb_clip.py --tasks digits-mlp       # a quick look
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

OUT = Path(__file__).resolve().parent / "thumb"  # --out changes it
TASKS = ("digits-mlp", "digits-cnn", "wine-mlp", "diabetes-mlp", "pychar-gru")


def one(task_name: str, seeds: int, out: Path = OUT) -> dict:
    import torch

    import lrkit

    torch.set_num_threads(1)
    start = time.perf_counter()
    study = lrkit.clip_study(task_name, seeds=seeds, progress=False)
    out.mkdir(parents=True, exist_ok=True)
    study.to_json(out / f"{task_name}-clip.json")
    study.plot(out / f"{task_name}-clip.png")
    return {"task": task_name, "study": study, "seconds": time.perf_counter() - start}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", default=",".join(TASKS))
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--out", type=Path, default=OUT, help="folder for the JSON and PNG files")
    ap.add_argument("--report", action="store_true", help="only print the tables of --out's JSON")
    args = ap.parse_args()
    names = [t.strip() for t in args.tasks.split(",") if t.strip()]
    if args.report:
        from lrkit.tune.thumb import ClipStudy

        results = [{"task": n, "study": ClipStudy.load(args.out / f"{n}-clip.json")} for n in names]
    elif args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            results = list(pool.map(one, names, [args.seeds] * len(names), [args.out] * len(names)))
    else:
        results = [one(n, args.seeds, args.out) for n in names]
    print(markdown(results))
    for r in results:
        print(
            f"\n{r['task']}:\n{r['study'].table()}\n{r['study'].grid_table()}\n{r['study'].verdict}"
        )


def markdown(results: list[dict]) -> str:
    """The summary table: per task, each arm's largest trainable lr, the validation loss
    there, the best final metric, the runs and their seconds."""
    lines = [
        "| task | median grad norm | largest trainable lr: none / 0.25x / 1x / 4x"
        " | val loss there | best metric | runs | seconds |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        s = r["study"]
        tops, losses, bests = [], [], []
        for i in range(len(s.arms)):
            mine = [x for x in s.runs if x["arm"] == i]
            top = s.largest(i)
            tops.append("-" if top is None else f"{top:.3g}")
            at = [x.get("val_loss", float("nan")) for x in mine if x["lr"] == top]
            losses.append(f"{at[0]:.3g}" if at else "-")
            ok = [x["metric"] for x in mine if not x["diverged"]]
            bests.append("-" if not ok else f"{(max if s.higher_is_better else min)(ok):.4g}")
        seconds = sum(x["seconds"] for x in s.runs)
        lines.append(
            f"| {r['task']} | {s.median_norm:.3g} | {' / '.join(tops)} | {' / '.join(losses)}"
            f" | {' / '.join(bests)} ({s.metric_name}) | {len(s.runs)} | {seconds:.0f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
