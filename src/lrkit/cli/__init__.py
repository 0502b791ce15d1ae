"""The ``lrkit`` command line (click): argument parsing, progress and printing, no logic.

``main(argv)`` returns the exit status: 0 ok, 2 a user error (one line on stderr), 1 an
internal error (with its traceback), 130 interrupted.
"""

from . import (  # noqa: F401  (registers the commands)
    compare_cmd,
    doctor_cmd,
    find_cmd,
    schedule_cmd,
    study_cmd,
    thumb_cmd,
    train_cmd,
    tune_cmd,
)
from .app import cli, main

__all__ = ["cli", "main"]
