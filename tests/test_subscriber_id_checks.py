"""The subscriber id checks of 0041: once per INSERT statement, for every client.

An INSERT's component_ids and group_ids are checked by one statement trigger over the
transition table (issue 20: the per-row trigger was a quarter of an import). These tests pin
that the rule still holds as a whole (a statement with one bad row is refused entirely, with the
constraint name statusdb.errors translates), over plain SQL and COPY, and that the row triggers
no longer fire on INSERT.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from factories import TwoPages, two_pages

from statusdb import groups
from statusdb.errors import InvalidInput, translate

Conn = psycopg.Connection[Any]

_INSERT = (
    "INSERT INTO status_subscriber (status_page_id, channel, destination, component_ids,"
    " group_ids) SELECT %s, 'EMAIL', 'user' || n || '@example.org', %s::text[], '{}'"
    " FROM generate_series(1, 50) AS n"
    " UNION ALL SELECT %s, 'EMAIL', 'bad@example.org', %s::text[], %s::text[]"
)


@pytest.fixture
def acme(conn: Conn) -> TwoPages:
    return two_pages(conn)


def _count(conn: Conn, page_id: str) -> int:
    row = conn.execute(
        "SELECT count(*) FROM status_subscriber WHERE status_page_id = %s", (page_id,)
    ).fetchone()
    assert row is not None
    return int(row[0])


def _refused(conn: Conn, sql: str, params: tuple[Any, ...]) -> psycopg.Error:
    conn.commit()
    with pytest.raises(psycopg.errors.ForeignKeyViolation) as info:
        conn.execute(sql, params)
    conn.rollback()
    return info.value


def test_one_bad_component_refuses_the_whole_insert(conn: Conn, acme: TwoPages) -> None:
    error = _refused(
        conn, _INSERT, (acme.page_id, [acme.api], acme.page_id, [acme.web, acme.foreign], [])
    )
    assert error.diag.constraint_name == "status_subscriber_component_ids_fkey"
    assert f"component {acme.foreign} is not a component of status page" in str(error)
    translated = translate(error)
    assert isinstance(translated, InvalidInput)
    assert "every component id must name a component of the same status page" in str(translated)
    assert _count(conn, acme.page_id) == 0


def test_one_bad_group_refuses_the_whole_insert(conn: Conn, acme: TwoPages) -> None:
    foreign_group = groups.create(conn, acme.other_page_id, name="Elsewhere").id
    error = _refused(conn, _INSERT, (acme.page_id, [], acme.page_id, [], [foreign_group]))
    assert error.diag.constraint_name == "status_subscriber_group_ids_fkey"
    translated = translate(error)
    assert isinstance(translated, InvalidInput)
    assert "every group id must name a group of the same status page" in str(translated)
    assert _count(conn, acme.page_id) == 0


def test_unknown_ids_are_refused(conn: Conn, acme: TwoPages) -> None:
    for components, groups_ in ((["no-such-component"], []), ([], ["no-such-group"])):
        _refused(conn, _INSERT, (acme.page_id, [], acme.page_id, components, groups_))
    assert _count(conn, acme.page_id) == 0


def test_too_many_group_ids_are_refused(conn: Conn, acme: TwoPages) -> None:
    conn.commit()
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        conn.execute(_INSERT, (acme.page_id, [], acme.page_id, [], ["g"] * 1001))
    conn.rollback()


def test_copy_with_one_bad_row_is_refused_as_a_whole(conn: Conn, acme: TwoPages) -> None:
    rows = [
        (acme.page_id, "EMAIL", f"copy{n}@example.org", [acme.foreign] if n == 77 else [acme.api])
        for n in range(100)
    ]

    def copy_all() -> None:
        with conn.cursor().copy(
            "COPY status_subscriber (status_page_id, channel, destination, component_ids)"
            " FROM STDIN"
        ) as copy:
            for row in rows:
                copy.write_row(row)

    conn.commit()
    with pytest.raises(psycopg.errors.ForeignKeyViolation) as info:
        copy_all()
    conn.rollback()
    assert info.value.diag.constraint_name == "status_subscriber_component_ids_fkey"
    assert _count(conn, acme.page_id) == 0


def test_good_rows_of_several_pages_pass(conn: Conn, acme: TwoPages) -> None:
    home = groups.create(conn, acme.page_id, name="Home").id
    away = groups.create(conn, acme.other_page_id, name="Away").id
    conn.execute(
        "INSERT INTO status_subscriber (status_page_id, channel, destination, component_ids,"
        " group_ids) VALUES (%s, 'EMAIL', 'a@example.org', %s, %s),"
        " (%s, 'EMAIL', 'b@example.org', %s, %s)",
        (acme.page_id, [acme.api, acme.web], [home], acme.other_page_id, [acme.foreign], [away]),
    )
    assert _count(conn, acme.page_id) == 1
    assert _count(conn, acme.other_page_id) == 1


def test_the_ids_are_checked_once_per_statement(conn: Conn, acme: TwoPages) -> None:
    """A 200-row INSERT calls the statement check once and no per-row check (before 0041: 200
    calls of each row trigger function)."""
    conn.execute("SET LOCAL track_functions = 'pl'")
    conn.execute(
        "INSERT INTO status_subscriber (status_page_id, channel, destination, component_ids)"
        " SELECT %s, 'EMAIL', 'once' || n || '@example.org', %s FROM generate_series(1, 200) n",
        (acme.page_id, [acme.api]),
    )
    calls = dict(
        conn.execute(
            "SELECT funcname, calls FROM pg_stat_xact_user_functions"
            " WHERE funcname LIKE 'statusdb_status_subscriber_%%'"
        ).fetchall()
    )
    assert calls.get("statusdb_status_subscriber_check_component_ids", 0) == 0
    assert calls.get("statusdb_status_subscriber_check_group_ids", 0) == 0
    assert calls.get("statusdb_status_subscriber_destination_guard", 0) == 0
    assert calls.get("statusdb_status_subscriber_check_ids_insert") == 1


def test_updates_are_still_checked_per_row(conn: Conn, acme: TwoPages) -> None:
    conn.execute(
        "INSERT INTO status_subscriber (status_page_id, channel, destination, component_ids)"
        " VALUES (%s, 'EMAIL', 'upd@example.org', %s)",
        (acme.page_id, [acme.api]),
    )
    error = _refused(
        conn,
        "UPDATE status_subscriber SET component_ids = %s WHERE status_page_id = %s",
        ([acme.foreign], acme.page_id),
    )
    assert error.diag.constraint_name == "status_subscriber_component_ids_fkey"
