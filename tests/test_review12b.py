"""Review of issue 12's mixed-precision and launch promises, tried the way a new user would
break them (one promise per test; a break is a strict xfail naming it)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from lrkit import Guard, Task, fit
from lrkit.cli import main
from lrkit.find import find_lr
from lrkit.train import History


def _double_task() -> Task:
    """A tiny float64 regression task (model and data in float64)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=g, dtype=torch.float64)
    y = x.sum(1, keepdim=True)
    batches = [(x[i : i + 16], y[i : i + 16]) for i in range(0, 64, 16)]
    return Task(
        name="double-reg",
        make_model=lambda: torch.nn.Linear(4, 1).double(),
        make_train_loader=lambda: batches,
        make_val_loader=lambda: batches[:1],
        make_optimizer=lambda params, lr: torch.optim.SGD(params, lr=lr),
        criterion=torch.nn.functional.mse_loss,
        epochs=1,
        lr=0.05,
    )


def _cli(capsys, *args: str) -> tuple[int, str]:
    """``lrkit ARGS`` in this process: its exit status and what it printed."""
    try:
        code = main(list(args))
    except SystemExit as e:
        code = e.code
    captured = capsys.readouterr()
    return code, captured.out + captured.err


# -- fit(autocast=, scaler=) --------------------------------------------------------------


@pytest.mark.parametrize("bad", ["FP16", "fp8", "float16", 16, True])
def test_fit_rejects_autocast_names_it_does_not_know(bad):
    with pytest.raises(ValueError, match="autocast must be None, 'bf16' or 'fp16'"):
        fit("digits-mlp", steps=2, autocast=bad, progress=False)


@pytest.mark.parametrize("autocast", [None, "bf16"])
def test_fit_rejects_a_scaler_without_fp16(autocast):
    with pytest.raises(ValueError, match="scaler= is for autocast='fp16'"):
        fit("digits-mlp", steps=2, autocast=autocast, scaler=torch.amp.GradScaler("cpu"),
            progress=False)  # fmt: skip


def test_fit_rejects_a_scaler_that_is_not_one():
    with pytest.raises(ValueError, match="has no scale"):
        fit("digits-mlp", steps=2, autocast="fp16", scaler=object(), progress=False)


@pytest.mark.parametrize("autocast", ["bf16", "fp16"])
def test_fit_autocast_trains_a_float64_model_without_error(autocast):
    history = fit(_double_task(), steps=4, autocast=autocast, progress=False)
    assert history.status == "completed" and all(math.isfinite(v) for v in history.loss)


def test_fit_fp16_with_a_disabled_scaler_steps_every_batch():
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    history = fit("digits-mlp", steps=6, autocast="fp16", scaler=scaler, progress=False)
    assert history.status == "completed" and history.overflows == 0
    assert history.step == list(range(6))


def test_readme_fit_fp16_example_holds_in_a_fresh_script():
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**24)
    history = fit("digits-mlp", lr=0.05, epochs=1, autocast="fp16", scaler=scaler, progress=False)
    assert history.status == "completed" and history.overflows > 0 and history.scale < 2.0**24
    assert history.step[-1] == history.steps - history.overflows - 1


def test_fp16_history_json_keeps_autocast_scale_and_overflows(tmp_path):
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**30)
    history = fit("digits-mlp", steps=30, autocast="fp16", scaler=scaler, progress=False,
                  out=tmp_path)  # fmt: skip
    saved = json.loads((tmp_path / "history.json").read_text())
    assert saved["autocast"] == "fp16" and saved["scale"] == history.scale
    back = History.from_json((tmp_path / "history.json").read_text())
    assert (back.autocast, back.scale, back.overflows) == ("fp16", history.scale, history.overflows)
    assert back.overflowed == history.overflowed and history.overflows > 0


def test_fit_fp16_nan_loss_is_divergence_not_overflow():
    history = fit("digits-mlp", lr=1e5, steps=40, autocast="fp16", progress=False)
    assert history.status == "diverged"
    assert not any(math.isnan(history.loss[r]) for r in history.overflowed)


# -- the doctor on an fp16 run with overflows --------------------------------------------


def test_doctor_names_the_overflows_of_an_fp16_run(capsys, tmp_path):
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**40)
    history = fit("digits-mlp", steps=40, autocast="fp16", scaler=scaler, progress=False,
                  out=tmp_path)  # fmt: skip
    assert history.overflows > 10
    code, output = _cli(capsys, "doctor", str(tmp_path))
    assert code == 0
    assert "steps 0-0" not in output and "overflow" in output


# -- find_lr(autocast=) on the CPU --------------------------------------------------------


def test_find_lr_fp16_on_the_cpu_suggests_a_finite_lr():
    result = find_lr("digits-mlp", autocast="fp16", steps=30, progress=False)
    assert result.lr is None or (math.isfinite(result.lr) and result.lr > 0)


def test_find_lr_rejects_an_unknown_autocast_name():
    with pytest.raises(ValueError, match="autocast"):
        find_lr("digits-mlp", autocast="FP16", steps=5, progress=False)


