"""How much each searched param mattered in a tune (:meth:`TuneResult.importance
<lrkit.tune.result.TuneResult.importance>`): Optuna's importances over the complete trials,
or a note saying why there are none.
"""

from __future__ import annotations

import warnings
from typing import Any

from ..checks import is_finite_number
from ..errors import UserError

MIN_IMPORTANCE_TRIALS = 4  # fewer complete trials than this: no importance is measured
# fANOVA's forest: Optuna's default (64 trees of depth 64) took 21 s on 1,000 trials of 3 params
# on a shared 2-core machine, 16 trees of depth 8 0.7 s, with the same importances to 0.01
FANOVA_TREES, FANOVA_DEPTH = 16, 8


def measure(result: Any, evaluator: Any) -> tuple[dict[str, float], str]:
    """``(importances, note)`` of ``result``'s complete trials (see
    :meth:`~lrkit.tune.result.TuneResult.importance`): the note says why they are empty or
    trivial ("" when measured)."""
    evaluator = _evaluator(evaluator)
    done = [
        r for r in result.trials if r["state"] == "COMPLETE" and is_finite_number(r["metric_mean"])
    ]
    searched = sorted({k for r in done for k in r["params"]})
    if not searched:
        return {}, "no param was searched by a complete trial"
    if len(searched) == 1:
        return {searched[0]: 1.0}, f"{searched[0]} only (the one param searched)"
    if len(done) < MIN_IMPORTANCE_TRIALS:
        return {}, (
            f"not measured: {len(done)} complete trial{'s' * (len(done) != 1)}, needs at"
            f" least {MIN_IMPORTANCE_TRIALS}"
        )
    import optuna

    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "A new study created" line
    try:
        with warnings.catch_warnings():  # e.g. "too few trials": the note says so instead
            warnings.simplefilter("ignore")
            found = optuna.importance.get_param_importances(
                _study(result, done), evaluator=evaluator
            )
    except (ValueError, RuntimeError, ZeroDivisionError) as e:
        return {}, f"not measured: {e}"
    finally:
        optuna.logging.set_verbosity(level)
    found = {k: float(v) for k, v in found.items() if is_finite_number(v)}
    if not found:
        return {}, "not measured: no param is in every complete trial"
    left = [k for k in searched if k not in found]
    note = f"{', '.join(left)}: not in every complete trial, not measured" if left else ""
    return found, note


def _study(result: Any, rows: list[dict[str, Any]]) -> Any:
    """An in-memory Optuna study of ``rows`` (complete trials), for the importances."""
    import optuna

    study = optuna.create_study(direction=result.direction)
    dists = {k: optuna.distributions.json_to_distribution(v)
             for k, v in result.distributions.items()}  # fmt: skip
    for r in rows:
        params = {k: v for k, v in r["params"].items() if k in dists}
        study.add_trial(optuna.trial.create_trial(
            params=params, distributions={k: dists[k] for k in params},
            value=float(r["metric_mean"]),
        ))  # fmt: skip
    return study


def _evaluator(evaluator: Any) -> Any:
    from optuna.importance import FanovaImportanceEvaluator, PedAnovaImportanceEvaluator

    if evaluator in (None, "fanova"):
        return FanovaImportanceEvaluator(n_trees=FANOVA_TREES, max_depth=FANOVA_DEPTH, seed=0)
    if evaluator in ("ped-anova", "pedanova"):
        return PedAnovaImportanceEvaluator()
    if isinstance(evaluator, str):
        raise UserError(f"unknown importance evaluator {evaluator!r}; known: fanova, ped-anova")
    return evaluator
