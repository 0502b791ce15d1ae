"""Small pieces the studies share: their progress lines, text tables and saving a figure."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..plots import save_whole

Say = Callable[[str], None]


def say_with(progress: bool | None | Callable[[str], Any]) -> Say:
    """A function that prints a study's progress line: ``progress`` itself when it is a
    function, ``print`` when True (or None and stdout is a terminal), else nothing."""
    if callable(progress):
        return lambda line: progress(line)
    if progress is not None and not isinstance(progress, bool):
        raise ValueError(f"progress must be None, True, False or a function, got {progress!r}")
    if progress or (progress is None and sys.stdout.isatty()):
        return lambda line: print(line, flush=True)
    return lambda line: None


def table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """``head`` and ``rows`` (texts) as aligned columns, two spaces apart."""
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    lines = [
        "  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in [head, *rows]
    ]
    return "\n".join(lines)


def save_figure(fig: Any, path: Path) -> None:
    """Save ``fig`` whole (through a temporary file and a rename), PNG unless the suffix says."""
    save_whole(fig, path)
