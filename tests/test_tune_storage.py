"""Storages from one URL (journal file, SQLite, errors, redaction) and run_trials' promise:
exactly ``trials`` finished trials, however the trials end and however many workers run."""

from __future__ import annotations

import signal
import sys
import time
import traceback

import optuna
import pytest
from optuna.trial import TrialState
from pg import free_port
from tune_worker import finish, runs, start, wait_for, worker_command

from lrkit.errors import UserError
from lrkit.tune import storage as storage_module
from lrkit.tune import workers
from lrkit.tune.storage import (
    StorageError,
    create_study,
    list_studies,
    load_study,
    open_storage,
    redact,
)
from lrkit.tune.workers import SURPLUS, run_trials

SECRET = "hunter2-Secret"


pytestmark = pytest.mark.usefixtures("quiet_optuna")  # conftest.py


def x(trial: optuna.Trial) -> float:
    return trial.suggest_float("x", 0.0, 1.0)


def counts(study: optuna.Study) -> dict[str, int]:
    names = [t.state.name for t in study.get_trials(deepcopy=False)]
    return {name: names.count(name) for name in set(names)}


def everything_said(error: BaseException) -> str:
    """The error as a user could ever see it: message, repr and the full traceback text."""
    return str(error) + repr(error) + "".join(traceback.format_exception(error))


# --- opening storages ----------------------------------------------------------------------------


def test_no_url_keeps_the_study_in_a_journal_file_in_the_run_folder(tmp_path):
    create_study(open_storage(None, tmp_path / "run"), "s")
    assert (tmp_path / "run" / "study.journal").is_file()
    assert list_studies(open_storage(None, tmp_path / "run")) == ["s"]


def test_a_plain_path_is_a_journal_file(tmp_path):
    create_study(open_storage(str(tmp_path / "my.journal")), "s")
    assert list_studies(open_storage(str(tmp_path / "my.journal"))) == ["s"]


@pytest.mark.parametrize("text", ["garbage\n", '{"a": 1}\n', "[1]\n", '{"op_code": 99}\n'])
def test_a_file_that_is_not_a_journal_is_refused_before_anything_is_written(tmp_path, text):
    # Optuna reads a single bad line as a half-written last record, then fails mid-study
    path = tmp_path / "notes.journal"
    path.write_text(text)
    with pytest.raises(StorageError, match="is not an Optuna journal file"):
        create_study(open_storage(str(path)), "s")
    assert path.read_text() == text


def test_no_url_and_no_run_folder_is_an_error():
    with pytest.raises(StorageError, match="no storage URL and no run directory"):
        open_storage(None)


def test_sqlite_gets_optunas_heartbeat_grace_period_and_retry_callback(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path}/s.db", heartbeat=3)
    assert storage.get_heartbeat_interval() == 3
    assert storage.grace_period == 6
    callback = storage.get_heartbeat_stale_trial_callback()
    assert isinstance(callback, optuna.storages.RetryHeartbeatStaleTrialCallback)
    assert callback._max_retry == 3


@pytest.mark.parametrize("heartbeat", [0, -1, float("nan"), float("inf"), True])
def test_a_heartbeat_that_is_not_a_positive_number_is_refused(tmp_path, heartbeat):
    with pytest.raises(ValueError, match="heartbeat seconds"):
        open_storage(f"sqlite:///{tmp_path}/s.db", heartbeat=heartbeat)


@pytest.mark.parametrize(
    "url, says",
    [
        (f"postgresql://lrkit:{SECRET}@127.0.0.1:notaport/db", "malformed storage URL"),
        (f"postgresql://lrkit:{SECRET}@bad@127.0.0.1/db", "more than one '@'"),
        (f"postgresql://lrkit:{SECRET}@/db", "names no host"),
        (f"postgresql+nodriver://lrkit:{SECRET}@127.0.0.1/db", "bad storage URL"),
        (f"mysql://lrkit:{SECRET}@127.0.0.1/db", "unknown storage scheme 'mysql://'"),
        (f"redis://:{SECRET}@127.0.0.1:6379", "unknown storage scheme 'redis://'"),
        ("localhost:5432", "no '://'"),
        ("grpc://127.0.0.1", "expected grpc://HOST:PORT"),
        ("grpc://127.0.0.1:99999", "expected grpc://HOST:PORT"),
        ("sqlite:///no/such/folder/s.db", "does not exist"),
        ("", "non-empty"),
    ],
)
def test_a_malformed_url_is_one_line_naming_it_without_the_password(url, says):
    with pytest.raises(StorageError, match=says) as caught:
        open_storage(url)
    said = everything_said(caught.value)
    assert SECRET not in said
    assert "\n" not in str(caught.value)
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None or caught.value.__suppress_context__


