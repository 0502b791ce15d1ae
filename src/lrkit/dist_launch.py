"""Starting ranks (ground floor): N processes on this machine through torch's elastic launch.

With :mod:`lrkit.dist`, the only module of lrkit that talks to torch.distributed. It starts
``python ARGS`` on N local ranks the way ``torchrun`` does (``torch.distributed.launcher``:
a c10d rendezvous on the loopback address at a free port, no restarts), waits for them and
says which failed, as plain :class:`Failure` records; what a command makes of that (printing,
exit status) is the command's (:mod:`lrkit.cli.launch`).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

RENDEZVOUS_TIMEOUT = 120  # seconds for every rank to join


@dataclass(frozen=True)
class Failure:
    """A rank that did not exit with status 0: its ``exitcode`` (negative: killed by the
    signal named ``signal``, such as ``"SIGKILL"``; else ``""``) and when it failed."""

    rank: int
    local_rank: int
    exitcode: int
    signal: str
    timestamp: float


class Interrupted(Exception):
    """The launch stopped because this process got the signal ``signum`` (Ctrl-C: SIGINT, a
    kill: SIGTERM...); the ranks are stopped."""

    def __init__(self, message: str, signum: int = signal.SIGINT) -> None:
        super().__init__(message)
        self.signum = int(signum)


def free_port() -> int:
    """A TCP port free on the loopback address now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def launch(args: Sequence[str], nproc: int, logs: str | Path, *, shown: int = 0,
           env: Mapping[str, str] | None = None) -> list[Failure]:  # fmt: skip
    """Run ``python ARGS`` (this interpreter) on ``nproc`` ranks on this machine and wait for
    them; the ranks that failed, ``[]`` when every one exited with status 0.

    Each rank finds the group in its environment (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``,
    ``MASTER_PORT``, ``TORCHELASTIC_ERROR_FILE``...). Rank ``shown`` prints to this process's
    terminal; the others' output, and every rank's error file, go under the folder ``logs``.
    When one rank fails the launcher stops the others (SIGTERM). ``env``: more variables for
    the ranks' environment. Raises :class:`Interrupted` when this process gets a signal
    meanwhile. Torch's own log lines stay quiet unless ``LOGLEVEL`` (torch's switch for them)
    is set."""
    from torch.distributed.elastic.multiprocessing import DefaultLogsSpecs, SignalException, Std
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    redirects = {r: Std.ALL for r in range(nproc)} | {shown: Std.NONE}
    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=nproc,
        run_id=f"lrkit-{uuid.uuid4().hex[:8]}",
        rdzv_backend="c10d",
        rdzv_endpoint=f"127.0.0.1:{free_port()}",
        rdzv_configs={"timeout": RENDEZVOUS_TIMEOUT},
        max_restarts=0,
        monitor_interval=0.5,
        local_addr="127.0.0.1",
        logs_specs=DefaultLogsSpecs(log_dir=str(logs), redirects=redirects),
    )
    # the backends' C++ logs repeat, with tracebacks, what the ranks report in one line
    os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "FATAL")
    with _quiet_launcher(), _environment(env or {}):
        try:
            elastic_launch(config, sys.executable)(*args)
        except ChildFailedError as failed:
            return [
                Failure(
                    rank=int(r),
                    local_rank=int(f.local_rank),
                    exitcode=int(f.exitcode),
                    signal=f.signal_name() if f.exitcode < 0 else "",
                    timestamp=float(f.timestamp),
                )
                for r, f in failed.failures.items()
            ]
        except SignalException as signalled:
            raise Interrupted(str(signalled), signalled.sigval) from signalled
    return []


# the loggers of torch's launcher; each module's logger has a level of its own
# (torch.distributed.elastic.utils.logging.get_logger), so its parent's level does not reach it
_TORCH_LOGGERS = ("torch.distributed.elastic", "torch.distributed.launcher")


@contextlib.contextmanager
def _quiet_launcher() -> Iterator[None]:
    """Torch's elastic agent logs its workers' failures with tracebacks at WARNING and ERROR,
    and a signal to this process (``Received 15 death signal, shutting down workers``); the
    caller reports them itself. Every logger of the launcher is set to CRITICAL for the
    block, unless ``LOGLEVEL`` asks torch for its own lines."""
    if os.environ.get("LOGLEVEL"):
        yield
        return
    names = [n for n in logging.Logger.manager.loggerDict
             if any(n == t or n.startswith(t + ".") for t in _TORCH_LOGGERS)]  # fmt: skip
    loggers = [logging.getLogger(n) for n in {*names, *_TORCH_LOGGERS}]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


@contextlib.contextmanager
def _environment(extra: Mapping[str, str]) -> Iterator[None]:
    """``extra`` in this process's environment for the block (the ranks inherit it)."""
    saved = {name: os.environ.get(name) for name in extra}
    os.environ.update(extra)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def follow_parent(parent: int, *, poll: float = 0.5, use_prctl: bool = True) -> str:
    """In a rank: die (SIGKILL) as soon as the process ``parent`` (the launcher, whose elastic
    agent started this rank in a session of its own) is gone, so a ``kill -9`` of the
    launcher leaves no rank training on; how it is done: ``"prctl"`` or ``"poll"``.

    On Linux the kernel sends the signal (``prctl(PR_SET_PDEATHSIG)``); as the launcher may
    have died before that call, this process is killed at once when its parent is no longer
    ``parent``. Elsewhere (or ``use_prctl=False``) a daemon thread checks the parent every
    ``poll`` seconds. A rank that the launcher stops on its own (SIGTERM) is not concerned.
    (The kernel's signal comes when the *thread* that started the rank ends: elastic launch
    starts the ranks from the thread that calls :func:`launch`, which waits for them.)"""
    if use_prctl and _set_parent_death_signal():
        if os.getppid() != parent:
            _die()
        return "prctl"
    watch = threading.Thread(target=_watch_parent, args=(parent, poll), daemon=True,
                             name="lrkit-follow-parent")  # fmt: skip
    watch.start()
    return "poll"


def _set_parent_death_signal() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def _watch_parent(parent: int, poll: float) -> None:
    while os.getppid() == parent:
        time.sleep(poll)
    _die()


def _die() -> None:
    kill = getattr(signal, "SIGKILL", None)
    if kill is not None:
        os.kill(os.getpid(), kill)
    os._exit(137)  # where there is no SIGKILL (Windows): at once, without clean-up


__all__ = ["Failure", "Interrupted", "launch", "follow_parent", "free_port", "RENDEZVOUS_TIMEOUT"]
