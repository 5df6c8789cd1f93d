"""statusdb through a real PgBouncer in transaction pooling mode.

The module starts Debian's PgBouncer (1.18 here: no protocol-level prepared statements) on
127.0.0.1 in front of the session cluster, with one server connection per database and user,
so that consecutive transactions of different clients run on the same server connection and
whatever one leaves behind, the next one would see. As root PgBouncer runs as the `postgres`
OS user (it refuses root), like the server.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from conftest import make_server_owned_dir
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import TupleRow

from statusdb import feed, incidents, pages, status_incidents, teams, tenancy, uptime, views
from statusdb.errors import InvalidInput, StatusdbError
from statusdb.infra import routing
from statusdb.infra.pool import make_pool
from statusdb.pages import NewComponent
from statusdb.tooling import localpg

# One xdist worker builds this module's module-scoped fixtures once (not once per worker).
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("pgbouncer")]

Conn = psycopg.Connection[TupleRow]


def _pgbouncer() -> str | None:
    found = shutil.which("pgbouncer")
    if found is None and os.access("/usr/sbin/pgbouncer", os.X_OK):
        found = "/usr/sbin/pgbouncer"
    return found


def _version(binary: str) -> tuple[int, ...]:
    out = subprocess.run(
        [binary, "--version"], capture_output=True, text=True, check=False, timeout=30
    ).stdout
    match = re.search(r"PgBouncer (\d+)\.(\d+)", out)
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


class Bouncer:
    """A PgBouncer process in `base`, in front of the cluster at `server_port`."""

    def __init__(self, binary: str, base: Path, server_port: int) -> None:
        self.binary = binary
        self.version = _version(binary)
        self.base = base
        with socket.socket() as sock:
            sock.bind((localpg.HOST, 0))
            self.port: int = sock.getsockname()[1]
        users = base / "users.txt"
        users.write_text('"postgres" ""\n', encoding="utf-8")
        self.config = base / "pgbouncer.ini"
        self.config.write_text(
            "\n".join(
                [
                    "[databases]",
                    f"* = host={localpg.HOST} port={server_port}",
                    "[pgbouncer]",
                    f"listen_addr = {localpg.HOST}",
                    f"listen_port = {self.port}",
                    "unix_socket_dir =",
                    "auth_type = trust",
                    f"auth_file = {users}",
                    "pool_mode = transaction",
                    # One server connection per database and user: clients take turns on it.
                    "default_pool_size = 1",
                    "max_client_conn = 50",
                    f"logfile = {base / 'pgbouncer.log'}",
                    f"pidfile = {base / 'pgbouncer.pid'}",
                    "ignore_startup_parameters = extra_float_digits",
                    "",
                ]
            ),
            encoding="utf-8",
        )
        if os.geteuid() == 0:
            server = pwd.getpwnam(localpg.SERVER_OS_USER)
            for path in (users, self.config):
                os.chown(path, server.pw_uid, server.pw_gid)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        args = [self.binary, str(self.config)]
        if os.geteuid() == 0:  # PgBouncer refuses to run as root, like PostgreSQL
            args = ["runuser", "-u", localpg.SERVER_OS_USER, "--", *args]
        self.process = subprocess.Popen(
            args,
            cwd="/",
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while True:
            with (
                contextlib.suppress(OSError),
                socket.create_connection((localpg.HOST, self.port), timeout=1),
            ):
                return
            if self.process.poll() is not None or time.monotonic() > deadline:
                log = (self.base / "pgbouncer.log").read_text(errors="replace")[-800:]
                raise RuntimeError(f"pgbouncer did not start: {log}")
            time.sleep(0.05)

    def stop(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            os.kill(int((self.base / "pgbouncer.pid").read_text()), signal.SIGTERM)
        if self.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=10)
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()

    def dsn(self, direct_dsn: str) -> str:
        """`direct_dsn` (a database of the session cluster) through PgBouncer."""
        params = conninfo_to_dict(direct_dsn)
        params.update(host=localpg.HOST, port=str(self.port))
        return make_conninfo(**{k: str(v) for k, v in params.items() if v is not None})


@pytest.fixture(scope="module")
def bouncer(cluster: localpg.LocalCluster) -> Iterator[Bouncer]:
    binary = _pgbouncer()
    if binary is None:
        pytest.skip(
            "pgbouncer is not installed (Debian: apt-get install pgbouncer; .ci/run installs "
            "it as root)"
        )
    base = make_server_owned_dir("statusdb-pgbouncer-")
    running = Bouncer(binary, base, cluster.port)
    try:
        running.start()
        yield running
    finally:
        running.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def bdsn(bouncer: Bouncer, dsn: str) -> str:
    """This test's database, through PgBouncer."""
    return bouncer.dsn(dsn)


def _seed(conn: Conn) -> tuple[str, str]:
    team = teams.create(conn, name="Bounced")
    created = pages.create(
        conn,
        team_id=team.id,
        name="Bounced",
        slug="bounced",
        created_by_id="user-1",
        is_public=True,
        components=[NewComponent(name=f"C{n}", team_id=team.id) for n in range(3)],
    )
    return team.id, created.page.id


