"""Hypothesis strategies for the log readers' property tests: valid run files and the ways a
crash, a disk or a fuzzer corrupts them.

:data:`TEMPLATES` holds one small valid file of every kind a run folder may hold (written by
lrkit's own sinks and ``History.save``); :func:`corrupted_files` draws ``(name, bytes)``: one
of them cut, with bytes flipped, inserted or deleted, lines duplicated or swapped, numbers
replaced by hostile ones, or wholly random; :func:`mutated_histories` draws history data with
one key, or one entry of a column, replaced by any JSON value.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import strategies as st

from lrkit.train import History
from lrkit.watch import CSVSink, JSONLSink, TensorBoardSink

__all__ = ["TEMPLATES", "corrupted_files", "json_values", "mutated_histories", "HISTORY"]

RECORDS = [
    (step, tag, value)
    for step in range(12)
    for tag, value in (("lr-SGD", 0.1), ("train/loss", 2.0 / (step + 1)), ("train/grad_norm", 1.5))
] + [(12, "val/loss", 0.4), (12, "val/accuracy", 0.9)]

HISTORY = History(
    task="t",
    lr=0.1,
    epochs=2,
    steps_per_epoch=6,
    step=list(range(12)),
    epoch=[0] * 6 + [1] * 6,
    lr_groups=[[0.1]] * 12,
    loss=[2.0 / (i + 1) for i in range(12)],
    skipped=[3],
    epochs_log=[
        {"epoch": 0, "metric": 0.5, "val_loss": 1.0, "time": 0.1},
        {"epoch": 1, "metric": 0.4, "val_loss": 0.8, "time": 0.2},
    ],
    status="completed",
)


def _templates() -> dict[str, bytes]:
    folder = Path(tempfile.mkdtemp(prefix="lrkit-log-templates-"))
    for sink in (CSVSink(folder), JSONLSink(folder), TensorBoardSink(folder / "tb")):
        sink.write(RECORDS)
        sink.close()
    HISTORY.save(folder)
    (event,) = (folder / "tb").glob("events.out.tfevents.*")
    files = {name: (folder / name).read_bytes() for name in ("signals.csv", "signals.jsonl")}
    files.update({name: (folder / name).read_bytes() for name in ("history.json", "steps.csv")})
    files["events.out.tfevents.0.host"] = event.read_bytes()
    files["metrics.csv"] = (
        b"epoch,lr-SGD,step,train/loss,val/loss\n0,0.1,0,2.0,\n0,0.1,1,1.5,\n0,,2,,1.2\n"
    )
    return files


TEMPLATES = _templates()

HOSTILE_NUMBERS = [
    b"nan", b"inf", b"-inf", b"-1", b"0", b"1e400", b"-1e400", b"100000000000000000000",
    b"1" * 400, b"", b"abc", b"true", b"null", b"[]", b"{}", b'"x"', b"1.5", b"0x10", b"\xff",
]  # fmt: skip


@st.composite
def _mutation(draw, data: bytes) -> bytes:
    n = len(data)
    kind = draw(
        st.sampled_from(["cut", "flip", "insert", "delete", "number", "line", "random", "empty"])
    )
    at = draw(st.integers(0, max(n - 1, 0)))
    if kind == "cut":
        return data[:at]
    if kind == "flip" and n:
        return data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1 :]
    if kind == "insert":
        return data[:at] + draw(st.binary(min_size=1, max_size=40)) + data[at:]
    if kind == "delete":
        return data[:at] + data[at + draw(st.integers(1, 40)) :]
    if kind == "number":  # one run of digits replaced by a hostile number
        digits = [i for i in range(n) if data[i : i + 1].isdigit()]
        if digits:
            i = draw(st.sampled_from(digits))
            j = i
            while j < n and data[j : j + 1] in b"0123456789.e-":
                j += 1
            return data[:i] + draw(st.sampled_from(HOSTILE_NUMBERS)) + data[j:]
    if kind == "line":  # a line duplicated, removed or moved
        lines = data.split(b"\n")
        i, j = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["dup", "drop", "swap"]))
        if op == "dup":
            lines.insert(j, lines[i])
        elif op == "drop":
            del lines[i]
        else:
            lines[i], lines[j] = lines[j], lines[i]
        return b"\n".join(lines)
    if kind == "random":
        return draw(st.binary(max_size=2000))
    return b""


@st.composite
def corrupted_files(draw) -> tuple[str, bytes]:
    """``(file name, content)``: a template run file after one to three corruptions."""
    name = draw(st.sampled_from(sorted(TEMPLATES)))
    data = TEMPLATES[name]
    for _ in range(draw(st.integers(1, 3))):
        data = draw(_mutation(data))
    return name, data


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**30), 10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8)
    | st.sampled_from(["nan", "inf", "-inf"]),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def mutated_histories(draw) -> object:
    """History data (``to_dict``'s) with a key or a column's entry replaced by any JSON value,
    or not a dict at all."""
    if draw(st.integers(0, 9)) == 0:
        return draw(json_values)
    data = HISTORY.to_dict()
    for _ in range(draw(st.integers(1, 3))):
        key = draw(st.sampled_from([*sorted(data), "epochs_log", "skipped", "unknown"]))
        value = data.get(key)
        if isinstance(value, list) and value and draw(st.booleans()):
            value = list(value)
            value[draw(st.integers(0, len(value) - 1))] = draw(json_values)
            data[key] = value
        elif key in data and draw(st.integers(0, 4)) == 0:
            del data[key]
        else:
            data[key] = draw(json_values)
    return data


def as_json(data: object) -> str:
    """``data`` as ``json.dumps`` writes it (NaN and infinities as its non-strict tokens)."""
    return json.dumps(data)
