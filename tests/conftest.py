"""statusdb's test harness: one throwaway PostgreSQL cluster per test session.

* `cluster` (session): a `statusdb.tooling.localpg.LocalCluster` in a fresh temp folder, fsync off,
  stopped and deleted at the end of the session.
* The migrations are applied once, into a template database (pytest-postgresql's template
  way); every test that asks for `dsn`, `conn`, `aconn` or `connect` gets its own fresh copy
  of it (`CREATE DATABASE ... TEMPLATE ...`, ~60 ms), dropped after the test.
* `empty_dsn`: a fresh, empty (unmigrated) database per test, for migration tests.
* `server_owned_tmp_dir`: a temp folder the PostgreSQL server user can own (for tests that run
  clusters of their own; as root pytest's `tmp_path` is unreachable for the `postgres` user).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import psycopg
import pytest
from factories import APP_LOGIN, READER_LOGIN, SESSION_ZONES, ensure_login, set_session_zone
from psycopg.conninfo import make_conninfo
from psycopg.rows import TupleRow
from pytest_postgresql import factories
from pytest_postgresql.executors import NoopExecutor
from pytest_postgresql.factories.noprocess import xdistify_dbname
from pytest_postgresql.janitor import DatabaseJanitor

from statusdb.infra import migrations
from statusdb.tooling import localpg

TEST_DBNAME = "statusdb_test"
"""Each test's migrated database; its template is `statusdb_test_tmpl`."""

Connect = Callable[..., psycopg.Connection[TupleRow]]
"""Type of the `connect` fixture: `connect(autocommit: bool = False) -> Connection`."""


def make_server_owned_dir(prefix: str = "statusdb-test-") -> Path:
    """A new temp folder that the PostgreSQL server's OS user owns (root: `postgres`)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    if os.geteuid() == 0:
        server = pwd.getpwnam(localpg.SERVER_OS_USER)
        os.chown(path, server.pw_uid, server.pw_gid)
    return path


@pytest.fixture
def server_owned_tmp_dir() -> Iterator[Path]:
    """A temp folder for a test's own cluster; removed afterwards."""
    path = make_server_owned_dir()
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


_SESSION_PREFIX = "statusdb-pytest-"
_OWNER_FILE = "owner.pid"


def _server_uid() -> int:
    return pwd.getpwnam(localpg.SERVER_OS_USER).pw_uid if os.geteuid() == 0 else os.geteuid()


def _reap_orphaned_session_clusters() -> None:
    """Stop and delete session clusters whose pytest process died without tearing down."""
    for base in Path(tempfile.gettempdir()).glob(f"{_SESSION_PREFIX}*"):
        try:
            if base.stat().st_uid != _server_uid():
                continue
            owner = int((base / _OWNER_FILE).read_text())
            os.kill(owner, 0)
            continue  # its pytest is still running
        except ProcessLookupError:
            pass
        except (OSError, ValueError):
            continue
        with contextlib.suppress(localpg.ClusterError, OSError):
            localpg.LocalCluster(base / "pgdata").stop()
        shutil.rmtree(base, ignore_errors=True)


def _sigterm_as_keyboard_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config: pytest.Config) -> None:
    # `timeout`, CI runners and IDEs stop pytest with SIGTERM, which skips fixture teardown and
    # would leave the session's PostgreSQL running; as an interrupt, pytest still tears down.
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _sigterm_as_keyboard_interrupt)


@pytest.fixture(scope="session")
def cluster() -> Iterator[localpg.LocalCluster]:
    """The session's PostgreSQL cluster (fresh temp folder, fsync off)."""
    _reap_orphaned_session_clusters()
    base = make_server_owned_dir(_SESSION_PREFIX)
    (base / _OWNER_FILE).write_text(str(os.getpid()))
    pg = localpg.LocalCluster(base / "pgdata", fsync=False)
    try:
        pg.initialize()
        pg.start()
        yield pg
    finally:
        try:
            pg.stop()
        finally:
            shutil.rmtree(base, ignore_errors=True)


