"""A leaked dump (or backup) as a credential: token digests copied from it open nothing.

The database stores SHA-256 digests of page access, verification and unsubscribe tokens. Whoever
holds a dump has the digests; they must not work in place of the tokens, with any role.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import psycopg
import pytest
from factories import ensure_login
from psycopg import errors as pg_errors
from psycopg.conninfo import make_conninfo
from psycopg.rows import TupleRow

from statusdb import pages, subscribers, teams, views
from statusdb.domain import tokens
from statusdb.errors import Unauthorized
from statusdb.tooling.localpg import LocalCluster

Conn = psycopg.Connection[TupleRow]

READER_LOGIN = "statusdb_s11_reader"


@pytest.fixture
def reader(dsn: str, cluster: LocalCluster) -> Iterator[Conn]:
    ensure_login(cluster, READER_LOGIN, "statusdb_reader")
    with psycopg.connect(make_conninfo(dsn, user=READER_LOGIN), autocommit=True) as connection:
        yield connection


@pytest.fixture
def private_page(conn: Conn) -> str:
    team = teams.create(conn, name="T")
    created = pages.create(
        conn, team_id=team.id, name="Secret", slug="secret", created_by_id="u", is_public=False
    )
    assert created.access_token is not None
    conn.commit()
    return created.access_token


def sha256_of(value: bytes) -> bytes:
    return hashlib.sha256(value).digest()


def _dumped_digest(conn: Conn) -> bytes:
    """What a dump holds for the page: its access_token_hash."""
    row = conn.execute("SELECT access_token_hash FROM status_page WHERE slug = 'secret'").fetchone()
    assert row is not None
    digest: bytes = row[0]
    return digest


def test_reader_cannot_open_a_private_page_with_a_digest_from_a_dump(
    reader: Conn, conn: Conn, private_page: str
) -> None:
    """A reader login calls statusdb_page_view with the token digest copied from a dump."""
    digest = _dumped_digest(conn)
    for presented in (digest, digest.hex().encode(), sha256_of(digest)):
        row = reader.execute(
            "SELECT count(*) FROM statusdb_page_view('secret', %s, NULL, NULL)", (presented,)
        ).fetchone()
        assert row == (0,), f"a value derived from the dump opened the page: {presented!r}"
    # Through the Python API, the digest is just a wrong token.
    assert views.page_view(reader, "secret", token=digest.hex()) is None
    # The dump does not hold the digest a caller presents: only its own digest.
    assert digest != tokens.digest(private_page)
    # The token still opens it: from SQL its digest (the server never sees the token), and
    # from Python the token.
    assert reader.execute(
        "SELECT count(*) FROM statusdb_page_view('secret', %s, NULL, NULL)",
        (tokens.digest(private_page),),
    ).fetchone() == (1,)
    view = views.page_view(reader, "secret", token=private_page)
    assert view is not None
    assert view.page.slug == "secret"


def test_subscriber_digests_from_a_dump_verify_and_unsubscribe_nobody(
    reader: Conn, conn: Conn
) -> None:
    """The holder of a dump presents a subscriber's token digest as the token."""
    team = teams.create(conn, name="T")
    page = pages.create(
        conn, team_id=team.id, name="P", slug="p", created_by_id="u", is_public=True
    )
    sub = subscribers.subscribe(conn, page.page.id, channel="EMAIL", destination="a@example.com")
    conn.commit()
    verify_digest, unsubscribe_digest = conn.execute(
        "SELECT verify_token_hash, unsubscribe_token_hash FROM status_subscriber"
    ).fetchone() or (b"", b"")
    for digest in (verify_digest, unsubscribe_digest):
        for presented in (digest.hex(), bytes(digest).decode("latin-1")):
            with pytest.raises(Unauthorized):
                subscribers.verify(conn, presented)
            with pytest.raises(Unauthorized):
                subscribers.unsubscribe_by_token(conn, presented)
    # The reader cannot even see the digests (nor anything else of the subscribers).
    with pytest.raises(pg_errors.InsufficientPrivilege):
        reader.execute("SELECT verify_token_hash FROM status_subscriber")
    assert subscribers.get(conn, sub.subscriber.id).is_active
