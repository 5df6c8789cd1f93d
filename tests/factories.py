"""Builders the test modules share: teams, pages with components, login roles, session zones.

Imported like the other shared helpers (`from factories import ...`; tests/ is on sys.path via
the rootdir conftest). Each builder creates what it says through the public API and commits
nothing unless it says so: the caller decides when its setup is committed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import attrs
import psycopg
from psycopg import sql
from psycopg.rows import TupleRow

from statusdb import components, pages, teams
from statusdb.domain.types import NOTIFY_ON_EVENTS, ComponentStatus
from statusdb.pages import NewComponent
from statusdb.tooling.localpg import LocalCluster

Conn = psycopg.Connection[TupleRow]
AConn = psycopg.AsyncConnection[TupleRow]

#: The LOGIN roles the role and row-level security tests connect as (members of the groups).
APP_LOGIN = "statusdb_test_app"
READER_LOGIN = "statusdb_test_reader"

#: The recurrence and uptime tests run on connections in these zones (issue 15): psycopg returns
#: timestamptz in the connection's TimeZone, and statusdb must answer the same on all of them.
SESSION_ZONES = ("UTC", "America/New_York", "Australia/Lord_Howe")


def set_session_zone(conn: Conn, zone: str) -> None:
    """`conn` and its database (so new connections too) use the TimeZone `zone`; committed."""
    conn.execute(
        sql.SQL("ALTER DATABASE {} SET TimeZone = {}").format(
            sql.Identifier(conn.info.dbname), sql.Literal(zone)
        )
    )
    conn.execute("SELECT set_config('TimeZone', %s, false)", (zone,))
    conn.commit()


def ensure_login(cluster: LocalCluster, name: str, group: str | None) -> None:
    """A LOGIN user, a member of `group` unless None (created once; it may exist already)."""
    with psycopg.connect(cluster.dsn(), autocommit=True) as admin:
        if admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone():
            return
        statement = sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(name))
        if group is not None:
            statement += sql.SQL(" IN ROLE {}").format(sql.Identifier(group))
        admin.execute(statement)


def new_page(
    conn: Conn,
    team_id: str,
    *,
    slug: str = "acme",
    name: str | None = None,
    is_public: bool = True,
    created_by_id: str = "u1",
    components: Sequence[NewComponent] = (),
) -> pages.StatusPage:
    """A page of team `team_id` (named after its slug unless `name`), with `components`."""
    return pages.create(
        conn,
        team_id=team_id,
        name=slug.title() if name is None else name,
        slug=slug,
        created_by_id=created_by_id,
        is_public=is_public,
        components=components,
    ).page


async def anew_page(
    aconn: AConn,
    team_id: str,
    *,
    slug: str = "acme",
    name: str | None = None,
    is_public: bool = True,
    created_by_id: str = "u1",
) -> pages.StatusPage:
    """`new_page` on an async connection."""
    created = await pages.create(
        aconn,
        team_id=team_id,
        name=slug.title() if name is None else name,
        slug=slug,
        created_by_id=created_by_id,
        is_public=is_public,
    )
    return created.page


@attrs.frozen
class TwoPages:
    """Page "acme" with components named `names`, page "other" with one "API" (`foreign`)."""

    team_id: str
    page_id: str
    other_page_id: str
    #: The acme page's component ids by name.
    by_name: dict[str, str]
    foreign: str

    @property
    def api(self) -> str:
        return self.by_name["API"]

    @property
    def web(self) -> str:
        return self.by_name["Web"]

    @property
    def db(self) -> str:
        return self.by_name["DB"]


def two_pages(
    conn: Conn, *, team: str = "SRE", names: tuple[str, ...] = ("API", "Web")
) -> TwoPages:
    """A team, its public page "Acme" (slug acme) with a component per name (in that order),
    and its public page "Other" (slug other) with one component "API". Not committed."""
    owner = teams.create(conn, name=team)
    acme = new_page(conn, owner.id, name="Acme")
    other = new_page(conn, owner.id, slug="other", name="Other")
    by_name = {name: components.create(conn, acme.id, name=name).id for name in names}
    foreign = components.create(conn, other.id, name="API")
    return TwoPages(owner.id, acme.id, other.id, by_name, foreign.id)


def add_component(
    conn: Conn, page: str, name: str, created_at: dt.datetime, display_order: int = 0
) -> str:
    """A component set by hand, created at a chosen time (plain SQL)."""
    row = conn.execute(
        """INSERT INTO status_page_component (status_page_id, name, display_order, created_at)
           VALUES (%s, %s, %s, %s) RETURNING id""",
        (page, name, display_order, created_at),
    ).fetchone()
    assert row is not None
    return str(row[0])


def add_changes(
    conn: Conn, page: str, component: str, changes: Sequence[tuple[dt.datetime, ComponentStatus]]
) -> None:
    """Log changes at chosen times (plain SQL, chained, in time order so seq follows time)."""
    row = conn.execute(
        "SELECT new_status FROM status_change WHERE component_id = %s ORDER BY seq DESC LIMIT 1",
        (component,),
    ).fetchone()
    previous = "OPERATIONAL" if row is None else row[0]
    for changed_at, new_status in changes:
        conn.execute(
            """INSERT INTO status_change (status_page_id, component_id, previous_status,
                                          new_status, cause, changed_at)
               VALUES (%s, %s, %s, %s, 'MANUAL', %s)""",
            (page, component, previous, new_status, changed_at),
        )
        previous = new_status


def new_subscriber(
    conn: Conn,
    page_id: str,
    name: str,
    *,
    component_ids: Sequence[str] = (),
    notify_on: Sequence[str] | None = None,
    verified: bool = True,
    active: bool = True,
) -> str:
    """A WEBHOOK subscriber written by plain SQL (any state, no tokens); its id.

    `name` makes the destination unique (https://hooks.example.com/<name>); notify_on None:
    every kind.
    """
    row = conn.execute(
        """INSERT INTO status_subscriber (status_page_id, channel, destination, component_ids,
                                          notify_on, is_verified, is_active)
           VALUES (%s, 'WEBHOOK', %s, %s, %s, %s, %s)
           RETURNING id""",
        (
            page_id,
            f"https://hooks.example.com/{name}",
            list(component_ids),
            list(NOTIFY_ON_EVENTS if notify_on is None else notify_on),
            verified,
            active,
        ),
    ).fetchone()
    assert row is not None
    return str(row[0])
