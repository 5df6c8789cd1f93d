"""Subscribers (statusdb.subscribers): validation, tokens, renewal, unsubscribe, COPY import."""

from __future__ import annotations

import datetime as dt
import inspect
import re
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import psycopg
import pytest
from factories import TwoPages, two_pages
from psycopg.rows import TupleRow

from statusdb import subscribers
from statusdb.db.executor import Operation
from statusdb.db.resources import migrations_dir
from statusdb.domain import tokens
from statusdb.domain.types import NOTIFY_ON_EVENTS
from statusdb.errors import CONSTRAINT_MESSAGES, InvalidInput, NotFound, Unauthorized
from statusdb.infra import migrations
from statusdb.subscribers import ImportRow, RefusedRow, Subscriber

Connect = Callable[..., psycopg.Connection[TupleRow]]
Conn = psycopg.Connection[TupleRow]
AConn = psycopg.AsyncConnection[TupleRow]


@pytest.fixture
def acme(conn: Conn) -> TwoPages:
    """A page with two components and another page with one; committed."""
    built = two_pages(conn, team="Payments")
    conn.commit()
    return built


def _count(conn: Conn) -> int:
    row = conn.execute("SELECT count(*) FROM status_subscriber").fetchone()
    assert row is not None
    return int(row[0])


def _stored(conn: Conn, subscriber_id: str) -> dict[str, Any]:
    cur = conn.execute(
        "SELECT verify_token_hash, verify_token_expires_at, unsubscribe_token_hash, updated_at"
        " FROM status_subscriber WHERE id = %s",
        (subscriber_id,),
    )
    row = cur.fetchone()
    assert row is not None
    names = [c.name for c in cur.description or ()]
    return dict(zip(names, row, strict=True))


# --- validation -------------------------------------------------------------------------------

GOOD_EMAILS = [
    ("alice@example.com", "alice@example.com"),
    ("  Alice.Smith+tag@Example.COM ", "Alice.Smith+tag@example.com"),
    ("o'brien_{x}@mail.sub.example.co.uk", "o'brien_{x}@mail.sub.example.co.uk"),
    ("a@b.io", "a@b.io"),
    ("user@xn--bcher-kva.de", "user@xn--bcher-kva.de"),
    ("Jörg@Bücher.DE", "Jörg@bücher.de"),
    ("x" * 64 + "@example.com", "x" * 64 + "@example.com"),
    ("a@" + "b" * 63 + ".com", "a@" + "b" * 63 + ".com"),
    # 254 octets exactly.
    (
        "l" * 60 + "@" + ".".join(["d" * 63] * 3) + ".c",
        "l" * 60 + "@" + ".".join(["d" * 63] * 3) + ".c",
    ),
]

BAD_EMAILS = [
    ("alice.example.com", "'@' is missing"),
    ("al ice@example.com", "space"),
    ("alice@exam\tple.com", "space"),
    ("alice@@example.com", "more than one '@'"),
    ("a@b@example.com", "more than one '@'"),
    ("@example.com", "before the '@' is empty"),
    ("alice@", "domain after the '@' is missing"),
    ("alice@example", "at least one dot"),
    ("alice@-example.com", "hyphen"),
    ("alice@example-.com", "hyphen"),
    ("alice@exa_mple.com", "not allowed in a domain"),
    ("alice@exa!mple.com", "not allowed in a domain"),
    ("alice@example..com", "empty label"),
    ("alice@.example.com", "empty label"),
    ("alice@example.com.", "empty label"),
    ("alice@1.2.3.4", "all digits"),
    ("alice@[1.2.3.4]", "address literals"),
    (".alice@example.com", "dot"),
    ("alice.@example.com", "dot"),
    ("al..ice@example.com", "dot"),
    ('"alice"@example.com', "quoted"),
    ("a(b)@example.com", "not allowed before the '@'"),
    ("a,b@example.com", "not allowed before the '@'"),
    ("alice\u200b@example.com", "control or invisible"),
    ("x" * 65 + "@example.com", "longer than 64 octets"),
    ("a@" + "b" * 64 + ".com", "longer than 63"),
    ("l" * 61 + "@" + ".".join(["d" * 63] * 3) + ".c", "longer than 254 octets"),
    ("a@" + ".".join(["d" * 63] * 4) + ".com", "longer than 253 octets"),
    ("alice\x00@example.com", "NUL"),
    ("", "blank"),
    ("   ", "blank"),
]

GOOD_URLS = [
    (
        "https://hooks.slack.com/services/T000/B000/XXXX",
        "https://hooks.slack.com/services/T000/B000/XXXX",
    ),
    (
        " HTTPS://Hooks.Slack.COM/services/T0/B0/AbC ",
        "https://hooks.slack.com/services/T0/B0/AbC",
    ),
    ("https://example.com", "https://example.com"),
    ("https://example.com:8443/hook?x=1&y=A#frag", "https://example.com:8443/hook?x=1&y=A#frag"),
    ("https://example.com/a@b", "https://example.com/a@b"),
    ("https://93.184.216.34/hook", "https://93.184.216.34/hook"),
    ("https://[2001:DB8::1]:443/hook", "https://[2001:db8::1]:443/hook"),
    ("https://Bücher.de/hook", "https://bücher.de/hook"),
]

