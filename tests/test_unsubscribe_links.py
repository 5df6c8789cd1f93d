"""Unsubscribe links (issue 25, item 2): signed per (subscriber, message) by the service."""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from typing import Any

import psycopg
import pytest
from factories import new_page
from psycopg.rows import TupleRow

from statusdb import incidents, subscribers, teams
from statusdb.domain import unsubscribe_links as links
from statusdb.errors import InvalidInput, NotFound, Unauthorized
from statusdb.pages import NewComponent
from statusdb.workers import deliveries, outbox
from statusdb.workers.deliveries import PermanentDeliveryFailure
from statusdb.workers.outbox import Recipient

Conn = psycopg.Connection[TupleRow]
KEY = b"k" * 32
OLD = b"o" * 32
SUB = "0190a4c1-0000-7000-8000-000000000001"
MSG = "0190a4c1-0000-7000-8000-0000000000aa"


# -- the pure part -----------------------------------------------------------------------------


def test_a_signed_link_verifies_to_its_subscriber_and_message() -> None:
    token = links.sign([KEY], subscriber_id=SUB, message_id=MSG)
    assert links.verify([KEY], token) == links.LinkClaims(SUB, MSG)
    assert len(token) <= 125
    assert token.isascii()
    assert all(c.isalnum() or c in "-_" for c in token)  # URL-safe, no padding


def test_key_rotation_newest_first() -> None:
    old_link = links.sign([OLD], subscriber_id=SUB, message_id=MSG)
    rotated = [KEY, OLD]
    assert links.verify(rotated, old_link).subscriber_id == SUB  # still honoured
    new_link = links.sign(rotated, subscriber_id=SUB, message_id=MSG)
    assert links.verify([KEY], new_link).subscriber_id == SUB  # signed with the first
    with pytest.raises(Unauthorized):
        links.verify([KEY], old_link)  # the old key retired: its links end


def test_a_link_names_one_subscriber_and_cannot_be_altered() -> None:
    token = links.sign([KEY], subscriber_id=SUB, message_id=MSG)
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    other = SUB[:-1] + "2"
    forged = raw.replace(SUB.encode(), other.encode())
    assert forged != raw
    for bad in (
        base64.urlsafe_b64encode(forged).rstrip(b"=").decode(),
        token[:-2] + ("AA" if token[-2:] != "AA" else "BB"),
        token[:-1],
        token + "A",
        "",
        "not base64 !",
        "é" * 10,
        "A" * (links.MAX_TOKEN_LENGTH + 1),
        base64.urlsafe_b64encode(b"\x02" + raw[1:]).rstrip(b"=").decode(),  # another version
        links.sign([OLD], subscriber_id=SUB, message_id=MSG),  # another key
    ):
        with pytest.raises(Unauthorized):
            links.verify([KEY], bad)
    with pytest.raises(Unauthorized):
        links.verify([KEY], None)  # type: ignore[arg-type]


def test_keys_are_checked() -> None:
    for keys in ([], [b"short"], KEY, "k" * 40, [KEY] * (links.MAX_KEYS + 1), [42]):
        with pytest.raises(InvalidInput):
            links.check_keys(keys)  # type: ignore[arg-type]
    assert links.check_keys(["t" * 43]) == (b"t" * 43,)  # text keys (token_urlsafe) work
    assert len(links.new_key()) == links.MIN_KEY_BYTES
    for sub in ("", "x" * 201, "a\x00b"):
        with pytest.raises(InvalidInput):
            links.sign([KEY], subscriber_id=sub, message_id=MSG)