def _server_pid(conn: Conn) -> int:
    row = conn.execute("SELECT pg_backend_pid()").fetchone()
    assert row is not None
    return int(row[0])


def test_operations_work_with_prepare_false(bdsn: str) -> None:
    """Four clients on one server connection: every operation, many times, no error."""
    errors: list[BaseException] = []
    with make_pool(bdsn, prepare=False, min_size=4, max_size=4) as pool:
        with pool.connection() as conn:
            team_id, page_id = _seed(conn)

        def client(k: int) -> None:
            try:
                for i in range(5):
                    with pool.connection() as conn:
                        incident = incidents.create(
                            conn, team_id, title=f"{k}-{i}", priority="HIGH"
                        )
                        note = status_incidents.create(
                            conn, page_id, title="Slow", severity="MINOR", message="looking"
                        )
                    with pool.connection() as conn:
                        view = views.page_view(conn, "bounced")
                        assert view is not None
                        status_incidents.add_update(
                            conn, note.id, status="RESOLVED", message="fixed"
                        )
                        incidents.resolve(conn, incident.id)
                    with pool.connection() as conn:
                        status_incidents.history(conn, page_id, days=1)
                        now = dt.datetime.now(dt.UTC)
                        uptime.for_page(conn, page_id, start=now - dt.timedelta(days=1), end=now)
                        pages.list_for_team(conn, team_id)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        with pool.connection() as conn:
            history = status_incidents.history(conn, page_id, days=1, limit=100)
            assert len(history.items) == 20
            view = views.page_view(conn, "bounced")
            assert view is not None
            assert view.page.overall_status == "OPERATIONAL"
            assert conn.execute("SELECT count(*) FROM pg_prepared_statements").fetchone() == (0,)


def test_prepared_statements_break_without_protocol_support(bouncer: Bouncer, bdsn: str) -> None:
    """Why `prepare=False`: on PgBouncer < 1.21 a statement one client prepared is found (or
    missing) on the server connection another client gets."""
    if bouncer.version >= (1, 21):
        pytest.skip(f"PgBouncer {bouncer.version} may track prepared statements itself")
    with psycopg.connect(bdsn) as conn:
        _seed(conn)
    with (
        make_pool(bdsn, autocommit=True, min_size=2, max_size=2) as pool,
        pool.connection() as first,
        pool.connection() as second,
    ):
        # In a locale page_view is an operation on psycopg's cursor (its common call goes by
        # libpq, which survives this: test_page_reads_by_libpq_share_a_server_connection).
        assert views.page_view(first, "bounced", locale="en") is not None
        with pytest.raises(StatusdbError) as raised:
            views.page_view(second, "bounced", locale="en")
    assert isinstance(
        raised.value.__cause__,
        psycopg.errors.DuplicatePreparedStatement | psycopg.errors.InvalidSqlStatementName,
    )


def test_transaction_scoped_team_never_reaches_the_next_client(bdsn: str) -> None:
    with psycopg.connect(bdsn) as conn:
        team_id, _ = _seed(conn)
    with (
        psycopg.connect(bdsn, prepare_threshold=None) as a,
        psycopg.connect(bdsn, prepare_threshold=None) as b,
    ):
        tenancy.set_team(a, team_id)
        assert tenancy.current_team(a) == team_id
        pid = _server_pid(a)
        a.commit()
        assert _server_pid(b) == pid  # the same server connection as a's transaction
        assert tenancy.current_team(b) is None
        b.commit()
        tenancy.set_team(a, team_id)
        a.rollback()
        assert tenancy.current_team(b) is None
        assert _server_pid(b) == pid
        b.commit()


def test_session_scope_leaks_under_transaction_pooling(bdsn: str) -> None:
    """Why set_team scopes the transaction by default: `local=False` stays on the server
    connection, and the next client of PgBouncer gets it (the README says: never do this
    behind PgBouncer in transaction mode)."""
    with psycopg.connect(bdsn) as conn:
        team_id, _ = _seed(conn)
    with (
        psycopg.connect(bdsn, autocommit=True, prepare_threshold=None) as a,
        psycopg.connect(bdsn, autocommit=True, prepare_threshold=None) as b,
    ):
        try:
            tenancy.set_team(a, team_id, local=False)
            assert tenancy.current_team(b) == team_id  # a's session setting, seen by b
        finally:
            tenancy.clear_team(b)


def test_listen_through_pgbouncer_is_refused_and_a_direct_listener_works(
    bdsn: str, dsn: str
) -> None:
    with (
        psycopg.connect(bdsn, autocommit=True) as pooled,
        pytest.raises(InvalidInput, match="pooler"),
    ):
        routing.require_direct(pooled)
    with (
        routing.Router(bdsn, prepare=False, max_lag=1.0) as router,
        pytest.raises(InvalidInput, match="pooler"),
    ):
        router.listener()
    with routing.Router(bdsn, prepare=False, direct=dsn, max_lag=1.0) as router:
        team_id, page_id = router.write(_seed).result
        with router.listener() as listener:
            feed.start_listening(listener)
            written = router.write(
                lambda c: incidents.create(c, team_id, title="x", priority="CRITICAL")
            )
            events = list(feed.listen(listener, timeout=10, stop_after=3))
        assert {e.status_page_id for e in events} == {page_id}
        assert {e.new_status for e in events} == {"MAJOR_OUTAGE"}
        view = router.read(lambda c: views.page_view(c, "bounced"), token=written.token)
        assert view is not None
        assert view.page.overall_status == "MAJOR_OUTAGE"


