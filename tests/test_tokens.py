"""Secret tokens (page access, verification, unsubscribe) never reach the database in clear.

They are made and hashed in Python (`statusdb.domain.tokens`), only their SHA-256 digests are
sent and stored, no row class or view hands a digest back, and the server never sees a token, so it
cannot log one either.
"""

from __future__ import annotations

import hashlib
import importlib
import pkgutil
from typing import Any

import attrs
import psycopg
from psycopg import sql
from psycopg.rows import TupleRow

import statusdb
from statusdb import pages, subscribers, teams, views
from statusdb.domain import tokens
from statusdb.pages import NewComponent
from statusdb.tooling.localpg import LocalCluster

Conn = psycopg.Connection[TupleRow]


def every_stored_value(conn: Conn) -> str:
    """All rows of all tables in schema public, as text (bytea as hex, arrays, JSON)."""
    tables = conn.execute(
        """SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') ORDER BY 1"""
    ).fetchall()
    parts: list[str] = []
    for (table,) in tables:
        rows = conn.execute(
            sql.SQL("SELECT to_jsonb(t)::text FROM {} t").format(sql.Identifier(table))
        ).fetchall()
        parts.extend(row[0] for row in rows)
    return "\n".join(parts)


def make_secrets(conn: Conn) -> tuple[list[str], list[str]]:
    """Exercise every token-making operation; returns (live tokens, all tokens ever made)."""
    team = teams.create(conn, name="SRE")
    created = pages.create(
        conn,
        team_id=team.id,
        name="Private",
        slug="private",
        created_by_id="u",
        is_public=False,
        components=[NewComponent(name="API", team_id=team.id)],
    )
    assert created.access_token is not None
    rotated = pages.rotate_access_token(conn, created.page.id)
    pages.set_visibility(conn, created.page.id, is_public=True)
    _, made_private = pages.set_visibility(conn, created.page.id, is_public=False)
    assert made_private is not None
    email = subscribers.subscribe(
        conn, created.page.id, channel="EMAIL", destination="ops@example.com"
    )
    assert email.verify_token is not None
    subscribers.verify(conn, email.verify_token)
    pending = subscribers.subscribe(
        conn, created.page.id, channel="EMAIL", destination="new@example.com"
    )
    assert pending.verify_token is not None
    webhook = subscribers.subscribe(
        conn, created.page.id, channel="WEBHOOK", destination="https://hooks.example/x"
    )
    rotated_unsubscribe = subscribers.rotate_unsubscribe_token(conn, webhook.subscriber.id)
    conn.commit()
    live = [made_private, pending.verify_token, rotated_unsubscribe, email.unsubscribe_token]
    ever = [
        created.access_token,
        rotated,
        email.verify_token,
        pending.unsubscribe_token,
        webhook.unsubscribe_token,
        *live,
    ]
    return live, ever


def test_no_raw_token_is_stored_anywhere(conn: Conn) -> None:
    live, ever = make_secrets(conn)
    stored = every_stored_value(conn)
    for token in ever:
        assert token not in stored
        assert token.encode().hex() not in stored  # not as bytea either
    # The scan does see bytea: the live tokens' digests are there (for the page's token, the
    # digest of its digest: 0014).
    page_token, *others = live
    assert tokens.page_digest(page_token).hex() in stored
    for token in others:
        assert hashlib.sha256(token.encode()).hexdigest() in stored


def test_the_server_never_sees_a_token(conn: Conn, cluster: LocalCluster) -> None:
    """With every statement and its parameters logged, no token shows up in the server log."""
    offset = cluster.log_file.stat().st_size
    conn.execute("SET log_statement = 'all'")
    live, ever = make_secrets(conn)
    page = views.page_view(conn, "private", token=live[0])
    assert page is not None
    conn.execute("RESET log_statement")
    conn.commit()
    with cluster.log_file.open("rb") as log:
        log.seek(offset)
        logged = log.read().decode("utf-8", "replace")
    assert "INSERT INTO status_page" in logged  # statements were logged ...
    assert hashlib.sha256(live[0].encode()).hexdigest() in logged  # ... with their parameters
    for token in ever:
        assert token not in logged


#: Machinery, not data: a Query holds its statement as bytes.
INFRASTRUCTURE = {"queries", "executor"}


def _row_classes() -> list[type]:
    classes: list[type] = []
    for info in pkgutil.iter_modules(statusdb.__path__):
        if info.name in INFRASTRUCTURE:
            continue
        module = importlib.import_module(f"statusdb.{info.name}")
        for value in vars(module).values():
            if isinstance(value, type) and attrs.has(value) and value.__module__ == module.__name__:
                classes.append(value)
    return classes


def test_no_row_class_exposes_a_digest() -> None:
    classes = _row_classes()
    assert len(classes) > 10
    for cls in classes:
        for field in attrs.fields(cls):
            kind: Any = field.type
            assert "hash" not in field.name, (cls, field.name)
            assert "digest" not in field.name, (cls, field.name)
            if (cls.__name__, field.name) == ("PageBytes", "body"):
                continue  # the rendered page document itself (views.page_view_bytes), no digest
            assert "bytes" not in str(kind), (cls, field.name, kind)


def test_no_view_or_page_view_column_is_a_digest(conn: Conn) -> None:
    rows = conn.execute(
        """SELECT c.table_name, c.column_name FROM information_schema.columns c
           JOIN information_schema.tables t USING (table_schema, table_name)
           WHERE c.table_schema = 'public' AND t.table_type = 'VIEW'
             AND (c.column_name LIKE '%%hash%%' OR c.data_type = 'bytea')
             -- 0039: sha256 of a public page's slug, no token's digest (tests/security/s40)
             AND (c.table_name, c.column_name) <> ('statusdb_page_public_version', 'slug_key')
           UNION ALL
           SELECT 'statusdb_page_view', a
           FROM pg_proc p, unnest(p.proargnames, p.proargmodes::text[]) AS u (a, mode)
           WHERE p.proname = 'statusdb_page_view' AND mode = 't'
             AND (a LIKE '%%hash%%' OR a LIKE '%%token%%')"""
    ).fetchall()
    assert rows == []


def test_tokens_match_only_their_digest() -> None:
    token = tokens.new_token()
    assert len(token) >= 43
    assert tokens.new_token() != token
    assert tokens.matches(token, tokens.digest(token))
    assert not tokens.matches(token + "x", tokens.digest(token))
    assert not tokens.matches(None, tokens.digest(token))
    assert not tokens.matches(token, None)
