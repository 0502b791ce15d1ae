"""What does a range-test iteration of ``lrkit.find.find_lr`` cost, against a plain training
step and against torch-lr-finder on the same model and data?

An MLP (784-512-512-10, batch 128, synthetic data, SGD with momentum, one torch thread) is
driven by three arms, each over ``--steps`` updates per block:

- ``plain``: a bare training loop (zero_grad, forward, loss, backward, step);
- ``lrkit``: one whole ``find_lr(model, optimizer, batches, criterion=...)`` call: snapshot,
  sweep, restore, every rule's suggestion and the confidence check;
- ``torch-lr-finder``: one whole ``LRFinder(model, optimizer, criterion)`` construction
  (its state cache), ``range_test`` and ``reset``, the real package (0.2.2).

Both sweeps go from 1e-5 to 1e-2 (exponentially) and never stop early, so every block does
the same number of updates. The arms run in blocks, rotating through all six orders, ``--rounds``
times in one process, so slow drifts of a shared machine hit every arm alike. We print each
arm's median seconds per iteration (block time / steps, fixed costs included), the medians
of the per-round ratios lrkit / plain and lrkit / torch-lr-finder with their quartiles, the
fixed costs of lrkit's sweep (snapshot and restore; rules and confidence) and the snapshot's
size against the model's and optimizer's state.

    python benchmarks/finder_overhead.py                # wall clock
    python benchmarks/finder_overhead.py --clock cpu    # CPU time of the process

Needs ``pip install -c constraints.txt torch-lr-finder==0.2.2``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import math
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("TQDM_DISABLE", "1")  # torch-lr-finder's progress bar, off as lrkit's is

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from lrkit.find import find_lr  # noqa: E402
from lrkit.find.rules import assess, suggest_all  # noqa: E402
from lrkit.train.snapshot import Snapshot  # noqa: E402

START, END = 1e-5, 1e-2
CLOCK = time.perf_counter  # --clock cpu: time.process_time (CPU seconds of this process)


def build(seed: int = 0) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Linear(784, 512), torch.nn.ReLU(),
        torch.nn.Linear(512, 512), torch.nn.ReLU(),
        torch.nn.Linear(512, 10),
    )  # fmt: skip
    return model, torch.optim.SGD(model.parameters(), lr=START, momentum=0.9)


def data(batch: int, n_batches: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    return [
        (torch.randn(batch, 784, generator=g), torch.randint(0, 10, (batch,), generator=g))
        for _ in range(n_batches)
    ]


def plain(model, opt, batches, steps: int) -> None:
    cycle = itertools.cycle(batches)
    model.train()
    for _ in range(steps):
        x, y = next(cycle)
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()


def lrkit_sweep(model, opt, batches, steps: int) -> None:
    result = find_lr(
        model, opt, batches, criterion=F.cross_entropy, start=START, end=END, steps=steps,
        stop_factor=math.inf, progress=False,
    )  # fmt: skip
    assert len(result.lrs) == steps, result.stop_reason


def torch_lr_finder_sweep(model, opt, batches, steps: int) -> None:
    from torch_lr_finder import LRFinder
    from torch_lr_finder.lr_finder import TrainDataLoaderIter

    with contextlib.redirect_stdout(io.StringIO()):  # it prints a line or two per test
        finder = LRFinder(model, opt, F.cross_entropy, device="cpu")
        finder.range_test(
            TrainDataLoaderIter(batches), start_lr=START, end_lr=END, num_iter=steps,
            step_mode="exp", diverge_th=math.inf,
        )  # fmt: skip
        finder.reset()
    assert len(finder.history["lr"]) == steps


ARMS = {"plain": plain, "lrkit": lrkit_sweep, "torch-lr-finder": torch_lr_finder_sweep}


def rotated(blocks: dict[str, Callable[[], Any]], rounds: int) -> dict[str, list[Any]]:
    """Each block's result, one per round; the blocks run in all their orders in turn, so a
    slow drift of a shared machine hits every arm alike."""
    out: dict[str, list[Any]] = {name: [] for name in blocks}
    orders = list(itertools.permutations(blocks))
    for r in range(rounds):
        for name in orders[r % len(orders)]:
            out[name].append(blocks[name]())
    return out


def overhead(steps: int, rounds: int, batch: int) -> dict[str, list[float]]:
    """Seconds per iteration of every arm, one entry per round."""
    batches = data(batch, 16)
    parts = {name: build() for name in ARMS}  # each arm its own model and optimizer
    for name, fn in ARMS.items():  # warm up allocator, caches, imports
        fn(*parts[name], batches, max(10, steps // 5))

    def block(name: str) -> Callable[[], float]:
        def run() -> float:
            t0 = CLOCK()
            ARMS[name](*parts[name], batches, steps)
            return (CLOCK() - t0) / steps

        return run

    return rotated({name: block(name) for name in ARMS}, rounds)


def state_bytes(model: torch.nn.Module, opt: torch.optim.Optimizer) -> dict[str, int]:
    """Bytes of the model's parameters, their gradients and the optimizer's state tensors."""
    return {
        "params_bytes": sum(p.nbytes for p in model.parameters()),
        "grads_bytes": sum(p.grad.nbytes for p in model.parameters() if p.grad is not None),
        "optimizer_state_bytes": sum(
            v.nbytes for s in opt.state.values() for v in s.values() if isinstance(v, torch.Tensor)
        ),
    }


def fixed_costs(batch: int, steps: int, repeats: int = 20) -> dict[str, float]:
    """lrkit's per-sweep costs outside the loop (ms), and the snapshot's size (bytes)."""
    model, opt = build()
    plain(model, opt, data(batch, 2), 2)  # momentum buffers exist, as mid-training
    take, restore = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        snap = Snapshot.take(model, opt)
        t1 = time.perf_counter()
        snap.restore()
        take.append(t1 - t0)
        restore.append(time.perf_counter() - t1)
    lrs = np.logspace(-7, 1, steps)
    losses = 2.3 - 1.5 / (1 + np.exp(-(np.log10(lrs) + 2) * 3)) + np.exp(3 * np.log10(lrs))
    rules = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        suggest_all(lrs, losses), assess(lrs, losses, losses)
        rules.append(time.perf_counter() - t0)
    return {
        "snapshot_take_ms": 1e3 * statistics.median(take),
        "snapshot_restore_ms": 1e3 * statistics.median(restore),
        "rules_ms": 1e3 * statistics.median(rules),
        "snapshot_bytes": snap.nbytes,
        **state_bytes(model, opt),
    }


def quartiles(values: list[float]) -> tuple[float, float, float]:
    q1, q2, q3 = statistics.quantiles(values, n=4)
    return q1, statistics.median(values), q3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=100, help="iterations per sweep (block)")
    parser.add_argument("--rounds", type=int, default=36, help="blocks per arm")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument(
        "--clock", choices=("wall", "cpu"), default="wall", help="wall clock or process CPU time"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter

    started = time.perf_counter()
    times = overhead(args.steps, args.rounds, args.batch)
    fixed = fixed_costs(args.batch, args.steps)
    print(
        f"MLP 784-512-512-10, batch {args.batch}, SGD momentum, {args.threads} thread(s);"
        f" {args.rounds} rounds of {args.steps}-iteration blocks per arm; {args.clock} clock"
    )
    for name, values in times.items():
        q1, med, q3 = quartiles([1e3 * v for v in values])
        print(f"  {name:<16} {med:7.3f} ms/iteration (quartiles {q1:.3f} .. {q3:.3f})")
    for other in ("plain", "torch-lr-finder"):
        ratios = [a / b for a, b in zip(times["lrkit"], times[other])]  # same round
        q1, med, q3 = quartiles(ratios)
        of_medians = statistics.median(times["lrkit"]) / statistics.median(times[other])
        print(
            f"  lrkit / {other:<16} median paired ratio {med:.4f} (quartiles {q1:.3f} .."
            f" {q3:.3f}); ratio of medians {of_medians:.4f}"
        )
    model_state = fixed["params_bytes"] + fixed["optimizer_state_bytes"]
    print(
        f"  lrkit fixed costs per sweep: snapshot take {fixed['snapshot_take_ms']:.2f} ms,"
        f" restore {fixed['snapshot_restore_ms']:.2f} ms; rules + confidence"
        f" {fixed['rules_ms']:.2f} ms"
    )
    print(
        f"  snapshot {fixed['snapshot_bytes'] / 2**20:.2f} MiB; parameters"
        f" {fixed['params_bytes'] / 2**20:.2f} MiB + optimizer state"
        f" {fixed['optimizer_state_bytes'] / 2**20:.2f} MiB ="
        f" {model_state / 2**20:.2f} MiB (ratio {fixed['snapshot_bytes'] / model_state:.3f});"
        f" gradients {fixed['grads_bytes'] / 2**20:.2f} MiB"
    )
    print(f"  total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
