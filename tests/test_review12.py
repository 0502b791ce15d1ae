"""Issue 12 as a hostile user meets it: ``lrkit train --nproc 2`` with a rank that is late or
crashes, Ctrl-C to the launcher, a user's own torchrun script whose ranks differ (shard sizes,
a validation loader on rank 0 only, a rank that hangs in ``fit``), the Lightning callbacks with
OneCycleLR, a ``training_step`` that skips batches, a bad ``plot=``, an accuracy given as
``val_metric``, and under ``strategy="ddp"`` what rank 1 writes. Each ``xfail(strict=True)``
names a break that is still open; it turns into a failure (to unmark) once it is fixed."""

import json
import signal
import sys
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed
from bounded import TORCHRUN, Launched, descendants, kill_all

pl = pytest.importorskip("lightning.pytorch")

from lrkit.find import LRFindCallback  # noqa: E402
from lrkit.watch import LRWatchCallback, diagnose  # noqa: E402

pytestmark = [
    pytest.mark.skipif(not torch.distributed.is_available(), reason="no torch.distributed"),
    pytest.mark.usefixtures("one_thread"),
]

HERE = Path(__file__).parent
WORKER = HERE / "review12_worker.py"
LRKIT = [sys.executable, "-c", "import sys; from lrkit.cli import main; sys.exit(main())"]
TIMEOUT = 180  # seconds for a launch of two ranks (each imports torch) on 2 shared cores

TASKS = textwrap.dedent(
    """
    import dataclasses, os, time
    import torch
    from lrkit.tasks import get_task

    class Failing(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner, self.calls = inner, 0

        def forward(self, x):
            self.calls += 1
            if os.environ.get("RANK") == "1" and self.training and self.calls == 30:
                raise RuntimeError("rank 1 ran out of memory (pretend)")
            return self.inner(x)

    def late_then_fails():
        if os.environ.get("RANK") == "1":
            time.sleep(3)  # rank 0 opens --logdir's files meanwhile
        task = get_task("wine-mlp")
        make = task.make_model
        return dataclasses.replace(task, make_model=lambda: Failing(make()), epochs=20)
    """
)


@pytest.fixture(scope="module")
def launches(tmp_path_factory) -> dict[str, tuple[Launched, Path]]:
    """The multi-process runs of this file, started side by side (most of their time is each
    rank importing torch and waiting at a rendezvous), each with its folder."""
    runs = {}
    ctrlc = tmp_path_factory.mktemp("ctrlc")
    args = ["train", "--task", "digits-mlp", "--epochs", "500", "--nproc", "2", "-q",
            "--out", "out"]  # fmt: skip
    runs["ctrlc"] = Launched([*LRKIT, *args], TIMEOUT, "lrkit train --nproc 2", cwd=ctrlc), ctrlc
    late = tmp_path_factory.mktemp("late")
    (late / "review12_tasks.py").write_text(TASKS)
    args = ["train", "--task", "review12_tasks:late_then_fails", "--nproc", "2", "-q",
            "--logdir", "logs", "--out", "out"]  # fmt: skip
    runs["late"] = Launched([*LRKIT, *args], TIMEOUT, "lrkit train --nproc 2", cwd=late), late
    for mode in ("script", "hang", "val0"):
        out = tmp_path_factory.mktemp(mode)
        runs[mode] = Launched([*TORCHRUN, str(WORKER), mode, str(out)], TIMEOUT, mode), out
    out = tmp_path_factory.mktemp("lightning")
    runs["lightning"] = Launched([sys.executable, str(WORKER), "lightning", str(out)], TIMEOUT,
                                 "the Lightning DDP run"), out  # fmt: skip
    yield runs
    for run, _ in runs.values():
        if run.proc.poll() is None:
            kill_all(run.proc)


def reports(launches, mode: str) -> list[dict]:
    """Both ranks' reports of ``mode`` (tests/review12_worker.py), once it has ended."""
    run, out = launches[mode]
    run.wait()
    return [json.loads((out / f"{mode}-rank{r}.json").read_text()) for r in range(2)]


