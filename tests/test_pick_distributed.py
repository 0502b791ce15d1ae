"""``pick_lr`` under torchrun: two real ranks (``torch.distributed.run``, gloo on the CPU) pick a
rate for the tiny task in one launch of tests/dist_pick_worker.py and must agree on everything:
the window, every short run's score, the survivors of each round and the rate picked."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed
from dist_pick_worker import BUDGET, EPOCHS

import lrkit
from lrkit.find import Pick

WORKER = Path(__file__).parent / "dist_pick_worker.py"
TIMEOUT = 240  # seconds for torchrun to start two ranks, sweep, train 8 short runs and exit

pytestmark = pytest.mark.skipif(
    not torch.distributed.is_available(), reason="torch.distributed is not in this build"
)


@pytest.fixture(scope="module")
def picked(tmp_path_factory):
    """``[(rank 0's Pick, what it printed), (rank 1's ...)]`` of one torchrun launch; the
    launcher and its ranks are killed (their whole process group) if it runs past TIMEOUT."""
    folder = tmp_path_factory.mktemp("pick")
    src = str(Path(lrkit.__file__).parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    env.update(OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    proc = subprocess.Popen(
        [*command, str(WORKER), str(folder)], env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        output, _ = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        pytest.fail(f"torchrun ran past {TIMEOUT} s:\n{output[-3000:]}")
    assert proc.returncode == 0, output[-3000:]
    reports = [json.loads((folder / f"rank{r}.json").read_text()) for r in range(2)]
    return [(Pick.from_json(r["pick"]), r["printed"]) for r in reports]


def test_both_ranks_pick_the_same_rate_from_the_same_trials(picked):
    (zero, _), (one, _) = picked
    assert zero.lr == one.lr
    assert zero.trials == one.trials
    assert zero == one  # window, candidates, range test, winner, ties, cost: all of it


def test_the_ranks_pick_within_the_window_and_the_budget(picked):
    (zero, _), _ = picked
    assert zero.window[0] <= zero.lr <= zero.window[1]
    assert len(zero.trials) == 8 and zero.cost <= BUDGET


def test_the_full_run_is_an_epoch_of_each_ranks_shard(picked):
    (zero, _), _ = picked
    assert zero.full_run_steps == EPOCHS * 3  # 96 examples, 16 a batch, half of them a rank


def test_only_rank_0_prints_the_progress(picked):
    (_, printed_zero), (_, printed_one) = picked
    assert "pick: round 1" in printed_zero
    assert printed_one == ""
