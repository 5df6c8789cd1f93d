"""Error translation that depends on the server's message language.

statusdb tells "a team still owns incidents" (Conflict) apart from "no such team" (NotFound) for
the same foreign key. It must do so from SQLSTATEs and diagnostic fields (constraint name, the
statement that failed), never from the English wording of PostgreSQL's messages, which a server
with another `lc_messages` translates.
"""

from __future__ import annotations

import subprocess

import psycopg
import pytest
from psycopg.rows import TupleRow

from statusdb import incidents, pages, teams
from statusdb.errors import Conflict, NotFound, NotMigrated

Conn = psycopg.Connection[TupleRow]

#: A language PostgreSQL 15 ships translations for; the OS locale must exist too.
GERMAN = "de_DE.utf8"


def _has_locale(name: str) -> bool:
    try:
        out = subprocess.run(["locale", "-a"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return False
    return name.lower() in {line.strip().lower() for line in out.splitlines()}


@pytest.fixture
def german(conn: Conn) -> Conn:
    """The test's connection with the server speaking German (needs superuser and the locale)."""
    if not _has_locale(GERMAN):
        pytest.skip(f"the OS has no {GERMAN} locale (localedef -i de_DE -f UTF-8 {GERMAN})")
    conn.execute(f"SET lc_messages = '{GERMAN}'")
    conn.commit()
    with pytest.raises(psycopg.errors.UndefinedTable) as info:
        conn.execute("SELECT * FROM no_such_table_here")
    conn.rollback()
    if "does not exist" in str(info.value):
        pytest.skip("the server has no German message catalogue")
    return conn


def test_delete_team_with_incidents_is_conflict_in_german(german: Conn) -> None:
    """Deleting a team that still has incidents, on a German server, is reported as NotFound."""
    team = teams.create(german, name="Platform")
    incidents.create(german, team.id, title="down", priority="HIGH")
    german.commit()
    with pytest.raises(Conflict, match="still has incidents"):
        teams.delete(german, team.id)
    german.rollback()


def test_delete_team_with_pages_is_conflict_in_german(german: Conn) -> None:
    """Deleting a team that still owns pages, on a German server, is reported as NotFound."""
    team = teams.create(german, name="Platform")
    pages.create(german, team_id=team.id, name="Acme", slug="acme", created_by_id="u")
    german.commit()
    with pytest.raises(Conflict, match="still owns status pages"):
        teams.delete(german, team.id)
    german.rollback()


def test_unknown_team_is_not_found_in_german(german: Conn) -> None:
    """An incident for an unknown team, on a German server, stays NotFound (no regression)."""
    with pytest.raises(NotFound, match="no team with that id"):
        incidents.create(german, "no-such-team", title="down", priority="HIGH")
    german.rollback()


def test_unmigrated_database_says_run_migrate_in_german(empty_dsn: str) -> None:
    """An operation on an unmigrated database says "run statusdb migrate" in any language."""
    if not _has_locale(GERMAN):
        pytest.skip(f"the OS has no {GERMAN} locale (localedef -i de_DE -f UTF-8 {GERMAN})")
    with (
        psycopg.connect(empty_dsn, options=f"-c lc_messages={GERMAN}") as empty,
        pytest.raises(NotMigrated, match="statusdb migrate"),
    ):
        teams.get(empty, "no-such-team")
