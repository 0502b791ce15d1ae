"""Tasks as a user would write them, loaded by tests as 'user_tasks:<function>'."""

import torch
from torch import nn

from lrkit.tasks import Task, tensor_loader

_gen = torch.Generator().manual_seed(0)
X = torch.randn(96, 4, generator=_gen)
Y = (X[:, 0] + X[:, 1] > 0).long()


def tiny(**overrides) -> Task:
    """A linear classifier on 96 random points: 6 steps an epoch, trains in milliseconds."""
    parts = dict(
        name="tiny",
        make_model=lambda: nn.Linear(4, 2),
        make_optimizer=lambda params, lr: torch.optim.SGD(params, lr=lr, momentum=0.9),
        make_train_loader=lambda: tensor_loader(X, Y, batch_size=16, shuffle=True),
        make_val_loader=lambda: tensor_loader(X, Y, batch_size=96),
        epochs=3,
        lr=0.1,
        threads=1,
    )
    parts.update(overrides)
    return Task(**parts)


not_callable = 42


def returns_none():
    return None


def raises():
    raise RuntimeError("a bug in the user's task")


def paced() -> Task:
    """``digits-mlp`` whose every training step sleeps ``$LRKIT_TEST_SLEEP`` seconds first and
    appends its ``time.monotonic()`` to the file ``$LRKIT_TEST_PROGRESS``: a test that kills
    the run reads there how many steps it had begun, and when (validation is not paced)."""
    import dataclasses
    import os
    import time

    from lrkit.tasks import get_task

    base = get_task("digits-mlp")
    pause = float(os.environ.get("LRKIT_TEST_SLEEP", "0"))
    log = os.open(os.environ["LRKIT_TEST_PROGRESS"], os.O_WRONLY | os.O_CREAT | os.O_APPEND)

    def step_fn(model, batch):
        if model.training:
            time.sleep(pause)
            os.write(log, f"{time.monotonic()!r}\n".encode())
        x, y = batch
        return base.criterion(model(x), y)

    return dataclasses.replace(base, name="paced", step_fn=step_fn)
