"""Attack class: the reader's plain SELECT of page versions (0039) as a way to list private
pages, probe their slugs, or watch when they change.

statusdb_page_public_version is the only relation the reader role may select. It must show
public pages only, by a key that is not the slug; a private page's key must find nothing and
look exactly like an unknown key (EXPLAIN ANALYZE included); a function of the reader's own
(a temporary one) must not see the private rows the view filters out; a write to a private page
must not show in it; and nobody writes through it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import errors as pg_errors
from psycopg.conninfo import make_conninfo
from psycopg.rows import TupleRow
from test_page_view_bytes import make_page

from statusdb import views

Conn = psycopg.Connection[TupleRow]
VIEW = "statusdb_page_public_version"


def key(slug: str) -> bytes:
    return hashlib.sha256(slug.encode()).digest()


@pytest.fixture
def reader(dsn: str, reader_login: str) -> Iterator[Conn]:
    with psycopg.connect(make_conninfo(dsn, user=reader_login), autocommit=True) as connection:
        yield connection


@pytest.fixture
def app(dsn: str, app_login: str) -> Iterator[Conn]:
    with psycopg.connect(make_conninfo(dsn, user=app_login), autocommit=True) as connection:
        yield connection


@pytest.fixture
def two_pages(dsn: str) -> tuple[str, str, str, str]:
    """(public page id, its slug, private page id, its slug), committed."""
    with psycopg.connect(dsn) as owner:
        public_id, public, _ = make_page(owner, is_public=True)
        private_id, private, _ = make_page(owner, is_public=False)
    return public_id, public, private_id, private


def test_the_view_lists_public_pages_by_key_only(
    reader: Conn, dsn: str, two_pages: tuple[str, str, str, str]
) -> None:
    _, public, _, private = two_pages
    cur = reader.execute(f"SELECT * FROM {VIEW}")
    assert [c.name for c in cur.description or ()] == ["slug_key", "version", "scheduled_starts"]
    keys = {bytes(row[0]) for row in cur.fetchall()}
    assert key(public) in keys
    assert key(private) not in keys
    with psycopg.connect(dsn) as owner:
        public_slugs = [s for (s,) in owner.execute("SELECT slug FROM status_page WHERE is_public")]
        private_versions = {
            v
            for (v,) in owner.execute(
                "SELECT version FROM status_page_snapshot WHERE NOT is_public"
            )
        }
    assert keys == {key(s) for s in public_slugs}
    versions = {v for (v,) in reader.execute(f"SELECT version FROM {VIEW}")}
    assert not versions & private_versions
    # The table behind it stays closed.
    with pytest.raises(pg_errors.InsufficientPrivilege):
        reader.execute("SELECT version FROM status_page_snapshot LIMIT 1")


def _explain(conn: Conn, slug_key: bytes) -> Any:
    (plan,) = conn.execute(
        "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF, SUMMARY OFF, FORMAT JSON)"
        f" SELECT version FROM {VIEW} WHERE slug_key = %s",
        (slug_key,),
    ).fetchone() or (None,)
    return json.loads(json.dumps(plan).replace(slug_key.hex(), "KEY"))  # the key itself apart


def test_a_private_pages_key_looks_like_an_unknown_key(
    reader: Conn, two_pages: tuple[str, str, str, str]
) -> None:
    """Not even EXPLAIN ANALYZE tells them apart: the private row is not in the index the
    lookup uses (with a filter on is_public after the lookup, "Rows Removed by Filter: 1")."""
    _, public, _, private = two_pages
    assert (
        reader.execute(f"SELECT 1 FROM {VIEW} WHERE slug_key = %s", (key(private),)).fetchall()
        == []
    )
    reader.execute("SET enable_seqscan = off")  # a few rows: the plan of a full table
    found = _explain(reader, key(public))
    assert found[0]["Plan"]["Actual Rows"] == 1, found
    for _attempt in range(3):  # the buffer counts of a first read may include a catalog miss
        closed, unknown = _explain(reader, key(private)), _explain(reader, key(public + "-no"))
        if closed == unknown:
            break
    assert closed == unknown, json.dumps([closed, unknown])
    assert "Rows Removed by Filter" not in json.dumps(closed)


def test_a_function_of_the_readers_own_sees_no_private_row(
    reader: Conn, two_pages: tuple[str, str, str, str], dsn: str
) -> None:
    """A cheap leaky temporary function in the reader's WHERE runs after the view's filter
    (security_barrier), even on a sequential scan: it never sees a private page's row."""
    _, _public, private_id, _ = two_pages
    try:
        reader.execute(
            """CREATE FUNCTION pg_temp.leak(k bytea, v bigint) RETURNS boolean
               LANGUAGE plpgsql COST 0.0000001 AS
               $$ BEGIN RAISE NOTICE 'leak %', v; RETURN true; END $$"""
        )
    except pg_errors.InsufficientPrivilege:
        pytest.skip("the reader may not create temporary objects here")
    seen: list[str] = []
    reader.add_notice_handler(lambda d: seen.append(d.message_primary or ""))
    with psycopg.connect(dsn) as owner:
        (private_version,) = owner.execute(
            "SELECT version FROM status_page_snapshot WHERE page_id = %s", (private_id,)
        ).fetchone() or (None,)
    for setting in ("enable_indexscan", "enable_bitmapscan"):
        reader.execute(f"SET {setting} = off")
    rows = reader.execute(
        f"SELECT version FROM {VIEW} WHERE pg_temp.leak(slug_key, version)"
    ).fetchall()
    assert rows
    assert seen
    assert f"leak {private_version}" not in seen, seen
    assert len(seen) == len(rows)  # called for the public rows only


