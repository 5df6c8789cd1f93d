"""Idempotency keys (issue 22 item 2, migration 0031): a retried write is applied once."""

from __future__ import annotations

import datetime as dt
import threading
import uuid

import psycopg
import pytest
from factories import new_page
from psycopg.conninfo import make_conninfo
from psycopg.rows import TupleRow

from statusdb import idempotency, maintenance, pages, status_incidents, subscribers, teams, tenancy
from statusdb.errors import Conflict, InvalidInput, Unauthorized

Conn = psycopg.Connection[TupleRow]


def _page(conn: Conn) -> str:
    team = teams.create(conn, name=f"t-{uuid.uuid4().hex[:8]}")
    return new_page(conn, team.id, slug=f"p-{uuid.uuid4().hex[:10]}").id


def _count(conn: Conn, sql: str, *params: object) -> int:
    row = conn.execute(sql.encode(), params).fetchone()
    assert row is not None
    return int(row[0])


def _events(conn: Conn, page_id: str) -> int:
    return _count(
        conn, "SELECT count(*) FROM notification_event WHERE status_page_id = %s", page_id
    )


def test_create_and_add_update_with_a_key_are_applied_once(conn: Conn) -> None:
    page_id = _page(conn)
    first = status_incidents.create(
        conn, page_id, title="Errors", severity="MAJOR", message="Looking", idempotency_key="k1"
    )
    events = _events(conn, page_id)
    again = status_incidents.create(
        conn, page_id, title="Errors", severity="MAJOR", message="Looking", idempotency_key="k1"
    )
    assert again.id == first.id
    assert (
        _count(conn, "SELECT count(*) FROM status_incident WHERE status_page_id = %s", page_id) == 1
    )
    assert _events(conn, page_id) == events

    updated = status_incidents.add_update(
        conn, first.id, status="IDENTIFIED", message="Found it", idempotency_key="u1"
    )
    events = _events(conn, page_id)
    replayed = status_incidents.add_update(
        conn, first.id, status="IDENTIFIED", message="Found it", idempotency_key="u1"
    )
    assert len(replayed.updates) == len(updated.updates) == 2
    assert _events(conn, page_id) == events
    # Without a key, the same call appends again (keys are opt-in).
    status_incidents.add_update(conn, first.id, status="IDENTIFIED", message="Found it")
    assert len(status_incidents.get(conn, first.id).updates) == 3


def test_a_key_reused_with_other_arguments_is_refused(conn: Conn) -> None:
    page_id = _page(conn)
    status_incidents.create(
        conn, page_id, title="Errors", severity="MAJOR", message="Looking", idempotency_key="k"
    )
    conn.commit()
    with pytest.raises(Conflict, match=r"different status_incident\.create request"):
        status_incidents.create(
            conn, page_id, title="Other", severity="MAJOR", message="Looking", idempotency_key="k"
        )
    conn.rollback()
    with pytest.raises(InvalidInput, match="idempotency_key must be at most 200"):
        status_incidents.create(
            conn, page_id, title="E", severity="MAJOR", message="m", idempotency_key="x" * 201
        )
    # Keys are per page and per operation.
    other = _page(conn)
    status_incidents.create(
        conn, other, title="Other", severity="MAJOR", message="Looking", idempotency_key="k"
    )


def test_maintenance_and_subscribe_with_a_key_are_applied_once(conn: Conn) -> None:
    page_id = _page(conn)
    start = dt.datetime(2030, 1, 1, 10, tzinfo=dt.UTC)

    def schedule() -> maintenance.MaintenanceWindow:
        return maintenance.create(
            conn,
            page_id,
            title="Upgrade",
            start_time=start,
            end_time=start + dt.timedelta(hours=1),
            created_by_id="u1",
            idempotency_key="w1",
        )

    window = schedule()
    events = _events(conn, page_id)
    again = schedule()
    assert again.id == window.id
    assert (
        _count(conn, "SELECT count(*) FROM maintenance_window WHERE status_page_id = %s", page_id)
        == 1
    )
    assert _events(conn, page_id) == events

    first = subscribers.subscribe(
        conn, page_id, channel="EMAIL", destination="a@example.com", idempotency_key="s1"
    )
    assert first.unsubscribe_token
    assert not first.replayed
    repeat = subscribers.subscribe(
        conn, page_id, channel="EMAIL", destination="a@example.com", idempotency_key="s1"
    )
    assert repeat.replayed
    assert repeat.subscriber.id == first.subscriber.id
    assert repeat.verify_token is None
    assert repeat.unsubscribe_token == ""
    # The first call's tokens still work: nothing was renewed.
    assert first.verify_token is not None
    assert subscribers.verify(conn, first.verify_token).is_verified


