"""fp16 autocast with a GradScaler: what do lrkit's range test and guard cost per step, and
what memory does the finder's snapshot take, on CUDA (or on the CPU, which fp16 runs on too)?

An MLP (``--depth`` hidden layers of ``--width``, 10 classes) on random inputs labelled by a
random linear teacher (a fifth of the labels then set to 0), Adam, fp16 autocast, a
``GradScaler(init_scale=--init-scale)``, seed ``--seed``. Each block builds the parts afresh
from the seed, makes two plain steps on the last two batches (Adam's state and gradients exist)
and times ``--steps`` updates of one arm: ``plain``, a bare fp16 loop (no device sync inside);
``find``, one whole ``find_lr(..., autocast="fp16", scaler=scaler)`` from 1e-5 to 1e-2 with
``stop_factor=inf`` (snapshot, sweep, restore, rules; as in finder_overhead.py); ``guard``, the
plain loop with ``lrkit.watch.Guard()`` on its GradScaler contract (``guard.check(loss, model=,
optimizer=, scaler=)`` after the backward; on ``"ok"`` ``scaler.step``, ``scaler.update``,
``guard.after_step()``; it reads the loss each step: one device sync, part of its cost). The
arms rotate through all orders over ``--repeats`` rounds; ratios are medians of the per-round
ratios (min .. max); ``--clock cpu`` (CPU device only) times the process's CPU seconds, steadier
on a shared machine. Then: a suggestion sweep (1e-6 to 1, default stop); the snapshot's bytes
against parameters + gradients + optimizer state, its take and restore times and the device
memory it adds; on CUDA the peak memory of ``--steps`` plain steps and of a ``find_lr`` of as
many. Prints a table, writes JSON (``--out``, default benchmarks/amp/).

    python benchmarks/amp_cuda.py --device cuda     # defaults sized for a GPU
    python benchmarks/amp_cuda.py --device cpu      # CPU fp16 (not a GPU's speed): small defaults
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from finder_overhead import rotated, state_bytes  # noqa: E402

from lrkit.find import find_lr  # noqa: E402
from lrkit.train.snapshot import Snapshot  # noqa: E402
from lrkit.watch import Guard, GuardExhausted  # noqa: E402

CLASSES, BATCHES, WARM, NOISE = 10, 16, 2, 0.2
SIZES = {"cuda": (2048, 4, 4096), "cpu": (256, 2, 64)}  # width, depth, batch by default


class Bench:
    """Data, fresh parts and the three arms for one device and size."""

    def __init__(self, args: argparse.Namespace, device: torch.device):
        self.args, self.device = args, device
        self.clock = time.process_time if args.clock == "cpu" else time.perf_counter
        g = torch.Generator().manual_seed(args.seed + 1)
        teacher = torch.randn(args.width, CLASSES, generator=g)
        xs = [torch.randn(args.batch, args.width, generator=g) for _ in range(BATCHES)]
        ys = [(x @ teacher).argmax(1) for x in xs]
        for y in ys:  # a fifth set to 0: a loss floor, and no memorising at once
            y[torch.rand(len(y), generator=g) < NOISE] = 0
        self.batches = [(x.to(device), y.to(device)) for x, y in zip(xs, ys)]

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    def parts(self) -> tuple[nn.Module, torch.optim.Optimizer, torch.amp.GradScaler]:
        a = self.args
        torch.manual_seed(a.seed)
        layers = [m for _ in range(a.depth) for m in (nn.Linear(a.width, a.width), nn.ReLU())]
        model = nn.Sequential(*layers, nn.Linear(a.width, CLASSES)).to(self.device)
        opt = torch.optim.Adam(model.parameters(), lr=a.lr)
        scaler = torch.amp.GradScaler(self.device.type, init_scale=a.init_scale)
        self.plain((model, opt, scaler), WARM, first=BATCHES - WARM)  # the arms start at 0
        return model, opt, scaler

    def backward(self, model, opt, scaler, i: int) -> torch.Tensor:
        x, y = self.batches[i % BATCHES]
        opt.zero_grad(set_to_none=True)
        with torch.autocast(self.device.type, dtype=torch.float16):
            loss = F.cross_entropy(model(x), y)
        scaler.scale(loss).backward()
        return loss

    def plain(self, parts, steps: int, first: int = 0) -> dict:
        model, opt, scaler = parts
        for i in range(first, first + steps):
            self.backward(model, opt, scaler, i)
            scaler.step(opt)
            scaler.update()
        return {"steps": steps}

    def guard(self, parts, steps: int) -> dict:
        model, opt, scaler = parts
        guard, done, gave_up = Guard(), 0, None
        try:
            for i in range(steps):
                loss = self.backward(model, opt, scaler, i)
                if guard.check(loss, model=model, optimizer=opt, scaler=scaler) == "ok":
                    scaler.step(opt)
                    scaler.update()
                    guard.after_step()
                done += 1
        except GuardExhausted as e:
            gave_up = str(e).splitlines()[0]
        actions = [e["action"] for e in guard.events]
        events = {k: actions.count(k) for k in ("snapshot", "skip", "rollback", "gave_up")}
        overflows = guard.overflows  # updates the scaler skipped (not trouble)
        return {"steps": max(done, 1), "events": events, "overflows": overflows, "gave_up": gave_up}

    def find(self, parts, steps: int, start=1e-5, end=1e-2, stop=math.inf) -> dict:
        model, opt, scaler = parts
        result = find_lr(
            model, opt, self.batches, criterion=F.cross_entropy, autocast="fp16", scaler=scaler,
            start=start, end=end, steps=steps, stop_factor=stop, progress=False,
        )  # fmt: skip
        return {"steps": result.steps_run, "result": result}

    def final_loss(self, model: nn.Module) -> float:
        with torch.no_grad(), torch.autocast(self.device.type, dtype=torch.float16):
            return statistics.fmean(float(F.cross_entropy(model(x), y)) for x, y in self.batches)

    def block(self, arm: str):
        def run() -> dict:
            parts = self.parts()
            self.sync()
            t0 = self.clock()
            out = getattr(self, arm)(parts, self.args.steps)
            self.sync()
            out["ms_per_step"] = 1e3 * (self.clock() - t0) / out["steps"]
            out.pop("result", None)
            return {**out, "final_loss": self.final_loss(parts[0]), "scale": parts[2].get_scale()}

        return run

    def memory(self) -> dict:
        """The snapshot's bytes, times and device memory; on CUDA the peaks of plain and find."""
        cuda = self.device.type == "cuda"
        parts = model, opt, scaler = self.parts()
        self.sync()
        before = torch.cuda.memory_allocated() if cuda else 0
        t0 = time.perf_counter()
        snap = Snapshot.take(model, opt, scaler=scaler)
        self.sync()
        t1 = time.perf_counter()
        added = torch.cuda.memory_allocated() - before if cuda else None
        snap.restore()
        self.sync()
        out = {
            "snapshot_bytes": snap.nbytes,
            **state_bytes(model, opt),
            "snapshot_take_ms": 1e3 * (t1 - t0),
            "snapshot_restore_ms": 1e3 * (time.perf_counter() - t1),
            "snapshot_cuda_bytes": added,
            "cuda_bytes_at_rest": before if cuda else None,
        }
        del snap
        for arm in ("plain", "find") if cuda else ():
            torch.cuda.reset_peak_memory_stats()
            getattr(self, arm)(parts, self.args.steps)
            self.sync()
            out[f"peak_cuda_bytes_{arm}"] = torch.cuda.max_memory_allocated()
        return out

    def suggestion(self) -> dict:
        result = self.find(self.parts(), self.args.steps, start=1e-6, end=1.0, stop=4.0)["result"]
        finite = result.lr is not None and math.isfinite(result.lr)
        return {"lr": result.lr, "finite": finite, "confidence_ok": result.confidence.ok,
                "reason": result.confidence.reason, "stop_reason": result.stop_reason,
                "steps_run": result.steps_run}  # fmt: skip


