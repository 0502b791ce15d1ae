"""Starting ranks (ground floor): N processes on this machine through torch's elastic launch.

With :mod:`lrkit.dist`, the only module of lrkit that talks to torch.distributed. It starts
``python ARGS`` on N local ranks the way ``torchrun`` does (``torch.distributed.launcher``:
a c10d rendezvous on the loopback address at a free port, no restarts), waits for them and
says which failed, as plain :class:`Failure` records; what a command makes of that (printing,
exit status) is the command's (:mod:`lrkit.cli.launch`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
import uuid
from collections.abc import Iterator, Sequence
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
    """The launch stopped because this process got a signal (Ctrl-C, a kill); the ranks are
    stopped."""


def free_port() -> int:
    """A TCP port free on the loopback address now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def launch(args: Sequence[str], nproc: int, logs: str | Path, *, shown: int = 0) -> list[Failure]:
    """Run ``python ARGS`` (this interpreter) on ``nproc`` ranks on this machine and wait for
    them; the ranks that failed, ``[]`` when every one exited with status 0.

    Each rank finds the group in its environment (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``,
    ``MASTER_PORT``, ``TORCHELASTIC_ERROR_FILE``...). Rank ``shown`` prints to this process's
    terminal; the others' output, and every rank's error file, go under the folder ``logs``.
    When one rank fails the launcher stops the others (SIGTERM). Raises :class:`Interrupted`
    when this process gets a signal meanwhile."""
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
    with _quiet_launcher():
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
            raise Interrupted(str(signalled)) from signalled
    return []


@contextlib.contextmanager
def _quiet_launcher() -> Iterator[None]:
    """Torch's elastic agent logs its workers' failures with tracebacks at WARNING and ERROR;
    the caller reports them itself."""
    logger = logging.getLogger("torch.distributed.elastic")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


__all__ = ["Failure", "Interrupted", "launch", "free_port", "RENDEZVOUS_TIMEOUT"]
