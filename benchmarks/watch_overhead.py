"""What does a Watch cost per training step?

The ``digits-mlp`` task's model (64-128-10) and its training batches (64 rows), SGD with
Nesterov momentum as the task builds it, one torch thread. Several arms train the same model,
each with its own optimizer (so all do the same arithmetic), in blocks of ``--steps`` steps that
rotate A B C ... then ... C B A, so slow drifts of a noisy machine hit every arm alike:

- ``bare``: the plain loop (the reference);
- ``bare again``: the plain loop once more (the method's noise floor);
- ``grad norms only``: the loop plus one fused ``torch._foreach_norm`` of the gradients read
  back as numbers: the floor of any per-step gradient norm;
- ``Watch``: ``Watch(model, optimizer)`` at its defaults (every=25, flush_every=64, records
  kept in memory), ``after_backward(loss)`` / ``after_step()`` around ``optimizer.step()``;
- ``Watch + CSV, JSONL`` and ``Watch + TensorBoard`` (``--sinks``): the same, writing those
  files in a temporary folder.

For each arm: the median time per step, the ratio of its mean step time to the bare arm's (the
figure: it carries the rarer, costlier steps, the update ratios every 25 and the read-back
every 64) and the median of the per-block ratios to the bare block beside it.

    python benchmarks/watch_overhead.py --steps 64 --repeats 150
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch

from lrkit.tasks import get_task
from lrkit.watch import CSVSink, JSONLSink, TensorBoardSink, Watch


def build(seed: int = 0):
    task = get_task("digits-mlp")
    model = task.build_model(seed)
    train_loader, _ = task.build_loaders(seed)
    return task, model, list(train_loader)


class NormsOnly:
    """One fused ``torch._foreach_norm`` of the gradients a step, read back as numbers."""

    def __init__(self, model):
        self.params = list(model.parameters())

    def after_backward(self, loss) -> None:
        self.norms = [x.item() for x in torch._foreach_norm([p.grad for p in self.params])]

    def after_step(self) -> None: ...

    def close(self) -> None: ...


def block(task, model, opt, watch, data, steps: int, start: int) -> float:
    """Seconds per step over ``steps`` training steps."""
    n = len(data)
    t0 = time.perf_counter()
    for i in range(start, start + steps):
        batch = data[i % n]
        opt.zero_grad(set_to_none=True)
        loss = task.loss(model, batch)
        loss.backward()
        if watch is None:
            opt.step()
        else:
            watch.after_backward(loss)
            opt.step()
            watch.after_step()
    return (time.perf_counter() - t0) / steps


def overhead(steps: int, repeats: int, sinks: bool) -> dict[str, dict[str, float]]:
    task, model, data = build()
    arms = {
        "bare": None,
        "bare again": None,
        "grad norms only": NormsOnly(model),
        "Watch": "watch",
    }
    if sinks:
        arms["Watch + CSV, JSONL"] = "files"
        arms["Watch + TensorBoard"] = "tensorboard"
    opts = {name: task.build_optimizer(model, 0.01) for name in arms}
    for name, kind in arms.items():
        if kind == "watch":
            arms[name] = Watch(model, opts[name])
        elif kind in ("files", "tensorboard"):
            folder = tempfile.mkdtemp(prefix="watch-overhead-")
            files = [CSVSink(folder), JSONLSink(folder)]
            arms[name] = Watch(
                model, opts[name], sinks=files if kind == "files" else [TensorBoardSink(folder)]
            )
    for name, watch in arms.items():  # warm up allocator and caches
        block(task, model, opts[name], watch, data, 2 * steps, 0)
    times: dict[str, list[float]] = {name: [] for name in arms}
    names = list(arms)
    for r in range(repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            times[name].append(block(task, model, opts[name], arms[name], data, steps, r * steps))
    for watch in arms.values():
        if watch is not None:
            watch.close()
    bare = times["bare"]
    out = {}
    for name, ts in times.items():
        pairs = [b / a for a, b in zip(bare, ts)]
        q1, _, q3 = statistics.quantiles(pairs, n=4)
        out[name] = {
            "median_ms": 1e3 * statistics.median(ts),
            "mean_ratio": statistics.fmean(ts) / statistics.fmean(bare),
            "median_pair_ratio": statistics.median(pairs),
            "pair_q1": q1,
            "pair_q3": q3,
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=64, help="training steps per block (64)")
    ap.add_argument("--repeats", type=int, default=150, help="blocks per arm (150)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument(
        "--sinks", action="store_true", help="add arms writing CSV + JSONL, and TensorBoard files"
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    res = overhead(args.steps, args.repeats, args.sinks)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, digits-mlp,"
        f" {args.repeats} blocks x {args.steps} steps per arm ({time.perf_counter() - t0:.0f} s)"
    )
    print("| arm | ms/step (median) | ratio of means | median block ratio (quartiles) |")
    print("|---|---:|---:|---|")
    for name, r in res.items():
        print(
            f"| {name} | {r['median_ms']:.4f} | {r['mean_ratio']:.4f} |"
            f" {r['median_pair_ratio']:.4f} ({r['pair_q1']:.4f} .. {r['pair_q3']:.4f}) |"
        )


if __name__ == "__main__":
    main()
