"""Reading one log file back: lrkit's CSV and JSON lines, wide CSVs, TensorBoard event files.

Every reader raises ``ValueError`` and nothing else for a file it cannot read (missing, a
folder, not UTF-8, not the format, a bad number), with a message that names the file and the
line (or the byte, for event files)::

    'runs/x/signals.csv' line 5: could not convert string to float: 'abc'

**A cut last line is not an error.** A crash (``kill -9``, a full disk) can cut a file in the
middle of its last line. The sinks end every line with a newline, so a last line without one
was cut: the JSONL reader drops it when it does not parse, the CSV reader always (a cut number
may still parse, wrongly), and both warn (``UserWarning``) naming the file and the line. A
TensorBoard file whose last record is cut, or that holds a corrupt record, is read up to that
record, with a warning. Steps must be whole numbers in ``[0, MAX_STEP]``.
"""

from __future__ import annotations

import csv
import json
import math
import re
import warnings
from collections.abc import Iterator
from pathlib import Path

from .logs import CSV_HEADER, Record, Signals, lr_tags

MAX_STEP = 10**15  # no run takes more optimizer steps; a larger one is a corrupt file
STEPS_HEADER = ("step", "epoch", "loss")  # lrkit train --out's steps.csv, then lr or lr_0...


class LogWarning(UserWarning):
    """A log file was read only in part (a line or record cut by a crash, or corrupt)."""


def where(path: str | Path, line: int | None = None) -> str:
    """``'path'`` or ``'path' line N``: how messages name a place in a file."""
    return repr(str(path)) + ("" if line is None else f" line {line}")


def readable(path: str | Path) -> None:
    """ValueError naming ``path`` when it is missing, a folder or cannot be opened."""
    try:
        open(path, "rb").close()
    except OSError as e:
        raise ValueError(f"cannot read {where(path)}: {e.strerror or e}") from None


def text_lines(path: str | Path) -> Iterator[tuple[int, str, bool]]:
    """``(line number, text, ended)`` of each line, read as UTF-8 one line at a time (line
    end removed; ``ended`` is False only for a last line without one); ValueError naming the
    file and the line when it cannot be read or is not UTF-8."""
    try:
        f = open(path, "rb")
    except OSError as e:
        raise ValueError(f"cannot read {where(path)}: {e.strerror or e}") from None
    with f:
        n = 0
        while True:
            try:
                raw = f.readline()
            except OSError as e:
                raise ValueError(f"cannot read {where(path)}: {e.strerror or e}") from None
            if not raw:
                return
            n += 1
            ended = raw.endswith(b"\n")
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise ValueError(
                    f"{where(path, n)} is not UTF-8 text (byte {e.start} of the line: {e.reason})"
                ) from None
            yield n, text.rstrip("\r\n") if ended else text, ended


def cut_line(path: str | Path, line: int) -> None:
    """Warn that ``line``, the file's last, was cut (no newline) and is left out."""
    warnings.warn(
        f"{where(path, line)} has no line end (cut by a crash?): read up to line {line - 1}",
        LogWarning,
        stacklevel=3,
    )


def parse_step(text: object, at: str) -> int:
    """A step: a whole number in [0, MAX_STEP] (``3``, ``"3"``, ``"3.0"``); ValueError saying
    where otherwise."""
    step: int | None = None
    if isinstance(text, int) and not isinstance(text, bool):
        step = text
    elif isinstance(text, float) and math.isfinite(text) and text.is_integer():
        step = int(text) if abs(text) <= MAX_STEP else MAX_STEP + 1
    elif isinstance(text, str) and len(text) <= 40:
        s = text.strip()
        if re.fullmatch(r"[+-]?\d+", s):
            step = int(s)
        else:
            try:
                x = float(s)
            except ValueError:
                x = math.nan
            if math.isfinite(x) and x.is_integer():
                step = int(x) if abs(x) <= MAX_STEP else MAX_STEP + 1
    if step is None or not 0 <= step <= MAX_STEP:
        shown = text if not isinstance(text, str) or len(text) <= 40 else text[:40] + "..."
        raise ValueError(f"{at}: a step must be a whole number in [0, {MAX_STEP}], got {shown!r}")
    return step


