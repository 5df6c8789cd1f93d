"""The `statusdb` command.

Every subcommand works on the database named by `--dsn` or `$STATUSDB_DSN` (a libpq conninfo
string, a postgres URL or yoyo's `postgresql+psycopg://` form). Without one, a command fails
(exit 2) rather than guess: a deploy job that forgot its DSN must not report success against
some other database. The local development cluster (`statusdb.tooling.localpg`) is used only
when asked for: by `--local`, and by the commands that exist for it (`demo`, `start`, `stop`).
`demo` writes demo data, so on a database given by DSN it asks for `--yes` first.

Exit status: 0 done; 1 failed (one line on stderr); 2 usage (no DSN, bad arguments);
3 `status --check` found pending migrations; 130 interrupted. `scheduler` and `doctor` say
their own (statusdb.tooling.scheduler_cmd, statusdb.tooling.doctor_cmd).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from yoyo import read_migrations

from statusdb.db import queries, resources
from statusdb.infra import migrations
from statusdb.tooling import doctor_cmd, localpg, scheduler_cmd, serve_cmd, worker_cmd

LOCAL_DBNAME = "statusdb"
PROG = "statusdb"
DEFAULT_CONNECT_TIMEOUT_S = 10
"""libpq's connect_timeout when neither the DSN nor --connect-timeout sets one: a server that
accepts and never answers must not hang a deploy job forever."""

EXIT_USAGE = 2
EXIT_PENDING = 3
EXIT_INTERRUPTED = 130


class CliError(Exception):
    """A failure to report on one line, without a traceback."""

    exit_status = 1


class UsageError(CliError):
    """The command cannot run as asked (no database named, a missing confirmation)."""

    exit_status = EXIT_USAGE


def _version() -> str:
    from statusdb import __version__

    return __version__


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--dsn",
        default=argparse.SUPPRESS,
        help="database to use: libpq conninfo or postgres URL (default: $STATUSDB_DSN, "
        "else the local cluster's 'statusdb' database)",
    )
    common.add_argument(
        "--local",
        action="store_true",
        default=argparse.SUPPRESS,
        help="use the local development cluster (started, and created, as needed) instead of "
        "--dsn / $STATUSDB_DSN",
    )
    common.add_argument(
        "--connect-timeout",
        type=int,
        default=argparse.SUPPRESS,
        metavar="SECONDS",
        help="give up connecting after SECONDS (default: the DSN's connect_timeout, else "
        f"$STATUSDB_CONNECT_TIMEOUT, else {DEFAULT_CONNECT_TIMEOUT_S})",
    )
    common.add_argument(
        "--data-dir",
        type=Path,
        default=argparse.SUPPRESS,
        help="local cluster data directory (default: $STATUSDB_DATA_DIR, else "
        f"{localpg.default_data_dir()})",
    )

    parser = argparse.ArgumentParser(
        prog=PROG,
        parents=[common],
        description="statusdb: the status-page data layer's migrations, demo and local "
        "PostgreSQL cluster.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    migrate = sub.add_parser("migrate", parents=[common], help="apply pending migrations")
    _lock_timeout_option(migrate)
    rollback = sub.add_parser("rollback", parents=[common], help="roll back migrations")
    how_many = rollback.add_mutually_exclusive_group()
    how_many.add_argument(
        "--steps", type=int, default=1, help="how many migrations to roll back (default 1)"
    )
    how_many.add_argument("--all", action="store_true", help="roll back every migration")
    rollback.add_argument(
        "--allow-data-loss",
        action="store_true",
        help="roll back even migrations that would lose data or re-arm tokens (they refuse "
        "otherwise, saying what would be lost)",
    )
    _lock_timeout_option(rollback)
    status = sub.add_parser("status", parents=[common], help="list migrations and whether applied")
    status.add_argument(
        "--check",
        action="store_true",
        help=f"exit with status {EXIT_PENDING} when a migration is pending (a deploy gate)",
    )
    demo = sub.add_parser("demo", parents=[common], help="migrate, then run the demo story")
    demo.add_argument(
        "--yes",
        action="store_true",
        help="write the demo into the database named by --dsn / $STATUSDB_DSN (asked for "
        "because the demo adds a team, a page and 90 days of history there)",
    )
    breaker = sub.add_parser(
        "break-lock", parents=[common], help="remove a killed migration's lock row"
    )
    breaker.add_argument(
        "--force",
        action="store_true",
        help="remove it even while a statusdb migrator is still connected",
    )
    scheduler_cmd.add_parser(sub, common)
    doctor_cmd.add_parser(sub, common)
    worker_cmd.register(sub, common)
    sub.add_parser("start", parents=[common], help="start the local cluster (create it if new)")
    sub.add_parser("stop", parents=[common], help="stop the local cluster")
    sub.add_parser("dsn", parents=[common], help="print the database's connection string")
    psql = sub.add_parser("psql", parents=[common], help="open psql on the database")
    psql.add_argument(
        "psql_args",
        nargs=argparse.REMAINDER,
        metavar="-- PSQL_ARGS",
        help="arguments passed on to psql after `--`, e.g. `statusdb psql -- -c 'SELECT 1'`",
    )
    serve_cmd.add_parser(sub, common)
    _describe(sub)
    return parser


#: What each subcommand does, shown by `statusdb COMMAND --help`. Kept apart from the parser
#: definitions above so that adding an option there does not touch this text.
_DESCRIPTIONS: dict[str, str] = {
    "migrate": "Apply the pending migrations, in order, each in one transaction, and print the "
    "ids applied. Uses yoyo's bookkeeping tables (_yoyo_migration, ...) in the database. Run it "
    "as the schema's owner. Ctrl-C rolls back the migration under way and says so.",
    "rollback": "Undo the last applied migration (or the last N, or all) with its "
    ".rollback.sql, newest first, and print the ids rolled back.",
    "status": "List every migration as `applied` or `pending`. Only reads the database: on a "
    "database never migrated it creates nothing and lists everything as pending. With "
    f"--check, exit {EXIT_PENDING} when any is pending (a deploy gate).",
    "demo": "Apply the migrations, then tell a short story on a demo status page: an incident "
    "opens, maintenance starts, both end; prints the page and the call behind each step. "
    "Uses the local cluster unless --dsn / $STATUSDB_DSN names a database, which also needs "
    "--yes.",
    "break-lock": "Remove the lock row a killed `migrate` or `rollback` left in yoyo_lock (the "
    "next migration otherwise waits, then fails). Refuses while a statusdb migrator is still "
    "connected, unless --force.",
    "start": "Start the local development cluster (create it with initdb on first use) and "
    "print its data folder, log and DSN. Only acts on the local cluster: --dsn is refused.",
    "stop": "Stop the local development cluster; it keeps running otherwise. Only acts on the "
    "local cluster: --dsn is refused.",
    "dsn": "Print the connection string of the database the other commands use: --dsn, else "
    "$STATUSDB_DSN; with --local, the local cluster's `statusdb` database (started if needed). "
    "For example: export STATUSDB_DSN=$(statusdb dsn --local)",
    "psql": "Open psql on that database. Arguments after `--` go to psql: "
    "statusdb psql -- -c '\\d+ team'",
}


def _describe(sub: Any) -> None:
    for name, command in sub.choices.items():
        command.description = _DESCRIPTIONS.get(name, command.description)


def _explicit_dsn(args: argparse.Namespace) -> str | None:
    dsn: str | None = getattr(args, "dsn", None) or os.environ.get("STATUSDB_DSN") or None
    return dsn


def _lock_timeout_option(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--lock-timeout",
        type=float,
        default=migrations.LOCK_TIMEOUT_S,
        metavar="SECONDS",
        help=f"how long to wait for another migrator's lock (default {migrations.LOCK_TIMEOUT_S})",
    )


def _connect_timeout(args: argparse.Namespace) -> int:
    value = getattr(args, "connect_timeout", None)
    if value is None:
        raw = os.environ.get("STATUSDB_CONNECT_TIMEOUT")
        if raw:
            try:
                value = int(raw)
            except ValueError:
                raise UsageError(f"STATUSDB_CONNECT_TIMEOUT={raw!r} is not a number") from None
    if value is None:
        return DEFAULT_CONNECT_TIMEOUT_S
    if value < 1:
        raise UsageError("--connect-timeout must be at least 1 second")
    return int(value)


def _with_connect_timeout(dsn: str, seconds: int) -> str:
    """`dsn` (as libpq takes it) with connect_timeout set, unless the DSN sets its own."""
    try:
        params = conninfo_to_dict(migrations.libpq_dsn(dsn))
    except psycopg.ProgrammingError as exc:
        raise UsageError(f"invalid connection string: {_one_line(exc)}") from None
    params.setdefault("connect_timeout", str(seconds))
    return make_conninfo(**{k: str(v) for k, v in params.items() if v is not None})


def _data_dir(args: argparse.Namespace) -> Path | None:
    data_dir: Path | None = getattr(args, "data_dir", None)
    return data_dir


def _local_cluster(args: argparse.Namespace) -> localpg.LocalCluster:
    data_dir = _data_dir(args)
    return localpg.LocalCluster(data_dir if data_dir is not None else localpg.default_data_dir())


def _uses_local(args: argparse.Namespace) -> bool:
    """Whether this command works on the local cluster (asked for, or the demo without a DSN)."""
    if getattr(args, "local", False):
        if getattr(args, "dsn", None):
            raise UsageError("--local and --dsn name two databases: give one")
        return True
    return args.command == "demo" and _explicit_dsn(args) is None


def _resolve_dsn(args: argparse.Namespace) -> str:
    """The DSN given (with a connect_timeout), or the local cluster's `statusdb` database when
    the command uses it; else a usage error, never a guess."""
    if _uses_local(args):
        cluster = localpg.ensure_running(_data_dir(args))
        return cluster.ensure_database(LOCAL_DBNAME)
    dsn = _explicit_dsn(args)
    if dsn is None:
        raise UsageError(
            f"no database given: pass --dsn or set $STATUSDB_DSN (or --local for the local "
            f"development cluster); `{PROG} {args.command}` does not guess"
        )
    return _with_connect_timeout(dsn, _connect_timeout(args))


def _cmd_migrate(args: argparse.Namespace) -> None:
    applied = migrations.apply(_resolve_dsn(args), lock_timeout=args.lock_timeout)
    for migration_id in applied:
        print(f"applied {migration_id}")
    if not applied:
        print("nothing to apply: the database is up to date")


def _cmd_rollback(args: argparse.Namespace) -> None:
    steps = None if args.all else args.steps
    if steps is not None and steps < 1:
        raise CliError("--steps must be at least 1")
    rolled_back = migrations.rollback(
        _resolve_dsn(args),
        steps,
        allow_data_loss=bool(args.allow_data_loss),
        lock_timeout=args.lock_timeout,
    )
    for migration_id in rolled_back:
        print(f"rolled back {migration_id}")
    if not rolled_back:
        print("nothing to roll back")


def _applied_hashes(dsn: str) -> set[str]:
    """The applied migrations' hashes, read in a read-only transaction (yoyo's own `status`
    would create its bookkeeping tables in a database it only inspects)."""
    with psycopg.connect(dsn) as conn:
        conn.read_only = True
        present = conn.execute(queries.get("migrations_table_exists").sql).fetchone()
        if not (present and present[0]):
            return set()
        rows = conn.execute(queries.get("migrations_applied_hashes").sql).fetchall()
        return {str(row[0]) for row in rows}


def _cmd_status(args: argparse.Namespace) -> None:
    hashes = _applied_hashes(_resolve_dsn(args))
    known = read_migrations(str(resources.migrations_dir()))
    rows = [(str(m.id), m.hash in hashes) for m in known]
    for migration_id, applied in rows:
        print(f"{'applied' if applied else 'pending'}  {migration_id}")
    if not rows:
        print("no migrations found")
    pending = sum(1 for _, applied in rows if not applied)
    if args.check and pending:
        print(f"{PROG}: {pending} migration(s) pending", file=sys.stderr)
        raise SystemExit(EXIT_PENDING)


def _cmd_break_lock(args: argparse.Namespace) -> None:
    if migrations.break_lock(_resolve_dsn(args), force=bool(args.force)):
        print("removed the migration lock")
    else:
        print("no migration lock was held")


def _where(args: argparse.Namespace, dsn: str) -> list[str]:
    """Lines saying which database the demo uses and, for the local cluster, how to stop it."""
    if not _uses_local(args):
        return [f"Database: {_explicit_dsn(args)} (from --dsn or $STATUSDB_DSN)."]
    cluster = _local_cluster(args)
    return [
        "Database: the `statusdb` database of statusdb's local PostgreSQL cluster",
        f"  data folder: {cluster.data_dir}",
        f"  log:         {cluster.log_file}",
        f"  dsn:         {dsn}",
        "It keeps running after the demo, with the demo's data: `statusdb psql --local` opens it,",
        "`export STATUSDB_DSN=$(statusdb dsn --local)` points the README's examples at it, and",
        "`statusdb stop` stops it. To start over, stop it and delete its data folder.",
    ]


def _cmd_demo(args: argparse.Namespace) -> None:
    from statusdb.tooling import demo

    if not _uses_local(args) and not args.yes:
        raise UsageError(
            "the demo writes a demo team, the `acme-cloud` status page and 90 days of "
            "backfilled history into the database named by --dsn / $STATUSDB_DSN; pass --yes "
            "to go ahead (or --local for the local development cluster)"
        )
    dsn = _resolve_dsn(args)
    print("\n".join(_where(args, dsn)))
    applied = migrations.apply(dsn)
    print(f"Migrations: {len(applied)} applied now" if applied else "Migrations: up to date")
    with psycopg.connect(dsn) as conn:
        demo.run(conn)


def _local_only(args: argparse.Namespace) -> None:
    if getattr(args, "dsn", None):
        raise CliError(
            f"`{PROG} {args.command}` acts on the local cluster only and does not take --dsn "
            "(to pick another local cluster, use --data-dir)"
        )


def _cmd_start(args: argparse.Namespace) -> None:
    _local_only(args)
    cluster = localpg.ensure_running(_data_dir(args))
    print(f"local PostgreSQL running on {localpg.HOST}:{cluster.port}")
    print(f"  data: {cluster.data_dir}")
    print(f"  log:  {cluster.log_file}")
    print(f"  dsn:  {cluster.dsn(LOCAL_DBNAME)}")


def _cmd_stop(args: argparse.Namespace) -> None:
    _local_only(args)
    cluster = _local_cluster(args)
    if not cluster.is_running():
        print(f"local PostgreSQL is not running ({cluster.data_dir})")
        return
    cluster.stop()
    print(f"stopped local PostgreSQL ({cluster.data_dir})")


def _cmd_dsn(args: argparse.Namespace) -> None:
    dsn = _resolve_dsn(args)
    print(dsn if _uses_local(args) else _explicit_dsn(args))


def _cmd_psql(args: argparse.Namespace) -> None:
    dsn = _resolve_dsn(args)
    psql = shutil.which("psql")
    if psql is None:
        try:
            candidate = localpg.find_bindir() / "psql"
        except localpg.PostgresNotFoundError:
            candidate = None
        if candidate is None or not candidate.exists():
            raise CliError("psql is not installed (it comes with the postgresql-client package)")
        psql = str(candidate)
    extra = list(args.psql_args)
    if extra[:1] == ["--"]:
        extra = extra[1:]
    sys.stdout.flush()
    # Replaces this process with psql, no shell.
    os.execv(psql, [psql, f"--dbname={dsn}", *extra])  # noqa: S606


def _cmd_scheduler(args: argparse.Namespace) -> None:
    scheduler_cmd.main(args, _resolve_dsn(args))


def _cmd_doctor(args: argparse.Namespace) -> None:
    doctor_cmd.main(args, _resolve_dsn(args))


def _cmd_serve(args: argparse.Namespace) -> None:
    serve_cmd.run(args, _resolve_dsn(args))


_COMMANDS = {
    "migrate": _cmd_migrate,
    "rollback": _cmd_rollback,
    "status": _cmd_status,
    "break-lock": _cmd_break_lock,
    "demo": _cmd_demo,
    "start": _cmd_start,
    "stop": _cmd_stop,
    "dsn": _cmd_dsn,
    "psql": _cmd_psql,
    "scheduler": _cmd_scheduler,
    "doctor": _cmd_doctor,
    "serve": _cmd_serve,
}


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `statusdb` command; return its exit status."""
    args = _parser().parse_args(argv)
    try:
        handler = getattr(args, "handler", None) or _COMMANDS[args.command]
        handler(args)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except migrations.MigrationInterrupted as exc:
        print(f"{PROG}: {_one_line(exc)}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except CliError as exc:
        print(f"{PROG}: error: {_one_line(exc)}", file=sys.stderr)
        return exc.exit_status
    except (
        localpg.ClusterError,
        migrations.MigrationError,
        psycopg.Error,
        OSError,
        ValueError,
    ) as exc:
        print(f"{PROG}: error: {_one_line(exc)}", file=sys.stderr)
        return 1
    except Exception as exc:
        if os.environ.get("STATUSDB_DEBUG"):
            raise
        print(
            f"{PROG}: error: {type(exc).__name__}: {_one_line(exc)} "
            "(set STATUSDB_DEBUG=1 for a traceback)",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
