"""Logs lose nothing but a bounded window: a run killed with SIGKILL leaves every format
readable, each holding all but the last few steps; the sinks flush on their own cadence."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator

import lrkit
from lrkit.watch import CSVSink, JSONLSink, TensorBoardSink, Watch
from lrkit.watch.logs import read_csv, read_jsonl
from lrkit.watch.sinks import FLUSH_STEPS, Cadence

SRC = Path(lrkit.__file__).resolve().parents[1]


def train_loss_steps(reader, path: Path) -> list[int]:
    """The train/loss steps in ``path`` (a cut last line is dropped with a warning)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return reader(path).get("train/loss")[0].tolist()


def steps_in_tensorboard(folder: Path) -> list[int]:
    """The train/loss steps as TensorBoard's own reader sees them."""
    (file,) = folder.glob("events.out.tfevents.*")
    acc = EventAccumulator(str(file), size_guidance={SCALARS: 0})
    acc.Reload()
    if "train/loss" not in acc.Tags()["scalars"]:
        return []
    return [e.step for e in acc.Scalars("train/loss")]


def jsonl_steps_so_far(path: Path) -> int:
    """The number of train/loss records in the JSONL file now (0 while there is none)."""
    return path.read_bytes().count(b'"train/loss"') if path.exists() else 0


@pytest.fixture(scope="module")
def killed_run(tmp_path_factory):
    """``lrkit train --logdir`` in its own process, SIGKILLed while it trains."""
    logdir = tmp_path_factory.mktemp("killed") / "logs"
    out = logdir.parent / "out"
    code = "import sys; from lrkit.cli import main; sys.exit(main(sys.argv[1:]))"
    argv = ["train", "--task", "digits-mlp", "--epochs", "100000", "-q"]
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *argv, "--logdir", str(logdir), "--out", str(out)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while jsonl_steps_so_far(logdir / "signals.jsonl") < 5 * FLUSH_STEPS:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "no logs after 120 s"
            time.sleep(0.05)
        time.sleep(0.3)  # kill it at some point between two flushes
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    return logdir


def test_every_format_of_a_killed_run_holds_all_but_the_last_window(killed_run):
    steps = {
        "csv": train_loss_steps(read_csv, killed_run / "signals.csv"),
        "jsonl": train_loss_steps(read_jsonl, killed_run / "signals.jsonl"),
        "tensorboard": steps_in_tensorboard(killed_run),
    }
    done = max(s[-1] for s in steps.values() if s) + 1  # steps done: at least this many
    assert done >= 5 * FLUSH_STEPS
    for kind, got in steps.items():
        # a Watch hands its records over every flush_every (64) steps and each sink flushes
        # at least every FLUSH_STEPS steps: one window may be lost, no more
        assert len(got) >= done - FLUSH_STEPS - 64, (kind, len(got), done)
        assert got == list(range(len(got))), kind  # no gap and no repeat before the cut


def _watch_run(sinks, steps: int) -> Watch:
    """A Watch over a tiny model, ``steps`` steps, never flushed or closed by hand."""
    import torch

    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    watch = Watch(model, opt, sinks=sinks, flush_every=8)
    for _ in range(steps):
        opt.zero_grad()
        loss = model(torch.randn(4, 3)).pow(2).mean()
        loss.backward()
        watch.after_backward(loss)
        opt.step()
        watch.after_step()
    return watch


@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_a_file_sink_is_on_disk_after_its_flush_steps_without_flush_or_close(tmp_path, kind):
    sink = (CSVSink if kind == "csv" else JSONLSink)(tmp_path, flush_steps=16, flush_secs=3600)
    watch = _watch_run([sink], steps=40)  # 5 batches of 8: flushed at 16 and 32
    reader = read_csv if kind == "csv" else read_jsonl
    on_disk = reader(sink.path).get("train/loss")[0].tolist()
    assert on_disk == list(range(32))
    watch.close()
    assert reader(sink.path).get("train/loss")[0].tolist() == list(range(40))


def test_tensorboard_sink_is_on_disk_after_its_flush_steps_without_flush_or_close(tmp_path):
    sink = TensorBoardSink(tmp_path, flush_steps=16, flush_secs=3600)
    watch = _watch_run([sink], steps=40)  # at most 16 steps wait for the writer's thread
    on_disk = steps_in_tensorboard(tmp_path)
    assert len(on_disk) >= 40 - 16 and on_disk == list(range(len(on_disk)))
    watch.close()
    assert steps_in_tensorboard(tmp_path) == list(range(40))


def test_a_file_sink_flushes_after_flush_secs_even_within_its_steps(tmp_path):
    sink = JSONLSink(tmp_path, flush_steps=10**6, flush_secs=0.05)
    sink.write([(0, "train/loss", 1.0)])  # the first write after construction: not yet due
    time.sleep(0.1)
    sink.write([(1, "train/loss", 0.5)])
    assert read_jsonl(sink.path).get("train/loss")[0].tolist() == [0, 1]
    sink.close()


