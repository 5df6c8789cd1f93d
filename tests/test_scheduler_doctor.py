"""`statusdb scheduler` and `statusdb doctor` as the real commands, against a real cluster.

Subprocesses of the installed command, on a fresh database each (`dsn`), logged in as a
member of statusdb_app as production runs them; faults are planted as the owner (the
superuser of the test cluster), the only one the database lets write around the derivation.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from factories import new_page
from psycopg.conninfo import make_conninfo
from psycopg.rows import TupleRow

from statusdb import components, doctor, maintenance, teams
from statusdb.errors import Retryable, StatusdbError
from statusdb.workers import scheduler

Conn = psycopg.Connection[TupleRow]


def _command() -> list[str]:
    script = Path(sys.executable).parent / "statusdb"
    return [str(script)] if script.exists() else [sys.executable, "-m", "statusdb.tooling.cli"]


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("STATUSDB_")}


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*_command(), *args],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=timeout,
        check=False,
    )


def events(stderr: str) -> list[dict[str, Any]]:
    """The JSON log lines of a `--log-format json` run."""
    found = []
    for line in stderr.splitlines():
        if line.startswith("{"):
            found.append(json.loads(line))
    return found


@pytest.fixture
def app_dsn(dsn: str, app_login: str) -> str:
    return make_conninfo(dsn, user=app_login)


@pytest.fixture
def owner(dsn: str) -> Iterator[Conn]:
    with psycopg.connect(dsn, autocommit=True) as connection:
        yield connection


def _page_with_windows(
    dsn: str, *, starting: int, ending: int = 0, ends_in: float = 1.0
) -> tuple[str, list[str]]:
    """A page with one component, `starting` windows due to start now (ending in an hour) and
    `ending` windows due to start now and to end in `ends_in` seconds. Committed."""
    now = dt.datetime.now(dt.UTC)
    with psycopg.connect(dsn) as conn:
        team = teams.create(conn, name="sched")
        page = new_page(conn, team.id, slug=f"sched-{os.getpid()}-{time.monotonic_ns()}")
        component = components.create(conn, page.id, name="API")
        ids = []
        for number in range(starting + ending):
            end = now + (
                dt.timedelta(hours=1) if number < starting else dt.timedelta(seconds=ends_in)
            )
            window = maintenance.create(
                conn,
                page.id,
                title=f"w{number}",
                start_time=now - dt.timedelta(minutes=1),
                end_time=end,
                component_ids=[component.id],
                created_by_id="u1",
            )
            ids.append(window.id)
        conn.commit()
    return page.id, ids


def test_scheduler_once_moves_windows_and_records_its_heartbeat(
    app_dsn: str, dsn: str, owner: Conn
) -> None:
    _, ids = _page_with_windows(dsn, starting=2)
    done = run_cli(
        "scheduler", "--dsn", app_dsn, "--once", "--instance", "once-1", "--log-format", "json"
    )
    assert done.returncode == 0, done.stderr
    logged = events(done.stderr)
    moved = {e["window_id"] for e in logged if e.get("event") == "scheduler.transition"}
    assert moved == set(ids)
    assert any(e.get("event") == "scheduler.step" and e["transitions"] == 2 for e in logged)
    assert "password" not in done.stderr
    assert app_dsn not in done.stderr
    row = owner.execute(
        "SELECT transitions, errors, runs, clock_timestamp() - last_success_at < interval '1 min'"
        " FROM scheduler_heartbeat WHERE instance = 'once-1'"
    ).fetchone()
    assert row == (2, 0, 1, True)
    statuses = owner.execute(
        "SELECT DISTINCT status FROM maintenance_window WHERE id = ANY (%s)", (ids,)
    ).fetchall()
    assert statuses == [("IN_PROGRESS",)]


def test_scheduler_once_exits_4_when_a_window_is_skipped(
    app_dsn: str, dsn: str, owner: Conn
) -> None:
    _, ids = _page_with_windows(dsn, starting=2)
    # A window whose start the database refuses: a trigger of the owner's, for this test.
    owner.execute(
        """CREATE FUNCTION refuse_start() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN RAISE EXCEPTION 'planted refusal' USING ERRCODE = 'check_violation'; END $$"""
    )
    owner.execute(
        "CREATE TRIGGER refuse_start BEFORE UPDATE ON maintenance_window FOR EACH ROW"
        f" WHEN (OLD.id = '{ids[0]}') EXECUTE FUNCTION refuse_start()"
    )
    done = run_cli("scheduler", "--dsn", app_dsn, "--once", "--log-format", "json")
    assert done.returncode == 4, done.stderr
    logged = events(done.stderr)
    assert [e["window_id"] for e in logged if e.get("event") == "scheduler.window_error"] == [
        ids[0]
    ]
    moved = {e["window_id"] for e in logged if e.get("event") == "scheduler.transition"}
    assert moved == {ids[1]}


def test_scheduler_once_fails_with_exit_1_on_an_unreachable_database() -> None:
    done = run_cli("scheduler", "--dsn", "host=127.0.0.1 port=1 connect_timeout=2", "--once")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_several_schedulers_make_every_transition_once_and_stop_on_sigterm(
    app_dsn: str, dsn: str, owner: Conn
) -> None:
    _, ids = _page_with_windows(dsn, starting=10, ending=10, ends_in=8.0)
    procs = [
        subprocess.Popen(
            [
                *_command(),
                "scheduler",
                "--dsn",
                app_dsn,
                "--interval",
                "100ms",
                "--instance",
                f"many-{number}",
                "--log-format",
                "json",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
        )
        for number in range(4)
    ]
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            (left,) = owner.execute(
                "SELECT count(*) FROM maintenance_window WHERE id = ANY (%s)"
                " AND status <> CASE WHEN title IN (SELECT 'w' || g FROM generate_series(0, 9) g)"
                " THEN 'IN_PROGRESS' ELSE 'COMPLETED' END",
                (ids,),
            ).fetchone()  # type: ignore[misc]
            if left == 0:
                break
            time.sleep(0.2)
        assert left == 0
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        outputs = [proc.communicate(timeout=20) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0, 0, 0], [err for _, err in outputs]
    made = collections.Counter(
        (e["window_id"], e["to_status"])
        for _, err in outputs
        for e in events(err)
        if e.get("event") == "scheduler.transition"
    )
    expected = {(w, "IN_PROGRESS") for w in ids} | {(w, "COMPLETED") for w in ids[10:]}
    assert set(made) == expected
    assert all(count == 1 for count in made.values()), made
    # Each start and end notified once, whatever the number of schedulers.
    (started, completed) = owner.execute(
        "SELECT count(*) FILTER (WHERE kind = 'maintenance_started'),"
        "       count(*) FILTER (WHERE kind = 'maintenance_completed')"
        " FROM notification_event WHERE maintenance_window_id = ANY (%s)",
        (ids,),
    ).fetchone()  # type: ignore[misc]
    assert (started, completed) == (20, 10)
    (instances,) = owner.execute(
        "SELECT count(*) FROM scheduler_heartbeat WHERE instance LIKE 'many-%'"
    ).fetchone()  # type: ignore[misc]
    assert instances == 4
    assert all(any(e.get("event") == "scheduler.stop" for e in events(err)) for _, err in outputs)


@pytest.mark.slow
def test_scheduler_reconnects_after_its_connection_is_killed(
    app_dsn: str, dsn: str, owner: Conn
) -> None:
    proc = subprocess.Popen(
        [
            *_command(),
            "scheduler",
            "--dsn",
            app_dsn,
            "--interval",
            "100ms",
            "--instance",
            "reconnect",
            "--log-format",
            "json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )

    def runs() -> int:
        row = owner.execute(
            "SELECT runs FROM scheduler_heartbeat WHERE instance = 'reconnect'"
        ).fetchone()
        return 0 if row is None else int(row[0])

    try:
        deadline = time.monotonic() + 20
        while runs() == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        owner.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = 'statusdb scheduler' AND datname = current_database()"
        )
        before = runs()
        deadline = time.monotonic() + 20
        while runs() <= before + 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert runs() > before + 2
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert any(e.get("event") == "scheduler.step_failed" for e in events(err)), err


# --- doctor ------------------------------------------------------------------------------------


def _doctor(app_dsn: str, *extra: str) -> tuple[int, dict[str, Any]]:
    done = run_cli("doctor", "--dsn", app_dsn, "--json", *extra)
    assert done.returncode in (0, 1, 2), done.stderr
    return done.returncode, json.loads(done.stdout)


def _statuses(report: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item["status"] for item in report["checks"]}


@pytest.fixture
def healthy(app_dsn: str, dsn: str) -> list[str]:
    """A page with components and windows, and a scheduler step: a healthy database."""
    _, ids = _page_with_windows(dsn, starting=2)
    with psycopg.connect(app_dsn) as conn:
        assert len(scheduler.step(conn, instance="healthy").transitions) == 2
    return ids


def test_doctor_passes_on_a_healthy_database(app_dsn: str, healthy: list[str]) -> None:
    code, report = _doctor(app_dsn)
    assert (code, report["status"]) == (0, "OK"), report
    assert set(_statuses(report)) == set(doctor.CHECKS)
    sampled = {c["name"]: c["detail"] for c in report["checks"]}
    assert sampled["component_statuses"].startswith("1 sampled")


def test_doctor_fails_on_status_drift(app_dsn: str, healthy: list[str], owner: Conn) -> None:
    # Only the owner can write around the derivation: its triggers off, a direct UPDATE.
    owner.execute("ALTER TABLE status_page_component DISABLE TRIGGER USER")
    owner.execute("UPDATE status_page_component SET current_status = 'MAJOR_OUTAGE'")
    owner.execute("ALTER TABLE status_page_component ENABLE TRIGGER USER")
    code, report = _doctor(app_dsn)
    assert code == 2
    assert _statuses(report)["component_statuses"] == "FAIL"
    assert _statuses(report)["status_chain"] == "FAIL"


def test_doctor_fails_on_group_drift(
    app_dsn: str, dsn: str, healthy: list[str], owner: Conn
) -> None:
    from statusdb import groups

    with psycopg.connect(dsn) as conn:
        (page_id,) = conn.execute("SELECT id FROM status_page LIMIT 1").fetchone()  # type: ignore[misc]
        groups.create(conn, page_id, name="G")
        conn.commit()
    owner.execute("ALTER TABLE component_group DISABLE TRIGGER USER")
    owner.execute("UPDATE component_group SET current_status = 'MAJOR_OUTAGE'")
    owner.execute("ALTER TABLE component_group ENABLE TRIGGER USER")
    code, report = _doctor(app_dsn)
    assert code == 2
    assert _statuses(report)["group_statuses"] == "FAIL"


def test_doctor_fails_on_a_stuck_lease(app_dsn: str, healthy: list[str], owner: Conn) -> None:
    owner.execute(
        "UPDATE status_change SET lease_owner = 'dead-worker',"
        " lease_expires_at = clock_timestamp() - interval '10 minutes'"
        " WHERE seq = (SELECT min(seq) FROM status_change WHERE notified_at IS NULL)"
    )
    code, report = _doctor(app_dsn)
    assert code == 2
    assert _statuses(report)["stuck_leases"] == "FAIL"
    assert {k for k, v in _statuses(report).items() if v != "OK"} == {"stuck_leases"}


def test_doctor_fails_on_a_stopped_scheduler(app_dsn: str, healthy: list[str], owner: Conn) -> None:
    owner.execute("UPDATE scheduler_heartbeat SET last_success_at = now() - interval '1 hour'")
    code, report = _doctor(app_dsn)
    assert code == 2
    assert _statuses(report)["scheduler_lag"] == "FAIL"
    # A lower threshold reports the same database as healthy as far as the lag goes.
    code, report = _doctor(app_dsn, "--scheduler-lag-warn", "2h", "--scheduler-lag-fail", "3h")
    assert _statuses(report)["scheduler_lag"] == "OK"


def test_doctor_fails_on_overdue_windows(app_dsn: str, dsn: str, owner: Conn) -> None:
    _, ids = _page_with_windows(dsn, starting=1)
    owner.execute(
        "UPDATE maintenance_window SET start_time = now() - interval '1 hour' WHERE id = %s",
        (ids[0],),
    )
    code, report = _doctor(app_dsn, "--check", "maintenance_overdue")
    assert code == 2
    assert [c["name"] for c in report["checks"]] == ["maintenance_overdue"]
    assert _statuses(report)["maintenance_overdue"] == "FAIL"


def test_doctor_fails_on_a_stale_snapshot(app_dsn: str, healthy: list[str], owner: Conn) -> None:
    # The snapshot is written by the owner's triggers only; plant a stale one as the owner.
    owner.execute("ALTER TABLE status_page_snapshot DISABLE TRIGGER USER")
    owner.execute("UPDATE status_page_snapshot SET name = 'a name the page no longer has'")
    owner.execute("ALTER TABLE status_page_snapshot ENABLE TRIGGER USER")
    code, report = _doctor(app_dsn)
    assert code == 2
    assert _statuses(report)["snapshots"] == "FAIL"


def test_doctor_fails_on_pending_migrations(app_dsn: str, healthy: list[str], owner: Conn) -> None:
    owner.execute(
        "DELETE FROM _yoyo_migration WHERE migration_id = (SELECT max(migration_id)"
        " FROM _yoyo_migration)"
    )
    code, report = _doctor(app_dsn, "--check", "migrations")
    assert code == 2
    assert report["checks"][0]["detail"].startswith("1 pending")


def test_doctor_without_a_scheduler_warns_and_probe_passes(app_dsn: str, dsn: str) -> None:
    code, report = _doctor(app_dsn)
    assert code == 1
    assert _statuses(report)["scheduler_lag"] == "WARN"
    done = run_cli("doctor", "--dsn", app_dsn, "--probe")
    assert done.returncode == 0, done.stdout
    assert done.stdout.splitlines()[-1] == "WARN"


def test_doctor_unreachable_database_fails() -> None:
    done = run_cli("doctor", "--dsn", "host=127.0.0.1 port=1 connect_timeout=2", "--json")
    assert done.returncode == 2
    report = json.loads(done.stdout)
    assert report["checks"][0]["name"] == "connect"


def test_doctor_check_is_bounded_and_leaves_the_session_as_it_was(conn: Conn) -> None:
    conn.execute("SET statement_timeout = '42s'")
    report = doctor.check(
        conn,
        thresholds=doctor.Thresholds(statement_timeout=dt.timedelta(milliseconds=1)),
        only=["component_statuses", "outbox_backlog"],
    )
    assert [c.name for c in report.checks] == ["component_statuses", "outbox_backlog"]
    # 1 ms is too short for the samples on the shared database or not: either way a report.
    assert all(c.status in ("OK", "WARN") for c in report.checks)
    (setting,) = conn.execute("SHOW statement_timeout").fetchone()  # type: ignore[misc]
    assert setting == "42s"
    conn.execute("SET statement_timeout = 0")


def test_doctor_times_out_a_slow_check_as_warn(dsn: str, owner: Conn) -> None:
    """A check that cannot finish within statement_timeout is a WARN saying so; the others
    still run, in the same transaction."""
    with psycopg.connect(dsn) as blocker:
        blocker.execute("LOCK TABLE scheduler_heartbeat IN ACCESS EXCLUSIVE MODE")
        with psycopg.connect(dsn) as conn:
            report = doctor.check(
                conn,
                thresholds=doctor.Thresholds(statement_timeout=dt.timedelta(milliseconds=300)),
                only=["scheduler_lag", "stuck_leases"],
            )
        blocker.rollback()
    by_name = {c.name: c for c in report.checks}
    assert by_name["scheduler_lag"].status == "WARN"
    assert by_name["scheduler_lag"].detail.startswith("timed out after 0.3 s")
    assert by_name["stuck_leases"].status == "OK"
    assert report.exit_code == 1


def test_step_report_and_thresholds_are_typed(dsn: str) -> None:
    _page_with_windows(dsn, starting=1)
    with psycopg.connect(dsn) as conn:
        report = scheduler.step(conn, instance="library")
    assert isinstance(report, scheduler.StepReport)
    assert [t.to_status for t in report.transitions] == ["IN_PROGRESS"]
    assert report.at.tzinfo is dt.UTC
    with pytest.raises(ValueError, match="sample_size"):
        doctor.Thresholds(sample_size=0)
    with pytest.raises(TypeError, match=r"psycopg\.Connection"):
        doctor.check("not a connection")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown checks: nope"), psycopg.connect(dsn) as conn:
        doctor.check(conn, only=["nope"])
    with psycopg.connect(dsn) as conn, pytest.raises(ValueError, match="instance"):
        scheduler.step(conn, instance="x" * 201)


# --- in process: the same code paths, measured by coverage --------------------------------------


def test_run_loop_steps_until_stopped_and_counts_its_metrics(app_dsn: str, dsn: str) -> None:
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry()
    metrics = scheduler.SchedulerMetrics(registry)
    _page_with_windows(dsn, starting=1)
    stop = threading.Event()
    results: list[scheduler.RunResult] = []
    worker = threading.Thread(
        target=lambda: results.append(
            scheduler.run(
                app_dsn,
                interval=dt.timedelta(milliseconds=50),
                instance="in-process",
                stop=stop,
                metrics=metrics,
            )
        )
    )
    worker.start()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if (
                registry.get_sample_value("statusdb_scheduler_steps_total", {"outcome": "ok"}) or 0
            ) >= 3:
                break
            time.sleep(0.05)
    finally:
        stop.set()
        worker.join(timeout=20)
    assert results[0].steps >= 3
    assert results[0].failures == 0
    moved = registry.get_sample_value(
        "statusdb_scheduler_transitions_total", {"to_status": "IN_PROGRESS"}
    )
    assert moved == 1
    assert registry.get_sample_value("statusdb_scheduler_last_success_timestamp_seconds")


def test_run_reconnects_with_back_off(app_dsn: str) -> None:
    attempts: list[float] = []
    stop = threading.Event()

    def flaky(conninfo: str) -> psycopg.Connection[Any]:
        attempts.append(time.monotonic())
        if len(attempts) == 1:
            raise Retryable("the database is restarting")
        connection = psycopg.connect(conninfo)
        stop.set()  # one step on the new connection, then stop
        return connection

    result = scheduler.run(
        app_dsn,
        interval=dt.timedelta(milliseconds=50),
        stop=stop,
        connect=flaky,
        max_backoff=dt.timedelta(seconds=1),
    )
    assert (result.failures, result.steps) == (1, 1)
    assert attempts[1] - attempts[0] >= 0.4  # the first back-off: 1 s with jitter (0.5-1)


def test_run_once_raises_what_failed() -> None:
    with pytest.raises(StatusdbError):
        scheduler.run("host=127.0.0.1 port=1 connect_timeout=1", once=True)
    with pytest.raises(ValueError, match="interval"):
        scheduler.run("", interval=dt.timedelta(0))


@pytest.fixture
def restore_logging() -> Iterator[None]:
    import logging

    logger = logging.getLogger("statusdb")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    try:
        yield
    finally:
        logger.handlers[:], logger.level, logger.propagate = saved


def test_the_commands_in_process(
    app_dsn: str, dsn: str, restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    from statusdb.tooling import cli

    _page_with_windows(dsn, starting=1)
    assert cli.main(["scheduler", "--dsn", app_dsn, "--once", "--log-format", "json"]) == 0
    logged = events(capsys.readouterr().err)
    assert [e["to_status"] for e in logged if e.get("event") == "scheduler.transition"] == [
        "IN_PROGRESS"
    ]
    with pytest.raises(SystemExit) as exited:
        cli.main(["doctor", "--dsn", app_dsn])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1] == "OK"
    with pytest.raises(SystemExit) as exited:
        cli.main(["doctor", "--dsn", app_dsn, "--sample-size", "0"])
    assert exited.value.code == 2
    with pytest.raises(SystemExit) as exited:
        cli.main(["doctor", "--dsn", app_dsn, "--json", "--replica-dsn", app_dsn])
    report = json.loads(capsys.readouterr().out)
    assert {c["name"]: c["status"] for c in report["checks"]}["replica_lag"] == "FAIL"
    assert exited.value.code == 2


def test_durations_and_json_log_lines() -> None:
    import argparse
    import logging

    from statusdb.tooling import scheduler_cmd

    assert scheduler_cmd.duration("30s") == dt.timedelta(seconds=30)
    assert scheduler_cmd.duration("500ms") == dt.timedelta(milliseconds=500)
    assert scheduler_cmd.duration("2m") == dt.timedelta(minutes=2)
    assert scheduler_cmd.duration("1.5") == dt.timedelta(seconds=1.5)
    for bad in ("", "0s", "soon", "-1s"):
        with pytest.raises(argparse.ArgumentTypeError):
            scheduler_cmd.duration(bad)
    record = logging.makeLogRecord(
        {"msg": "scheduler.step: %d", "args": (3,), "levelname": "INFO", "name": "x", "event": "e"}
    )
    line = json.loads(scheduler_cmd.JsonFormatter().format(record))
    assert (line["message"], line["event"], line["level"]) == ("scheduler.step: 3", "e", "info")


@pytest.mark.slow
def test_scheduler_rides_out_a_database_restart(server_owned_tmp_dir: Path) -> None:
    """A restart of the server mid-run (a cluster of its own): the scheduler logs the failed
    step, reconnects with back-off once the server is back, and goes on stepping."""
    from statusdb.infra import migrations
    from statusdb.tooling import localpg

    cluster = localpg.LocalCluster(server_owned_tmp_dir / "pgdata", fsync=False)
    cluster.initialize()
    cluster.start()
    try:
        dsn = cluster.ensure_database("statusdb")
        migrations.apply(dsn)
        proc = subprocess.Popen(
            [
                *_command(),
                "scheduler",
                "--dsn",
                dsn,
                "--interval",
                "100ms",
                "--instance",
                "restart",
                "--log-format",
                "json",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
        )

        def runs() -> int:
            with psycopg.connect(dsn, autocommit=True) as admin:
                row = admin.execute(
                    "SELECT runs FROM scheduler_heartbeat WHERE instance = 'restart'"
                ).fetchone()
            return 0 if row is None else int(row[0])

        try:
            deadline = time.monotonic() + 30
            while runs() == 0 and time.monotonic() < deadline:
                time.sleep(0.2)
            cluster.stop(mode="fast")
            time.sleep(1.5)  # the scheduler's steps fail meanwhile
            cluster.start()
            before = runs()
            deadline = time.monotonic() + 30
            while runs() <= before + 2 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert runs() > before + 2
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err
        assert any(e.get("event") == "scheduler.step_failed" for e in events(err)), err
    finally:
        cluster.stop(mode="immediate")
