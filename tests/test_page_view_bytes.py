"""The page view as bytes (views.page_view_bytes, migration 0028) and its not-modified read.

The body is the snapshot's JSON texts in one document: compared byte for byte with the columns
statusdb_page_view returns, and decoded to exactly what views.page_view returns, for public and
private pages, with every maintenance horizon case (all shown, some, limit, none), under
concurrent writers, as the reader role; the not-modified read is one index lookup, no subplan.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import threading
import uuid
from typing import Any

import psycopg
import pytest
from factories import READER_LOGIN
from psycopg.conninfo import make_conninfo
from psycopg.rows import TupleRow
from test_index_use import all_scans, nested_plans

from statusdb import errors, pages, status_incidents, teams, views
from statusdb.domain import tokens
from statusdb.pages import NewComponent

Conn = psycopg.Connection[TupleRow]
HOUR = dt.timedelta(hours=1)


def make_page(conn: Conn, *, is_public: bool) -> tuple[str, str, str | None]:
    """A committed page with components, an active incident and four maintenance windows:
    (page id, slug, token)."""
    slug = f"bytes-{uuid.uuid4().hex[:10]}"
    team = teams.create(conn, name=f"Team {slug}")
    created = pages.create(
        conn,
        team_id=team.id,
        name='Bytes \u00e9t\u00e9 "quoted"',
        slug=slug,
        description="line\nbreak",
        created_by_id="u1",
        is_public=is_public,
        components=[NewComponent(name=f"C{n:02d}") for n in range(5)],
    )
    page_id = created.page.id
    status_incidents.create(conn, page_id, title="Down", severity="MAJOR", message="look")
    conn.execute(
        """INSERT INTO maintenance_window (id, status_page_id, title, start_time, end_time,
                                          created_by_id)
           VALUES (%(p)s || '-soon', %(p)s, 'Soon', now() + interval '30 minutes',
                   now() + interval '2 hours', 'u'),
                  (%(p)s || '-later', %(p)s, 'Later', now() + interval '3 hours',
                   now() + interval '4 hours', 'u'),
                  (%(p)s || '-far', %(p)s, 'Far', now() + interval '30 days',
                   now() + interval '31 days', 'u'),
                  (%(p)s || '-running', %(p)s, 'Running', now() + interval '5 hours',
                   now() + interval '40 days', 'u')""",
        {"p": page_id},
    )
    # In progress, with a start beyond short horizons: the filter is not a prefix.
    conn.execute(
        "UPDATE maintenance_window SET status = 'IN_PROGRESS' WHERE id = %s",
        (f"{page_id}-running",),
    )
    conn.commit()
    return page_id, slug, created.access_token


def source(conn: Conn, slug: str, token: str | None, horizon: dt.timedelta, limit: int) -> Any:
    """statusdb_page_view_v2's row, its JSON columns as the text it sends."""
    return conn.execute(
        """SELECT v.version, v.fresh_until, to_json(v.id)::text, to_json(v.name)::text,
                  coalesce(to_json(v.description)::text, 'null'), to_json(v.slug)::text,
                  to_json(v.is_public)::text, v.updated_at, v.components::text,
                  v.incidents::text, v.maintenance::text, v.groups::text,
                  to_json(v.time_zone)::text
           FROM statusdb_page_view_v2(%s, %s, %s, %s) AS v""",
        (slug, tokens.digest(token) if token else None, horizon, limit),
    ).fetchone()


def expected_body(row: Any, updated_at: str) -> bytes:
    _, _, id_, name, description, slug, public, _, comps, incs, maint, groups, zone = row
    return (
        f'{{"id": {id_}, "name": {name}, "description": {description}, "slug": {slug}, '
        f'"is_public": {public}, "updated_at": {updated_at}, "components": {comps}, '
        f'"incidents": {incs}, "maintenance": {maint}, "groups": {groups}, '
        f'"time_zone": {zone}}}'
    ).encode()


CASES = [
    (dt.timedelta(days=7), 20),  # every candidate shown but the far one
    (dt.timedelta(days=60), 20),  # every candidate: the stored text as is
    (HOUR, 20),  # running (starts later) and soon
    (dt.timedelta(days=60), 2),  # the limit cuts
    (dt.timedelta(0), 20),
    (dt.timedelta(days=366), 1),
]