@pytest.mark.parametrize("url", ["mysql://u:p@h/d", "postgresql://u:p@h:bad/d", "localhost:1"])
def test_a_bad_url_says_what_would_be_accepted(url):
    with pytest.raises(StorageError, match="accepted: a journal file path, sqlite:///PATH"):
        open_storage(url)


def test_an_unreachable_server_is_one_line_within_seconds():
    url = f"postgresql://lrkit:{SECRET}@127.0.0.1:{free_port()}/lrkit"
    began = time.monotonic()
    with pytest.raises(StorageError) as caught:
        open_storage(url)
    assert time.monotonic() - began < storage_module.CONNECT_TIMEOUT + 1
    message = str(caught.value)
    assert message.startswith("cannot reach the database 'postgresql://lrkit:***@127.0.0.1:")
    assert "Connection refused" in message and "\n" not in message
    assert SECRET not in everything_said(caught.value)


def test_an_unreachable_grpc_proxy_is_one_line(monkeypatch):
    monkeypatch.setattr(storage_module, "CONNECT_TIMEOUT", 0.3)
    with pytest.raises(StorageError, match="cannot reach the gRPC storage proxy"):
        open_storage(f"grpc://127.0.0.1:{free_port()}")


def test_a_missing_driver_says_which_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)  # import psycopg now fails
    with pytest.raises(StorageError, match="psycopg") as caught:
        open_storage(f"postgresql://lrkit:{SECRET}@127.0.0.1:5432/lrkit")
    assert SECRET not in everything_said(caught.value)


# --- redaction -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, shown",
    [
        ("postgresql://u:s3cret@h:5432/d", "postgresql://u:***@h:5432/d"),
        ("see 'postgresql+psycopg://u:s3cret@h/d' now", "see 'postgresql+psycopg://u:***@h/d' now"),
        ("a://u:p1@h and b://v:p2@k", "a://u:***@h and b://v:***@k"),
        ("mysql://u:p@ss@h/d", "mysql://u:***@h/d"),  # up to the last '@': over, never under
        ("host=h password=s3cret user=u", "host=h password=*** user=u"),
        ("x?password='s3 cret'&y=1", "x?password=***&y=1"),
        ("postgresql://u@h/d and sqlite:///a.db", "postgresql://u@h/d and sqlite:///a.db"),
    ],
)
def test_redact_replaces_every_password_and_nothing_else(text, shown):
    assert redact(text) == shown


def test_redact_scrubs_a_password_once_opened_wherever_it_appears():
    with pytest.raises(StorageError):
        open_storage(f"postgresql://lrkit:{SECRET}@127.0.0.1:{free_port()}/lrkit")
    assert redact(f'connection to "{SECRET}" failed') == 'connection to "***" failed'


def test_the_storage_repr_hides_the_password(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path}/s.db")
    assert repr(storage) == f"RDBStorage('sqlite:///{tmp_path}/s.db')"


# --- studies -------------------------------------------------------------------------------------


def test_loading_a_missing_study_lists_the_studies_there(tmp_path):
    storage = open_storage(None, tmp_path)
    create_study(storage, "b")
    create_study(storage, "a")
    with pytest.raises(UserError, match="no study named 'c' .* studies there: 'a', 'b'"):
        load_study(storage, "c")


def test_a_missing_study_in_a_journal_file_names_the_file(tmp_path):
    path = str(tmp_path / "my.journal")
    create_study(open_storage(path), "s")
    with pytest.raises(UserError, match=f"no study named 'other' in '{path}'"):
        load_study(open_storage(path), "other")


def test_loading_from_an_empty_storage_says_there_are_none(tmp_path):
    with pytest.raises(UserError, match="studies there: none"):
        load_study(open_storage(None, tmp_path), "c")


def test_creating_a_study_twice_is_an_error_unless_exist_ok(tmp_path):
    storage = open_storage(None, tmp_path)
    create_study(storage, "s", attrs={"lrkit": {"task": "t"}})
    with pytest.raises(UserError, match="a study named 's' already exists"):
        create_study(storage, "s")
    again = create_study(storage, "s", attrs={"lrkit": {"task": "other"}, "x": 1}, exist_ok=True)
    assert again.user_attrs == {"lrkit": {"task": "t"}, "x": 1}  # kept, and the new key added


