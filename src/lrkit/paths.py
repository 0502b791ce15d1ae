"""Folders lrkit writes into, checked before any work starts (used by the CLI and the sinks)."""

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