def parse_value(text: object, at: str) -> float:
    """A value: a number, or ``"nan"``/``"inf"``/``"-inf"``; ValueError saying where."""
    if isinstance(text, bool) or not isinstance(text, int | float | str):
        raise ValueError(f"{at}: a value must be a number, got {text!r}")
    try:
        return float(text)
    except (ValueError, OverflowError) as e:
        raise ValueError(f"{at}: {e}") from None


# -- CSV --------------------------------------------------------------------------------------
def read_csv(path: str | Path) -> Signals:
    """lrkit's long CSV (``step,tag,value``), ``lrkit train --out``'s ``steps.csv`` (``loss``
    becomes ``train/loss``, ``lr`` or ``lr_0, lr_1...`` the lr tags), or a wide one with a
    ``step`` column and one column per tag (Lightning's ``metrics.csv``; ``epoch`` is left
    out)."""

    def whole_lines() -> Iterator[str]:
        for n, text, ended in text_lines(path):
            if not ended:  # only a last line lacks its end: cut by a crash
                cut_line(path, n)
                return
            yield text

    rows = csv.reader(whole_lines())
    try:
        header = next(rows, None)
        if header is None or "step" not in header:
            raise ValueError(f"{where(path)} is not a signals CSV: expected a 'step' column")
        if tuple(header) == CSV_HEADER:
            return Signals.from_records(_long_rows(path, rows))
        return Signals.from_records(_wide_rows(path, rows, header))
    except csv.Error as e:
        raise ValueError(f"{where(path, rows.line_num)}: {e}") from None


def _long_rows(path, rows) -> Iterator[Record]:
    for row in rows:
        at = where(path, rows.line_num)
        if not row:
            continue
        if len(row) != 3:
            raise ValueError(f"{at} has {len(row)} cells, expected 3 (step, tag, value)")
        yield parse_step(row[0], at), row[1], parse_value(row[2], at)


def _wide_rows(path, rows, header: list[str]) -> Iterator[Record]:
    names = _wide_tags(header)
    at_step = header.index("step")
    for row in rows:
        at = where(path, rows.line_num)
        if not row:
            continue
        if len(row) > len(header):
            raise ValueError(f"{at} has {len(row)} cells, the header {len(header)}")
        step = parse_step(row[at_step], at) if at_step < len(row) else None
        if step is None:
            raise ValueError(f"{at} has no step")
        for i, cell in enumerate(row):
            if names[i] is not None and cell != "":
                yield step, names[i], parse_value(cell, at)


def _wide_tags(header: list[str]) -> list[str | None]:
    """The tag of each column (None: not a signal): steps.csv's names become lrkit's tags."""
    if tuple(header[:3]) == STEPS_HEADER and all(h.startswith("lr") for h in header[3:]):
        lrs = lr_tags("Optimizer", max(1, len(header) - 3))
        return [None, None, "train/loss", *lrs]
    names = [None if h in ("step", "epoch") else h for h in header]
    for tag, aliases in LIGHTNING_NAMES.items():  # the names Lightning users log by
        if tag not in header:
            alias = next((a for a in aliases if a in header), None)
            if alias is not None:
                names[header.index(alias)] = tag
    return names


# what ``self.log("train_loss")`` writes into Lightning's metrics.csv, by lrkit's tag (the
# per-step column first: ``on_step=True, on_epoch=True`` writes both)
LIGHTNING_NAMES = {
    "train/loss": ("train_loss_step", "train_loss", "loss"),
    "val/loss": ("val_loss", "val_loss_epoch"),
}


