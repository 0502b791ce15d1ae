"""Shared test set-up: hypothesis profiles, and a fixture for tests of tiny models.

``default``: 100 examples per property, no deadline (2 shared cores make timings noisy).
``ci`` (chosen when ``CI=true``): the same, derandomized, so a CI run is reproducible.
``thorough``: 2,000 examples, for a long hunt: ``pytest --hypothesis-profile=thorough``.
"""

import os
import shutil
import tempfile

import pytest
import torch
from hypothesis import settings

settings.register_profile("default", max_examples=100, deadline=None)
settings.register_profile("ci", parent=settings.get_profile("default"), derandomize=True)
settings.register_profile("thorough", max_examples=2000, deadline=None)
settings.load_profile("ci" if os.environ.get("CI", "").lower() == "true" else "default")

_CACHE = tempfile.mkdtemp(prefix="lrkit-test-cache-")


def pytest_configure(config):
    """The whole session caches into a folder of its own (``LRKIT_CACHE``, inherited by the
    subprocesses tests start), never into the user's ``~/.cache``: the digits-transfer task
    pretrains its body there once per session."""
    os.environ["LRKIT_CACHE"] = _CACHE


def pytest_unconfigure(config):
    shutil.rmtree(_CACHE, ignore_errors=True)


@pytest.fixture
def one_thread():
    """Tiny models run fastest on one thread, far faster when the 2 cores are shared
    (``pytestmark = pytest.mark.usefixtures("one_thread")`` in a module)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


TESTS = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(autouse=True)
def _tests_importable(monkeypatch):
    """The tests' folder first on sys.path (``--task user_tasks:tiny`` imports from it), and
    sys.path as it was after each test (the CLI puts the current folder on it)."""
    import sys

    monkeypatch.setattr(sys, "path", [TESTS, *sys.path])


@pytest.fixture
def group_of_one(tmp_path):
    """An initialised gloo process group of world size 1 in this process, destroyed after."""
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{tmp_path / 'init'}", rank=0, world_size=1
    )
    try:
        yield
    finally:
        torch.distributed.destroy_process_group()


@pytest.fixture
def quiet_optuna():
    """Optuna's log at ERROR only while a test runs (its INFO lines would fill the output)."""
    import optuna

    before = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    yield
    optuna.logging.set_verbosity(before)