BAD_URLS = [
    ("http://example.com/hook", "https://"),
    ("ftp://example.com/hook", "https://"),
    ("mailto:alice@example.com", "https://"),
    ("example.com/hook", "https://"),
    ("https:/example.com/hook", "https://"),
    ("https://user:s3cret@example.com/hook", "credentials"),
    ("https://user@example.com/hook", "credentials"),
    ("https:///hook", "host is missing"),
    ("https://:443/hook", "host is missing"),
    ("https://exa mple.com/hook", "space"),
    ("https://example.com/ho ok", "space"),
    ("https://example.com/\x07", "control"),
    ("https://evil.example\\@good.example/", "backslash"),
    ("https://example.com:99999/", "port"),
    ("https://example.com:http/", "port"),
    ("https://example.com:0/", "port"),
    ("https://[::1/hook", "IPv6"),
    ("https://[not-an-ip]/hook", "IPv6"),
    ("https://localhost/hook", "at least one dot"),
    ("https://exa_mple.com/hook", "not allowed in a host"),
    ("https://-bad.example/hook", "hyphen"),
    ("https://example.com/" + "a" * 2000, "at most 2000"),
    ("https://exa\x00mple.com/", "NUL"),
]


@pytest.mark.parametrize(("given", "stored"), GOOD_EMAILS)
def test_good_emails_are_normalized(given: str, stored: str) -> None:
    assert subscribers.normalize_destination("EMAIL", given) == stored


@pytest.mark.parametrize(("given", "why"), BAD_EMAILS)
def test_bad_emails_are_refused(given: str, why: str) -> None:
    with pytest.raises(InvalidInput, match="destination") as info:
        subscribers.normalize_destination("EMAIL", given)
    assert why in str(info.value)


@pytest.mark.parametrize("channel", ["SLACK", "WEBHOOK"])
@pytest.mark.parametrize(("given", "stored"), GOOD_URLS)
def test_good_urls_are_normalized(channel: Any, given: str, stored: str) -> None:
    assert subscribers.normalize_destination(channel, given) == stored


@pytest.mark.parametrize("channel", ["SLACK", "WEBHOOK"])
@pytest.mark.parametrize(("given", "why"), BAD_URLS)
def test_bad_urls_are_refused(channel: Any, given: str, why: str) -> None:
    with pytest.raises(InvalidInput, match="destination") as info:
        subscribers.normalize_destination(channel, given)
    assert why in str(info.value)
    assert "s3cret" not in str(info.value)  # webhook URLs are secrets: never echoed


def test_subscribe_stores_normalized_destinations(conn: Conn, acme: TwoPages) -> None:
    """Everything statusdb accepts also passes the database's own floor, as normalized."""
    for given, stored in GOOD_EMAILS:
        sub = subscribers.subscribe(conn, acme.page_id, channel="EMAIL", destination=given)
        assert sub.created
        assert subscribers.get(conn, sub.subscriber.id).destination == stored
        # An address must be confirmed by its owner.
        assert not sub.subscriber.is_verified
        assert sub.verify_token is not None
        assert sub.subscriber.verify_token_expires_at is not None
    for channel in ("SLACK", "WEBHOOK"):
        for given, stored in GOOD_URLS:
            sub = subscribers.subscribe(conn, acme.page_id, channel=channel, destination=given)
            assert sub.created
            assert subscribers.get(conn, sub.subscriber.id).destination == stored
            # URLs are their owner's secrets already: no verification round.
            assert sub.subscriber.is_verified
            assert sub.verify_token is None
            assert sub.subscriber.verify_token_expires_at is None


def test_subscribe_refuses_bad_destinations(conn: Conn, acme: TwoPages) -> None:
    for given, why in BAD_EMAILS:
        with pytest.raises(InvalidInput, match=re.escape(why)):
            subscribers.subscribe(conn, acme.page_id, channel="EMAIL", destination=given)
    for given, why in BAD_URLS:
        with pytest.raises(InvalidInput, match=re.escape(why)):
            subscribers.subscribe(conn, acme.page_id, channel="WEBHOOK", destination=given)
    assert _count(conn) == 0


def test_channel_notify_on_component_ids_and_ttl_are_checked(conn: Conn, acme: TwoPages) -> None:
    def sub(**kwargs: Any) -> subscribers.Subscription:
        args: dict[str, Any] = {"channel": "EMAIL", "destination": "a@example.com", **kwargs}
        return subscribers.subscribe(conn, acme.page_id, **args)

    cases: list[tuple[dict[str, Any], str]] = [
        ({"channel": "SMS"}, "channel must be one of"),
        ({"notify_on": []}, "notify_on must name at least one event"),
        ({"notify_on": "outage"}, "notify_on must be a list"),
        ({"notify_on": ["outage", "bogus"]}, "notify_on must be one of"),
        ({"notify_on": None}, "notify_on must be a list"),
        ({"component_ids": "abc"}, "component_ids must be a list"),
        ({"component_ids": None}, "component_ids must be a list"),
        ({"component_ids": [acme.foreign]}, "component of the same status page"),
        ({"component_ids": ["no-such-component"]}, "component of the same status page"),
        ({"verify_ttl": dt.timedelta(0)}, "verify_ttl"),
        ({"verify_ttl": dt.timedelta(days=31)}, "verify_ttl"),
    ]
    for kwargs, message in cases:
        with pytest.raises(InvalidInput, match=message):
            sub(**kwargs)
        conn.rollback()
    with pytest.raises(NotFound, match="status page"):
        subscribers.subscribe(conn, "no-such-page", channel="EMAIL", destination="a@example.com")
    conn.rollback()
    assert _count(conn) == 0

    made = sub(
        component_ids=[acme.web, acme.api, acme.web], notify_on=["resolved", "outage", "outage"]
    )
    assert made.subscriber.component_ids == (acme.web, acme.api)
    assert made.subscriber.notify_on == ("outage", "resolved")
    assert sub().subscriber.notify_on == NOTIFY_ON_EVENTS


