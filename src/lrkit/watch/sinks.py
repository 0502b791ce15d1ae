"""Where a :class:`~lrkit.watch.Watch` writes its signals: files, TensorBoard, Lightning.

A sink is any object with ``write(records)`` (a batch of ``(step, tag, value)`` records in step
order, see :mod:`lrkit.watch.logs`), ``flush()`` (everything written so far reaches the file)
and ``close()`` (flush, then release the file; idempotent). Watch hands a sink a batch every
``flush_every`` steps or ``flush_secs`` seconds (whichever comes first), calls ``flush()`` when
asked to (``watch.flush()``) and closes it on close.

**Flush cadence.** File sinks buffer and write in large pieces, so the training loop never
waits on a disk for long, and they flush on a bounded cadence of their own: at the first
``write`` once ``flush_steps`` steps (distinct step numbers, default 64) or ``flush_secs``
seconds (default 2) have passed since their last flush. ``flush_steps=1`` flushes after
every step's records.

**What a kill loses.** A record waits first in the Watch, until its next handover (at most
``flush_every`` steps, or ``flush_secs`` seconds and the step then ending), then in the sink,
until its next flush (checked at each handover). A run killed with ``kill -9`` thus loses at
most the Watch's window plus the sink's, in every format (CSV, JSON lines, TensorBoard, a
Lightning logger). At the defaults (64 steps or 2 s, for both) a handover finds the sinks due
(their clock and step count restart at the handover before), so the two windows are one: the
last 64 steps or the last 2 s plus a step, whichever is fewer (a skipped update repeats a
step number and may put a flush off to the next handover). TensorBoard's writer thread
flushes its file up to ``flush_secs`` after it was handed a step: up to 2 s more there.

Each file sink checks at construction that it can write, and raises a ValueError naming the
path when it cannot. Under torchrun only rank 0 writes: a file sink made on another rank
creates no folder and opens no file (it writes nowhere), so a script that builds the same
sinks on every rank leaves one set of files, rank 0's.

>>> import tempfile
>>> from lrkit.watch.logs import read_run
>>> folder = tempfile.mkdtemp()
>>> sink = CSVSink(folder)
>>> sink.write([(0, "train/loss", 2.0), (1, "train/loss", 1.5)])
>>> sink.close()
>>> read_run(folder).get("train/loss")[1].tolist()
[2.0, 1.5]
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from itertools import groupby
from pathlib import Path
from typing import Any

from .. import dist
from ..checks import number, whole
from ..errors import UserError
from ..paths import writable_dir
from .logs import CSV_FILE, JSONL_FILE, Record, jsonl_line

BUFFER_BYTES = 1 << 16  # file sinks write in pieces of about this size
FLUSH_STEPS = 64  # a sink flushes once this many steps have come since its last flush...
FLUSH_SECS = 2.0  # ...or this many seconds have passed


def writable_logdir(logdir: str | Path) -> Path:
    """Create ``logdir`` (with parents) and check it can be written; UserError if not."""
    return writable_dir(logdir, "logdir")


def _file_in(path: str | Path, default_name: str) -> Path:
    """``path`` itself, or ``path/default_name`` when ``path`` is a folder or has no suffix."""
    p = Path(path)
    if p.is_dir() or not p.suffix:
        return writable_logdir(p) / default_name
    writable_logdir(p.parent if str(p.parent) else Path("."))
    return p


class Cadence:
    """When a sink flushes: once ``steps`` distinct step numbers have been written since the
    last flush, or ``secs`` seconds have passed since it (checked once a ``write``).

    >>> c = Cadence(steps=2, secs=3600)
    >>> c.due([(0, "a", 1.0), (0, "b", 1.0)]), c.due([(1, "a", 1.0)])
    (False, True)
    """

    def __init__(self, steps: int = FLUSH_STEPS, secs: float = FLUSH_SECS):
        self.steps = whole(steps, "flush_steps", least=1)
        self.secs = number(secs, "flush_secs", low=0)
        self._pending = 0  # distinct steps written since the last flush
        self._last_step: int | None = None
        self._since = time.monotonic()

    def due(self, records: Sequence[Record]) -> bool:
        """Count the steps of ``records``; True when a flush is due (the count then restarts)."""
        last = self._last_step
        for record in records:
            if record[0] != last:
                last = record[0]
                self._pending += 1
        self._last_step = last
        if self._pending >= self.steps or time.monotonic() - self._since >= self.secs:
            self.reset()
            return True
        return False

    def reset(self) -> None:
        """A flush was made: start counting again."""
        self._pending, self._since = 0, time.monotonic()

    def __repr__(self) -> str:
        return f"Cadence(steps={self.steps}, secs={self.secs:g})"


class _FileSink:
    """A text file written through a large buffer, flushed on its :class:`Cadence`, on
    :meth:`flush` and on close."""

    default_name = ""

    def __init__(
        self,
        path: str | Path,
        *,
        flush_steps: int = FLUSH_STEPS,
        flush_secs: float = FLUSH_SECS,
    ):
        self.cadence = Cadence(flush_steps, flush_secs)
        if not dist.is_main():  # under torchrun rank 0 writes: no file here, nothing truncated
            self.path, self._file = Path(path), open(os.devnull, "w")
            return
        self.path = _file_in(path, self.default_name)
        try:
            self._file = open(self.path, "w", buffering=BUFFER_BYTES, newline="")
        except OSError as e:
            raise UserError(f"cannot write {str(self.path)!r}: {e.strerror or e}") from e
        self._file.write(self.header())

    def header(self) -> str:
        return ""

    def line(self, record: Record) -> str:
        raise NotImplementedError

    def write(self, records: Sequence[Record]) -> None:
        self._file.write("".join(map(self.line, records)))
        if self.cadence.due(records):
            self._file.flush()

    def flush(self) -> None:
        if not self._file.closed:
            self._file.flush()
            self.cadence.reset()

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"


class CSVSink(_FileSink):
    """``step,tag,value`` rows; ``path`` is a file, or a folder to hold ``signals.csv``.

    Flushed to the file every ``flush_steps`` steps or ``flush_secs`` seconds (see
    :class:`Cadence`), on :meth:`flush` and on :meth:`close`; every row ends with a newline,
    so a last row without one was cut by a crash (the readers drop it with a warning).
    """

    default_name = CSV_FILE

    def header(self) -> str:
        return "step,tag,value\n"

    def line(self, record: Record) -> str:
        step, tag, value = record
        if "," in tag or '"' in tag:
            tag = '"' + tag.replace('"', '""') + '"'
        return f"{step},{tag},{value!r}\n"


class JSONLSink(_FileSink):
    """One ``{"step", "tag", "value"}`` object a line; a file, or a folder for
    ``signals.jsonl``. Flushed like :class:`CSVSink`: every ``flush_steps`` steps or
    ``flush_secs`` seconds, on :meth:`flush` and on :meth:`close`."""

    default_name = JSONL_FILE

    def line(self, record: Record) -> str:
        return jsonl_line(record)


class TensorBoardSink:
    """TensorBoard event files in ``logdir``, through ``torch.utils.tensorboard.SummaryWriter``.

    All of a step's records go into one event (one summary with a value per tag), and the
    writer's own thread encodes and writes them to the file as they come. At most
    ``flush_steps`` events (steps) wait for it, in its queue and in its hands: when it falls
    that far behind, ``write`` waits, so a killed run loses at most ``flush_steps`` steps here too, and the
    training loop waits only when the thread cannot keep up. The writer flushes its file
    every ``flush_secs`` seconds (which matters on remote file systems).
    """

    def __init__(
        self,
        logdir: str | Path,
        *,
        flush_steps: int = FLUSH_STEPS,
        flush_secs: float = FLUSH_SECS,
    ):
        self.cadence = Cadence(flush_steps, flush_secs)
        self._inert = self._closed = not dist.is_main()  # under torchrun rank 0 writes
        if self._inert:  # no writer, no folder here
            self.logdir = Path(logdir)
            return
        self.logdir = writable_logdir(logdir)
        from tensorboard.compat.proto.summary_pb2 import Summary
        from torch.utils.tensorboard import SummaryWriter

        self._summary = Summary
        # the writer's thread serialises and checksums the events (pure Python in TensorBoard)
        # while training goes on; its queue, one event a step, bounds what a kill loses
        self.writer = SummaryWriter(
            str(self.logdir),
            max_queue=max(1, self.cadence.steps - 1),
            flush_secs=max(self.cadence.secs, 0.1),
        )
        self._file_writer = self.writer._get_file_writer()
        self._closed = False

    def write(self, records: Sequence[Record]) -> None:
        if self._inert:
            return
        Summary, add = self._summary, self._file_writer.add_summary
        for step, group in groupby(records, key=lambda r: r[0]):
            values = [Summary.Value(tag=tag, simple_value=value) for _, tag, value in group]
            add(Summary(value=values), step)

    def flush(self) -> None:
        if not self._closed:
            self.writer.flush()
            self.cadence.reset()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.writer.close()

    def __repr__(self) -> str:
        return f"TensorBoardSink({str(self.logdir)!r})"


class LightningLoggerSink:
    """A Lightning logger (``CSVLogger``, ``TensorBoardLogger``, ``WandbLogger``...): one
    ``logger.log_metrics({tag: value, ...}, step)`` call per step, and ``logger.save()`` every
    ``flush_steps`` steps or ``flush_secs`` seconds (see :class:`Cadence`) and on flush."""

    def __init__(
        self,
        logger: Any,
        *,
        flush_steps: int = FLUSH_STEPS,
        flush_secs: float = FLUSH_SECS,
    ):
        self.cadence = Cadence(flush_steps, flush_secs)
        if not callable(getattr(logger, "log_metrics", None)):
            raise TypeError(
                f"LightningLoggerSink needs a Lightning logger with log_metrics(), got"
                f" {type(logger).__name__}"
            )
        self.logger = logger

    def write(self, records: Sequence[Record]) -> None:
        for step, group in groupby(records, key=lambda r: r[0]):
            self.logger.log_metrics({tag: value for _, tag, value in group}, step)
        if self.cadence.due(records):
            self.flush()

    def flush(self) -> None:
        save = getattr(self.logger, "save", None)
        if callable(save):
            save()
        self.cadence.reset()

    def close(self) -> None:
        self.flush()  # the logger itself stays open: Lightning finalizes it

    def __repr__(self) -> str:
        return f"LightningLoggerSink({type(self.logger).__name__})"


class MemorySink:
    """Records kept in memory, by tag (what ``watch.history`` reads)."""

    def __init__(self):
        self.columns: dict[str, tuple[list[int], list[float]]] = {}

    def write(self, records: Sequence[Record]) -> None:
        for tag, group in groupby(sorted(records, key=lambda r: r[1]), key=lambda r: r[1]):
            steps, values = zip(*((step, value) for step, _, value in group))
            self.add_columns({tag: (list(steps), list(values))})

    def add_columns(self, columns: dict[str, tuple[list[int], list[float]]]) -> None:
        """Append ``tag -> (steps, values)`` columns (the lists are taken over, not copied)."""
        for tag, (steps, values) in columns.items():
            column = self.columns.get(tag)
            if column is None:
                self.columns[tag] = (steps, values)
            else:
                column[0].extend(steps)
                column[1].extend(values)

    def flush(self) -> None: ...

    def close(self) -> None: ...


__all__ = [
    "Cadence",
    "CSVSink",
    "JSONLSink",
    "TensorBoardSink",
    "LightningLoggerSink",
    "MemorySink",
    "writable_logdir",
]
