"""The `statusdb` command.

Every subcommand works on the database named by `--dsn` or `$STATUSDB_DSN` (a libpq conninfo
string or a postgres URL). With neither, it uses the local development cluster (see
`statusdb.tooling.localpg`), starting it, and creating it the first time, as needed, and the
database `statusdb` on it.
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
from yoyo import read_migrations

from statusdb.db import queries, resources
from statusdb.infra import migrations
from statusdb.tooling import localpg

LOCAL_DBNAME = "statusdb"
PROG = "statusdb"


class CliError(Exception):
    """A failure to report on one line, without a traceback."""


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--dsn",
        default=argparse.SUPPRESS,
        help="database to use: libpq conninfo or postgres URL (default: $STATUSDB_DSN, "
        "else the local cluster's 'statusdb' database)",
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
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("migrate", parents=[common], help="apply pending migrations")
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
    sub.add_parser("status", parents=[common], help="list migrations and whether applied")
    sub.add_parser("demo", parents=[common], help="migrate, then run the demo story")
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
    _describe(sub)
    return parser


#: What each subcommand does, shown by `statusdb COMMAND --help`. Kept apart from the parser
#: definitions above so that adding an option there does not touch this text.
_DESCRIPTIONS: dict[str, str] = {
    "migrate": "Apply the pending migrations, in order, each in one transaction, and print the "
    "ids applied. Uses yoyo's bookkeeping tables (_yoyo_migration, ...) in the database.",
    "rollback": "Undo the last applied migration (or the last N, or all) with its "
    ".rollback.sql, newest first, and print the ids rolled back.",
    "status": "List every migration as `applied` or `pending`. Only reads the database: on a "
    "database never migrated it creates nothing and lists everything as pending.",
    "demo": "Apply the migrations, then tell a short story on a demo status page: an incident "
    "opens, maintenance starts, both end; prints the page and the call behind each step.",
    "start": "Start the local development cluster (create it with initdb on first use) and "
    "print its data folder, log and DSN. Only acts on the local cluster: --dsn is refused.",
    "stop": "Stop the local development cluster; it keeps running otherwise. Only acts on the "
    "local cluster: --dsn is refused.",
    "dsn": "Print the connection string of the database the other commands use: --dsn, else "
    "$STATUSDB_DSN, else the local cluster's `statusdb` database (started if needed). "
    "For example: export STATUSDB_DSN=$(statusdb dsn)",
    "psql": "Open psql on that database. Arguments after `--` go to psql: "
    "statusdb psql -- -c '\\d+ team'",
}


def _describe(sub: Any) -> None:
    for name, command in sub.choices.items():
        command.description = _DESCRIPTIONS.get(name, command.description)


def _explicit_dsn(args: argparse.Namespace) -> str | None:
    dsn: str | None = getattr(args, "dsn", None) or os.environ.get("STATUSDB_DSN") or None
    return dsn


def _data_dir(args: argparse.Namespace) -> Path | None:
    data_dir: Path | None = getattr(args, "data_dir", None)
    return data_dir


def _local_cluster(args: argparse.Namespace) -> localpg.LocalCluster:
    data_dir = _data_dir(args)
    return localpg.LocalCluster(data_dir if data_dir is not None else localpg.default_data_dir())


def _resolve_dsn(args: argparse.Namespace) -> str:
    """The DSN given, else the local cluster's `statusdb` database (both made if missing)."""
    dsn = _explicit_dsn(args)
    if dsn is not None:
        return dsn
    cluster = localpg.ensure_running(_data_dir(args))
    return cluster.ensure_database(LOCAL_DBNAME)


def _cmd_migrate(args: argparse.Namespace) -> None:
    applied = migrations.apply(_resolve_dsn(args))
    for migration_id in applied:
        print(f"applied {migration_id}")
    if not applied:
        print("nothing to apply: the database is up to date")


def _cmd_rollback(args: argparse.Namespace) -> None:
    steps = None if args.all else args.steps
    if steps is not None and steps < 1:
        raise CliError("--steps must be at least 1")
    rolled_back = migrations.rollback(
        _resolve_dsn(args), steps, allow_data_loss=bool(args.allow_data_loss)
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


def _where(args: argparse.Namespace, dsn: str) -> list[str]:
    """Lines saying which database the demo uses and, for the local cluster, how to stop it."""
    if _explicit_dsn(args) is not None:
        return [f"Database: {dsn} (from --dsn or $STATUSDB_DSN)."]
    cluster = _local_cluster(args)
    return [
        "Database: the `statusdb` database of statusdb's local PostgreSQL cluster",
        f"  data folder: {cluster.data_dir}",
        f"  log:         {cluster.log_file}",
        f"  dsn:         {dsn}",
        "It keeps running after the demo, with the demo's data: `statusdb psql` opens it,",
        "`export STATUSDB_DSN=$(statusdb dsn)` points the README's examples at it, and",
        "`statusdb stop` stops it. To start over, stop it and delete its data folder.",
    ]


def _cmd_demo(args: argparse.Namespace) -> None:
    from statusdb.tooling import demo

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
    print(_resolve_dsn(args))


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


_COMMANDS = {
    "migrate": _cmd_migrate,
    "rollback": _cmd_rollback,
    "status": _cmd_status,
    "demo": _cmd_demo,
    "start": _cmd_start,
    "stop": _cmd_stop,
    "dsn": _cmd_dsn,
    "psql": _cmd_psql,
}


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `statusdb` command; return its exit status."""
    args = _parser().parse_args(argv)
    try:
        _COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except (
        CliError,
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