def test_an_existing_study_of_the_other_direction_is_an_error(tmp_path):
    storage = open_storage(None, tmp_path)
    create_study(storage, "s", direction="maximize")
    with pytest.raises(UserError, match="is to maximize, not to minimize"):
        create_study(storage, "s", direction="minimize", exist_ok=True)


@pytest.mark.parametrize("name", ["", "  ", None, 3])
def test_a_study_name_must_be_text(tmp_path, name):
    with pytest.raises(UserError, match="study name must be a non-empty text"):
        create_study(open_storage(None, tmp_path), name)


def test_a_direction_other_than_minimize_or_maximize_is_refused(tmp_path):
    with pytest.raises(UserError, match="'minimize' or 'maximize', got 'up'"):
        create_study(open_storage(None, tmp_path), "s", direction="up")


# --- run_trials ----------------------------------------------------------------------------------


@pytest.mark.parametrize("url", [None, "sqlite"])
def test_failed_trials_are_replaced_until_exactly_n_have_finished(tmp_path, url):
    url = url and f"sqlite:///{tmp_path}/s.db"
    study = create_study(open_storage(url, tmp_path, heartbeat=1), "s")
    calls = []

    def flaky(trial):
        calls.append(trial.number)
        if len(calls) % 3 == 0:
            raise RuntimeError("boom")
        if len(calls) % 4 == 0:
            raise optuna.TrialPruned()
        return x(trial)

    run_trials(study, flaky, 10, catch=(RuntimeError,))
    finished = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == 10
    assert counts(study)["FAIL"] == len(calls) - 10


def test_a_study_that_has_its_trials_runs_none_more(tmp_path):
    study = create_study(open_storage(None, tmp_path), "s")
    run_trials(study, x, 4)
    run_trials(study, pytest.fail, 4)
    run_trials(study, pytest.fail, 2)
    assert counts(study) == {"COMPLETE": 4}


def test_a_resumed_study_runs_only_the_missing_trials(tmp_path):
    run_trials(create_study(open_storage(None, tmp_path), "s"), x, 3)
    study = load_study(open_storage(None, tmp_path), "s")
    run_trials(study, x, 7)
    assert counts(study) == {"COMPLETE": 7}


def test_an_enqueued_trial_is_one_of_the_n(tmp_path):
    study = create_study(open_storage(None, tmp_path), "s")
    study.enqueue_trial({"x": 0.25})
    run_trials(study, x, 3)
    assert counts(study) == {"COMPLETE": 3}
    assert study.trials[0].params == {"x": 0.25}


def test_on_trial_hears_each_trial_with_the_studys_finished_count(tmp_path):
    study = create_study(open_storage(None, tmp_path), "s")
    heard = []
    run_trials(study, x, 3, on_trial=lambda trial, finished: heard.append((trial.number, finished)))
    assert heard == [(0, 1), (1, 2), (2, 3)]


def test_a_callbacks_study_stop_ends_the_run(tmp_path):
    study = create_study(open_storage(None, tmp_path), "s")
    run_trials(study, x, 10, callbacks=[lambda s, t: s.stop() if t.number == 1 else None])
    assert counts(study) == {"COMPLETE": 2}


def test_no_trial_starts_after_the_timeout(tmp_path):
    study = create_study(open_storage(None, tmp_path), "s")
    run_trials(study, lambda t: time.sleep(0.3) or x(t), 50, timeout=0.5)
    assert counts(study) == {"COMPLETE": 2}


def test_an_objective_that_always_fails_stops_after_max_failed(tmp_path):
    study = create_study(open_storage(None, tmp_path), "s")

    def broken(trial):
        trial.set_user_attr("reason", "loss nan at step 3")
        raise RuntimeError("nan")

    with pytest.raises(UserError, match=r"after 3 failed trials \(more than max_failed=2\).*nan"):
        run_trials(study, broken, 5, catch=(RuntimeError,), max_failed=2)
    assert counts(study) == {"FAIL": 3}


def test_an_error_the_objective_does_not_catch_ends_the_run(tmp_path):
    study = create_study(open_storage(None, tmp_path), "s")
    with pytest.raises(KeyError):
        run_trials(study, lambda trial: {}["missing"], 5)
    assert counts(study) == {"FAIL": 1}


