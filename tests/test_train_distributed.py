"""``fit``, Watch and the Guard under torchrun: two real ranks (``torch.distributed.run``, gloo on
the CPU) train as one run: the same history, weights and driver on both, the same guard action
at the same batch, rank 0 alone writing files. One launch runs every scenario of
tests/dist_fit_worker.py; the sharding rule of the train loader is tested in this process."""

import doctest
import json
import math
from pathlib import Path

import pytest
import torch
import torch.distributed
from bounded import TORCHRUN, run_bounded
from torch.utils.data import DataLoader, TensorDataset, WeightedRandomSampler
from torch.utils.data.distributed import DistributedSampler
from user_tasks import X, Y, tiny

from lrkit.errors import UserError
from lrkit.tasks import tensor_loader
from lrkit.train import Callback, fit, ranks
from lrkit.train.ranks import shard_loader, unwrap, wrap_model
from lrkit.watch import sinks

WORKER = Path(__file__).parent / "dist_fit_worker.py"
ANY_RANK_0_FAILED = "fit: rank 0 could not save the history into out=; see its error"
TIMEOUT = 300  # seconds for torchrun to start two ranks, run five tiny fits each and exit

pytestmark = pytest.mark.skipif(
    not torch.distributed.is_available(), reason="torch.distributed is not in this build"
)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """``(folder, [rank 0's report, rank 1's])`` of one torchrun launch of the worker; the
    launcher and its ranks are killed (their whole process group) if it runs past TIMEOUT."""
    folder = tmp_path_factory.mktemp("torchrun")
    run_bounded([*TORCHRUN, str(WORKER), str(folder)], TIMEOUT, "torchrun")
    return folder, [json.loads((folder / f"rank{r}.json").read_text()) for r in range(2)]


class Keep(Callback):
    def on_train_end(self, state):
        self.weights = {k: v.clone() for k, v in state.model.state_dict().items()}


def numbers(history):
    """What a history says about the run, without its timings."""
    epochs = [{k: v for k, v in e.items() if k != "time"} for e in history["epochs_log"]]
    keep = ("status", "reason", "step", "epoch", "lr_groups", "loss", "skipped", "total_steps")
    return repr(({k: history[k] for k in keep}, epochs))  # repr: NaN equals NaN


SCENARIOS = [
    "same", "parity", "guard", "diverge", "wrapped", "rollback", "stop", "stop_at_validation",
    "amp",
]  # fmt: skip


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_both_ranks_record_the_same_history(run, scenario):
    _, (zero, one) = run
    assert numbers(zero[scenario]["history"]) == numbers(one[scenario]["history"])
    assert zero[scenario]["history"]["loss"], "no step was recorded"


@pytest.mark.parametrize("scenario", ["same", "guard", "wrapped", "amp"])
def test_both_ranks_end_with_the_same_weights_and_driver(run, scenario):
    _, (zero, one) = run
    assert zero[scenario]["weights"] == one[scenario]["weights"]
    assert zero[scenario]["driver"] == one[scenario]["driver"]
    assert zero[scenario]["history"]["status"] == "completed"


def test_each_rank_trains_on_its_own_shard_of_the_data(run):
    _, (zero, _) = run
    history = zero["same"]["history"]  # 96 examples, 16 a batch: 3 batches a rank, not 6
    assert (history["steps_per_epoch"], len(history["loss"])) == (3, 6)


def test_two_ranks_train_as_one_process_on_the_global_batch(run):
    _, (zero, _) = run
    task = tiny(epochs=1, make_train_loader=lambda: tensor_loader(X, Y, batch_size=16))
    keep = Keep()
    alone = fit(task, progress=False, callbacks=[keep])
    ranked = zero["parity"]
    assert ranked["history"]["loss"] == pytest.approx(alone.loss, rel=1e-5)
    for name, value in keep.weights.items():
        expected = value.flatten().tolist()
        assert _flat(ranked["weights"][name]) == pytest.approx(expected, rel=1e-4, abs=1e-6)
    assert ranked["history"]["epochs_log"][0]["metric"] == pytest.approx(alone.metrics[0], 1e-5)


def test_only_rank_0_writes_the_history_and_the_signals(run):
    folder, (_, one) = run
    for scenario in SCENARIOS:
        assert (folder / f"{scenario}-out0" / "history.json").is_file()
        assert (folder / f"{scenario}-signals0" / "signals.csv").is_file()
        assert not (folder / f"{scenario}-out1").exists()
        assert not (folder / f"{scenario}-signals1").exists()
    saved = json.loads((folder / "same-out0" / "history.json").read_text())
    assert numbers(saved) == numbers(one["same"]["history"])  # what every rank returned


