"""Apply, roll back and list schema migrations (a thin layer over yoyo-migrations).

Migrations are plain SQL files in `statusdb.db.resources.migrations_dir()`: `NNNN_name.sql` and its
undo `NNNN_name.rollback.sql`. yoyo runs each migration in one transaction and records applied
ones in its `_yoyo_migration` table; a lock row keeps two migrators from running at once.

Every function takes a libpq conninfo string (`host=... dbname=...`), a `postgresql://` URL or
yoyo's own `postgresql+psycopg://` URL form.

Locks and interruptions. yoyo's lock row (`yoyo_lock`) keeps two migrators apart; a migrator
killed with SIGKILL leaves it behind, and the next one waits `lock_timeout` seconds, then says
who holds it and that `break_lock` (`statusdb break-lock`) removes it. statusdb's own migrators
name their sessions `statusdb-migrate pid=N`, so `break_lock` refuses while such a migrator is
still connected. Ctrl-C (SIGINT) while a migration runs cancels its statement: the migration's
transaction rolls back, the lock row is removed, and `MigrationInterrupted` says which
migration was rolled back and which were applied before it.

Who may migrate. Migrations run as the schema's owner (the role that owns yoyo's
`_yoyo_migration` table, or on a new database a role that may create tables in `public`); any
other role is refused before anything is written, with a message naming the role to use.

Rollback safety. A rollback that would lose data, or make the next `apply` re-arm or re-send
something (0001-0006: dropped tables and columns, verification tokens' expiry, the outbox's
delivery state), refuses while the affected tables hold such rows and says what would be lost.
`rollback(..., allow_data_loss=True)` (`statusdb rollback --allow-data-loss`) sets
`statusdb.allow_data_loss = on` for the migration connection, which lets those rollbacks through;
plain yoyo users pass `PGOPTIONS='-c statusdb.allow_data_loss=on'`. The setting is the operator's
safety catch, not a security boundary: any session may set it, and only the schema's owner can
run a rollback at all.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import quote, urlencode

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from yoyo import exceptions as yoyo_exceptions
from yoyo import get_backend, read_migrations
from yoyo import migrations as yoyo_migrations

from statusdb.db import resources
from statusdb.errors import StatusdbError
from statusdb.infra import statements

__all__ = [
    "MigrationError",
    "MigrationInterrupted",
    "apply",
    "break_lock",
    "libpq_dsn",
    "rollback",
    "status",
    "yoyo_url",
]

YOYO_SCHEME = "postgresql+psycopg"
"""yoyo's backend for psycopg 3 (`postgresql://` would need psycopg2)."""

LOCK_TIMEOUT_S = 60
"""How long a migrator waits for another one's lock row by default (seconds)."""

APPLICATION_NAME_PREFIX = "statusdb-migrate pid="
"""The `application_name` of statusdb's migration sessions (`break_lock` looks for them)."""

ALLOW_DATA_LOSS_SETTING = "statusdb.allow_data_loss"
"""The session setting the data-losing rollbacks check (`on`: go ahead)."""


class MigrationError(StatusdbError):
    """A migration could not be read, applied or rolled back."""


class MigrationInterrupted(MigrationError):
    """Ctrl-C (SIGINT) stopped a migration run; the migration under way was rolled back."""


def libpq_dsn(dsn: str) -> str:
    """`dsn` as psycopg/libpq take it: yoyo's `postgresql+psycopg://` form becomes a URL."""
    for scheme in (YOYO_SCHEME, "postgresql+psycopg2", "postgres+psycopg"):
        if dsn.startswith(f"{scheme}://"):
            return "postgresql://" + dsn.removeprefix(f"{scheme}://")
    return dsn


def yoyo_url(dsn: str) -> str:
    """Turn a libpq conninfo string or postgres URL into a `postgresql+psycopg://` URL.

    Every connection parameter travels in the query string, which yoyo passes on to
    `psycopg.connect()` unchanged, so unix socket folders, sslmode etc. survive.
    """
    if dsn.startswith(f"{YOYO_SCHEME}://"):
        return dsn
    try:
        params = conninfo_to_dict(libpq_dsn(dsn))
    except psycopg.ProgrammingError as exc:
        raise MigrationError(f"invalid connection string: {exc}") from None
    # yoyo does not unquote the URL's path, so the database name also travels in the query
    # string (where it wins); the path only carries it when it needs no quoting.
    dbname = str(params.get("dbname") or "")
    path = dbname if dbname and quote(dbname, safe="") == dbname else ""
    query = urlencode({k: str(v) for k, v in params.items() if v is not None})
    url = f"{YOYO_SCHEME}:///{path}"
    return f"{url}?{query}" if query else url


