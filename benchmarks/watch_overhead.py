"""What does a Watch cost per training step?

The ``digits-mlp`` task's model (64-128-10) and its training batches (64 rows), SGD with
momentum as the task builds it, one torch thread. Blocks of ``--steps`` steps alternate a bare
loop (A) and the same loop with ``Watch(model, optimizer)`` at its defaults (B: every=25, no
sinks, records kept in memory) in the order A B B A A B B A ..., so slow drifts of a noisy
machine hit both alike. Each arm has its own optimizer over the same model, so both do the same
arithmetic. We print the median time per step of each arm, the ratio of the medians and the
median of the per-pair ratios (A and B blocks that ran back to back); ``--sinks`` adds CSV and
JSONL sinks in a temporary folder to B, ``--norm-only`` makes B compute the gradient norms and
nothing else (Watch's floor), ``--null`` makes B a bare loop too (the method's noise floor).

    python benchmarks/watch_overhead.py --steps 1 --repeats 3000
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch

from lrkit.tasks import get_task
from lrkit.watch import CSVSink, JSONLSink, Watch

CLOCK = time.perf_counter


def build(seed: int = 0):
    task = get_task("digits-mlp")
    model = task.build_model(seed)
    train_loader, _ = task.build_loaders(seed)
    data = list(train_loader)
    return task, model, data


def block(task, model, opt, watch, data, steps: int, start: int) -> float:
    """Seconds per step over ``steps`` training steps."""
    n = len(data)
    clock = CLOCK
    t0 = clock()
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
    return (clock() - t0) / steps


class NormOnly:
    """B does nothing but the one fused ``torch._foreach_norm`` of the gradients a step."""

    def __init__(self, model):
        self.params = list(model.parameters())

    def after_backward(self, loss) -> None:
        self.norms = torch._foreach_norm([p.grad for p in self.params])

    def after_step(self) -> None: ...


def overhead(
    steps: int, repeats: int, sinks: bool, null: bool, norm_only: bool = False
) -> dict[str, float]:
    task, model, data = build()
    bare = task.build_optimizer(model, 0.01)
    watched = task.build_optimizer(model, 0.01)
    folder = tempfile.mkdtemp(prefix="watch-overhead-")
    watch = Watch(model, watched, sinks=[CSVSink(folder), JSONLSink(folder)] if sinks else [])
    if norm_only:  # the floor: what measuring the gradient norms alone costs
        watch = NormOnly(model)
    if null:  # the noise floor: B is a bare loop too
        watch = None
    for opt, w in ((bare, None), (watched, watch)):  # warm up allocator and caches
        block(task, model, opt, w, data, 50, 0)
    a_times, b_times = [], []
    for r in range(repeats):
        order = ("A", "B") if r % 2 == 0 else ("B", "A")
        for arm in order:
            if arm == "A":
                a_times.append(block(task, model, bare, None, data, steps, r * steps))
            else:
                b_times.append(block(task, model, watched, watch, data, steps, r * steps))
    if isinstance(watch, Watch):
        watch.close()
    pairs = [b / a for a, b in zip(a_times, b_times)]
    q1, _, q3 = statistics.quantiles(pairs, n=4)
    return {
        "bare_ms": 1e3 * statistics.median(a_times),
        "watched_ms": 1e3 * statistics.median(b_times),
        "ratio_of_medians": statistics.median(b_times) / statistics.median(a_times),
        "median_pair_ratio": statistics.median(pairs),
        "mean_ratio": statistics.fmean(b_times) / statistics.fmean(a_times),
        "pair_q1": q1,
        "pair_q3": q3,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=1, help="training steps per block")
    ap.add_argument("--repeats", type=int, default=3000, help="blocks per arm")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--sinks", action="store_true", help="B also writes CSV and JSONL files")
    ap.add_argument(
        "--norm-only",
        action="store_true",
        help="B only computes the gradient norms (one _foreach_norm): Watch's floor",
    )
    ap.add_argument("--null", action="store_true", help="B without the Watch: the noise floor")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    global CLOCK
    CLOCK = time.perf_counter if args.clock == "wall" else time.process_time
    t0 = time.perf_counter()
    res = overhead(args.steps, args.repeats, args.sinks, args.null, args.norm_only)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.clock} clock,"
        f" digits-mlp, {args.repeats} blocks x {args.steps} steps per arm"
    )
    label = "bare again" if args.null else "with Watch" + (" + CSV, JSONL" if args.sinks else "")
    label = "grad norms only" if args.norm_only and not args.null else label
    print(f"{'bare loop':<26}{res['bare_ms']:.4f} ms/step (median)")
    print(f"{label:<26}{res['watched_ms']:.4f} ms/step (median)")
    print(f"ratio of medians          {res['ratio_of_medians']:.4f}")
    print(f"ratio of means            {res['mean_ratio']:.4f}")
    print(
        f"median of paired ratios   {res['median_pair_ratio']:.4f}"
        f"  (quartiles {res['pair_q1']:.4f} .. {res['pair_q3']:.4f})"
    )
    print(f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
