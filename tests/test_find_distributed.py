"""The range test under torchrun: real ``torch.distributed.run --nproc_per_node=2`` processes on
the CPU (gloo), each rank sweeping a DistributedDataParallel model on its own shard of the
batches (tests/dist_worker.py), or a task that lrkit shards as fit does. Every rank records the
same curve as one process on the global batches, comes back restored, and a rank that dies or hangs makes the other raise a clear error
within the timeout (pick_lr under torchrun: tests/test_pick_distributed.py)."""

import doctest
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed
from torch.nn import functional as F
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

import lrkit
from lrkit import dist
from lrkit.errors import UserError
from lrkit.find import find_lr
from lrkit.find.rangetest import _cycle
from lrkit.tasks import tensor_loader
from lrkit.train import ranks

sys.path.insert(0, str(Path(__file__).parent))
import dist_worker as worker  # noqa: E402

TIMEOUT = 240  # seconds for torchrun to start both ranks, sweep and exit (each imports torch)

pytestmark = pytest.mark.skipif(
    not torch.distributed.is_available(), reason="torch.distributed is not in this build"
)


def torchrun(mode: str, out: Path, *extra: str) -> subprocess.CompletedProcess:
    """``python -m torch.distributed.run --standalone --nproc_per_node=2 dist_worker.py MODE
    OUT``, killed (with its ranks, one process group) when it runs past TIMEOUT."""
    src = str(Path(lrkit.__file__).parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    env.update(OMP_NUM_THREADS="1")
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        *extra, str(Path(worker.__file__)), mode, str(out),
    ]  # fmt: skip
    proc = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        stdout, stderr = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)  # torchrun and both ranks: a hung rank is never left behind
        proc.communicate()
        pytest.fail(f"torchrun {mode} ran past {TIMEOUT} s")
    return subprocess.CompletedProcess(command, proc.returncode, stdout, stderr)


def reports(out: Path) -> list[dict]:
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(worker.WORLD)]


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """Both ranks' reports of one torchrun sweep (and of ``lrkit find`` run after it)."""
    out = tmp_path_factory.mktemp("sweep")
    done = torchrun("sweep", out)
    assert done.returncode == 0, done.stderr
    return out, reports(out)


def single_process_sweep():
    """One process, no group, the same model and optimizer, on the whole global batches."""
    model = worker.make_model()
    opt = worker.make_optimizer(model)
    return find_lr(
        model, opt, worker.global_batches(), criterion=F.mse_loss,
        val_loader=worker.global_batches(2, 8), val_every=5, progress=False, **worker.SWEEP,
    )  # fmt: skip


def test_every_rank_records_the_same_curve_and_suggestion(swept):
    _, (first, second) = swept
    assert first["curve"] == second["curve"]
    assert first["curve"]["lr"] is not None  # a trusted suggestion, the same on both


def test_the_distributed_curve_equals_one_process_sweeping_the_global_batches(swept):
    _, (first, _) = swept
    got, want = first["curve"], single_process_sweep()
    assert want.lr is not None
    assert len(got["lrs"]) == len(want.lrs)  # stopped at the same step
    np.testing.assert_allclose(got["lrs"], want.lrs, rtol=1e-12)
    np.testing.assert_allclose(got["raw"], want.raw_losses, rtol=1e-5)
    np.testing.assert_allclose(got["losses"], want.losses, rtol=1e-5)
    np.testing.assert_allclose(got["val"]["losses"], want.val["losses"], rtol=1e-5)
    assert got["lr"] == pytest.approx(want.lr, rel=1e-4)
    assert got["stop"] == want.stop_reason


def test_find_lr_of_a_task_gives_every_rank_the_same_curve_and_suggestion(swept):
    _, (first, second) = swept
    assert first["task"]["curve"] == second["task"]["curve"]
    assert first["task"]["curve"]["lr"] is not None


