"""``--nproc N``: a command that starts N ranks of itself through torch's own launcher.

``lrkit find|pick|train ... --nproc N`` (N > 1) runs the same command without ``--nproc`` in N
processes on this machine, started by torch's elastic launch (what ``torchrun`` runs) with a
c10d rendezvous on the loopback address and a free port. Each rank's ``lrkit`` sees the
launcher's environment and joins the process group (:func:`lrkit.dist.init`: gloo on the CPU,
NCCL for CUDA tensors when CUDA is available) before the command runs, so the ranks sweep or
train as one run. Rank 0 prints to the terminal and writes the files; the other ranks'
output goes to log files that are read only when a rank fails. The exit status is rank 0's;
when another rank failed, its error follows in one line (``lrkit: error: rank 1 of 2 ...``)
and the status is non-zero. ``--nproc 1`` runs the command in this process, as without it.

A collective waits ``--timeout`` seconds (default :data:`TIMEOUT`) for the other ranks, so a
rank that hangs ends the run with one line naming the timeout; the ranks read it from
``LRKIT_DIST_TIMEOUT`` (which a torchrun user may set too). A ``kill -9`` of the launcher takes
its ranks with it (:func:`lrkit.dist_launch.follow_parent`); a signal to it stops them, with
status 128 + the signal (130 for Ctrl-C, 143 for SIGTERM). More ranks than CPU cores on the
CPU backend is allowed (as torchrun allows it), with a one-line warning.

For a script of your own, the recipe is torch's: ``torchrun --nproc_per_node=2 train.py``,
with lrkit's ``find_lr``/``fit`` called on every rank inside the group.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

from .. import dist_launch
from ..errors import UserError

NPROC_MAX = 128
TIMEOUT = 300.0  # seconds a collective of --nproc's ranks waits for the others (torch's: 1800)
TIMEOUT_MAX = 10**7
TIMEOUT_VARIABLE = "LRKIT_DIST_TIMEOUT"  # the ranks' collective timeout, in seconds
NPROC_HELP = (
    "Run the command on N ranks on this machine (torch's elastic launch, what torchrun runs:"
    " gloo on the CPU, NCCL for CUDA tensors when CUDA is available); rank 0 prints and writes"
    " files, and a rank that fails makes the command fail with its error. 1: one process, as"
    " without it. For your own script: torchrun --nproc_per_node=N train.py."
    " Example: --nproc 2"
)
TIMEOUT_HELP = (
    f"With --nproc N: how long a rank waits for the others (to join the group, then in each"
    f" collective) before the run fails with an error naming the timeout (a rank that hangs"
    f" or died); default: {TIMEOUT_VARIABLE} where it is set, else {TIMEOUT:g} s (for"
    f" torchrun's ranks too; torch's own default is 1800 s). Example: --timeout 60"
)
# set by torchrun and by elastic launch in every rank's environment
_LAUNCHED = ("TORCHELASTIC_RUN_ID", "WORLD_SIZE", "RANK")
# what lrkit.dist.failures says when a collective failed because of another rank
PEER_TROUBLE = "a collective with the other ranks failed"
_BY_LRKIT = "LRKIT_NPROC"  # set in the ranks that --nproc starts (not in torchrun's)
_ARGV: list[str] = []  # the arguments of this process's command line (set by app.main)


def remember_argv(argv: list[str] | None) -> None:
    """Keep ``argv`` (the command line :func:`lrkit.cli.main` runs) for :func:`nproc_option`."""
    _ARGV[:] = list(sys.argv[1:] if argv is None else argv)


def launched() -> bool:
    """True in a rank a launcher (torchrun, ``--nproc``) started, in its environment."""
    return all(name in os.environ for name in _LAUNCHED)


@contextlib.contextmanager
def group() -> Iterator[None]:
    """Inside a launcher's rank, join its process group for the block (and leave it after);
    elsewhere, nothing."""
    if not launched():
        yield
        return
    from .. import dist

    joined = dist.init(timeout=_timeout_from_argv() or _timeout_from_environment())
    try:
        yield
    except BaseException:
        if joined:
            dist.close(wait=False)  # the others may never come to a barrier
        raise
    if joined:
        dist.close()


def _timeout_from_argv() -> float | None:
    """The ``--timeout S`` (or ``--timeout=S``) of this rank's command line, read before click
    parses it (the rank joins its group first: under torchrun it is the only way the option
    reaches the group); None when absent or not a valid number, which click then refuses."""
    for i, arg in enumerate(_ARGV):
        text = arg.partition("=")[2] if arg.startswith("--timeout=") else None
        if arg == "--timeout" and i + 1 < len(_ARGV):
            text = _ARGV[i + 1]
        if text is not None:
            try:
                value = float(text)
            except ValueError:
                return None
            return value if 0 < value <= TIMEOUT_MAX else None
    return None


def _timeout_from_environment() -> float | None:
    """The collective timeout :data:`TIMEOUT_VARIABLE` asks for, None when it is not set."""
    from .. import checks

    text = os.environ.get(TIMEOUT_VARIABLE, "").strip()
    if not text:
        return None
    try:
        return checks.number(float(text), TIMEOUT_VARIABLE, low=0, low_open=True)
    except ValueError:
        raise UserError(f"{TIMEOUT_VARIABLE} must be a finite number of seconds > 0, got"
                        f" {text!r}") from None  # fmt: skip


def without_nproc(argv: list[str]) -> list[str]:
    """``argv`` with its ``--nproc N`` (or ``--nproc=N``) left out."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            out.append(arg)
    return out


