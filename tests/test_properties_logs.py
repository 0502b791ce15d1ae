"""Properties of the log readers over corrupted run folders: a corrupted file gives Signals or
a ValueError naming it, never another exception; steps are whole numbers in range; reading
takes bounded time; warnings are the readers' own LogWarning."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from log_strategies import TEMPLATES, corrupted_files, mutated_histories

from lrkit.train import History
from lrkit.watch import Signals, read_run
from lrkit.watch.reading import MAX_STEP, LogWarning

SECONDS = 5.0  # a small file read in more than this is a hang, not a slow disk

pytestmark = pytest.mark.filterwarnings("error")  # any warning but a LogWarning fails


def read_folder(files: dict[str, bytes]) -> Signals | ValueError:
    """Write ``files`` into a fresh folder and ``read_run`` it: Signals or the ValueError."""
    folder = Path(tempfile.mkdtemp(prefix="lrkit-prop-"))
    try:
        for name, data in files.items():
            (folder / name).write_bytes(data)
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LogWarning)
            try:
                got: Signals | ValueError = read_run(folder)
            except ValueError as e:
                got = e
        assert time.perf_counter() - t0 < SECONDS
        if isinstance(got, ValueError):
            assert str(folder) in str(got), str(got)  # the message names the file
        return got
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def steps_in_range(signals: Signals) -> None:
    for tag in signals.tags():
        steps, values = signals.get(tag)
        assert steps.dtype == np.int64 and values.dtype == np.float64
        assert ((steps >= 0) & (steps <= MAX_STEP)).all(), tag


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_every_template_reads_back(name):
    got = read_folder({name: TEMPLATES[name]})
    assert isinstance(got, Signals) and len(got) > 0


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(corrupted_files())
def test_a_corrupted_run_file_reads_or_is_a_value_error_naming_it(file):
    name, data = file
    got = read_folder({name: data})
    if isinstance(got, Signals):
        steps_in_range(got)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(corrupted_files(), min_size=2, max_size=4, unique_by=lambda f: f[0]))
def test_a_folder_of_several_corrupted_files_reads_or_is_a_value_error(files):
    got = read_folder(dict(files))
    if isinstance(got, Signals):
        steps_in_range(got)


@given(mutated_histories())
def test_a_mutated_history_loads_or_is_a_value_error(data):
    try:
        history = History.from_dict(data)
    except ValueError:
        return
    assert len(history.step) == len(history.loss) == len(history.lr_groups)
    assert all(0 <= row < len(history.step) for row in history.skipped)
    got = read_folder({"history.json": json.dumps(history.to_dict()).encode()})
    assert isinstance(got, Signals | ValueError)


@given(mutated_histories())
def test_a_mutated_history_file_reads_or_is_a_value_error_naming_it(data):
    got = read_folder({"history.json": json.dumps(data).encode()})
    if isinstance(got, Signals):
        steps_in_range(got)
