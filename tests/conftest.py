"""statusdb's test harness: one throwaway PostgreSQL cluster per test session (xdist worker).

The test pyramid (`pytest_collection_modifyitems` marks each test by what it needs):

* `unit`: no database fixture. PostgreSQL is started lazily (the session `cluster` fixture),
  so a worker that runs only these never starts it.
* `shared_db`: `conn` only. The migrations are applied once into a template database; `conn`
  is a `RollbackConnection` to one shared clone of it per session (one per `session_zone`),
  inside one transaction rolled back at teardown. Its commits are savepoints, autocommit and a
  commit inside an operation fail the test, and a footprint check after each test fails a test
  that left anything committed (and clones the shared database again). No clone per test.
* the rest has a database of its own: `fresh_dsn` (alias `dsn`; `connect`, `aconn`) is a fresh
  copy of the template (`CREATE DATABASE ... TEMPLATE`), dropped after the test; `conn` in such
  a test, or in one marked `@pytest.mark.fresh_db`, is a plain connection to it and may commit.
  `empty_dsn` is a fresh, empty (unmigrated) database, for migration tests.
* `slow` (marked in the modules): system tests (replicas, PgBouncer, faults, migrations,
  packaging, stress); collected first so that they do not end last on one worker.

`make test` runs everything (with coverage and its floor); `make test-fast` (`--fast`) runs
the `unit` and `shared_db` tests that are not `slow`.

* `server_owned_tmp_dir`: a temp folder the PostgreSQL server user can own (for tests that run
  clusters of their own; as root pytest's `tmp_path` is unreachable for the `postgres` user).
"""

from __future__ import annotations

import compileall
import contextlib
import importlib.util
import os
import pwd
import shutil
import signal
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

import psycopg
import pytest
from factories import APP_LOGIN, READER_LOGIN, SESSION_ZONES, ensure_login
from psycopg import sql
from psycopg.conninfo import make_conninfo
from psycopg.pq import TransactionStatus
from psycopg.rows import TupleRow
from pytest_postgresql.executors import NoopExecutor
from pytest_postgresql.factories.noprocess import xdistify_dbname
from pytest_postgresql.janitor import DatabaseJanitor

from statusdb.infra import migrations
from statusdb.tooling import localpg


def _memory_backed_temp_root() -> str | None:
    """Where the test clusters (and every temp folder of the test process) go.

    `STATUSDB_TEST_TMPDIR` when set; else /dev/shm when it is a tmpfs with room (>= 4 GiB
    free); else None (the system's temp folder). Measured on the 2-core development machine
    (ext4 mounted with `discard`): `CREATE DATABASE ... TEMPLATE` of the migrated template took
    ~0.3 s of CPU, almost all of it system time creating and writing the ~1,000 files of a
    database, against ~0.015 s on tmpfs; `fresh_dsn` does it for each of ~650 tests, migrations
    and initdb write files too. The clusters have fsync off: nothing in them outlives the run.
    """
    chosen = os.environ.get("STATUSDB_TEST_TMPDIR")
    if chosen:
        return chosen
    shm = Path("/dev/shm")
    try:
        mounts = Path("/proc/mounts").read_text(encoding="utf-8").splitlines()
        tmpfs = any(line.split()[1:3] == [str(shm), "tmpfs"] for line in mounts)
        if tmpfs and os.access(shm, os.W_OK) and shutil.disk_usage(shm).free >= 4 << 30:
            return str(shm)
    except (OSError, IndexError):
        pass
    return None


TEMP_ROOT = _memory_backed_temp_root()
if TEMP_ROOT is not None:
    tempfile.tempdir = TEMP_ROOT  # mkdtemp, pytest's tmp_path, bench's clusters: all there


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
    if not hasattr(config, "workerinput"):  # once, in the main process (before any worker)
        _compile_statusdb()
        if getattr(config.option, "numprocesses", None):
            _rewrite_test_modules(config)


