"""Attack class: the Statuspage v2 documents (migration 0034) as a way around the page's door.

statusdb_page_statuspage runs as the owner over every page's snapshot, private ones and their
resolved history included. Whoever can connect (the reader and app logins) must get a private
page's documents only with its token: a wrong or missing token, with or without a guessed
if_version, answers no row, exactly like an unknown slug (no version, no fresh_until: nothing
that tells the page exists). And what a document says must not depend on the caller's session
settings (TimeZone, DateStyle, IntervalStyle, lc_time, search_path): the body is shared by every
reader of a version (the ETag), so a client that could shape it would poison caches and CDNs;
and the page's zone, set for the call, must not leak into the caller's session.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import psycopg
import pytest
from factories import APP_LOGIN, READER_LOGIN
from psycopg.conninfo import make_conninfo
from psycopg.rows import TupleRow

from statusdb import maintenance, pages, status_incidents, teams
from statusdb.domain import tokens
from statusdb.formats import statuspage
from statusdb.pages import NewComponent

Conn = psycopg.Connection[TupleRow]

_CALL = (
    "SELECT version, version_text, fresh_until, body"
    " FROM statusdb_page_statuspage(%s, %s, NULL, NULL, %s, %s)"
)


@pytest.fixture
def secret(dsn: str) -> tuple[str, str]:
    """A private page "s35" with history (resolved incident, window): (slug, token)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        team = teams.create(conn, name="S35")
        created = pages.create(
            conn,
            team_id=team.id,
            name="Hidden",
            slug="s35",
            created_by_id="u",
            is_public=False,
            components=[NewComponent(name="Vault")],
        )
        conn.execute(
            "UPDATE status_page SET time_zone = 'America/New_York' WHERE id = %s",
            (created.page.id,),
        )
        incident = status_incidents.create(
            conn, created.page.id, title="Leaked?", severity="CRITICAL", message="secret text"
        )
        status_incidents.add_update(conn, incident.id, status="RESOLVED", message="done")
        start = dt.datetime.now(dt.UTC) + dt.timedelta(hours=3)
        maintenance.create(
            conn,
            created.page.id,
            title="Rotate keys",
            start_time=start,
            end_time=start + dt.timedelta(hours=1),
            created_by_id="u",
        )
    assert created.access_token is not None
    return "s35", created.access_token


@pytest.fixture(params=[READER_LOGIN, APP_LOGIN])
def login(request: pytest.FixtureRequest, dsn: str, logins: None) -> Iterator[Conn]:
    with psycopg.connect(make_conninfo(dsn, user=request.param), autocommit=True) as connection:
        yield connection


def test_a_private_page_without_its_token_is_an_unknown_page(
    login: Conn, secret: tuple[str, str]
) -> None:
    slug, token = secret
    good = tokens.digest(token)
    for name in statuspage.DOCUMENTS:
        opened = login.execute(_CALL, (slug, good, None, name)).fetchone()
        assert opened is not None
        assert opened[3] is not None
        version, version_text = opened[0], opened[1]
        for digest in (None, tokens.digest("wrong"), b"", b"\x00" * 32, good[:31]):
            for guess in (None, version_text, str(version), str(version - 1)):
                assert login.execute(_CALL, (slug, digest, guess, name)).fetchall() == [], name
                assert login.execute(_CALL, ("no-such", digest, guess, name)).fetchall() == []
        # The digest of the digest (what the table stores) is no token either.
        stored = login.execute(
            "SELECT count(*) FROM statusdb_page_statuspage(%s, sha256(%s), NULL, NULL, NULL, %s)",
            (slug, good, name),
        ).fetchone()
        assert stored == (0,)


def test_the_caller_s_session_settings_do_not_shape_the_documents(
    login: Conn, secret: tuple[str, str]
) -> None:
    slug, token = secret
    good = tokens.digest(token)
    plain = {
        name: login.execute(_CALL, (slug, good, None, name)).fetchone()
        for name in statuspage.DOCUMENTS
    }
    login.execute(
        "SET TimeZone = 'Asia/Kathmandu'; SET DateStyle = 'SQL, DMY'; "
        "SET IntervalStyle = 'sql_standard'; SET lc_time = 'C'; "
        "SET extra_float_digits = -15; SET search_path = pg_temp, public"
    )
    for name, expected in plain.items():
        assert login.execute(_CALL, (slug, good, None, name)).fetchone() == expected, name
        # The page's zone is set for the call only: the caller's own setting is back after it.
        assert login.execute("SHOW TimeZone").fetchone() == ("Asia/Kathmandu",)
    with login.transaction():
        login.execute(_CALL, (slug, good, None, "summary"))
        assert login.execute("SHOW TimeZone").fetchone() == ("Asia/Kathmandu",)
    assert plain["summary"] is not None
    assert "-04:00" in plain["summary"][3] or "-05:00" in plain["summary"][3]  # New York