def test_find_lr_uses_a_scaler_given_without_fp16_for_a_step_fn_that_autocasts_itself():
    """Unlike fit (which autocasts itself, so a scaler without fp16 is a mistake there), the
    range test takes a scaler with autocast=None: a step_fn (or Lightning's precision plugin)
    may run the forward under fp16 itself."""
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    scaled = []
    scale = scaler.scale

    def counting(loss):
        scaled.append(1)
        return scale(loss)

    scaler.scale = counting
    find_lr("digits-mlp", scaler=scaler, steps=5, progress=False)
    assert len(scaled) == 5


# -- the Guard with a GradScaler in a plain loop (README) ---------------------------------


def test_readme_guard_with_a_scaler_example_holds_in_a_fresh_script():
    device = "cpu"
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(20, 64), torch.nn.ReLU(), torch.nn.Linear(64, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    scaler = torch.amp.GradScaler(device, init_scale=2.0**24)
    guard = Guard(every=10)
    for step in range(60):
        x = torch.randn(32, 20, device=device)
        with torch.autocast(device, dtype=torch.float16):
            loss = torch.nn.functional.mse_loss(model(x), x.sum(1, keepdim=True))
        if step == 40:
            loss = loss * float("nan")
        optimizer.zero_grad()
        scaler.scale(loss).backward()
        if guard.check(loss, model=model, optimizer=optimizer, scaler=scaler) == "ok":
            scaler.step(optimizer)
            scaler.update()
            guard.after_step()
    assert guard.overflows > 0 and guard.rollbacks == 0
    assert [e["action"] for e in guard.events if e["action"] != "snapshot"] == ["skip"]
    assert guard.step == 60 - guard.overflows - 1


# -- the CLI: --autocast, --timeout -------------------------------------------------------


def test_cli_autocast_is_case_sensitive_and_names_the_choices(capsys):
    code, output = _cli(capsys, "train", "--task", "digits-mlp", "--autocast", "FP16")
    assert code == 2 and "'bf16', 'fp16'" in output


def test_cli_autocast_fp16_with_lr_nan_is_one_line_error(capsys):
    code, output = _cli(capsys, "train", "--autocast", "fp16", "--lr", "nan")
    assert code == 2 and "got nan" in output


@pytest.mark.parametrize("value", ["0", "-1", "1e400", "inf", "nan"])
def test_cli_timeout_rejects_values_outside_its_range(capsys, value):
    code, output = _cli(capsys, "find", "--nproc", "2", "--timeout", value)
    assert code == 2 and "--timeout must be a number in (0, 10000000]" in output


def test_cli_train_fp16_with_guard_prints_the_scaler_line(capsys, tmp_path):
    code, output = _cli(capsys, "train", "--task", "digits-mlp", "--autocast", "fp16", "--guard", "--epochs",
                  "1", "--out", str(tmp_path))  # fmt: skip
    assert code == 0, output
    assert "mixed precision: fp16, GradScaler scale" in output
    assert json.loads((tmp_path / "history.json").read_text())["autocast"] == "fp16"


# -- a stray RANK / LOCAL_RANK in the shell, no process group ------------------------------


@pytest.fixture
def stray_rank(monkeypatch):
    """A shell that exports RANK=1 (left over, or set for something else): no launcher, no group."""
    for name in ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "WORLD_SIZE",
                 "TORCHELASTIC_RUN_ID", "LOCAL_WORLD_SIZE"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RANK", "1")


def test_fit_out_outside_a_group_writes_its_history_despite_a_stray_rank(stray_rank, tmp_path):
    history = fit("digits-mlp", steps=3, progress=False, out=tmp_path)
    assert history.status == "completed"
    assert json.loads((tmp_path / "history.json").read_text())["status"] == "completed"


def test_cli_train_outside_a_group_reports_and_writes_despite_a_stray_rank(stray_rank, capsys,
                                                                            tmp_path):  # fmt: skip
    code, output = _cli(capsys, "train", "--task", "digits-mlp", "--epochs", "1", "--out",
                        str(tmp_path))  # fmt: skip
    assert code == 0 and "history written to" in output
    assert (tmp_path / "history.json").is_file()


def test_cli_find_outside_a_group_reports_despite_a_stray_rank(stray_rank, capsys):
    code, output = _cli(capsys, "find", "--task", "digits-mlp", "--steps", "30", "--json", "-")
    assert code in (0, 3) and '"lr"' in output


def test_cli_train_logdir_outside_a_group_writes_signals_despite_a_stray_rank(stray_rank, capsys,
                                                                               tmp_path):  # fmt: skip
    code, _ = _cli(capsys, "train", "--task", "digits-mlp", "--epochs", "1", "--out",
                   str(tmp_path / "out"), "--logdir", str(tmp_path / "logs"))  # fmt: skip
    assert code == 0 and (tmp_path / "logs" / "signals.csv").is_file()


# -- Lightning: LRFindCallback, LRWatchCallback(guard=, val_mode=) ---------------------------

pl = pytest.importorskip("lightning.pytorch")


class _Net(pl.LightningModule):
    """SGD + OneCycleLR(max_lr=self.lr) from configure_optimizers; training_step returns None
    for every ``none_every``-th batch (Lightning's way to skip one) when it is > 0."""

    def __init__(self, lr: float = 0.01, none_every: int = 0):
        super().__init__()
        self.lr, self.none_every = lr, none_every
        self.net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(),
                                       torch.nn.Linear(16, 2))  # fmt: skip

    def training_step(self, batch, batch_idx):
        if self.none_every and batch_idx % self.none_every == 0:
            return None
        x, y = batch
        return torch.nn.functional.cross_entropy(self.net(x), y)

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9)
        one = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.lr, total_steps=100)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": one, "interval": "step"}}


