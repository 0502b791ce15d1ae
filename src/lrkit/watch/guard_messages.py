"""What :class:`~lrkit.watch.Guard` says: its events and the messages of :class:`GuardExhausted`.

An event is a dict (``step``, ``batch``, ``action``, ``reason``, ``loss``, ``grad_norm``,
``lrs``); when the guard gives up, its message tells the story in runs of equal actions:

>>> events = [{"step": 3, "batch": b, "action": "skip", "reason": "loss nan"} for b in (3, 4)]
>>> describe_run(events)
'step 3 (batches 3-4): skip x2 (loss nan)'
"""

from __future__ import annotations

from typing import Any

SHOWN_RUNS = 12  # runs of equal actions a GuardExhausted message lists (the last ones)


class GuardExhausted(RuntimeError):
    """The guard's limits are spent; ``events`` holds everything it did."""

    def __init__(self, message: str, events: list[dict[str, Any]]):
        super().__init__(message)
        self.events = events


def describe_run(run: list[dict[str, Any]]) -> str:
    """``step 30 (batches 31-33): skip x3 (loss nan)`` for a run of equal actions."""
    first, last = run[0], run[-1]
    batches = (
        f"batch {first['batch']}" if len(run) == 1 else f"batches {first['batch']}-{last['batch']}"
    )
    times = "" if len(run) == 1 else f" x{len(run)}"
    return f"step {first['step']} ({batches}): {first['action']}{times} ({first['reason']})"


def exhausted_message(
    events: list[dict[str, Any]],
    step: int,
    rollbacks: int,
    max_rollbacks: int,
    lrs_seen: list[list[float]],
) -> str:
    """Why the guard gave up at ``step``: the lrs it went through and its last actions."""
    runs: list[list[dict[str, Any]]] = []  # runs of the same action, reason and step
    for e in (e for e in events if e["action"] != "snapshot"):
        last = runs[-1][-1] if runs else None
        if last is not None and all(last[k] == e[k] for k in ("action", "reason", "step")):
            runs[-1].append(e)
        else:
            runs.append([e])
    lines = [describe_run(run) for run in runs[-SHOWN_RUNS:]]
    if len(runs) > SHOWN_RUNS:
        lines.insert(0, f"... and {sum(map(len, runs[:-SHOWN_RUNS]))} earlier actions")
    lrs = " -> ".join(fmt_lrs(lrs) for lrs in lrs_seen)
    return (
        f"the guard gave up at step {step}: trouble again after {rollbacks}"
        f" rollback(s) (max_rollbacks={max_rollbacks}); lr {lrs}; what happened:\n  "
        + "\n  ".join(lines)
        + "\ntry a lower lr, a warmup, or Guard(max_rollbacks=..., factor=...)"
    )


def final_message(loss: float, start: float, rollbacks: int) -> str:
    """Why a run whose last validation loss is far above its start is not completed."""
    return (
        f"the run ended with a validation loss of {loss:.4g}, {loss / start:.3g}x the"
        f" training loss at its start ({start:.4g}), after {rollbacks} rollback(s):"
        f" the guard could not bring it back; try a lower lr or a warmup"
    )


def fmt_lrs(lrs: list[float]) -> str:
    """``0.1`` for one group, ``0.1, 0.01`` for several."""
    return ", ".join(f"{lr:.4g}" for lr in lrs) if len(lrs) != 1 else f"{lrs[0]:.4g}"


__all__ = ["GuardExhausted", "describe_run", "exhausted_message", "final_message", "fmt_lrs"]
