"""``pick_lr`` under torchrun: two real ranks (``torch.distributed.run``, gloo on the CPU) pick a
rate for the tiny task in one launch of tests/dist_pick_worker.py and must agree on everything:
the window, every short run's score, the survivors of each round and the rate picked."""

import json
from pathlib import Path

import pytest
import torch
import torch.distributed
from bounded import TORCHRUN, run_bounded
from dist_pick_worker import BUDGET, SCHEDULE, SWEEP, in_order

from lrkit.find import Pick, find_lr, pick_lr

WORKER = Path(__file__).parent / "dist_pick_worker.py"
TIMEOUT = 240  # seconds for torchrun to start two ranks, sweep, train 8 short runs and exit

pytestmark = pytest.mark.skipif(
    not torch.distributed.is_available(), reason="torch.distributed is not in this build"
)


@pytest.fixture(scope="module")
def picked(tmp_path_factory):
    """``[rank 0's report, rank 1's]`` of one torchrun launch (Picks read back); the
    launcher and its ranks are killed (their whole process group) if it runs past TIMEOUT."""
    folder = tmp_path_factory.mktemp("pick")
    run_bounded([*TORCHRUN, str(WORKER), str(folder)], TIMEOUT, "torchrun")
    reports = [json.loads((folder / f"rank{r}.json").read_text()) for r in range(2)]
    written = Pick.from_json((folder / "pick.json").read_text())
    return [
        {"pick": Pick.from_json(r["pick"]), "printed": r["printed"],
         "parity": Pick.from_json(r["parity"]), "sweep": r["sweep"],
         "cli_printed": r["cli_printed"], "written": written}
        for r in reports
    ]  # fmt: skip


def test_both_ranks_pick_the_same_rate_from_the_same_trials(picked):
    zero, one = (r["pick"] for r in picked)
    assert zero.lr == one.lr
    assert zero.trials == one.trials
    assert zero == one  # window, candidates, range test, winner, ties, cost: all of it


def test_the_ranks_pick_within_the_window_and_the_budget(picked):
    zero = picked[0]["pick"]
    assert zero.window[0] <= zero.lr <= zero.window[1]
    assert len(zero.trials) == 8 and zero.cost <= BUDGET


def test_the_full_run_is_an_epoch_of_each_ranks_shard(picked):
    zero = picked[0]["pick"]
    assert zero.full_run_steps == 10 * 3  # 10 epochs of 96 examples, 16 a batch, half a rank


def test_two_ranks_pick_as_one_process_on_the_global_batches(picked):
    ranked = picked[0]["parity"]
    alone = pick_lr(in_order(32), SCHEDULE, budget=BUDGET, seed=0, progress=False)
    assert ranked.full_run_steps == alone.full_run_steps
    assert ranked.find["steps"] == alone.find["steps"]
    assert ranked.find["top"] == pytest.approx(alone.find["top"], rel=1e-9)
    assert [t.lr for t in ranked.trials] == pytest.approx([t.lr for t in alone.trials], 1e-9)
    assert [t.val_loss for t in ranked.trials] == pytest.approx(
        [t.val_loss for t in alone.trials], rel=1e-4
    )
    assert ranked.lr == pytest.approx(alone.lr, rel=1e-9)


def test_the_range_test_sweeps_the_global_batches_as_fit_trains(picked):
    alone = find_lr(in_order(32), **SWEEP, progress=False)
    assert picked[0]["sweep"] == pytest.approx(alone.raw_losses.tolist(), rel=1e-5)
    assert picked[0]["sweep"] == picked[1]["sweep"]


def test_only_rank_0_prints_the_progress(picked):
    zero, one = (r["printed"] for r in picked)
    assert "pick: round 1" in zero
    assert one == ""


def test_lrkit_pick_prints_and_writes_only_on_rank_0(picked):
    zero, one = picked
    assert "lrkit pick: tiny" in zero["cli_printed"]
    assert one["cli_printed"] == ""
    assert zero["written"].full_run_steps == 10 * 3  # the distributed run's length
