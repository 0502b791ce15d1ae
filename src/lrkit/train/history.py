"""History: what a training run did, step by step and epoch by epoch, as plain data.

``save(dir)`` writes ``history.json`` (everything) and ``steps.csv`` (one row per step);
``History.load(dir)`` reads the JSON back. Non-finite numbers (a NaN loss) are written as the
strings ``"nan"``, ``"inf"``, ``"-inf"`` so the file stays strict JSON.

Reading checks what it reads: :meth:`History.from_dict` and :meth:`History.load` raise
``ValueError`` and nothing else for data that is not a history (a list, a missing epoch key,
a skipped row past the last step, columns of unequal length, a step past ``MAX_STEP``), and
``load`` names the file and the line (``'runs/x/history.json' line 2: not JSON: Expecting
value (column 1)``; ``'runs/x/history.json' line 12 ("loss"): loss[3] must be a number...``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ..checks import is_number, whole
from ..results import decode_floats, encode_floats, read_json, write_whole

HISTORY_FILE = "history.json"
STEPS_FILE = "steps.csv"

# status values
RUNNING = "running"
COMPLETED = "completed"
DIVERGED = "diverged"  # a non-finite loss; the run stopped
STOPPED = "stopped"  # a callback set state.stop
INTERRUPTED = "interrupted"  # KeyboardInterrupt
FAILED = "failed"  # an exception ended the run

MAX_STEP = 10**15  # no run takes more optimizer steps: a larger one is a corrupt file


@dataclass
class History:
    """A run's record. Per step (columns of equal length): ``step``, ``epoch``, ``lr`` (one
    value per param group, as used by that update) and ``loss``; ``skipped`` lists the rows
    (indices into those columns) whose update a callback skipped: such a row's step repeats in
    the next one. ``overflowed`` lists the rows whose update a GradScaler skipped (fp16
    overflows, see :mod:`lrkit.train.amp`; ``overflows`` counts them): their step repeats too.
    ``autocast`` is the run's mixed precision (None, ``"bf16"``, ``"fp16"``) and ``scale``
    the GradScaler's scale at the end (None without one). Per validation (``epochs_log``: after every epoch, or every ``val_every``
    steps, and at the end of a step budget): ``epoch``, ``metric``, ``val_loss``, ``time``
    (seconds since the start of training) and ``step`` (optimizer updates done by then).

    ``status`` is ``"completed"``, ``"diverged"`` (a non-finite loss), ``"stopped"`` (by a
    callback or the report hook), ``"interrupted"`` or ``"failed"`` (an exception); ``reason``
    says why in words. A history saved while its run was still training (``fit(out=...)``
    saves one every few seconds, see :func:`lrkit.train.fit`) says ``"running"``: it is
    partial, and ``reason`` says at which step it was saved.
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
    autocast: str | None = None  # fit's mixed precision: None, "bf16" or "fp16"
    scale: float | None = None  # with "fp16", the GradScaler's scale at the end
    overflowed: list[int] = field(default_factory=list)  # rows the GradScaler skipped

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
    def overflows(self) -> int:
        """Updates a GradScaler skipped (fp16 overflows): the rows in ``overflowed``."""
        return len(self.overflowed)

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

    def _best(self) -> dict[str, float] | None:
        """The validation with the best metric (the first of equals; None before any)."""
        best = None
        for e in self.epochs_log:
            m = e["metric"]
            if math.isnan(m):
                continue
            if best is None or (
                m > best["metric"] if self.higher_is_better else m < best["metric"]
            ):
                best = e
        return best

    @property
    def best_epoch(self) -> int | None:
        """The epoch (0-based) of the validation with the best metric (None before any)."""
        best = self._best()
        return None if best is None else best["epoch"]

    @property
    def best_metric(self) -> float | None:
        """The best metric over the validations, by ``higher_is_better`` (None before any);
        with several validations an epoch (``val_every``), the best of them all."""
        best = self._best()
        return None if best is None else best["metric"]

    # -- plain data -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data, with ``final_metric`` and ``best_metric`` added for readers."""
        data = {f.name: encode_floats(getattr(self, f.name)) for f in fields(self)}
        data["final_metric"] = encode_floats(self.final_metric)
        data["best_metric"] = encode_floats(self.best_metric)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> History:
        """A History from :meth:`to_dict`'s data (unknown keys are left out); ValueError
        naming the key when the data is not a history."""
        if not isinstance(data, dict):
            raise ValueError(f"a history is a JSON object, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        numeric = ("lr", "loss", "lr_groups", "epochs_log", "time", "scale")
        values = {k: decode_floats(v) if k in numeric else v for k, v in data.items() if k in known}
        for key, value in values.items():
            try:
                _CHECKS[key](value, key)
            except KeyError as e:  # an epochs_log entry without a key it needs
                raise ValueError(f"{key}: {e.args[0]}") from None
            except (TypeError, ValueError, OverflowError) as e:
                raise ValueError(f"{key}: {e}") from None
        history = cls(**values)
        _check_lengths(history)
        return history

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
        """Write ``history.json`` and ``steps.csv`` into ``directory`` (created); return it.

        Each file is written whole to a ``.tmp`` file beside it, then renamed over the old one,
        so a process killed while saving leaves the previous complete file, never half of one
        (the two files are renamed one after the other: after a kill ``steps.csv`` may be one
        save ahead of ``history.json``)."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        groups = len(self.lr_groups[0]) if self.lr_groups else 1
        lr_names = ["lr"] if groups == 1 else [f"lr_{i}" for i in range(groups)]
        # the rows csv.writer would write (numbers need no quoting), in one join: a save
        # while the run trains rewrites them all
        rows = [",".join(["step", "epoch", "loss", *lr_names]) + "\r\n"]
        rows.extend(
            f"{s},{e},{loss!r},{','.join(map(repr, lrs))}\r\n"
            for s, e, loss, lrs in zip(self.step, self.epoch, self.loss, self.lr_groups)
        )
        write_whole(out / STEPS_FILE, "".join(rows))
        write_whole(out / HISTORY_FILE, self.to_json())
        return out

    @classmethod
    def load(cls, directory: str | Path) -> History:
        """Read the ``history.json`` that :meth:`save` wrote into ``directory`` (or that
        file); ValueError naming the file and the line when it cannot be read."""
        path = Path(directory)
        if path.is_dir():
            path = path / HISTORY_FILE
        data, text = read_json(path)
        try:
            return cls.from_dict(data)
        except ValueError as e:
            key = str(e).split(":", 1)[0].split("[", 1)[0]
            line = _line_of_key(text, key)
            at = f" line {line} ({json.dumps(key)})" if line else ""
            raise ValueError(f"{str(path)!r}{at}: {e}") from None


# -- checks of data read back ------------------------------------------------------------------
def _string(value: Any, what: str) -> None:
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string, got {_short(value)}")


def _flag(value: Any, what: str) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{what} must be true or false, got {_short(value)}")


def _num(value: Any, what: str) -> None:
    if not is_number(value):
        raise ValueError(f"{what} must be a number, got {_short(value)}")


def _count(value: Any, what: str) -> None:
    whole(value, what, least=0)
    if value > MAX_STEP:
        raise ValueError(f"{what} must be a whole number in [0, {MAX_STEP}], got {value!r}")


def _autocast(value: Any, what: str) -> None:
    if value not in (None, "bf16", "fp16"):
        raise ValueError(f"{what} must be null, 'bf16' or 'fp16', got {_short(value)}")


def _scale(value: Any, what: str) -> None:
    if value is not None:
        _num(value, what)


def _seed(value: Any, what: str) -> None:
    whole(value, what, least=None)


def _list_of(check):
    def run(value: Any, what: str) -> None:
        if not isinstance(value, list):
            raise ValueError(f"{what} must be a list, got {_short(value)}")
        for i, item in enumerate(value):
            check(item, f"{what}[{i}]")

    return run


def _lrs(value: Any, what: str) -> None:
    _list_of(_num)(value, what)
    if not value:
        raise ValueError(f"{what} must hold one lr per param group, got []")


def _epoch_entry(value: Any, what: str) -> None:
    if not isinstance(value, dict):
        raise ValueError(f"{what} must be an object, got {_short(value)}")
    for key in ("epoch", "metric", "val_loss"):
        if key not in value:
            raise ValueError(f"{what} has no {key!r}")
    _count(value["epoch"], f"{what}['epoch']")
    if "step" in value:
        _count(value["step"], f"{what}['step']")
    for key in ("metric", "val_loss", "time"):
        if key in value:
            _num(value[key], f"{what}[{key!r}]")


_CHECKS = {
    "task": _string,
    "metric_name": _string,
    "higher_is_better": _flag,
    "lr": _num,
    "schedule": _string,
    "resolved_schedule": _string,
    "seed": _seed,
    "epochs": _count,
    "steps_per_epoch": _count,
    "total_steps": _count,
    "step": _list_of(_count),
    "epoch": _list_of(_count),
    "lr_groups": _list_of(_lrs),
    "loss": _list_of(_num),
    "skipped": _list_of(_count),
    "epochs_log": _list_of(_epoch_entry),
    "status": _string,
    "reason": _string,
    "time": _num,
    "autocast": _autocast,
    "scale": _scale,
    "overflowed": _list_of(_count),
}


def _check_lengths(h: History) -> None:
    """The step columns have one entry per row; skipped rows are rows; one lr per group."""
    n = len(h.step)
    for name in ("epoch", "lr_groups", "loss"):
        if len(getattr(h, name)) != n:
            raise ValueError(
                f"{name}: {name} has {len(getattr(h, name))} entries, step has {n}: each"
                " needs one per step"
            )
    if h.lr_groups and len({len(g) for g in h.lr_groups}) > 1:
        raise ValueError("lr_groups: every step must have the same number of param groups")
    for name in ("skipped", "overflowed"):
        for i, row in enumerate(getattr(h, name)):
            if row >= n:
                raise ValueError(f"{name}: {name}[{i}] is row {row}, but there are {n} rows")


def _line_of_key(text: str, key: str) -> int | None:
    """The line of ``"key":`` in a history.json (save writes one key a line)."""
    marker = json.dumps(key) + ":"
    for n, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith(marker):
            return n
    return None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