def _data():
    torch.manual_seed(0)
    x = torch.randn(128, 4)
    dataset = torch.utils.data.TensorDataset(x, (x[:, 0] > x[:, 1]).long())
    return torch.utils.data.DataLoader(dataset, batch_size=16)


def _trainer(*callbacks, steps: int = 12):
    return pl.Trainer(max_steps=steps, accelerator="cpu", logger=False, callbacks=list(callbacks),
                      enable_progress_bar=False, enable_checkpointing=False,
                      enable_model_summary=False)  # fmt: skip


@pytest.mark.filterwarnings("ignore")
def test_lrfind_callback_rebuilds_onecycle_at_the_found_rate():
    from lrkit.find import LRFindCallback

    finder, model = LRFindCallback(start=1e-4, end=10, steps=30), _Net()
    trainer = _trainer(finder)
    trainer.fit(model, _data())
    assert finder.result.lr is not None and model.lr == finder.result.lr != 0.01
    assert trainer.lr_scheduler_configs[0].scheduler.optimizer is trainer.optimizers[0]
    assert trainer.optimizers[0].param_groups[0]["max_lr"] == pytest.approx(model.lr)


@pytest.mark.filterwarnings("ignore")
def test_lrfind_callback_refuses_an_unwritable_plot_before_the_sweep(tmp_path):
    from lrkit.errors import UserError
    from lrkit.find import LRFindCallback

    finder = LRFindCallback(start=1e-4, end=10, steps=30, plot=tmp_path / "no" / "find.png")
    with pytest.raises(UserError, match="does not exist"):
        _trainer(finder).fit(_Net(), _data())
    assert finder.result is None


@pytest.mark.filterwarnings("ignore")
def test_lrfind_callback_refuses_a_step_that_returns_none_for_every_batch():
    from lrkit.find import LRFindCallback

    with pytest.raises(ValueError, match="training_step returned None for every batch"):
        _trainer(LRFindCallback(steps=10)).fit(_Net(none_every=1), _data())


@pytest.mark.filterwarnings("ignore")
def test_guarded_lightning_watch_passes_over_batches_whose_training_step_returns_none():
    """Regression: LRWatchCallback(guard=) raised 'saw an optimizer step without a backward
    pass' on the first batch Lightning skipped because training_step returned None."""
    from lrkit.watch import LRWatchCallback

    guarded, plain = LRWatchCallback(every=1, guard=Guard()), LRWatchCallback(every=1)
    _trainer(guarded).fit(_Net(none_every=3), _data())
    _trainer(plain).fit(_Net(none_every=3), _data())
    steps = guarded.history.get("train/loss")[0]
    assert len(steps) == len(plain.history.get("train/loss")[0]) > 0
    assert guarded.guard.events == [] or all(
        e["action"] == "snapshot" for e in guarded.guard.events
    )


@pytest.mark.parametrize("bad", ["MAX", "", 1, "best"])
def test_lightning_watch_refuses_a_val_mode_it_does_not_know(bad):
    from lrkit.watch import LRWatchCallback

    with pytest.raises(ValueError, match="val_mode must be 'min'"):
        LRWatchCallback(val_metric="val_acc", val_mode=bad)


# -- --timeout under torchrun ---------------------------------------------------------------


def test_timeout_under_torchrun_reaches_the_group(monkeypatch, capsys):
    from lrkit import dist

    for name, value in {"RANK": "0", "WORLD_SIZE": "1", "TORCHELASTIC_RUN_ID": "review",
                        "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29999"}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("LRKIT_DIST_TIMEOUT", raising=False)
    asked = []
    monkeypatch.setattr(dist, "init", lambda backend=None, timeout=None: asked.append(timeout))
    code, _ = _cli(capsys, "find", "--task", "digits-mlp", "--steps", "5", "--timeout", "7", "-q")
    assert asked == [7.0]


# -- benchmarks/amp_cuda.py -----------------------------------------------------------------


@pytest.mark.parametrize("extra", [["--steps", "3"], ["--repeats", "0"]])
def test_amp_benchmark_refuses_too_few_steps_or_rounds_in_one_line(extra, tmp_path):
    """Regression: --steps 3 ended in find_lr's traceback, --repeats 0 in min() of nothing
    after the warm-up blocks had run."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, str(root / "benchmarks" / "amp_cuda.py"), "--device", "cpu", *extra,
         "--out", str(tmp_path / "amp.json")],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(root / "src")},
    )  # fmt: skip
    assert done.returncode == 2 and "error: --steps must be >= 5 and --repeats >= 1" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "amp.json").exists()
