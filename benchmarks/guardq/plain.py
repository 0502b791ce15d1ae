"""Healthy plain-loop regression runs: small batches, a skewed mini-batch loss, ``Guard.check``.

AdamW (lr 1e-3) trains a 64-unit MLP for 2,000 steps on batches of 32 drawn with replacement,
once with the guard and once without, from the same seed. Data: ``diabetes`` (the
``diabetes-mlp`` task's standardised train and validation split) and ``heavy-tail`` (4,000
synthetic points, ``y = sin(x @ w) + 0.5 t(3)``: Student-t noise with 3 degrees of freedom, so a
batch now and then holds an outlier whose squared error dwarfs the rest; no fault, just data).
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from lrkit import Guard, GuardExhausted, get_task
from lrkit.runtime import seed_everything
from lrkit.tasks.sklearn_tasks import mlp

DATASETS = ("diabetes", "heavy-tail")
STEPS, BATCH, LR = 2000, 32, 1e-3


def regression_data(name: str) -> tuple[torch.Tensor, ...]:
    """``(x_train, y_train, x_val, y_val)``."""
    if name == "diabetes":
        train, val = get_task("diabetes-mlp").build_loaders(0)
        return (*train.dataset.tensors, *val.dataset.tensors)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5000, 8, generator=g)
    w = torch.randn(8, generator=g) / 8**0.5
    z, chi2 = torch.randn(5000, generator=g), torch.randn(5000, 3, generator=g).pow(2).sum(1)
    noise = 0.5 * z / (chi2 / 3).sqrt()  # Student-t, 3 degrees of freedom
    y = torch.sin(x @ w * 2) + noise
    return x[:4000], y[:4000], x[4000:], y[4000:]


def run_plain(name: str, seed: int, guarded: bool) -> dict:
    """One run; what the guard did and the final validation loss."""
    torch.set_num_threads(1)
    x, y, xv, yv = regression_data(name)
    seed_everything(seed)
    model = mlp(x.shape[1], 64, 1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR)
    guard = Guard() if guarded else None
    losses, status = [], "completed"
    try:
        for _ in range(STEPS):
            idx = torch.randint(len(x), (BATCH,))
            loss = F.mse_loss(model(x[idx]).squeeze(-1), y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            losses.append(loss.detach())
            if guard is None or guard.check(loss, model, optimizer) == "ok":
                optimizer.step()
                if guard is not None:
                    guard.after_step()
    except GuardExhausted:
        status = "failed"
    with torch.no_grad():
        val_loss = float(F.mse_loss(model(xv).squeeze(-1), yv))
    return {
        "status": status,
        "batches": len(losses),
        "losses": torch.stack(losses).tolist(),
        "val_loss": val_loss,
        "metric": val_loss,
        "events": [] if guard is None else guard.events,
    }
