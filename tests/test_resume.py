"""Resume: stop a run, save model + optimizer + driver, continue in a fresh Python process.

The lr sequence and the final parameters must equal those of the uninterrupted run exactly.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import torch

TOTAL, SAVE_AT = 120, 55  # the save point lies between two metric reports (every 10 steps)

SCRIPT = textwrap.dedent(
    """
    import sys

    import torch
    from lrkit.schedules import Driver, cosine, linear, plateau, warmup

    torch.set_num_threads(1)
    mode, ckpt, out, total, save_at = sys.argv[1], sys.argv[2], sys.argv[3], *map(int, sys.argv[4:])

    def batch(step, n=32):
        g = torch.Generator().manual_seed(1000 + step)
        x = torch.randn(n, 8, generator=g)
        return x, torch.sin(x[:, :2].sum(1, keepdim=True)) + 0.3 * torch.randn(n, 1, generator=g)

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1))
    opt = torch.optim.AdamW(model.parameters(), lr=0.02, weight_decay=0.01)
    driver = Driver(
        opt,
        warmup(10) >> cosine(to=0.1) * plateau(patience=1, factor=0.5, threshold=0.05, cooldown=1),
        momentum=linear(start=0.95, to=0.85),
        weight_decay=cosine(to=0.5),
        total_steps=total,
    )
    x_val, y_val = batch(-1, 256)
    start = 0
    if mode == "resume":
        saved = torch.load(ckpt, weights_only=True)
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
        driver.load_state_dict(saved["driver"])
        start = saved["driver"]["step"]

    seen = []
    for step in range(start, total):
        group = opt.param_groups[0]
        seen.append((group["lr"], group["betas"][0], group["weight_decay"], driver.plateaus[0].scale))
        x, y = batch(step)
        loss = torch.nn.functional.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        driver.step()
        if (step + 1) % 10 == 0:
            with torch.no_grad():
                driver.report(torch.nn.functional.mse_loss(model(x_val), y_val))
        if mode == "full" and step + 1 == save_at:
            torch.save(
                {"model": model.state_dict(), "optimizer": opt.state_dict(), "driver": driver.state_dict()},
                ckpt,
            )
    torch.save({"seen": seen, "params": list(model.parameters()), "step": driver.last_step}, out)
    """
)


def _run(tmp_path, mode: str) -> dict:
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    out = tmp_path / f"{mode}.pt"
    args = [
        sys.executable,
        str(script),
        mode,
        str(tmp_path / "ckpt.pt"),
        str(out),
        str(TOTAL),
        str(SAVE_AT),
    ]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return torch.load(out, weights_only=True)


def test_resumed_run_in_a_fresh_process_equals_the_uninterrupted_one(tmp_path):
    full = _run(tmp_path, "full")
    resumed = _run(tmp_path, "resume")

    assert full["step"] == resumed["step"] == TOTAL
    assert len(resumed["seen"]) == TOTAL - SAVE_AT
    assert resumed["seen"] == full["seen"][SAVE_AT:]  # lr, beta1, weight decay, plateau scale
    for a, b in zip(full["params"], resumed["params"]):
        assert torch.equal(a, b)

    # the run really used what a checkpoint must carry: plateau reductions before and after
    scales = [s[3] for s in full["seen"]]
    assert scales[SAVE_AT] < 1.0 and scales[-1] < scales[SAVE_AT]
