"""Folders and files lrkit writes into, checked before any work starts (CLI, sinks, callbacks)."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import UserError


def writable_dir(path: str | Path, what: str) -> Path:
    """Create ``path`` (with parents) and check it can be written; UserError naming it if not.

    ``what`` names the folder in messages (``"--out"``, ``"logdir"``).
    """
    if not str(path).strip():
        raise UserError(f"{what} is empty: give a folder path")
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise UserError(f"{what} {str(out)!r} exists and is not a folder; give a folder path")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create {what} folder {str(out)!r}: {e.strerror or e}") from e
    if not os.access(out, os.W_OK | os.X_OK):
        raise UserError(f"cannot write into {what} folder {str(out)!r}: permission denied")
    return out


def writable_file(path: str | Path, what: str) -> Path:
    """Check that a file can be created at ``path`` (its folder exists and is writable);
    UserError naming ``what`` (``"--png"``, ``"LRFindCallback plot"``) and the path if not."""
    if not str(path).strip():
        raise UserError(f"{what} is empty: give a file name")
    out = Path(path)
    if out.is_dir():
        example = {"--json": "result.json", "--csv": "schedule.csv"}.get(what, "plot.png")
        raise UserError(f"{what} {str(out)!r} is a folder; give a file name such as {example}")
    folder = out.parent if str(out.parent) else Path(".")
    if not folder.is_dir():
        raise UserError(f"cannot write {what} {str(out)!r}: folder {str(folder)!r} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK) or (out.exists() and not os.access(out, os.W_OK)):
        raise UserError(f"cannot write {what} {str(out)!r}: permission denied")
    return out


CACHE_ENV = "LRKIT_CACHE"


def cache_dir() -> Path:
    """The folder lrkit caches what it builds in (the transfer task's pretrained weights).

    ``$LRKIT_CACHE`` when set, else ``$XDG_CACHE_HOME/lrkit``, else ``~/.cache/lrkit``. The
    folder is not created here: whoever writes into it first does, and says which folder and
    ``LRKIT_CACHE`` when it cannot (``LRKIT_CACHE=/tmp/lrkit-cache`` gives that folder).
    """
    own = os.environ.get(CACHE_ENV, "").strip()
    if own:
        return Path(own).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "lrkit"
