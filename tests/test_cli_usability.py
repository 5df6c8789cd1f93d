"""The `statusdb` command explains itself and does what it says (issue 14, item 5).

Subcommands have descriptions; `start`/`stop` refuse --dsn instead of ignoring it; `psql`
passes arguments after `--` on to psql; `status` only reads the database it inspects; and a
library call on a database that was never migrated says to run `statusdb migrate`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from statusdb import teams, views
from statusdb.errors import StatusdbError
from statusdb.tooling import cli

COMMANDS = ["migrate", "rollback", "status", "break-lock", "demo", "start", "stop", "dsn", "psql"]


def _statusdb_command() -> list[str]:
    script = Path(sys.executable).parent / "statusdb"
    return [str(script)] if script.exists() else [sys.executable, "-m", "statusdb.tooling.cli"]


def _public_tables(dsn: str) -> list[str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
        ).fetchall()
    return [row[0] for row in rows]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_subcommand_help_describes_it(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        cli.main([command, "--help"])
    out = " ".join(capsys.readouterr().out.split())
    description = " ".join(cli._DESCRIPTIONS[command].split())
    assert description in out


@pytest.mark.parametrize("command", ["start", "stop"])
def test_start_and_stop_refuse_dsn(
    command: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--dsn names a database; start/stop act on the local cluster, so they refuse it."""
    data_dir = tmp_path / "pgdata"
    monkeypatch.setenv("STATUSDB_DATA_DIR", str(data_dir))
    assert cli.main([command, "--dsn", "host=db.example dbname=statusdb"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("statusdb: error: ")
    assert "--dsn" in err
    assert not data_dir.exists()  # the local cluster was neither created nor touched


@pytest.mark.skipif(shutil.which("psql") is None, reason="psql is not installed")
def test_psql_passes_the_arguments_after_dashes(empty_dsn: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "STATUSDB_DSN"}
    result = subprocess.run(
        [*_statusdb_command(), "psql", "--dsn", empty_dsn, "--", "-tAc", "SELECT 40 + 2"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "42"


def test_status_only_reads_the_database(empty_dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["status", "--dsn", empty_dsn]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines
    assert all(line.startswith("pending ") for line in lines)
    assert _public_tables(empty_dsn) == []  # no yoyo bookkeeping tables created

    assert cli.main(["migrate", "--dsn", empty_dsn]) == 0
    capsys.readouterr()
    assert cli.main(["status", "--dsn", empty_dsn]) == 0
    assert all(line.startswith("applied ") for line in capsys.readouterr().out.splitlines())


def test_a_library_call_on_an_unmigrated_database_says_run_migrate(empty_dsn: str) -> None:
    with psycopg.connect(empty_dsn) as conn:
        with pytest.raises(StatusdbError, match="run `statusdb migrate") as raised:
            teams.create(conn, name="Platform")
        assert 'relation "team" does not exist' in str(raised.value)
        conn.rollback()
        with pytest.raises(StatusdbError, match="run `statusdb migrate"):
            views.page_view(conn, "acme")


# -- the demo orients (issue 14, item 4) -----------------------------------------------------


def test_demo_names_each_steps_calls_and_explains_drift(
    empty_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["demo", "--yes", "--dsn", empty_dsn]) == 0
    out = capsys.readouterr().out
    assert f"Database: {empty_dsn}" in out
    steps = out.split("\n=== ")[1:]
    assert len(steps) == 6  # the sixth: the 90-day uptime bars (issue 13)
    for step in steps:
        assert "  >>> " in step  # the repository calls behind the step
    assert ">>> outage = incidents.create(conn, team.id" in out
    assert ">>> maintenance.advance(conn, now)" in out
    assert ">>> uptime.daily(conn, page.id, days=90)" in out
    bars = steps[5]
    assert "Core platform (group) " in bars  # the groups' bars too, as a tree
    assert "  Data (group) " in bars
    assert "Drift: 0." in out
    assert "derives every component's status again from scratch" in out


def test_demo_on_the_local_cluster_says_where_it_lives_and_how_to_stop_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STATUSDB_DSN", raising=False)
    args = cli._parser().parse_args(["demo", "--data-dir", str(tmp_path / "pgdata")])
    text = "\n".join(cli._where(args, "host=127.0.0.1 port=5999 dbname=statusdb"))
    assert f"data folder: {tmp_path / 'pgdata'}" in text
    assert "dsn:         host=127.0.0.1 port=5999 dbname=statusdb" in text
    assert "keeps running" in text
    assert "`statusdb stop` stops it" in text
