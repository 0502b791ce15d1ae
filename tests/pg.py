"""A throwaway PostgreSQL server for tests and benchmarks: ``initdb`` a temporary data folder,
listen on a free loopback port only, a role with a password, ``max_connections`` set; stopped
(``pg_ctl stop -m immediate``) and removed afterwards.

The binaries come from ``$LRKIT_PG_BIN`` when set (that folder only), else ``/usr/lib/postgresql/15/bin`` (any other
version there, newest first), else ``pg_ctl`` on the PATH. PostgreSQL refuses to run as root,
so as root every command runs as the ``postgres`` user (``runuser``).

``pg_server`` is the pytest fixture (one server per test module; import
``pg_server_fixture`` into the test module to use it). With ``CI=true`` a server that
cannot start FAILS the test; elsewhere the test is skipped, with the reason, when the binaries
(or the ``postgres`` user, or psycopg) are absent.

    with PostgresServer(max_connections=50) as pg:
        pg.url            # postgresql://lrkit:<password>@127.0.0.1:<port>/lrkit
        pg.stop()         # the database going away (clients are disconnected)
        pg.start()        # back, same port and data
        pg.query("SELECT count(*) FROM pg_stat_activity")
"""

from __future__ import annotations

import glob
import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

USER = "lrkit"
DATABASE = "lrkit"


def find_bin() -> Path | None:
    """The folder of ``initdb``/``pg_ctl``, or None."""
    wanted = os.environ.get("LRKIT_PG_BIN")
    if wanted:  # the one folder asked for, no other
        ok = (Path(wanted) / "initdb").exists() and (Path(wanted) / "pg_ctl").exists()
        return Path(wanted) if ok else None
    candidates = ["/usr/lib/postgresql/15/bin"]
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version, reverse=True)
    found = shutil.which("pg_ctl")
    if found:
        candidates.append(str(Path(found).parent))
    for folder in candidates:
        if folder and (Path(folder) / "initdb").exists() and (Path(folder) / "pg_ctl").exists():
            return Path(folder)
    return None


def _version(folder: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", folder.split("/")[-2]))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """One PostgreSQL cluster in a temporary folder (see the module's docstring)."""

    def __init__(self, max_connections: int = 60, durable: bool = False, bin_dir=None):
        self.bin = Path(bin_dir) if bin_dir else find_bin()
        if self.bin is None:
            raise FileNotFoundError(
                "PostgreSQL's initdb/pg_ctl not found (looked in $LRKIT_PG_BIN, "
                "/usr/lib/postgresql/*/bin and the PATH)"
            )
        self.max_connections = max_connections
        self.durable = durable  # False: fsync off (a throwaway server for tests)
        self.password = "pw-" + secrets.token_hex(8)
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="lrkit-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self._as_postgres = os.geteuid() == 0
        self.running = False

    # --- the URL a client uses ------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"postgresql://{USER}:{self.password}@127.0.0.1:{self.port}/{DATABASE}"

    @property
    def optuna_url(self) -> str:
        """The same URL as plain Optuna/SQLAlchemy takes it (naming the psycopg 3 driver)."""
        return self.url.replace("postgresql://", "postgresql+psycopg://", 1)

    # --- life -----------------------------------------------------------------------------------
    def _run(self, *args: str, check: bool = True, timeout: float = 60) -> str:
        command = [str(a) for a in args]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if check and done.returncode != 0:
            raise RuntimeError(
                f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()}"
                f"{self._log_tail()}"
            )
        return done.stdout

    def _log_tail(self) -> str:
        try:
            return "\nserver log: " + self.log.read_text()[-2000:]
        except OSError:
            return ""

    def setup(self) -> PostgresServer:
        """initdb, configure, start, and make the role and database."""
        if self._as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
        os.chmod(self.root, 0o700)
        pwfile = self.root / "superuser.pw"
        pwfile.write_text(secrets.token_hex(16) + "\n")
        if self._as_postgres:
            shutil.chown(pwfile, "postgres", "postgres")
        self._run(
            self.bin / "initdb", "-D", self.data, "-U", "postgres", "--auth-local=trust",
            "--auth-host=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8", "--no-instructions",
        )  # fmt: skip
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.root}'",
            "max_connections": str(self.max_connections),
            "shared_buffers": "'32MB'",
            "logging_collector": "off",
        }
        if not self.durable:
            settings.update(fsync="off", synchronous_commit="off", full_page_writes="off")
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write("\n# lrkit tests\n")
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())
        self.start()
        self.query(f"CREATE ROLE {USER} LOGIN PASSWORD '{self.password}'")
        self.query(f"CREATE DATABASE {DATABASE} OWNER {USER}")
        return self

    def start(self) -> None:
        self._run(self.bin / "pg_ctl", "-D", self.data, "-l", self.log, "-w", "-t", "30", "start")
        self.running = True

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: disconnect the clients, as a shutdown does)."""
        self._run(self.bin / "pg_ctl", "-D", self.data, "-m", mode, "-w", "stop", check=False)
        self.running = False

    def query(self, sql: str, database: str = "postgres") -> str:
        """Run ``sql`` as the superuser (through the server's socket); psql's plain output."""
        return self._run(
            self.bin / "psql", "-h", self.root, "-p", str(self.port), "-U", "postgres",
            "-d", database, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql,
        ).strip()  # fmt: skip

    def connections(self) -> int:
        """Client connections to the lrkit database now (pg_stat_activity)."""
        return int(
            self.query(f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{DATABASE}'")
        )

    def close(self) -> None:
        if self.data.exists():
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        try:
            return self.setup()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc) -> None:
        self.close()


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def _unavailable(reason: str):
    """In CI a missing server is a failure; elsewhere a skip with the reason."""
    if in_ci():
        pytest.fail(f"PostgreSQL tests must run in CI (CI=true), but: {reason}", pytrace=False)
    pytest.skip(reason)


def start_server(**kwargs) -> PostgresServer:
    """A started server, or the test skipped (failed in CI) with the reason."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _unavailable("psycopg (PostgreSQL's driver) is not installed: pip install -e '.[test]'")
    if find_bin() is None:
        _unavailable(
            "PostgreSQL's initdb/pg_ctl not found (apt-get install postgresql-15, "
            "or set LRKIT_PG_BIN to their folder)"
        )
    if os.geteuid() == 0:
        try:
            import pwd

            pwd.getpwnam("postgres")
        except KeyError:
            _unavailable("running as root and there is no 'postgres' user to run the server")
    server = PostgresServer(**kwargs)
    try:
        return server.__enter__()
    except Exception as error:  # noqa: BLE001
        pytest.fail(f"the PostgreSQL server did not start: {error}", pytrace=False)


@pytest.fixture(scope="module", name="pg_server")
def pg_server_fixture():
    """A PostgreSQL server for the test module (``.url`` holds a password: redaction tests)."""
    server = start_server()
    yield server
    server.close()