def test_router_reads_and_writes_through_pgbouncer(bdsn: str) -> None:
    seen: Callable[[Conn], object] = lambda c: views.page_view(c, "bounced")  # noqa: E731
    with routing.Router(bdsn, [bdsn], prepare=False, max_lag=2.0, check_interval=0.05) as router:
        written = router.write(_seed)
        time.sleep(0.2)
        for _ in range(5):
            assert router.read(seen, token=written.token) is not None
        # PgBouncer's server is the primary: it is never in recovery, so never a replica.
        assert router.status()[1].in_recovery is False
        assert set(router.reads_served()) == {router.status()[0].name}


def test_bytes_and_the_page_view_cache_through_pgbouncer(bdsn: str) -> None:
    """page_view_bytes' reused cursor and PageViewCache's conditional reads through transaction
    pooling: with prepare_threshold None nothing is prepared, and the answers are page_view's."""
    with psycopg.connect(bdsn, autocommit=True, prepare_threshold=None) as conn:
        if views.page_view(conn, "bounced") is None:
            _seed(conn)
        cache = views.PageViewCache()
        for _ in range(8):
            answer = views.page_view_bytes(conn, "bounced")
            assert isinstance(answer, views.PageBytes)
            assert views.decode_page_bytes(answer) == views.page_view(conn, "bounced")
            again = views.page_view_bytes(conn, "bounced", if_version=answer.version)
            assert again == views.NotModified(answer.version, answer.fresh_until)
            assert cache.get(conn, "bounced") == views.page_view(conn, "bounced")
        assert cache.hits == 7
    with make_pool(bdsn, prepare=False, min_size=2, max_size=2) as pool:
        for _ in range(6):
            with pool.connection() as pooled:
                assert cache.get(pooled, "bounced") == views.page_view(pooled, "bounced")


def test_page_reads_by_libpq_share_a_server_connection(bdsn: str) -> None:
    """The page reads' libpq path (statusdb.db.libpq) with prepared statements on, behind
    transaction pooling without protocol support: two clients on one server connection. The
    statement's name holds a digest of its text, so one found already prepared (42P05) is the
    same statement and is used; one gone (26000, another server) is prepared again."""
    with psycopg.connect(bdsn) as setup:
        if views.page_view(setup, "bounced") is None:
            _seed(setup)
            setup.commit()
    with (
        psycopg.connect(bdsn, autocommit=True, prepare_threshold=0) as first,
        psycopg.connect(bdsn, autocommit=True, prepare_threshold=0) as second,
        psycopg.connect(bdsn, autocommit=True, prepare_threshold=None) as plain,
    ):
        want = views.page_view_bytes(plain, "bounced")
        assert isinstance(want, views.PageBytes)
        for _ in range(4):
            for conn in (first, second):
                assert views.page_view_bytes(conn, "bounced") == want
                assert views.page_view_bytes(
                    conn, "bounced", if_version=want.version
                ) == views.NotModified(want.version, want.fresh_until)
                assert views.page_view(conn, "bounced") == views.decode_page_bytes(want)


def test_a_private_page_through_pgbouncer_needs_its_token(bdsn: str) -> None:
    """The same reads of a private page through transaction pooling: with its token each answers
    what page_view answers (bytes, not modified, the cache's validated hit); without it, or with
    a wrong one, None, as an unknown slug."""
    with psycopg.connect(bdsn, autocommit=True, prepare_threshold=None) as conn:
        team = teams.create(conn, name="Bounced privately")
        created = pages.create(
            conn,
            team_id=team.id,
            name="Bounced privately",
            slug="bounced-private",
            created_by_id="user-1",
            is_public=False,
            components=[NewComponent(name="C", team_id=team.id)],
        )
        token = created.access_token
        assert token is not None
        cache = views.PageViewCache()
        for _ in range(4):
            view = views.page_view(conn, "bounced-private", token=token)
            assert view is not None
            answer = views.page_view_bytes(conn, "bounced-private", token=token)
            assert isinstance(answer, views.PageBytes)
            assert views.decode_page_bytes(answer) == view
            again = views.page_view_bytes(
                conn, "bounced-private", token=token, if_version=answer.version
            )
            assert again == views.NotModified(answer.version, answer.fresh_until)
            assert cache.get(conn, "bounced-private", token=token) == view
            for wrong in (None, "wrong"):
                assert views.page_view_bytes(conn, "bounced-private", token=wrong) is None
                assert cache.get(conn, "bounced-private", token=wrong) is None
        assert cache.hits == 3