def test_plain_sql_cannot_claim_a_key_twice(conn: Conn) -> None:
    page_id = _page(conn)
    insert = (
        b"INSERT INTO idempotency_key (status_page_id, scope, key, request_digest) "
        b"VALUES (%s, 'maintenance.create', 'k', decode(repeat('00', 32), 'hex'))"
    )
    conn.execute(insert, (page_id,))
    conn.commit()
    with pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute(insert, (page_id,))
    conn.rollback()


@pytest.mark.fresh_db
def test_two_concurrent_calls_with_one_key_write_once(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as setup:
        page_id = _page(setup)
    first = psycopg.connect(dsn)
    second = psycopg.connect(dsn)

    def call(on: Conn) -> status_incidents.StatusIncident:
        return status_incidents.create(
            on, page_id, title="Errors", severity="MAJOR", message="m", idempotency_key="race"
        )

    try:
        made = call(first)
        results: list[str] = []
        # The second call waits on the key's unique index until the first commits.
        waiter = threading.Thread(target=lambda: results.append(call(second).id))
        waiter.start()
        waiter.join(0.5)
        assert waiter.is_alive()  # blocked behind the first call's claim
        first.commit()
        waiter.join(10)
        second.commit()
        assert results == [made.id]
        assert (
            _count(first, "SELECT count(*) FROM status_incident WHERE status_page_id = %s", page_id)
            == 1
        )
    finally:
        first.close()
        second.close()


def test_purge_removes_old_keys_in_bounded_batches(conn: Conn) -> None:
    page_id = _page(conn)
    for n in range(3):
        status_incidents.create(
            conn, page_id, title=f"E{n}", severity="MINOR", message="m", idempotency_key=f"p{n}"
        )
    conn.execute(
        b"UPDATE idempotency_key SET created_at = now() - interval '25 hours' "
        b"WHERE status_page_id = %s",
        (page_id,),
    )
    assert idempotency.purge(conn, limit=1) == 1  # bounded work per call
    idempotency.purge(conn)  # the default: older than 24 h
    left = _count(conn, "SELECT count(*) FROM idempotency_key WHERE status_page_id = %s", page_id)
    assert left == 0
    with pytest.raises(InvalidInput, match="limit"):
        idempotency.purge(conn, limit=0)
    with pytest.raises(InvalidInput, match="limit"):
        idempotency.purge(conn, limit=idempotency.PURGE_LIMIT_MAX + 1)


def test_keys_hold_for_the_app_role_within_its_team(dsn: str, app_login: str) -> None:
    """As statusdb_app under a team scope: a repeat is applied once, and another team's page
    is refused (the key table's team policy), not answered from its keys."""
    with psycopg.connect(dsn) as owner:
        page_id = _page(owner)
        other_page = _page(owner)
        team_id = pages.get(owner, page_id).team_id
    with psycopg.connect(make_conninfo(dsn, user=app_login)) as app:
        tenancy.set_team(app, team_id)

        def publish(on_page: str) -> status_incidents.StatusIncident:
            return status_incidents.create(
                app, on_page, title="E", severity="MINOR", message="m", idempotency_key="app"
            )

        assert publish(page_id).id == publish(page_id).id
        app.commit()
        tenancy.set_team(app, team_id)
        with pytest.raises(Unauthorized, match="idempotency_key"):
            publish(other_page)