# -- JSON lines -------------------------------------------------------------------------------
def read_jsonl(path: str | Path) -> Signals:
    """lrkit's JSON lines: one ``{"step", "tag", "value"}`` object a line."""
    records: list[Record] = []
    for n, line, ended in text_lines(path):
        if not line.strip():
            continue
        try:
            records.append(_jsonl_record(line, where(path, n)))
        except ValueError:
            if not ended:  # the last line, cut by a crash
                cut_line(path, n)
                break
            raise
    return Signals.from_records(records)


def _jsonl_record(line: str, at: str) -> Record:
    try:
        obj = json.loads(line)
    except (ValueError, RecursionError) as e:
        raise ValueError(f"{at} is not a {{'step', 'tag', 'value'}} record: {e}") from None
    if not isinstance(obj, dict) or not {"step", "tag", "value"} <= obj.keys():
        raise ValueError(f"{at} is not a {{'step', 'tag', 'value'}} record: got {line[:80]!r}")
    if not isinstance(obj["tag"], str):
        raise ValueError(f"{at}: a tag must be a string, got {obj['tag']!r}")
    return parse_step(obj["step"], at), obj["tag"], parse_value(obj["value"], at)


# -- TensorBoard ------------------------------------------------------------------------------
def read_events(path: str | Path) -> list[Record]:
    """The scalars of one TensorBoard event file, read with TensorBoard's own record reader.

    ValueError when the file is not an event file (its first record is bad); a cut or corrupt
    record later on ends the reading there, with a :class:`LogWarning` naming the byte.
    """
    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import PyRecordReader_New

    readable(path)  # a missing file, a folder, no permission: the documented error
    reader = PyRecordReader_New(str(path))
    try:
        return _records(reader, path)
    finally:
        reader.file_handle.close()


def _records(reader, path) -> list[Record]:
    from google.protobuf.message import DecodeError
    from tensorboard.compat.proto import event_pb2
    from tensorboard.compat.tensorflow_stub import errors

    records: list[Record] = []
    count, offset = 0, 0
    while True:
        try:
            reader.GetNext()
            event = event_pb2.Event.FromString(reader.record())
        except errors.OutOfRangeError:
            break
        except (errors.DataLossError, DecodeError) as e:
            problem = "is cut" if "truncated" in str(e) else "is corrupt"
            if count == 0:
                raise ValueError(
                    f"{where(path)} is not a TensorBoard event file: its first record {problem}"
                ) from None
            warnings.warn(
                f"{where(path)}: record {count + 1} at byte {offset} {problem}: read the"
                f" {count} records before it",
                LogWarning,
                stacklevel=3,
            )
            break
        count += 1
        offset += 16 + len(reader.record())
        if event.HasField("summary"):
            records.extend(_scalars(event, path))
    return records


def _scalars(event, path) -> Iterator[Record]:
    for value in event.summary.value:
        kind = value.WhichOneof("value")
        if kind == "simple_value":
            x = float(value.simple_value)
        elif kind == "tensor" and value.metadata.plugin_data.plugin_name == "scalars":
            from tensorboard.util import tensor_util

            try:
                array = tensor_util.make_ndarray(value.tensor)
            except (ValueError, TypeError):
                continue
            if array.size != 1:
                continue
            x = float(array.reshape(-1)[0])
        else:
            continue
        yield parse_step(int(event.step), where(path)), value.tag, x


def merge_event_files(files: list[Path]) -> Signals:
    """The scalars of several event files of one folder, as TensorBoard shows them: files in
    the order of their names (they start with the time they were made), each later file's
    steps replacing the earlier ones' from its first step on (a restart, or a new run into
    the same folder)."""
    records: list[Record] = []
    for file in sorted(files, key=lambda p: p.name):
        new = read_events(file)
        if new:
            first = min(r[0] for r in new)
            records = [r for r in records if r[0] < first]
            records.extend(new)
    return Signals.from_records(records)


__all__ = ["LogWarning", "MAX_STEP", "read_csv", "read_jsonl", "read_events", "merge_event_files"]
