"""``lrkit find|pick|train --nproc N``: the command starts N ranks of itself through torch's
elastic launch (gloo on the CPU) and reports as one process, each rank sweeping or training on
its shard of the task's data; real processes, bounded in time."""

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch.distributed

import lrkit
from lrkit import dist
from lrkit.cli import launch
from lrkit.errors import UserError
from lrkit.find import find_lr

sys.path.insert(0, str(Path(__file__).parent))
from cli_run import call  # noqa: E402

TIMEOUT = 180  # seconds for the launcher to start two ranks (each imports torch) and finish

pytestmark = pytest.mark.skipif(
    not torch.distributed.is_available(), reason="torch.distributed is not in this build"
)

BAD_TASKS = textwrap.dedent(
    """
    import os, signal
    from lrkit.errors import UserError
    from lrkit.tasks import get_task

    def broken():
        if os.environ.get("RANK") == "1":
            raise UserError("rank one cannot build its task")
        return get_task("wine-mlp")

    def zero():
        if os.environ.get("RANK") == "0":
            raise UserError("rank zero cannot build its task")
        return get_task("wine-mlp")

    def killed():
        if os.environ.get("RANK") == "1":
            os.kill(os.getpid(), signal.SIGKILL)
        return get_task("wine-mlp")
    """
)


RECORDED = textwrap.dedent(
    """
    import json, os
    from pathlib import Path
    import torch
    from torch import nn
    from lrkit.tasks import Task, tensor_loader

    _gen = torch.Generator().manual_seed(0)
    X = torch.randn(64, 4, generator=_gen)
    Y = (X[:, 0] - X[:, 1] > 0).long()

    def recorded(batch_size=8):
        \"""64 points in order, batch_size a batch; under a launcher each training step appends
        its batch's first feature to seen-RANK.jsonl next to this file.\"""
        log = Path(__file__).with_name(f"seen-{os.environ.get('RANK')}.jsonl")

        def step_fn(model, batch):
            if model.training and "RANK" in os.environ:
                with open(log, "a") as f:
                    f.write(json.dumps(batch[0][:, 0].tolist()) + "\\n")
            return nn.functional.cross_entropy(model(batch[0]), batch[1])

        return Task(
            name="recorded", make_model=lambda: nn.Linear(4, 2), step_fn=step_fn, lr=0.1,
            make_train_loader=lambda: tensor_loader(X, Y, batch_size=batch_size),
            make_val_loader=lambda: tensor_loader(X, Y, batch_size=64), threads=1,
        )
    """
)


MAIN = [sys.executable, "-c", "import sys; from lrkit.cli import main; sys.exit(main())"]


def lrkit_cmd(cwd: Path, *args: str, command: list[str] = MAIN) -> subprocess.CompletedProcess:
    """``lrkit ARGS`` (``command ARGS``) in a new process (and session) in ``cwd``, killed with
    its ranks when it runs past TIMEOUT."""
    src = str(Path(lrkit.__file__).parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    env.update(OMP_NUM_THREADS="1")
    proc = subprocess.Popen(
        [*command, *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True,
    )  # fmt: skip
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.communicate()
        pytest.fail(f"lrkit {' '.join(args)} ran past {TIMEOUT} s")
    return subprocess.CompletedProcess(args, proc.returncode, out, err)


@pytest.fixture(scope="module")
def found(tmp_path_factory):
    """``lrkit find --task recorded:recorded --nproc 2`` (batches of 8 a rank) in a folder."""
    folder = tmp_path_factory.mktemp("nproc-find")
    (folder / "recorded.py").write_text(RECORDED)
    done = lrkit_cmd(folder, "find", "--task", "recorded:recorded", "--steps", "20", "--nproc",
                     "2", "--json", "find.json")  # fmt: skip
    return folder, done


def _recorded_module(folder: Path):
    spec = importlib.util.spec_from_file_location("recorded_here", folder / "recorded.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_find_on_two_ranks_prints_its_table_once_and_writes_the_json(found):
    folder, done = found
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("lrkit find: recorded") == 1
    assert done.stdout.count("JSON written to find.json") == 1
    assert json.loads((folder / "find.json").read_text())["steps_run"] > 0


def test_find_on_two_ranks_shows_no_launcher_logs(found):
    _, done = found
    assert "Traceback" not in done.stderr and "torch.distributed" not in done.stderr


def test_find_on_two_ranks_sweeps_each_rank_its_shard_of_every_global_batch(found):
    folder, done = found
    assert done.returncode == 0, done.stderr
    seen = [[json.loads(line) for line in (folder / f"seen-{r}.jsonl").read_text().splitlines()]
            for r in range(2)]  # fmt: skip
    x = _recorded_module(folder).X[:, 0].tolist()
    assert len(seen[0]) == len(seen[1]) >= 20
    for k, (mine, theirs) in enumerate(zip(*seen)):
        assert len(mine) == len(theirs) == 8 and not set(mine) & set(theirs)
        at = 16 * (k % 4)  # global batch k: 16 examples in order, 4 an epoch
        assert sorted(mine + theirs) == sorted(x[at : at + 16])


def test_find_on_two_ranks_records_one_process_s_curve_on_the_global_batches(found):
    folder, done = found
    assert done.returncode == 0, done.stderr
    got = json.loads((folder / "find.json").read_text())
    alone = find_lr(_recorded_module(folder).recorded(16), steps=20, progress=False)
    assert got["raw_losses"] == pytest.approx(alone.raw_losses.tolist(), rel=1e-5)
    assert got["lrs"] == pytest.approx(alone.lrs.tolist(), rel=1e-12)


def test_train_on_two_ranks_trains_on_half_the_batches_and_writes_once(tmp_path):
    done = lrkit_cmd(tmp_path, "train", "--task", "wine-mlp", "--epochs", "1", "--nproc", "2",
                     "--out", "D", "--quiet")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"history written to {Path('D') / 'history.json'}"]
    history = json.loads((tmp_path / "D" / "history.json").read_text())
    single = lrkit.tasks.get_task("wine-mlp").build_loaders(0)[0]
    assert history["steps_per_epoch"] < len(single)  # each rank trains on its shard of the data
    assert history["total_steps"] == history["steps_per_epoch"]
    assert sorted(p.name for p in (tmp_path / "D").iterdir()) == ["history.json", "steps.csv"]


def test_lrkit_started_by_torchrun_joins_its_group_and_reports_once(tmp_path):
    entry = Path(sys.executable).with_name("lrkit")
    if not entry.exists():
        pytest.skip("the lrkit entry point is not installed next to this python")
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                "--nproc_per_node=2", "--no-python", str(entry)]  # fmt: skip
    done = lrkit_cmd(tmp_path, "train", "--task", "wine-mlp", "--epochs", "1", "--out", "D",
                     "--quiet", command=torchrun)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"history written to {Path('D') / 'history.json'}"]
    history = json.loads((tmp_path / "D" / "history.json").read_text())
    assert history["steps_per_epoch"] < len(lrkit.tasks.get_task("wine-mlp").build_loaders(0)[0])


