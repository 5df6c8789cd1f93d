"""A deploy pipeline can trust the `statusdb` command (issue 25, items 1 and 2).

Each case runs the real command (or the migration library) in a subprocess, as a deploy job
would: no DSN is an error rather than a throwaway local cluster; the demo asks before writing
into a named database; `status --check` gates a deploy; a silent server cannot hang the
command; a killed migration's lock can be broken; yoyo's URL form works; a role that may not
migrate is told which role to use; Ctrl-C rolls back the migration under way.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from statusdb.infra import migrations
from statusdb.tooling import cli


def _statusdb_command() -> list[str]:
    script = Path(sys.executable).parent / "statusdb"
    return [str(script)] if script.exists() else [sys.executable, "-m", "statusdb.tooling.cli"]


def _run(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("STATUSDB_")}
    return subprocess.run(
        [*_statusdb_command(), *args],
        capture_output=True,
        text=True,
        env={**base, **(env or {})},
        timeout=timeout,
        check=False,
    )


def _public_tables(dsn: str) -> set[str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {str(r[0]) for r in rows.fetchall()}


@pytest.fixture
def toy_migrations(tmp_path: Path) -> Path:
    directory = tmp_path / "migrations"
    directory.mkdir()
    (directory / "0001_alpha.sql").write_text("CREATE TABLE alpha (id int PRIMARY KEY);\n")
    (directory / "0001_alpha.rollback.sql").write_text("DROP TABLE alpha;\n")
    (directory / "0002_slow.sql").write_text(
        "-- depends: 0001_alpha\nCREATE TABLE slow (id int);\nSELECT pg_sleep(4);\n"
    )
    (directory / "0002_slow.rollback.sql").write_text("DROP TABLE slow;\n")
    return directory


def test_migrate_without_a_dsn_fails_and_creates_no_cluster(tmp_path: Path) -> None:
    data_dir = tmp_path / "pgdata"
    for command in (["migrate"], ["status"], ["rollback"], ["dsn"], ["break-lock"]):
        result = _run(*command, env={"STATUSDB_DATA_DIR": str(data_dir)})
        assert result.returncode == cli.EXIT_USAGE, (command, result.stderr)
        assert "no database given" in result.stderr
        assert "--dsn" in result.stderr
        assert "STATUSDB_DSN" in result.stderr
        assert result.stdout == ""
    assert not data_dir.exists()


def test_demo_refuses_a_named_database_without_yes(empty_dsn: str) -> None:
    result = _run("demo", env={"STATUSDB_DSN": empty_dsn})
    assert result.returncode == cli.EXIT_USAGE
    assert "--yes" in result.stderr
    assert "acme-cloud" in result.stderr
    assert _public_tables(empty_dsn) == set()  # not even migrated


def test_status_check_gates_a_deploy(empty_dsn: str) -> None:
    pending = _run("status", "--check", "--dsn", empty_dsn)
    assert pending.returncode == cli.EXIT_PENDING
    assert "pending" in pending.stderr
    assert _run("status", "--dsn", empty_dsn).returncode == 0  # without --check: a listing
    assert _run("migrate", "--dsn", empty_dsn).returncode == 0
    current = _run("status", "--check", "--dsn", empty_dsn)
    assert current.returncode == 0, current.stderr
    assert "pending" not in current.stdout


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP port that accepts connections and never says a word."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    try:
        yield int(listener.getsockname()[1])
    finally:
        listener.close()


def test_a_silent_server_cannot_hang_the_command(silent_server: int) -> None:
    dsn = f"host=127.0.0.1 port={silent_server} dbname=x user=x"
    started = time.monotonic()
    given = _run("status", "--dsn", dsn, "--connect-timeout", "1", timeout=30)
    assert given.returncode == 1
    assert time.monotonic() - started < 15
    from_env = _run("status", "--dsn", dsn, env={"STATUSDB_CONNECT_TIMEOUT": "1"}, timeout=30)
    assert from_env.returncode == 1
    assert "statusdb: error:" in from_env.stderr
    assert cli.DEFAULT_CONNECT_TIMEOUT_S <= 30  # the default bounds an unconfigured job too
    assert "connect_timeout=10" in cli._with_connect_timeout("host=h", 10).replace("'", "")


def test_yoyo_url_form_is_accepted(empty_dsn: str) -> None:
    params = conninfo_to_dict(empty_dsn)
    url = migrations.yoyo_url(empty_dsn)
    assert url.startswith("postgresql+psycopg://")
    result = _run("migrate", "--dsn", url)
    assert result.returncode == 0, result.stderr
    checked = _run("status", "--check", "--dsn", url)
    assert checked.returncode == 0, checked.stderr
    assert str(params["dbname"]) in url


def _wait_for_no_migrator(dsn: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    with psycopg.connect(dsn, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE %s",
                (migrations.APPLICATION_NAME_PREFIX + "%",),
            ).fetchone()
            if row and row[0] == 0:
                return
            time.sleep(0.2)
    raise AssertionError("the killed migrator's session did not end")


def _library_run(dsn: str, directory: Path) -> subprocess.Popen[str]:
    code = textwrap.dedent(
        f"""
        import sys
        from statusdb.infra import migrations
        try:
            migrations.apply({dsn!r}, directory={str(directory)!r}, lock_timeout=1)
        except migrations.MigrationInterrupted as exc:
            print("INTERRUPTED", exc)
            sys.exit(130)
        """
    )
    return subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _wait_for_sleep(dsn: str) -> None:
    deadline = time.monotonic() + 20
    with psycopg.connect(dsn, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE query LIKE %s AND state = 'active'",
                ("%pg_sleep(4)%",),
            ).fetchone()
            if row and row[0]:
                return
            time.sleep(0.05)
    raise AssertionError("the slow migration never started")


def test_a_killed_migration_is_unlocked_by_break_lock(empty_dsn: str, toy_migrations: Path) -> None:
    process = _library_run(empty_dsn, toy_migrations)
    _wait_for_sleep(empty_dsn)
    process.kill()  # SIGKILL: no clean-up runs in the migrator
    process.communicate()  # reaps it and closes its pipes
    live = _run("break-lock", "--dsn", empty_dsn)
    # Its server session may still be finishing the statement it was killed in: then
    # break-lock refuses, naming it, because the migration is in fact still running.
    assert live.returncode in (0, 1), live.stderr
    if live.returncode == 1:
        assert "still connected" in live.stderr
    _wait_for_no_migrator(empty_dsn)
    if live.returncode == 0:  # the lock was broken already: plant the row a kill leaves
        with psycopg.connect(empty_dsn, autocommit=True) as conn:
            conn.execute("INSERT INTO yoyo_lock (locked, ctime, pid) VALUES (1, now(), 1)")
    with pytest.raises(migrations.MigrationError, match="statusdb break-lock"):
        migrations.apply(empty_dsn, directory=toy_migrations, lock_timeout=0.5)
    broken = _run("break-lock", "--dsn", empty_dsn)
    assert broken.returncode == 0, broken.stderr
    assert "removed" in broken.stdout
    assert migrations.apply(empty_dsn, directory=toy_migrations) == ["0002_slow"]  # 0001 landed


def test_ctrl_c_rolls_back_the_migration_under_way(empty_dsn: str, toy_migrations: Path) -> None:
    process = _library_run(empty_dsn, toy_migrations)
    _wait_for_sleep(empty_dsn)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 130, (out, err)
    assert "another command is already in progress" not in out + err
    assert "0002_slow was rolled back" in out
    assert "applied before it: 0001_alpha" in out
    assert "slow" not in _public_tables(empty_dsn)
    with psycopg.connect(empty_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM yoyo_lock").fetchone() == (0,)
    assert migrations.status(empty_dsn, directory=toy_migrations) == [
        ("0001_alpha", True),
        ("0002_slow", False),
    ]


def test_the_cli_reports_an_interrupted_migration(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted(*args: object, **kwargs: object) -> list[str]:
        raise migrations.MigrationInterrupted("interrupted: migration 0002_x was rolled back")

    monkeypatch.setattr(migrations, "apply", interrupted)
    assert cli.main(["migrate", "--dsn", "host=127.0.0.1 dbname=x"]) == cli.EXIT_INTERRUPTED
    assert "0002_x was rolled back" in capsys.readouterr().err


@pytest.fixture
def outsider_dsn(cluster: object, empty_dsn: str) -> str:
    """A LOGIN role that owns nothing and (PostgreSQL 15) may not create in `public`."""
    name = "statusdb_test_outsider"
    with psycopg.connect(empty_dsn, autocommit=True) as admin:
        if not admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone():
            admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(name)))
    params = conninfo_to_dict(empty_dsn)
    params["user"] = name
    return make_conninfo(**{k: str(v) for k, v in params.items() if v is not None})


def test_a_role_that_may_not_migrate_is_told_which_to_use(
    empty_dsn: str, outsider_dsn: str
) -> None:
    owner = conninfo_to_dict(empty_dsn)["user"]
    refused = _run("migrate", "--dsn", outsider_dsn)
    assert refused.returncode == 1
    assert "lacks the privilege to make tables" in refused.stderr
    assert f"({owner})" in refused.stderr
    assert "yoyo_lock" not in refused.stderr
    assert _public_tables(empty_dsn) == set()

    rollback = _run("rollback", "--dsn", empty_dsn)  # never migrated: creates nothing
    assert rollback.returncode == 0, rollback.stderr
    assert "nothing to roll back" in rollback.stdout
    assert _public_tables(empty_dsn) == set()

    assert _run("migrate", "--dsn", empty_dsn).returncode == 0
    with psycopg.connect(empty_dsn, autocommit=True) as admin:
        admin.execute("GRANT statusdb_app TO statusdb_test_outsider")
    as_app = _run("migrate", "--dsn", outsider_dsn)
    assert as_app.returncode == 1
    assert f"belong to role {owner}" in as_app.stderr
    assert "permission denied" not in as_app.stderr


def test_version_is_shown() -> None:
    import statusdb

    result = _run("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"statusdb {statusdb.__version__}"
    assert statusdb.__version__[0].isdigit()
