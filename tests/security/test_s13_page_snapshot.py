"""Attack class: the page snapshot (migration 0017) as a way around the page view's door.

The snapshot holds every page's rendering, private ones included, and is written by triggers
that run as the owner. Whoever can connect must get no more out of it than the page view gives
(a private page only with its token, a wrong token like an unknown slug), must not be able to
write or re-render it, hears only numbers on its channel, and a team-scoped listener hears only
its team's pages. Plain-SQL writers keep it exact whatever their scope.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import psycopg
import pytest
from factories import APP_LOGIN, READER_LOGIN, ensure_login
from psycopg import errors as pg_errors
from psycopg.conninfo import make_conninfo
from psycopg.rows import TupleRow

from statusdb import feed, pages, teams, tenancy, views
from statusdb.domain import tokens
from statusdb.pages import NewComponent
from statusdb.tooling.localpg import LocalCluster

Conn = psycopg.Connection[TupleRow]

NOBODY_LOGIN = "statusdb_s13_nobody"


@pytest.fixture
def reader(dsn: str, logins: None) -> Iterator[Conn]:
    with psycopg.connect(make_conninfo(dsn, user=READER_LOGIN), autocommit=True) as connection:
        yield connection


@pytest.fixture
def app(dsn: str, logins: None) -> Iterator[Conn]:
    with psycopg.connect(make_conninfo(dsn, user=APP_LOGIN)) as connection:
        yield connection


@pytest.fixture
def secret(conn: Conn) -> tuple[str, str, str]:
    """A private page "secret" with one component: (page id, component id, token)."""
    team = teams.create(conn, name="SRE")
    created = pages.create(
        conn,
        team_id=team.id,
        name="Secret",
        slug="secret",
        created_by_id="u",
        is_public=False,
        components=[NewComponent(name="Vault")],
    )
    assert created.access_token is not None
    row = conn.execute(
        "SELECT id FROM status_page_component WHERE status_page_id = %s", (created.page.id,)
    ).fetchone()
    assert row is not None
    conn.commit()
    return created.page.id, row[0], created.access_token


def test_reader_cannot_render_or_read_a_private_page_without_its_token(
    reader: Conn, secret: tuple[str, str, str]
) -> None:
    """A reader calls the renderer (or reads the snapshot table) to get a private page's body
    without its token."""
    page_id, _, _ = secret
    for statement, params in (
        ("SELECT name FROM statusdb_page_render(ARRAY[%s])", (page_id,)),
        ("SELECT name FROM status_page_snapshot WHERE page_id = %s", (page_id,)),
        ("SELECT statusdb_page_snapshot_refresh(ARRAY[%s])", (page_id,)),
        ("SELECT statusdb_page_snapshot_create(ARRAY[%s])", (page_id,)),
        ("SELECT * FROM statusdb_page_snapshot_repair(true)", ()),
    ):
        with pytest.raises(pg_errors.InsufficientPrivilege):
            reader.execute(statement.encode(), params)


def test_app_cannot_forge_or_rerender_a_page(app: Conn, secret: tuple[str, str, str]) -> None:
    """The backend role (or anyone holding its login) rewrites a page's stored rendering, or
    renders pages on demand, to deface a status page."""
    page_id, _, _ = secret
    for statement in (
        "UPDATE status_page_snapshot SET name = 'Hacked' WHERE page_id = %s",
        "DELETE FROM status_page_snapshot WHERE page_id = %s",
        """INSERT INTO status_page_snapshot (page_id, slug, name) SELECT page_id, slug, name
           FROM status_page_snapshot WHERE page_id = %s""",
        "SELECT statusdb_page_snapshot_refresh(ARRAY[%s])",
        "SELECT * FROM statusdb_page_render(ARRAY[%s])",
    ):
        with pytest.raises(pg_errors.InsufficientPrivilege):
            app.execute(statement.encode(), (page_id,))
        app.rollback()


def test_version_probe_with_a_wrong_token_looks_like_an_unknown_slug(
    reader: Conn, conn: Conn, secret: tuple[str, str, str]
) -> None:
    """A reader without the token calls the conditional page view with guessed versions to
    learn whether a private page exists, or which version it is at."""
    page_id, _, token = secret
    current = conn.execute(
        "SELECT version * 256 FROM status_page_snapshot WHERE page_id = %s", (page_id,)
    ).fetchone()
    assert current is not None
    wrong = tokens.digest("not the token")
    for digest in (None, wrong):
        for guess in (None, current[0], current[0] - 1):
            rows = reader.execute(
                "SELECT * FROM statusdb_page_view('secret', %s, NULL, NULL, %s)", (digest, guess)
            ).fetchall()
            unknown = reader.execute(
                "SELECT * FROM statusdb_page_view('nothing', %s, NULL, NULL, %s)",
                (digest, guess),
            ).fetchall()
            assert rows == unknown == []
    assert views.page_view(reader, "secret", token="wrong", if_version=current[0]) is None
    answer = views.page_view(reader, "secret", token=token, if_version=int(current[0]))
    assert answer == views.NotModified(current[0], None)


def test_page_version_payloads_carry_a_number_only(
    dsn: str, cluster: LocalCluster, conn: Conn, secret: tuple[str, str, str]
) -> None:
    """A role that can merely connect LISTENs on statusdb_page_version and reads which private
    page changed, or what it now shows."""
    ensure_login(cluster, NOBODY_LOGIN, None)
    page_id, component_id, _ = secret
    with psycopg.connect(make_conninfo(dsn, user=NOBODY_LOGIN), autocommit=True) as nobody:
        nobody.execute("LISTEN statusdb_page_version")
        conn.execute(
            "UPDATE status_page_component SET manual_status = 'MAJOR_OUTAGE' WHERE id = %s",
            (component_id,),
        )
        conn.commit()
        received: list[psycopg.Notify] = []
        deadline = time.monotonic() + 10
        while not received and time.monotonic() < deadline:
            received = list(nobody.notifies(timeout=0.5, stop_after=1))
    assert received, "the change was announced"
    for notify in received:
        assert notify.payload.isdigit(), notify.payload
        assert page_id not in notify.payload


def test_team_scoped_listener_hears_only_its_team_s_pages(
    dsn: str, logins: None, conn: Conn, secret: tuple[str, str, str]
) -> None:
    """A backend listener scoped to one team follows the page-version feed and learns when
    another team's pages change."""
    page_id, component_id, _ = secret
    other_team = teams.create(conn, name="Other")
    other = pages.create(
        conn, team_id=other_team.id, name="O", slug="o", created_by_id="u", is_public=True
    )
    conn.commit()
    with psycopg.connect(make_conninfo(dsn, user=APP_LOGIN), autocommit=True) as listener:
        tenancy.set_team(listener, other_team.id, local=False)
        assert list(feed.listen_pages(listener, timeout=0)) == []
        conn.execute(
            "UPDATE status_page_component SET manual_status = 'MAJOR_OUTAGE' WHERE id = %s",
            (component_id,),
        )
        conn.commit()
        assert list(feed.listen_pages(listener, timeout=1.0)) == []
        conn.execute("UPDATE status_page SET name = 'Other!' WHERE id = %s", (other.page.id,))
        conn.commit()
        heard = list(feed.listen_pages(listener, timeout=10, stop_after=1))
    assert [e.status_page_id for e in heard] == [other.page.id]
    assert page_id not in [e.status_page_id for e in heard]


def test_team_scoped_plain_sql_writer_cannot_leave_the_page_stale(
    dsn: str, logins: None, reader: Conn, conn: Conn
) -> None:
    """A team-scoped backend login changes a component with plain SQL (psql) and the public
    page keeps showing the old status, or a rendering cut down to what its scope sees."""
    team = teams.create(conn, name="SRE")
    created = pages.create(
        conn,
        team_id=team.id,
        name="Public",
        slug="public",
        created_by_id="u",
        is_public=True,
        components=[NewComponent(name="A"), NewComponent(name="B")],
    )
    conn.commit()
    with psycopg.connect(make_conninfo(dsn, user=APP_LOGIN)) as writer:
        tenancy.set_team(writer, team.id, local=False)
        writer.execute(
            """UPDATE status_page_component SET manual_status = 'PARTIAL_OUTAGE'
               WHERE status_page_id = %s AND name = 'A'""",
            (created.page.id,),
        )
        writer.commit()
    view = views.page_view(reader, "public")
    assert view is not None
    assert [(c.name, c.current_status) for c in view.page.components] == [
        ("A", "PARTIAL_OUTAGE"),
        ("B", "OPERATIONAL"),
    ]
    assert views.recompute_snapshots(conn) == []
