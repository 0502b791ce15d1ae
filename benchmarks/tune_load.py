"""How much does one PostgreSQL carry? Many tune workers, a trivial objective, one study.

A throwaway PostgreSQL server (tests/pg.py: loopback only, fsync on, ``max_connections``
100 unless ``--max-connections``) and, for each worker count of ``--workers``, a fresh study
of ``--trials`` trials run by that many worker *processes* (tests/tune_worker.py: ``run_trials``
on a trivial objective, ``x`` in [0, 1], value ``x``, random sampler, no sleep) started
together. Measured per run:

- lost / duplicated trials: every finished trial must be complete, their count exactly
  ``--trials``, and no trial number may appear twice in the objective's run log;
- surplus trials (two workers raced for the last places; failed without running, marked);
- connections: the peak of ``pg_stat_activity`` rows for the study's database, sampled every
  0.1 s while the workers run, against ``max_connections``;
- trials per second: finished trials over the span from the first trial's start to the last
  trial's end (the worker processes' start-up, about a second each of importing torch, is left
  out); and the wall time from starting the processes to the last one exiting;
- the server's side, for the extrapolation: transactions per trial (``pg_stat_database``
  commits + rollbacks) and server CPU per trial (user + system time of the postmaster and all
  its backends, from /proc, before and after).

``--pgbench S`` also measures the server itself: the loopback round trip and pgbench's
transactions per second (see ``server_capacity``).

Bounded: each run is given ``--timeout`` seconds (then its workers are killed and the run is
reported incomplete).

    python benchmarks/tune_load.py --workers 1,8,32 --trials 1000
    python benchmarks/tune_load.py --workers 1 --trials 200 --pgbench 10
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

import optuna  # noqa: E402
from pg import DATABASE, PostgresServer  # noqa: E402
from tune_worker import finish, runs, start, worker_command  # noqa: E402

from lrkit.tune.storage import create_study, open_storage  # noqa: E402
from lrkit.tune.workers import SURPLUS  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(postmaster: int) -> float:
    """User + system CPU of the postmaster, of its reaped children and of its live children."""

    def stat(pid: int) -> list[str] | None:
        try:
            with open(f"/proc/{pid}/stat") as f:
                return f.read().rpartition(")")[2].split()
        except OSError:
            return None

    own = stat(postmaster)
    total = sum(int(v) for v in own[11:15])  # utime stime cutime cstime
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = stat(int(entry))
            if fields and int(fields[1]) == postmaster:
                total += int(fields[11]) + int(fields[12])
    return total / TICK


def transactions(server: PostgresServer) -> int:
    return int(
        server.query(
            f"SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = '{DATABASE}'"
        )
    )


class Sampler(threading.Thread):
    """The peak count of connections to the study's database, every ``every`` s."""

    def __init__(self, server: PostgresServer, every: float = 0.1):
        super().__init__(daemon=True)
        self.server, self.every, self.peak, self.samples = server, every, 0, 0
        self.done = threading.Event()

    def run(self) -> None:
        import psycopg

        with psycopg.connect(
            host=str(self.server.root), port=self.server.port, user="postgres", dbname="postgres"
        ) as conn:
            conn.autocommit = True
            while not self.done.is_set():
                (count,) = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (DATABASE,)
                ).fetchone()
                self.peak, self.samples = max(self.peak, count), self.samples + 1
                self.done.wait(self.every)


def server_capacity(server: PostgresServer, seconds: float) -> dict:
    """The server's own figures on this machine, for the extrapolation: the loopback round trip
    of ``SELECT 1`` (median of 2,000) and pgbench's transactions per second, ``-N`` (a
    write transaction of 3 updates and an insert, like Optuna's) and ``-S`` (one read), 8
    clients, ``seconds`` each."""
    import statistics

    import psycopg

    with psycopg.connect(
        host="127.0.0.1", port=server.port, user="lrkit", password=server.password, dbname=DATABASE
    ) as conn:
        times = []
        for _ in range(2000):
            began = time.perf_counter()
            conn.execute("SELECT 1").fetchone()
            times.append(time.perf_counter() - began)
    figures = {"SELECT 1 round trip ms": round(1000 * statistics.median(times), 3)}
    pgbench = [str(server.bin / "pgbench"), "-h", "127.0.0.1", "-p", str(server.port)]
    pgbench += ["-U", "lrkit", DATABASE]
    env = dict(os.environ, PGPASSWORD=server.password)
    subprocess.run([*pgbench[:-1], "-i", "-s", "1", "-q", DATABASE], env=env, check=True,
                   capture_output=True)  # fmt: skip
    for mode in ("-N", "-S"):
        done = subprocess.run(
            [*pgbench, mode, "-c", "8", "-j", "2", "-T", str(int(seconds))],
            env=env, check=True, capture_output=True, text=True,
        )  # fmt: skip
        tps = [line for line in done.stdout.splitlines() if line.startswith("tps")][0]
        figures[f"pgbench {mode} tps"] = round(float(tps.split("=")[1].split()[0]))
    return figures