@pytest.mark.parametrize("trials", [0, -1, 2.5, True, None])
def test_trials_must_be_a_whole_number_of_at_least_one(tmp_path, trials):
    study = create_study(open_storage(None, tmp_path), "s")
    with pytest.raises(ValueError, match="trials must be a whole number >= 1"):
        run_trials(study, x, trials)


def test_a_trial_started_on_a_stale_view_is_surplus_marked_and_not_run(tmp_path, monkeypatch):
    """Two workers that both saw the last free place: the later trial must not run."""
    study = create_study(open_storage(None, tmp_path), "s")
    real_plan, stale = workers._plan, [True]

    def plan_once_stale(study, trials):  # the gate's first look misses the finished trial
        plan, ahead = real_plan(study, trials)
        if plan == "done" and stale and stale.pop():
            return "run", ahead
        return plan, ahead

    monkeypatch.setattr(workers, "_plan", plan_once_stale)
    ran, heard = [], []
    run_trials(
        study,
        lambda trial: ran.append(trial.number) or x(trial),
        1,
        callbacks=[lambda s, t: heard.append(t.number)],
    )
    assert ran == [0] and heard == [0]
    surplus = study.trials[1]
    assert surplus.state == TrialState.FAIL and surplus.params == {}
    assert surplus.user_attrs["status"] == "surplus" and surplus.system_attrs[SURPLUS]
    assert "did not run" in surplus.user_attrs["reason"]


# --- processes sharing one journal file ----------------------------------------------------------


def test_two_processes_share_one_journal_file(tmp_path):
    journal, log = str(tmp_path / "study.journal"), tmp_path / "runs.log"
    (tmp_path / "up").mkdir()
    command = worker_command(
        journal, "shared", 16, sleep=0.02, log=log, together=f"2:{tmp_path / 'up'}"
    )
    results = finish([start(command), start(command)])
    assert [status for status, _, _ in results] == [0, 0], results
    study = load_study(open_storage(journal), "shared")
    assert counts(study).get("COMPLETE") == 16
    assert len(runs(log)) == len(set(runs(log)))
    workers_seen = {
        t.system_attrs["lrkit:worker"]["pid"] for t in study.trials if t.state.name == "COMPLETE"
    }
    assert len(workers_seen) == 2


def test_a_journal_study_killed_mid_way_resumes_and_completes(tmp_path):
    journal, log = str(tmp_path / "study.journal"), tmp_path / "runs.log"
    command = worker_command(journal, "resumed", 10, sleep=0.2, log=log)
    worker = start(command)
    assert wait_for(lambda: len(runs(log)) >= 3, timeout=60), finish([worker], timeout=1)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    [(status, _, err)] = finish([start(command)])
    assert status == 0, err
    study = load_study(open_storage(journal), "resumed")
    assert counts(study)["COMPLETE"] == 10
    killed = [t for t in study.trials if t.state == TrialState.FAIL]
    for trial in killed:  # the trial running at the kill was queued again with its params
        [retry] = [t for t in study.trials if t.system_attrs.get("failed_trial") == trial.number]
        assert retry.params == trial.params and retry.state == TrialState.COMPLETE
        assert "was gone mid-trial" in trial.user_attrs["reason"]  # the table says why it failed


def test_a_lock_left_by_a_killed_writer_is_seen_as_stale(tmp_path, monkeypatch):
    # Optuna's lock is a symlink to the journal; made from a relative path (the default
    # runs/tune/<study>/study.journal) it dangled, Optuna could never stat it to see it was
    # stale, and the next tune in that folder busy-waited forever
    monkeypatch.chdir(tmp_path)
    storage = open_storage(None, "runs/tune/s")
    create_study(storage, "s")
    storage._backend._lock.acquire()  # as a worker killed mid-write leaves it
    lock = tmp_path / "runs/tune/s/study.journal.lock"
    assert lock.is_symlink() and lock.exists()  # exists() follows the link


# --- the PostgreSQL fixture's promise: in CI a missing server fails, elsewhere it skips --------


def test_without_postgresql_binaries_the_server_tests_fail_in_ci(monkeypatch):
    import pg

    monkeypatch.setenv("LRKIT_PG_BIN", "/nonexistent")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="must run in CI .* initdb/pg_ctl not found"):
        pg.start_server()


def test_without_postgresql_binaries_the_server_tests_skip_elsewhere(monkeypatch):
    import pg

    monkeypatch.setenv("LRKIT_PG_BIN", "/nonexistent")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="initdb/pg_ctl not found"):
        pg.start_server()
