"""CompareResult: what a compare measured, as plain data, a table and a verdict.

A result holds one :class:`Row` per entry and mode (``"own"``: the entry at its own rate;
``"same"``: every entry at one rate, with ``same_lr``), each with one :class:`SeedRun` per
seed: its final and best metric, its untrained metric, and its validation curve
(``[step, seconds, metric, val_loss]`` per validation), from which the steps and seconds to
reach ``target`` are read. A row also keeps its lr against the step (at most
``LR_POINTS`` points, its first seed's: the schedule is the same on every seed).

``save(dir)`` writes ``compare.json`` (:meth:`CompareResult.load` reads it back) and
``compare.png``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ...paths import writable_dir
from ...progress import counted
from ...results import Result, decode_floats
from .stats import Summary, Verdict, reach, summarize, verdict

FILES = {"json": "compare.json", "png": "compare.png"}
MODES = ("own", "same")
LR_POINTS = 200  # points of a row's lr curve kept


@dataclass
class SeedRun:
    """One full run of an entry: ``seed``, ``status`` (fit's), ``final`` and ``best`` metric
    (NaN when it diverged), ``best_epoch`` (0-based, as :class:`~lrkit.train.History`'s) and
    ``best_step``, ``initial`` (the untrained model's metric), ``steps`` and ``seconds``
    (training time), ``curve``: ``[step, seconds, metric, val_loss]`` per validation."""

    seed: int
    status: str
    final: float
    best: float
    best_epoch: int | None
    best_step: int | None
    initial: float
    steps: int
    seconds: float
    curve: list[list[float]] = field(default_factory=list)
    reason: str = ""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SeedRun:
        return cls(**{k: decode_floats(v) for k, v in data.items()})


@dataclass
class Row:
    """One entry in one mode: ``label``, ``schedule`` (the spec), ``optimizer``, ``finetune``,
    ``lr`` (the peak lr every seed ran at), ``how`` it was chosen (``"pick"``, ``"tune"``,
    ``"given"``, ``"lr-free"`` or ``"same"``), ``mode`` (``"own"`` or ``"same"``), ``cost``
    (full runs spent choosing the lr) and ``seconds`` (spent choosing it), ``runs`` (one per
    seed) and ``lr_curve`` (``[step, lr]`` pairs, the highest param group's lr)."""

    label: str
    schedule: str
    lr: float
    how: str
    mode: str = "own"
    optimizer: str | None = None
    finetune: str | None = None
    cost: float = 0.0
    seconds: float = 0.0
    runs: list[SeedRun] = field(default_factory=list)
    lr_curve: list[list[float]] = field(default_factory=list)

    def summary(self) -> Summary:
        """Mean, std and 95% interval of the final metric over the seeds."""
        return summarize([r.final for r in self.runs])

    def to_target(self, target: float, higher: bool) -> dict[str, Any]:
        """Over the seeds that reached ``target``: the mean ``steps`` and ``seconds`` to it,
        and ``reached`` (how many did) of ``runs``."""
        hits = [h for h in (reach(r.curve, target, higher) for r in self.runs) if h is not None]
        return {
            "steps": math.fsum(h[0] for h in hits) / len(hits) if hits else math.nan,
            "seconds": math.fsum(h[1] for h in hits) / len(hits) if hits else math.nan,
            "reached": len(hits),
            "runs": len(self.runs),
        }

    def best_epoch(self) -> float:
        """The mean best epoch over the seeds (0-based; NaN when none has one)."""
        epochs = [r.best_epoch for r in self.runs if r.best_epoch is not None]
        return math.fsum(epochs) / len(epochs) if epochs else math.nan

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Row:
        values = {k: decode_floats(v) for k, v in data.items() if k != "runs"}
        values["runs"] = [SeedRun.from_dict(r) for r in data.get("runs", [])]
        return cls(**values)


@dataclass
class CompareResult(Result):
    """What :func:`~lrkit.tune.compare.compare` measured.

    ``task``, ``metric`` and ``higher_is_better``; ``seeds`` (runs per entry, seeds ``seed``
    and up), ``epochs`` and ``steps`` of a run; ``lr_how`` (``"pick"`` or ``"tune"``) and
    ``budget`` (full runs per entry for choosing its rate); ``same_lr`` (None: no same-rate
    rows) and ``same_how`` (how it was chosen); ``target`` (the metric a run must reach for
    "steps to target") and ``target_how``; ``rows``; ``seconds``: the whole compare's time;
    ``note``: why the result is partial (``"interrupted: ..."``), else empty.

    ``verdict(mode)`` applies the separation rule to one mode's rows; ``winner`` is the
    own-rate verdict's winner (None when tied).
    """

    task: str
    metric: str
    higher_is_better: bool
    seeds: int
    seed: int
    epochs: int
    steps: int
    lr_how: str
    budget: float
    target: float
    target_how: str
    rows: list[Row] = field(default_factory=list)
    same_lr: float | None = None
    same_how: str = ""
    seconds: float = 0.0
    version: str = ""
    note: str = ""

    # -- reading -------------------------------------------------------------------------
    def mode_rows(self, mode: str = "own") -> list[Row]:
        """The rows of one mode (``"own"`` or ``"same"``), in the entries' order."""
        return [r for r in self.rows if r.mode == mode]

    def verdict(self, mode: str = "own") -> Verdict:
        """The separation rule (:func:`~lrkit.tune.compare.stats.verdict`) over one mode."""
        rows = self.mode_rows(mode)
        return verdict({r.label: r.summary() for r in rows}, self.higher_is_better)

    @property
    def winner(self) -> str | None:
        """The entry that wins at its own rate (None when tied or undecided)."""
        return self.verdict("own").winner

    @property
    def tied(self) -> tuple[str, ...]:
        """The entries tied at their own rates (empty when there is a winner)."""
        return self.verdict("own").tied

    def table(self) -> str:
        """The comparison as text: one block per mode, then its verdict."""
        from .text import table

        return table(self)

    def __str__(self) -> str:
        return self.table()

    def __repr__(self) -> str:
        v = self.verdict("own")
        said = f"winner {v.winner!r}" if v.winner else f"tied {list(v.tied)!r}"
        return (
            f"CompareResult(task={self.task!r},"
            f" {counted(len(self.mode_rows('own')), 'entry', 'entries')} x"
            f" {counted(self.seeds, 'seed')}, {said})"
        )

    def plot(self, path: str | Path | None = None) -> Any:
        """One figure: each entry's mean validation curve (a band over the seeds) with its lr
        on a second axis; a panel per mode. ``path`` saves it. Returns the Figure."""
        from .plot import plot_compare

        return plot_compare(self, path)

    # -- plain data ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if k != "rows"}
        data["rows"] = [r.to_dict() for r in self.rows]
        data["verdicts"] = {
            m: asdict(self.verdict(m)) for m in MODES if self.mode_rows(m)
        }  # for readers: from_dict recomputes them
        data["summaries"] = [
            {"label": r.label, "mode": r.mode, **asdict(r.summary()),
             "to_target": r.to_target(self.target, self.higher_is_better)}
            for r in self.rows
        ]  # fmt: skip
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CompareResult:
        skip = ("rows", "verdicts", "summaries")
        values = {k: decode_floats(v) for k, v in data.items() if k not in skip}
        values["rows"] = [Row.from_dict(r) for r in data.get("rows", [])]
        return cls(**values)

    def save(self, directory: str | Path) -> Path:
        """Write ``compare.json`` and ``compare.png`` into ``directory`` (created); return it."""
        folder = writable_dir(directory, "out")
        self.to_json(folder / FILES["json"])
        self.plot(folder / FILES["png"])
        return folder

    @classmethod
    def load(cls, path: str | Path) -> CompareResult:
        """The result in ``path``: a ``compare.json``, or a folder holding one."""
        path = Path(path)
        return super().load(path / FILES["json"] if path.is_dir() else path)


__all__ = ["CompareResult", "Row", "SeedRun", "FILES", "MODES", "LR_POINTS"]
