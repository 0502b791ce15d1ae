"""The ``lrkit`` command group, its error policy and helpers shared by the commands.

Error policy: a mistake in what the user asked for (a bad option value, an unknown task, a
schedule spec that does not parse, an --out that cannot be written) prints one line,
``lrkit: error: ...``, to stderr and exits with status 2. Anything else is a bug in lrkit:
the traceback and ``lrkit: internal error: ...`` go to stderr, status 1. Ctrl-C exits 130.
"""

from __future__ import annotations

import contextlib
import os
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path

import click

from .._version import __version__
from ..errors import UserError
from ..paths import writable_dir  # noqa: F401  (the commands import it from here)

PROG = "lrkit"
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(
    name=PROG,
    context_settings=CONTEXT,
    invoke_without_command=True,
    epilog="\b\nExamples:\n  lrkit tasks\n  lrkit schedule show 'warmup(5%) >> cosine(to=0.01)' --steps 1000"
    "\n  lrkit train --task digits-mlp --schedule 'warmup(5%) >> cosine(to=0.01)'"
    "\n  lrkit find --task digits-mlp --png find.png",
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
    try:
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
        traceback.print_exc(file=sys.stderr)
        first = str(e).splitlines()[0] if str(e) else ""
        click.echo(f"{PROG}: internal error: {type(e).__name__}: {first}", err=True)
        return 1
    return result if isinstance(result, int) else 0


def _user_error(message: str) -> int:
    lines = [line.strip() for line in str(message).splitlines() if line.strip()]
    click.echo(f"{PROG}: error: {lines[0] if lines else 'invalid input'}", err=True)
    return 2


@contextlib.contextmanager
def user_input(what: str) -> Iterator[None]:
    """Turn a ValueError raised while reading ``what`` (an option) into a one-line UserError.

    Only the message's first line is kept (a spec's caret lines are dropped; the first line
    already names the column).
    """
    try:
        yield
    except ValueError as e:  # UserError included
        raise UserError(f"{what}: {_first_line(e)}") from e


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def writable_file(path: str | Path, option: str) -> Path:
    """Check that a file can be created at ``path`` (its folder exists and is writable)."""
    out = Path(path)
    if out.is_dir():
        raise UserError(f"{option} {str(out)!r} is a folder; give a file name such as plot.png")
    folder = out.parent if str(out.parent) else Path(".")
    if not folder.is_dir():
        raise UserError(
            f"cannot write {option} {str(out)!r}: folder {str(folder)!r} does not exist"
        )
    if not os.access(folder, os.W_OK | os.X_OK) or (out.exists() and not os.access(out, os.W_OK)):
        raise UserError(f"cannot write {option} {str(out)!r}: permission denied")
    return out
