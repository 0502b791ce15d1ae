"""Run folders: which runs a folder holds (:func:`find_runs`), and :func:`read_run`.

**A run** is a folder holding log files directly: ``signals.jsonl`` or ``signals.csv`` (a
Watch, ``lrkit train --logdir``), TensorBoard event files (``events.out.tfevents.*``),
``history.json`` or ``steps.csv`` (``lrkit train --out``, ``fit(out=...)``) or a Lightning
``metrics.csv``. The first of these kinds found, in that order, is the one read. Several
event files in one folder are merged as TensorBoard shows them (see
:func:`~lrkit.watch.reading.merge_event_files`).

**A folder of runs** holds run folders below it (up to ``MAX_DEPTH`` levels down), each one a
run of its own, never merged. Two rules make the list what a user means:

- Lightning's ``version_0``, ``version_1``... folders side by side are versions of one
  experiment: only the newest (the highest number) is a run, the older ones are listed in
  :attr:`Run.older`;
- a ``lrkit train --out`` folder (only ``history.json``/``steps.csv``) with exactly one run
  folder below it (``--logdir out/signals``) is that one run, read from the signals below.

>>> import tempfile, pathlib
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> for v in (0, 1):
...     (root / f"version_{v}").mkdir()
...     _ = (root / f"version_{v}" / "signals.jsonl").write_text("")
>>> [run.folder.name for run in find_runs(root)]
['version_1']
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .logs import CSV_FILE, JSONL_FILE, TB_PATTERN, Signals
from .reading import LogWarning, merge_event_files, read_csv, read_jsonl, where

HISTORY_FILES = ("history.json", "steps.csv")
LIGHTNING_CSV = "metrics.csv"
MAX_DEPTH = 8  # folders below the one given that are searched for runs
MAX_FOLDERS = 20_000  # folders looked at, at most, before the search gives up
_VERSION = re.compile(r"version_(\d+)")


@dataclass(frozen=True)
class Run:
    """One run: its ``folder``, the log ``sources`` it holds (most preferred first; several
    event files count as one source) and the ``older`` Lightning versions passed over."""

    folder: Path
    sources: tuple[tuple[Path, ...], ...]
    older: tuple[Path, ...] = field(default=())

    @property
    def files(self) -> tuple[Path, ...]:
        """The file(s) :meth:`read` reads: the most preferred source."""
        return self.sources[0]

    def read(self) -> tuple[Signals, Path]:
        """The signals of the most preferred source, and its (first) file."""
        return read_source(self.files), self.files[0]

    def describe(self) -> str:
        """What :meth:`read` reads, in words: the file, or ``N event files in FOLDER``."""
        if len(self.files) == 1:
            return str(self.files[0])
        return f"{len(self.files)} event files in {self.folder}"

    @property
    def history_only(self) -> bool:
        return all(files[0].name in HISTORY_FILES for files in self.sources)


def read_source(files: tuple[Path, ...]) -> Signals:
    """One source: event files (merged), a JSON lines, a CSV or a ``history.json`` file."""
    if files[0].name.startswith("events.out.tfevents"):
        return merge_event_files(list(files))
    return read_file(files[0])


def read_file(path: Path) -> Signals:
    """One log file, by its name."""
    name = path.name
    if name.startswith("events.out.tfevents"):
        return merge_event_files([path])
    readers: dict[str, Callable[[Path], Signals]] = {".jsonl": read_jsonl, ".csv": read_csv}
    if name.endswith(".json"):
        from ..train import History

        history = History.load(path)
        if history.status == "running":  # fit saves while it trains: a killed run reads so
            warnings.warn(
                f"{where(path)} was saved while the run was still training ({history.reason}):"
                " the run is partial, or was killed",
                LogWarning,
                stacklevel=2,
            )
        return Signals.from_history(history)
    for suffix, reader in readers.items():
        if name.endswith(suffix):
            return reader(path)
    raise ValueError(
        f"cannot read {where(path)}: expected a .jsonl, .csv, history.json or {TB_PATTERN} file"
    )


def sources_in(folder: Path, names: list[str]) -> tuple[tuple[Path, ...], ...]:
    """The log sources among ``names`` (the entries of ``folder``), most preferred first."""
    files = {n for n in names if (folder / n).is_file()}
    events = tuple(sorted(folder / n for n in files if n.startswith("events.out.tfevents")))
    out: list[tuple[Path, ...]] = []
    for name in (JSONL_FILE, CSV_FILE):
        if name in files:
            out.append((folder / name,))
    if events:
        out.append(events)
    for name in (*HISTORY_FILES, LIGHTNING_CSV):
        if name in files:
            out.append((folder / name,))
    return tuple(out)


def find_runs(path: str | Path) -> list[Run]:
    """The runs in ``path`` (itself one, or folders of runs below it), in the order of a walk
    of the tree (top down, folders sorted by name).

    ValueError when ``path`` does not exist or the search passes ``MAX_FOLDERS`` folders.
    """
    root = Path(path)
    if not root.exists():
        raise ValueError(f"run directory {str(root)!r} does not exist")
    if root.is_file():
        return [Run(root.parent, ((root,),))]
    found: list[Run] = []
    seen = 0
    for folder, dirs, names in os.walk(root, onerror=None, followlinks=False):
        seen += 1
        if seen > MAX_FOLDERS:
            raise ValueError(
                f"{str(root)!r} holds more than {MAX_FOLDERS} folders: name a run folder in it"
            )
        here = Path(folder)
        if len(here.relative_to(root).parts) >= MAX_DEPTH:
            dirs.clear()
        dirs.sort()
        sources = sources_in(here, names)
        if sources:
            found.append(Run(here, sources))
    return _newest_versions(_merge_out_folders(found))


def _merge_out_folders(runs: list[Run]) -> list[Run]:
    """A history-only run with exactly one run below it is that run (``runs`` in the walk's
    order, so the runs below a folder come right after it)."""
    out = []
    for i, run in enumerate(runs):
        if run.history_only:
            below = 0
            for other in runs[i + 1 :]:
                if run.folder not in other.folder.parents:
                    break
                below += 1
            if below == 1:
                continue
        out.append(run)
    return out


def _newest_versions(runs: list[Run]) -> list[Run]:
    """Of sibling ``version_N`` folders, the highest N only (the others in ``older``)."""
    groups: dict[Path, list[tuple[int, Run]]] = {}
    for run in runs:
        m = _VERSION.fullmatch(run.folder.name)
        if m:
            groups.setdefault(run.folder.parent, []).append((int(m.group(1)), run))
    keep = []
    for run in runs:
        m = _VERSION.fullmatch(run.folder.name)
        if not m:
            keep.append(run)
            continue
        versions = sorted(groups[run.folder.parent], key=lambda vr: vr[0])
        if versions[-1][1] is run:
            older = tuple(r.folder for _, r in versions[:-1])
            keep.append(Run(run.folder, run.sources, older))
    return keep


def no_logs(path: Path) -> ValueError:
    return ValueError(
        f"no logs in run directory {str(path)!r}: expected {JSONL_FILE} or {CSV_FILE} (lrkit's"
        f" Watch), TensorBoard event files ({TB_PATTERN}), history.json or steps.csv (lrkit"
        " train --out) or a Lightning metrics.csv"
    )


def read_run(run_dir: str | Path) -> Signals:
    """Read the signals of the one run in ``run_dir`` (a run folder, a folder holding one
    run, or one log file).

    ValueError when there is no run there, or several: it lists them, to name one (the
    newest of Lightning's ``version_N`` folders is taken without asking).
    """
    path = Path(run_dir)
    runs = find_runs(path)
    if not runs:
        raise no_logs(path)
    if len(runs) > 1:
        names = ", ".join(repr(str(r.folder)) for r in runs[:10])
        more = f" and {len(runs) - 10} more" if len(runs) > 10 else ""
        raise ValueError(f"{str(path)!r} holds {len(runs)} runs: {names}{more}; name one of them")
    if path.is_file():
        return read_file(path)
    return runs[0].read()[0]


def read_tensorboard(path: str | Path) -> Signals:
    """Scalars of one TensorBoard event file, or of the event files of the one run in a
    folder (several files merged as TensorBoard shows them); ValueError when there is none."""
    p = Path(path)
    if p.is_file():
        return merge_event_files([p])
    runs = [
        files
        for run in find_runs(p)
        for files in run.sources
        if files[0].name.startswith("events.out.tfevents")
    ]
    if len(runs) != 1:
        found = "no" if not runs else f"{len(runs)} folders of"
        raise ValueError(f"{str(p)!r} holds {found} TensorBoard event files ({TB_PATTERN})")
    return merge_event_files(list(runs[0]))


__all__ = ["Run", "find_runs", "read_run", "read_file", "read_tensorboard", "MAX_DEPTH"]
