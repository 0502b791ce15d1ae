"""Sinks and logs: what a run writes is what read_run (and TensorBoard's own reader) reads back."""

from __future__ import annotations

import csv
import json
import math
import os

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator
from torch import nn

from lrkit.train import fit
from lrkit.watch import CSVSink, JSONLSink, Signals, TensorBoardSink, Watch, read_run
from lrkit.watch.logs import encode_value, jsonl_line, read_csv, read_jsonl, read_tensorboard
from lrkit.watch.sinks import LightningLoggerSink

RECORDS = [
    (0, "lr-SGD", 0.1),
    (0, "train/loss", 2.5),
    (1, "lr-SGD", 0.05),
    (1, "train/loss", math.nan),
    (2, "train/grad_norm", math.inf),
    (2, "train/update_ratio/0.weight", 1e-3),
]


def same(a: Signals, b: Signals) -> None:
    assert a.tags() == b.tags()
    for tag in a.tags():
        assert a.get(tag)[0].tolist() == b.get(tag)[0].tolist(), tag
        np.testing.assert_array_equal(a.get(tag)[1], b.get(tag)[1])


@pytest.fixture(scope="module")
def watched_run(tmp_path_factory):
    """One short fit with every sink, and the Watch's own signals."""
    folder = tmp_path_factory.mktemp("run")
    watch = Watch(sinks=[CSVSink(folder), JSONLSink(folder), TensorBoardSink(folder)])
    history = fit("digits-mlp", epochs=1, callbacks=[watch], progress=False)
    return folder, watch.history, history


def test_tensorboard_event_files_hold_the_tags_and_values_read_by_tensorboard(watched_run):
    folder, signals, history = watched_run
    files = list(folder.glob("events.out.tfevents.*"))
    assert len(files) == 1
    acc = EventAccumulator(str(files[0]), size_guidance={SCALARS: 0})
    acc.Reload()
    tags = acc.Tags()["scalars"]
    for tag in (
        "lr-SGD",
        "lr-SGD-momentum",
        "train/loss",
        "train/loss_smooth",
        "train/grad_norm",
        "train/nonfinite",
        "train/update_ratio/0.weight",
        "train/grad_norm/2.bias",
        "val/loss",
        "val/accuracy",
    ):
        assert tag in tags, tag
    events = acc.Scalars("train/loss")
    assert [e.step for e in events] == history.step
    np.testing.assert_allclose([e.value for e in events], history.loss, rtol=1e-6)
    lrs = acc.Scalars("lr-SGD")
    np.testing.assert_allclose([e.value for e in lrs], history.lrs, rtol=1e-6)
    assert [e.step for e in acc.Scalars("val/accuracy")] == [history.steps]


def test_read_run_reads_every_format_of_the_same_run_alike(watched_run):
    folder, signals, _ = watched_run
    same(read_jsonl(folder / "signals.jsonl"), signals)
    same(read_csv(folder / "signals.csv"), signals)
    same(read_run(folder), signals)
    from_tb = read_tensorboard(folder)
    assert from_tb.tags() == signals.tags()
    np.testing.assert_allclose(
        from_tb.get("train/loss")[1], signals.get("train/loss")[1], rtol=1e-6
    )


@pytest.mark.parametrize("sink, reader", [(CSVSink, read_csv), (JSONLSink, read_jsonl)])
def test_file_sinks_round_trip_records_with_non_finite_values(tmp_path, sink, reader):
    s = sink(tmp_path / "x")
    s.write(RECORDS)
    s.close()
    (path,) = list((tmp_path / "x").iterdir())
    same(reader(path), Signals.from_records(RECORDS))


def test_jsonl_lines_are_strict_json(tmp_path):
    s = JSONLSink(tmp_path / "log.jsonl")
    s.write(RECORDS)
    s.close()
    lines = (tmp_path / "log.jsonl").read_text().splitlines()
    objects = [
        json.loads(line, parse_constant=lambda c: pytest.fail(f"bare {c}")) for line in lines
    ]
    assert objects[3] == {"step": 1, "tag": "train/loss", "value": "nan"}