def ratios(times: dict, arm: str) -> dict:
    paired = [a["ms_per_step"] / p["ms_per_step"] for a, p in zip(times[arm], times["plain"])]
    return {"median": statistics.median(paired), "min": min(paired), "max": max(paired)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), help="default: cuda if available")
    parser.add_argument("--width", type=int, help="hidden width (default: 2048 cuda, 256 cpu)")
    parser.add_argument("--depth", type=int, help="hidden layers (default: 4 cuda, 2 cpu)")
    parser.add_argument("--batch", type=int, help="batch size (default: 4096 cuda, 64 cpu)")
    parser.add_argument("--steps", type=int, default=200, help="updates per block (>= 5)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of the three arms")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam's lr in plain and guard")
    parser.add_argument("--init-scale", type=float, default=2.0**16, help="GradScaler's start")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument(
        "--clock", choices=("wall", "cpu"), default="wall", help="cpu: process time"
    )
    parser.add_argument("--out", help="JSON file (default: benchmarks/amp/<device>.json)")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available here; use --device cpu")
    if args.steps < 5 or args.repeats < 1:
        parser.error(f"--steps must be >= 5 and --repeats >= 1, got {args.steps}, {args.repeats}")
    if args.device == "cuda" and args.clock == "cpu":
        parser.error("--clock cpu times the CPU only; on CUDA use the wall clock")
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    for name, default in zip(("width", "depth", "batch"), SIZES[device.type]):
        if getattr(args, name) is None:
            setattr(args, name, default)
    torch.set_num_threads(args.threads)
    what = (
        torch.cuda.get_device_name() if device.type == "cuda" else "fp16 here is not a GPU's speed"
    )
    print(f"device: {device.type} ({what}), torch {torch.__version__}")

    started = time.perf_counter()
    bench = Bench(args, device)
    for arm in ("plain", "find", "guard"):  # warm up kernels, allocator, imports
        bench.block(arm)()
    times = rotated({arm: bench.block(arm) for arm in ("plain", "find", "guard")}, args.repeats)
    median = {k: statistics.median(b["ms_per_step"] for b in v) for k, v in times.items()}
    report = {
        "device": device.type, "device_name": what, "torch": torch.__version__,
        "args": vars(args), "params": sum(p.numel() for p in bench.parts()[0].parameters()),
        "ms_per_step": median, "blocks": times,
        "find_over_plain": ratios(times, "find"), "guard_over_plain": ratios(times, "guard"),
        "suggestion": bench.suggestion(), "memory": bench.memory(),
        "seconds": time.perf_counter() - started,
    }  # fmt: skip
    show(report)
    out = Path(args.out or Path(__file__).parent / "amp" / f"{device.type}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {out}")
    return report