@pytest.mark.parametrize("is_public", [True, False])
def test_bytes_are_the_page_views_json(dsn: str, is_public: bool) -> None:
    with psycopg.connect(dsn) as conn:
        conn.execute("SET TimeZone = 'America/New_York'")  # the body is in UTC anyway
        page_id, slug, token = make_page(conn, is_public=is_public)
        for horizon, limit in CASES:
            kwargs: dict[str, Any] = {
                "token": token,
                "maintenance_horizon": horizon,
                "maintenance_limit": limit,
            }
            answer = views.page_view_bytes(conn, slug, **kwargs)
            view = views.page_view(conn, slug, **kwargs)
            row = source(conn, slug, token, horizon, limit)
            assert isinstance(answer, views.PageBytes)
            assert view is not None
            assert row is not None
            assert (answer.version, answer.fresh_until) == (row[0], row[1])
            assert (answer.version, answer.fresh_until) == (view.version, view.fresh_until)
            assert answer.version_text == str(view.version)
            document = json.loads(answer.body)
            assert dt.datetime.fromisoformat(document["updated_at"]) == row[7]
            assert document["updated_at"].endswith("+00:00")
            stamp = json.dumps(document["updated_at"])
            assert answer.body == expected_body(row, stamp), (horizon, limit)
            assert views.decode_page_bytes(answer) == view
            # Conditional: the same version answers NotModified, an older one the body.
            same = views.page_view_bytes(conn, slug, if_version=answer.version, **kwargs)
            assert same == views.NotModified(answer.version, answer.fresh_until)
            assert same == views.page_view(conn, slug, if_version=view.version, **kwargs)
            assert same.version_text == answer.version_text
            older = views.page_view_bytes(conn, slug, if_version=answer.version - 1, **kwargs)
            assert isinstance(older, views.PageBytes)
            assert older == answer
        # A wrong or missing token (private), an unknown or impossible slug: None, always.
        for wrong in [None, "wrong"] if not is_public else []:
            for if_version in (None, 2**40):
                assert views.page_view_bytes(conn, slug, token=wrong, if_version=if_version) is None
        assert views.page_view_bytes(conn, "no-such-page") is None
        assert views.page_view_bytes(conn, "bad\x00slug") is None
        conn.execute("DELETE FROM status_page WHERE id = %s", (page_id,))
        assert views.page_view_bytes(conn, slug, token=token) is None
        conn.rollback()


def test_arguments_are_checked_as_page_view_checks_them(conn: Conn) -> None:
    bad: list[dict[str, Any]] = [
        {"maintenance_horizon": dt.timedelta(days=367)},
        {"maintenance_horizon": dt.timedelta(seconds=-1)},
        {"maintenance_horizon": 7},
        {"maintenance_limit": 0},
        {"maintenance_limit": 201},
        {"maintenance_limit": True},
        {"if_version": "12"},
        {"if_version": True},
        {"if_version": 2**63},
    ]
    for kwargs in bad:
        with pytest.raises(errors.InvalidInput):
            views.page_view(conn, "acme", **kwargs)
        with pytest.raises(errors.InvalidInput):
            views.page_view_bytes(conn, "acme", **kwargs)
    with pytest.raises(errors.InvalidInput):
        views.page_view_bytes("not a connection", "acme")  # type: ignore[call-overload]


def test_the_reader_role_sees_what_page_view_shows(dsn: str, logins: None) -> None:
    with psycopg.connect(dsn) as owner:
        _, public_slug, _ = make_page(owner, is_public=True)
        _, private_slug, token = make_page(owner, is_public=False)
    with psycopg.connect(make_conninfo(dsn, user=READER_LOGIN), autocommit=True) as reader:
        for slug, key in ((public_slug, None), (private_slug, token)):
            answer = views.page_view_bytes(reader, slug, token=key)
            assert isinstance(answer, views.PageBytes)
            assert views.decode_page_bytes(answer) == views.page_view(reader, slug, token=key)
            for _ in range(8):  # past psycopg's prepare threshold: the prepared statement
                again = views.page_view_bytes(reader, slug, token=key, if_version=answer.version)
                assert again == views.NotModified(answer.version, answer.fresh_until)
        assert views.page_view_bytes(reader, private_slug) is None
        assert views.page_view_bytes(reader, private_slug, token="wrong") is None
        # The reader still may not read the snapshot, nor list anything.
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            reader.execute("SELECT slug FROM status_page_snapshot")


