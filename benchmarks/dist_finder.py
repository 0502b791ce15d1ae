"""What does a step of the distributed range test cost, against one process on the same global
batch, and what does lrkit's per-step agreement (the mean of the loss over the ranks) add?

Run as ``python benchmarks/dist_finder.py``: it starts ``python -m torch.distributed.run
--standalone --nproc_per_node=2`` on this same file (gloo, CPU, ``OMP_NUM_THREADS=1``, one torch
thread a process), the ranks time every arm side by side in one run, and the launcher prints
the table. The task: an MLP 64-H-H-10 (``--hidden``, default 256) on sklearn's digits (pixels /
16), global batches of ``--batch`` (default 128) examples, each rank its half of every global
batch (what a DistributedSampler gives), ``torch.optim.SGD(momentum=0.9)``. Arms, each block
``--steps`` updates (default 300), each arm its own model and optimizer:

- ``1p-loop``: one process (rank 0; rank 1 waits at a barrier) training on the global batch;
- ``1p-find``: one process, one whole ``find_lr`` call on the global batch (lrkit sees no group:
  the benchmark hides it from ``lrkit.dist`` for this arm, so this is the single-process sweep);
- ``2r-local``: 2 ranks, each a plain model on its half batch, no communication at all;
- ``2r-ddp``: 2 ranks, a ``DistributedDataParallel`` loop on half batches (DDP's gradient
  all-reduce, once per step);
- ``2r-ddp+mean``: the same loop plus one ``lrkit.dist.mean(loss)`` per step: lrkit's agreement;
- ``2r-ddp+mean x2``: the DDP loop plus two ``lrkit.dist.mean`` calls per step (the loss and
  one more number, as the Guard's loss and gradient norm), two all-reduces;
- ``2r-ddp+mean[2]``: the DDP loop plus one ``lrkit.dist.mean([loss, number])`` per step: the
  same two means in one all-reduce;
- ``2r-find``: 2 ranks, one whole ``find_lr`` call on the DDP model and half batches;
- ``2r-mean``: ``--steps`` calls of ``lrkit.dist.mean`` alone (the agreement's bare latency).

Every loop reads the loss as a float once per step (``loss.item()``), as the sweep does, so the
``+mean`` arm adds only the collective. Sweeps run from 1e-4 to 0.1 with ``stop_factor=inf``:
every block does all its steps. The arms rotate (a cyclic shift each round, reversed every
other round) over ``--rounds`` rounds after a warm-up block each; a block's time is the slower
rank's. We print the median ms per step of each arm, the medians of the per-round ratios (and
their quartiles) and differences, and check that the 2-rank sweep's curve equals the
single-process one (same global batches, so the same losses).

    python benchmarks/dist_finder.py                    # about a minute on 2 shared cores
    python benchmarks/dist_finder.py --steps 600 --rounds 9
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import itertools
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

START, END = 1e-4, 0.1
LR = 0.01  # the plain loops' lr
ARMS = ["1p-loop", "1p-find", "2r-local", "2r-ddp", "2r-ddp+mean", "2r-ddp+mean x2",
        "2r-ddp+mean[2]", "2r-find", "2r-mean"]  # fmt: skip
MEANS = {"2r-ddp+mean": "one", "2r-ddp+mean x2": "two calls", "2r-ddp+mean[2]": "a list of two"}
SOLO = {"1p-loop", "1p-find"}  # rank 0 alone; rank 1 waits at a barrier


# -- one rank (under torchrun) ------------------------------------------------------------------


def worker(args: argparse.Namespace) -> None:
    import torch
    import torch.distributed as tdist
    from torch.nn import functional as F

    import lrkit.dist
    from lrkit.find import find_lr

    torch.set_num_threads(1)
    tdist.init_process_group("gloo", timeout=datetime.timedelta(seconds=args.timeout))
    rank, world = tdist.get_rank(), tdist.get_world_size()

    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = torch.tensor(x / 16.0, dtype=torch.float32)
    y = torch.tensor(y, dtype=torch.long)
    n = len(x) // args.batch
    whole = [(x[i * args.batch : (i + 1) * args.batch], y[i * args.batch : (i + 1) * args.batch])
             for i in range(n)]  # fmt: skip
    per = args.batch // world
    half = [(bx[rank * per : (rank + 1) * per], by[rank * per : (rank + 1) * per])
            for bx, by in whole]  # fmt: skip

    def build(ddp: bool = False):
        torch.manual_seed(0)
        h = args.hidden
        model = torch.nn.Sequential(
            torch.nn.Linear(64, h), torch.nn.ReLU(), torch.nn.Linear(h, h), torch.nn.ReLU(),
            torch.nn.Linear(h, 10),
        )  # fmt: skip
        opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9)
        return (torch.nn.parallel.DistributedDataParallel(model) if ddp else model), opt

    def loop(model, opt, batches, steps: int, agree: str = "") -> None:
        cycle = itertools.cycle(batches)
        model.train()
        for _ in range(steps):
            bx, by = next(cycle)
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(bx), by)
            loss.backward()
            value = loss.item()
            if agree == "one":
                value = lrkit.dist.mean(value)
            elif agree == "two calls":
                value, _ = lrkit.dist.mean(value), lrkit.dist.mean(0.5)
            elif agree == "a list of two":
                value, _ = lrkit.dist.mean([value, 0.5])
            opt.step()

    curves: dict[str, list[float]] = {}

    def sweep(model, opt, batches, steps: int, name: str) -> None:
        result = find_lr(
            model, opt, batches, criterion=F.cross_entropy, start=START, end=END, steps=steps,
            stop_factor=math.inf, progress=False,
        )  # fmt: skip
        assert len(result.lrs) == steps, result.stop_reason
        curves[name] = result.raw_losses.tolist()

    @contextlib.contextmanager
    def no_group():  # lrkit.dist answers as in a single process: the 1-process sweep
        real = lrkit.dist.is_initialized
        lrkit.dist.is_initialized = lambda: False
        try:
            yield
        finally:
            lrkit.dist.is_initialized = real

    parts = {
        "1p-loop": build(), "1p-find": build(), "2r-local": build(), "2r-ddp": build(True),
        "2r-ddp+mean": build(True), "2r-ddp+mean x2": build(True),
        "2r-ddp+mean[2]": build(True), "2r-find": build(True),
    }  # fmt: skip

    def run(arm: str, steps: int) -> None:
        if arm == "1p-loop":
            loop(*parts[arm], whole, steps)
        elif arm == "1p-find":
            with no_group():
                sweep(*parts[arm], whole, steps, arm)
        elif arm == "2r-local":
            loop(*parts[arm], half, steps)
        elif arm == "2r-ddp" or arm in MEANS:
            loop(*parts[arm], half, steps, agree=MEANS.get(arm, ""))
        elif arm == "2r-find":
            sweep(*parts[arm], half, steps, arm)
        else:
            for i in range(steps):
                lrkit.dist.mean(float(i))

    def block(arm: str, steps: int) -> tuple[float, float]:
        """Seconds per step of the slower rank (rank 0's alone for a solo arm), and the CPU
        seconds rank 1 spent meanwhile."""
        tdist.barrier()
        t0, c0 = time.perf_counter(), time.process_time()
        if arm not in SOLO or rank == 0:
            run(arm, steps)
        seconds = time.perf_counter() - t0
        if arm in SOLO:
            tdist.barrier()  # rank 1 waits here while rank 0 works
            seconds = seconds if rank == 0 else 0.0
        cpu = time.process_time() - c0 if rank == 1 and arm in SOLO else 0.0
        out = torch.tensor([seconds, cpu], dtype=torch.float64)
        tdist.all_reduce(out, op=tdist.ReduceOp.MAX)
        return out[0].item() / steps, out[1].item()

    for arm in ARMS:  # warm-up: allocator, caches, DDP's buckets
        block(arm, max(20, args.steps // 5))
    times: dict[str, list[float]] = {arm: [] for arm in ARMS}
    idle_cpu = []
    for r in range(args.rounds):
        order = ARMS[r % len(ARMS) :] + ARMS[: r % len(ARMS)]
        for arm in reversed(order) if r % 2 else order:
            per_step, cpu = block(arm, args.steps)
            times[arm].append(per_step)
            if arm in SOLO:
                idle_cpu.append(cpu / (per_step * args.steps))
    if rank == 0:
        report = {
            "times": times,
            "idle_cpu_fraction": statistics.median(idle_cpu),
            "curve_diff": max(abs(a - b) for a, b in zip(curves["1p-find"], curves["2r-find"])),
            "loss_first_last": [curves["2r-find"][0], curves["2r-find"][-1]],
            "n_params": sum(p.numel() for p in parts["1p-loop"][0].parameters()),
            "torch": torch.__version__,
        }
        Path(args.out).write_text(json.dumps(report))
    tdist.barrier()
    tdist.destroy_process_group()


# -- the launcher -------------------------------------------------------------------------------


def quartiles(values: list[float]) -> tuple[float, float, float]:
    if len(values) < 2:
        return values[0], values[0], values[0]
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q2, q3


def launch(args: argparse.Namespace) -> dict:
    import lrkit

    src = str(Path(lrkit.__file__).parent.parent)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "report.json"
        command = [
            sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
            __file__, "--worker", "--out", str(out), "--steps", str(args.steps),
            "--rounds", str(args.rounds), "--batch", str(args.batch),
            "--hidden", str(args.hidden), "--timeout", str(args.timeout),
        ]  # fmt: skip
        proc = subprocess.Popen(command, env=env, start_new_session=True)
        try:
            code = proc.wait(timeout=args.timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)  # torchrun and both ranks
            proc.wait()
            sys.exit(f"torchrun ran past {args.timeout} s")
        if code:
            sys.exit(f"torchrun failed with exit status {code}")
        return json.loads(out.read_text())


def table(report: dict, args: argparse.Namespace) -> None:
    t = report["times"]
    ms = {arm: statistics.median(v) * 1e3 for arm, v in t.items()}
    rounds = range(len(t["1p-loop"]))
    print(
        f"MLP 64-{args.hidden}-{args.hidden}-10 ({report['n_params']:,} parameters), global batch"
        f" {args.batch}, {args.steps} steps a block, {len(rounds)} rounds, torch"
        f" {report['torch']}, gloo, 2 ranks x 1 thread\n"
    )
    print("| arm | ms/step (median) | quartiles |")
    print("|---|---|---|")
    for arm in ARMS:
        q1, _, q3 = quartiles([v * 1e3 for v in t[arm]])
        print(f"| {arm} | {ms[arm]:.3f} | {q1:.3f} .. {q3:.3f} |")

    def ratio(a: str, b: str) -> str:
        q1, q2, q3 = quartiles([t[a][r] / t[b][r] for r in rounds])
        return f"**{q2:.3f}** ({q1:.3f} .. {q3:.3f})"

    def diff(a: str, b: str) -> str:
        q1, q2, q3 = quartiles([(t[a][r] - t[b][r]) * 1e6 for r in rounds])
        return f"**{q2:.0f} us** ({q1:.0f} .. {q3:.0f})"

    print("\n| comparison | per-round median (quartiles) |")
    print("|---|---|")
    print(
        f"| 2r-find / 1p-find (distributed sweep vs one process, same global batch) | {ratio('2r-find', '1p-find')} |"
    )  # noqa: E501
    print(f"| 2r-find / 2r-ddp (the sweep vs a plain DDP loop) | {ratio('2r-find', '2r-ddp')} |")
    print(
        f"| 1p-find / 1p-loop (the sweep vs a plain loop, one process) | {ratio('1p-find', '1p-loop')} |"
    )  # noqa: E501
    print(f"| 2r-ddp+mean / 2r-ddp (the agreement's share) | {ratio('2r-ddp+mean', '2r-ddp')} |")
    print(f"| 2r-ddp+mean - 2r-ddp (the agreement, per step) | {diff('2r-ddp+mean', '2r-ddp')} |")
    print(
        f"| 2r-ddp+mean x2 - 2r-ddp+mean (a second mean, its own call) | {diff('2r-ddp+mean x2', '2r-ddp+mean')} |"
    )  # noqa: E501
    print(
        f"| 2r-ddp+mean[2] - 2r-ddp+mean (a second mean, in the same list) | {diff('2r-ddp+mean[2]', '2r-ddp+mean')} |"
    )  # noqa: E501
    print(
        f"| 2r-ddp+mean[2] / 2r-ddp+mean x2 (two means: one call vs two) | {ratio('2r-ddp+mean[2]', '2r-ddp+mean x2')} |"
    )  # noqa: E501
    print(f"| 2r-mean (one lrkit.dist.mean alone) | **{ms['2r-mean'] * 1e3:.0f} us** |")
    print(
        f"| 2r-ddp - 2r-local (DDP's gradient all-reduce, per step) | {diff('2r-ddp', '2r-local')} |"
    )  # noqa: E501
    print(
        f"| 2r-ddp / 1p-loop (DDP on half batches vs one process) | {ratio('2r-ddp', '1p-loop')} |"
    )  # noqa: E501
    print(
        f"\ncurves: 2-rank vs 1-process sweep, max |loss difference| {report['curve_diff']:.2e}"
        f" (loss {report['loss_first_last'][0]:.3f} -> {report['loss_first_last'][1]:.3f});"
        f" rank 1 idle during solo arms: {report['idle_cpu_fraction']:.1%} of a core"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--batch", type=int, default=128, help="global batch (even)")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--timeout", type=int, default=600, help="seconds for the whole run")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    if args.batch < 2 or args.batch % 2 or args.steps < 5 or args.rounds < 1:
        parser.error("--batch must be even and >= 2, --steps >= 5, --rounds >= 1")
    began = time.perf_counter()
    report = launch(args)
    table(report, args)
    print(f"({time.perf_counter() - began:.0f} s in all, load average {os.getloadavg()[0]:.2f})")


if __name__ == "__main__":
    main()