def test_pick_on_two_ranks_answers_once(tmp_path):
    done = lrkit_cmd(tmp_path, "pick", "--task", "wine-mlp", "--nproc", "2", "--quiet")
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.split()) == 1 and float(done.stdout) > 0  # the picked lr, once


def test_find_quiet_without_a_trusted_lr_exits_3_once_and_blames_no_rank(tmp_path):
    done = lrkit_cmd(tmp_path, "find", "--task", "wine-mlp", "--steps", "20", "--quiet",
                     "--nproc", "2")  # fmt: skip
    assert done.returncode == 3, done.stderr  # 20 steps: no lr can be trusted (the same alone)
    assert done.stdout == "" and "rank 1" not in done.stderr


def test_a_rank_s_user_error_fails_the_command_with_that_error_in_one_line(tmp_path):
    (tmp_path / "badtasks.py").write_text(BAD_TASKS)
    done = lrkit_cmd(tmp_path, "find", "--task", "badtasks:broken", "--nproc", "2")
    assert done.returncode == 2
    # rank 0's own line that joining the group lost rank 1 is kept back: the cause alone
    assert done.stderr.strip().splitlines() == [
        "lrkit: error: rank 1 of 2 exited with status 2: rank one cannot build its task"
    ], done.stderr


def test_rank_0_s_own_error_is_the_one_line_shown(tmp_path):
    (tmp_path / "badtasks.py").write_text(BAD_TASKS)
    done = lrkit_cmd(tmp_path, "find", "--task", "badtasks:zero", "--nproc", "2")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == ["lrkit: error: rank zero cannot build its task"]


def test_a_rank_killed_fails_the_command_naming_the_signal(tmp_path):
    (tmp_path / "badtasks.py").write_text(BAD_TASKS)
    done = lrkit_cmd(tmp_path, "find", "--task", "badtasks:killed", "--nproc", "2")
    assert done.returncode != 0
    # rank 0's line that the group lost a rank is kept back: the cause alone
    assert done.stderr.strip().splitlines() == [
        "lrkit: error: rank 1 of 2 was killed by SIGKILL"
    ], done.stderr


# -- in this process ------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "1.5", "100000", "two", ""])
@pytest.mark.parametrize("command", ["find", "pick", "train"])
def test_a_bad_nproc_is_one_line_and_status_2(capsys, command, value, monkeypatch):
    monkeypatch.setattr(launch, "launch", lambda *a: pytest.fail("launched"))
    status, out, err = call(capsys, command, "--task", "wine-mlp", "--nproc", value)
    assert status == 2 and out == ""
    assert err.startswith("lrkit: error: --nproc must be a whole number in [1, 128]")
    assert len(err.strip().splitlines()) == 1


def test_nproc_1_runs_the_command_in_this_process(capsys, monkeypatch):
    monkeypatch.setattr(launch, "launch", lambda *a: pytest.fail("launched"))
    status, out, _ = call(capsys, "find", "--task", "wine-mlp", "--steps", "10", "--nproc", "1",
                          "--json", "-")  # fmt: skip
    assert status == 0 and json.loads(out)["steps_run"] > 0


def test_nproc_inside_a_launched_rank_is_refused(capsys, monkeypatch):
    monkeypatch.setattr(launch, "launched", lambda: True)
    monkeypatch.setattr(launch, "group", lambda: __import__("contextlib").nullcontext())
    status, _, err = call(capsys, "find", "--nproc", "2")
    assert status == 2 and "inside a rank that a launcher started" in err


def test_the_ranks_run_the_command_without_its_nproc():
    argv = ["find", "--nproc", "2", "--task", "wine-mlp", "--nproc=3", "--steps", "9"]
    assert launch.without_nproc(argv) == ["find", "--task", "wine-mlp", "--steps", "9"]


@pytest.mark.parametrize("command", ["find", "pick", "train"])
def test_help_explains_nproc_and_the_torchrun_recipe(capsys, command):
    status, out, _ = call(capsys, command, "--help")
    assert status == 0 and "--nproc N" in out
    assert "torchrun --nproc_per_node=N" in " ".join(out.split())


def test_joining_a_group_without_a_launcher_is_a_user_error(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(UserError, match="no launcher set up a process group here"):
        dist.init()


def test_the_default_backend_is_gloo_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert dist.default_backend() == "gloo"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert dist.default_backend() == "cpu:gloo,cuda:nccl"
