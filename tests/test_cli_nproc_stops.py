"""How an ``lrkit ... --nproc N`` run stops: a ``kill -9`` of the launcher takes its ranks with
it, SIGTERM and Ctrl-C exit 143 and 130 with lrkit's one line and no torch log, a rank that
hangs ends the run within ``--timeout``, and more ranks than cores is a one-line warning.
Real processes, bounded in time (tests/bounded.py)."""

import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch.distributed

sys.path.insert(0, str(Path(__file__).parent))
from bounded import Launched, descendants, environment, kill_all, run_status  # noqa: E402
from cli_run import call  # noqa: E402

from lrkit import dist, dist_launch  # noqa: E402
from lrkit.cli import launch  # noqa: E402
from lrkit.errors import UserError  # noqa: E402

pytestmark = pytest.mark.skipif(
    not torch.distributed.is_available(), reason="torch.distributed is not in this build"
)

TIMEOUT = 180  # seconds for a launch of two ranks (each imports torch) on 2 shared cores
GONE = 10  # seconds within which a rank must be gone once its launcher is
LRKIT = [sys.executable, "-c", "import sys; from lrkit.cli import main; sys.exit(main())"]
TRAIN = ["train", "--task", "digits-mlp", "--epochs", "500", "--nproc", "2", "-q", "--out", "out"]


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, dead but not yet reaped, counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_gone(pids: list[int], seconds: float) -> list[int]:
    """The ``pids`` still alive after up to ``seconds``."""
    deadline = time.monotonic() + seconds
    while [p for p in pids if alive(p)] and time.monotonic() < deadline:
        time.sleep(0.1)
    return [p for p in pids if alive(p)]


@pytest.fixture(scope="module")
def training(tmp_path_factory) -> dict[str, tuple[Launched, Path]]:
    """``lrkit train --nproc 2`` of 500 epochs, three of them side by side (most of the time is
    each rank importing torch), one for each signal the tests send its launcher."""
    runs = {}
    for how in ("kill", "term", "int"):
        folder = tmp_path_factory.mktemp(how)
        runs[how] = Launched([*LRKIT, *TRAIN], TIMEOUT, f"lrkit train --nproc 2 ({how})",
                             cwd=folder), folder  # fmt: skip
    yield runs
    for run, _ in runs.values():
        if run.proc.poll() is None:
            kill_all(run.proc)


def ranks_training(run: Launched, folder: Path) -> list[int]:
    """Once rank 0 has begun its history, the ranks below the launcher."""
    history = folder / "out" / "history.json"
    while not history.exists() and time.monotonic() < run.deadline and run.proc.poll() is None:
        time.sleep(0.2)
    time.sleep(0.5)  # it trains
    ranks = descendants(run.proc.pid)
    assert len(ranks) >= 2, f"the ranks were not running:\n{run.output()[-2000:]}"
    return ranks


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the ranks in /proc")
def test_kill_9_of_the_launcher_ends_every_rank_and_none_completes(training):
    run, folder = training["kill"]
    ranks = ranks_training(run, folder)
    run.proc.send_signal(signal.SIGKILL)
    run.proc.wait()
    assert wait_gone(ranks, GONE) == [], "ranks still running after their launcher was killed"
    history = (folder / "out" / "history.json").read_text()
    assert '"completed"' not in history


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the ranks in /proc")
def test_sigterm_to_the_launcher_exits_143_with_one_line_of_lrkit(training):
    run, folder = training["term"]
    ranks = ranks_training(run, folder)
    run.proc.send_signal(signal.SIGTERM)
    status, output = run.wait()
    assert status == 128 + signal.SIGTERM == 143, output[-2000:]
    assert output.strip().splitlines() == ["lrkit: interrupted by SIGTERM"], output[-2000:]
    assert wait_gone(ranks, GONE) == []


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the ranks in /proc")
def test_ctrl_c_to_the_launcher_exits_130_and_prints_no_torch_log(training):
    run, folder = training["int"]
    ranks = ranks_training(run, folder)
    run.proc.send_signal(signal.SIGINT)
    status, output = run.wait()
    assert status == 130, output[-2000:]
    lines = output.strip().splitlines()
    # rank 0 (whose output is the launcher's) may say it was interrupted too
    assert set(lines) == {"lrkit: interrupted"}, output[-2000:]
    assert wait_gone(ranks, GONE) == []


