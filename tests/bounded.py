"""Start a multi-process run (torchrun, a Lightning DDP worker) from a test, bounded in time."""

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

import lrkit

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]


def environment(extra_path: str | Path | None = None) -> dict[str, str]:
    """This process's environment with this checkout's lrkit (and ``extra_path``) importable
    and one OpenMP thread."""
    src = str(Path(lrkit.__file__).parent.parent)
    paths = [src, *([str(extra_path)] if extra_path is not None else [])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([*paths, os.environ.get("PYTHONPATH", "")])}
    env.update(OMP_NUM_THREADS="1")
    return env


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (read from /proc; none where there is no /proc).

    torch's elastic launch (torchrun, ``lrkit --nproc``) starts each rank in a session of its
    own, so killing the launcher's process group does not reach the ranks."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_all(proc: subprocess.Popen) -> None:
    """SIGKILL ``proc``, its process group and every process below it (the ranks too)."""
    below = descendants(proc.pid)
    for pid in below:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        pass


class Launched:
    """``args`` started now (with :func:`environment` unless ``env``) in a session of its own,
    its output (stdout and stderr) going to a temporary file; :meth:`wait` for it later, so
    several runs can go side by side. Bounded: ``timeout`` seconds from the start."""

    def __init__(self, args: list[str], timeout: float, what: str,
                 cwd: str | Path | None = None, env: dict[str, str] | None = None):  # fmt: skip
        self.what, self.deadline = what, time.monotonic() + timeout
        self.timeout = timeout
        self._out = tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace")
        self.proc = subprocess.Popen(args, env=environment() if env is None else env, cwd=cwd,
                                     stdout=self._out, stderr=subprocess.STDOUT, text=True,
                                     start_new_session=True)  # fmt: skip

    def wait(self) -> tuple[int, str]:
        """Its exit status and output; past its deadline it is killed with every process below
        it (:func:`kill_all`) and the test fails, naming it."""
        try:
            self.proc.wait(timeout=max(0.0, self.deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            kill_all(self.proc)
            self.proc.wait()
            pytest.fail(f"{self.what} ran past {self.timeout} s:\n{self.output()[-3000:]}")
        return self.proc.returncode, self.output()

    def output(self) -> str:
        self._out.seek(0)
        return self._out.read()


def run_status(args: list[str], timeout: float, what: str, cwd: str | Path | None = None,
               env: dict[str, str] | None = None) -> tuple[int, str]:  # fmt: skip
    """Run ``args`` (with :func:`environment` unless ``env``) in a session of its own; past
    ``timeout`` seconds it is killed with every process below it (:func:`kill_all`) and the
    test fails (naming ``what``). Its exit status and output (stdout and stderr)."""
    return Launched(args, timeout, what, cwd, env).wait()


def run_bounded(args: list[str], timeout: float, what: str) -> str:
    """Run ``args`` with this checkout's lrkit importable and one OpenMP thread, in a session of
    its own; past ``timeout`` seconds it is killed with its ranks and the test fails (naming
    ``what``); a non-zero exit fails it too. Its output (stdout and stderr)."""
    status, output = run_status(args, timeout, what)
    assert status == 0, output[-3000:]
    return output