DB_FLOOR = [
    ("EMAIL", "alice@Example.com", "status_subscriber_destination_format_check"),
    ("EMAIL", "alice.example.com", "status_subscriber_destination_format_check"),
    ("EMAIL", "al ice@example.com", "status_subscriber_destination_format_check"),
    ("EMAIL", "a" * 250 + "@x.io", "status_subscriber_destination_format_check"),
    ("WEBHOOK", "http://example.com/", "status_subscriber_destination_format_check"),
    ("WEBHOOK", "HTTPS://example.com/", "status_subscriber_destination_format_check"),
    ("SLACK", "https://u:p@example.com/", "status_subscriber_destination_format_check"),
    ("SLACK", "https://example.com/a b", "status_subscriber_destination_format_check"),
    ("SLACK", "#general", "status_subscriber_destination_format_check"),
]


@pytest.mark.parametrize(("channel", "destination", "constraint"), DB_FLOOR)
def test_database_refuses_bad_destinations_from_any_client(
    conn: Conn, acme: TwoPages, channel: str, destination: str, constraint: str
) -> None:
    with pytest.raises(psycopg.errors.CheckViolation) as info:
        conn.execute(
            "INSERT INTO status_subscriber (status_page_id, channel, destination)"
            " VALUES (%s, %s, %s)",
            (acme.page_id, channel, destination),
        )
    assert info.value.diag.constraint_name == constraint


def test_database_keeps_token_invariants(conn: Conn, acme: TwoPages) -> None:
    insert = (
        "INSERT INTO status_subscriber (status_page_id, channel, destination, is_verified,"
        " verify_token_hash, verify_token_expires_at, unsubscribe_token_hash)"
        " VALUES (%s, 'EMAIL', 'a@example.com', %s, %s, %s, %s)"
    )
    digest = tokens.digest("t")
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    cases = [
        ((False, digest, None, None), "status_subscriber_verify_token_expires_at_check"),
        ((False, None, later, None), "status_subscriber_verify_token_expires_at_check"),
        ((True, digest, later, None), "status_subscriber_is_verified_check"),
        ((True, None, None, b"short"), "status_subscriber_unsubscribe_token_hash_check"),
    ]
    for values, constraint in cases:
        with pytest.raises(psycopg.errors.CheckViolation) as info:
            conn.execute(insert, (acme.page_id, *values))
        assert info.value.diag.constraint_name == constraint
        conn.rollback()


def test_every_subscriber_constraint_has_a_message(conn: Conn) -> None:
    rows = conn.execute(
        "SELECT conname FROM pg_constraint"
        " WHERE conrelid = 'status_subscriber'::regclass AND contype <> 'p'"
    ).fetchall()
    names = {name for (name,) in rows}
    assert "status_subscriber_unsubscribe_token_hash_key" in names
    assert names <= CONSTRAINT_MESSAGES.keys()


def test_subscriber_rows_never_expose_token_digests() -> None:
    names = {f.name for f in attrs.fields(Subscriber)}
    assert not any("hash" in name for name in names)
    assert names == {
        "id",
        "status_page_id",
        "channel",
        "destination",
        "component_ids",
        "notify_on",
        "is_verified",
        "is_active",
        "verify_token_expires_at",
        "created_at",
        "updated_at",
    }


# --- verification -----------------------------------------------------------------------------


def test_verification_is_single_use_and_clears_the_digest(conn: Conn, acme: TwoPages) -> None:
    sub = subscribers.subscribe(conn, acme.page_id, channel="EMAIL", destination="a@example.com")
    assert sub.verify_token is not None
    stored = _stored(conn, sub.subscriber.id)
    assert bytes(stored["verify_token_hash"]) == tokens.digest(sub.verify_token)
    assert sub.verify_token not in repr(stored)

    verified = subscribers.verify(conn, sub.verify_token)
    assert verified.id == sub.subscriber.id
    assert verified.is_verified
    assert verified.verify_token_expires_at is None
    stored = _stored(conn, sub.subscriber.id)
    assert stored["verify_token_hash"] is None
    assert stored["verify_token_expires_at"] is None

    with pytest.raises(Unauthorized, match="unknown or already used"):
        subscribers.verify(conn, sub.verify_token)


def test_verification_expires(conn: Conn, acme: TwoPages) -> None:
    sub = subscribers.subscribe(
        conn,
        acme.page_id,
        channel="EMAIL",
        destination="a@example.com",
        verify_ttl=dt.timedelta(minutes=10),
    )
    assert sub.verify_token is not None
    expires = sub.subscriber.verify_token_expires_at
    assert expires is not None
    assert abs(expires - sub.subscriber.created_at - dt.timedelta(minutes=10)) < dt.timedelta(
        seconds=1
    )
    conn.execute(
        "UPDATE status_subscriber SET verify_token_expires_at = now() - interval '1 second'"
        " WHERE id = %s",
        (sub.subscriber.id,),
    )
    with pytest.raises(Unauthorized, match="expired"):
        subscribers.verify(conn, sub.verify_token)
    assert not subscribers.get(conn, sub.subscriber.id).is_verified


