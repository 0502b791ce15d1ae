"""What does the sinks' flush cadence cost? (the bounded window a kill -9 may lose)

The ``digits-mlp`` task, one torch thread, a Watch at its defaults writing into a temporary
folder, in whole runs of ``--steps`` steps timed from the first step to the end of
``watch.close()`` (so work a writer thread puts off until the end is counted). Two pairs of
arms, alternated ABAB... over ``--repeats`` rounds, with a bare loop in each round; the figure
is the median over rounds of each pair's ratio (new / before), robust to a machine whose load
changes between rounds:

- ``CSV + JSONL``: the file sinks at their cadence (flush every 64 steps or 2 s) against the
  same sinks that flush only when their 64 KiB buffer fills (``flush_steps`` and
  ``flush_secs`` out of reach: what lrkit did before the cadence);
- ``TensorBoard``: the sink at its cadence (at most 64 steps wait for the writer's thread)
  against a writer queue of 4,096 events (before).

    python benchmarks/sink_cadence.py --steps 2000 --repeats 6
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch

from lrkit.tasks import get_task
from lrkit.watch import CSVSink, JSONLSink, TensorBoardSink, Watch

NEVER = {"flush_steps": 10**9, "flush_secs": 1e9}


def arms() -> dict[str, object]:
    def files(**cadence):
        return lambda d: [CSVSink(d, **cadence), JSONLSink(d, **cadence)]

    return {
        "CSV + JSONL, cadence 64 steps / 2 s": files(),
        "CSV + JSONL, no cadence (before)": files(**NEVER),
        "TensorBoard, 64 steps wait at most": lambda d: [TensorBoardSink(d)],
        "TensorBoard, queue of 4096 (before)": lambda d: [TensorBoardSink(d, flush_steps=4097)],
    }


def run(task, model, data, sinks, steps: int) -> float:
    """Milliseconds per step, to the end of ``watch.close()`` (no Watch when ``sinks`` is
    None)."""
    opt = task.build_optimizer(model, 0.01)
    watch = None if sinks is None else Watch(model, opt, sinks=sinks(tempfile.mkdtemp()))
    t0 = time.perf_counter()
    for i in range(steps):
        batch = data[i % len(data)]
        opt.zero_grad(set_to_none=True)
        loss = task.loss(model, batch)
        loss.backward()
        if watch is not None:
            watch.after_backward(loss)
        opt.step()
        if watch is not None:
            watch.after_step()
    if watch is not None:
        watch.close()
    return (time.perf_counter() - t0) / steps * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=2000, help="steps per run (2000)")
    ap.add_argument("--repeats", type=int, default=6, help="rounds (6)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    task = get_task("digits-mlp")
    model = task.build_model(0)
    data = list(task.build_loaders(0)[0])
    table = arms()
    times: dict[str, list[float]] = {name: [] for name in ["bare", *table]}
    names = list(table)
    for r in range(args.repeats):
        times["bare"].append(run(task, model, data, None, args.steps))
        for name in names if r % 2 == 0 else names[::-1]:
            times[name].append(run(task, model, data, table[name], args.steps))
    print(f"digits-mlp, 1 thread, {args.repeats} rounds of {args.steps}-step runs")
    print("| arm | ms/step (median, to the end of close) | runs |")
    print("|---|---:|---|")
    for name, ts in times.items():
        print(f"| {name} | {statistics.median(ts):.3f} | {' '.join(f'{t:.3f}' for t in ts)} |")
    for now, before in zip(names[::2], names[1::2]):
        pairs = [a / b for a, b in zip(times[now], times[before])]
        print(f"{now} / {before}: median of the rounds' ratios {statistics.median(pairs):.3f}")


if __name__ == "__main__":
    main()
