"""The pg_cron alternative to `statusdb scheduler`, as docs/production.md sets it up.

A cluster of its own, started with `shared_preload_libraries = 'pg_cron'`, migrated, with the
documented job scheduled as a LOGIN member of statusdb_app: the job's step moves a due window
and writes the heartbeat `statusdb doctor` reads. Skipped, saying why, where the Debian package
(`postgresql-15-cron`, installed by `.ci/run`) is not installed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import make_conninfo
from test_scheduler_doctor import _doctor, _page_with_windows

from statusdb import doctor
from statusdb.infra import migrations
from statusdb.tooling import localpg

pytestmark = pytest.mark.slow

DBNAME = "statusdb"
JOB_LOGIN = "statusdb_cron_scheduler"
# The SQL of docs/production.md ("pg_cron"), the schedule a parameter: the documented one is
# every minute ('* * * * *'; pg_cron 1.5 and later also take '30 seconds'), whose first run
# comes at the next full minute, up to 60 s of waiting. The test schedules it so, then moves
# the same job to '@reboot' (cron.alter_job) and restarts the server: pg_cron runs it at once,
# the same way (a background worker in the database, as the job's role).
SCHEDULE = """SELECT cron.schedule_in_database(
    'statusdb-advance', %s, $$SELECT statusdb_advance_v1('pg_cron')$$,
    %s, %s)"""
DOCUMENTED_SCHEDULE = "* * * * *"


def _pg_cron_installed(cluster: localpg.LocalCluster) -> bool:
    major = cluster.bindir.parent.name  # /usr/lib/postgresql/<major>/bin
    return any(
        Path(share, "extension", "pg_cron.control").is_file()
        for share in (f"/usr/share/postgresql/{major}", "/usr/local/share/postgresql")
    )


@pytest.fixture
def cron_cluster(server_owned_tmp_dir: Path) -> Iterator[localpg.LocalCluster]:
    cluster = localpg.LocalCluster(server_owned_tmp_dir / "pgdata", fsync=False)
    if not _pg_cron_installed(cluster):
        pytest.skip("pg_cron is not installed (Debian: apt-get install postgresql-15-cron)")
    cluster.initialize()
    with (cluster.data_dir / "postgresql.conf").open("a", encoding="utf-8") as conf:
        conf.write(
            "\n# pg_cron, as docs/production.md sets it up\n"
            "shared_preload_libraries = 'pg_cron'\n"
            f"cron.database_name = '{DBNAME}'\n"
            "cron.use_background_workers = on\n"
            "max_worker_processes = 16\n"
        )
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop(mode="immediate")


def test_pg_cron_runs_the_step_and_writes_the_heartbeat(cron_cluster: localpg.LocalCluster) -> None:
    dsn = cron_cluster.ensure_database(DBNAME)
    migrations.apply(dsn)
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute("CREATE EXTENSION pg_cron")
        admin.execute(f"CREATE ROLE {JOB_LOGIN} LOGIN IN ROLE statusdb_app")
    _, ids = _page_with_windows(dsn, starting=1)
    # One transaction (committed at the end of the block): pg_cron never sees the job with the
    # documented schedule, so no run can start at a minute boundary before the restart below
    # and be cut off by it (a normal user's run once recorded such a run, 'failed').
    with psycopg.connect(dsn) as admin:
        admin.execute(SCHEDULE, (DOCUMENTED_SCHEDULE, DBNAME, JOB_LOGIN))
        # The documented job is taken as written (pg_cron parses the schedule on insert)...
        assert admin.execute(
            "SELECT schedule, database, username, active FROM cron.job"
            " WHERE jobname = 'statusdb-advance'"
        ).fetchone() == (DOCUMENTED_SCHEDULE, DBNAME, JOB_LOGIN, True)
        # ...and run now rather than at the next full minute: at the server's start.
        admin.execute(
            "SELECT cron.alter_job(jobid, schedule => '@reboot') FROM cron.job"
            " WHERE jobname = 'statusdb-advance'"
        )
    cron_cluster.stop()
    cron_cluster.start()
    with psycopg.connect(dsn, autocommit=True) as admin:
        deadline = time.monotonic() + 60
        row = None
        while time.monotonic() < deadline:
            row = admin.execute(
                "SELECT d.status, d.return_message FROM cron.job_run_details d"
                " JOIN cron.job j USING (jobid) WHERE j.jobname = 'statusdb-advance'"
                "   AND d.status IN ('succeeded', 'failed') ORDER BY d.runid LIMIT 1"
            ).fetchone()
            if row is not None:
                break
            time.sleep(0.1)
        assert row is not None, "the pg_cron job never ran"
        assert row[0] == "succeeded", row
        (status,) = admin.execute(
            "SELECT status FROM maintenance_window WHERE id = %s", (ids[0],)
        ).fetchone()  # type: ignore[misc]
        assert status == "IN_PROGRESS"
        heartbeat = admin.execute(
            "SELECT transitions, errors FROM scheduler_heartbeat WHERE instance = 'pg_cron'"
        ).fetchone()
        assert heartbeat == (1, 0)
        (started,) = admin.execute(
            "SELECT count(*) FROM notification_event"
            " WHERE maintenance_window_id = %s AND kind = 'maintenance_started'",
            (ids[0],),
        ).fetchone()  # type: ignore[misc]
        assert started == 1
    app_dsn = make_conninfo(dsn, user=JOB_LOGIN)
    _, report = _doctor(app_dsn, "--check", "scheduler_lag", "--check", "maintenance_overdue")
    assert report["status"] == "OK", report
    assert {c["name"] for c in report["checks"]} <= set(doctor.CHECKS)