def test_concurrent_writers_bytes_equal_page_view_in_one_snapshot(dsn: str) -> None:
    with psycopg.connect(dsn) as setup:
        page_id, slug, token = make_page(setup, is_public=False)
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
            while not stop.is_set() and writes < 400:
                w.execute(
                    "UPDATE status_page_component SET manual_status = %s WHERE id = %s",
                    (statuses[writes % 4], ids[writes % len(ids)]),
                )
                writes += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        seen: list[int] = []
        with psycopg.connect(dsn) as reader:
            reader.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            for _ in range(60):
                answer = views.page_view_bytes(reader, slug, token=token)
                view = views.page_view(reader, slug, token=token)
                assert isinstance(answer, views.PageBytes)
                assert view is not None
                assert views.decode_page_bytes(answer) == view
                unchanged = views.page_view_bytes(
                    reader, slug, token=token, if_version=view.version
                )
                assert isinstance(unchanged, views.NotModified)
                reader.rollback()  # a new snapshot for the next round
                seen.append(answer.version)
    finally:
        stop.set()
        thread.join()
    assert writes > 0
    assert seen == sorted(seen), (writes, seen)
    assert len(set(seen)) > 1, (writes, seen)


async def test_async_connections_share_one_reader_between_tasks(dsn: str) -> None:
    with psycopg.connect(dsn) as setup:
        _, slug, token = make_page(setup, is_public=False)
        expected = views.page_view_bytes(setup, slug, token=token)
    assert isinstance(expected, views.PageBytes)
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as aconn:
        answers = await asyncio.gather(
            *(views.page_view_bytes(aconn, slug, token=token) for _ in range(10)),
            views.page_view_bytes(aconn, slug, token="wrong"),
            views.page_view_bytes(aconn, "bad\x00slug"),
        )
        assert answers[:10] == [expected] * 10
        assert answers[10:] == [None, None]
        again = await views.page_view_bytes(aconn, slug, token=token, if_version=expected.version)
        assert again == views.NotModified(expected.version, expected.fresh_until)