def test_wrong_verification_tokens_change_nothing(conn: Conn, acme: TwoPages) -> None:
    sub = subscribers.subscribe(conn, acme.page_id, channel="EMAIL", destination="a@example.com")
    for token in ["", "wrong", "x" * 10_000, "a\x00b", None, 42, sub.unsubscribe_token]:
        with pytest.raises(Unauthorized):
            subscribers.verify(conn, token)  # type: ignore[arg-type]
    assert not subscribers.get(conn, sub.subscriber.id).is_verified


def test_concurrent_verifications_with_one_token_succeed_once(
    conn: Conn, acme: TwoPages, connect: Connect
) -> None:
    sub = subscribers.subscribe(conn, acme.page_id, channel="EMAIL", destination="a@example.com")
    conn.commit()
    assert sub.verify_token is not None
    token = sub.verify_token
    first, second = connect(), connect()
    subscribers.verify(first, token)  # holds the row lock until commit
    outcome: list[BaseException | Subscriber] = []

    def run() -> None:
        try:
            outcome.append(subscribers.verify(second, token))
        except BaseException as exc:
            outcome.append(exc)
        second.rollback()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(0.3)
    assert thread.is_alive(), "the second verification should wait for the first"
    first.commit()
    thread.join(5)
    assert len(outcome) == 1
    assert isinstance(outcome[0], Unauthorized)


# --- renewal ----------------------------------------------------------------------------------


def test_resubscribing_a_webhook_renews_it(conn: Conn, acme: TwoPages) -> None:
    url = "https://example.com/hook"
    first = subscribers.subscribe(conn, acme.page_id, channel="WEBHOOK", destination=url)
    again = subscribers.subscribe(
        conn,
        acme.page_id,
        channel="WEBHOOK",
        destination="HTTPS://EXAMPLE.COM/hook",
        component_ids=[acme.api],
        notify_on=["outage"],
    )
    assert first.created
    assert not again.created
    assert again.subscriber.id == first.subscriber.id
    assert again.subscriber.component_ids == (acme.api,)
    assert again.subscriber.notify_on == ("outage",)
    assert again.subscriber.is_verified
    assert again.subscriber.created_at == first.subscriber.created_at
    assert _count(conn) == 1
    # The unsubscribe token is replaced: only the newest one works.
    assert again.unsubscribe_token != first.unsubscribe_token
    with pytest.raises(Unauthorized):
        subscribers.unsubscribe_by_token(conn, first.unsubscribe_token)
    assert not subscribers.unsubscribe_by_token(conn, again.unsubscribe_token).is_active


def test_resubscribing_an_email_needs_a_new_verification(conn: Conn, acme: TwoPages) -> None:
    first = subscribers.subscribe(conn, acme.page_id, channel="EMAIL", destination="a@Example.com")
    assert first.verify_token is not None
    pending = subscribers.subscribe(
        conn, acme.page_id, channel="EMAIL", destination="a@example.COM", notify_on=["resolved"]
    )
    assert not pending.created
    assert pending.verify_token is not None
    assert pending.verify_token != first.verify_token
    with pytest.raises(Unauthorized):
        subscribers.verify(conn, first.verify_token)
    assert subscribers.verify(conn, pending.verify_token).is_verified

    # A verified address that subscribes again is unverified until it confirms again.
    renewed = subscribers.subscribe(
        conn, acme.page_id, channel="EMAIL", destination="a@example.com"
    )
    assert not renewed.created
    assert not renewed.subscriber.is_verified
    assert renewed.subscriber.notify_on == NOTIFY_ON_EVENTS
    assert renewed.verify_token is not None
    assert subscribers.verify(conn, renewed.verify_token).is_verified
    # The local part keeps its case: another mailbox, another subscriber.
    other = subscribers.subscribe(conn, acme.page_id, channel="EMAIL", destination="A@example.com")
    assert other.created
    assert _count(conn) == 2


def test_resubscribing_reactivates(conn: Conn, acme: TwoPages) -> None:
    first = subscribers.subscribe(conn, acme.page_id, channel="SLACK", destination="https://x.io/h")
    assert not subscribers.unsubscribe(conn, first.subscriber.id).is_active
    again = subscribers.subscribe(conn, acme.page_id, channel="SLACK", destination="https://x.io/h")
    assert not again.created
    assert again.subscriber.id == first.subscriber.id
    assert again.subscriber.is_active
    # Same destination on another page or channel: separate subscriptions.
    assert subscribers.subscribe(
        conn, acme.other_page_id, channel="SLACK", destination="https://x.io/h"
    ).created
    assert subscribers.subscribe(
        conn, acme.page_id, channel="WEBHOOK", destination="https://x.io/h"
    ).created


def test_concurrent_subscribes_of_one_destination_make_one_row(
    conn: Conn, acme: TwoPages, connect: Connect
) -> None:
    first, second = connect(), connect()
    made = subscribers.subscribe(first, acme.page_id, channel="EMAIL", destination="a@example.com")
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(
                subscribers.subscribe(
                    second, acme.page_id, channel="EMAIL", destination="A@EXAMPLE.com".lower()
                )
            )
            second.commit()
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(0.3)
    assert thread.is_alive(), "the second subscribe should wait for the first to commit"
    first.commit()
    thread.join(5)
    [renewed] = outcome
    assert isinstance(renewed, subscribers.Subscription)
    assert made.created
    assert not renewed.created
    assert renewed.subscriber.id == made.subscriber.id
    assert _count(conn) == 1
    # The last subscribe's tokens are the valid ones.
    assert made.verify_token is not None
    assert renewed.verify_token is not None
    with pytest.raises(Unauthorized):
        subscribers.verify(conn, made.verify_token)
    assert subscribers.verify(conn, renewed.verify_token).is_verified


