"""The benchmark's own PostgreSQL cluster: fresh, in a temp folder, deleted afterwards.

It never touches the demo's cluster or the test suite's. The cluster is durable (fsync on, as a
production server would be): the write cases measure a real commit, and the benchmark also
reports what the same writes cost without waiting for the WAL flush, to tell the library's
work from this machine's disk.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from statusdb.infra import migrations
from statusdb.tooling import localpg

DBNAME = "statusdb_bench"
_SETTING_NAME = re.compile(r"[a-z_]+(\.[a-z_]+)?")

#: Server settings for the run (ALTER SYSTEM, then a restart). Sized for this 2-core, 24 GB
#: machine, as a DBA would size a small dedicated server: the large dataset (~2 GB) fits in
#: shared_buffers; checkpoints are spread out so that none lands in the middle of a case;
#: pg_stat_statements shows where server time goes.
SERVER_SETTINGS: Mapping[str, str] = {
    "shared_buffers": "3GB",
    "effective_cache_size": "16GB",
    "work_mem": "16MB",
    "maintenance_work_mem": "1GB",
    "max_wal_size": "8GB",
    "checkpoint_timeout": "30min",
    "shared_preload_libraries": "pg_stat_statements",
    "track_io_timing": "on",
    # recompute(repair=True) takes one advisory lock per status key (every team, every
    # component set by hand) in one transaction; the default lock table (64 x 100 slots) is
    # too small for the large dataset's ~11k keys.
    "max_locks_per_transaction": "256",
}


#: Settings of preloaded libraries: known only once the server has loaded them. Statements are
#: tracked at the top level only (the default), so that tracking costs the timed cases nothing
#: measurable; for profiling the status derivation (statements run by triggers), set
#: `pg_stat_statements.track = 'all'` on the bench cluster while it runs (`--dsn`, psql).
LIBRARY_SETTINGS: Mapping[str, str] = {
    "pg_stat_statements.track": "top",
}


def _alter_system(conn: psycopg.Connection[Any], settings: Mapping[str, str]) -> None:
    for name, value in settings.items():
        if not _SETTING_NAME.fullmatch(name):
            raise ValueError(f"not a server setting name: {name!r}")
        # ALTER SYSTEM takes no parameters: the name is checked above, the value quoted.
        conn.execute(sql.SQL("ALTER SYSTEM SET {} = {}").format(sql.SQL(name), sql.Literal(value)))


def _server_owned_dir(prefix: str) -> Path:
    """A new temp folder the server's OS user owns (root runs PostgreSQL as `postgres`).

    The same recipe as tests/conftest.py's make_server_owned_dir (bench does not import the
    test suite)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    if os.geteuid() == 0:
        server = pwd.getpwnam(localpg.SERVER_OS_USER)
        os.chown(path, server.pw_uid, server.pw_gid)
    return path


@contextlib.contextmanager
def bench_cluster(settings: Mapping[str, str] = SERVER_SETTINGS) -> Iterator[str]:
    """Start a fresh cluster with `settings`, create and migrate the bench database; yield its
    conninfo. The cluster is stopped and its folder deleted on exit."""
    base = _server_owned_dir("statusdb-bench-")
    cluster = localpg.LocalCluster(base / "pgdata", fsync=True)
    try:
        cluster.initialize()
        cluster.start()
        with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
            _alter_system(conn, settings)
        cluster.stop()
        cluster.start()
        with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
            _alter_system(conn, LIBRARY_SETTINGS)
            conn.execute("SELECT pg_reload_conf()")
        dsn = cluster.ensure_database(DBNAME)
        migrations.apply(dsn)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        yield dsn
    finally:
        try:
            cluster.stop()
        finally:
            shutil.rmtree(base, ignore_errors=True)
