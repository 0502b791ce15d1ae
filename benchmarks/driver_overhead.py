"""What does the Driver cost per training step?

A small MLP (784-512-512-10, batch 128, synthetic data, SGD with momentum, one torch thread
unless ``--threads``) is trained in blocks of ``--steps`` steps, alternating a bare loop (A)
and the same loop driven by ``Driver(opt, warmup(5%) >> cosine(to=0.1))`` (B) in the order
A B B A A B B A ... so that slow drifts of a noisy machine hit both alike. Each arm has its own optimizer over the same
model, so both do the same arithmetic. We print the median time per step of each arm, the ratio
of the medians and the median of the per-pair ratios (A and B blocks that ran back to back);
then the driver's own cost in microseconds, measured on an optimizer with one tiny parameter
where nothing else hides it.

    python benchmarks/driver_overhead.py --steps 1 --repeats 1500

Short blocks (one step each, by default) keep each A/B pair within milliseconds of each other,
so the machine's load changes hit both halves of a pair alike.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from lrkit.schedules import Driver, cosine, warmup


def build(batch: int, n_batches: int, seed: int = 0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Linear(784, 512), torch.nn.ReLU(),
        torch.nn.Linear(512, 512), torch.nn.ReLU(),
        torch.nn.Linear(512, 10),
    )
    data = [(torch.randn(batch, 784), torch.randint(0, 10, (batch,))) for _ in range(n_batches)]
    return model, data


CLOCK = time.perf_counter  # --clock cpu: time.process_time (CPU seconds of this process)


def block(model, opt, driver, data, steps: int) -> float:
    """Seconds per step over ``steps`` training steps."""
    loss_fn = torch.nn.functional.cross_entropy
    n = len(data)
    clock = CLOCK
    start = clock()
    for i in range(steps):
        x, y = data[i % n]
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()
        if driver is not None:
            driver.step()
    return (clock() - start) / steps


def mlp_overhead(steps: int, repeats: int, batch: int, null: bool = False) -> dict[str, float]:
    model, data = build(batch, 8)
    bare = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    driven = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    driver = Driver(driven, warmup("5%") >> cosine(to=0.1), total_steps=2 * steps * repeats + 100)
    if null:  # the noise floor: B is a bare loop too
        driver.close()
        driver = None
    for opt, drv in ((bare, None), (driven, driver)):  # warm up allocator, caches, threads
        block(model, opt, drv, data, max(5, steps // 4))
    a_times, b_times = [], []
    for r in range(repeats):
        order = ("A", "B") if r % 2 == 0 else ("B", "A")
        for arm in order:
            if arm == "A":
                a_times.append(block(model, bare, None, data, steps))
            else:
                b_times.append(block(model, driven, driver, data, steps))
    pairs = [b / a for a, b in zip(a_times, b_times)]  # each pair ran back to back
    q1, _, q3 = statistics.quantiles(pairs, n=4)
    return {
        "bare_ms": 1e3 * statistics.median(a_times),
        "driven_ms": 1e3 * statistics.median(b_times),
        "ratio_of_medians": statistics.median(b_times) / statistics.median(a_times),
        "median_pair_ratio": statistics.median(pairs),
        "pair_q1": q1,
        "pair_q3": q3,
    }


def driver_cost_us(n: int = 20000) -> float:
    """Microseconds the driver adds to one optimizer step (hook + step()), on a tiny optimizer."""
    p = torch.nn.Parameter(torch.zeros(1))
    p.grad = torch.zeros(1)
    bare = torch.optim.SGD([p], lr=0.1)
    driven = torch.optim.SGD([p], lr=0.1)
    driver = Driver(driven, warmup("5%") >> cosine(to=0.1), total_steps=n)
    best = {"A": float("inf"), "B": float("inf")}
    for _ in range(5):
        for arm, opt, drv in (("A", bare, None), ("B", driven, driver)):
            start = time.perf_counter()
            for _ in range(n // 5):
                opt.step()
                if drv is not None:
                    drv.step()
            best[arm] = min(best[arm], (time.perf_counter() - start) / (n // 5))
    return 1e6 * (best["B"] - best["A"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=1, help="training steps per block")
    ap.add_argument("--repeats", type=int, default=1500, help="blocks per arm")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument(
        "--threads", type=int, default=1,
        help="torch threads (default 1: on a shared 2-core machine more threads mostly wait)",
    )
    ap.add_argument("--null", action="store_true", help="B without the driver: the noise floor")
    ap.add_argument(
        "--clock", choices=("wall", "cpu"), default="wall",
        help="wall: perf_counter; cpu: process_time, less sensitive to other load on the machine",
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    global CLOCK
    CLOCK = time.perf_counter if args.clock == "wall" else time.process_time
    t0 = time.perf_counter()
    res = mlp_overhead(args.steps, args.repeats, args.batch, args.null)
    cost = driver_cost_us()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.clock} clock, "
          f"{args.repeats} blocks x {args.steps} steps per arm, batch {args.batch}")
    print(f"{'bare loop':<15}{res['bare_ms']:.3f} ms/step (median)")
    label = "bare again" if args.null else "with Driver"
    print(f"{label:<15}{res['driven_ms']:.3f} ms/step (median)")
    print(f"ratio of medians         {res['ratio_of_medians']:.4f}")
    print(f"median of paired ratios  {res['median_pair_ratio']:.4f}"
          f"  (quartiles {res['pair_q1']:.4f} .. {res['pair_q3']:.4f})")
    print(f"driver's own cost        {cost:.2f} us/step (tiny optimizer, best of 5),"
          f" i.e. a ratio of {1 + cost / (1e3 * res['bare_ms']):.4f} on this step")
    print(f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