# --- unsubscribe ------------------------------------------------------------------------------


def test_unsubscribe_by_token(conn: Conn, acme: TwoPages) -> None:
    sub = subscribers.subscribe(conn, acme.page_id, channel="EMAIL", destination="a@example.com")
    other = subscribers.subscribe(conn, acme.page_id, channel="EMAIL", destination="b@example.com")
    conn.commit()
    before = _stored(conn, sub.subscriber.id)
    for wrong in ["", "wrong", other.verify_token, sub.verify_token, None]:
        with pytest.raises(Unauthorized):
            subscribers.unsubscribe_by_token(conn, wrong)  # type: ignore[arg-type]
    assert _stored(conn, sub.subscriber.id) == before
    assert subscribers.get(conn, sub.subscriber.id).is_active
    assert subscribers.get(conn, other.subscriber.id).is_active

    gone = subscribers.unsubscribe_by_token(conn, sub.unsubscribe_token)
    assert gone.id == sub.subscriber.id
    assert not gone.is_active
    assert gone.verify_token_expires_at is None
    conn.commit()
    # A second click is harmless and changes nothing, not even updated_at.
    again = subscribers.unsubscribe_by_token(conn, sub.unsubscribe_token)
    assert again == gone
    # The pending verification died with the subscription.
    assert sub.verify_token is not None
    with pytest.raises(Unauthorized):
        subscribers.verify(conn, sub.verify_token)
    assert subscribers.get(conn, other.subscriber.id).is_active


def test_unsubscribe_by_id_keeps_the_row(conn: Conn, acme: TwoPages) -> None:
    sub = subscribers.subscribe(conn, acme.page_id, channel="WEBHOOK", destination="https://x.io/")
    gone = subscribers.unsubscribe(conn, sub.subscriber.id)
    assert not gone.is_active
    assert subscribers.unsubscribe(conn, sub.subscriber.id) == gone
    assert subscribers.get(conn, sub.subscriber.id) == gone
    with pytest.raises(NotFound):
        subscribers.unsubscribe(conn, "no-such-subscriber")


def test_there_is_no_way_to_unsubscribe_by_address() -> None:
    """Anyone can type an address; only an id (caller-authenticated), a token or a signed link
    unsubscribes."""
    ops = {
        name: value
        for name, value in vars(subscribers).items()
        if isinstance(value, Operation) and not name.startswith("_")
    }
    assert set(ops) == {
        "subscribe",
        "verify",
        "unsubscribe",
        "unsubscribe_by_token",
        "unsubscribe_by_link",
        "rotate_unsubscribe_token",
        "update_preferences",
        "get",
        "list_for_page",
        "count_for_page",
        "delete",
        "import_subscribers",
        "set_locale",  # 0033: by id, as update_preferences
    }
    for name, op in ops.items():
        if name != "subscribe":
            assert "destination" not in inspect.signature(op.body).parameters, name


def test_rotate_unsubscribe_token(conn: Conn, acme: TwoPages) -> None:
    sub = subscribers.subscribe(conn, acme.page_id, channel="WEBHOOK", destination="https://x.io/")
    token = subscribers.rotate_unsubscribe_token(conn, sub.subscriber.id)
    with pytest.raises(Unauthorized):
        subscribers.unsubscribe_by_token(conn, sub.unsubscribe_token)
    assert not subscribers.unsubscribe_by_token(conn, token).is_active
    with pytest.raises(NotFound):
        subscribers.rotate_unsubscribe_token(conn, "no-such-subscriber")


# --- preferences, listing, counting, deleting -------------------------------------------------


@pytest.mark.fresh_db
def test_update_preferences(conn: Conn, acme: TwoPages) -> None:
    sub = subscribers.subscribe(conn, acme.page_id, channel="WEBHOOK", destination="https://x.io/")
    conn.commit()
    changed = subscribers.update_preferences(conn, sub.subscriber.id, component_ids=[acme.api])
    assert changed.component_ids == (acme.api,)
    assert changed.notify_on == sub.subscriber.notify_on
    assert changed.updated_at > sub.subscriber.updated_at
    changed = subscribers.update_preferences(conn, sub.subscriber.id, notify_on=["maintenance"])
    assert changed.component_ids == (acme.api,)
    assert changed.notify_on == ("maintenance",)
    back_to_all = subscribers.update_preferences(conn, sub.subscriber.id, component_ids=[])
    assert back_to_all.component_ids == ()
    assert subscribers.update_preferences(conn, sub.subscriber.id) == back_to_all
    cases: list[tuple[dict[str, Any], str]] = [
        ({"component_ids": [acme.foreign]}, "component"),
        ({"notify_on": []}, "notify_on"),
        ({"notify_on": ["sometimes"]}, "notify_on"),
    ]
    for kwargs, message in cases:
        with pytest.raises(InvalidInput, match=message):
            subscribers.update_preferences(conn, sub.subscriber.id, **kwargs)
        conn.rollback()
    assert subscribers.get(conn, sub.subscriber.id).notify_on == sub.subscriber.notify_on
    with pytest.raises(NotFound):
        subscribers.update_preferences(conn, "no-such-subscriber", notify_on=["outage"])