@given(
    step=st.integers(0, 10**12),
    tag=st.text(min_size=1, max_size=30),
    value=st.floats(allow_nan=True, allow_infinity=True) | st.integers(-(10**6), 10**6),
)
def test_a_jsonl_line_is_what_json_dumps_writes(step, tag, value):
    expected = json.dumps({"step": step, "tag": tag, "value": encode_value(float(value))})
    assert jsonl_line((step, tag, value)) == expected + "\n"


def test_csv_has_the_step_tag_value_columns(tmp_path):
    s = CSVSink(tmp_path)
    s.write(RECORDS[:2])
    s.close()
    rows = list(csv.reader(open(tmp_path / "signals.csv")))
    assert rows == [["step", "tag", "value"], ["0", "lr-SGD", "0.1"], ["0", "train/loss", "2.5"]]


def test_tensorboard_sink_round_trips_through_read_run(tmp_path):
    s = TensorBoardSink(tmp_path)
    s.write([r for r in RECORDS if math.isfinite(r[2])])
    s.close()
    got = read_run(tmp_path)
    assert got.get("lr-SGD")[1].tolist() == pytest.approx([0.1, 0.05])
    assert got.get("train/update_ratio/0.weight")[0].tolist() == [2]


def test_read_run_of_a_fit_history_folder(tmp_path):
    history = fit("digits-mlp", epochs=1, progress=False, out=tmp_path)
    got = read_run(tmp_path)
    assert got.get("train/loss")[1].tolist() == pytest.approx(history.loss)
    assert got.lr()[1].tolist() == pytest.approx(history.lrs)
    assert got.get("val/accuracy")[1].tolist() == pytest.approx(history.metrics)


def test_read_run_of_a_lightning_style_wide_csv(tmp_path):
    (tmp_path / "metrics.csv").write_text(
        "epoch,lr-SGD,step,train/loss,val/loss\n0,0.1,0,2.0,\n0,0.1,1,1.5,\n0,,2,,1.2\n"
    )
    got = read_run(tmp_path)
    assert got.tags() == ["lr-SGD", "train/loss", "val/loss"]
    assert got.get("train/loss")[0].tolist() == [0, 1]
    assert got.get("val/loss")[1].tolist() == [1.2]


def test_read_run_of_a_folder_without_logs_names_it_and_what_was_expected(tmp_path):
    (tmp_path / "notes.txt").write_text("nothing here")
    with pytest.raises(ValueError) as err:
        read_run(tmp_path)
    message = str(err.value)
    assert str(tmp_path) in message
    for expected in ("signals.jsonl", "signals.csv", "events.out.tfevents", "history.json"):
        assert expected in message


