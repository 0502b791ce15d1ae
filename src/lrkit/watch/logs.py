"""The signals' format, in memory and on disk (read back by :mod:`lrkit.watch.reading`, and
:func:`~lrkit.watch.runs.read_run` for a run folder; both are named here too).

**Long format.** A run's signals are records ``(step, tag, value)``: ``step`` an int, ``tag`` a
string, ``value`` a float (NaN and infinities allowed). ``step`` is the 0-based index of the
optimizer update the value belongs to (the update made with that lr, from that loss), the same
numbering as :class:`lrkit.train.History`'s ``step`` column. Validation values are recorded at
the number of updates done when validation ran (Lightning's ``global_step``).

**Tags.** Where they overlap, names follow Lightning's ``LearningRateMonitor``:

=================================== ==============================================================
``lr-{Optimizer}``                  the lr of a one-group optimizer, e.g. ``lr-SGD``
``lr-{Optimizer}/pg{i}``            the lr of group ``i`` (1-based) when there are several
``lr-{Optimizer}-momentum``         momentum (SGD, RMSprop) or beta1 (Adam family); with several
                                    groups ``lr-{Optimizer}/pg{i}-momentum``
``train/loss``                      the loss, raw
``train/loss_smooth``               its bias-corrected exponential moving average (weight
                                    ``smooth``); non-finite losses do not enter it
``train/grad_norm``                 the global gradient 2-norm, before any clipping
``train/grad_clipped``              1 when that norm exceeded the clip threshold, else 0 (only
                                    when the threshold is known)
``train/nonfinite``                 non-finite values seen at that step: 1 for a NaN/inf loss,
                                    plus one per parameter tensor whose gradient holds any
``train/grad_norm/{param}``         one parameter tensor's gradient norm (every ``every`` steps)
``train/update_ratio/{param}``      ``||w_after - w_before|| / ||w_before||`` of one parameter
                                    tensor over that update (every ``every`` steps)
``val/loss``, ``val/{metric}``      after a validation
``guard/{action}``                  value 1 at a step where the guard acted (skip, rollback...)
=================================== ==============================================================

``{param}`` is the name from ``model.named_parameters()`` (``0.weight``, ``encoder.bias``).

**Files.** ``signals.csv`` (header ``step,tag,value``, one record a row) and ``signals.jsonl``
(one ``{"step": 3, "tag": "train/loss", "value": 0.25}`` object a line; non-finite values as the
strings ``"nan"``, ``"inf"``, ``"-inf"`` so each line is strict JSON), and TensorBoard event
files (``events.out.tfevents.*``, one scalar per record). :func:`read_run` reads any of these,
a ``history.json`` or ``steps.csv`` written by ``lrkit train``/``fit(out=...)``, or a
Lightning ``CSVLogger``'s ``metrics.csv`` (wide: a ``step`` column and one column per tag); a
folder of several runs is listed by :func:`~lrkit.watch.runs.find_runs`.

>>> s = Signals.from_records([(0, "train/loss", 2.0), (1, "train/loss", 1.5)])
>>> s.tags(), s.get("train/loss")[1].tolist()
(['train/loss'], [2.0, 1.5])
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Iterable
from typing import Any

import numpy as np

Record = tuple[int, str, float]

CSV_FILE = "signals.csv"
JSONL_FILE = "signals.jsonl"
CSV_HEADER = ("step", "tag", "value")
TB_PATTERN = "events.out.tfevents.*"


class Signals:
    """Signals by tag: ``tag -> (steps, values)``, two equal-length numpy arrays sorted by step.

    Build one with :meth:`from_records`, :meth:`from_history` or :func:`read_run`; a
    :class:`~lrkit.watch.Watch` gives one as ``watch.history``.
    """

    def __init__(self, data: dict[str, tuple[np.ndarray, np.ndarray]] | None = None):
        self._data: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for tag, (steps, values) in (data or {}).items():
            steps = np.asarray(steps, dtype=np.int64)
            values = np.asarray(values, dtype=np.float64)
            order = np.argsort(steps, kind="stable")
            self._data[tag] = (steps[order], values[order])

    # -- building ---------------------------------------------------------------------
    @classmethod
    def from_records(cls, records: Iterable[Record]) -> Signals:
        """From ``(step, tag, value)`` records in any order."""
        columns: dict[str, tuple[list[int], list[float]]] = {}
        for step, tag, value in records:
            steps, values = columns.setdefault(tag, ([], []))
            steps.append(int(step))
            values.append(float(value))
        return cls(columns)

    @classmethod
    def from_history(cls, history: Any, optimizer: str = "Optimizer", smooth: float = 0.98):
        """From a :class:`lrkit.train.History`: lrs, the loss (raw and smoothed), validation,
        and ``guard/skip`` at the updates that were skipped. The rows of updates a GradScaler
        skipped (``history.overflowed``: fp16 overflows, at the step of the next real update)
        are no loss samples; each is an ``amp/overflow`` record instead.

        A History does not know its optimizer's class, so lr tags are named
        ``lr-{optimizer}``; :meth:`lr` finds them whatever the name.
        """
        steps = list(history.step)
        records: list[Record] = []
        groups = len(history.lr_groups[0]) if history.lr_groups else 1
        names = lr_tags(optimizer, groups)
        overflowed = set(getattr(history, "overflowed", []))
        kept = [i for i in range(len(steps)) if i not in overflowed]
        for i in kept:
            records.extend((steps[i], name, lr) for name, lr in zip(names, history.lr_groups[i]))
        losses = [history.loss[i] for i in kept]
        records.extend((steps[i], "train/loss", loss) for i, loss in zip(kept, losses))
        smoothed = ema(losses, smooth)
        records.extend((steps[i], "train/loss_smooth", s) for i, s in zip(kept, smoothed))
        records.extend((steps[row], "amp/overflow", 1.0) for row in sorted(overflowed))
        for row in getattr(history, "skipped", []):  # updates the guard skipped
            records.append((steps[row], "guard/skip", 1.0))
        per_epoch = history.steps_per_epoch or 1
        for e in history.epochs_log:
            at = min((int(e["epoch"]) + 1) * per_epoch, len(steps))
            records.append((at, "val/loss", e["val_loss"]))
            if history.metric_name != "val_loss":
                records.append((at, f"val/{history.metric_name}", e["metric"]))
        return cls.from_records(records)

    # -- reading ----------------------------------------------------------------------
    def tags(self) -> list[str]:
        """Every tag, sorted."""
        return sorted(self._data)

    def __contains__(self, tag: object) -> bool:
        return tag in self._data

    def __len__(self) -> int:
        """The number of records."""
        return sum(len(s) for s, _ in self._data.values())

    def get(self, tag: str) -> tuple[np.ndarray, np.ndarray]:
        """``(steps, values)`` of ``tag``; KeyError naming the tags there are."""
        try:
            return self._data[tag]
        except KeyError:
            raise KeyError(f"no signal {tag!r}; the tags are {self.tags()}") from None

    def lr(self, group: int = 0, momentum: bool = False) -> tuple[np.ndarray, np.ndarray] | None:
        """The lr (or momentum) of param group ``group`` (0-based), whatever the optimizer's
        name in its tag; None when the run did not record it."""
        suffix = "-momentum" if momentum else ""
        lrs = sorted(t for t in self._data if t.startswith("lr-") and t.endswith(suffix))
        if not momentum:
            lrs = [t for t in lrs if not t.endswith("-momentum")]
        pg = [t for t in lrs if f"/pg{group + 1}" in t]
        if pg:
            return self._data[pg[0]]
        single = [t for t in lrs if "/pg" not in t]
        return self._data[single[0]] if single and group == 0 else None

    def records(self) -> list[Record]:
        """Every record, ordered by step then tag."""
        out = [
            (int(s), tag, float(v))
            for tag, (steps, values) in self._data.items()
            for s, v in zip(steps, values)
        ]
        return sorted(out, key=lambda r: (r[0], r[1]))

    def to_columns(self) -> dict[str, np.ndarray]:
        """The long table as columns ``step``, ``tag``, ``value`` (``pandas.DataFrame(...)``
        takes it as is)."""
        records = self.records()
        return {
            "step": np.array([r[0] for r in records], dtype=np.int64),
            "tag": np.array([r[1] for r in records], dtype=object),
            "value": np.array([r[2] for r in records], dtype=np.float64),
        }

    def __repr__(self) -> str:
        return f"Signals({len(self._data)} tags, {len(self)} records)"


def lr_tags(optimizer: str, groups: int) -> list[str]:
    """Lightning's names: ``lr-SGD`` for one group, ``lr-SGD/pg1``, ``lr-SGD/pg2``... for more."""
    if groups == 1:
        return [f"lr-{optimizer}"]
    return [f"lr-{optimizer}/pg{i + 1}" for i in range(groups)]


