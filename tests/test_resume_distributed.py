"""The Driver under torchrun: closed form and identical on every rank, and its ``state_dict``
(saved by rank 0 with the model and optimizer) resumes a distributed run exactly."""

import json
from pathlib import Path

import pytest
from bounded import TORCHRUN, run_bounded

WORKER = Path(__file__).with_name("dist_resume_worker.py")
TIMEOUT = 120


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("resume")
    run_bounded([*TORCHRUN, str(WORKER), str(out)], TIMEOUT, "torchrun")
    return [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]


def test_every_rank_applies_the_same_lrs(ranks):
    assert ranks[0]["straight_lrs"] == ranks[1]["straight_lrs"]
    assert ranks[0]["straight_lrs"][0] == 0.0 and len(set(ranks[0]["straight_lrs"])) > 10


def test_a_resumed_run_applies_the_lrs_of_the_run_straight_through(ranks):
    for rank in ranks:
        assert rank["resumed_lrs"] == rank["straight_lrs"]  # bit for bit
        assert rank["driver_step"] == 20


def test_a_resumed_run_ends_on_the_weights_of_the_run_straight_through(ranks):
    for rank in ranks:
        assert rank["resumed"] == rank["straight"]  # bit for bit: the same updates, the same lrs
    assert ranks[0]["resumed"] == ranks[1]["resumed"]  # DDP kept the ranks equal
