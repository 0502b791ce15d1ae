"""What a study remembers, and how a tune joins one: the study's ``user_attrs["lrkit"]``.

A study is created by the first tune on it (or by ``lrkit study create``) and holds, in
``user_attrs["lrkit"]``, what every worker needs to run its trials the same way: the task, the
space (text), cv, seeds, epochs, the lr window and the warm start the first worker measured.
A tune that joins the study (a worker, or ``resume=True``) takes those from it; an argument
given that differs from the study's is a UserError naming both. Defaults (``cv=None``,
``seeds=1``, ``epochs=None``, ``space=None``) never conflict: they mean "the study's".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import UserError
from ..paths import writable_dir
from ..tasks import Task
from . import lrfree
from .space import as_space
from .storage import create_study, list_studies, load_study, open_storage

DEFAULT_ROOT = Path("runs") / "tune"


def open_study_storage(url: str | None, out: str | Path | None, name: str):
    """``(storage, run_dir)``: the storage ``url`` names, or the journal file in ``out``
    (default ``runs/tune/<name>``; ``run_dir`` is None for an explicit storage)."""
    if url is None:
        run_dir = writable_dir(out if out is not None else DEFAULT_ROOT / name, "out")
        return open_storage(None, run_dir), run_dir
    return open_storage(url, None), None


def existing_study(storage: Any, name: str):
    """The study ``name`` in ``storage``, or None when there is none."""
    if name not in list_studies(storage):
        return None
    return load_study(storage, name)


def only_study_in(storage: Any, name: str, run_dir: Path) -> None:
    """UserError when the run folder's journal holds a study other than ``name``: a second
    study there would overwrite the first one's tune.json, trials.csv and tune.png."""
    others = [s for s in list_studies(storage) if s != name]
    if others:
        raise UserError(
            f"the run folder {str(run_dir)!r} holds study {others[0]!r} already (one study per"
            f" folder; study {name!r} would overwrite its results): give another out folder"
            " (--out)"
        )


def new_study(storage: Any, name: str, direction: str):
    """Create the study (or load it, when another worker created it a moment ago)."""
    return create_study(storage, name, direction=direction, exist_ok=True)


def join_space(space: Any, task: Task, attrs: dict[str, Any]):
    """The space given, or the study's (a worker joining); UserError when they differ."""
    stored = attrs.get("space")
    if stored is None:
        return as_space(space, task)
    if space is None:
        return as_space(stored, task)
    given = as_space(space, task)
    if given.lr is None and attrs.get("lr_window"):
        given = given.with_lr(*attrs["lr_window"])
    if given.text() != stored:
        raise UserError(
            f"space {given.text()!r} differs from the study's space {stored!r}: give the"
            " same space, none (to use the study's), or another study"
        )
    return as_space(stored, task)


def join_settings(
    attrs: dict[str, Any],
    task: Task,
    cv: int | None,
    seeds: int,
    epochs: int | None,
    seed: int = 0,
) -> tuple[int | None, int, int, int]:
    """cv, seeds, epochs and seed: the study's when it has them, UserError when one given
    differs (a default given counts as not given); epochs default to the task's. A resumed
    study keeps its seed, or its new trials would train other seeds (and other folds)."""
    if attrs.get("task") not in (None, task.name):
        raise UserError(
            f"task {task.name!r} differs from the study's task {attrs['task']!r}: give the"
            " study's task or another study"
        )
    out = []
    given = (("cv", cv, None), ("seeds", seeds, 1), ("epochs", epochs, None), ("seed", seed, 0))
    for key, value, default in given:
        stored = attrs.get(key)
        if key not in attrs:  # recorded as None (cv: the task's own split) binds too
            out.append(value)
            continue
        if value not in (default, stored):
            raise UserError(
                f"{key}={value!r} differs from the study's {key}={stored!r}: give the same"
                f" {key}, leave it out, or use another study"
            )
        out.append(stored)
    return out[0], out[1], (out[2] if out[2] is not None else task.epochs), out[3]


def folds(task: Task, cv: int | None, seed: int) -> list[Task]:
    """The task's k folds (``task.folds(cv, seed)``), or the task itself when ``cv`` is None."""
    return [task] if cv is None else list(task.folds(cv, seed))


def reference_config(space: Any, lr: float) -> tuple[Any, dict[str, Any]]:
    """The configuration pick_lr picks the warm start's rate for, and the warm-start trial's
    params (so that trial trains exactly it): the space's first family with each of its
    params at the middle of its range (a choice's first value), and ``lr``; a setting
    (optimizer, weight decay, batch size) that the space varies is the task's own (None)
    where its choices allow, else the middle of its range too (for the optimizer, the first
    choice that is neither lr-free nor schedule-free: :mod:`lrkit.tune.lrfree`)."""
    family = space.families[0]
    values = {p.name: p.dim.grid(1)[0] for p in family.params}
    params: dict[str, Any] = {"lr": lr, **values}
    if len(space.families) > 1:
        params["family"] = family.name
    for key in ("optimizer", "weight_decay", "batch_size"):
        dim = getattr(space, key, None)
        if dim is not None and not dim.fixed:
            params[key] = None if dim.contains(None) else dim.grid(1)[0]
            if key == "optimizer" and not dim.contains(None):  # one that takes an absolute lr
                params[key] = lrfree.reference_optimizer(dim)
    return space.config(params), params
