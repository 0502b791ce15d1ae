"""Where a study lives: Optuna storages opened from one URL, with credentials kept out of sight.

``open_storage(url, run_dir)`` accepts:

- ``None``: Optuna's journal file ``run_dir / "study.journal"`` (several processes on one host
  share it; an interrupted study resumes from it);
- a file path without a scheme (``runs/a/study.journal``): a journal file there;
- ``sqlite:///path.db``: an SQLite file (one host);
- ``postgresql://user:password@host:port/db`` (also ``postgres://`` and
  ``postgresql+psycopg://``): PostgreSQL through psycopg 3, for workers on many machines;
- ``grpc://host:port``: Optuna's gRPC storage proxy (``optuna.storages.run_grpc_proxy_server``)
  in front of a database.

The database storages (SQLite, PostgreSQL) get Optuna's heartbeat: a running trial records a
heartbeat every ``heartbeat`` seconds (default 30); a trial silent for twice that is failed by
the next worker that looks (``optuna.storages.fail_stale_trials``) and Optuna's
``RetryHeartbeatStaleTrialCallback`` queues it again with the same parameters (at most 3 times:
a trial that kills its worker each time gives its place to a fresh one).

A bad URL, a server that cannot be reached within 5 s or a missing driver raise
:class:`StorageError`: one line naming the URL with its password replaced by ``***``
(:func:`redact`), and what would be accepted. No password reaches a message, a repr or a log.

The redaction and the errors are :mod:`lrkit.tune.storage_errors`, the studies (create, load,
list) :mod:`lrkit.tune.studies`; this module re-exports their names.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import optuna
from optuna.storages import RDBStorage

from lrkit.checks import number

from .storage_errors import (
    StorageError,
    _first_line,
    _remember_secret,
    _where,
    database_errors,
    redact,
    where,
)
from .studies import create_study, list_studies, load_study

__all__ = [
    "open_storage",
    "StorageError",
    "redact",
    "where",
    "database_errors",
    "create_study",
    "load_study",
    "list_studies",
    "CONNECT_TIMEOUT",
    "DEFAULT_HEARTBEAT",
    "MAX_RETRY",
    "JOURNAL_NAME",
    "ACCEPTED",
]

CONNECT_TIMEOUT = 5  # seconds to reach a database server or a gRPC proxy
DEFAULT_HEARTBEAT = 30.0  # seconds between a running trial's heartbeats; grace: twice that
MAX_RETRY = 3  # a trial whose worker died is queued again at most this often (then a fresh one)
JOURNAL_NAME = "study.journal"
ACCEPTED = (
    "accepted: a journal file path, sqlite:///PATH, postgresql://USER:PASSWORD@HOST:PORT/DB, "
    "grpc://HOST:PORT"
)


class _RDBStorage(RDBStorage):
    """Optuna's RDBStorage, except that a heartbeat that cannot reach the database is skipped
    (the worker's own next call reports the outage) instead of ending the heartbeat thread with
    a traceback, and that the repr shows the URL redacted."""

    _shown = "?"

    def record_heartbeat(self, trial_id: int) -> None:
        import sqlalchemy.exc

        try:
            super().record_heartbeat(trial_id)
        except (sqlalchemy.exc.DBAPIError, optuna.exceptions.StorageInternalError):
            pass

    def __repr__(self) -> str:
        return f"RDBStorage({self._shown!r})"


# --- opening -----------------------------------------------------------------------------------


def open_storage(
    url: str | None,
    run_dir: Path | str | None = None,
    *,
    heartbeat: float | None = None,
) -> optuna.storages.BaseStorage:
    """The Optuna storage that ``url`` names (see the module's docstring for the forms).

    ``heartbeat``: seconds between a running trial's heartbeats on a database storage (default
    30); a trial without one for twice that long is failed and retried with the same params.
    Raises :class:`StorageError` for a malformed URL, an unknown scheme, a server that cannot be
    reached within 5 s or a missing driver.
    """
    interval = DEFAULT_HEARTBEAT if heartbeat is None else heartbeat
    interval = number(interval, "heartbeat seconds", low=0, low_open=True)
    if url is None:
        if run_dir is None:
            raise StorageError(
                f"no storage URL and no run directory to keep the study in; {ACCEPTED}"
            )
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        return _journal(run_dir / JOURNAL_NAME)
    if not isinstance(url, str) or not url.strip():
        raise StorageError(f"storage URL must be a non-empty text, got {url!r}; {ACCEPTED}")
    url = url.strip()
    scheme, sep, _ = url.partition("://")
    if not sep:
        if re.match(r"[A-Za-z][A-Za-z0-9+.-]+:", url):
            raise StorageError(f"malformed storage URL {redact(url)!r} (no '://'); {ACCEPTED}")
        return _journal(Path(url))
    scheme = scheme.lower()
    if scheme == "sqlite":
        return _sqlite(url, interval)
    if scheme in ("postgresql", "postgres") or scheme.startswith("postgresql+"):
        return _postgres(url, interval)
    if scheme == "grpc":
        return _grpc(url)
    raise StorageError(f"unknown storage scheme {scheme + '://'!r} in {redact(url)!r}; {ACCEPTED}")


def _journal(path: Path) -> optuna.storages.BaseStorage:
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    if not path.parent.is_dir():
        raise StorageError(f"the journal file's folder {str(path.parent)!r} does not exist")
    if path.is_dir():
        raise StorageError(f"journal file {str(path)!r} is a folder; give a file path")
    try:
        _journal_head(path)
        # absolute: Optuna's lock is a symlink to this path, and a relative one dangles
        # (runs/x/study.journal.lock -> runs/x/study.journal), so a lock left by a killed
        # worker was never seen as stale and the next tune waited for it forever
        storage = JournalStorage(JournalFileBackend(str(path.absolute())))
    except OSError as error:
        raise StorageError(f"cannot open the journal file {str(path)!r}: {error}") from None
    except (ValueError, LookupError, TypeError, AttributeError) as error:  # lines not Optuna's
        raise StorageError(
            f"{str(path)!r} is not an Optuna journal file ({type(error).__name__}: {error});"
            " give a new file's path or one a tune wrote"
        ) from None
    _where[storage] = str(path)
    return storage


def _journal_head(path: Path) -> None:
    """ValueError unless ``path`` is absent, empty or starts with an Optuna journal record (a
    JSON object with a known ``op_code``); Optuna itself reads a single bad line as a
    half-written last record and fails only once it has appended to it."""
    from optuna.storages.journal._storage import JournalOperation

    if not path.is_file() or path.stat().st_size == 0:
        return
    with path.open("rb") as file:
        line = file.readline(1 << 20)
    record = json.loads(line)
    codes = {op.value for op in JournalOperation}
    if not isinstance(record, dict) or record.get("op_code") not in codes:
        raise ValueError(f"its first line is no journal record: {line[:60]!r}")


def _parse(url: str, given: str | None = None):
    """SQLAlchemy's URL of ``url``, or StorageError (its own message may echo the password)."""
    from sqlalchemy.engine import make_url

    given = given or url
    rest = url.partition("://")[2]
    authority = rest.split("/", 1)[0]
    if authority.count("@") > 1:
        raise StorageError(
            f"malformed storage URL {redact(given)!r}: more than one '@' before the host "
            "(write an '@' in a password as %40)"
        )
    try:
        parsed = make_url(url)
    except Exception:  # noqa: BLE001 (any parse error; its text may hold the password)
        raise StorageError(f"malformed storage URL {redact(given)!r}; {ACCEPTED}") from None
    raw = authority.rpartition("@")[0].partition(":")[2] if "@" in authority else None
    _remember_secret(parsed.password, raw)
    return parsed


def _rdb(
    url: str, parsed, interval: float, engine_kwargs: dict, given: str
) -> optuna.storages.BaseStorage:
    import sqlalchemy.exc

    shown = redact(given)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)
        try:
            storage = _RDBStorage(
                parsed.render_as_string(hide_password=False),
                engine_kwargs=engine_kwargs,
                heartbeat_interval=_whole_if_whole(interval),
                grace_period=_whole_if_whole(2 * interval),
                heartbeat_stale_trial_callback=retry,
            )
        except ImportError:
            raise StorageError(
                f"{shown!r} needs a driver that is not installed: for PostgreSQL "
                "pip install 'psycopg[binary]' (or lrkit[postgres])"
            ) from None
        except sqlalchemy.exc.ArgumentError as error:
            raise StorageError(
                f"bad storage URL {shown!r}: {redact(str(error))}; {ACCEPTED}"
            ) from None
        except (sqlalchemy.exc.DBAPIError, optuna.exceptions.StorageInternalError) as error:
            raise StorageError(
                f"cannot reach the database {shown!r}: {_first_line(error)} "
                "(is the server running, and are the host, port, user and password right?)"
            ) from None
    storage._shown = shown
    _where[storage] = shown
    return storage