# -- Ctrl-C to the launcher -------------------------------------------------------------------
def test_ctrl_c_to_nproc_stops_every_rank_and_leaves_a_whole_history(launches):
    run, folder = launches["ctrlc"]
    history = folder / "out" / "history.json"
    while not history.exists() and time.monotonic() < run.deadline and run.proc.poll() is None:
        time.sleep(0.2)
    time.sleep(1.0)  # it trains
    ranks = descendants(run.proc.pid)
    assert len(ranks) >= 2, "the ranks were not running"
    run.proc.send_signal(signal.SIGINT)  # what Ctrl-C sends: the ranks are in other sessions
    status, output = run.wait()
    assert status == 130, output[-2000:]
    assert output.strip().splitlines()[-1] == "lrkit: interrupted"
    assert not [pid for pid in ranks if Path(f"/proc/{pid}").exists()], "ranks left running"
    saved = json.loads(history.read_text())  # whole JSON, not cut mid-write
    assert saved["status"] in ("interrupted", "running") and len(saved["step"]) > 0


# -- lrkit train --nproc 2: a late rank, then a rank that fails --------------------------------
@pytest.fixture(scope="module")
def late_then_fails(launches):
    """``lrkit train --nproc 2 --logdir logs`` where rank 1 builds its task 3 s late and then
    raises at its 30th forward: (status, output, folder)."""
    run, folder = launches["late"]
    status, output = run.wait()
    return status, output, folder


def test_a_late_rank_does_not_refuse_the_logdir_rank_0_just_filled(late_then_fails):
    # rank 1 looked at --logdir after rank 0's sinks had opened their files there, and refused
    # "its" folder as holding another run's signals (about half the runs, without the delay)
    _, output, folder = late_then_fails
    assert "already holds" not in output
    assert len(list((folder / "logs").glob("events.out.tfevents.*"))) == 1  # rank 0's only
    assert (folder / "logs" / "signals.csv").stat().st_size > 0


def test_a_rank_that_fails_mid_training_is_named_with_its_own_error(late_then_fails):
    # rank 0 used to print its gloo traceback as 'lrkit: internal error: RuntimeError: ...
    # Connection closed by peer', and rank 1's own error was never shown
    status, output, _ = late_then_fails
    lines = [line for line in output.splitlines() if line.strip()]
    assert status != 0 and "Traceback" not in output and "internal error" not in output
    assert lines[-1] == (
        "lrkit: error: rank 1 of 2 exited with status 1: RuntimeError: rank 1 ran out of memory"
        " (pretend)"
    ), output[-2000:]


# -- a user's own torchrun script ---------------------------------------------------------------
@pytest.fixture(scope="module")
def script(launches):
    return reports(launches, "script")


def test_ranks_with_shards_of_different_sizes_and_lengths_sweep_in_step(script):
    # rank 0: 8 batches of 8 examples, rank 1: 3 batches of 4; the sweep cycles each loader,
    # so both make the same 20 updates and no collective waits on a rank that ran out
    zero, one = script[0]["uneven"], script[1]["uneven"]
    assert "error" not in zero and "error" not in one, (zero, one)
    assert len(zero["curve"]) > 5 and zero["curve"] == one["curve"] and zero["lr"] == one["lr"]


def test_find_lr_on_a_task_under_torchrun_sweeps_the_global_batches(script):
    from lrkit.find import find_lr

    one = find_lr("wine-mlp", start=1e-4, end=3.0, steps=20, smooth=0.7, progress=False)
    # once every rank ran the one-process sweep on the whole batches (2x the cost, the lr of
    # the per-rank batch); now each rank sweeps its shard through DDP
    ranks = [report["task"]["curve"] for report in script]
    alone = one.raw_losses.tolist()
    assert ranks[0] == ranks[1]
    assert len(ranks[0]) != len(alone) or not np.allclose(ranks[0], alone)


def test_a_rank_that_hangs_in_fit_gives_the_others_a_clear_error(launches):
    # rank 0 got gloo's raw RuntimeError 'Timed out waiting 3000ms for recv operation'
    zero, one = reports(launches, "hang")
    assert zero.get("error") == "UserError", zero
    assert zero["message"].startswith("fit stopped on rank 0 of 2"), zero
    assert "timeout of 3 s" in zero["message"] and zero["seconds"] < 60, zero
    assert one.get("error") == "UserError" and "fit stopped on rank 1 of 2" in one["message"]


