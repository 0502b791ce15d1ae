"""TuneResult: what a tune found, read from a plain Optuna study.

:meth:`TuneResult.from_study` reads the trials' user attrs (``config``, ``status``, ``reason``,
``metric_mean``, ``metric_std``, ``steps``, ``verdict``...) and the study's ``lrkit`` attrs
(task, metric, space, ...), so a study on shared storage gives the same result whichever worker
or process reads it. The best configuration is chosen on the **mean** metric among the
complete trials; a tie goes to the smaller spread, then to the earlier trial.

>>> import optuna
>>> from lrkit.tune.config import Config
>>> study = optuna.create_study(direction="maximize")
>>> for lr, acc in ((0.01, 0.90), (0.1, 0.95)):
...     study.add_trial(optuna.trial.create_trial(
...         params={"lr": lr}, value=acc,
...         distributions={"lr": optuna.distributions.FloatDistribution(1e-3, 1, log=True)},
...         user_attrs={"config": Config(lr=lr).to_dict(), "metric_mean": acc,
...                     "metric_std": 0.0}))
>>> study.set_user_attr("lrkit", {"task": "digits-mlp", "metric": "accuracy"})
>>> r = TuneResult.from_study(study)
>>> r.best.lr, r.best_value
(0.1, 0.95)
>>> r.train_line()
'lrkit train --task digits-mlp --lr 0.1 --schedule constant'
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..checks import is_finite_number
from ..errors import UserError
from ..results import Result, decode_floats, encode_floats, write_whole
from .config import Config
from .importance import FANOVA_DEPTH as FANOVA_DEPTH  # re-exported: they were defined here
from .importance import FANOVA_TREES as FANOVA_TREES
from .importance import MIN_IMPORTANCE_TRIALS as MIN_IMPORTANCE_TRIALS
from .importance import measure
from .rows import STATES as STATES
from .rows import trial_row
from .storage import redact
from .text import result_table, summary_lines, trials_csv

VERSION = 1
CONFIG_KEYS = ("lr", "family", "optimizer", "weight_decay", "batch_size")
FILES = {"json": "tune.json", "csv": "trials.csv", "png": "tune.png"}


@dataclass(eq=False)
class TuneResult(Result):
    """What a tune found.

    - ``best``: the best :class:`Config` (None when no trial completed), ``best_value`` and
      ``best_std``: its mean metric and the spread over its splits (folds x seeds),
      ``best_trial``: its trial number;
    - ``task``, ``metric``, ``direction`` (``"maximize"``/``"minimize"``), ``study``: the
      study's name, ``storage``: where it lives (any password shown as ``***``);
    - ``trials``: one row per trial: ``number``, ``state`` (Optuna's), ``status``
      (``completed``/``pruned``/``diverged``/``failed``/``running``), ``lr``, ``family``,
      ``params`` (Optuna's, e.g. ``{"lr": .., "cosine.to": ..}``), ``config``,
      ``metric_mean``, ``metric_std``, ``splits``, ``steps``, ``verdict``, ``reason``...;
    - ``attrs``: the study's ``lrkit`` attrs (space, cv, seeds, epochs, sampler, ...);
    - ``distributions``: each searched param's Optuna distribution (JSON), so that
      :meth:`importance` works on a result loaded from JSON too.
    """

    task: str
    metric: str
    direction: str
    best: Config | None = None
    best_value: float = math.nan
    best_std: float = math.nan
    best_trial: int | None = None
    trials: list[dict[str, Any]] = field(default_factory=list)
    attrs: dict[str, Any] = field(default_factory=dict)
    distributions: dict[str, str] = field(default_factory=dict)
    study: str = ""
    storage: str | None = None

    # -- building ------------------------------------------------------------------------
    @classmethod
    def from_study(cls, study: Any, *, storage: str | None = None) -> TuneResult:
        """The result of an Optuna ``study`` whose trials carry lrkit's user attrs (trials
        without them, e.g. added by hand, are read from their params and value).
        ``storage``: the study's URL, kept with its password redacted."""
        from optuna.distributions import distribution_to_json

        attrs = dict(study.user_attrs.get("lrkit") or {})
        direction = study.direction.name.lower()
        rows, distributions = [], {}
        for trial in study.get_trials(deepcopy=False):
            rows.append(trial_row(trial))
            for name, dist in trial.distributions.items():
                distributions.setdefault(name, distribution_to_json(dist))
        result = cls(
            task=str(attrs.get("task", "")),
            metric=str(attrs.get("metric", "") or "value"),
            direction=direction,
            trials=rows,
            attrs=attrs,
            distributions=distributions,
            study=study.study_name,
            storage=None if storage is None else redact(str(storage)),
        )
        result._choose_best()
        return result

    def _choose_best(self) -> None:
        """The best complete trial on the mean metric; ties: smaller std, then the trial of
        the middle lr among those still tied (with two in the middle, the earlier): the
        centre of a flat top, not its edge, as pick_lr's tie rule (a metric on few validation
        examples ties often; an edge rate loses in a re-run), then the earlier trial."""
        sign = -1.0 if self.direction == "maximize" else 1.0

        def key(row: dict[str, Any]) -> tuple[float, float]:
            std = row["metric_std"]
            return (sign * row["metric_mean"], std if is_finite_number(std) else math.inf)

        done = [
            r for r in self.trials
            if r["state"] == "COMPLETE" and is_finite_number(r["metric_mean"]) and r["config"]
        ]  # fmt: skip
        if not done:  # the fields keep their defaults: no best, NaN value and std
            return
        top = min(key(r) for r in done)
        tied = sorted(
            (r for r in done if key(r) == top), key=lambda r: (r["lr"] or 0.0, r["number"])
        )
        middle = tied[(len(tied) - 1) // 2 : len(tied) // 2 + 1]
        row = min(middle, key=lambda r: r["number"])
        self.best = Config.from_dict(row["config"])
        self.best_value, self.best_std, self.best_trial = (
            row["metric_mean"], row["metric_std"], row["number"],
        )  # fmt: skip

    # -- what it says ----------------------------------------------------------------------
    @property
    def higher_is_better(self) -> bool:
        return self.direction == "maximize"

    def counts(self) -> dict[str, int]:
        """How many trials ended each way: ``{"completed": 12, "pruned": 5, ...}``."""
        out: dict[str, int] = {}
        for row in self.trials:
            out[row["status"]] = out.get(row["status"], 0) + 1
        return out

    def verdicts(self) -> dict[str, list[int]]:
        """The trials numbers of each doctor's verdict: ``{"healthy": [0, 2], ...}``."""
        out: dict[str, list[int]] = {}
        for row in self.trials:
            if row["verdict"]:
                out.setdefault(row["verdict"], []).append(row["number"])
        return out

    def no_best_reason(self) -> str:
        """Why there is no best configuration ("" when there is one)."""
        if self.best is not None:
            return ""
        counts = ", ".join(
            f"{n} {status}" for status, n in sorted(self.counts().items()) if status != "waiting"
        )
        if not counts:
            budget, run = self.attrs.get("budget"), self.attrs.get("steps_per_run")
            if budget is not None and run:
                spent = (self.attrs.get("find_steps") or 0) + (self.attrs.get("pick_steps") or 0)
                return (
                    f"no trial ran: the budget of {budget:g} full runs ({round(budget * run)}"
                    f" steps) left no room for one after measuring the lr range ({spent} steps);"
                    " give a larger --budget"
                )
            return "no trial ran"

        reasons = [r["reason"] for r in self.trials if r["reason"]]
        first = f"; first reason: {reasons[0]}" if reasons else ""
        return f"no trial completed ({counts}){first}"

    def _need_best(self) -> Config:
        if self.best is None:
            raise UserError(f"no best configuration: {self.no_best_reason()}")
        return self.best

    def _epochs(self) -> list[str]:
        """``--epochs E`` when the tune trained a set number of epochs, else nothing."""
        epochs = self.attrs.get("epochs")
        return [] if epochs is None else ["--epochs", str(int(epochs))]

    def train_line(self, *extra: str, task: str | None = None) -> str:
        """The best configuration as a runnable ``lrkit train --task ...`` line (with the
        tune's ``--epochs``); ``task``: the task as the line should name it (default: the
        study's task name). UserError saying why when no trial completed."""
        name = task or self.task or "TASK"
        return self._need_best().train_line(name, *self._epochs(), *self._seed(), *extra)

    def _seed(self) -> list[str]:
        """``--seed S`` when the best trial's first split trained with a seed S other than 0
        (``tune(seed=3)``), so the line trains what that split did; else nothing."""
        row = next((r for r in self.trials if r["number"] == self.best_trial), None)
        seed = ((row or {}).get("splits") or [{}])[0].get("seed")
        return ["--seed", str(seed)] if isinstance(seed, int) and seed != 0 else []

    def python(self, task: str | None = None) -> str:
        """Python that trains the best configuration with :func:`lrkit.fit`."""
        code = self._need_best().python(task or self.task or "TASK")
        epochs, seed = self._epochs(), self._seed()
        more = (f", epochs={epochs[1]}" if epochs else "") + (f", seed={seed[1]}" if seed else "")
        return code[:-1] + more + ")" if code.endswith(")") else code

    def importance(self, evaluator: Any = "fanova") -> dict[str, float]:
        """Each searched param's importance (Optuna's :func:`get_param_importances`, which
        sum to 1), from the complete trials; ``evaluator``: ``"fanova"`` (default; a forest
        of 16 trees of depth 8, fast on a thousand trials), ``"ped-anova"`` or an Optuna
        evaluator. Empty when it cannot be measured (see
        :meth:`importance_note`); a single param is all the importance: ``{"lr": 1.0}``."""
        return self._importance(evaluator)[0]

    def importance_note(self, evaluator: Any = "fanova") -> str:
        """Why :meth:`importance` is empty or trivial, in words ("" when measured)."""
        return self._importance(evaluator)[1]

    def _importance(self, evaluator: Any) -> tuple[dict[str, float], str]:
        return measure(self, evaluator)

    def table(self) -> str:
        """The trials table as plain text, one line per trial (see :mod:`lrkit.tune.text`)."""
        return result_table(self)

    def summary(self) -> str:
        """A few lines: the best configuration, its mean ± std, counts, importance, verdicts."""
        return "\n".join(summary_lines(self))

    def __str__(self) -> str:
        return self.summary()

    def __repr__(self) -> str:
        best = "none" if self.best is None else f"lr={self.best.lr:.3g} {self.best.schedule!r}"
        return (
            f"TuneResult(task={self.task!r}, best {best}, {self.metric}={_show(self.best_value)};"
            f" {len(self.trials)} trials)"
        )

    # -- files -----------------------------------------------------------------------------
    def plot(self, path: str | Path | None = None) -> Any:
        """The metric against lr per schedule family and the optimisation history (see
        :func:`lrkit.tune.plots.plot_result`); ``path``: a PNG written whole. The Figure."""
        from .plots import plot_result

        return plot_result(self, path)

    def to_csv(self, path: str | Path | None = None) -> str:
        """The trials table as CSV text (one row per trial, a column per param); also
        written whole to ``path`` when given."""
        text = trials_csv(self)
        if path is not None:
            write_whole(Path(path), text)
        return text

    def save(self, path: str | Path) -> Path:
        """Write the result as JSON to ``path`` (whole); a folder gets ``tune.json``,
        ``trials.csv`` and ``tune.png`` in it. The path written (the JSON's)."""
        target = Path(path)
        if target.is_dir():
            self.to_csv(target / FILES["csv"])
            self.plot(target / FILES["png"])
            target = target / FILES["json"]
        self.to_json(target)
        return target

    def to_dict(self) -> dict[str, Any]:
        """Plain data, ready for strict JSON (non-finite numbers as ``"nan"``/``"inf"``)."""
        return encode_floats({
            "kind": "lrkit.TuneResult", "version": VERSION, "task": self.task,
            "metric": self.metric, "direction": self.direction, "study": self.study,
            "storage": self.storage,
            "best": None if self.best is None else self.best.to_dict(),
            "best_value": self.best_value, "best_std": self.best_std,
            "best_trial": self.best_trial, "attrs": self.attrs,
            "distributions": self.distributions, "trials": self.trials,
        })  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TuneResult:
        """The result :meth:`to_dict` described."""
        data = decode_floats(dict(data))
        missing = sorted({"task", "metric", "direction", "trials"} - set(data))
        if missing:
            raise ValueError(f"not a TuneResult: keys {missing} are missing")
        if data["direction"] not in ("maximize", "minimize"):
            raise ValueError(
                f"direction must be 'maximize' or 'minimize', got {data['direction']!r}"
            )
        best = data.get("best")
        return cls(
            task=str(data["task"]), metric=str(data["metric"]), direction=data["direction"],
            best=None if best is None else Config.from_dict(best),
            best_value=float(data.get("best_value", math.nan)),
            best_std=float(data.get("best_std", math.nan)),
            best_trial=data.get("best_trial"), trials=[dict(r) for r in data["trials"]],
            attrs=dict(data.get("attrs") or {}),
            distributions=dict(data.get("distributions") or {}),
            study=str(data.get("study", "")), storage=data.get("storage"),
        )  # fmt: skip


def _show(x: float) -> str:
    return f"{x:.4g}" if is_finite_number(x) else "-"


__all__ = ["TuneResult", "FILES"]
