"""Migrations are safe to run on a live database.

* A migration that fails half-way leaves the schema exactly as it was: yoyo runs each file in
  one transaction and PostgreSQL's DDL is transactional. Tested with the real migrations plus a
  deliberately failing one, in a copy of the migrations folder, compared with `pg_dump`.
* Every migration (forward and rollback) first sets `lock_timeout` (and `statement_timeout`),
  so it cannot queue behind a long transaction while every reader queues behind it. Tested
  statically on every file, and live: a migration that needs ACCESS EXCLUSIVE on a table a
  long transaction reads gives up after its lock_timeout, and a reader queued behind it then
  proceeds.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.rows import TupleRow

from statusdb.db.resources import migrations_dir
from statusdb.infra import migrations
from statusdb.tooling import localpg

pytestmark = pytest.mark.slow

Conn = psycopg.Connection[TupleRow]

#: The longest lock_timeout a migration may set: a reader may wait this long behind it.
MAX_LOCK_TIMEOUT_S = 10.0
#: The lock_timeout of the live probe (short, to keep the test fast).
PROBE_LOCK_TIMEOUT = "1s"

_SETTING = re.compile(r"SET LOCAL (\w+) = '(\d+)(ms|s|min)';")
_UNITS = {"ms": 0.001, "s": 1.0, "min": 60.0}


def _migration_files() -> list[Path]:
    return sorted(migrations_dir().glob("*.sql"))


def _statements_after_comments(path: Path) -> list[str]:
    """The file's first lines of SQL, comments and blank lines skipped."""
    lines = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line and not line.startswith("--")]


def _forward_ids() -> list[str]:
    return [p.stem for p in _migration_files() if not p.stem.endswith(".rollback")]


@pytest.mark.parametrize("path", _migration_files(), ids=lambda p: p.name)
def test_every_migration_first_sets_its_timeouts(path: Path) -> None:
    first, second, *_ = _statements_after_comments(path)
    lock = _SETTING.fullmatch(first)
    assert lock is not None, f"{path.name} must begin with SET LOCAL lock_timeout = '...';"
    assert lock.group(1) == "lock_timeout"
    seconds = int(lock.group(2)) * _UNITS[lock.group(3)]
    assert 0 < seconds <= MAX_LOCK_TIMEOUT_S
    statement = _SETTING.fullmatch(second)
    assert statement is not None, f"{path.name}: SET LOCAL statement_timeout must come next"
    assert statement.group(1) == "statement_timeout"
    assert int(statement.group(2)) > 0


def test_every_forward_migration_has_a_rollback() -> None:
    names = {p.name for p in _migration_files()}
    for migration_id in _forward_ids():
        assert f"{migration_id}.rollback.sql" in names


# --- live -------------------------------------------------------------------------------------


@pytest.fixture
def migrations_copy(tmp_path: Path) -> Path:
    """A copy of the project's migrations folder, to add a migration to."""
    folder = tmp_path / "migrations"
    shutil.copytree(migrations_dir(), folder)
    return folder


def _header(lock_timeout: str = "5s") -> str:
    last = _forward_ids()[-1]
    return (
        f"-- depends: {last}\n"
        f"SET LOCAL lock_timeout = '{lock_timeout}';\n"
        "SET LOCAL statement_timeout = '5min';\n"
    )


def _add_migration(folder: Path, name: str, body: str, *, lock_timeout: str = "5s") -> str:
    (folder / f"{name}.sql").write_text(_header(lock_timeout) + body, encoding="utf-8")
    (folder / f"{name}.rollback.sql").write_text(
        "SET LOCAL lock_timeout = '5s';\nSET LOCAL statement_timeout = '5min';\n",
        encoding="utf-8",
    )
    return name


