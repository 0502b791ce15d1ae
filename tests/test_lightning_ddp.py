"""LRFindCallback and LRWatchCallback(guard=...) under Lightning's DDP strategy: a real
``Trainer(strategy="ddp", devices=2, accelerator="cpu")`` (gloo), started as a script
(tests/lightning_ddp_worker.py, which Lightning runs again for rank 1); about 10 s."""

import json
import sys
from pathlib import Path

import pytest
import torch.distributed
from bounded import run_bounded

pytest.importorskip("lightning.pytorch")


WORKER = Path(__file__).parent / "lightning_ddp_worker.py"
TIMEOUT = 240  # seconds for Lightning to start two ranks, sweep, train 10 steps and exit

pytestmark = pytest.mark.skipif(
    not torch.distributed.is_available(), reason="torch.distributed is not in this build"
)


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    """Rank 0's and rank 1's reports; the run (its whole process group) is killed past TIMEOUT."""
    folder = tmp_path_factory.mktemp("lightning_ddp")
    run_bounded([sys.executable, str(WORKER), str(folder)], TIMEOUT, "the Lightning DDP run")
    return [json.loads((folder / f"rank{r}.json").read_text()) for r in range(2)]


def test_both_ranks_sweep_one_curve_and_train_at_the_same_found_lr(ranks):
    zero, one = ranks
    assert zero["curve"] == one["curve"] and len(zero["curve"]) >= 10
    assert zero["lr"] == one["lr"] is not None
    for r in ranks:
        assert r["module_lr"] == r["optimizer_lr"] == r["lr"] != 0.05


def test_both_ranks_start_training_from_the_restored_weights(ranks):
    assert all(r["restored"] for r in ranks)


def test_a_nan_on_rank_1_is_skipped_by_both_ranks_and_the_run_finishes(ranks):
    zero, one = ranks
    assert zero["actions"] == one["actions"] == [[5, "skip"]]
    assert zero["global_step"] == one["global_step"] == 10
    assert zero["finite"] and zero["weights"] == one["weights"]


def test_lightnings_synced_val_loss_reaches_the_watch_on_both_ranks(ranks):
    assert ranks[0]["val"] == ranks[1]["val"] == [8]
