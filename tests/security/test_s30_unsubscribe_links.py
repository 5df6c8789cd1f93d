"""s30: unsubscribe links cannot be forged, moved to another subscriber, or made from a dump.

The links in messages (`statusdb.domain.unsubscribe_links`) are HMAC-SHA256 signatures of
(subscriber id, message id) under keys only the service holds. An attacker holding one link
(a forwarded email) and the whole database (a leaked dump) must still not be able to
unsubscribe anyone else: the database never sees the keys, and the links themselves are not
stored anywhere (a retry's stored payload holds the notification, not the recipient's link).
"""

from __future__ import annotations

import base64
import datetime as dt
import uuid

import psycopg
import pytest
from factories import new_page
from psycopg import sql
from psycopg.rows import TupleRow

from statusdb import incidents, subscribers, teams
from statusdb.domain import unsubscribe_links as links
from statusdb.errors import Unauthorized
from statusdb.pages import NewComponent
from statusdb.workers import outbox
from statusdb.workers.outbox import Recipient

Conn = psycopg.Connection[TupleRow]
KEY = b"s30 service key, never sent to SQL"  # 34 bytes


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _raw(token: str) -> bytes:
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))


def _round_with_a_failure(conn: Conn) -> tuple[dict[str, str], str]:
    """A page with two subscribers, one worker round with bookkeeping in which the second
    delivery fails (so its notification payload is stored for a retry); their links."""
    slug = f"s30-{uuid.uuid4().hex[:8]}"
    team = teams.create(conn, name=f"T {slug}")
    page = new_page(
        conn, team.id, slug=slug, components=[NewComponent(name="API", team_id=team.id)]
    )
    for n in range(2):
        subscribers.subscribe(
            conn, page.id, channel="WEBHOOK", destination=f"https://hooks.example.com/{slug}/{n}"
        )
    incidents.create(conn, team.id, title="down", priority="CRITICAL")
    conn.commit()
    got: dict[str, str] = {}

    def deliver(note: object, recipient: Recipient, key: str) -> None:
        assert recipient.unsubscribe_token is not None
        got[recipient.subscriber_id] = recipient.unsubscribe_token
        if len(got) == 2:
            raise TimeoutError("later")

    outbox.process_all(
        conn,
        deliver,
        worker_id="s30",
        hold_down=dt.timedelta(0),
        bookkeeping=True,
        unsubscribe_keys=[KEY],
    )
    (failed,) = [
        row[0]
        for row in conn.execute(
            "SELECT subscriber_id FROM delivery_attempt WHERE outcome = 'FAILED_TEMPORARY'"
            " AND payload IS NOT NULL"
        )
    ]
    return got, failed


def _stored_values(conn: Conn) -> list[bytes]:
    """Every text, bytea, json and array value of every table, as bytes (what a dump holds)."""
    columns = conn.execute(
        """SELECT c.table_name, c.column_name
           FROM information_schema.columns c
           JOIN information_schema.tables t USING (table_schema, table_name)
           WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE'
             AND c.data_type IN ('text', 'bytea', 'json', 'jsonb', 'ARRAY', 'character varying')
           ORDER BY 1, 2"""
    ).fetchall()
    assert len(columns) > 50
    values: list[bytes] = []
    for table, column in columns:
        query = sql.SQL("SELECT {c} FROM {t} WHERE {c} IS NOT NULL").format(
            c=sql.Identifier(column), t=sql.Identifier(table)
        )
        for (value,) in conn.execute(query):
            values.append(
                bytes(value) if isinstance(value, bytes | memoryview) else str(value).encode()
            )
    return values


@pytest.mark.fresh_db
def test_the_database_holds_nothing_a_link_can_be_made_from(conn: Conn) -> None:
    got, _failed = _round_with_a_failure(conn)
    stored = _stored_values(conn)
    dump = b"\n".join(stored)
    # Neither the key, in any spelling, nor any link or its signature is stored.
    for secret in (KEY, KEY.hex().encode(), base64.b64encode(KEY), _b64(KEY).encode()):
        assert secret not in dump
    for token in got.values():
        mac = _raw(token)[-links.MAC_BYTES :]
        for form in (token.encode(), mac, mac.hex().encode(), _b64(mac).encode()):
            assert form not in dump
    # Whatever the dump holds, used as a key, makes no link the service accepts.
    sub = next(iter(got))
    candidates = {v for v in stored if links.MIN_KEY_BYTES <= len(v) <= links.MAX_KEY_BYTES}
    candidates |= {v[:32] for v in stored if len(v) > links.MAX_KEY_BYTES}
    assert candidates
    for candidate in candidates:
        forged = links.sign([candidate], subscriber_id=sub, message_id="any")
        with pytest.raises(Unauthorized):
            links.verify([KEY], forged)
    # The stored unsubscribe token digest is no link either.
    (digest,) = conn.execute(
        "SELECT unsubscribe_token_hash FROM status_subscriber WHERE id = %s", (sub,)
    ).fetchone() or (None,)
    assert digest is not None
    for presented in (_b64(bytes(digest)), bytes(digest).hex()):
        with pytest.raises(Unauthorized):
            subscribers.unsubscribe_by_link(conn, presented, keys=[KEY])
    assert subscribers.get(conn, sub).is_active


@pytest.mark.fresh_db
def test_a_link_cannot_be_moved_to_another_subscriber(conn: Conn) -> None:
    got, _failed = _round_with_a_failure(conn)
    mine, other = sorted(got)
    raw = _raw(got[mine])
    # Put the other subscriber's id in my link (same length: uuids), keep my signature.
    moved = _b64(raw.replace(mine.encode(), other.encode()))
    assert moved != got[mine]
    # Or graft my signature onto a body naming the other subscriber and the same message.
    claims = links.verify([KEY], got[mine])
    theirs_body = _raw(links.sign([b"x" * 32], subscriber_id=other, message_id=claims.message_id))
    grafted = _b64(theirs_body[: -links.MAC_BYTES] + raw[-links.MAC_BYTES :])
    # Or the other subscriber's own link from another message, re-signed under a guess.
    guessed = links.sign([b"\x00" * 32], subscriber_id=other, message_id=claims.message_id)
    for attempt in (moved, grafted, guessed):
        with pytest.raises(Unauthorized):
            subscribers.unsubscribe_by_link(conn, attempt, keys=[KEY])
    assert subscribers.get(conn, other).is_active
    # Reusing my own link (again and again) only ever unsubscribes me.
    for _ in range(2):
        assert subscribers.unsubscribe_by_link(conn, got[mine], keys=[KEY]).id == mine
    assert not subscribers.get(conn, mine).is_active
    assert subscribers.get(conn, other).is_active