_NPROC, _TIMEOUT = "lrkit.nproc", "lrkit.timeout"


def _start(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    """The callback of ``--nproc`` and ``--timeout`` (both eager): once both are known, N > 1
    starts the ranks and exits with their status before the command runs."""
    ctx.meta[_NPROC if param.name == "nproc" else _TIMEOUT] = value
    if _NPROC not in ctx.meta or _TIMEOUT not in ctx.meta:
        return  # the other one comes next
    nproc, timeout = ctx.meta[_NPROC], ctx.meta[_TIMEOUT]
    if nproc is None or nproc == 1:
        return
    if launched():
        raise UserError(
            f"--nproc {nproc} inside a rank that a launcher started (torchrun): drop --nproc, the"
            " ranks are started already"
        )
    if timeout is None:  # LRKIT_DIST_TIMEOUT where this shell sets it, else TIMEOUT
        timeout = _timeout_from_environment() or TIMEOUT
    ctx.exit(launch(without_nproc(_ARGV), nproc, timeout))


def nproc_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """The ``--nproc N`` and ``--timeout SECONDS`` options of a command: N > 1 starts N ranks
    of it (:func:`launch`), whose collectives wait that long, and exits with their status
    before the command itself runs."""
    from .options import FiniteFloat, WholeNumber

    command = click.option(
        "--timeout",
        type=FiniteFloat(0, TIMEOUT_MAX, low_open=True),
        default=None,
        metavar="SECONDS",
        expose_value=False,
        is_eager=True,
        callback=_start,
        help=TIMEOUT_HELP,
    )(command)
    return click.option(
        "--nproc",
        type=WholeNumber(1, NPROC_MAX),
        default=None,
        metavar="N",
        expose_value=False,
        is_eager=True,
        callback=_start,
        help=NPROC_HELP,
    )(command)


def launch(argv: list[str], nproc: int, timeout: float = TIMEOUT) -> int:
    """Run ``lrkit ARGV`` on ``nproc`` ranks through torch's elastic launch
    (:func:`lrkit.dist_launch.launch`), their collectives waiting ``timeout`` seconds for each
    other; the exit status.

    Rank 0's output is this process's; the others' go to log files in a temporary folder,
    removed afterwards. When a rank fails, :func:`_report` says which and gives the status.
    Each rank dies with this process (:func:`lrkit.dist_launch.follow_parent`). A signal to
    this process stops every rank: status 128 + the signal (Ctrl-C 130, SIGTERM 143)."""
    _warn_oversubscribed(nproc)
    code = (f"import sys; from lrkit.dist_launch import follow_parent; follow_parent({os.getpid()});"
            " from lrkit.cli import main; sys.exit(main())")  # fmt: skip
    env = {TIMEOUT_VARIABLE: repr(float(timeout)), _BY_LRKIT: "1"}
    with tempfile.TemporaryDirectory(prefix="lrkit-nproc-") as logs:
        try:
            failures = dist_launch.launch(["-c", code, *argv], nproc, logs, env=env)
        except dist_launch.Interrupted as stopped:  # a signal to this process: ranks are stopped
            name = "" if stopped.signum == signal.SIGINT else f" by {_signal_name(stopped.signum)}"
            click.echo(f"lrkit: interrupted{name}", err=True)
            return 128 + stopped.signum
        return _report(failures, nproc, Path(logs)) if failures else 0


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def cpu_cores() -> int:
    """The CPU cores this process may run on (its affinity where the system says, else
    ``os.cpu_count()``), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _warn_oversubscribed(nproc: int) -> None:
    """One line on stderr when ``nproc`` CPU ranks (gloo) are more than the cores here: each
    rank is a process, so they take turns (allowed, as under torchrun, but slow)."""
    from .. import dist

    cores = cpu_cores()
    if nproc > cores and dist.default_backend() == "gloo":
        click.echo(f"lrkit: warning: --nproc {nproc} starts {nproc} CPU ranks on {cores} CPU"
                   f" core{'s' if cores > 1 else ''}: each rank is a process, so they share the"
                   " cores and run slower", err=True)  # fmt: skip


def says_for_itself(line: str) -> bool:
    """Whether this rank prints its error ``line`` itself: not when ``--nproc`` started it and
    the line only blames another rank (the launcher then prints the rank that caused it, or
    this line when no other rank said anything), so the user reads one line, the cause."""
    return not (os.environ.get(_BY_LRKIT) == "1" and launched() and PEER_TROUBLE in line)


def note_error(line: str, status: int) -> None:
    """In a rank that torch's launcher started, keep the one-line error this rank reports (and
    its exit status) in the error file the launcher reads (``TORCHELASTIC_ERROR_FILE``)."""
    path = os.environ.get("TORCHELASTIC_ERROR_FILE", "") if launched() else ""
    if path:
        with contextlib.suppress(OSError):
            note = {"message": line, "timestamp": int(time.time()), "status": status}
            Path(path).write_text(json.dumps(note), encoding="utf-8")


def _noted(logs: Path, local_rank: int) -> dict | None:
    """What :func:`note_error` kept for ``local_rank`` in this launch, or None."""
    for path in logs.glob(f"**/attempt_*/{local_rank}/error.json"):
        with contextlib.suppress(OSError, ValueError):
            note = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(note, dict) and isinstance(note.get("message"), str):
                return note
    return None


def _report(failures: list[dist_launch.Failure], nproc: int, logs: Path) -> int:
    """The exit status of a launch whose ranks ``failures`` failed; the error of the rank that
    caused it printed in one line, unless rank 0 already said why on its own.

    Rank 0 said why on its own when it reported an error that is not a collective failing
    because of another rank (one that only blames another rank it keeps for this report, see
    :func:`says_for_itself`: printed here when no other rank caused it). Otherwise the cause is the first other rank that reported an
    error or was killed by a signal (a rank the launcher stopped with SIGTERM is none; a rank
    that only exited with a status, as ``find --quiet`` does without a trusted lr, says
    nothing). The status is rank 0's, else the cause's, else 1."""
    note = _noted(logs, 0)
    own = note is not None and PEER_TROUBLE not in note["message"]
    causes = []
    for f in failures:
        said = _noted(logs, f.local_rank)
        if f.rank != 0 and f.exitcode != -signal.SIGTERM and (f.exitcode < 0 or said is not None):
            causes.append((f.timestamp, f.rank, f, said))
    causes.sort(key=lambda c: (c[0], c[1]))
    if causes and not own:
        _, rank, cause, said = causes[0]
        how = (f"was killed by {cause.signal}" if cause.exitcode < 0
               else f"exited with status {cause.exitcode}")  # fmt: skip
        text = "" if said is None else said["message"].split("error: ", 1)[-1]
        click.echo(f"lrkit: error: rank {rank} of {nproc} {how}" + (f": {text}" if text else ""),
                   err=True)  # fmt: skip
    elif note is not None and not own:  # rank 0 blamed another rank that said nothing
        click.echo(note["message"], err=True)
    zero = next((f for f in failures if f.rank == 0), None)
    if zero is not None and zero.exitcode > 0:
        return int(zero.exitcode)
    if note is not None and int(note.get("status", 1)) > 0:
        return int(note.get("status", 1))
    positive = [f.exitcode for f in failures if f.exitcode > 0]
    return int(positive[0]) if positive else 1