def test_the_watch_reads_the_same_synchronised_gradients_on_both_ranks(run):
    _, (zero, one) = run
    norms = zero["same"]["grad_norms"]
    assert len(norms) == 6 and all(math.isfinite(x) and x > 0 for x in norms)
    assert norms == one["same"]["grad_norms"]


def test_a_nan_on_one_rank_makes_both_ranks_skip_the_same_update(run):
    _, (zero, one) = run
    actions = [e for e in zero["guard"]["guard"] if e[1] != "snapshot"]
    assert actions == [[3, "skip", "loss nan"]]  # rank 1's 4th batch
    assert zero["guard"]["guard"] == one["guard"]["guard"]
    assert zero["guard"]["history"]["skipped"] == [3] == one["guard"]["history"]["skipped"]
    assert all(math.isfinite(x) for w in zero["guard"]["weights"].values() for x in _flat(w))


def test_under_fp16_both_ranks_skip_overflows_and_a_nan_alike_and_count_the_same_steps(run):
    _, (zero, one) = run
    amp = zero["amp"]
    history = amp["history"]
    assert [e[1:] for e in amp["guard"] if e[1] != "snapshot"] == [["skip", "loss nan"]]
    assert amp["guard"] == one["amp"]["guard"] and history["status"] == "completed"
    assert history["overflowed"] == one["amp"]["history"]["overflowed"] != []
    assert history["scale"] == one["amp"]["history"]["scale"] < 2.0**24
    not_applied = len(history["skipped"]) + len(history["overflowed"])
    assert amp["driver"]["step"] == len(history["loss"]) - not_applied


def test_without_a_guard_both_ranks_diverge_at_the_same_step(run):
    folder, (zero, one) = run
    for said in (zero, one):
        history = said["diverge"]["history"]
        assert history["status"] == "diverged"
        assert history["reason"].startswith("the loss was nan at step 3 ")
    # rank 0 also saved after every step, reading its losses back on its own clock: before
    # the fix it ended there alone, and rank 1 waited for it forever
    assert zero["diverge"]["driver"] == one["diverge"]["driver"]
    assert (folder / "diverge-out0" / "history.json").is_file()


def test_a_nan_on_one_rank_rolls_both_ranks_back_to_the_same_snapshot_and_lr(run):
    _, (zero, one) = run
    actions = [e for e in zero["rollback"]["guard"] if e[1] != "snapshot"]
    assert [(step, action) for step, action, _ in actions] == [(3, "rollback")]
    assert "back to step 2, lr 0.1 -> 0.05" in actions[0][2]
    assert zero["rollback"]["guard"] == one["rollback"]["guard"]
    assert zero["rollback"]["driver"] == one["rollback"]["driver"]
    assert zero["rollback"]["driver"]["lrs"] == [0.05]


def test_a_callback_s_stop_on_one_rank_stops_both_at_the_same_step(run):
    _, (zero, one) = run
    for said in (zero, one):
        assert said["stop"]["history"]["status"] == "stopped"
        assert said["stop"]["driver"]["step"] == 2


def test_a_callback_s_stop_at_a_validation_on_one_rank_stops_both_there(run):
    _, (zero, one) = run
    for said in (zero, one):
        assert said["stop_at_validation"]["history"]["status"] == "stopped"
        assert said["stop_at_validation"]["driver"]["step"] == 3
        assert len(said["stop_at_validation"]["history"]["epochs_log"]) == 1


def test_a_plain_loop_s_guard_skips_one_rank_s_nan_on_both_ranks(run):
    _, (zero, one) = run
    actions = [e for e in zero["loop"]["guard"] if e[1] != "snapshot"]
    assert actions == [[3, "skip", "loss nan"]]
    assert zero["loop"] == one["loop"]


def test_an_out_folder_rank_0_cannot_write_stops_every_rank_before_training(run):
    _, (zero, one) = run
    assert "blocker/out" in zero["unwritable"][1]  # rank 0: its own error, naming the path
    assert one["unwritable"] == ["RuntimeError", ANY_RANK_0_FAILED]