def test_urls_and_rfc8058_headers() -> None:
    token = links.sign([KEY], subscriber_id=SUB, message_id=MSG)
    assert links.url("https://status.example.com/unsubscribe/", token) == (
        f"https://status.example.com/unsubscribe/{token}"
    )
    assert links.url("https://example.com/u?t={token}&x=1", token) == (
        f"https://example.com/u?t={token}&x=1"
    )
    for base in ("http://example.com/u", "/u", "https://example.com/u?x=1", "https://x/#f"):
        with pytest.raises(InvalidInput):
            links.url(base, token)
    link = links.url("https://status.example.com/unsubscribe", token)
    assert links.list_unsubscribe_headers(link) == {
        "List-Unsubscribe": f"<{link}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
    assert links.list_unsubscribe_headers(link, mailto="unsub@example.com")["List-Unsubscribe"] == (
        f"<{link}>, <mailto:unsub@example.com>"
    )
    for bad in ("http://example.com/u", "https://example.com/a b", "https://x/\r\nBcc: y"):
        with pytest.raises(InvalidInput):
            links.list_unsubscribe_headers(bad)


def test_a_recipient_without_keys_has_no_link() -> None:
    recipient = Recipient("s", "EMAIL", "a@example.com")
    assert recipient.unsubscribe_token is None
    with pytest.raises(InvalidInput, match="unsubscribe_keys"):
        recipient.unsubscribe_url("https://example.com/u")
    signed = outbox.with_unsubscribe_token(recipient, MSG, [KEY])
    assert links.verify([KEY], signed.unsubscribe_token or "") == links.LinkClaims("s", MSG)
    assert signed.list_unsubscribe_headers("https://example.com/u")["List-Unsubscribe"] == (
        f"<https://example.com/u/{signed.unsubscribe_token}>"
    )


# -- against the database ----------------------------------------------------------------------


def _page_with_subscribers(conn: Conn, count: int) -> tuple[str, list[str]]:
    slug = f"unsub-{uuid.uuid4().hex[:10]}"
    team = teams.create(conn, name=f"Team {slug}")
    page = new_page(
        conn, team.id, slug=slug, components=[NewComponent(name="API", team_id=team.id)]
    )
    ids = [
        subscribers.subscribe(
            conn, page.id, channel="WEBHOOK", destination=f"https://hooks.example.com/{slug}/{i}"
        ).subscriber.id
        for i in range(count)
    ]
    return team.id, ids


def _active(conn: Conn, subscriber_id: str) -> bool:
    return subscribers.get(conn, subscriber_id).is_active


def test_unsubscribe_by_link_deactivates_only_its_subscriber(conn: Conn) -> None:
    _team, (mine, other) = _page_with_subscribers(conn, 2)
    token = links.sign([KEY], subscriber_id=mine, message_id=MSG)
    assert subscribers.unsubscribe_by_link(conn, token, keys=[KEY]).id == mine
    assert not _active(conn, mine)
    assert _active(conn, other)
    assert not subscribers.unsubscribe_by_link(conn, token, keys=[KEY]).is_active  # idempotent
    # Later: the stored token rotated, the subscriber subscribed again: the link still works.
    subscribers.rotate_unsubscribe_token(conn, mine)
    page_id = subscribers.get(conn, mine).status_page_id
    again = subscribers.subscribe(
        conn, page_id, channel="WEBHOOK", destination=subscribers.get(conn, mine).destination
    )
    assert again.subscriber.id == mine
    assert again.subscriber.is_active
    assert subscribers.unsubscribe_by_link(conn, token, keys=[KEY, OLD]).id == mine
    assert not _active(conn, mine)


def test_a_bad_link_changes_nothing(conn: Conn) -> None:
    _team, (mine,) = _page_with_subscribers(conn, 1)
    before = subscribers.get(conn, mine)
    for token in (
        links.sign([OLD], subscriber_id=mine, message_id=MSG),  # a key the service does not hold
        "garbage",
        "",
    ):
        with pytest.raises(Unauthorized):
            subscribers.unsubscribe_by_link(conn, token, keys=[KEY])
    assert subscribers.get(conn, mine) == before
    with pytest.raises(InvalidInput):
        subscribers.unsubscribe_by_link(conn, "x", keys=KEY)  # type: ignore[arg-type]
    gone = links.sign([KEY], subscriber_id="no-such-subscriber", message_id=MSG)
    with pytest.raises(NotFound):
        subscribers.unsubscribe_by_link(conn, gone, keys=[KEY])


@pytest.mark.fresh_db
def test_every_recipient_of_a_round_gets_its_own_link(conn: Conn) -> None:
    team_id, subs = _page_with_subscribers(conn, 3)
    incidents.create(conn, team_id, title="API down", priority="CRITICAL")
    conn.commit()
    got: list[tuple[Recipient, str]] = []
    outbox.process_all(
        conn,
        lambda note, recipient, key: got.append((recipient, key)),
        worker_id="w",
        hold_down=dt.timedelta(0),
        unsubscribe_keys=[KEY, OLD],
    )
    assert sorted(r.subscriber_id for r, _ in got) == sorted(subs)
    for recipient, key in got:
        assert recipient.unsubscribe_token is not None
        claims = links.verify([KEY], recipient.unsubscribe_token)
        # The message is the change or event: the delivery key is "<message>/<subscriber>".
        assert f"{claims.message_id}/{claims.subscriber_id}" == key
        assert claims.subscriber_id == recipient.subscriber_id
    # Each link unsubscribes its own subscriber, whatever happened since.
    first, *rest = got
    subscribers.unsubscribe_by_link(conn, first[0].unsubscribe_token or "", keys=[KEY])
    assert not _active(conn, first[0].subscriber_id)
    assert all(_active(conn, r.subscriber_id) for r, _ in rest)


@pytest.mark.fresh_db
async def test_async_round_and_retry_carry_the_same_link(
    conn: Conn, aconn: psycopg.AsyncConnection[Any]
) -> None:
    team_id, (flaky, fine) = _page_with_subscribers(conn, 2)
    incidents.create(conn, team_id, title="API down", priority="CRITICAL")
    conn.commit()
    tokens: dict[str, list[str | None]] = {flaky: [], fine: []}

    async def deliver(note: Any, recipient: Recipient, key: str) -> None:
        tokens[recipient.subscriber_id].append(recipient.unsubscribe_token)
        if recipient.subscriber_id == flaky and len(tokens[flaky]) == 1:
            raise TimeoutError("try again")

    await outbox.aprocess_all(
        aconn,
        deliver,
        worker_id="a",
        hold_down=dt.timedelta(0),
        bookkeeping=True,
        unsubscribe_keys=[KEY],
    )
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1, seconds=5)

    def deliver_again(note: Any, recipient: Recipient, key: str) -> None:
        if recipient.subscriber_id != flaky:
            raise PermanentDeliveryFailure("unexpected")
        tokens[flaky].append(recipient.unsubscribe_token)

    report = deliveries.retry(conn, deliver_again, worker_id="r", now=later, unsubscribe_keys=[KEY])
    assert report.delivered == 1
    first, second = tokens[flaky]
    assert first is not None
    assert first == second
    assert links.verify([KEY], first).subscriber_id == flaky
    assert tokens[fine][0] != first
