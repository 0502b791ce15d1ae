"""The comparison as text: a heading, then per mode a table and its verdict.

Columns: the entry, its schedule spec (and optimizer / fine-tuning mode when any entry has
one), the lr and how it was chosen, the final metric's mean ± std over the seeds and its 95%
interval, the mean steps and seconds to reach the target (with how many seeds did), the mean
best epoch (counted from 1 here; 0-based in the JSON, as History's) and the diverged runs.
"""

from __future__ import annotations

import math
from typing import Any

from .stats import TARGET_SHARE


def table(result: Any) -> str:
    """All of :class:`~lrkit.tune.compare.CompareResult` as text."""
    way = "higher" if result.higher_is_better else "lower"
    lines = [
        f"compare {result.task}: {result.metric} ({way} is better), {result.seeds}"
        f" seed{'s' if result.seeds != 1 else ''} an entry, {result.epochs} epochs"
        f" ({result.steps} steps) a run",
        f"target {result.metric} {_num(result.target)}: {result.target_how}",
    ]
    if result.note:
        lines.insert(1, result.note)
    how = (
        f"pick_lr, budget {result.budget:g} runs each"
        if result.lr_how == "pick"
        else f"a tune over lr, budget {result.budget:g} runs each"
    )
    for mode, title in (
        ("own", f"each entry at its own rate ({how}):"),
        ("same", f"every entry at one rate, lr {_num(result.same_lr)} ({result.same_how}):"),
    ):
        rows = result.mode_rows(mode)
        if not rows:
            continue
        lines += ["", title, *_block(result, rows)]
        lines.append(f"verdict ({'own rates' if mode == 'own' else 'same lr'}): "
                     f"{result.verdict(mode).text}")  # fmt: skip
    return "\n".join(lines)


def _block(result: Any, rows: list[Any]) -> list[str]:
    higher, target = result.higher_is_better, result.target
    extra = [
        (name, attr)
        for name, attr in (("optimizer", "optimizer"), ("finetune", "finetune"))
        if any(getattr(r, attr) for r in rows)
    ]
    head = ["entry", "schedule", *[n for n, _ in extra], "lr", "how",
            f"{result.metric} mean ± std", "95% interval", "steps to target",
            "s to target", "best epoch", "diverged"]  # fmt: skip
    body = []
    for r in rows:
        s = r.summary()
        hit = r.to_target(target, higher)
        body.append([
            r.label,
            r.schedule,
            *[getattr(r, a) or "-" for _, a in extra],
            _num(r.lr, 3),
            r.how,
            f"{_num(s.mean)} ± {_num(s.std, 2)}" if s.n >= 2 else f"{_num(s.mean)} (1 run)"
            if s.n == 1 else "-",
            f"[{_num(s.low)}, {_num(s.high)}]" if s.has_interval else "no interval",
            f"{_num(hit['steps'], 4)} ({hit['reached']}/{hit['runs']})",
            _num(hit["seconds"], 3),
            f"{r.best_epoch() + 1:.1f}/{result.epochs}" if math.isfinite(r.best_epoch()) else "-",
            f"{s.diverged}/{len(r.runs)}",
        ])  # fmt: skip
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]
    return ["  " + "  ".join(str(x).ljust(w) for x, w in zip(line, widths)).rstrip()
            for line in (head, *body)]  # fmt: skip


def target_words(given: bool, worst: float, best: float) -> str:
    """How the target was set, in words."""
    if given:
        return "given"
    return (
        f"{TARGET_SHARE:.0%} of the way from the worst untrained model's {_num(worst)} to the"
        f" best entry's mean final {_num(best)}"
    )


def _num(x: Any, digits: int = 4) -> str:
    if x is None or not isinstance(x, int | float) or not math.isfinite(x):
        return "-"
    return f"{x:.{digits}g}"


__all__ = ["table", "target_words"]
