"""The not-modified read of a public page as a plain SELECT (migration 0039).

`views.page_view_bytes(conn, slug, if_version=v)` without a token, on a connection outside a
transaction, sends a plain SELECT of statusdb_page_public_version instead of calling
statusdb_page_view_bytes_v2: its answers are the function's (version and fresh_until for every
horizon case, public and private pages, under a concurrent writer), a writer inside its own
transaction still gets the function (which renders its pending page first), and the statement
is one index lookup with no subplan and no function call.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from psycopg.rows import TupleRow
from test_index_use import all_scans
from test_page_view_bytes import CASES, make_page

from statusdb import views
from statusdb.errors import InvalidInput

Conn = psycopg.Connection[TupleRow]


@contextmanager
def statements(conn: Conn) -> Iterator[list[dict[str, Any]]]:
    """The plans (auto_explain, JSON) of every statement run on `conn` in the block."""
    plans: list[dict[str, Any]] = []

    def collect(diagnostic: psycopg.errors.Diagnostic) -> None:
        message = diagnostic.message_primary or ""
        if "plan:" in message:
            plans.append(json.loads(message.split("plan:", 1)[1]))

    conn.execute("LOAD 'auto_explain'")
    for setting, value in (
        ("auto_explain.log_min_duration", "0"),
        ("auto_explain.log_nested_statements", "on"),
        ("auto_explain.log_format", "json"),
        ("auto_explain.log_level", "notice"),
    ):
        conn.execute("SELECT set_config(%s, %s, false)", (setting, value))
    conn.add_notice_handler(collect)
    try:
        yield plans
    finally:
        conn.remove_notice_handler(collect)
        conn.execute("SELECT set_config('auto_explain.log_min_duration', '-1', false)")


def function_answer(conn: Conn, slug: str, token: str | None, **kwargs: Any) -> Any:
    """page_view_bytes through statusdb_page_view_bytes_v2 (in a transaction: never the lookup)."""
    with conn.transaction():
        return views.page_view_bytes(conn, slug, token=token, **kwargs)


def texts(plans: list[dict[str, Any]]) -> list[str]:
    return [p["Query Text"] for p in plans]


def test_the_lookup_answers_what_the_function_answers(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        _, slug, _ = make_page(conn, is_public=True)
        _, private, token = make_page(conn, is_public=False)
        for horizon, limit in CASES:
            kw: dict[str, Any] = {"maintenance_horizon": horizon, "maintenance_limit": limit}
            full = function_answer(conn, slug, None, **kw)
            assert isinstance(full, views.PageBytes)
            with statements(conn) as plans:
                same = views.page_view_bytes(conn, slug, if_version=full.version, **kw)
                older = views.page_view_bytes(conn, slug, if_version=full.version - 1, **kw)
                unknown = views.page_view_bytes(conn, slug + "-x", if_version=full.version, **kw)
                closed = views.page_view_bytes(conn, private, if_version=1, **kw)
            assert same == views.NotModified(full.version, full.fresh_until), (horizon, limit)
            assert same == function_answer(conn, slug, None, if_version=full.version, **kw)
            assert older == full  # changed: the body, from the function
            assert unknown is None
            assert closed is None  # a private page without its token: like an unknown slug
            assert closed == function_answer(conn, private, None, if_version=1, **kw)
            ran = texts(plans)
            # The not-modified, unknown and private reads: the lookup alone.
            assert sum("statusdb_page_public_version" in t for t in ran) == 4, ran
            assert sum("statusdb_page_view_bytes_v2" in t for t in ran) == 1, ran
        # With the token: the function (a public page opens with any token too).
        full = views.page_view_bytes(conn, private, token=token)
        assert isinstance(full, views.PageBytes)
        with statements(conn) as plans:
            again = views.page_view_bytes(conn, private, token=token, if_version=full.version)
        assert again == views.NotModified(full.version, full.fresh_until)
        assert not any("statusdb_page_public_version" in t for t in texts(plans))


async def test_the_async_lookup(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as setup:
        _, slug, _ = make_page(setup, is_public=True)
        full = views.page_view_bytes(setup, slug)
    assert isinstance(full, views.PageBytes)
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as aconn:
        for _ in range(8):  # past psycopg's prepare threshold
            again = await views.page_view_bytes(aconn, slug, if_version=full.version)
            assert again == views.NotModified(full.version, full.fresh_until)
        assert await views.page_view_bytes(aconn, slug + "-x", if_version=1) is None
        assert await views.page_view_bytes(aconn, slug, if_version=full.version - 1) == full


def test_a_writer_reads_its_own_pending_page(dsn: str) -> None:
    """Inside a transaction that wrote the page (rendered only at its commit, 0036) the read is
    the function's, which renders it first: never "not modified" with the committed version."""
    with psycopg.connect(dsn) as conn:  # not autocommit
        page_id, slug, _ = make_page(conn, is_public=True)
        before = views.page_view_bytes(conn, slug)
        assert isinstance(before, views.PageBytes)
        conn.commit()
        # Outside a transaction (IDLE): the lookup, then the connection is in a transaction.
        assert views.page_view_bytes(conn, slug, if_version=before.version) == views.NotModified(
            before.version, before.fresh_until
        )
        conn.execute("UPDATE status_page SET name = 'Pending' WHERE id = %s", (page_id,))
        mine = views.page_view_bytes(conn, slug, if_version=before.version)
        assert isinstance(mine, views.PageBytes)
        assert mine.version > before.version
        assert json.loads(mine.body)["name"] == "Pending"
        conn.commit()
        assert views.page_view_bytes(conn, slug, if_version=mine.version) == views.NotModified(
            mine.version, mine.fresh_until
        )
        conn.commit()
        # A page made private in the transaction: the writer's read sees it private at once.
        conn.execute(
            "UPDATE status_page SET is_public = false,"
            " access_token_hash = sha256(sha256('t'::bytea)) WHERE id = %s",
            (page_id,),
        )
        assert views.page_view_bytes(conn, slug, if_version=mine.version) is None
        conn.rollback()