def test_find_lr_of_a_task_sweeps_each_rank_its_own_shard_of_every_global_batch(swept):
    _, (first, second) = swept
    x = torch.cat([bx for bx, _ in worker.global_batches()])[:, 0].tolist()
    steps = len(first["task"]["curve"]["lrs"])
    assert len(first["task"]["seen"]) >= steps and len(second["task"]["seen"]) >= steps
    for k, (mine, theirs) in enumerate(zip(first["task"]["seen"], second["task"]["seen"])):
        assert len(mine) == len(theirs) == 8  # the task's batch size, on each rank
        assert not set(mine) & set(theirs)  # two different shards
        at = 16 * (k % 6)  # global batch k: 16 examples in order, 6 an epoch
        assert sorted(mine + theirs) == sorted(x[at : at + 16])


def test_find_lr_of_a_task_sweeps_as_one_process_on_global_batches_twice_as_large(swept):
    _, (first, _) = swept
    got = first["task"]["curve"]
    want = find_lr(worker.regression(16), progress=False, **worker.TASK_SWEEP)
    assert want.lr is not None and len(got["lrs"]) == len(want.lrs)
    np.testing.assert_allclose(got["raw"], want.raw_losses, rtol=1e-5)
    np.testing.assert_allclose(got["losses"], want.losses, rtol=1e-5)
    assert got["lr"] == pytest.approx(want.lr, rel=1e-4)
    assert got["stop"] == want.stop_reason


def test_find_lr_of_a_task_whose_train_loader_cannot_be_sharded_is_a_user_error(swept):
    _, ranks_ = swept
    for report in ranks_:
        assert "the range test of a task shard the train loader" in report["unshardable"]
        assert "got a list" in report["unshardable"]


def test_a_non_finite_loss_on_one_rank_stops_every_rank_at_that_step(swept):
    _, (first, second) = swept
    assert first["inf"] == second["inf"]
    assert first["inf"]["steps"] == 5  # rank 0's loss was finite: it stopped all the same
    assert first["inf"]["curve"]["stop"].startswith("stopped at step 4: the loss was inf")
    assert len(first["inf"]["curve"]["lrs"]) == 4


def test_model_optimizer_and_rng_are_restored_on_every_rank(swept):
    _, ranks = swept
    for rank, report in enumerate(ranks):
        back = {k: report[k] for k in ("params_back", "momentum_back", "lr_back", "rng_back")}
        assert all(back.values()), (rank, back)


def test_only_rank_0_shows_a_progress_bar(swept):
    _, (first, second) = swept
    assert "find lr" in first["printed"]
    assert second["printed"] == ""


def test_lrkit_find_prints_and_writes_only_on_rank_0(swept):
    out, (first, second) = swept
    assert "lrkit find: wine-mlp" in first["cli_printed"]
    assert second["cli_printed"] == ""
    assert json.loads((out / "find.json").read_text())["steps_run"] > 0


def test_a_rank_killed_mid_sweep_makes_the_other_raise_a_clear_error(tmp_path):
    # torchrun tears the group down once it sees a rank die; checking every 2 s, it leaves the
    # survivor time to write what it raised (gloo reports the lost peer at once)
    done = torchrun("kill", tmp_path, "--monitor-interval=2")
    assert done.returncode != 0  # torchrun reports rank 1's SIGKILL
    survivor = json.loads((tmp_path / "rank0.json").read_text())
    assert survivor["type"] == "UserError", survivor
    assert "find_lr stopped on rank 0 of 2" in survivor["message"]
    assert "another rank died" in survivor["message"]
    assert "timeout of 120 s" in survivor["message"]
    assert survivor["seconds"] < 60  # far below the group's timeout: the loss is seen at once
    assert not (tmp_path / "rank1.json").exists()


