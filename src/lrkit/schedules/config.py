"""Schedules from what users hold: ``as_schedule`` (text too) and ``load_schedule`` (configs).

This is the one module that turns text into schedules, above the algebra (which takes only
schedules and numbers). A config names a schedule either by its text form
(``{"schedule": "warmup(5%) >> cosine"}``) or by ``to_dict()`` data (``{"type": "cosine",
"to": 0.1}``); ``dump_schedule`` writes either. YAML is read with PyYAML's safe loader only,
without aliases (``*name``), and files are at most :data:`MAX_FILE_BYTES`. Errors are
:class:`~lrkit.errors.UserError` (a ``ValueError``) naming the file, and the line where it
can be told.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from ..checks import is_number
from ..errors import UserError
from .base import Schedule, from_dict, short
from .combinators import part
from .parse import parse

__all__ = ["as_schedule", "load_schedule", "dump_schedule", "MAX_FILE_BYTES"]

_SUFFIXES = (".json", ".yaml", ".yml")
MAX_FILE_BYTES = 1_000_000  # a schedule file is a few lines; anything larger is refused


def as_schedule(value: Any, what: str = "schedule") -> Schedule:
    """A Schedule as is; a schedule class with its defaults; a number as ``constant(number)``;
    a text spec parsed (:func:`~lrkit.schedules.parse`); anything else a ValueError.

    >>> as_schedule("warmup(10) >> cosine(90)")
    warmup(10) >> cosine(90)
    """
    if isinstance(value, str):
        return parse(value)
    return part(value, what)


def load_schedule(source: Any) -> Schedule:
    """A schedule from whatever a user or a config holds.

    Accepted: a :class:`Schedule` (returned as is); a number (a constant); a text spec
    (``"warmup(5%) >> cosine"``); a mapping, either ``to_dict()`` data (``{"type": "cosine",
    ...}``) or ``{"schedule": "<text spec>"}``; a path (a string ending in .json, .yaml or .yml,
    or a ``Path``) to a file holding one of those. Files are read with ``json.load`` or
    ``yaml.safe_load``; a bad file gives a ValueError naming the file and what is wrong.

    >>> load_schedule({"schedule": "warmup(10) >> cosine(90)"})
    warmup(10) >> cosine(90)
    """
    if isinstance(source, os.PathLike) or (
        isinstance(source, str) and source.strip().lower().endswith(_SUFFIXES)
    ):
        return _load_file(Path(source))
    return _from_data(source)


def _from_data(data: Any) -> Schedule:
    if isinstance(data, Schedule):
        return data
    if isinstance(data, str):
        return parse(data)
    if isinstance(data, dict):
        if "type" in data:  # to_dict data; its field may be named 'schedule' (clip, repeat)
            return from_dict(data)
        if "schedule" in data:
            extra = [k for k in data if k != "schedule"]
            if extra:
                raise UserError(
                    f"a schedule mapping holds either 'schedule' (a text spec) or 'type' (to_dict"
                    f" data), got also {', '.join(short(k) for k in extra[:3])}"
                )
            return _from_data(data["schedule"])
    if is_number(data):
        return as_schedule(data)
    raise UserError(
        "a schedule must be a Schedule, a number, a text spec like 'warmup(5%) >> cosine', a"
        " mapping with 'type' (to_dict data) or 'schedule' (a text spec), or a .json/.yaml"
        f" file; got {short(data)}"
    )


def _load_file(path: Path) -> Schedule:
    suffix = path.suffix.lower()
    if suffix not in _SUFFIXES:
        raise UserError(f"schedule file '{path}' must end in .json, .yaml or .yml")
    if not path.is_file():
        where = "is a directory" if path.is_dir() else "does not exist"
        raise UserError(f"schedule file '{path}' {where} (looked in {path.resolve().parent})")
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise UserError(
                f"schedule file '{path}' is {size:,} bytes; a schedule file may hold at most"
                f" {MAX_FILE_BYTES:,}"
            )
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"schedule file '{path}' cannot be read: {e}") from None
    lines: dict[int, int] = {}  # id of a mapping -> its line
    try:
        data = _read_json(text, lines) if suffix == ".json" else _read_yaml(text, lines)
    except json.JSONDecodeError as e:
        raise UserError(f"schedule file '{path}' is not valid JSON: {e}") from None
    except RecursionError:
        raise UserError(f"schedule file '{path}' is nested too deeply to be a schedule") from None
    except ValueError as e:  # YAML's errors, turned into ValueError by _read_yaml
        raise UserError(f"schedule file '{path}' is not valid YAML: {e}") from None
    if data is None:
        raise UserError(
            f"schedule file '{path}' is empty; expected a mapping with 'type' (to_dict data) or"
            " 'schedule' (a text spec)"
        )
    try:
        return _from_data(data)
    except ValueError as e:
        hint = ""
        if suffix != ".json" and _YAML_STRING_FLOAT.search(str(e)):
            hint = " (YAML reads 1e-3 as a string: write 1.0e-3 or 0.001)"
        line = lines.get(id(getattr(e, "schedule_data", data)))
        where = f", line {line}" if line else ""
        raise UserError(f"schedule file '{path}'{where}: {e}{hint}") from None


def _read_json(text: str, lines: dict[int, int]) -> Any:
    """``json.loads``, noting each object's line (1-based) in ``lines``."""
    import bisect
    import json.scanner

    breaks = [i for i, c in enumerate(text) if c == "\n"]
    decoder = json.JSONDecoder()
    parse_object = decoder.parse_object

    def noting(s_and_end, *args):
        obj, end = parse_object(s_and_end, *args)
        lines[id(obj)] = bisect.bisect_left(breaks, s_and_end[1]) + 1
        return obj, end

    decoder.parse_object = noting
    decoder.scan_once = json.scanner.py_make_scanner(decoder)
    return decoder.decode(text)


