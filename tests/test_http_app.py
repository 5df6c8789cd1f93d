"""The HTTP app (statusdb.http.app) through a real server: `statusdb serve` (uvicorn) in a
subprocess on a random port against a fresh database, an httpx client (issue 24)."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from starlette.requests import Request

from statusdb import maintenance, pages, status_incidents, teams, translations, views
from statusdb.errors import InvalidInput, Retryable
from statusdb.http import app as app_module
from statusdb.http.app import Route, create_app, default_routes
from statusdb.pages import NewComponent


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def serving(dsn: str, *extra: str) -> Iterator[httpx.Client]:
    """`statusdb serve --dsn DSN` on a free port, and a client of it; stopped at the end."""
    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "statusdb.tooling.cli",
            "serve",
            "--dsn",
            dsn,
            "--port",
            str(port),
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "STATUSDB_DSN": ""},
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            deadline = time.monotonic() + 30
            while True:
                try:
                    client.get("/pages/x/page.json")
                    break
                except httpx.TransportError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        output = server.stdout.read() if server.stdout else b""
                        pytest.fail(f"the server did not start: {output.decode()}")
                    time.sleep(0.1)
            yield client
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover
            server.kill()
            server.wait()
        if server.stdout:
            server.stdout.close()


@pytest.fixture
def two_pages(dsn: str) -> dict[str, Any]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        team = teams.create(conn, name="HTTP")
        pages.create(
            conn,
            team_id=team.id,
            name="Open",
            slug="open",
            created_by_id="u",
            is_public=True,
            components=[NewComponent(name="API")],
        )
        hidden = pages.create(
            conn,
            team_id=team.id,
            name="Hidden",
            slug="hidden",
            created_by_id="u",
            is_public=False,
            components=[NewComponent(name="DB")],
        )
    return {"token": hidden.access_token}


@pytest.mark.slow
def test_etags_304_and_private_pages_through_uvicorn(dsn: str, two_pages: dict[str, Any]) -> None:
    token = two_pages["token"]
    with serving(dsn) as client:
        first = client.get("/pages/open/api/v2/summary.json")
        assert first.status_code == 200
        assert first.headers["content-type"] == "application/json"
        etag = first.headers["etag"]
        assert etag.startswith('"')
        assert etag.endswith('"')
        assert etag[1:-1].isdigit()
        assert first.headers["cache-control"].startswith("public, max-age=")
        summary = first.json()
        assert summary["page"]["name"] == "Open"
        assert summary["status"]["indicator"] == "none"
        assert [c["name"] for c in summary["components"]] == ["API"]

        again = client.get("/pages/open/api/v2/summary.json", headers={"If-None-Match": etag})
        assert again.status_code == 304
        assert again.content == b""
        assert again.headers["etag"] == etag
        # Without If-None-Match the app revalidates its cached body: the same bytes.
        assert client.get("/pages/open/api/v2/summary.json").content == first.content

        own = client.get("/pages/open/page.json")
        assert own.status_code == 200
        assert own.headers["etag"] == etag  # one version per page, whatever the format
        assert own.json()["components"][0][1] == "API"

        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("UPDATE status_page_component SET manual_status = 'MAJOR_OUTAGE'")
        changed = client.get("/pages/open/api/v2/summary.json", headers={"If-None-Match": etag})
        assert changed.status_code == 200
        assert changed.headers["etag"] != etag
        assert changed.json()["status"]["indicator"] == "critical"
        assert client.get("/pages/open/api/v2/summary.json").content == changed.content

        for path in (
            "status",
            "components",
            "incidents",
            "incidents/unresolved",
            "scheduled-maintenances",
            "scheduled-maintenances/upcoming",
            "scheduled-maintenances/active",
        ):
            answer = client.get(f"/pages/open/api/v2/{path}.json")
            assert answer.status_code == 200, path
            assert "page" in answer.json()

        unknown = client.get("/pages/no-such-page/api/v2/summary.json")
        assert unknown.status_code == 404
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"X-Statusdb-Token": "wrong"}):
            hidden = client.get("/pages/hidden/api/v2/summary.json", headers=headers)
            assert hidden.status_code == 404
            assert hidden.content == unknown.content
            assert _comparable(hidden.headers) == _comparable(unknown.headers)
        in_query = client.get(f"/pages/hidden/api/v2/summary.json?token={token}")
        assert in_query.status_code == 404  # never from the query string

        for headers in ({"Authorization": f"Bearer {token}"}, {"X-Statusdb-Token": token}):
            opened = client.get("/pages/hidden/api/v2/summary.json", headers=headers)
            assert opened.status_code == 200
            assert opened.json()["page"]["name"] == "Hidden"
            assert opened.headers["cache-control"].startswith("private, max-age=")
            tag = opened.headers["etag"]
            revalidated = client.get(
                "/pages/hidden/api/v2/summary.json", headers={**headers, "If-None-Match": tag}
            )
            assert revalidated.status_code == 304
            guessed = client.get(
                "/pages/hidden/api/v2/summary.json", headers={"If-None-Match": tag}
            )
            assert guessed.status_code == 404  # a version is no token

        assert client.get("/pages/open/api/v2/nothing.json").status_code == 404
        assert client.post("/pages/open/api/v2/summary.json").status_code == 405
        head = client.head("/pages/open/api/v2/summary.json")
        assert head.status_code == 200
        assert head.content == b""


@pytest.mark.slow
def test_feeds_and_history_etags_through_uvicorn(dsn: str, two_pages: dict[str, Any]) -> None:
    """The Atom, RSS and iCalendar feeds are default routes with the same ETag, 304 and token
    rules; the incidents document's ETag covers its resolved history."""
    import feedparser
    import icalendar

    token = two_pages["token"]
    with psycopg.connect(dsn, autocommit=True) as conn:
        page_id = conn.execute("SELECT id FROM status_page WHERE slug = 'open'").fetchone()
        assert page_id is not None
        done = status_incidents.create(
            conn, page_id[0], title="Old one", severity="MINOR", message="Oops"
        )
        status_incidents.add_update(conn, done.id, status="RESOLVED", message="Gone")
        start = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
        maintenance.create(
            conn,
            page_id[0],
            title="Upgrade",
            start_time=start,
            end_time=start + dt.timedelta(hours=1),
            created_by_id="u",
        )
    kinds = {
        "feed.atom": "application/atom+xml",
        "feed.rss": "application/rss+xml",
        "maintenance.ics": "text/calendar",
    }
    with serving(dsn) as client:
        tags = {}
        for path, kind in kinds.items():
            first = client.get(f"/pages/open/{path}")
            assert first.status_code == 200, path
            assert first.headers["content-type"].startswith(kind), path
            assert first.headers["cache-control"].startswith("public, max-age=")
            tags[path] = first.headers["etag"]
            again = client.get(f"/pages/open/{path}", headers={"If-None-Match": tags[path]})
            assert (again.status_code, again.content) == (304, b""), path
            assert again.headers["etag"] == tags[path]
            if path == "maintenance.ics":
                calendar = icalendar.Calendar.from_ical(first.content)
                assert [str(e["SUMMARY"]) for e in calendar.walk("VEVENT")] == ["Upgrade"]
            else:
                parsed = feedparser.parse(first.content)
                assert not parsed.bozo, (path, parsed.bozo_exception)
                titles = " | ".join(e.title for e in parsed.entries)
                assert "Old one" in titles, titles
                assert "Upgrade" in titles, titles
                links = [link.href for link in parsed.feed.links if link.rel == "self"]
                assert links == [f"{client.base_url}/pages/open/{path}"]
            unknown = client.get(f"/pages/no-such-page/{path}")
            assert unknown.status_code == 404
            for headers in ({}, {"Authorization": "Bearer wrong"}):
                hidden = client.get(f"/pages/hidden/{path}", headers=headers)
                assert (hidden.status_code, hidden.content) == (404, unknown.content), path
                assert _comparable(hidden.headers) == _comparable(unknown.headers)
            opened = client.get(f"/pages/hidden/{path}", headers={"X-Statusdb-Token": token})
            assert opened.status_code == 200, path
            assert opened.headers["cache-control"].startswith("private, max-age=")

        incidents = client.get("/pages/open/api/v2/incidents.json")
        summary_tag = client.get("/pages/open/api/v2/summary.json").headers["etag"]
        assert incidents.headers["etag"].startswith(summary_tag[:-1] + "-")
        with psycopg.connect(dsn, autocommit=True) as conn:
            status_incidents.edit(conn, done.id, title="Old one, renamed")
        assert client.get("/pages/open/api/v2/summary.json").headers["etag"] == summary_tag
        edited = client.get(
            "/pages/open/api/v2/incidents.json",
            headers={"If-None-Match": incidents.headers["etag"]},
        )
        assert edited.status_code == 200
        assert edited.headers["etag"] != incidents.headers["etag"]
        assert "Old one, renamed" in [i["name"] for i in edited.json()["incidents"]]
        atom = client.get("/pages/open/feed.atom", headers={"If-None-Match": tags["feed.atom"]})
        assert atom.status_code == 200
        assert atom.headers["etag"] != tags["feed.atom"]