def _migrations(directory: Path | None, *, load: bool = True) -> Any:
    """The migrations in `directory` (statusdb's own by default), parsed unless `load` is off
    (listing them needs only their ids and hashes)."""
    source = directory if directory is not None else resources.migrations_dir()
    if not Path(source).is_dir():
        raise MigrationError(f"migrations folder {source} does not exist")
    found = read_migrations(str(source))
    if load:
        with _fast_statement_split():
            for migration in found:
                migration.load()
    return found


_yoyo_read_sql_migration = yoyo_migrations.read_sql_migration


def _read_sql_migration(path: str) -> tuple[dict[str, str], str, list[str]]:
    """yoyo's `read_sql_migration`, splitting with `statements.split` (sqlparse's statements
    in ~1/30 of its time) and with yoyo's own reader where `split` is unsure."""
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except FileNotFoundError:
        return {}, "", []  # as yoyo: a migration without a rollback file
    found = statements.split(text)
    if found is None:
        return _yoyo_read_sql_migration(path)  # type: ignore[no-any-return]
    directives: dict[str, str] = {}
    leading_comment = ""
    if found:
        directives, leading_comment, found[0] = yoyo_migrations.parse_metadata_from_sql_comments(
            found[0]
        )
    return directives, leading_comment, [statement for statement in found if statement.strip()]


@contextlib.contextmanager
def _fast_statement_split() -> Iterator[None]:
    """Load migrations with `_read_sql_migration`: yoyo's loader calls the module's function
    by name, so it is swapped for the duration of statusdb's own loading only."""
    previous = yoyo_migrations.read_sql_migration
    yoyo_migrations.read_sql_migration = _read_sql_migration
    try:
        yield
    finally:
        yoyo_migrations.read_sql_migration = previous


def _migrator_dsn(dsn: str) -> str:
    """`dsn` with statusdb's migrator `application_name` (unless the caller set one)."""
    params = _params(dsn)
    params.setdefault("application_name", f"{APPLICATION_NAME_PREFIX}{os.getpid()}")
    return make_conninfo(**{k: str(v) for k, v in params.items() if v is not None})


def _params(dsn: str) -> dict[str, Any]:
    try:
        return dict(conninfo_to_dict(libpq_dsn(dsn)))
    except psycopg.ProgrammingError as exc:
        raise MigrationError(f"invalid connection string: {exc}") from None


def _check_may_migrate(dsn: str, *, creating: bool) -> bool:
    """Refuse a role that is not the schema's owner; return whether yoyo's tables exist.

    Checked before yoyo touches the database: as another role yoyo would fail on its own lock
    table ("relation yoyo_lock does not exist", "permission denied for table yoyo_lock") or,
    for a rollback of a database never migrated, create its tables owned by the wrong role.
    """
    try:
        with psycopg.connect(libpq_dsn(dsn), autocommit=True) as conn:
            row = conn.execute(
                "SELECT current_user::text, current_database()::text,"
                " (SELECT pg_get_userbyid(c.relowner)::text FROM pg_class c"
                "   WHERE c.oid = to_regclass('public._yoyo_migration')),"
                " pg_get_userbyid((SELECT datdba FROM pg_database"
                "   WHERE datname = current_database()))::text,"
                " has_schema_privilege('public', 'CREATE')"
            ).fetchone()
            assert row is not None
            user, database, table_owner, db_owner, may_create = row
            if table_owner is not None:
                member = conn.execute(
                    "SELECT pg_has_role(current_user, %s, 'USAGE')", (table_owner,)
                ).fetchone()
                if not (member and member[0]):
                    raise MigrationError(
                        f"role {user} may not migrate database {database}: its migrations "
                        f"belong to role {table_owner} (the schema's owner); connect as "
                        f"{table_owner}, e.g. --dsn 'user={table_owner} ...'"
                    )
                return True
            if creating and not may_create:
                raise MigrationError(
                    f"role {user} lacks the privilege to make tables in schema public of "
                    f"database {database}, so it cannot migrate it; connect as the database's "
                    f"owner ({db_owner}), or have that role grant {user} that privilege"
                )
            return False
    except psycopg.Error as exc:
        raise MigrationError(f"cannot connect to migrate: {_first_line(exc)}") from None


