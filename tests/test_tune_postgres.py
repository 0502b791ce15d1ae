"""Many workers on a real PostgreSQL server that the fixture starts on a free loopback port
(tests/pg.py): no lost, duplicated or extra trial; a killed worker's trial retried; the
database going away and coming back; the study open to Optuna, optuna-dashboard and Optuna's
gRPC proxy. With CI=true these tests fail, not skip, when the server cannot start."""

from __future__ import annotations

import io
import json
import signal
import sys
from collections import Counter
from wsgiref.util import setup_testing_defaults

import optuna
import pytest
from pg import free_port, pg_server_fixture  # noqa: F401 (the fixture pg_server)
from tune_worker import finish, runs, start, wait_for, worker_command

from lrkit.tune.storage import StorageError, create_study, load_study, open_storage
from lrkit.tune.workers import SURPLUS, run_trials

HEARTBEAT = 1  # s; the grace period is twice that: a dead worker's trial is retried in ~2 s


pytestmark = pytest.mark.usefixtures("quiet_optuna")  # conftest.py


def new_study(server, name: str) -> optuna.Study:
    return create_study(open_storage(server.url, heartbeat=HEARTBEAT), name)


def states(study: optuna.Study) -> Counter:
    return Counter(t.state.name for t in study.get_trials(deepcopy=False))


def finished(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))


def assert_honest_fails(study: optuna.Study) -> None:
    """Every failed trial is a marked surplus (none ran) or a retried one."""
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,)):
        assert trial.system_attrs.get(SURPLUS) or any(
            t.system_attrs.get("failed_trial") == trial.number for t in study.trials
        ), trial


def test_two_worker_processes_finish_one_study_with_no_lost_or_duplicated_trial(
    pg_server, tmp_path
):
    new_study(pg_server, "two")
    log = tmp_path / "runs.log"
    (tmp_path / "up").mkdir()
    command = worker_command(
        pg_server.url,
        "two",
        24,
        sleep=0.02,
        heartbeat=HEARTBEAT,
        log=log,
        together=f"2:{tmp_path / 'up'}",
    )
    results = finish([start(command), start(command)])
    assert [status for status, _, _ in results] == [0, 0], results
    study = load_study(open_storage(pg_server.url), "two")
    done = finished(study)
    assert len(done) == 24
    ran = runs(log)
    assert sorted(ran) == sorted(set(ran))  # no trial ran twice
    assert {t.number for t in done} <= set(ran)
    assert len({t.system_attrs["lrkit:worker"]["pid"] for t in done}) == 2  # both worked
    assert_honest_fails(study)


def test_a_worker_killed_mid_trial_has_its_trial_retried_with_its_params(pg_server, tmp_path):
    new_study(pg_server, "killed")
    marker, log = tmp_path / "hung", tmp_path / "runs.log"
    doomed = start(
        worker_command(pg_server.url, "killed", 6, heartbeat=HEARTBEAT, log=log, hang_first=marker)
    )
    assert wait_for(marker.exists, timeout=60), finish([doomed], timeout=1)
    doomed.send_signal(signal.SIGKILL)
    doomed.wait()
    lost = int(marker.read_text())
    survivor = start(worker_command(pg_server.url, "killed", 6, sleep=0.02, heartbeat=HEARTBEAT))
    [(status, _, err)] = finish([survivor])
    assert status == 0, err
    study = load_study(open_storage(pg_server.url), "killed")
    assert len(finished(study)) == 6
    dead = study.trials[lost]
    assert dead.state == optuna.trial.TrialState.FAIL
    [retry] = [t for t in study.trials if t.system_attrs.get("failed_trial") == lost]
    assert retry.state == optuna.trial.TrialState.COMPLETE
    assert retry.params == dead.params


def test_the_database_going_away_is_one_clear_line_and_the_study_resumes(pg_server, tmp_path):
    new_study(pg_server, "outage")
    log = tmp_path / "runs.log"
    command = worker_command(pg_server.url, "outage", 12, sleep=0.2, heartbeat=HEARTBEAT, log=log)
    worker = start(command)
    assert wait_for(lambda: len(runs(log)) >= 3, timeout=60), finish([worker], timeout=1)
    pg_server.stop("fast")
    try:
        [(status, out, err)] = finish([worker], timeout=60)
    finally:
        pg_server.start()
    assert status == 2, err
    assert err.startswith("lrkit: error: lost the database 'postgresql://lrkit:***@127.0.0.1:")
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err and pg_server.password not in out + err
    [(status, _, err)] = finish([start(command)])
    assert status == 0, err
    study = load_study(open_storage(pg_server.url), "outage")
    assert len(finished(study)) == 12
    ran = runs(log)
    assert len(ran) == len(set(ran))


def test_run_trials_stops_when_a_server_is_unreachable_with_a_redacted_message(pg_server):
    storage = open_storage(pg_server.url, heartbeat=HEARTBEAT)
    study = create_study(storage, "gone")
    pg_server.stop("fast")
    try:
        with pytest.raises(StorageError) as caught:
            run_trials(study, lambda trial: trial.suggest_float("x", 0, 1), 3)
    finally:
        pg_server.start()
    message = str(caught.value)
    assert "lost the database" in message and "***" in message
    assert pg_server.password not in message + repr(caught.value) + repr(storage)


def test_a_wrong_password_is_one_line_without_the_password(pg_server):
    wrong = pg_server.url.replace(pg_server.password, "not-the-password-42")
    with pytest.raises(StorageError) as caught:
        open_storage(wrong)
    message = str(caught.value)
    assert "cannot reach the database" in message and "password authentication failed" in message
    assert "not-the-password-42" not in message and "\n" not in message
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None or caught.value.__suppress_context__