def test_a_rank_that_hangs_makes_the_other_raise_after_the_group_timeout(tmp_path):
    done = torchrun("hang", tmp_path)
    assert done.returncode == 0, done.stderr  # the sleeper leaves quietly afterwards
    survivor = json.loads((tmp_path / "rank0.json").read_text())
    assert survivor["type"] == "UserError", survivor
    assert "find_lr stopped on rank 0 of 2" in survivor["message"]
    assert "did not answer within the group's timeout of 4 s" in survivor["message"]
    assert 4 <= survivor["seconds"] < 60


# -- pieces, in this process ---------------------------------------------------------------------


def test_a_group_of_one_process_still_sweeps(group_of_one):
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    data = [(torch.randn(8, 4), torch.randn(8, 1))]
    result = find_lr(model, opt, data, criterion=F.mse_loss, steps=20, progress=False)
    assert len(result.lrs) > 0


def _first_features(batches, n):
    return [tuple(next(batches)[0][:, 0].tolist()) for _ in range(n)]


def test_the_sweep_reshuffles_a_sharded_task_loader_at_each_pass_as_fit_s_epochs():
    x = torch.arange(32.0).reshape(16, 2)
    loader = ranks.shard_loader(tensor_loader(x, x, batch_size=4, shuffle=True), 0, 0, 2)
    passes = _first_features(_cycle(loader, "loader", epochs=True), 4)
    one, two = passes[:2], passes[2:]
    assert len(set(sum(one, ()))) == len(set(sum(two, ()))) == 8  # half the examples each pass
    assert one != two  # another draw: DistributedSampler.set_epoch(1)
    untold = _first_features(_cycle(loader, "loader"), 4)
    assert untold[:2] == untold[2:]  # a loader of your own: each pass as its sampler says


def test_the_sweep_leaves_the_epoch_of_a_users_own_distributed_sampler_alone():
    x = torch.randn(16, 4)
    sampler = DistributedSampler(TensorDataset(x, x[:, :1]), num_replicas=2, rank=0, seed=0)
    loader = DataLoader(TensorDataset(x, x[:, :1]), batch_size=4, sampler=sampler)
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    find_lr(model, opt, loader, criterion=F.mse_loss, steps=10, end=0.1, progress=False)
    assert sampler.epoch == 0  # 10 steps, 5 passes of its 2 batches: yours to set


def test_the_group_timeout_is_read_from_the_group(group_of_one):
    assert dist.timeout() is not None and dist.timeout() > 0


def test_the_distributed_helpers_describe_a_group_of_one(group_of_one):
    assert (dist.is_initialized(), dist.world_size(), dist.rank()) == (True, 1, 0)
    assert not dist.is_distributed()


def test_the_distributed_helpers_describe_a_single_process_without_a_group():
    assert (dist.is_initialized(), dist.world_size(), dist.rank()) == (False, 1, 0)
    assert not dist.is_distributed() and dist.timeout() is None


def test_a_failed_collective_becomes_a_user_error_naming_the_rank(monkeypatch):
    monkeypatch.setattr(dist, "world_size", lambda: 4)
    monkeypatch.setattr(dist, "rank", lambda: 3)
    with pytest.raises(UserError, match="find_lr stopped on rank 3 of 4") as caught:
        with dist.failures("find_lr"):
            raise RuntimeError("[gloo/transport/tcp/pair.cc:537] Connection reset by peer")
    assert "Connection reset by peer" in str(caught.value)
    assert isinstance(caught.value.__cause__, RuntimeError)


def test_other_errors_pass_through_failures_unchanged(monkeypatch):
    monkeypatch.setattr(dist, "world_size", lambda: 2)
    with pytest.raises(ValueError, match="the loss must be a scalar"):
        with dist.failures("find_lr"):
            raise ValueError("the loss must be a scalar tensor")


def test_a_backend_error_in_a_single_process_is_not_blamed_on_other_ranks():
    with pytest.raises(RuntimeError, match="Connection reset"):
        with dist.failures("find_lr"):
            raise RuntimeError("gloo: Connection reset by peer")


def test_the_module_example_runs():
    result = doctest.testmod(dist)
    assert result.attempted >= 1 and result.failed == 0