def _compile_statusdb() -> None:
    """Byte-compile statusdb (and tests/) before the run, for the ~100 Python subprocesses.

    The suite runs `statusdb` commands, documentation blocks and workers as subprocesses; each
    imports statusdb. Its editable install has no .pyc until Python writes one, and with
    PYTHONDONTWRITEBYTECODE set (as on CI's machine) none is ever written, so every subprocess
    compiled the package again (~0.15-0.3 s of CPU each). compileall writes them regardless (a
    build artefact, git-ignored) and skips files whose .pyc is current.
    """
    root = Path(__file__).resolve().parent.parent
    for directory in (root / "statusdb", root / "tests"):
        compileall.compile_dir(directory, quiet=2, workers=1)


def _rewrite_test_modules(config: pytest.Config) -> None:
    """Write pytest's assertion-rewritten .pyc of the test modules once, before the workers.

    Each xdist worker collects the whole suite, and rewriting the asserts of ~120 modules was
    ~3 of its ~4 s of CPU at collection; with PYTHONDONTWRITEBYTECODE set it never caches them,
    and N workers started together would all rewrite anyway. Written here (content-hashed,
    as pytest itself writes them), each worker reads them. pytest internals: if they change,
    this does nothing and the workers rewrite as before.
    """
    try:
        from _pytest.assertion import rewrite

        state = config.stash[rewrite.assertstate_key]
        tests = [
            path
            for path in sorted(Path(__file__).resolve().parent.rglob("*.py"))
            if path.name.startswith("test_") or path.name == "conftest.py"
        ]
        for path in [*tests, *_plugin_package_sources(state)]:
            cache_dir = rewrite.get_cache_dir(path)
            pyc = cache_dir / (path.name[:-3] + rewrite.PYC_TAIL)
            if rewrite._read_pyc(path, pyc) is not None:
                continue
            if not rewrite.try_makedirs(cache_dir):
                return
            try:
                source_hash, code = rewrite._rewrite_test(path, config)
            except (SyntaxError, ValueError):
                continue  # left to pytest, which reports it if the module is ever imported
            rewrite._write_pyc(state, code, source_hash, pyc)
    except (ImportError, AttributeError, KeyError, TypeError, ValueError, OSError):
        return


def _plugin_package_sources(state: Any) -> list[Path]:
    """The .py files of the installed packages pytest rewrites as plugins' (hypothesis's).

    pytest rewrites the asserts of every module of a plugin's distribution as it is imported:
    hypothesis's ~75 modules in each process (the main one and each worker), never cached
    under PYTHONDONTWRITEBYTECODE: ~0.4 s of CPU per process, more under coverage's tracer.
    """
    hook = getattr(state, "hook", None)
    tests_dir = Path(__file__).resolve().parent
    sources: list[Path] = []
    for name in sorted(getattr(hook, "_must_rewrite", ())):
        if "." in name or name in sys.modules:
            continue  # already imported (and rewritten, or not) by this process: as before
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            continue  # a single-module plugin: rewritten at startup, before this runs
        for location in spec.submodule_search_locations:
            root = Path(location).resolve()
            if root == tests_dir or tests_dir in root.parents:
                continue
            sources.extend(sorted(root.rglob("*.py")))
    return sources