def one_run(server: PostgresServer, workers: int, trials: int, timeout: float, folder: Path):
    name = f"load-{workers}"
    create_study(open_storage(server.url), name)
    log = folder / f"{name}.log"
    postmaster = int((server.data / "postmaster.pid").read_text().split()[0])
    cpu0, xact0 = cpu_seconds(postmaster), transactions(server)
    sampler = Sampler(server)
    sampler.start()
    began = time.monotonic()
    command = worker_command(server.url, name, trials, log=log)
    results = finish([start(command) for _ in range(workers)], timeout=timeout)
    wall = time.monotonic() - began
    sampler.done.set()
    sampler.join()
    time.sleep(0.5)  # the backends of the last connections exit and are reaped
    cpu, xact = cpu_seconds(postmaster) - cpu0, transactions(server) - xact0

    study = optuna.load_study(study_name=name, storage=server.optuna_url)
    everything = study.get_trials(deepcopy=False)
    complete = [t for t in everything if t.state == optuna.trial.TrialState.COMPLETE]
    surplus = [t for t in everything if t.system_attrs.get(SURPLUS)]
    other_fails = [
        t
        for t in everything
        if t.state == optuna.trial.TrialState.FAIL and not t.system_attrs.get(SURPLUS)
    ]
    ran = runs(log)
    span = max(t.datetime_complete for t in complete) - min(t.datetime_start for t in complete)
    return {
        "workers": workers,
        "trials": trials,
        "complete": len(complete),
        "lost": trials - len(complete),
        "duplicated runs": len(ran) - len(set(ran)),
        "objective runs": len(ran),
        "surplus": len(surplus),
        "other failed": len(other_fails),
        "waiting left": sum(t.state == optuna.trial.TrialState.WAITING for t in everything),
        "exit codes": sorted({status for status, _, _ in results}),
        "errors": [err.strip()[-300:] for status, _, err in results if status != 0][:3],
        "peak connections": sampler.peak,
        "max_connections": server.max_connections,
        "connection samples": sampler.samples,
        "trials/s": round(len(complete) / span.total_seconds(), 1),
        "span s": round(span.total_seconds(), 1),
        "wall s": round(wall, 1),
        "transactions/trial": round(xact / max(1, len(complete)), 1),
        "server CPU ms/trial": round(1000 * cpu / max(1, len(complete)), 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,8,32", help="worker counts, e.g. 1,8,32")
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--max-connections", type=int, default=100)
    parser.add_argument("--timeout", type=float, default=600, help="seconds per run at most")
    parser.add_argument("--json", default=None, help="write the rows here too")
    parser.add_argument(
        "--pgbench", type=float, default=0, help="also measure the server (seconds per pgbench run)"
    )
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.workers.split(",")]
    rows = []
    with PostgresServer(max_connections=args.max_connections, durable=True) as server:
        version = server.query("SHOW server_version")
        if args.pgbench:
            capacity = server_capacity(server, args.pgbench)
            print(json.dumps(capacity), flush=True)
            rows.append(capacity)
        with tempfile.TemporaryDirectory() as folder:
            for workers in counts:
                row = one_run(server, workers, args.trials, args.timeout, Path(folder))
                rows.append(row)
                print(json.dumps(row), flush=True)
    print(f"\nPostgreSQL {version}, {os.cpu_count()} CPUs, loopback, fsync on")
    columns = [
        "workers", "complete", "lost", "duplicated runs", "surplus", "peak connections",
        "trials/s", "span s", "wall s", "transactions/trial", "server CPU ms/trial",
    ]  # fmt: skip
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        if "workers" in row:
            print("| " + " | ".join(str(row[c]) for c in columns) + " |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    runs_ = [r for r in rows if "workers" in r]
    ok = all(r["lost"] == 0 and r["duplicated runs"] == 0 for r in runs_)
    ok = ok and all(r["peak connections"] <= r["max_connections"] for r in runs_)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
