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
from lrkit.errors import UserError

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
from lrkit.errors import UserError
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


# -- before a group starts: the rank the launcher's environment gives -------------------------
LAUNCHER_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK",
                      "LOCAL_WORLD_SIZE")  # fmt: skip


@pytest.fixture
def launcher(monkeypatch):
    """``launcher(NAME=value, ...)``: exactly those launcher variables in the environment."""
    for name in LAUNCHER_VARIABLES:
        monkeypatch.delenv(name, raising=False)

    def given(**values):
        for name, value in values.items():
            monkeypatch.setenv(name, value)

    return given


def test_without_a_launcher_a_process_is_rank_0(launcher):
    launcher()
    assert (dist.rank(), dist.is_main(), dist.world_size()) == (0, True, 1)


@pytest.mark.parametrize(
    "env, rank",
    [
        ({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"}, 1),  # torchrun
        ({"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0"}, 0),
        ({"RANK": "5", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "GROUP_RANK": "2"}, 5),  # RANK wins
        # a rank Lightning's launcher started (LOCAL_RANK=1 python ..., WORLD_SIZE inherited)
        ({"LOCAL_RANK": "1", "WORLD_SIZE": "2"}, 1),
        ({"LOCAL_RANK": "0", "NODE_RANK": "0", "WORLD_SIZE": "2"}, 0),  # its main, in fit
        ({"LOCAL_RANK": "1", "NODE_RANK": "1", "LOCAL_WORLD_SIZE": "4", "WORLD_SIZE": "8"}, 5),
        ({"LOCAL_RANK": "2", "GROUP_RANK": "1", "LOCAL_WORLD_SIZE": "4", "WORLD_SIZE": "8"}, 6),
        ({"NODE_RANK": "0", "GROUP_RANK": "1", "WORLD_SIZE": "8"}, 0),  # NODE_RANK wins
        ({"RANK": "", "LOCAL_RANK": " ", "WORLD_SIZE": "2"}, 0),  # empty: unset
        ({"RANK": "1"}, 0),  # a stray RANK in a shell, no WORLD_SIZE: no launch
        ({"LOCAL_RANK": "1"}, 0),
        ({"RANK": "1", "WORLD_SIZE": "1", "LOCAL_RANK": "3"}, 0),  # a group of one
    ],
)
def test_before_a_group_the_rank_is_the_launchers(launcher, env, rank):
    launcher(**env)
    assert dist.rank() == rank and dist.is_main() == (rank == 0)
    assert dist.world_size() == 1 and not dist.is_distributed()  # no collective without a group


@pytest.mark.parametrize("local", ["0", "1", "3"])
def test_on_a_later_node_of_unknown_size_a_process_is_not_rank_0(launcher, local):
    launcher(NODE_RANK="1", LOCAL_RANK=local, WORLD_SIZE="8")  # ranks a node holds: not said
    assert dist.rank() > 0 and not dist.is_main()


@pytest.mark.parametrize(
    "env, name",
    [
        ({"RANK": "abc"}, "RANK"),
        ({"RANK": "-1"}, "RANK"),
        ({"RANK": "1.5"}, "RANK"),
        ({"LOCAL_RANK": "x"}, "LOCAL_RANK"),
        ({"LOCAL_RANK": "1", "NODE_RANK": "first"}, "NODE_RANK"),
        ({"LOCAL_RANK": "1", "GROUP_RANK": "-2"}, "GROUP_RANK"),
        ({"LOCAL_RANK": "1", "NODE_RANK": "1", "LOCAL_WORLD_SIZE": "two"}, "LOCAL_WORLD_SIZE"),
        ({"RANK": "1", "WORLD_SIZE": "many"}, "WORLD_SIZE"),
    ],
)
def test_a_launcher_variable_that_is_no_rank_is_named(launcher, env, name):
    launcher(**{"WORLD_SIZE": "2", **env})  # a launch of two
    with pytest.raises(UserError, match=rf"environment variable {name} must be a whole number"):
        dist.is_main()


def test_a_rank_not_below_the_world_size_is_named(launcher):
    launcher(RANK="2", WORLD_SIZE="2")
    with pytest.raises(UserError, match=r"RANK must be below WORLD_SIZE \(2\).*got RANK=2"):
        dist.rank()


@pytest.mark.parametrize("size", ["0", "x"])
def test_init_refuses_a_world_size_that_is_no_count_before_torch_sees_it(launcher, size):
    launcher(RANK="0", WORLD_SIZE=size, MASTER_ADDR="127.0.0.1", MASTER_PORT="1")
    with pytest.raises(UserError, match="WORLD_SIZE"):
        dist.init()
    assert not dist.is_initialized()


def test_init_refuses_a_rank_that_is_no_number_before_torch_sees_it(launcher):
    launcher(RANK="abc", WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT="1")
    with pytest.raises(UserError, match="environment variable RANK must be a whole number"):
        dist.init()
    assert not dist.is_initialized()


# -- settings every rank must give alike ------------------------------------------------------
def test_same_settings_in_one_process_checks_nothing():
    assert dist.same_settings("find_lr", {"steps": 20, "odd": object()}) is None


def gathered(monkeypatch, ranks: list[dict]) -> None:
    """A group of ``len(ranks)`` ranks whose all-gather gives each rank's settings."""
    monkeypatch.setattr(dist, "is_distributed", lambda: True)
    monkeypatch.setattr(dist, "world_size", lambda: len(ranks))

    def all_gather_object(out, mine):
        out[:] = [{k: repr(v) for k, v in r.items()} for r in ranks]

    monkeypatch.setattr(dist._dist, "all_gather_object", all_gather_object)


def test_settings_alike_on_every_rank_pass(monkeypatch):
    gathered(monkeypatch, [{"steps": 20, "val": None}] * 3)
    dist.same_settings("find_lr", {"steps": 20, "val": None})


def test_a_setting_that_differs_is_named_with_each_ranks_value(monkeypatch):
    gathered(monkeypatch, [{"steps": 20, "lr": 0.1}, {"steps": 25, "lr": 0.1},
                           {"steps": 20, "lr": 0.1}])  # fmt: skip
    with pytest.raises(UserError) as err:
        dist.same_settings("find_lr", {"steps": 20, "lr": 0.1})
    message = str(err.value)
    assert message.startswith("find_lr under torchrun needs the same settings on every rank")
    assert "steps: 20 on ranks 0, 2; 25 on rank 1" in message and "lr:" not in message


def test_a_setting_one_rank_does_not_give_is_named(monkeypatch):
    gathered(monkeypatch, [{"steps": 20, "extra": 1}, {"steps": 20}])
    with pytest.raises(UserError, match=r"extra: 1 on rank 0; \(not given\) on rank 1"):
        dist.same_settings("pick_lr", {"steps": 20, "extra": 1})


def test_values_are_the_same_when_their_repr_is(monkeypatch):
    gathered(monkeypatch, [{"steps": 20}, {"steps": 20.0}])  # 20 == 20.0, but not alike
    with pytest.raises(UserError, match=r"steps: 20 on rank 0; 20.0 on rank 1"):
        dist.same_settings("find_lr", {"steps": 20})


def test_a_model_in_ddp_shares_its_gradients_and_a_bare_one_does_not():
    bare = torch.nn.Linear(2, 1)
    assert not dist.shares_gradients(bare)
    ddp = torch.nn.parallel.DistributedDataParallel.__new__(
        torch.nn.parallel.DistributedDataParallel
    )  # its class is what counts; building one needs a group
    torch.nn.Module.__init__(ddp)
    assert dist.shares_gradients(ddp)
    assert dist.shares_gradients(torch.nn.Sequential(ddp))  # a module in it counts too