class _Interrupts:
    """Ctrl-C while migrating: cancel the running statement instead of raising mid-protocol.

    A KeyboardInterrupt raised inside psycopg's wait loop can leave the connection busy, and
    yoyo's clean-up then fails with "another command is already in progress". Instead, SIGINT
    sets a flag and cancels the statement in the server: the migration's transaction rolls back
    through yoyo's normal error path, the lock row is deleted, and the run stops before the
    next migration. Only in the main thread (signal handlers can only be set there).
    """

    def __init__(self) -> None:
        self.requested = False
        self.connection: Any = None
        self._previous: Any = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True
        connection = self.connection
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.cancel_safe(timeout=5.0)

    def watch(self, backend: Any) -> None:
        """Cancel on the connection each migration runs on: yoyo runs every migration on a
        copy of the backend (its own connection), made by `backend.copy()`."""
        make_copy = backend.copy

        def copy() -> Any:
            migration_backend = make_copy()
            self.connection = migration_backend.connection
            return migration_backend

        backend.copy = copy

    def __enter__(self) -> _Interrupts:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


class _OneSession:
    """Run every migration of one `apply`/`rollback` on one connection, reset between them.

    yoyo runs each migration on a copy of the backend (`backend.copy()`): a new connection per
    migration, ~53 of them for the full set, each a server process started and torn down (about
    a third of a full `migrate`'s CPU, bench/README.md "What migrating costs"). The copy only has
    to keep one migration's session state (a `SET`, a temp table, a session advisory lock, a
    `PREPARE`, a `LISTEN`) from reaching the next: `DISCARD ALL` before each further migration
    does that on one connection, and yoyo's `init_connection` then sets the URL's `schema`
    search path again, as on a new connection. psycopg prepares nothing on it (its own prepared
    statements would be deallocated under it). A connection left closed, broken or inside a
    transaction is replaced by a new copy. Each migration still runs in its own transaction.
    """

    def __init__(self, backend: Any) -> None:
        self._make_copy = backend.copy
        self._copy: Any = None
        backend.copy = self._lend

    def _lend(self) -> _Lent:
        copy = self._copy
        if copy is not None and _reusable(copy.connection):
            copy.connection.execute("DISCARD ALL")
            copy.init_connection(copy.connection)
        else:
            self.close()
            copy = self._copy = self._make_copy()
            copy.connection.prepare_threshold = None
        return _Lent(copy)

    def close(self) -> None:
        if self._copy is not None:
            self._copy.connection.close()
            self._copy = None


def _reusable(connection: psycopg.Connection[Any]) -> bool:
    return (
        not connection.closed
        and connection.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    )


class _Lent:
    """yoyo's `with backend.copy() as migration_backend:` without closing it at the end."""

    def __init__(self, backend: Any) -> None:
        self._backend = backend

    @property
    def connection(self) -> Any:
        """The migration's connection (`_Interrupts` cancels its statement on Ctrl-C)."""
        return self._backend.connection

    def __enter__(self) -> Any:
        return self._backend

    def __exit__(self, *exc: object) -> None:
        """Kept open for the next migration; `_OneSession.close()` closes it."""


@contextlib.contextmanager
def _backend(dsn: str, *, lock: bool = True, lock_timeout: float = LOCK_TIMEOUT_S) -> Iterator[Any]:
    backend = get_backend(yoyo_url(_migrator_dsn(dsn)))
    session = _OneSession(backend)
    try:
        if lock:
            with backend.lock(timeout=lock_timeout):
                yield backend
        else:
            yield backend
    except yoyo_exceptions.LockTimeout as exc:
        raise MigrationError(
            f"another migration holds the lock: {exc}. If no migration is running (one was "
            "killed), remove the lock with `statusdb break-lock`"
        ) from None
    finally:
        try:
            session.close()
        finally:
            backend.connection.close()


