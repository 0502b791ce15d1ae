"""Does the linear or the square-root rule hold? ``lrkit.batch_size_study`` on every bundled task.

For each task: batch sizes 8, 16, 32, ... (powers of 2 up to the training data's size, at most
512), each picked by ``pick_lr`` for ``warmup(5%) >> cosine`` over the task's epochs with a
budget of 1.5 full runs (raised where a run is too short for a pick), with ``--seeds`` seeds
(default 3: the row's lr is their geometric mean, the fit uses every pick). Writes
``benchmarks/thumb/<task>-batch-size.json`` and ``.png`` and prints a Markdown table: the
task's optimizer, k with its 95% interval, the verdict and where each rule stops holding.

    .venv/bin/python benchmarks/thumb_batch_size.py --jobs 1              # about 6 min on 2 cores
    .venv/bin/python benchmarks/thumb_batch_size.py --tasks wine-mlp --seeds 1   # a quick look
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

OUT = Path(__file__).resolve().parent / "thumb"  # --out changes it
TASKS = ("digits-mlp", "digits-cnn", "wine-mlp", "diabetes-mlp", "pychar-gru")
OPTIMIZER = {"digits-mlp": "SGD (Nesterov)", "digits-cnn": "Adam", "wine-mlp": "AdamW",
             "diabetes-mlp": "Adam", "pychar-gru": "Adam"}  # fmt: skip


def sizes_for(task_name: str) -> list[int]:
    from lrkit.tasks import get_task

    size = get_task(task_name).data.size
    return [b for b in (8, 16, 32, 64, 128, 256, 512) if b <= size]


def one(task_name: str, seeds: int, budget: float, out: Path = OUT) -> dict:
    import torch

    import lrkit

    torch.set_num_threads(1)
    start = time.perf_counter()
    study = lrkit.batch_size_study(task_name, sizes_for(task_name), budget=budget, seeds=seeds,
                                   progress=False)  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    study.to_json(out / f"{task_name}-batch-size.json")
    study.plot(out / f"{task_name}-batch-size.png")
    return {"task": task_name, "study": study, "seconds": time.perf_counter() - start}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", default=",".join(TASKS))
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--budget", type=float, default=1.5)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--out", type=Path, default=OUT, help="folder for the JSON and PNG files")
    ap.add_argument("--report", action="store_true", help="only print the tables of --out's JSON")
    args = ap.parse_args()
    names = [t.strip() for t in args.tasks.split(",") if t.strip()]
    if args.report:
        from lrkit.tune.thumb import BatchSizeStudy

        results = [
            {"task": n, "study": BatchSizeStudy.load(args.out / f"{n}-batch-size.json")}
            for n in names
        ]
    elif args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            more = ([a] * len(names) for a in (args.seeds, args.budget, args.out))
            results = list(pool.map(one, names, *more))
    else:
        results = [one(n, args.seeds, args.budget, args.out) for n in names]
    print(markdown(results))
    for r in results:
        print(f"\n{r['task']}:\n{r['study'].table()}\n{r['study'].summary()}")


def markdown(results: list[dict]) -> str:
    """The summary table: per task, the best lr per batch size, k, the verdict, where each
    rule stops holding, and the picks' seconds."""
    lines = [
        "| task | optimizer | batch sizes | best lr per batch size | k [95%] | verdict"
        " | linear rule | square-root rule | seconds |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        s = r["study"]
        lrs = ", ".join(f"{x:.3g}" for x in s.lrs)
        verdict = s.verdict.split(": ", 1)[1]
        stops = [line.split(" rule ", 1)[1] for line in s.stops]
        seconds = sum(row["seconds"] for row in s.rows)
        lines.append(
            f"| {r['task']} | {OPTIMIZER.get(r['task'], '?')} | {s.batch_sizes[0]}-"
            f"{s.batch_sizes[-1]} | {lrs} | {s.k:.2f} [{s.fit.low:.2f}, {s.fit.high:.2f}]"
            f" | {verdict} | {stops[0]} | {stops[1]} | {seconds:.0f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