def schema_dump(cluster: localpg.LocalCluster, dsn: str) -> str:
    """The database's whole schema (and yoyo's record of applied migrations), as pg_dump says."""
    params = psycopg.conninfo.conninfo_to_dict(dsn)
    result = subprocess.run(
        [
            str(cluster.bindir / "pg_dump"),
            "--schema-only",
            "--no-owner",
            "--host",
            str(params["host"]),
            "--port",
            str(params["port"]),
            "--username",
            str(params["user"]),
            str(params["dbname"]),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    with psycopg.connect(dsn) as conn:
        applied = conn.execute(
            "SELECT migration_id FROM _yoyo_migration ORDER BY migration_id"
        ).fetchall()
    # Recent pg_dump versions fence the dump with \restrict <random key>: not schema.
    dump = "\n".join(
        line
        for line in result.stdout.splitlines()
        if not line.startswith(("\\restrict", "\\unrestrict"))
    )
    return dump + "\n-- applied: " + ", ".join(str(row[0]) for row in applied)


def test_a_migration_failing_half_way_leaves_the_schema_as_it_was(
    cluster: localpg.LocalCluster, empty_dsn: str, migrations_copy: Path
) -> None:
    applied = migrations.apply(empty_dsn)
    assert applied == _forward_ids()
    before = schema_dump(cluster, empty_dsn)
    assert "CREATE TABLE public.status_change" in before
    bad = _add_migration(
        migrations_copy,
        "9999_fails_half_way",
        # Each statement but the last would change the schema; the last one fails.
        "CREATE TABLE half_way (id bigint PRIMARY KEY);\n"
        "ALTER TABLE team ADD COLUMN half_way text;\n"
        "CREATE INDEX team_half_way_idx ON team (half_way);\n"
        "DROP TABLE status_change;\n"
        "SELECT 1 / 0;\n",
    )
    with pytest.raises(migrations.MigrationError, match=f"could not apply migration {bad}"):
        migrations.apply(empty_dsn, directory=migrations_copy)
    assert schema_dump(cluster, empty_dsn) == before
    status = dict(migrations.status(empty_dsn, directory=migrations_copy))
    assert status.pop(bad) is False
    assert all(status.values())
    # The lock yoyo holds while migrating was released: the next migrator is not stuck.
    assert migrations.apply(empty_dsn) == []


@pytest.fixture
def long_reader(dsn: str) -> Iterator[Conn]:
    """A long transaction that has read `team` and holds its ACCESS SHARE lock."""
    with psycopg.connect(dsn) as conn:
        conn.execute("SELECT count(*) FROM team").fetchone()
        yield conn
        conn.rollback()


def test_a_migration_waiting_for_a_lock_gives_up_after_its_lock_timeout(
    dsn: str, migrations_copy: Path, long_reader: Conn
) -> None:
    probe = _add_migration(
        migrations_copy,
        "9999_needs_access_exclusive",
        "ALTER TABLE team ADD COLUMN probe text;\n",
        lock_timeout=PROBE_LOCK_TIMEOUT,
    )
    outcome: list[BaseException | str] = []
    reader_waited: list[float] = []

    def migrate() -> None:
        try:
            migrations.apply(dsn, directory=migrations_copy)
            outcome.append("applied")
        except BaseException as exc:
            outcome.append(exc)

    started = time.monotonic()
    migrator = threading.Thread(target=migrate, daemon=True)
    migrator.start()
    with psycopg.connect(dsn, autocommit=True) as admin:
        _wait_until_waiting_for(admin, "ALTER TABLE team")
        # A reader arriving now queues behind the migration's ACCESS EXCLUSIVE request...
        with psycopg.connect(dsn, autocommit=True) as reader:
            queued = time.monotonic()
            reader.execute("SELECT count(*) FROM team").fetchone()
            reader_waited.append(time.monotonic() - queued)
    migrator.join(60)
    elapsed = time.monotonic() - started
    if migrator.is_alive():  # the mechanism failed; unblock the thread before failing
        long_reader.rollback()
        migrator.join(60)
        pytest.fail("the migration queued behind the long transaction instead of giving up")
    assert len(outcome) == 1
    error = outcome[0]
    assert isinstance(error, migrations.MigrationError)
    assert "lock timeout" in str(error)
    assert probe in str(error)
    # ...and gets through once the migration gives up, after about its lock_timeout.
    assert 0.8 <= elapsed < 30
    assert reader_waited[0] < 30
    with psycopg.connect(dsn) as check:
        assert dict(migrations.status(dsn, directory=migrations_copy))[probe] is False
        assert check.execute(
            "SELECT count(*) FROM information_schema.columns"
            " WHERE table_name = 'team' AND column_name = 'probe'"
        ).fetchone() == (0,)
    # Once the long transaction ends, the same migration goes through.
    long_reader.rollback()
    assert migrations.apply(dsn, directory=migrations_copy) == [probe]


def _wait_until_waiting_for(admin: Conn, query_start: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        row = admin.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE wait_event_type = 'Lock' AND starts_with(query, %s)",
            (query_start,),
        ).fetchone()
        if row is not None and row[0] > 0:
            return
        time.sleep(0.01)
    pytest.fail(f"no session started waiting on a lock for {query_start!r}")


_LEAVES_SESSION_STATE = """
SET statusdb_probe.leftover = 'yes';
SET search_path = pg_catalog;
SET ROLE NONE;
CREATE TEMP TABLE leftover (x int);
SELECT pg_advisory_lock(4242);
PREPARE leftover_statement AS SELECT 1;
LISTEN leftover_channel;
CREATE TABLE public.session_probe (migration text, pid int);
INSERT INTO public.session_probe VALUES ('first', pg_backend_pid());
"""

_FINDS_NO_SESSION_STATE = """
DO $$
BEGIN
    IF coalesce(current_setting('statusdb_probe.leftover', true), '') <> '' THEN
        RAISE EXCEPTION 'a setting reached the next migration';
    END IF;
    IF current_setting('search_path') <> '"$user", public' THEN
        RAISE EXCEPTION 'search_path reached the next migration: %', current_setting('search_path');
    END IF;
    IF to_regclass('pg_temp.leftover') IS NOT NULL THEN
        RAISE EXCEPTION 'a temp table reached the next migration';
    END IF;
    IF EXISTS (SELECT FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()) THEN
        RAISE EXCEPTION 'a session advisory lock reached the next migration';
    END IF;
    IF EXISTS (SELECT FROM pg_prepared_statements) THEN
        RAISE EXCEPTION 'a prepared statement reached the next migration';
    END IF;
    IF EXISTS (SELECT FROM pg_listening_channels()) THEN
        RAISE EXCEPTION 'a LISTEN reached the next migration';
    END IF;
END
$$;
INSERT INTO public.session_probe VALUES ('second', pg_backend_pid());
"""


def test_a_migrations_session_state_does_not_reach_the_next_one(
    migrations_copy: Path, dsn: str
) -> None:
    """One connection runs all the migrations of a run (`_OneSession`), reset between them:
    what a migration leaves in its session (settings, temp tables, session locks, prepared
    statements, LISTEN) is gone when the next one starts, as on a connection of its own."""
    first = _add_migration(migrations_copy, "9001_leaves_session_state", _LEAVES_SESSION_STATE)
    (migrations_copy / "9002_finds_no_session_state.sql").write_text(
        f"-- depends: {first}\n"
        "SET LOCAL lock_timeout = '5s';\n"
        "SET LOCAL statement_timeout = '5min';\n" + _FINDS_NO_SESSION_STATE,
        encoding="utf-8",
    )
    (migrations_copy / "9002_finds_no_session_state.rollback.sql").write_text(
        "SET LOCAL lock_timeout = '5s';\nSET LOCAL statement_timeout = '5min';\n"
        "DELETE FROM public.session_probe WHERE migration = 'second';\n",
        encoding="utf-8",
    )
    (migrations_copy / f"{first}.rollback.sql").write_text(
        "SET LOCAL lock_timeout = '5s';\nSET LOCAL statement_timeout = '5min';\n"
        "DROP TABLE public.session_probe;\n",
        encoding="utf-8",
    )
    assert migrations.apply(dsn, directory=migrations_copy) == [
        first,
        "9002_finds_no_session_state",
    ]
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT migration, pid FROM public.session_probe").fetchall()
    pids: dict[str, int] = dict(rows)
    assert pids["first"] == pids["second"]  # one connection, not one per migration
    assert migrations.rollback(dsn, 2, directory=migrations_copy) == [
        "9002_finds_no_session_state",
        first,
    ]