def _comparable(headers: httpx.Headers) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower() not in ("date",)}


@pytest.mark.slow
def test_errors_are_json_without_a_traceback(dsn: str, two_pages: dict[str, Any]) -> None:
    with serving(dsn) as client:
        with psycopg.connect(dsn, autocommit=True) as conn:
            # A schema the app does not expect (a function renamed away): a 500, never a
            # traceback, and the app serves on.
            conn.execute(
                "ALTER FUNCTION statusdb_page_statuspage(text, bytea, interval, integer, text,"
                " text) RENAME TO statusdb_page_statuspage_gone"
            )
        broken = client.get("/pages/open/api/v2/summary.json")
        assert broken.status_code == 500
        assert json.loads(broken.content) == {"error": "internal error"}
        assert b"Traceback" not in broken.content
        assert client.get("/pages/open/page.json").status_code == 200


@contextlib.asynccontextmanager
async def in_process(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """`app` with its lifespan, and an httpx client calling it in this process."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            yield client


async def test_the_app_in_process(dsn: str, two_pages: dict[str, Any]) -> None:
    """The same app in this process: conditional forms, the body cache's bounds, extra routes
    and the error mapping."""

    async def refuse(conn: Any, slug: str, token: str | None, seen: str | None) -> Any:
        failure = {
            "bad": InvalidInput("no such thing"),
            "busy": Retryable("conflict"),
            "full": PoolTimeout("no connection"),
            "bug": KeyError("x"),
        }
        raise failure[slug]

    async def view(conn: Any, slug: str, token: str | None, seen: str | None) -> Any:
        version = int(seen) if seen is not None and seen.isdigit() else None
        return await views.page_view_bytes(conn, slug, token=token, if_version=version)

    routes = [*default_routes(), Route("/refuse", refuse), Route("/view.txt", view, "text/plain")]
    with pytest.raises(InvalidInput):
        create_app(dsn, max_age=-1)
    async with in_process(create_app(dsn, routes=routes, cache_entries=1, max_age=5)) as client:
        path = "/pages/open/api/v2/status.json"
        first = await client.get(path)
        etag = first.headers["etag"]
        assert first.headers["cache-control"] == "public, max-age=5"
        weak = await client.get(path, headers={"If-None-Match": f"W/{etag}"})
        assert weak.status_code == 304
        listed = await client.get(path, headers={"If-None-Match": f'"1", {etag}'})
        assert listed.status_code == 304  # any of the tags listed matches
        for odd in ('"99999999999999999999"', "garbage", '""'):
            got = await client.get(path, headers={"If-None-Match": odd})
            assert got.status_code == 200
            assert got.content == first.content
        star = await client.get(path, headers={"If-None-Match": "*"})
        assert star.status_code == 304
        await client.get("/pages/open/api/v2/components.json")  # evicts status.json
        assert (await client.get(path)).content == first.content
        text = await client.get("/pages/open/view.txt")
        assert text.headers["content-type"].startswith("text/plain")
        expected = {"bad": 400, "busy": 503, "full": 503, "bug": 500}
        for slug, status in expected.items():
            answer = await client.get(f"/pages/{slug}/refuse")
            assert answer.status_code == status, slug
            assert "error" in answer.json()
            assert answer.headers["cache-control"] == "no-store"
        assert (await client.get("/pages/busy/refuse")).headers["retry-after"] == "1"
        assert (await client.get("/pages/NOT A SLUG/page.json")).status_code == 404


async def test_a_pool_of_the_callers(dsn: str, two_pages: dict[str, Any]) -> None:
    async with AsyncConnectionPool(dsn, kwargs={"autocommit": True}, open=False) as pool:
        app = create_app(pool, cache_entries=0)
        async with in_process(app) as client:
            answer = await client.get("/pages/open/api/v2/summary.json")
            assert answer.status_code == 200
            assert answer.json()["page"]["name"] == "Open"


@pytest.fixture
def translated_pages(dsn: str, two_pages: dict[str, Any]) -> dict[str, Any]:
    """German (and Swiss German) texts on both pages of `two_pages`."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        for slug, name in (("open", "Offen"), ("hidden", "Versteckt")):
            page_id, component_id = conn.execute(
                "SELECT p.id, c.id FROM status_page p JOIN status_page_component c"
                " ON c.status_page_id = p.id WHERE p.slug = %s",
                (slug,),
            ).fetchone() or ("", "")
            translations.set(
                conn, page_id, "de", entity="page", entity_id=page_id, field="name", text=name
            )
            translations.set(
                conn,
                page_id,
                "de",
                entity="component",
                entity_id=component_id,
                field="name",
                text="Schnittstelle",
            )
        translations.set(
            conn,
            page_id,
            "de-CH",
            entity="component",
            entity_id=component_id,
            field="name",
            text="Schnittstell",
        )
    return two_pages


@pytest.mark.slow
def test_translated_documents_through_uvicorn(dsn: str, translated_pages: dict[str, Any]) -> None:
    token = translated_pages["token"]
    path = "/pages/open/api/v2/summary.json"
    with serving(dsn) as client:
        own = client.get(path)
        assert own.json()["page"]["name"] == "Open"
        assert "content-language" not in own.headers
        assert "Accept-Language" in own.headers["vary"]
        german = client.get(path, headers={"Accept-Language": "fr;q=0.2, de-AT, en;q=0.5"})
        assert german.status_code == 200
        assert german.headers["content-language"] == "de"  # de-AT: its language
        assert "Accept-Language" in german.headers["vary"]
        assert german.json()["page"]["name"] == "Offen"
        assert german.json()["components"][0]["name"] == "Schnittstelle"
        assert german.headers["etag"] == own.headers["etag"][:-1] + '.de"'
        # The first acceptable tag by weight; q-values optional; what cannot be stored is
        # skipped; ?locale= wins over the header.
        for header, language in (
            ("en;q=0.1, de;q=0.9", "de"),
            ("de_DE, *, x-klingon, ja", "en"),
            ("*;q=1, de;q=0", None),
        ):
            answer = client.get(path, headers={"Accept-Language": header})
            assert answer.headers.get("content-language") == language, header
        by_query = client.get(f"{path}?locale=de", headers={"Accept-Language": "ja"})
        assert by_query.headers["content-language"] == "de"
        assert client.get(f"{path}?locale=de_DE").status_code == 400
        # 304 with the locale's ETag; another locale's ETag is answered in full.
        same = client.get(
            path, headers={"Accept-Language": "de", "If-None-Match": german.headers["etag"]}
        )
        assert same.status_code == 304
        assert same.headers["content-language"] == "de"
        other = client.get(
            path, headers={"Accept-Language": "ja", "If-None-Match": german.headers["etag"]}
        )
        assert other.status_code == 200
        assert other.headers["etag"] != german.headers["etag"]
        # The app's body cache is per locale.
        assert client.get(path, headers={"Accept-Language": "de"}).content == german.content
        assert client.get(path, headers={"Accept-Language": "en"}).json()["page"]["name"] == (
            "Open"
        )
        # A private page in a locale needs its token; the Swiss text where there is one.
        hidden = "/pages/hidden/api/v2/components.json"
        assert client.get(hidden, headers={"Accept-Language": "de"}).status_code == 404
        swiss = client.get(
            hidden, headers={"Accept-Language": "de-CH", "Authorization": f"Bearer {token}"}
        )
        assert swiss.status_code == 200
        assert swiss.headers["content-language"] == "de-CH"
        assert swiss.json()["components"][0]["name"] == "Schnittstell"
        assert swiss.json()["page"]["name"] == "Versteckt"
        # A translation written moves the ETag.
        with psycopg.connect(dsn, autocommit=True) as conn:
            page_id = conn.execute("SELECT id FROM status_page WHERE slug = 'open'").fetchone()
            assert page_id is not None
            translations.set(
                conn,
                page_id[0],
                "de",
                entity="page",
                entity_id=page_id[0],
                field="name",
                text="Offen!",
            )
        moved = client.get(
            path, headers={"Accept-Language": "de", "If-None-Match": german.headers["etag"]}
        )
        assert moved.status_code == 200
        assert moved.headers["etag"] != german.headers["etag"]
        assert moved.json()["page"]["name"] == "Offen!"


def test_accept_language_parsing_is_bounded() -> None:
    def asked(header: str, query: bytes = b"") -> str | None:
        scope = {
            "type": "http",
            "method": "GET",
            "path": "/",
            "query_string": query,
            "headers": [(b"accept-language", header.encode())],
        }
        return app_module._locale(Request(scope))

    assert asked("") is None
    assert asked("de-ch") == "de-CH"
    assert asked("en;q=0.5, zh-hant-tw;q=0.8") == "zh-Hant-TW"
    assert asked("en;q=oops, de") == "de"  # an unreadable weight: that entry skipped
    assert asked("en;q=2, de") == "de"
    assert asked(", ".join(["x-private"] * 16 + ["de"])) is None  # 16 entries at most
    assert asked("a" * 2000 + ", de") is None  # the first 1,000 characters only
    assert asked("ja", b"locale=de-at") == "de-AT"
    with pytest.raises(InvalidInput):
        asked("de", b"locale=not+a+tag")