def test_list_count_and_delete(conn: Conn, acme: TwoPages) -> None:
    made = [
        subscribers.subscribe(
            conn, acme.page_id, channel="WEBHOOK", destination=f"https://x.io/{i}"
        ).subscriber
        for i in range(5)
    ]
    email = subscribers.subscribe(conn, acme.page_id, channel="EMAIL", destination="a@x.io")
    subscribers.subscribe(conn, acme.other_page_id, channel="EMAIL", destination="a@x.io")
    subscribers.unsubscribe(conn, made[1].id)
    ids = [m.id for m in made] + [email.subscriber.id]

    seen: list[str] = []
    after: str | None = None
    while True:
        batch = subscribers.list_for_page(conn, acme.page_id, limit=2, after=after)
        if not batch:
            break
        seen += [b.id for b in batch]
        after = batch[-1].id
    assert seen == sorted(ids)  # id order (time-ordered ids), every row once
    active = subscribers.list_for_page(conn, acme.page_id, active_only=True, limit=1000)
    assert [a.id for a in active] == sorted(i for i in ids if i != made[1].id)
    assert subscribers.list_for_page(conn, "no-such-page") == []
    with pytest.raises(InvalidInput, match="limit"):
        subscribers.list_for_page(conn, acme.page_id, limit=0)

    counts = subscribers.count_for_page(conn, acme.page_id)
    assert counts == subscribers.SubscriberCounts(total=6, active=5, verified=4)
    assert subscribers.count_for_page(conn, "no-such-page") == subscribers.SubscriberCounts(0, 0, 0)

    subscribers.delete(conn, made[0].id)
    with pytest.raises(NotFound):
        subscribers.get(conn, made[0].id)
    with pytest.raises(NotFound):
        subscribers.delete(conn, made[0].id)
    assert subscribers.count_for_page(conn, acme.page_id).total == 5


@pytest.mark.fresh_db
def test_list_uses_the_page_id_index(conn: Conn, acme: TwoPages) -> None:
    conn.execute("SET LOCAL enable_seqscan = off")
    plan = conn.execute(
        "EXPLAIN SELECT id FROM status_subscriber WHERE status_page_id = 'p' AND id > ''"
        " ORDER BY id LIMIT 10"
    ).fetchall()
    text = "\n".join(line for (line,) in plan)
    assert "status_subscriber_status_page_id_id_idx" in text
    assert "Sort" not in text


async def test_async_subscribe_verify_unsubscribe(aconn: AConn, acme: TwoPages) -> None:
    sub = await subscribers.subscribe(
        aconn, acme.page_id, channel="EMAIL", destination="Async@Example.com"
    )
    assert sub.subscriber.destination == "Async@example.com"
    assert sub.verify_token is not None
    assert (await subscribers.verify(aconn, sub.verify_token)).is_verified
    with pytest.raises(Unauthorized, match="already used"):
        await subscribers.verify(aconn, sub.verify_token)
    changed = await subscribers.update_preferences(aconn, sub.subscriber.id, notify_on=["outage"])
    assert changed.notify_on == ("outage",)
    listed = await subscribers.list_for_page(aconn, acme.page_id)
    assert [x.id for x in listed] == [sub.subscriber.id]
    gone = await subscribers.unsubscribe_by_token(aconn, sub.unsubscribe_token)
    assert not gone.is_active
    counts = await subscribers.count_for_page(aconn, acme.page_id)
    assert counts == subscribers.SubscriberCounts(1, 0, 0)


# --- import -----------------------------------------------------------------------------------


def _import_rows(acme: TwoPages) -> list[ImportRow]:
    return [
        ImportRow("EMAIL", "good@example.com"),  # 1
        ImportRow("WEBHOOK", "https://hooks.example.com/a", component_ids=[acme.api]),  # 2
        ImportRow("EMAIL", "not-an-address"),  # 3
        ImportRow("EMAIL", "GOOD@EXAMPLE.com"),  # 4: another mailbox (local part differs)
        ImportRow("EMAIL", " good@Example.COM"),  # 5: duplicate of row 1 once normalized
        ImportRow("EMAIL", "ghost@example.com", component_ids=["no-such-component"]),  # 6
        ImportRow("EMAIL", "foreign@example.com", component_ids=[acme.foreign]),  # 7
        ImportRow("EMAIL", "foreign@example.com"),  # 8: first valid row of this address
        ImportRow("EMAIL", "nul\x00@example.com"),  # 9
        ImportRow("EMAIL", "nulcomp@example.com", component_ids=["a\x00b"]),  # 10
        ImportRow("EMAIL", "active@example.com"),  # 11: already subscribed
        ImportRow("EMAIL", "gone@example.com"),  # 12: unsubscribed earlier
        ImportRow("SLACK", "http://hooks.slack.com/x"),  # 13
        ImportRow("EMAIL", "events@example.com", notify_on=[]),  # 14
        ImportRow("FAX", "+15555550100"),  # type: ignore[arg-type]  # 15
        ImportRow("SLACK", "https://hooks.slack.com/services/T/B/C", notify_on=["outage"]),  # 16
        ImportRow("EMAIL", "vip@example.com", verified=False),  # 17
    ]


