"""One results protocol (ground floor): plain data, JSON text and JSON files, the same way.

A result class defines ``to_dict()`` (plain lists, numbers and strings) and a ``from_dict(data)``
classmethod that raises ``ValueError`` on data it cannot read; :class:`Result` adds the rest::

    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class Point(Result):
    ...     x: float
    ...     def to_dict(self): return {"x": self.x}
    ...     @classmethod
    ...     def from_dict(cls, data): return cls(float(data["x"]))
    >>> Point.from_json(Point(0.5).to_json())
    Point(x=0.5)
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any


class Result:
    """``to_json``/``from_json``/``load`` for a class with ``to_dict``/``from_dict``."""

    def to_dict(self) -> dict[str, Any]:  # pragma: no cover - every result defines its own
        raise NotImplementedError

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Any:  # pragma: no cover
        raise NotImplementedError

    def to_json(self, path: str | Path | None = None) -> str:
        """The result as strict JSON text (a non-finite number as ``"nan"``, ``"inf"``,
        ``"-inf"``); also written to ``path`` when given (whole, then renamed)."""
        text = json.dumps(encode_floats(self.to_dict()), indent=1, allow_nan=False)
        if path is not None:
            write_whole(Path(path), text + "\n")
        return text

    @classmethod
    def from_json(cls, text: str, source: str = "JSON text") -> Any:
        """The result that :meth:`to_json` wrote; ValueError naming ``source`` and the line."""
        return cls._from_data(loads(text, source), source)

    @classmethod
    def load(cls, path: str | Path) -> Any:
        """The result saved by ``to_json(path)``; ValueError naming the file on bad content."""
        data, _ = read_json(Path(path))
        return cls._from_data(data, repr(str(path)))

    @classmethod
    def _from_data(cls, data: Any, source: str) -> Any:
        if not isinstance(data, dict):
            raise ValueError(f"{source}: expected a JSON object, got {type(data).__name__}")
        try:
            return cls.from_dict(data)
        except ValueError as e:
            raise ValueError(f"{source}: {e}") from None
        except (KeyError, TypeError, AttributeError, IndexError) as e:
            raise ValueError(f"{source}: not a {cls.__name__}: {type(e).__name__}: {e}") from None


def write_whole(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through ``path.tmp`` and a rename (atomic on POSIX and
    Windows): a reader, or a kill, sees the old file or the new one, never a part."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write(text)
    os.replace(tmp, path)


def loads(text: str, source: str) -> Any:
    """``json.loads(text)``; ValueError naming ``source``, the line and the column."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(
            f"{source} line {e.lineno}: not JSON: {e.msg} (column {e.colno})"
        ) from None
    except RecursionError:
        raise ValueError(f"{source}: not JSON this program reads: nested too deeply") from None


def read_json(path: Path) -> tuple[Any, str]:
    """The JSON data in the file ``path`` and its text; ValueError naming the file and the line
    when it cannot be read, is not UTF-8 or is not JSON."""
    where = repr(str(path))
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ValueError(f"cannot read {where}: {e.strerror or e}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise ValueError(f"{where} line {line} is not UTF-8 text: {e.reason}") from None
    return loads(text, where), text


def encode_floats(value: Any) -> Any:
    """``value`` with every non-finite float replaced by ``"nan"``, ``"inf"`` or ``"-inf"``
    (in lists and dicts too), so that ``json.dumps`` writes strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)  # 'nan', 'inf', '-inf'
    if isinstance(value, list | tuple):  # a whole column in one pass: plain numbers kept as is
        return [
            v if type(v) is int or (type(v) is float and v - v == 0.0) else encode_floats(v)
            for v in value
        ]
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


__all__ = ["Result", "encode_floats", "decode_floats", "write_whole", "read_json", "loads"]