@pytest.fixture(scope="module")
def differ(launches):
    """Both ranks' reports of the ``val0`` run: ranks given different settings."""
    run, out = launches["val0"]
    run.wait()
    said = [out / f"val0-rank{r}.json" for r in range(2)]
    assert all(p.exists() for p in said), "a rank died without a word"
    return [json.loads(p.read_text()) for p in said]


def test_a_validation_loader_on_rank_0_only_is_refused_alike_on_every_rank(differ):
    # rank 0 died with SIGABRT (its validation all-reduce met rank 1's DDP gradient all-reduce:
    # 'collective mismatch') and rank 1 blamed 'another rank died'
    zero, one = differ[0]["val0"], differ[1]["val0"]
    assert zero["error"] == one["error"] == "UserError" and zero["message"] == one["message"]
    assert "val_loader: 'a val_loader' on rank 0; None on rank 1" in zero["message"], zero
    assert "val_every: 5 on rank 0; None on rank 1" in zero["message"]


def test_a_refused_sweep_touched_neither_model_nor_optimizer(differ):
    for report in differ:
        assert report["val0"]["untouched"] and report["val0"]["lr_kept"]


def test_ranks_sweeping_different_numbers_of_steps_are_refused_alike(differ):
    # rank 0 returned a result and rank 1 raised
    zero, one = differ[0]["steps"], differ[1]["steps"]
    assert zero["error"] == one["error"] == "UserError" and zero["message"] == one["message"]
    assert "steps: 20 on rank 0; 25 on rank 1" in zero["message"]
    assert "val_loader" not in zero["message"]  # only what differs is named


def test_fit_with_different_step_budgets_is_refused_alike_at_once(differ):
    # it waited for the group's timeout: rank 0 finished its 20 steps, rank 1 wanted 5 more
    zero, one = differ[0]["fit"], differ[1]["fit"]
    assert zero["error"] == one["error"] == "UserError" and zero["message"] == one["message"]
    assert "fit under torchrun needs the same settings" in zero["message"]
    assert "steps: 20 on rank 0; 25 on rank 1" in zero["message"]


def test_pick_lr_with_different_budgets_is_refused_alike(differ):
    zero, one = differ[0]["pick"], differ[1]["pick"]
    assert zero["error"] == one["error"] == "UserError" and zero["message"] == one["message"]
    assert "budget: 1.5 on rank 0; 2.5 on rank 1" in zero["message"]


def test_a_model_outside_ddp_is_swept_with_a_warning_naming_ddp_on_every_rank(differ):
    zero, one = differ[0]["bare"], differ[1]["bare"]
    assert "error" not in zero and zero["curve"] == one["curve"]  # the losses averaged still
    for report in (zero, one):
        assert len(report["warnings"]) == 1, report["warnings"]
        assert "not in DistributedDataParallel" in report["warnings"][0]


def test_after_refusals_the_group_still_sweeps_with_a_loader_on_every_rank(differ):
    zero, one = differ[0]["alike"], differ[1]["alike"]
    assert "error" not in zero and zero == one and len(zero["curve"]) > 5


# -- Lightning under strategy="ddp" ---------------------------------------------------------------
@pytest.fixture(scope="module")
def lightning_ddp(launches):
    run, out = launches["lightning"]
    status, output = run.wait()
    assert status == 0, output[-3000:]
    return out, [json.loads((out / f"lightning-rank{r}.json").read_text()) for r in range(2)]


def test_under_ddp_only_rank_0_saves_the_plot(lightning_ddp):
    out, _ = lightning_ddp
    assert (out / "find-0.png").stat().st_size > 0 and not (out / "find-1.png").exists()


def test_under_ddp_a_sink_built_before_the_trainer_opens_no_file_on_rank_1(lightning_ddp):
    # the group starts inside trainer.fit, after the sinks were built: rank 1 decided it was
    # rank 0 and opened (truncated) signals.csv and signals.jsonl; now lrkit.dist reads the
    # LOCAL_RANK Lightning's launcher gives the rank it starts
    out, _ = lightning_ddp
    assert (out / "logs-0" / "signals.csv").stat().st_size > 0
    assert (out / "logs-0" / "signals.jsonl").stat().st_size > 0
    assert not (out / "logs-1").exists()  # no folder either