def _check_import_report(report: subscribers.ImportReport) -> None:
    assert report.accepted == 6  # rows 1, 2, 4, 8, 16, 17
    reasons = {r.row_number: r.reason for r in report.refused}
    assert [r.row_number for r in report.refused] == [3, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15]
    assert "'@' is missing" in reasons[3]
    assert reasons[5] == "duplicate of row 1"
    assert "no-such-component is not a component of this status page" in reasons[6]
    assert "is not a component of this status page" in reasons[7]
    assert "NUL" in reasons[9]
    assert "NUL" in reasons[10]
    assert reasons[11] == "already subscribed to this page"
    assert "unsubscribed from this page earlier" in reasons[12]
    assert "https://" in reasons[13]
    assert "notify_on" in reasons[14]
    assert "channel" in reasons[15]
    by_row = {r.row_number: r.destination for r in report.refused}
    assert by_row[5] == "good@example.com"  # normalized by the database step
    assert by_row[9] == "nul\x00@example.com"  # as given by the Python step


def _prepare_existing(conn: Conn, acme: TwoPages) -> None:
    subscribers.subscribe(conn, acme.page_id, channel="EMAIL", destination="active@example.com")
    gone = subscribers.subscribe(
        conn, acme.page_id, channel="EMAIL", destination="gone@example.com"
    )
    subscribers.unsubscribe(conn, gone.subscriber.id)
    conn.commit()


def test_import_reports_refusals_and_inserts_the_rest(conn: Conn, acme: TwoPages) -> None:
    _prepare_existing(conn, acme)
    report = subscribers.import_subscribers(conn, acme.page_id, _import_rows(acme))
    _check_import_report(report)
    rows = {x.destination: x for x in subscribers.list_for_page(conn, acme.page_id, limit=1000)}
    assert set(rows) == {
        "active@example.com",
        "gone@example.com",
        "good@example.com",
        "GOOD@example.com",
        "foreign@example.com",
        "https://hooks.example.com/a",
        "https://hooks.slack.com/services/T/B/C",
        "vip@example.com",
    }
    assert not rows["gone@example.com"].is_active  # never re-subscribed by an import
    assert rows["https://hooks.example.com/a"].component_ids == (acme.api,)
    assert rows["https://hooks.slack.com/services/T/B/C"].notify_on == ("outage",)
    # Without trust_verified, imported addresses are unverified and have no token to verify.
    imported_email = rows["good@example.com"]
    assert not imported_email.is_verified
    assert imported_email.verify_token_expires_at is None
    assert _stored(conn, imported_email.id)["unsubscribe_token_hash"] is None
    assert rows["https://hooks.slack.com/services/T/B/C"].is_verified
    # Subscribing again is how an imported address gets verified.
    renewed = subscribers.subscribe(
        conn, acme.page_id, channel="EMAIL", destination="good@example.com"
    )
    assert not renewed.created
    assert renewed.verify_token is not None
    assert subscribers.verify(conn, renewed.verify_token).is_verified


def test_import_with_trust_verified(conn: Conn, acme: TwoPages) -> None:
    report = subscribers.import_subscribers(
        conn,
        acme.page_id,
        [ImportRow("EMAIL", "a@example.com"), ImportRow("EMAIL", "b@example.com", verified=False)],
        trust_verified=True,
    )
    assert report == subscribers.ImportReport(2, [])
    rows = {x.destination: x for x in subscribers.list_for_page(conn, acme.page_id)}
    assert rows["a@example.com"].is_verified
    assert not rows["b@example.com"].is_verified
    # Importing the same list again changes nothing and says why.
    again = subscribers.import_subscribers(
        conn, acme.page_id, [ImportRow("EMAIL", "a@example.com")], trust_verified=True
    )
    assert again == subscribers.ImportReport(
        0, [RefusedRow(1, "a@example.com", "already subscribed to this page")]
    )


def test_import_sends_component_ids_of_any_spelling_intact(conn: Conn, acme: TwoPages) -> None:
    """The import sends its arrays as text[] literals (issue 20): ids with quotes, backslashes,
    commas, braces, tabs or spelled NULL reach the database as they are (each is refused as
    not a component, naming the id), and real ids and empty lists still land."""
    odd = ['x"y', "a\\b", "NULL", "c,d", "{e}", "tab\there", "new\nline", "\\N", "é"]
    rows = [
        ImportRow("EMAIL", f"odd{n}@example.com", component_ids=[acme.api, value])
        for n, value in enumerate(odd)
    ]
    rows.append(ImportRow("EMAIL", "fine@example.com", component_ids=[acme.api, acme.web]))
    rows.append(ImportRow("EMAIL", "all@example.com", notify_on=["outage", "degraded"]))
    report = subscribers.import_subscribers(conn, acme.page_id, rows)
    assert report.accepted == 2
    assert [(r.row_number, r.reason) for r in report.refused] == [
        (n + 1, f"component_ids: {value} is not a component of this status page")
        for n, value in enumerate(odd)
    ]
    stored = {x.destination: x for x in subscribers.list_for_page(conn, acme.page_id)}
    assert stored["fine@example.com"].component_ids == (acme.api, acme.web)
    assert stored["all@example.com"].component_ids == ()
    assert stored["all@example.com"].notify_on == ("degraded", "outage")


