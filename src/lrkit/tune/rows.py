"""One Optuna trial as a plain row of a :class:`~lrkit.tune.result.TuneResult`'s table, read
from the user attrs lrkit's trials carry (or from the params and value of a trial without them).
"""

from __future__ import annotations

import math
from typing import Any

from .config import Config
from .storage import redact

STATES = {"COMPLETE": "completed", "PRUNED": "pruned", "FAIL": "failed", "RUNNING": "running",
          "WAITING": "waiting"}  # fmt: skip


def trial_row(trial: Any) -> dict[str, Any]:
    """One trial as a plain row of the table."""
    ua = trial.user_attrs
    state = trial.state.name
    config = ua.get("config")
    if not isinstance(config, dict) and "lr" in trial.params:
        try:
            config = Config(lr=trial.params["lr"]).to_dict()
        except ValueError:
            config = None
    config = config if isinstance(config, dict) else {}
    value = trial.value if state == "COMPLETE" else None
    mean = ua.get("metric_mean", value)
    return {
        "number": trial.number,
        "state": state,
        "status": str(ua.get("status") or STATES.get(state, state.lower())),
        "lr": config.get("lr", trial.params.get("lr")),
        "family": config.get("family", trial.params.get("family", "")),
        "params": {k: v for k, v in trial.params.items()},
        "config": config,
        "metric_mean": math.nan if mean is None else float(mean),
        "metric_std": float(ua["metric_std"]) if ua.get("metric_std") is not None else math.nan,
        "splits": list(ua.get("splits") or []),
        "steps": int(ua.get("steps") or 0),
        "verdict": str(ua.get("verdict") or ""),
        "verdict_confidence": ua.get("verdict_confidence"),
        "advice": str(ua.get("advice") or ""),
        "reason": redact(str(ua.get("reason") or "")),
        "last_report": _last_report(trial),
        "duration_s": None if trial.duration is None else round(trial.duration.total_seconds(), 3),
    }


def _last_report(trial: Any) -> list[float] | None:
    """``[step, value]`` of the trial's last intermediate report, or None."""
    reports = trial.intermediate_values
    if not reports:
        return None
    step = max(reports)
    return [int(step), float(reports[step])]