def test_under_ddp_a_lasting_nan_on_rank_1_gets_the_same_guard_actions_on_both(lightning_ddp):
    _, (zero, one) = lightning_ddp
    assert zero["actions"] == one["actions"]
    assert {action for _, action in zero["actions"]} == {"skip", "rollback"}
    assert zero["finite"] and one["finite"] and zero["global_step"] == one["global_step"] == 8


# -- Lightning in this process --------------------------------------------------------------------


def data(n: int = 256, seed: int = 0) -> torch.utils.data.DataLoader:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    ds = torch.utils.data.TensorDataset(x, (x[:, 0] + x[:, 1] > 0).long())
    return torch.utils.data.DataLoader(ds, batch_size=16)


class Net(pl.LightningModule):
    """No ``lr`` attribute, no hparams: the lr lives in configure_optimizers only."""

    def __init__(self):
        super().__init__()
        self.calls = 0
        self.net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(),
                                       torch.nn.Linear(16, 2))  # fmt: skip

    def training_step(self, batch, batch_idx):
        self.calls += 1
        x, y = batch
        return torch.nn.functional.cross_entropy(self.net(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05, momentum=0.9)


class OneCycle(Net):
    """The common recipe: ``OneCycleLR(max_lr=self.lr)``, stepped every batch."""

    def __init__(self, lr=0.05):
        super().__init__()
        self.lr = lr

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9)
        cycle = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.lr, total_steps=20)
        return [opt], [{"scheduler": cycle, "interval": "step"}]


class SkipsSome(Net):
    """Returns None for some batches: Lightning skips those updates."""

    def training_step(self, batch, batch_idx):
        return None if batch_idx % 5 == 3 else super().training_step(batch, batch_idx)


class Validated(Net):
    def validation_step(self, batch, batch_idx):
        x, y = batch
        out = self.net(x)
        self.log("val_acc", (out.argmax(1) == y).float().mean())
        self.log("val_loss", torch.nn.functional.cross_entropy(out, y))


class Lrs(pl.Callback):
    """The lr of every training batch."""

    def __init__(self):
        self.lrs = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.lrs.append(trainer.optimizers[0].param_groups[0]["lr"])


def trainer(*callbacks, **kwargs) -> "pl.Trainer":
    kwargs.setdefault("max_steps", 2)
    return pl.Trainer(accelerator="cpu", devices=1, logger=False, callbacks=list(callbacks),
                      enable_progress_bar=False, enable_model_summary=False,
                      enable_checkpointing=False, **kwargs)  # fmt: skip


@pytest.fixture(autouse=True)
def seeded_and_quiet():
    """The same weights and data order in every test, whatever ran before; no Lightning tips."""
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*does not have many workers.*")
        warnings.filterwarnings("ignore", ".*small logging interval.*")
        yield


def test_a_module_without_an_lr_attribute_trains_at_the_found_lr_and_gets_none_added():
    model, finder, lrs = Net(), LRFindCallback(1e-4, 10, steps=30), Lrs()
    trainer(finder, lrs).fit(model, data())
    assert finder.result.lr is not None and lrs.lrs[0] == pytest.approx(finder.result.lr)
    assert not hasattr(model, "lr") and not hasattr(model, "learning_rate")


def test_fast_dev_run_skips_the_sweep_with_a_warning_and_keeps_the_lr():
    model, finder, lrs = Net(), LRFindCallback(1e-4, 10, steps=30), Lrs()
    with pytest.warns(UserWarning, match="LRFindCallback: skipped, fast_dev_run"):
        trainer(finder, lrs, max_steps=-1, fast_dev_run=True).fit(model, data())
    assert finder.result is None and lrs.lrs == [0.05] and model.calls == 1


