"""Schedules in configs: ``load_schedule`` takes a spec, a mapping or a .json/.yaml file.

A config names a schedule either by its text form (``{"schedule": "warmup(5%) >> cosine"}``)
or by ``to_dict()`` data (``{"type": "cosine", "to": 0.1}``); ``dump_schedule`` writes either.
YAML is read with ``yaml.safe_load`` only. Errors are :class:`~lrkit.errors.UserError`
(a ``ValueError``) naming the file and what is wrong.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from ..errors import UserError
from .base import Schedule, from_dict
from .combinators import as_schedule
from .parse import parse

__all__ = ["load_schedule", "dump_schedule"]

_SUFFIXES = (".json", ".yaml", ".yml")


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
        if "schedule" in data:
            extra = sorted(set(data) - {"schedule"})
            if extra:
                raise UserError(
                    f"a schedule mapping holds either 'schedule' (a text spec) or 'type' (to_dict"
                    f" data), got also {', '.join(map(repr, extra))}"
                )
            return _from_data(data["schedule"])
        if "type" in data:
            return from_dict(data)
    if isinstance(data, int | float) and not isinstance(data, bool):
        return as_schedule(data)
    raise UserError(
        "a schedule must be a Schedule, a number, a text spec like 'warmup(5%) >> cosine', a"
        " mapping with 'type' (to_dict data) or 'schedule' (a text spec), or a .json/.yaml"
        f" file; got {data!r}"
    )


def _load_file(path: Path) -> Schedule:
    suffix = path.suffix.lower()
    if suffix not in _SUFFIXES:
        raise UserError(f"schedule file '{path}' must end in .json, .yaml or .yml")
    if not path.is_file():
        where = "is a directory" if path.is_dir() else "does not exist"
        raise UserError(f"schedule file '{path}' {where} (looked in {path.resolve().parent})")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"schedule file '{path}' cannot be read: {e}") from None
    if suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise UserError(f"schedule file '{path}' is not valid JSON: {e}") from None
    else:
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
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
        raise UserError(f"schedule file '{path}': {e}{hint}") from None


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
