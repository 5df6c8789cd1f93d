"""The local cluster statusdb runs for itself (statusdb.tooling.localpg)."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import psycopg
import pytest

from statusdb.tooling import localpg

pytestmark = pytest.mark.slow


def test_session_cluster_is_a_fast_local_dev_cluster(cluster: localpg.LocalCluster) -> None:
    assert cluster.is_running()
    with psycopg.connect(cluster.dsn()) as conn:
        settings: dict[str, str] = dict(
            conn.execute(
                "SELECT name, setting FROM pg_settings WHERE name = ANY(%s)",
                (["fsync", "listen_addresses", "port", "server_version_num"],),
            ).fetchall()
        )
    assert settings["fsync"] == "off"
    assert settings["listen_addresses"] == "127.0.0.1"
    assert int(settings["port"]) == cluster.port
    assert int(settings["server_version_num"]) >= 150000
    assert cluster.log_file.parent == cluster.data_dir.parent


def test_dsn_is_a_libpq_conninfo(cluster: localpg.LocalCluster) -> None:
    params = psycopg.conninfo.conninfo_to_dict(cluster.dsn("some db"))
    assert params == {
        "host": "127.0.0.1",
        "port": str(cluster.port),
        "user": "postgres",
        "dbname": "some db",
    }


def test_ensure_running_reuses_a_running_cluster(cluster: localpg.LocalCluster) -> None:
    pid_before = (cluster.data_dir / "postmaster.pid").read_text().splitlines()[0]
    again = localpg.ensure_running(cluster.data_dir)
    assert again.port == cluster.port
    assert (cluster.data_dir / "postmaster.pid").read_text().splitlines()[0] == pid_before


def test_ensure_database_is_idempotent(cluster: localpg.LocalCluster) -> None:
    dsn = cluster.ensure_database("statusdb_ensure_db")
    assert cluster.ensure_database("statusdb_ensure_db") == dsn
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == ("statusdb_ensure_db",)
    with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
        conn.execute("DROP DATABASE statusdb_ensure_db")


def test_life_cycle_reuse_and_busy_port(server_owned_tmp_dir: Path) -> None:
    """initdb once; stop/start keeps data and port; a busy port is replaced at start."""
    data_dir = server_owned_tmp_dir / "pgdata"
    first = localpg.ensure_running(data_dir, fsync=False)
    try:
        port = first.port
        with psycopg.connect(first.dsn(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE kept")
        first.stop()
        assert not first.is_running()
        assert first.port == port  # stored, not only known while running

        # Same data directory, new object: reused, not re-initialized.
        second = localpg.ensure_running(data_dir, fsync=False)
        assert second.port == port
        with psycopg.connect(second.dsn("kept")) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        second.stop()

        with socket.socket() as squatter:
            # SO_REUSEADDR: the old server's closed connections may linger in TIME_WAIT.
            squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            squatter.bind((localpg.HOST, port))
            squatter.listen()
            third = localpg.ensure_running(data_dir, fsync=False)
            assert third.port != port
            with psycopg.connect(third.dsn("kept")) as conn:
                assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        first.stop()
    assert not first.is_running()
    first.stop()  # stopping a stopped cluster is fine


def test_stale_pid_file_is_not_a_running_server(server_owned_tmp_dir: Path) -> None:
    data_dir = server_owned_tmp_dir / "pgdata"
    data_dir.mkdir()
    with subprocess.Popen(["sleep", "30"]) as other:  # a live pid that is not postgres
        try:
            (data_dir / "postmaster.pid").write_text(f"{other.pid}\n{data_dir}\n0\n5432\n")
            assert not localpg.LocalCluster(data_dir).is_running()
        finally:
            other.kill()


def test_start_before_initialize_is_a_clear_error(server_owned_tmp_dir: Path) -> None:
    with pytest.raises(localpg.ClusterError, match="initialize"):
        localpg.LocalCluster(server_owned_tmp_dir / "pgdata").start()


def test_refuses_a_non_empty_foreign_directory(server_owned_tmp_dir: Path) -> None:
    data_dir = server_owned_tmp_dir / "pgdata"
    data_dir.mkdir()
    (data_dir / "something.txt").write_text("not a cluster")
    with pytest.raises(localpg.ClusterError, match="not empty"):
        localpg.LocalCluster(data_dir).initialize()


def test_missing_binaries_say_how_to_install(tmp_path: Path) -> None:
    bogus = tmp_path / "no-postgres-here"
    bogus.mkdir()
    with pytest.raises(localpg.PostgresNotFoundError) as excinfo:
        localpg.LocalCluster(tmp_path / "pgdata", bindir=bogus).initialize()
    message = str(excinfo.value)
    assert str(bogus) in message
    assert "apt-get install postgresql" in message
    assert "brew install postgresql@15" in message
    assert not (tmp_path / "pgdata").exists()  # failed before creating anything


def test_missing_binaries_via_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATUSDB_PG_BINDIR", str(tmp_path))
    with pytest.raises(localpg.PostgresNotFoundError, match="apt-get install"):
        localpg.ensure_running(tmp_path / "pgdata")


def test_find_bindir_finds_the_server_programs() -> None:
    bindir = localpg.find_bindir()
    for program in ("initdb", "pg_ctl", "postgres"):
        assert (bindir / program).exists()


def test_default_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("STATUSDB_DATA_DIR", str(tmp_path / "mine"))
    assert localpg.default_data_dir() == tmp_path / "mine"

    monkeypatch.delenv("STATUSDB_DATA_DIR")
    monkeypatch.setattr(localpg, "_running_as_root", lambda: False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert localpg.default_data_dir() == tmp_path / "xdg" / "statusdb" / "pgdata"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    expected = tmp_path / "home" / ".local" / "share" / "statusdb" / "pgdata"
    assert localpg.default_data_dir() == expected

    monkeypatch.setattr(localpg, "_running_as_root", lambda: True)
    assert localpg.default_data_dir() == Path("/var/tmp/statusdb-root/pgdata")


def test_long_paths_get_a_short_socket_dir(tmp_path: Path) -> None:
    deep = tmp_path / ("x" * 120) / "pgdata"
    socket_dir = localpg.LocalCluster(deep).socket_dir
    assert len(str(socket_dir)) < 90
    assert localpg.LocalCluster(deep).socket_dir == socket_dir  # stable across objects