def test_read_run_of_a_missing_folder(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        read_run(tmp_path / "nope")


def test_a_broken_jsonl_line_is_named(tmp_path):
    (tmp_path / "signals.jsonl").write_text('{"step": 0, "tag": "a", "value": 1}\n{"step": 1}\n')
    with pytest.raises(ValueError, match="line 2"):
        read_run(tmp_path)


@pytest.mark.parametrize("sink", [CSVSink, JSONLSink, TensorBoardSink])
def test_a_logdir_that_cannot_be_written_is_refused_at_once(tmp_path, sink):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ValueError) as err:
        sink(blocker / "logs")
    assert str(blocker / "logs") in str(err.value) or str(blocker) in str(err.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_a_read_only_logdir_is_refused(tmp_path):
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(ValueError, match="permission denied"):
            CSVSink(tmp_path / "logs")
    finally:
        tmp_path.chmod(0o700)


def test_lightning_logger_sink_logs_one_dict_per_step():
    class Logger:
        def __init__(self):
            self.calls = []

        def log_metrics(self, metrics, step):
            self.calls.append((step, metrics))

    logger = Logger()
    LightningLoggerSink(logger).write(RECORDS[:4])
    assert logger.calls == [
        (0, {"lr-SGD": 0.1, "train/loss": 2.5}),
        (1, {"lr-SGD": 0.05, "train/loss": logger.calls[1][1]["train/loss"]}),
    ]
    with pytest.raises(TypeError, match="log_metrics"):
        LightningLoggerSink(object())


def test_watch_writes_its_sinks_in_batches_and_on_close(tmp_path):
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with Watch(model, opt, sinks=[JSONLSink(tmp_path)], flush_every=4) as watch:
        for _ in range(6):
            opt.zero_grad()
            loss = model(torch.randn(8, 3)).pow(2).mean()
            loss.backward()
            with watch.step(loss):
                opt.step()
    same(read_run(tmp_path), watch.history)
    assert read_run(tmp_path).get("train/loss")[0].tolist() == list(range(6))


def test_cli_train_logdir_writes_signals_that_read_run_reads(tmp_path, capsys):
    from lrkit.cli import main

    logdir = tmp_path / "logs"
    status = main(
        ["train", "--epochs", "1", "--out", str(tmp_path / "out"), "--logdir", str(logdir), "-q"]
    )
    out = capsys.readouterr().out
    assert status == 0 and f"signals written to {logdir}" in out
    assert {p.name for p in logdir.iterdir()} >= {"signals.csv", "signals.jsonl"}
    assert list(logdir.glob("events.out.tfevents.*"))
    assert read_run(logdir).get("train/loss")[0].tolist() == list(range(23))


def test_cli_train_refuses_an_unwritable_logdir_before_training(tmp_path, capsys):
    from lrkit.cli import main

    blocker = tmp_path / "file"
    blocker.write_text("")
    status = main(
        [
            "train",
            "--epochs",
            "1",
            "--out",
            str(tmp_path / "out"),
            "--logdir",
            str(blocker / "logs"),
        ]
    )
    err = capsys.readouterr().err
    assert status == 2
    assert (
        err.strip()
        == f"lrkit: error: cannot create --logdir folder '{blocker / 'logs'}': Not a directory"
    )
    assert not (tmp_path / "out").exists()  # nothing trained, nothing written


# -- under torchrun or Lightning's DDP: a sink built before the group starts -------------------
@pytest.mark.parametrize(
    "env",
    [{"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"},  # torchrun, before init_process_group
     {"LOCAL_RANK": "1", "WORLD_SIZE": "2"}],  # a rank Lightning's ddp launcher started
    ids=["torchrun", "lightning"],
)  # fmt: skip
@pytest.mark.parametrize("sink", [CSVSink, JSONLSink, TensorBoardSink])
def test_a_sink_built_on_another_rank_before_the_group_opens_no_file(tmp_path, monkeypatch, env,
                                                                     sink):  # fmt: skip
    for name in ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "signals.csv").write_text("rank 0's\n")
    (tmp_path / "logs" / "signals.jsonl").write_text("rank 0's\n")
    made = sink(tmp_path / "logs")
    made.write([(0, "train/loss", 1.0)])
    made.close()
    assert sorted(p.name for p in (tmp_path / "logs").iterdir()) == ["signals.csv",
                                                                     "signals.jsonl"]  # fmt: skip
    assert (tmp_path / "logs" / "signals.csv").read_text() == "rank 0's\n"  # not truncated
    assert (tmp_path / "logs" / "signals.jsonl").read_text() == "rank 0's\n"
    sink(tmp_path / "elsewhere").close()
    assert not (tmp_path / "elsewhere").exists()  # no folder made either


def test_a_sink_on_the_launchers_rank_0_before_the_group_writes(tmp_path, monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("NODE_RANK", "0")
    sink = CSVSink(tmp_path)
    sink.write([(0, "train/loss", 1.0)])
    sink.close()
    assert read_run(tmp_path).get("train/loss")[1].tolist() == [1.0]


def test_a_sink_under_a_rank_that_is_no_number_is_refused_naming_it(tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "abc")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match="environment variable RANK .* got RANK='abc'"):
        CSVSink(tmp_path / "logs")
    assert not (tmp_path / "logs").exists()