def break_lock(dsn: str, *, force: bool = False) -> bool:
    """Remove yoyo's lock row left by a killed migrator; return whether there was one.

    Refuses (MigrationError) while a statusdb migrator session is still connected to the
    database, unless `force`: removing a live migrator's lock would let two run at once.
    """
    if not isinstance(force, bool):
        raise TypeError("force must be a bool")
    try:
        with psycopg.connect(libpq_dsn(dsn), autocommit=True) as conn:
            present = conn.execute("SELECT to_regclass('public.yoyo_lock') IS NOT NULL").fetchone()
            if not (present and present[0]):
                return False
            live = conn.execute(
                "SELECT application_name FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                " AND application_name LIKE %s",
                (APPLICATION_NAME_PREFIX + "%",),
            ).fetchall()
            if live and not force:
                names = ", ".join(sorted(str(r[0]) for r in live))
                raise MigrationError(
                    f"a migrator is still connected ({names}): wait for it, or stop it, "
                    "before breaking its lock (--force breaks it anyway)"
                )
            cursor = conn.execute("DELETE FROM yoyo_lock")
            return cursor.rowcount > 0
    except psycopg.Error as exc:
        raise MigrationError(f"could not break the lock: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _with_setting(dsn: str, name: str, value: str) -> str:
    """`dsn` with `-c name=value` added to its `options` (keeping any options it has)."""
    params = _params(dsn)
    options = str(params.get("options") or "").strip()
    params["options"] = f"{options} -c {name}={value}".strip()
    return make_conninfo(**{k: str(v) for k, v in params.items() if v is not None})


def _run_all(backend: Any, todo: list[Any], direction: str, interrupts: _Interrupts) -> list[str]:
    """Apply or roll back `todo` in order, one transaction each; stop cleanly on Ctrl-C."""
    done: list[str] = []
    verb = "apply" if direction == "apply" else "roll back"
    interrupts.watch(backend)
    for migration in todo:
        migration_id: str = migration.id
        if interrupts.requested:
            break
        try:
            if direction == "apply":
                backend.apply_one(migration)
            else:
                backend.rollback_one(migration)
        except (psycopg.Error, yoyo_exceptions.BadMigration) as exc:
            if interrupts.requested:
                raise MigrationInterrupted(_interrupted(direction, migration_id, done)) from None
            raise MigrationError(
                f"could not {verb} migration {migration_id}: {_first_line(exc)}"
            ) from exc
        done.append(migration_id)
    if interrupts.requested and len(done) < len(todo):
        raise MigrationInterrupted(_interrupted(direction, None, done))
    return done


def _interrupted(direction: str, current: str | None, done: list[str]) -> str:
    past = "applied" if direction == "apply" else "rolled back"
    before = f"; {past} before it: {', '.join(done)}" if done else f"; nothing was {past}"
    if current is None:
        return f"interrupted between migrations{before}"
    undo = "rolled back" if direction == "apply" else "left applied"
    return f"interrupted: migration {current} was {undo} (its transaction undone){before}"


def apply(
    dsn: str, *, directory: Path | None = None, lock_timeout: float = LOCK_TIMEOUT_S
) -> list[str]:
    """Apply every pending migration, in order; return the ids applied."""
    migrations = _migrations(directory)
    _check_may_migrate(dsn, creating=True)
    with _Interrupts() as interrupts, _backend(dsn, lock_timeout=lock_timeout) as backend:
        pending = list(backend.to_apply(migrations))
        applied = _run_all(backend, pending, "apply", interrupts)
        if applied:
            backend.run_post_apply(migrations)
    return applied


def rollback(
    dsn: str,
    steps: int | None = None,
    *,
    directory: Path | None = None,
    allow_data_loss: bool = False,
    lock_timeout: float = LOCK_TIMEOUT_S,
) -> list[str]:
    """Roll back the last `steps` applied migrations (all when None); return their ids.

    Each migration is rolled back in its own transaction, newest first. One that would lose data
    (see the module's docstring) raises MigrationError saying what, unless `allow_data_loss`;
    the ones before it stay rolled back (they lost nothing).
    """
    if steps is not None and steps < 0:
        raise ValueError("steps must be >= 0")
    if not isinstance(allow_data_loss, bool):
        raise TypeError("allow_data_loss must be a bool")
    if allow_data_loss:
        dsn = _with_setting(dsn, ALLOW_DATA_LOSS_SETTING, "on")
    migrations = _migrations(directory)
    if not _check_may_migrate(dsn, creating=False):
        return []  # never migrated: nothing to roll back, and yoyo's tables are not created
    with _Interrupts() as interrupts, _backend(dsn, lock_timeout=lock_timeout) as backend:
        candidates = list(backend.to_rollback(migrations))
        if steps is not None:
            candidates = candidates[:steps]
        return _run_all(backend, candidates, "rollback", interrupts)


def status(dsn: str, *, directory: Path | None = None) -> list[tuple[str, bool]]:
    """Every known migration, in order, with whether it is applied."""
    migrations = _migrations(directory, load=False)
    with _backend(dsn, lock=False) as backend:
        applied = set(backend.get_applied_migration_hashes())
        return [(str(m.id), m.hash in applied) for m in migrations]