def _load_migrations(host: str, port: int, user: str, dbname: str, **_: Any) -> None:
    """pytest-postgresql loader: bring the template database to the latest schema."""
    migrations.apply(make_conninfo(host=host, port=port, user=user, dbname=dbname))


@pytest.fixture(scope="session")
def statusdb_postgresql_proc(cluster: localpg.LocalCluster) -> Iterator[NoopExecutor]:
    """pytest-postgresql "process" fixture: the session cluster plus a migrated template."""
    executor = NoopExecutor(
        host=localpg.HOST,
        port=cluster.port,
        user=localpg.SUPERUSER,
        options="",
        dbname=xdistify_dbname(TEST_DBNAME),
    )
    template = DatabaseJanitor(
        user=executor.user,
        host=executor.host,
        port=executor.port,
        dbname=executor.template_dbname,
        as_template=True,
    )
    with template:
        template.load(_load_migrations)
        yield executor


# A fresh copy of the template per test (pytest-postgresql's client fixture).
statusdb_postgresql = factories.postgresql("statusdb_postgresql_proc")


@pytest.fixture
def conn(statusdb_postgresql: psycopg.Connection[TupleRow]) -> psycopg.Connection[TupleRow]:
    """A connection to this test's freshly migrated database (autocommit off)."""
    return statusdb_postgresql


@pytest.fixture(scope="session")
def app_login(cluster: localpg.LocalCluster, statusdb_postgresql_proc: NoopExecutor) -> str:
    """A LOGIN member of statusdb_app (created once; it may exist already)."""
    ensure_login(cluster, APP_LOGIN, "statusdb_app")
    return APP_LOGIN


@pytest.fixture(scope="session")
def reader_login(cluster: localpg.LocalCluster, statusdb_postgresql_proc: NoopExecutor) -> str:
    """A LOGIN member of statusdb_reader (created once; it may exist already)."""
    ensure_login(cluster, READER_LOGIN, "statusdb_reader")
    return READER_LOGIN


@pytest.fixture(scope="session")
def logins(app_login: str, reader_login: str) -> None:
    """Both login users; the group roles exist once the template is migrated."""


@pytest.fixture(params=SESSION_ZONES)
def session_zone(request: pytest.FixtureRequest, conn: psycopg.Connection[TupleRow]) -> str:
    """This test's database and `conn` use the TimeZone `request.param` (new connections too)."""
    zone: str = request.param
    set_session_zone(conn, zone)
    return zone


@pytest.fixture
def dsn(
    statusdb_postgresql: psycopg.Connection[TupleRow],
    statusdb_postgresql_proc: NoopExecutor,
) -> str:
    """Conninfo string of this test's freshly migrated database."""
    proc = statusdb_postgresql_proc
    return make_conninfo(host=proc.host, port=proc.port, user=proc.user, dbname=proc.dbname)


@pytest.fixture
async def aconn(dsn: str) -> AsyncIterator[psycopg.AsyncConnection[TupleRow]]:
    """An async connection to this test's database (autocommit off)."""
    connection = await psycopg.AsyncConnection.connect(dsn)
    try:
        yield connection
    finally:
        await connection.close()


@pytest.fixture
def connect(dsn: str) -> Iterator[Connect]:
    """Open extra connections to this test's database: `connect(autocommit=False)`."""
    opened: list[psycopg.Connection[TupleRow]] = []

    def _connect(autocommit: bool = False) -> psycopg.Connection[TupleRow]:
        connection = psycopg.connect(dsn, autocommit=autocommit)
        opened.append(connection)
        return connection

    try:
        yield _connect
    finally:
        for connection in opened:
            connection.close()


@pytest.fixture
def empty_dsn(cluster: localpg.LocalCluster) -> Iterator[str]:
    """Conninfo string of a fresh, empty (unmigrated) database, dropped after the test."""
    dbname = f"statusdb_empty_{uuid.uuid4().hex[:12]}"
    janitor = DatabaseJanitor(
        user=localpg.SUPERUSER, host=localpg.HOST, port=cluster.port, dbname=dbname
    )
    with janitor:
        yield cluster.dsn(dbname)