async def test_import_async(aconn: AConn, conn: Conn, acme: TwoPages) -> None:
    _prepare_existing(conn, acme)
    report = await subscribers.import_subscribers(aconn, acme.page_id, _import_rows(acme))
    _check_import_report(report)
    await aconn.commit()
    assert subscribers.count_for_page(conn, acme.page_id).total == 8


def test_import_that_fails_writes_nothing(conn: Conn, acme: TwoPages) -> None:
    subscribers.subscribe(conn, acme.page_id, channel="EMAIL", destination="mine@example.com")

    def broken_source() -> Iterator[ImportRow]:
        for i in range(50):
            yield ImportRow("EMAIL", f"user{i}@example.com")
        raise RuntimeError("the CSV file is truncated")

    with pytest.raises(RuntimeError, match="truncated"):
        subscribers.import_subscribers(conn, acme.page_id, broken_source())
    not_rows: list[Any] = [ImportRow("EMAIL", "x@example.com"), {"channel": "EMAIL"}]
    with pytest.raises(InvalidInput, match="row 2 is a dict"):
        subscribers.import_subscribers(conn, acme.page_id, not_rows)
    with pytest.raises(NotFound, match="status page"):
        subscribers.import_subscribers(conn, "no-such-page", [ImportRow("EMAIL", "x@x.io")])
    # Only the caller's own earlier work is there, and the transaction is still usable.
    assert [x.destination for x in subscribers.list_for_page(conn, acme.page_id)] == [
        "mine@example.com"
    ]
    # The staging table went with the failed attempts; imports still work in this transaction,
    # twice in a row too.
    for _ in range(2):
        assert subscribers.import_subscribers(conn, acme.page_id, []).accepted == 0
    ok = subscribers.import_subscribers(conn, acme.page_id, [ImportRow("EMAIL", "x@example.com")])
    assert ok.accepted == 1
    conn.commit()
    assert conn.execute("SELECT to_regclass('pg_temp.statusdb_subscriber_import')").fetchone() == (
        None,
    )


def test_import_on_an_autocommit_connection(connect: Connect, acme: TwoPages) -> None:
    auto = connect(autocommit=True)
    rows = [ImportRow("WEBHOOK", f"https://x.io/{i}") for i in range(2000)]
    rows.append(ImportRow("WEBHOOK", "https://x.io/7"))
    report = subscribers.import_subscribers(auto, acme.page_id, iter(rows))
    assert report.accepted == 2000
    assert report.refused == [RefusedRow(2001, "https://x.io/7", "duplicate of row 8")]
    other = connect()
    assert subscribers.count_for_page(other, acme.page_id).total == 2000


# --- migration --------------------------------------------------------------------------------


def test_migration_0005_backfills_and_rolls_back(empty_dsn: str, tmp_path: Path) -> None:
    """0005 on a 0002 database with data, then its rollback, then again."""
    source = migrations_dir()
    only = tmp_path / "migrations"
    only.mkdir()
    for stem in ("0001_platform_core", "0002_status_pages", "0005_subscriber_tokens"):
        for suffix in (".sql", ".rollback.sql"):
            shutil.copy(source / f"{stem}{suffix}", only / f"{stem}{suffix}")
    (only / "0005_subscriber_tokens.sql").rename(tmp_path / "later.sql")
    (only / "0005_subscriber_tokens.rollback.sql").rename(tmp_path / "later.rollback.sql")
    migrations.apply(empty_dsn, directory=only)
    with psycopg.connect(empty_dsn) as c:
        c.execute(
            "INSERT INTO team (id, name) VALUES ('t', 'T');"
            "INSERT INTO status_page (id, name, slug, is_public, team_id, created_by_id)"
            " VALUES ('p', 'P', 'p', true, 't', 'u');"
        )
        c.execute(
            "INSERT INTO status_subscriber (id, status_page_id, channel, destination,"
            " is_verified, verify_token_hash) VALUES"
            " ('pending', 'p', 'EMAIL', 'a@x.io', false, %s),"
            " ('verified', 'p', 'EMAIL', 'b@x.io', true, %s)",
            (tokens.digest("one"), tokens.digest("two")),
        )
    (tmp_path / "later.sql").rename(only / "0005_subscriber_tokens.sql")
    (tmp_path / "later.rollback.sql").rename(only / "0005_subscriber_tokens.rollback.sql")
    assert migrations.apply(empty_dsn, directory=only) == ["0005_subscriber_tokens"]

    def state() -> list[tuple[Any, ...]]:
        with psycopg.connect(empty_dsn) as c:
            return c.execute(
                "SELECT id, verify_token_hash IS NOT NULL,"
                " verify_token_expires_at > now() + interval '23 hours'"
                " FROM status_subscriber ORDER BY id"
            ).fetchall()

    assert state() == [("pending", True, True), ("verified", False, None)]
    with psycopg.connect(empty_dsn) as c:
        assert subscribers.verify(c, "one").id == "pending"
    assert migrations.rollback(empty_dsn, 1, directory=only, allow_data_loss=True) == [
        "0005_subscriber_tokens"
    ]
    with psycopg.connect(empty_dsn) as c:
        columns = c.execute(
            "SELECT count(*) FROM information_schema.columns"
            " WHERE table_name = 'status_subscriber'"
            " AND column_name IN ('verify_token_expires_at', 'unsubscribe_token_hash',"
            " 'updated_at')"
        ).fetchone()
    assert columns == (0,)
    assert migrations.apply(empty_dsn, directory=only) == ["0005_subscriber_tokens"]
