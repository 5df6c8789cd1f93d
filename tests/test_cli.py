"""The `statusdb` command line (statusdb.tooling.cli) and the migration wrapper under it."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import psycopg
import pytest

from statusdb.db import resources
from statusdb.infra import migrations
from statusdb.tooling import cli, localpg


def _repo_migration_ids() -> list[str]:
    return sorted(
        p.name.removesuffix(".sql")
        for p in resources.migrations_dir().glob("*.sql")
        if not p.name.endswith(".rollback.sql")
    )


def _statusdb_command() -> list[str]:
    script = Path(sys.executable).parent / "statusdb"
    return [str(script)] if script.exists() else [sys.executable, "-m", "statusdb.tooling.cli"]


@pytest.fixture
def toy_migrations(tmp_path: Path) -> Path:
    """Three tiny migrations, independent of the real schema."""
    directory = tmp_path / "migrations"
    directory.mkdir()
    for number, table in enumerate(("alpha", "beta", "gamma"), start=1):
        (directory / f"{number:04d}_{table}.sql").write_text(
            f"-- Create {table}\nCREATE TABLE {table} (id int PRIMARY KEY);\n"
        )
        (directory / f"{number:04d}_{table}.rollback.sql").write_text(f"DROP TABLE {table};\n")
    return directory


def _tables(dsn: str) -> set[str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            " AND tablename NOT LIKE '\\_yoyo%' AND tablename <> 'yoyo_lock'"
        ).fetchall()
    return {row[0] for row in rows}


# -- statusdb.infra.migrations ---------------------------------------------------------------------


def test_yoyo_url_keeps_every_connection_parameter() -> None:
    url = migrations.yoyo_url("host='/tmp/sock dir' port=5433 user=me password=p@ss&w dbname='x y'")
    from yoyo.connections import parse_uri

    parsed = parse_uri(url)
    assert parsed.scheme == "postgresql+psycopg"
    assert parsed.args == {
        "host": "/tmp/sock dir",
        "port": "5433",
        "user": "me",
        "password": "p@ss&w",
        "dbname": "x y",
    }


def test_yoyo_url_accepts_postgres_urls() -> None:
    url = migrations.yoyo_url("postgresql://u@127.0.0.1:5999/db?sslmode=disable")
    assert url == (
        "postgresql+psycopg:///db?user=u&dbname=db&host=127.0.0.1&port=5999&sslmode=disable"
    )
    assert migrations.yoyo_url(url) == url


def test_odd_database_names_work(cluster: localpg.LocalCluster, toy_migrations: Path) -> None:
    dsn = cluster.ensure_database("odd name/with?chars")
    try:
        assert migrations.apply(dsn, directory=toy_migrations) == [
            "0001_alpha",
            "0002_beta",
            "0003_gamma",
        ]
        assert _tables(dsn) == {"alpha", "beta", "gamma"}
    finally:
        with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
            conn.execute('DROP DATABASE "odd name/with?chars"')


def test_apply_status_rollback_steps(empty_dsn: str, toy_migrations: Path) -> None:
    d = toy_migrations
    ids = ["0001_alpha", "0002_beta", "0003_gamma"]
    assert migrations.status(empty_dsn, directory=d) == [(i, False) for i in ids]
    assert migrations.apply(empty_dsn, directory=d) == ids
    assert migrations.apply(empty_dsn, directory=d) == []
    assert _tables(empty_dsn) == {"alpha", "beta", "gamma"}
    assert migrations.rollback(empty_dsn, 2, directory=d) == ["0003_gamma", "0002_beta"]
    assert migrations.status(empty_dsn, directory=d) == [
        ("0001_alpha", True),
        ("0002_beta", False),
        ("0003_gamma", False),
    ]
    assert migrations.apply(empty_dsn, directory=d) == ["0002_beta", "0003_gamma"]
    assert migrations.rollback(empty_dsn, directory=d) == list(reversed(ids))
    assert _tables(empty_dsn) == set()


def test_failing_migration_names_itself_and_leaves_nothing(
    empty_dsn: str, toy_migrations: Path
) -> None:
    (toy_migrations / "0004_broken.sql").write_text(
        "CREATE TABLE delta (id int);\nSELECT no_such_function();\n"
    )
    with pytest.raises(migrations.MigrationError, match="0004_broken"):
        migrations.apply(empty_dsn, directory=toy_migrations)
    assert _tables(empty_dsn) == {"alpha", "beta", "gamma"}  # delta rolled back with its txn
    assert ("0004_broken", False) in migrations.status(empty_dsn, directory=toy_migrations)


def test_concurrent_migrators_apply_each_migration_once(
    empty_dsn: str, toy_migrations: Path
) -> None:
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def migrate() -> None:
        try:
            results.append(migrations.apply(empty_dsn, directory=toy_migrations))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=migrate) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(len(r) for r in results) == [0, 3]


@pytest.mark.slow
def test_the_real_migrations_apply_and_roll_back_cleanly(empty_dsn: str) -> None:
    ids = _repo_migration_ids()
    assert migrations.apply(empty_dsn) == ids
    assert migrations.status(empty_dsn) == [(i, True) for i in ids]
    assert migrations.rollback(empty_dsn) == list(reversed(ids))
    assert _tables(empty_dsn) == set()
    assert migrations.apply(empty_dsn) == ids  # and forward again after a full rollback


# -- statusdb CLI --------------------------------------------------------------------------


@pytest.mark.slow
def test_cli_migrate_status_rollback(empty_dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    ids = _repo_migration_ids()
    assert cli.main(["status", "--dsn", empty_dsn]) == 0
    assert capsys.readouterr().out.split() == [w for i in ids for w in ("pending", i)]

    assert cli.main(["migrate", "--dsn", empty_dsn]) == 0
    assert capsys.readouterr().out.splitlines() == [f"applied {i}" for i in ids]
    assert cli.main(["migrate", "--dsn", empty_dsn]) == 0
    assert "up to date" in capsys.readouterr().out

    assert cli.main(["rollback", "--dsn", empty_dsn]) == 0
    assert capsys.readouterr().out.splitlines() == [f"rolled back {ids[-1]}"]
    assert cli.main(["status", "--dsn", empty_dsn]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1].split() == ["pending", ids[-1]]
    assert all(line.startswith("applied") for line in lines[:-1])

    assert cli.main(["rollback", "--all", "--dsn", empty_dsn]) == 0
    assert capsys.readouterr().out.splitlines() == [f"rolled back {i}" for i in reversed(ids[:-1])]


def test_cli_dsn_from_environment(
    empty_dsn: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STATUSDB_DSN", empty_dsn)
    assert cli.main(["dsn"]) == 0
    assert capsys.readouterr().out.strip() == empty_dsn
    assert cli.main(["migrate"]) == 0
    assert "applied" in capsys.readouterr().out


def test_cli_demo_on_a_given_database(empty_dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["demo", "--yes", "--dsn", empty_dsn]) == 0
    capsys.readouterr()
    assert all(applied for _, applied in migrations.status(empty_dsn))


def test_cli_errors_are_one_line_without_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["status", "--dsn", "host=127.0.0.1 port=1 dbname=nope"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("statusdb: error: ")
    assert err.count("\n") == 1
    assert "Traceback" not in err

    assert cli.main(["rollback", "--steps", "0", "--dsn", "host=127.0.0.1 port=1"]) == 1
    assert "--steps" in capsys.readouterr().err


def test_cli_missing_postgres_is_one_clear_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("STATUSDB_DSN", raising=False)
    monkeypatch.setenv("STATUSDB_PG_BINDIR", str(tmp_path))
    assert cli.main(["start", "--data-dir", str(tmp_path / "pgdata")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "apt-get install postgresql" in err


@pytest.mark.slow
def test_cli_local_cluster_start_dsn_migrate_stop(
    server_owned_tmp_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With --local the commands use (and create) the local cluster and its statusdb db."""
    monkeypatch.delenv("STATUSDB_DSN", raising=False)
    monkeypatch.setenv("STATUSDB_DATA_DIR", str(server_owned_tmp_dir / "pgdata"))
    try:
        assert cli.main(["start"]) == 0
        assert "running on 127.0.0.1" in capsys.readouterr().out
        assert cli.main(["migrate", "--local"]) == 0
        capsys.readouterr()
        assert cli.main(["dsn", "--local"]) == 0
        dsn = capsys.readouterr().out.strip()
        assert psycopg.conninfo.conninfo_to_dict(dsn)["dbname"] == "statusdb"
        assert all(applied for _, applied in migrations.status(dsn))
    finally:
        assert cli.main(["stop"]) == 0
    assert "stopped" in capsys.readouterr().out
    assert not localpg.LocalCluster(server_owned_tmp_dir / "pgdata").is_running()


def test_console_script_in_a_subprocess(empty_dsn: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "STATUSDB_DSN"}
    ok = subprocess.run(
        [*_statusdb_command(), "migrate", "--dsn", empty_dsn],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.splitlines() == [f"applied {i}" for i in _repo_migration_ids()]

    bad = subprocess.run(
        [*_statusdb_command(), "status", "--dsn", "host=127.0.0.1 port=1"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        check=False,
    )
    assert bad.returncode == 1
    assert bad.stderr.startswith("statusdb: error: ")
    assert "Traceback" not in bad.stderr