HANGS = textwrap.dedent(
    """
    import os, time
    from lrkit.tasks import get_task

    def hangs():
        if os.environ.get("RANK") == "1":
            time.sleep(600)  # inside the group, never at its first collective
        return get_task("wine-mlp")
    """
)


def test_a_hung_rank_ends_the_run_within_the_timeout_with_one_line(tmp_path):
    (tmp_path / "hangs.py").write_text(HANGS)
    started = time.monotonic()
    status, output = run_status([*LRKIT, "train", "--task", "hangs:hangs", "--epochs", "1", "-q",
                                 "--nproc", "2", "--timeout", "3"], TIMEOUT, "a hung rank",
                                cwd=tmp_path, env=environment(tmp_path))  # fmt: skip
    assert time.monotonic() - started < 90  # start-up, then 3 s, not the rank's 600 s
    assert status == 2, output[-2000:]
    lines = output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lrkit: error: "), output[-2000:]
    assert "timeout of 3 s" in lines[0]


# -- follow_parent: a rank whose launcher is gone ---------------------------------------------
CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from lrkit.dist_launch import follow_parent
    how = follow_parent(int(sys.argv[1]), poll=0.1, use_prctl=sys.argv[2] == "prctl")
    Path(sys.argv[3]).write_text(how)
    time.sleep(60)
    """
)
MIDDLE = textwrap.dedent(
    """
    import os, subprocess, sys, time
    child = subprocess.Popen([sys.executable, "-c", sys.argv[1], str(os.getpid()), *sys.argv[2:]],
                             start_new_session=True)
    print(child.pid, flush=True)
    time.sleep(60)
    """
)


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="watches the child in /proc")
@pytest.mark.parametrize("how", ["prctl", "poll"])
def test_a_follower_dies_when_its_parent_is_killed(tmp_path, how):
    if how == "prctl" and not sys.platform.startswith("linux"):
        pytest.skip("prctl is Linux's")
    ready = tmp_path / "ready"
    middle = subprocess.Popen([sys.executable, "-c", MIDDLE, CHILD, how, str(ready)],
                              env=environment(), stdout=subprocess.PIPE, text=True)  # fmt: skip
    child = int(middle.stdout.readline())
    try:
        deadline = time.monotonic() + 60
        while not ready.exists() and time.monotonic() < deadline and alive(child):
            time.sleep(0.05)
        assert ready.read_text() == how
        middle.kill()
        middle.wait()
        assert wait_gone([child], GONE) == []
    finally:
        middle.kill()
        middle.wait()
        if alive(child):
            os.kill(child, signal.SIGKILL)


def test_a_follower_whose_launcher_died_before_it_followed_dies_at_once(tmp_path):
    if not sys.platform.startswith("linux"):
        pytest.skip("prctl is Linux's")
    code = "import os; from lrkit.dist_launch import follow_parent; follow_parent(os.getppid() + 1)"
    done = subprocess.run([sys.executable, "-c", code + "; print('ran on')"], env=environment(),
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == -signal.SIGKILL and "ran on" not in done.stdout


# -- in this process --------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["find", "pick", "train"])
def test_help_explains_the_timeout_and_its_default(capsys, command):
    status, out, _ = call(capsys, command, "--help")
    text = " ".join(out.split())
    assert status == 0 and "--timeout SECONDS" in text and "else 300 s" in text
    assert launch.TIMEOUT_VARIABLE in text


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "two", ""])
def test_a_bad_timeout_is_one_line_and_status_2(capsys, monkeypatch, value):
    monkeypatch.setattr(launch, "launch", lambda *a: pytest.fail("launched"))
    status, out, err = call(capsys, "train", "--task", "wine-mlp", "--nproc", "2",
                            "--timeout", value)  # fmt: skip
    assert status == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert err.startswith("lrkit: error: --timeout must be a number in (0, 10000000]")


@pytest.mark.parametrize("order", ["nproc first", "timeout first"])
def test_the_timeout_reaches_the_launch_whatever_the_order(capsys, monkeypatch, order):
    got = []
    monkeypatch.setattr(launch, "launch", lambda argv, n, t: got.append((n, t)) or 0)
    pair = [["--nproc", "2"], ["--timeout", "7.5"]]
    args = [*pair[0], *pair[1]] if order == "nproc first" else [*pair[1], *pair[0]]
    status, _, _ = call(capsys, "find", "--task", "wine-mlp", *args)
    assert status == 0 and got == [(2, 7.5)]


def test_nproc_runs_wait_300_s_by_default_not_torch_s_1800(capsys, monkeypatch):
    got = []
    monkeypatch.delenv(launch.TIMEOUT_VARIABLE, raising=False)
    monkeypatch.setattr(launch, "launch", lambda argv, n, t: got.append(t) or 0)
    call(capsys, "pick", "--task", "wine-mlp", "--nproc", "2")
    assert got == [launch.TIMEOUT] and launch.TIMEOUT == 300


def test_without_timeout_nproc_takes_the_shell_s_lrkit_dist_timeout(capsys, monkeypatch):
    got = []
    monkeypatch.setenv(launch.TIMEOUT_VARIABLE, "45")
    monkeypatch.setattr(launch, "launch", lambda argv, n, t: got.append(t) or 0)
    call(capsys, "pick", "--task", "wine-mlp", "--nproc", "2")
    call(capsys, "pick", "--task", "wine-mlp", "--nproc", "2", "--timeout", "9")
    assert got == [45.0, 9.0]


def test_a_rank_joins_its_group_with_the_timeout_of_its_environment(monkeypatch):
    got = []
    monkeypatch.setattr(launch, "launched", lambda: True)
    monkeypatch.setattr(dist, "init", lambda timeout=None: got.append(timeout) or False)
    monkeypatch.setenv(launch.TIMEOUT_VARIABLE, "12.5")
    monkeypatch.setattr(launch, "_ARGV", ["find"])  # this rank's command line: no --timeout
    with launch.group():
        pass
    monkeypatch.setattr(launch, "_ARGV", ["find", "--timeout", "7"])  # torchrun ... --timeout 7
    with launch.group():
        pass
    monkeypatch.setattr(launch, "_ARGV", ["find", "--timeout=soon"])  # click refuses it later
    with launch.group():
        pass
    assert got == [12.5, 7.0, 12.5]


@pytest.mark.parametrize("value", ["0", "-3", "nan", "inf", "soon"])
def test_a_bad_timeout_in_a_rank_s_environment_is_a_user_error(monkeypatch, value):
    monkeypatch.setattr(launch, "launched", lambda: True)
    monkeypatch.setattr(dist, "init", lambda timeout=None: pytest.fail("joined"))
    monkeypatch.setenv(launch.TIMEOUT_VARIABLE, value)
    monkeypatch.setattr(launch, "_ARGV", ["find"])
    with pytest.raises(UserError, match=f"{launch.TIMEOUT_VARIABLE} must be a finite number"):
        with launch.group():
            pass


def test_the_launch_gives_the_ranks_the_timeout_and_this_process_s_pid(monkeypatch):
    seen = {}
    monkeypatch.setattr(dist_launch, "launch",
                        lambda args, n, logs, env: seen.update(args=args, env=env) or [])  # fmt: skip
    assert launch.launch(["find"], 2, 42.0) == 0
    assert seen["env"] == {
        launch.TIMEOUT_VARIABLE: "42.0",
        "LRKIT_NPROC": "1",
    }  # and: --nproc started them
    assert f"follow_parent({os.getpid()})" in seen["args"][1] and seen["args"][2:] == ["find"]


@pytest.mark.parametrize(("signum", "status", "line"), [
    (signal.SIGINT, 130, "lrkit: interrupted"),
    (signal.SIGTERM, 143, "lrkit: interrupted by SIGTERM"),
    (signal.SIGHUP, 129, "lrkit: interrupted by SIGHUP"),
])  # fmt: skip
def test_a_signal_to_the_launcher_exits_128_plus_it(capsys, monkeypatch, signum, status, line):
    def stopped(*a, **k):
        raise dist_launch.Interrupted("stopped", signum)

    monkeypatch.setattr(dist_launch, "launch", stopped)
    assert launch.launch(["find"], 2) == status
    assert capsys.readouterr().err.splitlines() == [line]


def test_more_cpu_ranks_than_cores_is_one_warning_line(capsys, monkeypatch):
    monkeypatch.setattr(dist_launch, "launch", lambda *a, **k: [])
    monkeypatch.setattr(dist, "default_backend", lambda: "gloo")
    monkeypatch.setattr(launch, "cpu_cores", lambda: 2)
    assert launch.launch(["find"], 3) == 0
    assert capsys.readouterr().err.splitlines() == [
        "lrkit: warning: --nproc 3 starts 3 CPU ranks on 2 CPU cores: each rank is a process,"
        " so they share the cores and run slower"
    ]


def test_as_many_cpu_ranks_as_cores_is_no_warning(capsys, monkeypatch):
    monkeypatch.setattr(dist_launch, "launch", lambda *a, **k: [])
    monkeypatch.setattr(dist, "default_backend", lambda: "gloo")
    monkeypatch.setattr(launch, "cpu_cores", lambda: 2)
    assert launch.launch(["find"], 2) == 0 and capsys.readouterr().err == ""


def test_more_ranks_than_cores_on_cuda_is_no_warning(capsys, monkeypatch):
    monkeypatch.setattr(dist_launch, "launch", lambda *a, **k: [])
    monkeypatch.setattr(dist, "default_backend", lambda: "cpu:gloo,cuda:nccl")
    monkeypatch.setattr(launch, "cpu_cores", lambda: 1)
    assert launch.launch(["find"], 4) == 0 and capsys.readouterr().err == ""


AGENT = "torch.distributed.elastic.agent.server.api"  # says "Received 15 death signal"


@pytest.fixture
def agent():
    """The elastic agent's logger, with a level of its own (WARNING, as torch sets it)."""
    logger = logging.getLogger(AGENT)
    level = logger.level
    logger.setLevel(logging.WARNING)
    yield logger
    logger.setLevel(level)