def show(r: dict) -> None:
    a, m, s, g, mib = r["args"], r["memory"], r["suggestion"], r["blocks"]["guard"][-1], 2**20
    state = m["params_bytes"] + m["grads_bytes"] + m["optimizer_state_bytes"]
    on_device = m["snapshot_cuda_bytes"] if m["snapshot_cuda_bytes"] is not None else "n/a (CPU)"
    lines = [
        f"MLP {a['width']}x{a['depth']} ({r['params'] / 1e6:.2f}M parameters), batch {a['batch']},"
        f" Adam, fp16 autocast + GradScaler(init_scale={a['init_scale']:g}); {a['repeats']}"
        f" rounds of {a['steps']}-step blocks; {a['clock']} clock",
        f"  {'arm':<6} {'ms/step':>9} {'final loss':>11} {'final scale':>12}"
        " (find restores what it swept: its loss and scale are the start's)",
        *(
            f"  {arm:<6} {r['ms_per_step'][arm]:9.3f} {b[-1]['final_loss']:11.4f}"
            f" {b[-1]['scale']:12g}"
            for arm, b in r["blocks"].items()
        ),
        *(
            f"  {k.replace('_over_', ' / ')}: {r[k]['median']:.3f} ({r[k]['min']:.3f} .."
            f" {r[k]['max']:.3f})"
            for k in ("find_over_plain", "guard_over_plain")
        ),
        f"  guard events {g['events']}, overflows {g['overflows']}, gave up: {g['gave_up']}",
        f"  suggestion {s['lr']} (finite {s['finite']}, confidence ok {s['confidence_ok']}:"
        f" {s['reason']}); {s['stop_reason']}",
        f"  snapshot {m['snapshot_bytes'] / mib:.2f} MiB on the CPU for parameters + grads +"
        f" optimizer state {state / mib:.2f} MiB; take {m['snapshot_take_ms']:.1f} ms, restore"
        f" {m['snapshot_restore_ms']:.1f} ms; device memory it added: {on_device}",
    ]
    if "peak_cuda_bytes_plain" in m:
        lines.append(
            f"  CUDA memory: at rest {m['cuda_bytes_at_rest'] / mib:.1f} MiB, peak of plain"
            f" {m['peak_cuda_bytes_plain'] / mib:.1f} MiB, of find_lr"
            f" {m['peak_cuda_bytes_find'] / mib:.1f} MiB"
        )
    print("\n".join([*lines, f"  total {r['seconds']:.1f} s"]))


if __name__ == "__main__":
    main()