def test_the_lookup_is_one_index_scan_without_subplan(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True, prepare_threshold=0) as conn:
        _, slug, _ = make_page(conn, is_public=True)
        full = views.page_view_bytes(conn, slug)
        assert isinstance(full, views.PageBytes)
        conn.execute("SET plan_cache_mode = force_generic_plan")  # the prepared statement's
        with statements(conn) as plans:
            for _ in range(3):
                assert isinstance(
                    views.page_view_bytes(conn, slug, if_version=full.version), views.NotModified
                )
        assert len(plans) == 3, texts(plans)  # no statement inside: no function ran
        for plan in plans:
            assert all_scans([plan]) == [
                ("Index Scan", "status_page_snapshot", "status_page_snapshot_public_slug_key_idx")
            ], plan
            # Limit, the security barrier's Subquery Scan (no scan of its own), the lookup.
            nodes, node = [], plan["Plan"]
            while True:
                nodes.append(node["Node Type"])
                if "Plans" not in node:
                    break
                assert len(node["Plans"]) == 1, plan
                node = node["Plans"][0]
            assert nodes == ["Limit", "Subquery Scan", "Index Scan"], plan
            text = json.dumps(plan)
            assert "SubPlan" not in text, plan
            assert "InitPlan" not in text, plan


def test_concurrent_writer_the_lookup_is_never_behind(dsn: str) -> None:
    """Under a writer changing the page: each not-modified answer names the version a full read
    just before returned, and a change is seen by the next conditional read."""
    with psycopg.connect(dsn, autocommit=True) as setup:
        page_id, slug, _ = make_page(setup, is_public=True)
        ids = [
            r[0]
            for r in setup.execute(
                "SELECT id FROM status_page_component WHERE status_page_id = %s", (page_id,)
            )
        ]
    stop = threading.Event()
    writes = 0

    def writer() -> None:
        nonlocal writes
        statuses = ["DEGRADED_PERFORMANCE", "PARTIAL_OUTAGE", "MAJOR_OUTAGE", "OPERATIONAL"]
        with psycopg.connect(dsn, autocommit=True) as w:
            while not stop.is_set() and writes < 300:
                w.execute(
                    "UPDATE status_page_component SET manual_status = %s WHERE id = %s",
                    (statuses[writes % 4], ids[writes % len(ids)]),
                )
                writes += 1

    thread = threading.Thread(target=writer)
    thread.start()
    not_modified = changed = 0
    try:
        with psycopg.connect(dsn, autocommit=True) as reader:
            for _ in range(150):
                full = views.page_view_bytes(reader, slug)
                assert isinstance(full, views.PageBytes)
                answer = views.page_view_bytes(reader, slug, if_version=full.version)
                if isinstance(answer, views.NotModified):
                    assert answer == views.NotModified(full.version, full.fresh_until)
                    not_modified += 1
                else:
                    assert isinstance(answer, views.PageBytes)
                    assert answer.version > full.version
                    changed += 1
                # After the writer's last commit seen here, the lookup has the same version.
                latest = function_answer(reader, slug, None)
                seen = views.page_view_bytes(reader, slug, if_version=latest.version)
                assert isinstance(seen, views.NotModified | views.PageBytes)
                assert seen.version >= latest.version
    finally:
        stop.set()
        thread.join()
    assert writes > 0, (writes, not_modified, changed)
    assert not_modified > 0, (writes, not_modified, changed)