def _read_yaml(text: str, lines: dict[int, int]) -> Any:
    """``yaml.safe_load`` without aliases, noting each mapping's line (1-based) in ``lines``.

    An alias (``*name``) is refused: ``safe_load`` shares the aliased node, but the schedule
    built from it would copy it at every use, so nine levels of nine aliases in a 500-byte file
    would build 9**9 parts.
    """
    import yaml

    class Loader(yaml.SafeLoader):
        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                mark = self.peek_event().start_mark
                raise yaml.composer.ComposerError(
                    None, None, "aliases (*name) are not accepted in a schedule file", mark
                )
            return super().compose_node(parent, index)

        def construct_yaml_map(self, node):
            data: dict[Any, Any] = {}
            lines[id(data)] = node.start_mark.line + 1
            yield data
            for key_node, value_node in node.value:
                if key_node.value == "schedule" and value_node.id == "scalar":
                    lines[id(data)] = value_node.start_mark.line + 1  # where a text spec is
            data.update(self.construct_mapping(node))

    Loader.add_constructor("tag:yaml.org,2002:map", Loader.construct_yaml_map)
    try:
        return yaml.load(text, Loader=Loader)  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as e:
        raise ValueError(str(e)) from None


# PyYAML (YAML 1.1) reads a float only with a dot and a signed exponent: 1e-3 stays a string
_YAML_STRING_FLOAT = re.compile(r"got '[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+'")


def dump_schedule(schedule: Schedule, path: str | os.PathLike, *, text: bool = False) -> Path:
    """Write ``schedule`` to a .json or .yaml/.yml file that :func:`load_schedule` reads back.

    The file holds ``to_dict()`` data, or ``{"schedule": repr(schedule)}`` with ``text=True``.
    Returns the path written.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in _SUFFIXES:
        raise UserError(f"schedule file '{path}' must end in .json, .yaml or .yml")
    schedule = _from_data(schedule)
    data = {"schedule": repr(schedule)} if text else schedule.to_dict()
    if suffix == ".json":
        body = json.dumps(data, indent=2) + "\n"
    else:
        import yaml

        body = yaml.safe_dump(data, sort_keys=False)
    path.write_text(body, encoding="utf-8")
    return path
