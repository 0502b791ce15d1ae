"""The ``lrkit`` command group, its error policy and helpers shared by the commands.

Error policy: a mistake in what the user asked for (a bad option value, an unknown task, a
schedule spec that does not parse, an --out that cannot be written) prints one line,
``lrkit: error: ...``, to stderr and exits with status 2. Anything else is a bug in lrkit:
the traceback and ``lrkit: internal error: ...`` go to stderr, status 1. Ctrl-C exits 130.
What goes wrong while *reading a file the user named* (a schedule file, a run folder, a find
JSON) is the user's to fix as well: :func:`reading` turns the ``ValueError`` (``UserError``,
``UnicodeDecodeError`` and JSON errors included) or ``OSError`` raised there into one line that
names the file, and the line when the message gives one. It wraps the reading only, so an
exception of any other type, or one raised later, is still reported as the bug it is.
"""

from __future__ import annotations

import contextlib
import re
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path

import click

from .._version import __version__
from ..errors import UserError
from ..paths import writable_dir, writable_file  # noqa: F401  (the commands import them from here)
from . import launch

PROG = "lrkit"
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(
    name=PROG,
    context_settings=CONTEXT,
    invoke_without_command=True,
    epilog="\b\nExamples:\n  lrkit tasks\n  lrkit schedule show 'warmup(5%) >> cosine(to=0.01)' --steps 1000"
    "\n  lrkit train --task digits-mlp --schedule 'warmup(5%) >> cosine(to=0.01)'"
    "\n  lrkit find --task digits-mlp --png find.png"
    "\n  lrkit tune --task digits-mlp --trials 20",
)
@click.version_option(
    __version__, "-V", "--version", prog_name=PROG, message="%(prog)s %(version)s"
)
@click.pass_context
def cli(ctx: click.Context) -> None:
    """lrkit: find, schedule, tune and watch the learning rate of a PyTorch model.

    Every command has its own --help, e.g. 'lrkit train --help'.
    """
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status (0 ok, 1 internal error, 2 user error)."""
    launch.remember_argv(argv)
    try:
        with launch.group():  # a rank that torchrun or --nproc started joins its group first
            # a collective that failed because another rank died or hung is no bug of lrkit's:
            # a UserError naming this rank (and then --nproc names the rank that caused it)
            with _peer_failures(argv):
                result = cli.main(args=argv, prog_name=PROG, standalone_mode=False)
    except click.UsageError as e:
        where = f" (see '{e.ctx.command_path} --help')" if e.ctx is not None else ""
        return _user_error(e.format_message() + where)
    except click.Abort:
        click.echo(f"{PROG}: interrupted", err=True)
        return 130
    except click.ClickException as e:  # e.g. click.FileError: still the user's to fix
        return _user_error(e.format_message())
    except UserError as e:
        return _user_error(str(e))
    except Exception as e:
        sys.stderr.write(_redact(traceback.format_exc()))
        first = str(e).splitlines()[0] if str(e) else ""
        line = _redact(f"{PROG}: internal error: {type(e).__name__}: {first}")
        click.echo(line, err=True)
        launch.note_error(line, 1)
        return 1
    return result if isinstance(result, int) else 0


@contextlib.contextmanager
def _peer_failures(argv: list[str] | None) -> Iterator[None]:
    """In a rank a launcher started, a collective that fails because another rank died or did
    not answer becomes a UserError naming this rank (:func:`lrkit.dist.failures`); elsewhere,
    nothing. ``lrkit train`` under ``--nproc`` then names the rank that caused it, instead of
    a traceback of rank 0's blamed on lrkit."""
    if not launch.launched():
        yield
        return
    from .. import dist

    words = [a for a in (sys.argv[1:] if argv is None else argv) if not a.startswith("-")]
    with dist.failures(f"{PROG} {words[0] if words else ''}".strip()):
        yield


def _user_error(message: str) -> int:
    lines = [line.strip() for line in _redact(str(message)).splitlines() if line.strip()]
    line = f"{PROG}: error: {lines[0] if lines else 'invalid input'}"
    if launch.says_for_itself(line):
        click.echo(line, err=True)
    launch.note_error(line, 2)
    return 2


def _redact(text: str) -> str:
    """``text`` with any URL's password shown as ``***`` (a storage URL in an error), and any
    password of a storage opened in this process."""
    if "://" not in text and "lrkit.tune.storage" not in sys.modules:
        return text
    from ..tune.storage import redact

    return redact(text)


@contextlib.contextmanager
def user_input(what: str) -> Iterator[None]:
    """Turn a ValueError raised while reading ``what`` (an option) into a one-line UserError.

    Only the message's first line is kept (a spec's caret lines are dropped; the first line
    already names the column).
    """
    try:
        yield
    except ValueError as e:  # UserError included
        raise UserError(f"{what}: {one_line(e)}") from e


@contextlib.contextmanager
def reading(path: str | Path, what: str = "file") -> Iterator[None]:
    """Turn a ValueError or OSError raised while reading the user's ``path`` into a UserError.

    The message is one line that names the file: the error's own message when it already does
    (``schedule file 'a.yaml' is not valid YAML: ...``), else ``<what> '<path>': <message>``;
    an OSError says ``cannot read '<file>': <reason>``. Other exceptions pass through.
    """
    try:
        yield
    except OSError as e:
        name = e.filename if e.filename is not None else path
        raise UserError(f"cannot read {what} '{name}': {e.strerror or e}") from e
    except ValueError as e:  # UserError, UnicodeDecodeError, json.JSONDecodeError included
        message = one_line(e)
        if str(path) not in message:
            message = f"{what} '{path}': {message}"
        raise UserError(message) from e


_MARK = re.compile(r"line (\d+), column (\d+)")


def one_line(error: Exception) -> str:
    """The error's message on one line: its first line, plus where when only later lines say.

    A spec's caret lines are dropped (its first line already names the column); a YAML error,
    whose first line says "while scanning ..." and whose later lines hold the problem and its
    ``line N, column M``, keeps the last problem and its place:
    ``... while scanning a quoted scalar: found unexpected end of stream (line 2, column 1)``.
    """
    lines = [line.strip() for line in str(error).strip().splitlines()]
    if not lines:
        return type(error).__name__
    first = lines[0]
    if _MARK.search(first):
        return first
    for i in range(len(lines) - 1, 0, -1):
        mark = _MARK.search(lines[i])
        if mark:
            before = lines[i - 1] if i >= 2 else ""
            problem = "" if not before.strip("^ ") or _MARK.search(before) else f": {before}"
            return f"{first}{problem} (line {mark[1]}, column {mark[2]})"
    return first


SCHEDULE_FILES = (".json", ".yaml", ".yml")


def read_schedule(value: str | float, option: str = "--schedule"):
    """The schedule an option names: a text spec, or a file when ``value`` ends in .json/.yaml/.yml.

    A file is read by :func:`lrkit.schedules.load_schedule` (``to_dict()`` data or
    ``{"schedule": "<text spec>"}``); any error names the file (and the line when the reader
    says it). A number is a constant; a text spec's error names the option and the spec.
    """
    from ..schedules import as_schedule, load_schedule

    if isinstance(value, str) and value.strip().lower().endswith(SCHEDULE_FILES):
        path = Path(value.strip())
        with reading(path, "schedule file"):
            return load_schedule(path)
    with user_input(f"{option} {value!r}"):
        return as_schedule(value, "schedule")
