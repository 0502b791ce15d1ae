"""lrkit.dist's collectives in a real gloo group of two processes: every rank gets the same
mean, the same decision and rank 0's object."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed

import lrkit
from lrkit import dist

pytestmark = pytest.mark.skipif(
    not torch.distributed.is_available(), reason="torch.distributed is not in this build"
)

RANK = """
import json, sys
import torch
import torch.distributed as d
rank, init, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
d.init_process_group("gloo", init_method="file://" + init, rank=rank, world_size=2)
from lrkit import dist
said = {
    "mean": dist.mean(1.0 + 2 * rank),
    "means": dist.mean([1.0 + 2 * rank, torch.tensor(10.0 * rank), -rank]),
    "none": dist.mean([]),
    "any": dist.agree(rank == 1),
    "all": dist.agree(rank == 1, "all"),
    "broadcast": dist.broadcast({"lr": 0.1 * (rank + 1)}),
    "main": dist.is_main(),
}
json.dump(said, open(out, "w"))
d.destroy_process_group()
"""


def test_two_ranks_get_one_mean_one_decision_and_rank_0s_object(tmp_path):
    src = str(Path(lrkit.__file__).parent.parent)
    env = {**os.environ, "PYTHONPATH": src, "OMP_NUM_THREADS": "1"}
    outs = [tmp_path / f"rank{r}.json" for r in range(2)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RANK, str(r), str(tmp_path / "init"), str(outs[r])],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for r in range(2)
    ]
    try:
        errors = [p.communicate(timeout=120)[1] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert [p.returncode for p in procs] == [0, 0], errors
    said = [json.loads(out.read_text()) for out in outs]
    for r, s in enumerate(said):
        assert (s["mean"], s["any"], s["all"], s["main"]) == (2.0, True, False, r == 0)
        assert s["broadcast"] == {"lr": 0.1}
        assert (s["means"], s["none"]) == ([2.0, 5.0, -0.5], [])


def test_a_list_of_means_costs_one_all_reduce(monkeypatch):
    calls = []
    monkeypatch.setattr(dist, "is_distributed", lambda: True)
    monkeypatch.setattr(dist, "world_size", lambda: 2)
    monkeypatch.setattr(dist, "_device", lambda: torch.device("cpu"))
    monkeypatch.setattr(dist._dist, "all_reduce", lambda t, op=None: calls.append(t.clone()))
    assert dist.mean([1.0, 3.0, 4.0]) == [0.5, 1.5, 2.0]  # the fake all-reduce adds nothing
    assert len(calls) == 1 and calls[0].tolist() == [1.0, 3.0, 4.0]


def test_one_mean_is_the_first_of_a_list_of_one(monkeypatch):
    monkeypatch.setattr(dist, "is_distributed", lambda: True)
    monkeypatch.setattr(dist, "world_size", lambda: 4)
    monkeypatch.setattr(dist, "_device", lambda: torch.device("cpu"))
    monkeypatch.setattr(dist._dist, "all_reduce", lambda t, op=None: t.mul_(4))
    assert dist.mean(0.1) == dist.mean([0.1])[0] == 0.1
    assert isinstance(dist.mean(torch.tensor(2.0)), float)


@pytest.mark.parametrize("values", [[1, 2.5], (1, 2.5), [torch.tensor(1.0), torch.tensor([2.5])]])
def test_a_list_of_means_in_one_process_is_the_values_as_floats(values):
    assert dist.mean(values) == [1.0, 2.5]


def test_a_mean_of_nothing_is_an_empty_list():
    assert dist.mean([]) == [] and dist.mean(()) == []


def test_a_non_finite_value_keeps_its_place_in_the_list():
    got = dist.mean([float("nan"), float("inf"), 1.0])
    assert got[0] != got[0] and got[1:] == [float("inf"), 1.0]


def test_agree_names_what_it_accepts():
    with pytest.raises(ValueError, match="'any' or 'all'"):
        dist.agree(True, "most")
