"""History: what a training run did, step by step and epoch by epoch, as plain data.

``save(dir)`` writes ``history.json`` (everything) and ``steps.csv`` (one row per step);
``History.load(dir)`` reads the JSON back. Non-finite numbers (a NaN loss) are written as the
strings ``"nan"``, ``"inf"``, ``"-inf"`` so the file stays strict JSON.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

HISTORY_FILE = "history.json"
STEPS_FILE = "steps.csv"

# status values
RUNNING = "running"
COMPLETED = "completed"
DIVERGED = "diverged"  # a non-finite loss; the run stopped
STOPPED = "stopped"  # a callback set state.stop
INTERRUPTED = "interrupted"  # KeyboardInterrupt
FAILED = "failed"  # an exception ended the run


@dataclass
class History:
    """A run's record. Per step (columns of equal length): ``step``, ``epoch``, ``lr`` (one
    value per param group, as used by that update) and ``loss``; ``skipped`` lists the rows
    (indices into those columns) whose update a callback skipped: such a row's step repeats in
    the next one. Per validation (``epochs_log``: after every epoch, or every ``val_every``
    steps, and at the end of a step budget): ``epoch``, ``metric``, ``val_loss``, ``time``
    (seconds since the start of training) and ``step`` (optimizer updates done by then).

    ``status`` is ``"completed"``, ``"diverged"`` (a non-finite loss), ``"stopped"`` (by a
    callback) or ``"interrupted"``; ``reason`` says why in words.
    """

    task: str = ""
    metric_name: str = "val_loss"
    higher_is_better: bool = False
    lr: float = 0.0
    schedule: str = ""  # as given, e.g. "warmup(5%) >> cosine"
    resolved_schedule: str = ""  # in whole steps, e.g. "warmup(12) >> cosine(218)"
    seed: int = 0
    epochs: int = 0  # epochs the run spans (the last one may be cut by a step budget)
    steps_per_epoch: int = 0
    total_steps: int = 0  # the run's planned length in steps (batches)
    step: list[int] = field(default_factory=list)
    epoch: list[int] = field(default_factory=list)
    lr_groups: list[list[float]] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)  # rows whose update was skipped
    epochs_log: list[dict[str, float]] = field(default_factory=list)
    status: str = RUNNING
    reason: str = ""
    time: float = 0.0

    # -- recording --------------------------------------------------------------------
    def add_steps(
        self, steps: list[int], epoch: int, lrs: list[list[float]], losses: list[float]
    ) -> None:
        self.step.extend(steps)
        self.epoch.extend([epoch] * len(steps))
        self.lr_groups.extend(lrs)
        self.loss.extend(losses)

    def add_epoch(
        self, epoch: int, metric: float, val_loss: float, time: float, step: int | None = None
    ) -> None:
        """Record one validation (``step``: the optimizer updates done when it ran)."""
        entry = {"epoch": epoch, "metric": metric, "val_loss": val_loss, "time": time}
        if step is not None:
            entry["step"] = step
        self.epochs_log.append(entry)

    # -- reading ----------------------------------------------------------------------
    @property
    def steps(self) -> int:
        """Rows recorded: one a batch trained on (a skipped update has its row too)."""
        return len(self.step)

    @property
    def lrs(self) -> list[float]:
        """The first param group's lr at every step."""
        return [g[0] for g in self.lr_groups]

    @property
    def metrics(self) -> list[float]:
        """The validation metric after every epoch."""
        return [e["metric"] for e in self.epochs_log]

    @property
    def final_metric(self) -> float | None:
        """The metric after the last validated epoch (None before any)."""
        return self.epochs_log[-1]["metric"] if self.epochs_log else None

    @property
    def best_epoch(self) -> int | None:
        """The epoch (0-based) with the best metric (None before any)."""
        best = None
        for e in self.epochs_log:
            m = e["metric"]
            if math.isnan(m):
                continue
            if best is None or (m > best[1] if self.higher_is_better else m < best[1]):
                best = (e["epoch"], m)
        return None if best is None else best[0]

    @property
    def best_metric(self) -> float | None:
        """The best metric over the epochs, by ``higher_is_better`` (None before any)."""
        epoch = self.best_epoch
        return (
            None
            if epoch is None
            else next(e["metric"] for e in self.epochs_log if e["epoch"] == epoch)
        )

    # -- plain data -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data, with ``final_metric`` and ``best_metric`` added for readers."""
        data = encode_floats(asdict(self))
        data["final_metric"] = encode_floats(self.final_metric)
        data["best_metric"] = encode_floats(self.best_metric)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> History:
        """The history :meth:`to_dict` described (``final_metric``, ``best_metric`` and unknown
        keys are ignored; missing ones take their defaults)."""
        known = {f.name for f in fields(cls)}
        numeric = ("lr", "loss", "lr_groups", "epochs_log", "time")
        return cls(
            **{k: decode_floats(v) if k in numeric else v for k, v in data.items() if k in known}
        )

    def to_json(self, path: str | Path | None = None) -> str:
        """The history as strict JSON text, a key a line; also written to ``path`` when given."""
        lines = [f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in self.to_dict().items()]
        text = "{\n" + ",\n".join(lines) + "\n}\n"
        if path is not None:
            Path(path).write_text(text)
        return text

    @classmethod
    def from_json(cls, text: str) -> History:
        """The history that :meth:`to_json` wrote (pass the text; :meth:`load` reads a file)."""
        return cls.from_dict(json.loads(text))

    def save(self, directory: str | Path) -> Path:
        """Write ``history.json`` and ``steps.csv`` into ``directory`` (created); return it."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        self.to_json(out / HISTORY_FILE)
        groups = len(self.lr_groups[0]) if self.lr_groups else 1
        lr_names = ["lr"] if groups == 1 else [f"lr_{i}" for i in range(groups)]
        with open(out / STEPS_FILE, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["step", "epoch", "loss", *lr_names])
            for row in zip(self.step, self.epoch, self.loss, self.lr_groups):
                writer.writerow([row[0], row[1], repr(row[2]), *map(repr, row[3])])
        return out

    @classmethod
    def load(cls, directory: str | Path) -> History:
        """Read the ``history.json`` that :meth:`save` wrote into ``directory``."""
        path = Path(directory)
        if path.is_dir():
            path = path / HISTORY_FILE
        return cls.from_dict(json.loads(path.read_text()))


def encode_floats(value: Any) -> Any:
    """``value`` with every non-finite float replaced by ``"nan"``, ``"inf"`` or ``"-inf"``
    (in lists and dicts too), so that ``json.dumps`` writes strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)  # 'nan', 'inf', '-inf'
    if isinstance(value, list):
        return [encode_floats(v) for v in value]
    if isinstance(value, dict):
        return {k: encode_floats(v) for k, v in value.items()}
    return value


def decode_floats(value: Any) -> Any:
    """The inverse of :func:`encode_floats`: ``"nan"``, ``"inf"``, ``"-inf"`` back to floats."""
    if isinstance(value, str) and value in ("nan", "inf", "-inf"):
        return float(value)
    if isinstance(value, list):
        return [decode_floats(v) for v in value]
    if isinstance(value, dict):
        return {k: decode_floats(v) for k, v in value.items()}
    return value