def test_the_agent_s_own_logger_is_quiet_during_a_launch(monkeypatch, agent):
    monkeypatch.delenv("LOGLEVEL", raising=False)
    with dist_launch._quiet_launcher():
        assert not agent.isEnabledFor(logging.WARNING)
    assert agent.level == logging.WARNING and agent.isEnabledFor(logging.WARNING)


def test_loglevel_keeps_torch_s_launcher_logs(monkeypatch, agent):
    monkeypatch.setenv("LOGLEVEL", "WARNING")
    with dist_launch._quiet_launcher():
        assert agent.isEnabledFor(logging.WARNING)


def test_a_rank_nproc_started_keeps_back_a_line_that_only_blames_another_rank(monkeypatch):
    blame = "lrkit: error: fit stopped on rank 0 of 2: " + launch.PEER_TROUBLE + ", so ..."
    for name in ("TORCHELASTIC_RUN_ID", "WORLD_SIZE", "RANK"):
        monkeypatch.setenv(name, "0")
    assert launch.says_for_itself(blame)  # under plain torchrun: nobody else would say it
    monkeypatch.setenv("LRKIT_NPROC", "1")
    assert not launch.says_for_itself(blame)  # --nproc's launcher prints the cause instead
    assert launch.says_for_itself("lrkit: error: --lr must be positive")