def test_one_cycle_peaks_at_the_found_lr_the_module_now_holds():
    # the found lr once became the cycle's *initial* lr and max_lr was scaled with it, so
    # training peaked at 25x the found lr (0.15 found, 3.7 applied, loss 1e5); now
    # configure_optimizers builds the cycle again with max_lr=self.lr
    model, finder, lrs = OneCycle(), LRFindCallback(1e-4, 10, steps=40), Lrs()
    trainer(finder, lrs, max_steps=20).fit(model, data())
    assert finder.result.lr != 0.05 and model.lr == pytest.approx(finder.result.lr)
    assert max(lrs.lrs) == pytest.approx(model.lr, rel=1e-9)
    assert lrs.lrs[0] == pytest.approx(model.lr / 25, rel=1e-9)  # the cycle's own start


def test_one_cycle_of_a_module_without_an_lr_attribute_peaks_at_the_found_lr_too():
    class NoAttr(Net):
        def configure_optimizers(self):
            opt = torch.optim.SGD(self.parameters(), lr=0.05, momentum=0.9)
            cycle = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.05, total_steps=20)
            return [opt], [{"scheduler": cycle, "interval": "step"}]

    finder, lrs = LRFindCallback(1e-4, 10, steps=40), Lrs()
    trainer(finder, lrs, max_steps=20).fit(NoAttr(), data())
    assert finder.result.lr != 0.05
    assert max(lrs.lrs) == pytest.approx(finder.result.lr, rel=1e-9)
    assert lrs.lrs[0] == pytest.approx(finder.result.lr / 25, rel=1e-9)


class Seen(SkipsSome):
    """Which batches gave a loss in the sweep (and in training)."""

    def __init__(self):
        super().__init__()
        self.losses_at = []

    def training_step(self, batch, batch_idx):
        out = super().training_step(batch, batch_idx)
        if out is not None:
            self.losses_at.append(batch_idx)
        return out


def test_the_sweep_passes_over_batches_that_training_step_skips():
    # this raised ValueError 'training_step returned None at batch 3 of the range test'
    model = Seen()
    finder = LRFindCallback(1e-4, 10, steps=30, stop_factor=float("inf"))
    trainer(finder, max_steps=1).fit(model, data())
    swept = model.losses_at[:-1]  # the last: training's first batch
    assert finder.result.steps_run == 30 and len(finder.result.raw_losses) == 30
    assert len(swept) == 30 and not [i for i in swept if i % 5 == 3]
    assert swept[:8] == [0, 1, 2, 4, 5, 6, 7, 9]  # across the loader's end too (16 batches)
    assert swept[12:15] == [15, 0, 1]


def test_a_plot_in_a_missing_folder_is_refused_before_the_sweep(tmp_path, monkeypatch):
    # it raised FileNotFoundError after the whole sweep; lrkit find --png's check, shared
    monkeypatch.chdir(tmp_path)
    model = Net()
    said = r"cannot write LRFindCallback plot 'missing/find.png': folder 'missing' does not exist"
    with pytest.raises(ValueError, match=said):
        trainer(LRFindCallback(1e-4, 10, steps=30, plot="missing/find.png")).fit(model, data())
    assert model.calls == 0


def test_an_accuracy_named_as_val_metric_is_not_read_as_a_rising_loss():
    # an accuracy given as val_metric was recorded as val/loss: rising from 0.83 to 0.98 it
    # read as a climbing validation loss and the doctor said 'overfitting'. A name that reads
    # as a score is higher-better (val_mode=None); val/loss is the module's own val_loss
    watch = LRWatchCallback(every=5, val_metric="val_acc")
    trainer(watch, max_steps=160, val_check_interval=8).fit(Validated(), data(), data(64, 1))
    accuracy, loss = watch.history.get("val/acc")[1], watch.history.get("val/loss")[1]
    assert watch.val_mode == "max" and len(accuracy) == len(loss) == 20
    assert accuracy[-1] > accuracy[0] and loss[-1] < loss[0]  # the model got better
    assert diagnose(watch.history).verdict != "overfitting"


def test_a_val_metric_the_module_never_logs_is_warned_about_naming_what_it_logs():
    watch = LRWatchCallback(every=5, val_metric="val_los")
    with pytest.warns(UserWarning, match=r"no metric 'val_los' .*logged: val_acc, val_loss"):
        trainer(watch, max_steps=16, val_check_interval=8).fit(Validated(), data(), data(64, 1))
