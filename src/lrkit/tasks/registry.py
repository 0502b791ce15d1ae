"""The task registry: built-in names, and ``package.module:function`` for a user's own task."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable

from ..errors import UserError
from .task import Task

TASKS: dict[str, Callable[[], Task]] = {}
DEFAULT_TASK = "digits-mlp"


def register_task(name: str):
    """Decorator: make a function that returns a Task known under ``name``."""

    def deco(fn: Callable[[], Task]) -> Callable[[], Task]:
        if name in TASKS:
            raise ValueError(f"task name {name!r} is registered twice")
        TASKS[name] = fn
        return fn

    return deco


def list_tasks() -> list[str]:
    """The built-in task names, sorted."""
    return sorted(TASKS)


def get_task(name_or_path: str | Task) -> Task:
    """A built-in task by name (``"digits-mlp"``), or a user's ``"package.module:function"``.

    The function is called without arguments and must return a :class:`Task`. A Task given
    directly is returned as it is. Raises :class:`~lrkit.errors.UserError` naming the problem.

    >>> get_task("wine-mlp").name
    'wine-mlp'
    """
    if isinstance(name_or_path, Task):
        return name_or_path
    if not isinstance(name_or_path, str) or not name_or_path.strip():
        raise UserError(f"a task must be a name or 'package.module:function', got {name_or_path!r}")
    text = name_or_path.strip()
    if ":" not in text:
        factory = TASKS.get(text)
        if factory is None:
            raise UserError(
                f"unknown task {text!r}; known: {', '.join(list_tasks())},"
                " or 'package.module:function' returning a Task"
            )
        return factory()
    return _load(text)


def _load(path: str) -> Task:
    module_name, _, attr = path.partition(":")
    if not module_name or not attr or ":" in attr:
        raise UserError(f"task {path!r} must be written 'package.module:function'")
    try:
        module = importlib.import_module(module_name)
    except SyntaxError as e:  # the user's module does not parse: say where, no traceback
        raise UserError(f"task {path!r}: {e.filename} line {e.lineno}: {e.msg}") from e
    except ImportError as e:
        raise UserError(
            f"task {path!r}: cannot import module {module_name!r} ({e}); it must be importable"
            " from the current folder or PYTHONPATH"
        ) from e
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise UserError(f"task {path!r}: module {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if isinstance(obj, Task):
        return obj
    if not callable(obj):
        raise UserError(
            f"task {path!r}: {attr!r} is a {type(obj).__name__}, not a function returning a Task"
        )
    try:
        inspect.signature(obj).bind()
    except TypeError as e:  # a function that needs arguments cannot make a task on its own
        raise UserError(
            f"task {path!r}: {attr}() must take no arguments and return a Task ({e})"
        ) from e
    except ValueError:  # no signature to read (some built-ins): call it and see
        pass
    task = obj()
    if not isinstance(task, Task):
        raise UserError(
            f"task {path!r}: {attr}() returned {type(task).__name__}, not an lrkit.tasks.Task"
        )
    return task