def test_a_private_pages_writes_do_not_show(
    reader: Conn, dsn: str, two_pages: tuple[str, str, str, str]
) -> None:
    """No row of the view moves when a private page changes (nothing to time its changes by),
    and a page made private leaves it in the commit that makes it private."""
    public_id, public, private_id, _private = two_pages
    before = reader.execute(f"SELECT * FROM {VIEW} ORDER BY slug_key").fetchall()
    with psycopg.connect(dsn) as owner:
        owner.execute("UPDATE status_page SET name = 'Changed' WHERE id = %s", (private_id,))
        owner.commit()
        assert reader.execute(f"SELECT * FROM {VIEW} ORDER BY slug_key").fetchall() == before
        owner.execute(
            "UPDATE status_page SET is_public = false,"
            " access_token_hash = sha256(sha256('t'::bytea)) WHERE id = %s",
            (public_id,),
        )
        # Not committed: the committed row shows; after the commit it is gone.
        assert reader.execute(
            f"SELECT 1 FROM {VIEW} WHERE slug_key = %s", (key(public),)
        ).fetchall() == [(1,)]
        owner.commit()
    assert (
        reader.execute(f"SELECT 1 FROM {VIEW} WHERE slug_key = %s", (key(public),)).fetchall() == []
    )
    assert views.page_view_bytes(reader, public, if_version=1) is None


def test_the_page_reads_keep_the_token_rule(
    reader: Conn, dsn: str, two_pages: tuple[str, str, str, str]
) -> None:
    _, _, private_id, private = two_pages
    with psycopg.connect(dsn) as owner:
        owner.execute(
            "UPDATE status_page SET access_token_hash = sha256(sha256('t'::bytea)) WHERE id = %s",
            (private_id,),
        )
        owner.commit()
        (version,) = owner.execute(
            "SELECT version FROM statusdb_page_view_bytes_v2(%s, sha256('t'::bytea), NULL, NULL)",
            (private,),
        ).fetchone() or (None,)
    token = hashlib.sha256(b"t").digest()
    assert views.page_view_bytes(reader, private, if_version=version) is None
    assert views.page_view_bytes(reader, private, token="wrong", if_version=version) is None
    # statusdb.views hashes the token itself: the raw digest below is what it sends.
    (row,) = reader.execute(
        "SELECT version, body IS NULL FROM statusdb_page_view_bytes_v2(%s, %s, NULL, NULL, %s)",
        (private, token, version),
    ).fetchall()
    assert row == (version, True)


@pytest.mark.parametrize(
    "statement",
    [
        f"INSERT INTO {VIEW} (version) VALUES (1)",
        f"UPDATE {VIEW} SET version = version + 1",
        f"DELETE FROM {VIEW}",
    ],
)
def test_nobody_writes_through_the_view(reader: Conn, app: Conn, statement: str) -> None:
    for conn in (reader, app):
        with pytest.raises(pg_errors.InsufficientPrivilege):
            conn.execute(statement.encode())
