"""Start a multi-process run (torchrun, a Lightning DDP worker) from a test, bounded in time."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import lrkit

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]


def run_bounded(args: list[str], timeout: float, what: str) -> str:
    """Run ``args`` with this checkout's lrkit importable and one OpenMP thread, in a session of
    its own; past ``timeout`` seconds its whole process group is killed and the test fails
    (naming ``what``); a non-zero exit fails it too. Its output (stdout and stderr)."""
    src = str(Path(lrkit.__file__).parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    env.update(OMP_NUM_THREADS="1")
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)  # fmt: skip
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        pytest.fail(f"{what} ran past {timeout} s:\n{output[-3000:]}")
    assert proc.returncode == 0, output[-3000:]
    return output