#: Fixtures that give a test a database (or clusters) of its own: not in `make test-fast`.
_OWN_DATABASE_FIXTURES = frozenset(
    {"fresh_dsn", "empty_dsn", "cluster", "statusdb_postgresql_proc", "server_owned_tmp_dir"}
)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--fast",
        action="store_true",
        help="run only the tests that need no database (unit) or only `conn` on the shared "
        "database (shared_db), not slow ones: `make test-fast`",
    )


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test by what it needs (the test pyramid), run the slow ones first.

    * `unit`: no database fixture at all (PostgreSQL is not even started for it);
    * `shared_db`: `conn` (and builders on it) only: the shared database, rolled back;
    * neither: a database or a cluster of its own (`fresh_dsn`/`dsn`/`connect`/`aconn`,
      `empty_dsn`, `cluster`, or marked `fresh_db`).
    Slow tests go first so that, spread over the xdist workers, the long ones do not end last.
    With `--fast`, only `unit` and `shared_db` tests that are not `slow` are kept.
    """
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        own = bool(names & _OWN_DATABASE_FIXTURES) or item.get_closest_marker("fresh_db")
        if not own:
            item.add_marker(pytest.mark.shared_db if "conn" in names else pytest.mark.unit)
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
    if getattr(config.option, "loadgroup", False):  # set on the xdist workers
        _suffix_xdist_groups(items)
    if config.getoption("--fast"):
        kept = [
            item
            for item in items
            if (item.get_closest_marker("unit") or item.get_closest_marker("shared_db"))
            and not item.get_closest_marker("slow")
        ]
        keep = set(kept)
        dropped = [item for item in items if item not in keep]
        if dropped:
            config.hook.pytest_deselected(items=dropped)
            items[:] = kept


def _suffix_xdist_groups(items: list[pytest.Item]) -> None:
    """`--dist loadgroup` for pytest >= 9.2: end each grouped test's node id with `@group`.

    pytest-xdist (3.8) sends the tests marked `xdist_group("name")` to one worker by reading
    that suffix from the node ids its workers report; it appends it by assigning
    `item._nodeid`, which pytest 9.2 no longer reads (a node id is `item._id` now). Without the
    suffix every grouped test was scheduled on its own: tests/test_failover.py's formation
    (~25 s) and tests/test_replicas.py's replicas (~10 s) were each built on both workers.
    """
    for item in items:
        names = sorted(
            {
                str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
                for mark in item.iter_markers("xdist_group")
            }
        )
        if not names or "@" in item.nodeid.rpartition("]")[2]:
            continue  # not grouped, or xdist's own suffix is already there
        item._id = type(item._id).parse(f"{item.nodeid}@{'_'.join(names)}")


@pytest.fixture(scope="session")
def cluster() -> Iterator[localpg.LocalCluster]:
    """The session's PostgreSQL cluster (fresh temp folder, fsync off)."""
    _reap_orphaned_session_clusters()
    base = make_server_owned_dir(_SESSION_PREFIX)
    (base / _OWNER_FILE).write_text(str(os.getpid()))
    pg = localpg.LocalCluster(base / "pgdata", fsync=False)
    try:
        pg.initialize()
        with (pg.data_dir / "postgresql.conf").open("a", encoding="utf-8") as conf:
            # Bounds the WAL kept between checkpoints (1 GB by default): on tmpfs
            # (`TEMP_ROOT`) it is memory. Clones write ~10 MB of WAL each.
            conf.write("max_wal_size = '256MB'\n")
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


CLONE_STRATEGY = os.environ.get("STATUSDB_TEST_CLONE_STRATEGY", "WAL_LOG").upper()
"""How `fresh_dsn` copies the template (CREATE DATABASE ... STRATEGY). Measured in this suite
(84 `dsn` tests, twice each, alternated): FILE_COPY's setups took 1.5-1.7x WAL_LOG's, its two
checkpoints costing more than WAL-logging the ~9 MB template; so PG 15's default stays."""


