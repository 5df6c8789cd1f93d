"""Apply, roll back and list schema migrations (a thin layer over yoyo-migrations).

Migrations are plain SQL files in `statusdb.db.resources.migrations_dir()`: `NNNN_name.sql` and its
undo `NNNN_name.rollback.sql`. yoyo runs each migration in one transaction and records applied
ones in its `_yoyo_migration` table; a lock row keeps two migrators from running at once.

Every function takes a libpq conninfo string (`host=... dbname=...`) or a `postgresql://` URL.

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
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from yoyo import exceptions as yoyo_exceptions
from yoyo import get_backend, read_migrations

from statusdb.db import resources

__all__ = ["MigrationError", "apply", "rollback", "status", "yoyo_url"]

YOYO_SCHEME = "postgresql+psycopg"
"""yoyo's backend for psycopg 3 (`postgresql://` would need psycopg2)."""

LOCK_TIMEOUT_S = 60

ALLOW_DATA_LOSS_SETTING = "statusdb.allow_data_loss"
"""The session setting the data-losing rollbacks check (`on`: go ahead)."""


class MigrationError(RuntimeError):
    """A migration could not be read, applied or rolled back."""


def yoyo_url(dsn: str) -> str:
    """Turn a libpq conninfo string or postgres URL into a `postgresql+psycopg://` URL.

    Every connection parameter travels in the query string, which yoyo passes on to
    `psycopg.connect()` unchanged, so unix socket folders, sslmode etc. survive.
    """
    if dsn.startswith(f"{YOYO_SCHEME}://"):
        return dsn
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as exc:
        raise MigrationError(f"invalid connection string: {exc}") from None
    # yoyo does not unquote the URL's path, so the database name also travels in the query
    # string (where it wins); the path only carries it when it needs no quoting.
    dbname = str(params.get("dbname") or "")
    path = dbname if dbname and quote(dbname, safe="") == dbname else ""
    query = urlencode({k: str(v) for k, v in params.items() if v is not None})
    url = f"{YOYO_SCHEME}:///{path}"
    return f"{url}?{query}" if query else url


def _migrations(directory: Path | None) -> Any:
    source = directory if directory is not None else resources.migrations_dir()
    if not Path(source).is_dir():
        raise MigrationError(f"migrations folder {source} does not exist")
    return read_migrations(str(source))


@contextlib.contextmanager
def _backend(dsn: str, *, lock: bool = True) -> Iterator[Any]:
    backend = get_backend(yoyo_url(dsn))
    try:
        if lock:
            with backend.lock(timeout=LOCK_TIMEOUT_S):
                yield backend
        else:
            yield backend
    except yoyo_exceptions.LockTimeout as exc:
        raise MigrationError(f"another migration holds the lock: {exc}") from None
    finally:
        backend.connection.close()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _with_setting(dsn: str, name: str, value: str) -> str:
    """`dsn` with `-c name=value` added to its `options` (keeping any options it has)."""
    if dsn.startswith(f"{YOYO_SCHEME}://"):
        dsn = "postgresql://" + dsn.removeprefix(f"{YOYO_SCHEME}://")
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as exc:
        raise MigrationError(f"invalid connection string: {exc}") from None
    options = str(params.get("options") or "").strip()
    params["options"] = f"{options} -c {name}={value}".strip()
    return make_conninfo(**{k: str(v) for k, v in params.items() if v is not None})


def _run_one(backend: Any, migration: Any, direction: str) -> str:
    migration_id: str = migration.id
    try:
        if direction == "apply":
            backend.apply_one(migration)
        else:
            backend.rollback_one(migration)
    except (psycopg.Error, yoyo_exceptions.BadMigration) as exc:
        verb = "apply" if direction == "apply" else "roll back"
        raise MigrationError(
            f"could not {verb} migration {migration_id}: {_first_line(exc)}"
        ) from exc
    return migration_id


def apply(dsn: str, *, directory: Path | None = None) -> list[str]:
    """Apply every pending migration, in order; return the ids applied."""
    migrations = _migrations(directory)
    with _backend(dsn) as backend:
        pending = backend.to_apply(migrations)
        applied = [_run_one(backend, m, "apply") for m in pending]
        if applied:
            backend.run_post_apply(migrations)
    return applied


def rollback(
    dsn: str,
    steps: int | None = None,
    *,
    directory: Path | None = None,
    allow_data_loss: bool = False,
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
    with _backend(dsn) as backend:
        candidates = list(backend.to_rollback(migrations))
        if steps is not None:
            candidates = candidates[:steps]
        return [_run_one(backend, m, "rollback") for m in candidates]


def status(dsn: str, *, directory: Path | None = None) -> list[tuple[str, bool]]:
    """Every known migration, in order, with whether it is applied."""
    migrations = _migrations(directory)
    with _backend(dsn, lock=False) as backend:
        applied = set(backend.get_applied_migration_hashes())
        return [(str(m.id), m.hash in applied) for m in migrations]
