"""Row-level security per team (migration 0008, statusdb.tenancy), as statusdb_app logs in.

Two teams share the database. A session scoped to one team sees and changes only that team's
rows; an unscoped session sees everything (opt-in); the status derivation keeps crossing teams
correctly whoever triggers it.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import psycopg
import pytest
from factories import new_page
from psycopg import errors as pg_errors
from psycopg import sql
from psycopg.conninfo import make_conninfo
from psycopg.rows import TupleRow

from statusdb import (
    components,
    incidents,
    maintenance,
    pages,
    status,
    status_incidents,
    subscribers,
    teams,
    tenancy,
    views,
)
from statusdb.domain.types import CreateMaintenanceWindowInput
from statusdb.errors import InvalidInput, NotFound, StatusdbError, Unauthorized
from statusdb.pages import NewComponent
from statusdb.workers import outbox

Conn = psycopg.Connection[TupleRow]
AppConnect = Callable[..., Conn]


#: Per table, the SQL (superuser) that lists the ids of the rows belonging to team %(team)s.
TEAM_ROWS: dict[str, str] = {
    "team": "SELECT id FROM team WHERE id = %(team)s",
    "incident": "SELECT id FROM incident WHERE team_id = %(team)s",
    "status_page": "SELECT id FROM status_page WHERE team_id = %(team)s",
    **{
        table: f"SELECT t.id FROM {table} t JOIN status_page p ON p.id = t.status_page_id"
        " WHERE p.team_id = %(team)s"
        for table in (
            "status_page_component",
            "status_subscriber",
            "maintenance_window",
            "status_incident",
            "status_change",
        )
    },
    "maintenance_window_component": """
        SELECT mc.maintenance_window_id || '/' || mc.component_id
        FROM maintenance_window_component mc
        JOIN maintenance_window w ON w.id = mc.maintenance_window_id
        JOIN status_page p ON p.id = w.status_page_id
        WHERE p.team_id = %(team)s""",
}


def all_rows(table: str) -> str:
    if table == "maintenance_window_component":
        return (
            "SELECT maintenance_window_id || '/' || component_id FROM maintenance_window_component"
        )
    return f"SELECT id FROM {table}"


@attrs.frozen
class World:
    team_a: str
    team_b: str
    page_a: str
    page_b: str
    a_api: str
    a_manual: str
    b_api: str
    #: On team B's page, but driven by team A's incidents.
    b_follows_a: str
    incident_b: str
    window_b: str
    status_incident_b: str
    subscriber_b: str


def seed(conn: Conn) -> World:
    """Two teams with a bit of everything; written by the superuser."""
    a = teams.create(conn, name="Team A")
    b = teams.create(conn, name="Team B")
    page_a = new_page(
        conn,
        a.id,
        slug="page-a",
        name="A",
        created_by_id="u",
        is_public=False,
        components=[NewComponent(name="API", team_id=a.id), NewComponent(name="Manual")],
    )
    page_b = new_page(
        conn,
        b.id,
        slug="page-b",
        name="B",
        created_by_id="u",
        components=[
            NewComponent(name="API", team_id=b.id),
            NewComponent(name="Upstream", team_id=a.id),
        ],
    )
    a_api, a_manual = components.list_for_page(conn, page_a.id)
    b_api, b_follows_a = components.list_for_page(conn, page_b.id)
    incidents.resolve(conn, incidents.create(conn, a.id, title="old", priority="LOW").id)
    incident_b = incidents.create(conn, b.id, title="slow", priority="HIGH")
    now = dt.datetime.now(dt.UTC)
    windows = []
    for page, component in ((page_a, a_manual), (page_b, b_api)):
        windows.append(
            maintenance.create(
                conn,
                page.id,
                CreateMaintenanceWindowInput(
                    component_ids=(component.id,),
                    title="Upgrade",
                    start_time=now + dt.timedelta(days=1),
                    end_time=now + dt.timedelta(days=1, hours=1),
                ),
                created_by_id="u",
            )
        )
        status_incidents.create(conn, page.id, title="Notice", severity="MINOR", message="m")
        subscribers.subscribe(conn, page.id, channel="WEBHOOK", destination="https://h.example/x")
    components.set_status(conn, a_manual.id, "DEGRADED_PERFORMANCE")
    status_incident_b = status_incidents.list_active(conn, page_b.id)[0]
    subscriber_b = subscribers.list_for_page(conn, page_b.id)[0]
    conn.commit()
    return World(
        team_a=a.id,
        team_b=b.id,
        page_a=page_a.id,
        page_b=page_b.id,
        a_api=a_api.id,
        a_manual=a_manual.id,
        b_api=b_api.id,
        b_follows_a=b_follows_a.id,
        incident_b=incident_b.id,
        window_b=windows[1].id,
        status_incident_b=status_incident_b.id,
        subscriber_b=subscriber_b.id,
    )


@pytest.fixture
def app_dsn(dsn: str, app_login: str) -> str:
    return make_conninfo(dsn, user=app_login)


@pytest.fixture
def app_connect(app_dsn: str) -> Iterator[AppConnect]:
    """Open connections as statusdb_app: `app_connect(autocommit=False)`."""
    opened: list[Conn] = []

    def _connect(autocommit: bool = False) -> Conn:
        connection = psycopg.connect(app_dsn, autocommit=autocommit)
        opened.append(connection)
        return connection

    yield _connect
    for connection in opened:
        connection.close()


@pytest.fixture
def world(conn: Conn) -> World:
    return seed(conn)


def ids(conn: Conn, query: str, **params: Any) -> set[str]:
    return {row[0] for row in conn.execute(query.encode(), params).fetchall()}


def snapshot(conn: Conn) -> dict[str, list[Any]]:
    """Every row of every table, as the superuser sees it."""
    return {
        table: conn.execute(
            sql.SQL("SELECT to_jsonb(t) FROM {} t ORDER BY 1::text").format(sql.Identifier(table))
        ).fetchall()
        for table in TEAM_ROWS
    }


def test_without_a_team_the_app_sees_everything(
    world: World, conn: Conn, app_connect: AppConnect
) -> None:
    app = app_connect()
    assert tenancy.current_team(app) is None
    for table in TEAM_ROWS:
        assert ids(app, all_rows(table)) == ids(conn, all_rows(table)), table
    assert {t.id for t in teams.list_all(app)} == {world.team_a, world.team_b}


def test_a_scoped_session_sees_only_its_team(
    world: World, conn: Conn, app_connect: AppConnect
) -> None:
    app = app_connect()
    tenancy.set_team(app, world.team_a)
    assert tenancy.current_team(app) == world.team_a
    for table, query in TEAM_ROWS.items():
        mine = ids(conn, query, team=world.team_a)
        everything = ids(conn, all_rows(table))
        assert mine, f"the seed has rows of team A in {table}"
        assert mine != everything, f"the seed has rows of team B in {table}"
        assert ids(app, all_rows(table)) == mine, table
    # Through the repository, team B's rows do not exist.
    assert [t.id for t in teams.list_all(app)] == [world.team_a]
    with pytest.raises(NotFound):
        pages.get(app, world.page_b)
    with pytest.raises(NotFound):
        pages.get_by_slug(app, "page-b")
    assert components.list_for_page(app, world.page_b) == []
    assert subscribers.list_for_page(app, world.page_b) == []
    assert maintenance.list_for_page(app, world.page_b) == []
    assert status_incidents.list_active(app, world.page_b) == []
    assert incidents.list_for_team(app, world.team_b) == []
    pending_a = ids(
        conn, TEAM_ROWS["status_change"] + " AND t.notified_at IS NULL", team=world.team_a
    )
    assert outbox.pending_count(app) == len(pending_a)
    # The public page view is not a team's view: it shows any page to anyone with its slug.
    assert views.page_view(app, "page-b") is not None


def refused(app: Conn, call: Callable[[], object]) -> StatusdbError:
    with pytest.raises(StatusdbError) as info, app.transaction():
        call()
    return info.value


def test_other_teams_rows_cannot_be_changed(
    world: World, conn: Conn, app_connect: AppConnect
) -> None:
    before = snapshot(conn)
    app = app_connect()
    tenancy.set_team(app, world.team_a)
    # UPDATE and DELETE do not reach them.
    for table in TEAM_ROWS:
        if table == "maintenance_window_component":
            continue
        column = {"status_change": "lease_owner", "status_page_component": "name"}.get(table, "id")
        names = {"table": sql.Identifier(table), "column": sql.Identifier(column)}
        updated = app.execute(sql.SQL("UPDATE {table} SET {column} = {column}").format(**names))
        deleted_sql = sql.SQL("DELETE FROM {table} WHERE NOT (id = ANY (%s))").format(**names)
        mine = list(ids(conn, TEAM_ROWS[table], team=world.team_a))
        assert updated.rowcount == len(mine), table
        if table != "status_change":  # the app may not delete from the log at all
            with app.transaction():
                assert app.execute(deleted_sql, (mine,)).rowcount == 0, table
    unlinked = app.execute(
        "DELETE FROM maintenance_window_component WHERE maintenance_window_id = %s",
        (world.window_b,),
    )
    assert unlinked.rowcount == 0
    app.rollback()  # (the no-op updates of team A's own rows would move their updated_at)
    tenancy.set_team(app, world.team_a)
    for call in (
        lambda: incidents.resolve(app, world.incident_b),
        lambda: pages.delete(app, world.page_b),
        lambda: pages.update(app, world.page_b, name="mine"),
        lambda: components.set_status(app, world.b_api, "MAJOR_OUTAGE"),
        lambda: components.delete(app, world.b_follows_a),
        lambda: maintenance.cancel(app, world.window_b),
        lambda: status_incidents.add_update(
            app, world.status_incident_b, status="RESOLVED", message="m"
        ),
        lambda: subscribers.unsubscribe(app, world.subscriber_b),
        lambda: teams.rename(app, world.team_b, name="mine"),
    ):
        assert isinstance(refused(app, call), NotFound)
    # Writing a row for team B is refused.
    now = dt.datetime.now(dt.UTC)
    for write in (
        lambda: pages.create(
            app, team_id=world.team_b, name="X", slug="x", created_by_id="u", is_public=True
        ),
        lambda: incidents.create(app, world.team_b, title="x", priority="LOW"),
        lambda: components.create(app, world.page_b, name="X"),
        lambda: subscribers.subscribe(
            app, world.page_b, channel="WEBHOOK", destination="https://e.example/y"
        ),
        lambda: status_incidents.create(
            app, world.page_b, title="x", severity="MINOR", message="m"
        ),
        lambda: maintenance.create(
            app,
            world.page_b,
            CreateMaintenanceWindowInput(
                component_ids=(),
                title="x",
                start_time=now + dt.timedelta(days=2),
                end_time=now + dt.timedelta(days=2, hours=1),
            ),
            created_by_id="u",
        ),
    ):
        # Either the row's page or team is not found (as for an unknown id), or the policy
        # refuses the new row.
        error = refused(app, write)
        assert isinstance(error, NotFound) or (
            isinstance(error, Unauthorized) and "row-level security" in str(error)
        ), error
    # The same in plain SQL, for any client: moving own rows to team B, linking B's rows.
    for statement, params in (
        ("UPDATE status_page SET team_id = %s WHERE id = %s", (world.team_b, world.page_a)),
        ("UPDATE incident SET team_id = %s WHERE team_id = %s", (world.team_b, world.team_a)),
        ("INSERT INTO team (id, name) VALUES (%s, 'B2')", (world.team_b + "2",)),
    ):
        with (
            pytest.raises(pg_errors.InsufficientPrivilege, match="row-level security"),
            app.transaction(),
        ):
            app.execute(statement.encode(), params)
    # (Here 0002's same-page trigger, running as the caller, finds no such window first.)
    with pytest.raises(pg_errors.ForeignKeyViolation, match="not on the page"), app.transaction():
        app.execute(
            "INSERT INTO maintenance_window_component VALUES (%s, %s)",
            (world.window_b, world.b_api),
        )
    app.commit()
    assert snapshot(conn) == before


def test_the_derivation_follows_teams_across_the_policies(
    world: World, conn: Conn, app_connect: AppConnect
) -> None:
    app_a, app_b = app_connect(), app_connect()
    tenancy.set_team(app_a, world.team_a)
    tenancy.set_team(app_b, world.team_b)
    # Team A's session opens an incident: its own component follows, and so does the component
    # on team B's page that follows team A, which team A's session cannot even see.
    incident = incidents.create(app_a, world.team_a, title="down", priority="CRITICAL")
    assert components.get(app_a, world.a_api).current_status == "MAJOR_OUTAGE"
    with pytest.raises(NotFound):
        components.get(app_a, world.b_follows_a)
    app_a.commit()
    # Team B's session does not see it either (0012): its status and log come from team A's
    # incidents, which are none of team B's business; nor may it point a component at team A.
    with pytest.raises(NotFound):
        components.get(app_b, world.b_follows_a)
    assert status.changes_for_component(app_b, world.b_follows_a) == []
    assert incidents.list_for_team(app_b, world.team_a) == []
    with pytest.raises(Unauthorized, match="row-level security"), app_b.transaction():
        components.update(app_b, world.b_api, team_id=world.team_a)
    # Unscoped, the backend sees the component derived from team A's incidents, and may point
    # team B's other component at team A.
    unscoped = app_connect()
    assert components.get(unscoped, world.b_follows_a).current_status == "MAJOR_OUTAGE"
    changes = status.changes_for_component(unscoped, world.b_follows_a)
    assert [c.cause for c in changes] == ["INCIDENT"]
    moved = components.update(unscoped, world.b_api, team_id=world.team_a)
    assert moved.current_status == "MAJOR_OUTAGE"
    unscoped.commit()
    # Recompute runs as the owner: a scoped caller still compares every component.
    assert status.recompute(app_b) == []
    incidents.resolve(app_a, incident.id)
    app_a.commit()
    for component_id in (world.a_api, world.b_follows_a, world.b_api):
        row = conn.execute(
            "SELECT current_status FROM status_page_component WHERE id = %s", (component_id,)
        ).fetchone()
        assert row == ("OPERATIONAL",)
    assert status.recompute(conn) == []
    assert status.chain_breaks(conn) == []


def test_concurrent_scoped_sessions_keep_statuses_exact(
    world: World, conn: Conn, app_connect: AppConnect
) -> None:
    errors: list[BaseException] = []

    def churn(team_id: str) -> None:
        try:
            with app_connect() as app:
                for n in range(15):
                    tenancy.set_team(app, team_id)
                    incident = incidents.create(
                        app, team_id, title=f"i{n}", priority=("CRITICAL", "HIGH", "MEDIUM")[n % 3]
                    )
                    app.commit()
                    tenancy.set_team(app, team_id)
                    if n % 2:
                        incidents.resolve(app, incident.id)
                    app.commit()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=churn, args=(t,)) for t in (world.team_a, world.team_b)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert status.recompute(conn) == []
    assert status.chain_breaks(conn) == []


def test_scope_lifetimes(world: World, app_connect: AppConnect) -> None:
    app = app_connect()
    # Transaction scope (the default) ends with the transaction, committed or not.
    tenancy.set_team(app, world.team_a)
    assert tenancy.current_team(app) == world.team_a
    app.commit()
    assert tenancy.current_team(app) is None
    tenancy.set_team(app, world.team_a)
    app.rollback()
    assert tenancy.current_team(app) is None
    # Session scope lasts, once its transaction commits ...
    tenancy.set_team(app, world.team_b, local=False)
    app.commit()
    assert tenancy.current_team(app) == world.team_b
    assert [t.id for t in teams.list_all(app)] == [world.team_b]
    app.commit()
    # ... a transaction scope inside it wins until that transaction ends ...
    tenancy.set_team(app, world.team_a)
    assert tenancy.current_team(app) == world.team_a
    app.rollback()
    assert tenancy.current_team(app) == world.team_b
    # ... and clear_team ends it.
    tenancy.clear_team(app)
    app.commit()
    assert tenancy.current_team(app) is None
    # Like any SET, a session scope set in a transaction that rolls back is undone.
    tenancy.set_team(app, world.team_b, local=False)
    app.rollback()
    assert tenancy.current_team(app) is None
    # The plain SQL way works the same.
    app.execute("SELECT set_config('statusdb.team_id', %s, false)", (world.team_a,))
    assert [t.id for t in teams.list_all(app)] == [world.team_a]


def test_set_team_refuses_a_scope_that_would_end_at_once(
    world: World, app_connect: AppConnect
) -> None:
    app = app_connect(autocommit=True)
    with pytest.raises(InvalidInput, match="transaction"):
        tenancy.set_team(app, world.team_a)
    assert tenancy.current_team(app) is None
    with app.transaction():
        tenancy.set_team(app, world.team_a)
        assert [t.id for t in teams.list_all(app)] == [world.team_a]
    assert tenancy.current_team(app) is None
    tenancy.set_team(app, world.team_a, local=False)
    assert [t.id for t in teams.list_all(app)] == [world.team_a]
    for bad in ("", "a\x00b", "x" * 201):
        with pytest.raises(InvalidInput, match="team_id"):
            tenancy.set_team(app, bad, local=False)
    assert tenancy.current_team(app) == world.team_a


async def test_scoping_async(world: World, app_dsn: str) -> None:
    async with await psycopg.AsyncConnection.connect(app_dsn) as aconn:
        await tenancy.set_team(aconn, world.team_b)
        assert await tenancy.current_team(aconn) == world.team_b
        assert [p.id for p in await pages.list_for_team(aconn, world.team_a)] == []
        assert [p.id for p in await pages.list_for_team(aconn, world.team_b)] == [world.page_b]
        with pytest.raises(NotFound):
            await pages.get(aconn, world.page_a)
        await aconn.commit()
        assert await tenancy.current_team(aconn) is None
        await tenancy.set_team(aconn, world.team_a, local=False)
        await aconn.commit()
        await tenancy.clear_team(aconn)
        assert await tenancy.current_team(aconn) is None
    async with await psycopg.AsyncConnection.connect(app_dsn, autocommit=True) as auto:
        with pytest.raises(InvalidInput, match="transaction"):
            await tenancy.set_team(auto, world.team_a)


def test_the_owner_and_superusers_are_not_scoped(world: World, conn: Conn) -> None:
    """Documented: policies bind statusdb_app and other roles, not the tables' owner."""
    tenancy.set_team(conn, world.team_a)
    assert {t.id for t in teams.list_all(conn)} == {world.team_a, world.team_b}
