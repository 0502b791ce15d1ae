"""How a :class:`~lrkit.tune.result.TuneResult` reads: the trials table and the summary lines.

Plain text, so a log file, a terminal and a test all see the same words. Nothing here
prints: the CLI does.
"""

from __future__ import annotations

import csv
import io
import math
from typing import Any

SHOWN_NUMBERS = 6  # trial numbers listed per verdict before "..."


def fmt(x: Any, digits: int = 4) -> str:
    """A number in ``digits`` significant figures; ``-`` for None or a non-finite value."""
    if x is None or isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
        return "-"
    return f"{x:.{digits}g}"


def mean_std(mean: Any, std: Any) -> str:
    """``0.9621 ± 0.0041``, ``0.9621`` without a spread, ``-`` without a mean."""
    if fmt(mean) == "-":
        return "-"
    return fmt(mean) if fmt(std) == "-" else f"{fmt(mean)} ± {fmt(std, 2)}"


def params_text(row: dict[str, Any]) -> str:
    """A trial's params beyond lr and family, its family's without the family's prefix:
    ``to=0.01 warmup.steps=0.05`` for ``cosine.to`` and ``cosine.warmup.steps``."""
    prefix = f"{row['family']}." if row.get("family") else None
    shown = []
    for name, value in sorted(row["params"].items()):
        if name in ("lr", "family"):
            continue
        if prefix and name.startswith(prefix):
            name = name[len(prefix) :]
        shown.append(f"{name}={fmt(value, 3) if isinstance(value, float) else value}")
    return " ".join(shown)


def result_table(result: Any) -> str:
    """One line per trial: number, status, lr, family, params, metric (mean ± std over the
    splits; a pruned trial's last report in parentheses), steps, verdict, reason; the best
    trial marked ``*``. Plain text: columns padded to their widest cell, no cell cut, the
    reason last and whole (a log or a grep reads every line as one trial)."""
    title = f"lrkit tune: {result.task or 'task'}"
    if result.study:
        title += f", study {result.study!r}"
    head = ["#", "status", "lr", "family", "params", f"{result.metric} (mean ± std)", "steps",
            "verdict", "reason"]  # fmt: skip
    right = {0, 2, 5, 6}
    rows = [head]
    for row in ran(result):
        mark = "*" if row["number"] == result.best_trial else ""
        rows.append([
            f"{mark}{row['number']}", row["status"], fmt(row["lr"], 3), str(row["family"] or ""),
            params_text(row), _metric(row), str(row["steps"]), row["verdict"], row["reason"],
        ])  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = [title]
    for r in rows:
        cells = [c.rjust(w) if i in right else c.ljust(w)
                 for i, (c, w) in enumerate(zip(r, widths, strict=True))]  # fmt: skip
        lines.append("  ".join(cells).rstrip())
    waiting = len(result.trials) - len(ran(result))
    if waiting:
        lines.append(f"({queued(waiting)})")
    return "\n".join(lines)


def ran(result: Any) -> list[dict[str, Any]]:
    """The trials that started: not those queued and waiting (a grid's points beyond the
    trials asked for)."""
    return [r for r in result.trials if r["status"] != "waiting"]


def queued(n: int) -> str:
    return (
        f"{n} more queued trial{'s' * (n != 1)} (grid points) not run: --resume with more"
        " --trials runs them"
    )


def trials_csv(result: Any) -> str:
    """The trials as CSV text: one row per trial, a column per param (lr and family first)."""
    params = sorted({k for r in result.trials for k in r["params"]} - {"lr", "family"})
    columns = ["number", "state", "status", "lr", "family", "schedule", *params,
               "metric_mean", "metric_std", "steps", "verdict", "reason", "duration_s"]  # fmt: skip
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for r in result.trials:
        values = {**r, **r["params"], "schedule": (r["config"] or {}).get("schedule", "")}
        writer.writerow(["" if values.get(c) is None else values.get(c) for c in columns])
    return out.getvalue()


def _metric(row: dict[str, Any]) -> str:
    """The mean ± std over the splits (the mean alone for one split); a pruned trial's last
    report in parentheses (a partial run's metric, not comparable with the others)."""
    last = row.get("last_report")
    if row["status"] == "pruned":
        value = last[1] if last else row["metric_mean"]
        return f"({fmt(value)})" if fmt(value) != "-" else "-"
    if len(row.get("splits") or ()) <= 1:
        return fmt(row["metric_mean"])
    return mean_std(row["metric_mean"], row["metric_std"])


def numbers(found: list[int]) -> str:
    """``0, 2, 5`` or ``0, 2, 5, 7, 8, 9, ... (12)``."""
    shown = ", ".join(str(n) for n in found[:SHOWN_NUMBERS])
    return shown + (f", ... ({len(found)})" if len(found) > SHOWN_NUMBERS else "")


def summary_lines(result: Any) -> list[str]:
    """The best configuration and its mean ± std, the counts, importance and verdicts."""
    counts = ", ".join(
        f"{n} {status}" for status, n in sorted(result.counts().items()) if status != "waiting"
    )
    started = len(ran(result))
    waiting = len(result.trials) - started
    head = f"lrkit tune: {result.task or 'task'}, {started} trials"
    head += (f" ({counts})" if counts else "") + (f"; {queued(waiting)}" if waiting else "")
    lines = [head]
    if result.best is None:
        lines.append(f"no best configuration: {result.no_best_reason()}")
    else:
        best = result.best
        way = "higher" if result.higher_is_better else "lower"
        row = next(r for r in result.trials if r["number"] == result.best_trial)
        splits = len(row["splits"])
        over = f", mean over {splits} splits" if splits > 1 else ""
        shown = (
            mean_std(result.best_value, result.best_std) if splits > 1 else fmt(result.best_value)
        )
        lines.append(
            f"best: trial {result.best_trial}, {result.metric} {shown} ({way} is better{over})"
        )
        extra = "".join(
            f", {name.replace('_', ' ')} {value}"
            for name, value in (("optimizer", best.optimizer), ("weight_decay", best.weight_decay),
                                ("batch_size", best.batch_size))
            if value is not None
        )  # fmt: skip
        lines.append(f"  lr {best.lr:.4g}, schedule {best.schedule}{extra}")
    found, note = result._importance("fanova")
    if len(found) > 1:
        ranked = sorted(found.items(), key=lambda kv: -kv[1])
        shown = ", ".join(f"{k} {v:.2f}" for k, v in ranked)
        lines.append(f"importance (fANOVA): {shown}" + (f"; {note}" if note else ""))
    elif note and result.best is not None:
        lines.append(f"importance: {note}")
    verdicts = result.verdicts()
    if verdicts:
        lines.append(
            "doctor: " + "; ".join(f"{v} {len(ns)} (trials {numbers(ns)})"
                                   for v, ns in sorted(verdicts.items(), key=lambda kv: -len(kv[1])))
        )  # fmt: skip
    return lines


__all__ = ["trials_csv", "result_table", "summary_lines", "fmt", "mean_std"]
