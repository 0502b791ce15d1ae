"""benchmarks/amp_cuda.py runs on the CPU with tiny sizes and writes the figures it promises."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--width", "16", "--depth", "1", "--batch", "8", "--steps", "8"]


def run(tmp_path, *extra, device=("--device", "cpu")):
    out = tmp_path / "amp.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    script = str(ROOT / "benchmarks" / "amp_cuda.py")
    done = subprocess.run(
        [sys.executable, script, *device, *TINY, *extra, "--out", str(out)],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(out.read_text()), done.stdout


def test_the_benchmark_writes_finite_ratios_and_every_figure(tmp_path):
    report, stdout = run(tmp_path, "--repeats", "2")
    assert report["device"] == "cpu" and "device: cpu" in stdout
    for key in ("find_over_plain", "guard_over_plain"):
        assert math.isfinite(report[key]["median"]) and report[key]["median"] > 0
    assert set(report["ms_per_step"]) == {"plain", "find", "guard"}
    assert all(len(blocks) == 2 for blocks in report["blocks"].values())
    memory = report["memory"]
    assert memory["snapshot_bytes"] >= memory["params_bytes"] > 0
    assert memory["snapshot_cuda_bytes"] is None  # no CUDA: nothing to measure there
    assert {"lr", "finite", "confidence_ok"} <= set(report["suggestion"])
    guard = report["blocks"]["guard"][-1]
    assert {"events", "overflows", "gave_up", "final_loss", "scale"} <= set(guard)


def test_forced_overflows_are_the_scalers_under_the_guard_as_without_it(tmp_path):
    report, _ = run(tmp_path, "--repeats", "1", "--init-scale", str(2.0**40))
    plain, guard = report["blocks"]["plain"][-1], report["blocks"]["guard"][-1]
    assert plain["scale"] < 2.0**40  # fp16 gradients overflowed, the scaler backed off
    assert guard["overflows"] >= 1 and guard["gave_up"] is None
    assert guard["scale"] == plain["scale"]  # the guard let the scaler back off alike
    assert math.isfinite(report["find_over_plain"]["median"])


def test_without_a_device_it_takes_cuda_when_there_is_one_and_says_which(tmp_path):
    report, stdout = run(tmp_path, "--repeats", "1", device=())
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert report["device"] == expected and f"device: {expected}" in stdout