class Databases:
    """The session's databases: fresh clones of the migrated template, and the shared ones.

    A shared database is cloned once per session (one per TimeZone asked for) and used by every
    `conn`-only test in a transaction that is rolled back at teardown. `footprint` is what a
    test that committed would change (row counts of every table, the catalog's size, the
    database's settings): compared after each test, a difference fails the test and the shared
    database is cloned again, so a committing test cannot leak into the next ones.
    """

    def __init__(self, cluster: localpg.LocalCluster, template: str, base_name: str) -> None:
        self.cluster = cluster
        self.template = template
        self.base_name = base_name
        self._admin = psycopg.connect(cluster.dsn(), autocommit=True)
        self._count = 0
        self._shared: dict[str | None, str] = {}
        self._footprints: dict[str, tuple[Any, ...]] = {}
        self._footprint_sql: dict[str, sql.Composed] = {}
        #: SET CONSTRAINTS ... DEFERRED for each shared database's INITIALLY DEFERRED ones.
        self.deferred: dict[str, sql.Composed] = {}

    def close(self) -> None:
        self._admin.close()

    def clone(self, suffix: str | None = None) -> str:
        """A new database copied from the migrated template; its name."""
        self._count += 1
        dbname = f"{self.base_name}_{suffix or self._count}"
        self._admin.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY {}").format(
                sql.Identifier(dbname), sql.Identifier(self.template), sql.SQL(CLONE_STRATEGY)
            )
        )
        return dbname

    def drop(self, dbname: str) -> None:
        self._admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname))
        )

    def shared(self, zone: str | None) -> str:
        """The shared database for connections in `zone` (None: the server's default)."""
        dbname = self._shared.get(zone)
        if dbname is None:
            dbname = self._make_shared(zone)
        return dbname

    def _make_shared(self, zone: str | None) -> str:
        suffix = "shared" if zone is None else f"shared_{len(self._shared)}"
        dbname = self.clone(suffix)
        if zone is not None:
            self._admin.execute(
                sql.SQL("ALTER DATABASE {} SET TimeZone = {}").format(
                    sql.Identifier(dbname), sql.Literal(zone)
                )
            )
        with psycopg.connect(self.cluster.dsn(dbname), autocommit=True) as check:
            tables = check.execute(
                """SELECT format('%I.%I', schemaname, tablename) FROM pg_tables
                   WHERE schemaname NOT IN ('pg_catalog', 'information_schema')
                   ORDER BY 1"""
            ).fetchall()
            counts = [
                sql.SQL("(SELECT count(*) FROM {})").format(sql.SQL(table)) for (table,) in tables
            ]
            query = sql.SQL(
                "SELECT (SELECT count(*) FROM pg_class), (SELECT count(*) FROM pg_proc),"
                " (SELECT count(*) FROM pg_db_role_setting s JOIN pg_database d"
                "  ON d.oid = s.setdatabase WHERE d.datname = current_database()), {}"
            ).format(sql.SQL(", ").join(counts))
            self._footprint_sql[dbname] = query
            deferred = check.execute(
                """SELECT format('%I.%I', n.nspname, c.conname) FROM pg_constraint c
                   JOIN pg_namespace n ON n.oid = c.connamespace
                   WHERE c.condeferrable AND c.condeferred ORDER BY 1"""
            ).fetchall()
            if deferred:
                self.deferred[dbname] = sql.SQL("SET CONSTRAINTS {} DEFERRED").format(
                    sql.SQL(", ").join(sql.SQL(name) for (name,) in deferred)
                )
            self._footprints[dbname] = self._footprint(check, dbname)
        self._shared[zone] = dbname
        return dbname

    def _footprint(self, connection: psycopg.Connection[TupleRow], dbname: str) -> tuple[Any, ...]:
        row = connection.execute(self._footprint_sql[dbname]).fetchone()
        assert row is not None
        return tuple(row)

    def check_shared(self, zone: str | None, connection: psycopg.Connection[TupleRow]) -> bool:
        """Whether the shared database is as it was cloned (else: clone it again)."""
        dbname = self._shared[zone]
        footprint = self._footprint(connection, dbname)
        connection.rollback()
        if footprint == self._footprints[dbname]:
            return True
        connection.close()
        del self._shared[zone]
        self.drop(dbname)
        return False