def test_optuna_load_study_and_the_dashboard_open_the_study(pg_server):
    study = new_study(pg_server, "visible")
    run_trials(study, lambda trial: trial.suggest_float("x", 0, 1), 3)
    plain = optuna.load_study(study_name="visible", storage=pg_server.optuna_url)
    assert len(plain.trials) == 3
    import optuna_dashboard

    app = optuna_dashboard.wsgi(pg_server.optuna_url)
    environ = {"PATH_INFO": "/api/studies", "REQUEST_METHOD": "GET", "wsgi.input": io.BytesIO()}
    setup_testing_defaults(environ)
    answer: list = []
    body = b"".join(app(environ, lambda status, headers, exc_info=None: answer.append(status)))
    assert answer[0].startswith("200")
    studies = {s["study_name"]: s for s in json.loads(body)["study_summaries"]}
    assert "visible" in studies


def test_two_workers_through_optunas_grpc_proxy(pg_server, tmp_path):
    new_study(pg_server, "proxied")
    port = free_port()
    code = (
        "import optuna, sys\n"
        "from lrkit.tune.storage import open_storage\n"
        "optuna.logging.set_verbosity(optuna.logging.WARNING)\n"
        "storage = optuna.storages.get_storage(open_storage(sys.argv[1]))\n"
        "optuna.storages.run_grpc_proxy_server(storage, host='127.0.0.1', port=int(sys.argv[2]))\n"
    )
    proxy = start([sys.executable, "-c", code, pg_server.url, str(port)])
    try:
        log = tmp_path / "runs.log"
        (tmp_path / "up").mkdir()
        command = worker_command(
            f"grpc://127.0.0.1:{port}",
            "proxied",
            16,
            sleep=0.15,  # long enough that a loaded machine still lets both workers take trials
            log=log,
            together=f"2:{tmp_path / 'up'}",
        )
        results = finish([start(command), start(command)])
        assert [status for status, _, _ in results] == [0, 0], results
    finally:
        proxy.send_signal(signal.SIGTERM)
        finish([proxy], timeout=10)
    study = load_study(open_storage(pg_server.url), "proxied")
    assert len(finished(study)) == 16
    assert len({t.system_attrs["lrkit:worker"]["pid"] for t in finished(study)}) == 2
    ran = runs(log)
    assert len(ran) == len(set(ran))


def test_the_password_is_in_no_output_of_any_worker(pg_server, tmp_path):
    """Every log line down to DEBUG (Optuna, SQLAlchemy's engine and pool, psycopg) and every
    warning, of a normal run, a missing database and the server stopped mid-study."""
    new_study(pg_server, "quiet")
    log = tmp_path / "runs.log"

    def verbose(url, trials, **options):  # its output to a file: DEBUG logs would fill a pipe
        said = tmp_path / f"said-{len(list(tmp_path.glob('said-*')))}.txt"
        command = worker_command(url, "quiet", trials, verbose=True, **options)
        with open(said, "w") as out:
            process = start(command, env={"PYTHONWARNINGS": "always"}, stdout=out, stderr=out)
        return process, said

    normal = verbose(pg_server.url, 2, heartbeat=HEARTBEAT)
    missing = verbose(pg_server.url.rsplit("/", 1)[0] + "/nodb", 2)
    finish([normal[0], missing[0]])
    outage = verbose(pg_server.url, 9, sleep=0.2, log=log)
    assert wait_for(lambda: len(runs(log)) >= 1, timeout=60), finish([outage[0]], timeout=1)
    pg_server.stop("fast")
    try:
        [(status, _, _)] = finish([outage[0]], timeout=60)
    finally:
        pg_server.start()
    said = [path.read_text() for _, path in (normal, missing, outage)]
    assert status == 2 and "lrkit: error: lost the database" in said[2]
    assert "sqlalchemy" in said[0].lower()  # the logs were on
    assert 'database "nodb" does not exist' in said[1] and "***" in said[1]
    assert pg_server.password not in "".join(said)


def test_two_lrkit_tune_workers_finish_one_postgresql_study_together(pg_server, tmp_path):
    """The README's recipe for several machines, with real `lrkit` processes: `study create`
    once, then `lrkit tune --storage URL --study NAME` on two workers."""
    lrkit = [sys.executable, "-c", "import sys; from lrkit.cli import main; sys.exit(main())"]
    create = lrkit + ["study", "create", "--storage", pg_server.url, "--task", "wine-mlp"]
    create += ["--space", "lr={1e-3..1e-1}; warmup(5%) >> cosine", "--epochs", "2"]
    create += ["--trials", "8", "--sampler", "random", "shared"]
    [(status, out, err)] = finish([start(create)])
    assert status == 0, err
    worker = lrkit + ["tune", "--storage", pg_server.url, "--study", "shared", "--quiet"]
    results = finish([start(worker + ["--out", str(tmp_path / w)]) for w in "ab"], timeout=240)
    assert [status for status, _, _ in results] == [0, 0], results
    for _, out, err in results:
        assert out.startswith("lrkit train --task wine-mlp --lr ")  # each prints the best
        assert pg_server.password not in out + err
    study = load_study(open_storage(pg_server.url), "shared")
    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,
                                                    optuna.trial.TrialState.PRUNED))  # fmt: skip
    assert len(done) == 8  # no trial lost, none beyond the 8
    assert len({t.number for t in done}) == 8
    assert all(t.user_attrs["status"] in ("completed", "pruned") for t in done)
    assert_honest_fails(study)
