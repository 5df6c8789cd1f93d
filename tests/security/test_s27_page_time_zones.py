"""Page time zones are IANA names, never POSIX specs (issue 26 item 8).

PostgreSQL reads a name it has no zone file for as a POSIX spec when it parses as one:
'Europe/Berlin+1' was stored (upper-cased) and read as a fixed offset without DST, and Python's
zoneinfo cannot open it. 'Etc/GMT+14' is such a spec too: the IANA database has Etc/GMT-14 to
Etc/GMT+12 and no Etc/GMT+14. Refused through SQL (every client) and pages.create.
"""

from __future__ import annotations

import uuid
import zoneinfo

import psycopg
import pytest
from factories import new_page
from psycopg import errors as pg_errors
from psycopg.conninfo import make_conninfo
from psycopg.rows import TupleRow

from statusdb import errors, pages, teams

Conn = psycopg.Connection[TupleRow]
POSIX_SPECS = [
    "Europe/Berlin+1",
    "Etc/GMT+14",
    "Foo/Bar5",
    "America/New_York-3",
    "Etc/GMT+13",
    "posix/Europe/Berlin",
    "right/Europe/Berlin",
]


@pytest.mark.parametrize("zone", POSIX_SPECS)
def test_sql_refuses_posix_specs(dsn: str, app_login: str, zone: str) -> None:
    with psycopg.connect(dsn) as owner:
        team = teams.create(owner, name=f"T-{uuid.uuid4().hex[:8]}")
        page = new_page(owner, team.id, slug=f"p-{uuid.uuid4().hex[:8]}")
    with (
        psycopg.connect(make_conninfo(dsn, user=app_login)) as app,
        pytest.raises(pg_errors.CheckViolation),
    ):
        app.execute("UPDATE status_page SET time_zone = %s WHERE id = %s", (zone, page.id))


@pytest.mark.parametrize("zone", POSIX_SPECS)
def test_pages_create_refuses_posix_specs(conn: Conn, zone: str) -> None:
    team = teams.create(conn, name=f"T-{uuid.uuid4().hex[:8]}")
    with pytest.raises(errors.InvalidInput):
        pages.create(
            conn,
            team_id=team.id,
            name="P",
            slug=f"p-{uuid.uuid4().hex[:8]}",
            created_by_id="u",
            time_zone=zone,
        )


@pytest.mark.parametrize(
    ("zone", "stored"),
    [
        ("Etc/GMT+5", "Etc/GMT+5"),
        ("etc/gmt-14", "Etc/GMT-14"),
        ("america/new_york", "America/New_York"),
        ("America/Port-au-Prince", "America/Port-au-Prince"),
        ("UTC", "UTC"),
    ],
)
def test_iana_names_are_stored_canonically_and_zoneinfo_opens_them(
    conn: Conn, zone: str, stored: str
) -> None:
    team = teams.create(conn, name=f"T-{uuid.uuid4().hex[:8]}")
    page = new_page(conn, team.id, slug=f"p-{uuid.uuid4().hex[:8]}")
    conn.execute("UPDATE status_page SET time_zone = %s WHERE id = %s", (zone, page.id))
    row = conn.execute("SELECT time_zone FROM status_page WHERE id = %s", (page.id,)).fetchone()
    assert row is not None
    assert row[0] == stored
    zoneinfo.ZoneInfo(stored)