def _whole_if_whole(seconds: float) -> int | float:
    return int(seconds) if float(seconds).is_integer() else seconds


def _sqlite(url: str, interval: float) -> optuna.storages.BaseStorage:
    parsed = _parse(url)
    database = parsed.database or ""
    if database and database != ":memory:" and not Path(database).parent.is_dir():
        raise StorageError(
            f"the folder of the SQLite file {database!r} does not exist (from {redact(url)!r})"
        )
    return _rdb(url, parsed, interval, {"connect_args": {"timeout": 30}}, url)


def _postgres(url: str, interval: float) -> optuna.storages.BaseStorage:
    given = url
    scheme, _, rest = url.partition("://")
    if scheme.lower() in ("postgresql", "postgres"):
        url = "postgresql+psycopg://" + rest  # psycopg 3, not SQLAlchemy's default psycopg2
    parsed = _parse(url, given)
    if not parsed.host:
        raise StorageError(f"storage URL {redact(given)!r} names no host; {ACCEPTED}")
    # A worker keeps one connection open between calls; a second at once (the trial's
    # heartbeat thread, Optuna's schema check) is opened for the call and closed after it.
    kwargs = {
        "pool_size": 1,
        "max_overflow": 2,
        "connect_args": {"connect_timeout": CONNECT_TIMEOUT},
    }
    return _rdb(url, parsed, interval, kwargs, given)


def _grpc(url: str) -> optuna.storages.BaseStorage:
    match = re.fullmatch(
        r"grpc://(?P<host>[A-Za-z0-9.\-_]+|\[[0-9A-Fa-f:]+\]):(?P<port>\d{1,5})/?", url
    )
    if match is None or not 0 < int(match.group("port")) < 65536:
        raise StorageError(f"malformed gRPC storage URL {redact(url)!r}: expected grpc://HOST:PORT")
    host, port = match.group("host").strip("[]"), int(match.group("port"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        storage = optuna.storages.GrpcStorageProxy(host=host, port=port)
    try:
        storage.wait_server_ready(timeout=CONNECT_TIMEOUT)
    except ConnectionError:
        storage.close()
        raise StorageError(
            f"cannot reach the gRPC storage proxy {url!r} within {CONNECT_TIMEOUT} s "
            "(is optuna.storages.run_grpc_proxy_server running there?)"
        ) from None
    _where[storage] = url
    return storage