def test_a_task_s_own_ddp_model_is_trained_as_it_is(run):
    _, (zero, _) = run
    assert sorted(zero["wrapped"]["weights"]) == ["bias", "weight"]  # the module's own names


def _flat(value):
    return [y for x in value for y in _flat(x)] if isinstance(value, list) else [value]


# -- the sharding rule, in this process --------------------------------------------------------
def _indices(loader):
    return sorted(int(i) for x, _ in loader for i in x[:, 0].tolist())


def test_the_shards_of_a_tensor_loader_split_its_examples_and_keep_its_batches():
    ids = torch.arange(10.0).reshape(10, 1)
    loader = tensor_loader(ids, ids, batch_size=3, shuffle=True)
    shards = [shard_loader(loader, seed=0, rank=r, world_size=2) for r in range(2)]
    assert [len(s) for s in shards] == [2, 2]  # 5 examples a rank, 3 a batch
    assert sorted(_indices(shards[0]) + _indices(shards[1])) == list(range(10))
    assert shards[0].sampler.sampler.shuffle is True


def test_a_batching_data_loader_is_sharded_keeping_batch_size_and_order():
    data = TensorDataset(torch.arange(8.0).reshape(8, 1), torch.zeros(8))
    shard = shard_loader(DataLoader(data, batch_size=2), seed=0, rank=1, world_size=2)
    assert shard.batch_size == 2 and shard.sampler.shuffle is False
    assert [x[:, 0].tolist() for x, _ in shard] == [[1.0, 3.0], [5.0, 7.0]]


def test_a_loader_sharded_already_is_kept():
    data = TensorDataset(torch.zeros(8, 1), torch.zeros(8))
    loader = DataLoader(data, batch_size=2, sampler=DistributedSampler(data, 2, 0))
    assert shard_loader(loader, seed=0, rank=0, world_size=2) is loader


@pytest.mark.parametrize(
    "loader, named",
    [
        ([(torch.zeros(2, 1), torch.zeros(2))], "got a list"),
        (
            DataLoader(
                TensorDataset(torch.zeros(4, 1)),
                batch_size=2,
                sampler=WeightedRandomSampler([1.0] * 4, 4),
            ),
            "WeightedRandomSampler",
        ),
        (DataLoader(TensorDataset(torch.zeros(4, 1)), batch_size=None), "does not batch"),
    ],
    ids=["a list of batches", "a weighted sampler", "no batching"],
)
def test_a_loader_that_cannot_be_sharded_is_a_user_error_naming_it(loader, named):
    with pytest.raises(UserError, match=f"{named}.*shard it yourself with a DistributedSampler"):
        shard_loader(loader, seed=0, rank=0, world_size=2)


def test_a_ddp_model_is_not_wrapped_twice_and_unwraps_to_its_module(group_of_one):
    model = torch.nn.Linear(2, 1)
    wrapped = wrap_model(model)
    assert wrap_model(wrapped) is wrapped and unwrap(wrapped) is model and unwrap(model) is model


def test_fit_in_a_group_of_one_trains_as_a_single_process(tmp_path):
    alone = fit(tiny(epochs=1), progress=False)
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{tmp_path / 'init'}", rank=0, world_size=1
    )
    try:
        grouped = fit(tiny(epochs=1), progress=False)
    finally:
        torch.distributed.destroy_process_group()
    assert grouped.loss == alone.loss and grouped.steps_per_epoch == alone.steps_per_epoch == 6


@pytest.mark.parametrize("module", [ranks, sinks], ids=lambda m: m.__name__)
def test_docstring_examples_run(module):
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0


def test_fit_refuses_settings_that_differ_between_ranks_before_training(monkeypatch):
    from lrkit import dist
    from lrkit.errors import UserError

    gathered = []

    def all_gather_object(out, mine):  # rank 1 asks for 25 steps where this rank asks for 20
        gathered.append(mine)
        out[:] = [mine, {**mine, "steps": "25"}]

    monkeypatch.setattr(dist, "is_distributed", lambda: True)
    monkeypatch.setattr(dist, "world_size", lambda: 2)
    monkeypatch.setattr(dist._dist, "all_gather_object", all_gather_object)
    with pytest.raises(UserError, match=r"fit under torchrun needs the same settings.*steps: 20"
                       r" on rank 0; 25 on rank 1"):  # fmt: skip
        fit("wine-mlp", steps=20, progress=False)
    assert gathered and gathered[0]["task"] == "'wine-mlp'"