def test_threads_share_one_connection(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        _, slug, _ = make_page(conn, is_public=True)
        _, other, _ = make_page(conn, is_public=True)
        want = {s: views.page_view_bytes(conn, s) for s in (slug, other)}
        wrong: list[Any] = []

        def read(s: str) -> None:
            for _ in range(50):
                got = views.page_view_bytes(conn, s)
                if got != want[s]:
                    wrong.append(got)

        threads = [threading.Thread(target=read, args=(s,)) for s in (slug, other) * 2]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert wrong == []


def test_not_modified_is_one_index_lookup_without_subplan(dsn: str) -> None:
    with psycopg.connect(dsn) as conn:
        _, slug, _ = make_page(conn, is_public=True)
        answer = views.page_view_bytes(conn, slug)
        assert isinstance(answer, views.PageBytes)
        conn.execute("SET enable_seqscan = off")  # a few rows: the index must be usable
        statement = b"SELECT * FROM statusdb_page_view_bytes(%s, NULL, interval '7 days', 20, %s)"
        plans = nested_plans(conn, statement, (slug, answer.version))
        inner = [p for p in plans if "status_page_snapshot" in p["Query Text"]]
        assert len(inner) == 1, plans  # one statement ran inside: the lookup
        assert all_scans(inner) == [
            ("Index Scan", "status_page_snapshot", "status_page_snapshot_slug_idx")
        ], inner
        assert "SubPlan" not in json.dumps(plans)
        assert "InitPlan" not in json.dumps(plans)
        # The full read: the lookup, then the body by primary key.
        plans = nested_plans(conn, statement, (slug, answer.version - 1))
        found = all_scans(plans)
        assert {rel for _, rel, _ in found} == {"status_page_snapshot"}, found


# -- views.PageViewCache -----------------------------------------------------------------------


def test_the_cache_answers_what_page_view_answers_across_writes(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        page_id, slug, token = make_page(conn, is_public=False)
        cache = views.PageViewCache()
        first = cache.get(conn, slug, token=token)
        assert first is not None
        assert first == views.page_view(conn, slug, token=token)
        assert (cache.hits, cache.misses, len(cache)) == (0, 1, 1)
        again = cache.get(conn, slug, token=token)
        assert again is first  # validated, reused
        assert cache.hits == 1
        # A wrong token never sees the cached view.
        assert cache.get(conn, slug, token="wrong") is None
        assert cache.get(conn, slug) is None
        # A write: the next get is the new view, never the cached one.
        conn.execute(
            "UPDATE status_page_component SET manual_status = 'MAJOR_OUTAGE' "
            "WHERE status_page_id = %s",
            (page_id,),
        )
        changed = cache.get(conn, slug, token=token)
        assert changed == views.page_view(conn, slug, token=token)
        assert changed is not None
        assert changed.version > first.version
        assert changed.page.overall_status == "MAJOR_OUTAGE"
        # Other horizons are other entries, each the page_view of its own arguments.
        short = cache.get(conn, slug, token=token, maintenance_horizon=HOUR, maintenance_limit=1)
        assert short == views.page_view(
            conn, slug, token=token, maintenance_horizon=HOUR, maintenance_limit=1
        )
        assert len(cache) == 2
        # Deleted: None, and forgotten.
        conn.execute("DELETE FROM status_page WHERE id = %s", (page_id,))
        assert cache.get(conn, slug, token=token) is None
        assert len(cache) == 1


def test_the_cache_is_bounded_in_entries_and_bytes(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        slugs = [make_page(conn, is_public=True)[1] for _ in range(4)]
        sizes = {}
        for slug in slugs:
            answer = views.page_view_bytes(conn, slug)
            assert isinstance(answer, views.PageBytes)
            sizes[slug] = len(answer.body)
        by_count = views.PageViewCache(max_entries=2)
        for slug in slugs:
            assert by_count.get(conn, slug) == views.page_view(conn, slug)
        assert len(by_count) == 2
        assert by_count.size == sizes[slugs[2]] + sizes[slugs[3]]
        by_size = views.PageViewCache(max_bytes=max(sizes.values()) + 1)
        for slug in slugs:
            assert by_size.get(conn, slug) == views.page_view(conn, slug)
            assert len(by_size) == 1
            assert by_size.size == sizes[slug]
        tiny = views.PageViewCache(max_bytes=10)
        assert tiny.get(conn, slugs[0]) == views.page_view(conn, slugs[0])
        assert (len(tiny), tiny.size) == (0, 0)
        for bad in ({"max_entries": 0}, {"max_bytes": -1}, {"max_entries": 1.5}):
            with pytest.raises(errors.InvalidInput):
                views.PageViewCache(**bad)


def test_the_cache_is_invalidated_by_listen_pages(dsn: str) -> None:
    from statusdb import feed

    with (
        psycopg.connect(dsn, autocommit=True) as conn,
        psycopg.connect(dsn, autocommit=True) as listener,
    ):
        page_id, slug, _ = make_page(conn, is_public=True)
        _, other, _ = make_page(conn, is_public=True)
        cache = views.PageViewCache()
        cache.get(conn, slug)
        cache.get(conn, other)
        assert list(feed.listen_pages(listener, timeout=0)) == []
        conn.execute("UPDATE status_page SET name = 'Renamed' WHERE id = %s", (page_id,))
        events = list(feed.listen_pages(listener, timeout=5, stop_after=1))
        assert [cache.invalidate(e) for e in events] == [1]
        assert len(cache) == 1  # the other page's view stays
        assert cache.invalidate(events[0]) == 0
        assert cache.invalidate() == 1


async def test_the_cache_from_asyncio_tasks(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        _, slug, token = make_page(conn, is_public=False)
        expected = views.page_view(conn, slug, token=token)
    cache = views.PageViewCache()
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as aconn:
        views_seen = await asyncio.gather(
            *(cache.aget(aconn, slug, token=token) for _ in range(8)),
            cache.aget(aconn, slug, token="wrong"),
        )
        assert views_seen == [expected] * 8 + [None]
        assert await cache.aget(aconn, slug, token=token) == expected
        assert cache.hits >= 1


def test_the_cache_through_the_router_with_a_concurrent_writer(dsn: str) -> None:
    from statusdb import routing

    with psycopg.connect(dsn, autocommit=True) as setup:
        page_id, slug, token = make_page(setup, is_public=False)
    cache = views.PageViewCache()
    statuses = ["DEGRADED_PERFORMANCE", "PARTIAL_OUTAGE", "MAJOR_OUTAGE", "OPERATIONAL"]

    def write(status: str) -> routing.Written[Any]:
        def change(c: Conn) -> None:
            c.execute(
                "UPDATE status_page_component SET manual_status = %s WHERE status_page_id = %s",
                (status, page_id),
            )

        return router.write(change)

    with routing.Router(dsn, [dsn], max_lag=1.0, check_interval=0.05) as router:
        for n in range(40):
            if n % 3 == 0:
                written = write(statuses[n % 4])
            # Read your writes: the cached view is at least as new as the write.
            cached, direct = router.read(
                lambda c: (
                    cache.get(c, slug, token=token),
                    views.page_view(c, slug, token=token),
                ),
                token=written.token,
            )
            assert cached == direct
            assert cached is not None
            assert cached.page.components[0].current_status == statuses[(n - n % 3) % 4]
    assert cache.hits > 0


def test_the_parser_takes_what_json_loads_takes() -> None:
    """orjson refuses a lone surrogate escape (PostgreSQL's json type keeps one): json.loads
    decides then, as it would for page_view."""
    for text in (b'["\\ud800", 1]', b'{"a": [1, "\\u00e9", null, true]}'):
        assert views._loads(text) == json.loads(text)
