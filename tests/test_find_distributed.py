"""The range test inside torch.distributed: refused at once on every rank of a real gloo group
(distributed range tests are not supported yet), never a hang; a group of one still sweeps."""

import doctest
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed
from torch.nn import functional as F

import lrkit
from lrkit import dist
from lrkit.errors import UserError
from lrkit.find import find_lr, pick_lr

WORKER = Path(__file__).parent / "dist_worker.py"
TIMEOUT = 180  # seconds for both ranks to start, refuse and exit (each imports torch);
# on 21f979a rank 0 waits in an all-reduce for rank 1, which stopped on divergence: killed here

pytestmark = pytest.mark.skipif(
    not torch.distributed.is_available(), reason="torch.distributed is not in this build"
)


@pytest.fixture
def group_of_one(tmp_path):
    """An initialised gloo process group of world size 1 in this process, destroyed after."""
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{tmp_path / 'init'}", rank=0, world_size=1
    )
    try:
        yield
    finally:
        torch.distributed.destroy_process_group()


def run_two_ranks(tmp_path):
    """Both ranks of a gloo group of two, each in its own process; their reports."""
    src = str(Path(lrkit.__file__).parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    env.update(OMP_NUM_THREADS="1")
    outs = [tmp_path / f"rank{r}.json" for r in range(2)]
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), str(r), "2", str(tmp_path / "init"), str(outs[r])],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for r in range(2)
    ]
    try:
        done = [p.communicate(timeout=TIMEOUT) for p in procs]
    finally:
        for p in procs:  # a hung rank is killed, never left behind
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, (_, err) in zip(procs, done):
        assert p.returncode == 0, err
    return [json.loads(out.read_text()) for out in outs]


def test_every_rank_of_a_two_process_group_refuses_find_lr_and_pick_lr_at_once(tmp_path):
    reports = run_two_ranks(tmp_path)
    for rank, report in enumerate(reports):
        for what in ("find_lr", "pick_lr"):
            outcome = report[what]
            assert outcome["type"] == "UserError", (rank, what, outcome)
            assert f"{what} does not support distributed runs yet" in outcome["message"]
            assert f"rank {rank} of a torch.distributed process group of 2" in outcome["message"]
            assert "single process" in outcome["message"]
            assert outcome["seconds"] < 1.0  # refused before any work


def test_a_group_of_one_process_still_sweeps(group_of_one):
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    data = [(torch.randn(8, 4), torch.randn(8, 1))]
    result = find_lr(model, opt, data, criterion=F.mse_loss, steps=20, progress=False)
    assert len(result.lrs) > 0


def test_the_distributed_helpers_describe_a_group_of_one(group_of_one):
    assert (dist.is_initialized(), dist.world_size(), dist.rank()) == (True, 1, 0)
    assert not dist.is_distributed()


def test_the_distributed_helpers_describe_a_single_process_without_a_group():
    assert (dist.is_initialized(), dist.world_size(), dist.rank()) == (False, 1, 0)
    assert not dist.is_distributed()


def test_pick_lr_refuses_before_building_anything(monkeypatch):
    monkeypatch.setattr(dist, "world_size", lambda: 4)
    monkeypatch.setattr(dist, "rank", lambda: 3)
    with pytest.raises(UserError, match="pick_lr does not support distributed runs yet"):
        pick_lr("no-such-task")  # refused before the task is even looked up


def test_the_module_example_runs():
    result = doctest.testmod(dist)
    assert result.attempted >= 1 and result.failed == 0