@pytest.mark.parametrize("read", [lambda c, s, v: views.page_view_bytes(c, s, if_version=v)])
def test_the_cache_validates_hits_with_the_lookup(
    dsn: str, read: Callable[[Conn, str, int], Any]
) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        page_id, slug, _ = make_page(conn, is_public=True)
        cache = views.PageViewCache()
        first = cache.get(conn, slug)
        assert first == views.page_view(conn, slug)
        with statements(conn) as plans:
            assert cache.get(conn, slug) is first
        assert ["statusdb_page_public_version" in t for t in texts(plans)] == [True]
        conn.execute("UPDATE status_page SET name = 'Moved' WHERE id = %s", (page_id,))
        moved = cache.get(conn, slug)
        assert moved is not None
        assert moved.page.name == "Moved"
        assert moved == views.page_view(conn, slug)
        assert read(conn, slug, moved.version) == views.NotModified(
            moved.version, moved.fresh_until
        )


def test_the_default_conditional_read_is_the_lookup(dsn: str) -> None:
    """The common conditional read (default horizon and limit, no token, no locale) takes a
    short way on the client (views._week_params, remembered slug keys): its answers are the
    function's, one lookup each, its arguments checked as page_view_bytes checks them, and the
    slugs it remembers are bounded (views._SLUG_KEYS)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        _, slug, _ = make_page(conn, is_public=True)
        _, private, token = make_page(conn, is_public=False)
        full = function_answer(conn, slug, None)
        assert isinstance(full, views.PageBytes)
        with statements(conn) as plans:
            same = views.page_view_bytes(conn, slug, if_version=full.version)
            again = views.page_view_bytes(conn, slug, if_version=full.version)  # remembered
            older = views.page_view_bytes(conn, slug, if_version=full.version - 1)
            closed = views.page_view_bytes(conn, private, if_version=1)
            unknown = views.page_view_bytes(conn, "no-such-page-x", if_version=1)
            invalid = views.page_view_bytes(conn, "Not A Slug", if_version=1)
        assert same == again == views.NotModified(full.version, full.fresh_until)
        assert same == function_answer(conn, slug, None, if_version=full.version)
        assert full.fresh_until is not None  # the page's windows: a horizon case, not null
        assert older == full
        assert (closed, unknown, invalid) == (None, None, None)
        ran = texts(plans)
        assert sum("statusdb_page_public_version" in t for t in ran) == 5, ran
        assert sum("statusdb_page_view_bytes_v2" in t for t in ran) == 1, ran  # older's body
        for bad in ("1", 2**63, True, 1.0):
            with pytest.raises(InvalidInput):
                views.page_view_bytes(conn, slug, if_version=bad)  # type: ignore[arg-type]
        assert views.page_view_bytes(conn, private, token=token, if_version=1) is not None
        for n in range(views._SLUG_KEYS_MAX + 10):  # as many slugs' lookups
            views._slug_key(f"x-{n}")
        assert 0 < len(views._SLUG_KEYS) <= views._SLUG_KEYS_MAX
        assert views.page_view_bytes(conn, slug, if_version=full.version) == same