def test_cadence_counts_distinct_steps_not_records():
    cadence = Cadence(steps=3, secs=3600)
    assert not cadence.due([(0, "a", 1.0), (0, "b", 2.0), (1, "a", 1.0), (1, "b", 1.0)])
    assert cadence.due([(2, "a", 1.0)])
    assert not cadence.due([(3, "a", 1.0)])  # counting restarted


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"flush_steps": 0}, "flush_steps must be a whole number >= 1, got 0"),
        ({"flush_steps": True}, "flush_steps must be a whole number >= 1, got True"),
        ({"flush_secs": -1.0}, "flush_secs must be a finite number >= 0, got -1.0"),
        ({"flush_secs": float("nan")}, "flush_secs must be a finite number >= 0, got nan"),
    ],
)
def test_a_bad_flush_cadence_is_refused_naming_it(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        CSVSink(tmp_path, **kwargs)


def test_a_lightning_logger_is_saved_on_the_sinks_cadence():
    from lrkit.watch import LightningLoggerSink

    class Logger:
        saves, logged = 0, 0

        def log_metrics(self, metrics, step):
            self.logged += 1

        def save(self):
            self.saves += 1

    logger = Logger()
    sink = LightningLoggerSink(logger, flush_steps=10, flush_secs=3600)
    for step in range(35):
        sink.write([(step, "train/loss", 1.0)])
    assert logger.logged == 35 and logger.saves == 3  # after steps 9, 19 and 29


# -- a killed run's --out folder, and a slow run's signals -----------------------------------
TESTS = Path(__file__).resolve().parent


def start_paced_run(folder: Path, pause: float, *args: str) -> tuple[subprocess.Popen, Path]:
    """``lrkit train --task user_tasks:paced`` in its own process (each step sleeps ``pause``
    seconds and appends its start time to the returned progress file)."""
    progress = folder / "progress"
    code = "import sys; from lrkit.cli import main; sys.exit(main(sys.argv[1:]))"
    argv = ["train", "--task", "user_tasks:paced", "--epochs", "100000", "-q", *args]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), str(TESTS)]),
        "OMP_NUM_THREADS": "1",
        "LRKIT_TEST_SLEEP": repr(pause),
        "LRKIT_TEST_PROGRESS": str(progress),
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *argv],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    return proc, progress


def step_times(progress: Path) -> list[float]:
    """When each step began (``time.monotonic()`` of the run, the same clock as ours)."""
    if not progress.exists():
        return []
    lines = progress.read_text().splitlines()
    return [float(t) for t in lines if t.endswith(tuple("0123456789"))]  # not a cut last line


def kill_when(proc: subprocess.Popen, progress: Path, ready, limit: float = 60) -> float:
    """SIGKILL ``proc`` once ``ready(step_times)`` holds; the time of the kill."""
    try:
        deadline = time.monotonic() + limit
        while not ready(step_times(progress)):
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, f"not ready after {limit} s"
            time.sleep(0.02)
    finally:
        killed = time.monotonic()
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    return killed


def test_a_killed_run_leaves_a_whole_partial_history_in_its_out_folder(tmp_path):
    from lrkit.train import History
    from lrkit.train.loop import SAVE_SECS

    out = tmp_path / "out"
    proc, progress = start_paced_run(
        tmp_path, 0.002, "--out", str(out), "--logdir", str(out / "signals")
    )
    # kill it some way into its fourth save window, while it trains
    killed = kill_when(proc, progress, lambda t: t and t[-1] - t[0] > 3.3 * SAVE_SECS)
    begun = step_times(progress)
    history = History.load(out)  # a whole file: it parses
    assert history.status == "running" and "partial" in history.reason
    # it holds every step begun before the last save window (plus slack for a busy machine)
    window = SAVE_SECS + 1.5
    due = sum(t < killed - window for t in begun)
    assert due > 0 and history.steps >= due, (history.steps, due, len(begun))
    assert history.step == list(range(history.steps))
    # steps.csv is whole too (renamed just before history.json: it may be one save ahead)
    lines = (out / "steps.csv").read_text().splitlines()
    assert lines[0] == "step,epoch,loss,lr"
    rows = [line.split(",") for line in lines[1:]]
    assert len(rows) >= history.steps and all(len(r) == 4 for r in rows)
    assert [int(r[0]) for r in rows] == list(range(len(rows)))
    # whoever reads it back (the doctor) is told the run is partial
    from lrkit.watch.reading import LogWarning
    from lrkit.watch.runs import read_file

    with pytest.warns(LogWarning, match="saved while the run was still training"):
        read_file(out / "history.json")


def test_a_slow_run_killed_within_its_first_64_steps_has_its_signals_on_disk(tmp_path):
    from lrkit.watch.sinks import FLUSH_SECS

    pause = 0.05  # at most 20 steps a second: 3 s is fewer steps than flush_every (64)
    proc, progress = start_paced_run(
        tmp_path, pause, "--out", str(tmp_path / "out"), "--logdir", str(tmp_path / "logs")
    )
    killed = kill_when(proc, progress, lambda t: t and t[-1] - t[0] > 3.0)
    begun = step_times(progress)
    assert len(begun) < 64
    logs = tmp_path / "logs"
    steps = {
        "csv": train_loss_steps(read_csv, logs / "signals.csv"),
        "jsonl": train_loss_steps(read_jsonl, logs / "signals.jsonl"),
        "tensorboard": steps_in_tensorboard(logs),
    }
    # the Watch hands its records over every 2 s (at the end of a step) and the file sinks
    # flush at that handover; TensorBoard's writer thread flushes up to 2 s after that
    step = max(b - a for a, b in zip(begun, begun[1:]))
    window = FLUSH_SECS + 2 * step + 0.5
    for kind, got in steps.items():
        lost_after = window + (FLUSH_SECS if kind == "tensorboard" else 0.0)
        due = sum(t < killed - lost_after for t in begun)
        assert len(got) >= due, (kind, len(got), due, len(begun))
        assert got == list(range(len(got))), kind
    assert len(steps["csv"]) > 0 and len(steps["jsonl"]) > 0