@pytest.fixture(scope="session")
def databases(
    cluster: localpg.LocalCluster, statusdb_postgresql_proc: NoopExecutor
) -> Iterator[Databases]:
    """This session's clones of the migrated template (`fresh_dsn`, `conn`)."""
    template = statusdb_postgresql_proc.template_dbname
    assert template is not None
    dbs = Databases(cluster, template, statusdb_postgresql_proc.dbname)
    try:
        yield dbs
    finally:
        dbs.close()


_COMMIT_POINT = "statusdb_test_commit"


def _inside_an_operation() -> bool:
    """Whether an operation's body is being driven (statusdb's executor is on the stack)."""
    frame = sys._getframe(2)
    while frame is not None:
        code = frame.f_code
        if code.co_name in ("_drive_sync", "run_sync") and code.co_filename.endswith("executor.py"):
            return True
        frame = frame.f_back  # type: ignore[assignment]
    return False


class RollbackConnection(psycopg.Connection[TupleRow]):
    """`conn` on the shared database: whatever the test does is rolled back at teardown.

    The test's first statement opens the one real transaction; what the test calls a commit is a
    savepoint of it, and a rollback goes back to the last such savepoint. So a test can commit
    its setup and roll back after an expected error as on a database of its own, with these
    differences (a test that depends on them asks for `fresh_dsn`, see `conn`): `now()` and
    `pg_current_xact_id()` stay those of the one transaction (row history and timestamps of
    "separate transactions" are then one transaction's); a commit checks the deferred
    constraints (SET CONSTRAINTS ALL IMMEDIATE) and puts them back to deferred; nothing becomes
    visible to other connections and LISTEN/NOTIFY never deliver.

    Fails the test, because they cannot be emulated or must not happen: autocommit, and a
    commit while an operation runs (operations never commit).
    """

    deferred_constraints: sql.Composed | None = None
    """SET CONSTRAINTS ... DEFERRED for the schema's INITIALLY DEFERRED constraints, if any."""

    _commit_points = 0

    def _refuse(self, what: str) -> NoReturn:
        pytest.fail(
            f"{what} on `conn`, a transaction on the shared database rolled back at teardown. "
            "A test that needs it is marked `@pytest.mark.fresh_db` (a database of its own, "
            "cloned) or uses `dsn` and its own connections.",
            pytrace=True,
        )

    def commit(self) -> None:
        if _inside_an_operation():
            self._refuse("an operation called commit()")
        if self._num_transactions:
            raise psycopg.ProgrammingError(
                "Explicit commit() forbidden within a Transaction context."
            )
        status = self.info.transaction_status
        if status == TransactionStatus.IDLE:
            return
        if status == TransactionStatus.INERROR:
            self.rollback()  # COMMIT of a failed transaction rolls it back
            return
        try:
            with self.cursor() as cur:
                cur.execute("SET CONSTRAINTS ALL IMMEDIATE")
                if self.deferred_constraints is not None:
                    cur.execute(self.deferred_constraints)
        except psycopg.Error:
            self.rollback()  # a commit that fails leaves nothing of the transaction
            raise
        point = sql.Identifier(_COMMIT_POINT)
        with self.cursor() as cur:
            if self._commit_points:
                cur.execute(sql.SQL("RELEASE SAVEPOINT {}").format(point))
            cur.execute(sql.SQL("SAVEPOINT {}").format(point))
        self._commit_points = 1

    def rollback(self) -> None:
        if (
            self._commit_points
            and not self._num_transactions
            and self.info.transaction_status
            in (TransactionStatus.INTRANS, TransactionStatus.INERROR)
        ):
            self.execute(sql.SQL("ROLLBACK TO SAVEPOINT {}").format(sql.Identifier(_COMMIT_POINT)))
            return
        super().rollback()

    def rollback_all(self) -> None:
        """The real rollback (teardown)."""
        self._commit_points = 0
        super().rollback()

    def set_autocommit(self, value: bool) -> None:
        if value:
            self._refuse("autocommit = True")
        super().set_autocommit(value)

    def transaction(  # type: ignore[override]
        self, savepoint_name: str | None = None, force_rollback: bool = False
    ) -> contextlib.AbstractContextManager[psycopg.Transaction]:
        if self.info.transaction_status == TransactionStatus.IDLE:
            # Open the implicit transaction first, so that the block is a savepoint of it
            # rather than a transaction of its own that would commit.
            self.execute("SELECT 1")
        return super().transaction(savepoint_name, force_rollback)


