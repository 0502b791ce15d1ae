"""Injected faults for the guard's tests: a task whose loss is NaN or spikes at given batches,
and hooks that blow up the gradients."""

import math

import user_tasks
from torch.nn import functional as F

from lrkit.train import Callback

EPOCHS = 10  # 60 steps of the tiny task


def faulty(nan_at=(), spike_at=(), **overrides):
    """The tiny task whose training loss is NaN (or 100 times larger) at the given batches."""
    calls = []

    def step_fn(model, batch):
        loss = F.cross_entropy(model(batch[0]), batch[1])
        if not model.training:
            return loss
        calls.append(1)
        batch_index = len(calls) - 1
        if batch_index in nan_at:
            return loss * math.nan
        return loss * 100 if batch_index in spike_at else loss

    return user_tasks.tiny(step_fn=step_fn, epochs=EPOCHS, **overrides)


class ExplodeGradsAt(Callback):
    """Tensor hooks that multiply every gradient by 1e6 in the given batches."""

    def __init__(self, batches):
        self.batches, self.batch = set(batches), 0

    def on_train_start(self, state):
        for p in state.model.parameters():
            p.register_hook(lambda g: g * 1e6 if self.batch in self.batches else g)

    def on_after_backward(self, state):
        self.batch += 1


def nan_at_batch_30():
    """For ``lrkit train --task faults:nan_at_batch_30``: four NaN losses in a row."""
    return faulty(nan_at={30, 31, 32, 33})


def nan_from_batch_30():
    """For ``lrkit train --task faults:nan_from_batch_30``: NaN losses from batch 30 on."""
    return faulty(nan_at=set(range(30, 1000)))
