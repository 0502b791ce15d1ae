"""A tune worker process for the storage tests and the load benchmark, and helpers to run some.

As a script: one worker on one study, a trivial objective (``x`` in [0, 1], value ``x``) that
appends ``<trial number> <pid>`` to ``--log`` each time it runs, so a test can count runs::

    python tests/tune_worker.py --storage URL --study NAME --trials N [--sleep S]
        [--heartbeat H] [--log PATH] [--hang-first MARKER] [--verbose] [--together N:FOLDER]

``--hang-first MARKER``: the worker's first trial writes MARKER and then hangs (to be killed).
``--together N:FOLDER``: the worker starts its trials only once N workers have signed in to
FOLDER (so that slow start-ups cannot leave one worker all the trials).
A UserError (a bad URL, the database going away) prints one line ``lrkit: error: ...`` and
exits 2, as the command line does.

The helpers start any command (this script, or ``lrkit tune ...``) as worker processes.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"


def worker_command(storage: str, study: str, trials: int, **options) -> list[str]:
    """The command line of one worker of this script (options: sleep, heartbeat, log,
    hang_first, verbose=True, together="N:FOLDER")."""
    command = [sys.executable, str(HERE / "tune_worker.py"), "--storage", storage]
    command += ["--study", study, "--trials", str(trials)]
    for key, value in options.items():
        flag = f"--{key.replace('_', '-')}"
        if value is True:
            command.append(flag)
        elif value is not None and value is not False:
            command += [flag, str(value)]
    return command


def start(command: list[str], **popen) -> subprocess.Popen:
    """``command`` as a worker process with this checkout's ``src`` importable; its output
    captured (text) unless ``popen`` says otherwise."""
    env = dict(os.environ, **popen.pop("env", {}))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    env.setdefault("OMP_NUM_THREADS", "1")
    popen.setdefault("stdout", subprocess.PIPE)
    popen.setdefault("stderr", subprocess.PIPE)
    return subprocess.Popen(command, env=env, text=True, **popen)


def finish(processes: list[subprocess.Popen], timeout: float = 120) -> list[tuple[int, str, str]]:
    """Wait for every process (killing the ones past ``timeout`` s, which then fail the
    caller's assertions): (exit status, stdout, stderr) each."""
    deadline = time.monotonic() + timeout
    results = []
    for process in processes:
        try:
            out, err = process.communicate(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate()
            err += f"\n[killed after {timeout} s]"
        results.append((process.returncode, out or "", err or ""))
    return results


def wait_for(condition, timeout: float = 60, every: float = 0.05) -> bool:
    """Poll ``condition()`` until it is true (True) or ``timeout`` s pass (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(every)
    return False


def runs(log: Path) -> list[int]:
    """The trial numbers the workers' objective ran, one per run, from ``--log``."""
    if not log.exists():
        return []
    return [int(line.split()[0]) for line in log.read_text().splitlines() if line.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--storage", required=True)
    parser.add_argument("--study", required=True)
    parser.add_argument("--trials", type=int, required=True)
    parser.add_argument("--sleep", type=float, default=0.0)
    parser.add_argument("--heartbeat", type=float, default=None)
    parser.add_argument("--log", default=None)
    parser.add_argument("--hang-first", default=None)
    parser.add_argument("--verbose", action="store_true", help="every log line, down to DEBUG")
    parser.add_argument("--together", default=None, help="N:FOLDER: start once N workers are up")
    args = parser.parse_args(argv)

    import optuna

    from lrkit.errors import UserError
    from lrkit.tune.storage import create_study, open_storage
    from lrkit.tune.workers import run_trials

    optuna.logging.set_verbosity(optuna.logging.DEBUG if args.verbose else optuna.logging.WARNING)
    if args.verbose:  # SQLAlchemy's engine and pool, psycopg, Optuna: all of it on stderr
        import logging

        logging.basicConfig(level=logging.DEBUG)
        logging.getLogger("sqlalchemy").setLevel(logging.DEBUG)
    hung = [args.hang_first is None]

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        if args.log:
            with open(args.log, "a") as log:
                log.write(f"{trial.number} {os.getpid()}\n")
        if not hung[0]:
            hung[0] = True
            Path(args.hang_first).write_text(f"{trial.number}\n")
            time.sleep(3600)
        if args.sleep:
            time.sleep(args.sleep)
        return x

    if args.together:  # a start line: each worker signs in, then waits for the others
        count, _, folder = args.together.partition(":")
        Path(folder, str(os.getpid())).touch()
        deadline = time.monotonic() + 120
        while len(list(Path(folder).iterdir())) < int(count) and time.monotonic() < deadline:
            time.sleep(0.02)
    try:
        storage = open_storage(args.storage, heartbeat=args.heartbeat)
        sampler = optuna.samplers.RandomSampler(seed=os.getpid())
        study = create_study(storage, args.study, exist_ok=True, sampler=sampler)
        run_trials(study, objective, args.trials)
    except UserError as error:
        print(f"lrkit: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
