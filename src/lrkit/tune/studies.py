"""Studies in a storage: created, loaded and listed by name, the database going away as one
:class:`~lrkit.tune.storage_errors.StorageError` line (re-exported by :mod:`lrkit.tune.storage`).
"""

from __future__ import annotations

from typing import Any

import optuna

from lrkit.errors import UserError

from .storage_errors import database_errors, where


def create_study(
    storage: optuna.storages.BaseStorage,
    name: str,
    *,
    direction: str = "minimize",
    attrs: dict[str, Any] | None = None,
    exist_ok: bool = False,
    sampler: optuna.samplers.BaseSampler | None = None,
    pruner: optuna.pruners.BasePruner | None = None,
) -> optuna.Study:
    """A new study ``name`` in ``storage`` (a plain Optuna study) with ``attrs`` as its user
    attributes. An existing study of that name is a UserError, or with ``exist_ok`` is loaded
    (its direction must match; keys of ``attrs`` it lacks are added, the others kept)."""
    name = _name(name)
    if direction not in ("minimize", "maximize"):
        raise UserError(f"study direction must be 'minimize' or 'maximize', got {direction!r}")
    with database_errors(storage, f"creating study {name!r}"):
        try:
            study = optuna.create_study(
                storage=storage,
                study_name=name,
                direction=direction,
                load_if_exists=exist_ok,
                sampler=sampler,
                pruner=pruner,
            )
        except optuna.exceptions.DuplicatedStudyError:
            raise UserError(
                f"a study named {name!r} already exists in {where(storage)!r}; give another "
                "name, or run on it with --study to add trials"
            ) from None
        if study.direction.name.lower() != direction:
            raise UserError(
                f"study {name!r} in {where(storage)!r} is to {study.direction.name.lower()}, "
                f"not to {direction}"
            )
        present = study.user_attrs
        for key, value in (attrs or {}).items():
            if key not in present:
                study.set_user_attr(key, value)
    return study


def load_study(
    storage: optuna.storages.BaseStorage,
    name: str,
    *,
    sampler: optuna.samplers.BaseSampler | None = None,
    pruner: optuna.pruners.BasePruner | None = None,
) -> optuna.Study:
    """The study ``name`` in ``storage``; a UserError listing the studies there when missing."""
    name = _name(name)
    with database_errors(storage, f"loading study {name!r}"):
        try:
            return optuna.load_study(
                study_name=name, storage=storage, sampler=sampler, pruner=pruner
            )
        except KeyError:
            names = list_studies(storage)
    known = ", ".join(repr(n) for n in names) if names else "none (create one first)"
    raise UserError(f"no study named {name!r} in {where(storage)!r}; studies there: {known}")


def list_studies(storage: optuna.storages.BaseStorage) -> list[str]:
    """The names of the studies in ``storage``, sorted."""
    with database_errors(storage, "listing the studies"):
        return sorted(optuna.get_all_study_names(storage))


def _name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise UserError(f"study name must be a non-empty text, got {name!r}")
    return name.strip()