def ema(values: Iterable[float], smooth: float) -> list[float]:
    """Bias-corrected EMA: ``avg = smooth * avg + (1 - smooth) * x``, ``avg / (1 - smooth**n)``.

    Non-finite values are skipped (the previous smoothed value is repeated; NaN before any).
    """
    return ema_run(values, smooth)[0]


def ema_run(
    values: Iterable[float], smooth: float, start: tuple[float, int] = (0.0, 0)
) -> tuple[list[float], tuple[float, int]]:
    """:func:`ema` going on from ``start = (avg, n)``; returns the values and the end state."""
    avg, n = start
    out = []
    for x in values:
        if math.isfinite(x):
            avg = smooth * avg + (1 - smooth) * x
            n += 1
        out.append(avg / (1 - smooth**n) if n else math.nan)
    return out, (avg, n)


# -- encoding ---------------------------------------------------------------------------
def encode_value(value: float) -> float | str:
    """A JSON-safe value: non-finite floats become ``"nan"``, ``"inf"``, ``"-inf"``."""
    return value if math.isfinite(value) else repr(float(value))


def jsonl_line(record: Record) -> str:
    """``{"step": 3, "tag": "train/loss", "value": 0.25}`` and a newline: what ``json.dumps`` of
    the record (value through :func:`encode_value`) gives, built without it (the tag's JSON
    text is kept from its first use)."""
    step, tag, value = record
    value = float(value)
    number = repr(value) if math.isfinite(value) else f'"{value!r}"'
    return f'{{"step": {int(step)}, "tag": {_json_text(tag)}, "value": {number}}}\n'


_json_text = functools.lru_cache(maxsize=4096)(json.dumps)


# -- reading (in lrkit.watch.reading and lrkit.watch.runs; named here too) ------------------
_READERS = {
    "read_run": "runs",
    "find_runs": "runs",
    "read_csv": "reading",
    "read_jsonl": "reading",
    "read_tensorboard": "runs",
}


def __getattr__(name: str):
    if name in _READERS:
        import importlib

        return getattr(importlib.import_module(f".{_READERS[name]}", __package__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Signals", "Record", "ema", "lr_tags", "jsonl_line", "encode_value"]
