"""The one progress reporter (ground floor): a rich bar with live fields, and notes between.

Every long piece of work shows progress the same way: the training loop (``fit``), the range
test and ``pick_lr`` all open a :func:`progress` and call ``advance``/``note`` on it.
``show=None`` shows it only when stdout is a terminal; ``show=False`` makes every call a no-op::

    >>> with progress("find lr digits-mlp", total=3, show=False) as bar:
    ...     bar.advance(1, info="lr 0.01")
    ...     bar.note("nothing is printed")
    >>> bar.completed
    1
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any


def wanted(show: bool | None) -> bool:
    """``None`` means: only when stdout is a terminal; otherwise the flag itself."""
    if show is not None and not isinstance(show, bool):
        raise ValueError(f"progress must be None, True or False, got {show!r}")
    return sys.stdout.isatty() if show is None else show


class Reporter:
    """What :func:`progress` yields: ``advance(n, **fields)``, ``update(**fields)``, ``note(text)``."""

    def __init__(self, bar: Any = None, task: Any = None):
        self._bar, self._task = bar, task
        self.completed = 0

    @property
    def shown(self) -> bool:
        return self._bar is not None

    def advance(self, n: int = 1, **fields: str) -> None:
        """Move the bar ``n`` steps on and set its fields (each a short text)."""
        self.completed += n
        if self._bar is not None:
            self._bar.update(self._task, advance=n, **fields)

    def update(self, completed: int | None = None, **fields: str) -> None:
        """Set the bar's position (when given) and fields."""
        if completed is not None:
            self.completed = completed
        if self._bar is not None:
            args = {} if completed is None else {"completed": completed}
            self._bar.update(self._task, **args, **fields)

    def note(self, text: str) -> None:
        """A line printed above the bar (or alone when the work has no bar)."""
        if self._bar is not None:
            self._bar.console.print(text, markup=False, highlight=False)


@contextlib.contextmanager
def progress(
    description: str,
    total: int | None,
    *,
    show: bool | None = None,
    fields: dict[str, str] | None = None,
    template: str = "",
) -> Iterator[Reporter]:
    """A progress bar over ``total`` steps (None: no bar, only notes) for the block.

    ``fields`` are the bar's live texts with their first values; ``template`` lays them out,
    e.g. ``"loss {task.fields[loss]}  lr {task.fields[lr]}"``.
    """
    if not wanted(show):
        yield Reporter()
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    columns: list[Any] = [TextColumn("[bold]{task.description}")]
    if total is not None:
        columns += [BarColumn(), MofNCompleteColumn()]
    if template:
        columns.append(TextColumn(template))
    if total is not None:
        columns.append(TimeRemainingColumn())
    with Progress(*columns, transient=total is None) as bar:
        task = bar.add_task(description, total=total, **(fields or {}))
        yield Reporter(bar, task)


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """``n`` and the noun, plural unless ``n`` is 1: ``counted(1, "seed")`` is ``"1 seed"``,
    ``counted(2, "entry", "entries")`` is ``"2 entries"``."""
    return f"{n} {noun if n == 1 else (plural or noun + 's')}"


__all__ = ["progress", "wanted", "Reporter", "counted"]