def uses_fresh_database(request: pytest.FixtureRequest) -> bool:
    """Whether this test has its own cloned database: it is marked `fresh_db`, or uses
    `fresh_dsn` (directly or through `dsn`, `connect` or `aconn`)."""
    return (
        "fresh_dsn" in request.fixturenames
        or request.node.get_closest_marker("fresh_db") is not None
    )


@pytest.fixture
def fresh_dsn(databases: Databases) -> Iterator[str]:
    """Conninfo string of this test's own copy of the migrated template, dropped afterwards.

    For tests that commit, open several connections, LISTEN, connect as other roles or alter the
    database; `conn` in such a test is a connection to this database (autocommit off).
    """
    dbname = databases.clone()
    try:
        yield databases.cluster.dsn(dbname)
    finally:
        databases.drop(dbname)


@pytest.fixture
def dsn(fresh_dsn: str) -> str:
    """Conninfo string of this test's freshly migrated database (`fresh_dsn`)."""
    return fresh_dsn


@pytest.fixture
def conn(request: pytest.FixtureRequest) -> Iterator[psycopg.Connection[TupleRow]]:
    """A connection (autocommit off) to a migrated database.

    * In a test that has its own database (it uses `fresh_dsn`, `dsn`, `connect` or `aconn`):
      a connection to it, which may commit.
    * Otherwise: a `RollbackConnection` to the session's shared migrated database (in the
      `session_zone`'s TimeZone if the test uses it); the test's transaction is rolled back at
      teardown and must not commit. Most tests need no more: no database is cloned for them.
    """
    if uses_fresh_database(request):
        zone_first = "session_zone" in request.fixturenames
        if zone_first:
            request.getfixturevalue("session_zone")  # sets the database's TimeZone first
        connection = psycopg.connect(request.getfixturevalue("fresh_dsn"))
        try:
            yield connection
        finally:
            connection.close()
        return
    zone: str | None = None
    if "session_zone" in request.fixturenames:
        zone = request.getfixturevalue("session_zone")
    dbs: Databases = request.getfixturevalue("databases")
    shared_db = dbs.shared(zone)
    shared = RollbackConnection.connect(dbs.cluster.dsn(shared_db))
    shared.deferred_constraints = dbs.deferred.get(shared_db)
    try:
        yield shared
    finally:
        checker: psycopg.Connection[TupleRow] = shared
        try:
            shared.rollback_all()
        except psycopg.Error:  # closed by the test, or the server ended it
            shared.close()
            checker = psycopg.connect(dbs.cluster.dsn(dbs.shared(zone)))
        try:
            clean = dbs.check_shared(zone, checker)
        finally:
            checker.close()
    if not clean:
        pytest.fail(
            "this test committed on `conn`, a transaction on the shared database (rolled back "
            "at teardown): mark it `@pytest.mark.fresh_db` (a database of its own, cloned)"
        )


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
def session_zone(request: pytest.FixtureRequest) -> str:
    """This test's `conn` and database use the TimeZone `request.param` (new connections too).

    On the test's own database (`fresh_dsn`) by ALTER DATABASE; otherwise `conn` is on a shared
    database made for that zone.
    """
    zone: str = request.param
    if uses_fresh_database(request):
        with psycopg.connect(request.getfixturevalue("fresh_dsn"), autocommit=True) as admin:
            admin.execute(
                sql.SQL("ALTER DATABASE {} SET TimeZone = {}").format(
                    sql.Identifier(admin.info.dbname), sql.Literal(zone)
                )
            )
    return zone


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
