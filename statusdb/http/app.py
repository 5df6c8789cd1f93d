"""A small ASGI app serving a page's public formats (issue 24): `create_app(pool_or_dsn)`.

Install the extra (`pip install 'statusdb[http]'`: Starlette and uvicorn); run it with `statusdb
serve` or any ASGI server, or mount it in your own app. A reference to copy as much as a
service: every route is one read of the page's snapshot.

URLs (`{slug}` is the page's slug):

- ``/pages/{slug}/page.json``: statusdb's own page JSON (`views.page_view_bytes`, the bytes
  the database holds);
- ``/pages/{slug}/api/v2/summary.json``, ``status.json``, ``components.json``,
  ``incidents.json``, ``incidents/unresolved.json``, ``scheduled-maintenances.json``,
  ``scheduled-maintenances/upcoming.json``, ``scheduled-maintenances/active.json``: the
  Statuspage v2 documents (`statusdb.formats.statuspage`);
- ``/pages/{slug}/feed.atom``, ``feed.rss`` and ``maintenance.ics``: the Atom 1.0 and RSS 2.0
  feeds (`statusdb.formats.feeds`) and the iCalendar feed of its maintenance
  (`statusdb.formats.ical`).

Every answer carries ``ETag: "<version_text>"`` (strong: it names the body) and
``Cache-Control: max-age`` bounded by `max_age` and by the page's fresh_until (the next instant
the clock changes what it shows); ``If-None-Match`` with the current ETag answers 304: from the
snapshot's index lookup alone for page.json and the Statuspage documents (plus one bounded
index scan for the two listing history), after composing the document for the feeds (their
ETag is a digest of their bytes). A private page's token comes in ``Authorization: Bearer <token>``
or ``X-Statusdb-Token`` (never the query string); without it the page answers exactly as an
unknown one (404, same body and headers). Errors are JSON with a status code, never a
traceback: InvalidInput 400, NotFound 404, Retryable 503 (Retry-After), others 500.

The Statuspage documents are served in a locale (migration 0035) when the request names one:
``?locale=<tag>`` (a 400 if it is not a BCP 47 tag), else the first acceptable tag of
``Accept-Language`` by weight; they answer ``Content-Language`` (the locale used) and
``Vary: ..., Accept-Language``, and their ETag names the locale.

The routes are a table (`Route`): `create_app(..., routes=default_routes() + [Route(...)])`
adds a format: its reader answers a body (`Answer`: `body` and `version_text`, optionally
`fresh_until`), a not-modified answer (no `body`, as `views.NotModified`) or None.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import logging
import string
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, Final, Protocol

import attrs
import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route as StarletteRoute

from statusdb import views
from statusdb.domain import tokens, validate
from statusdb.errors import InvalidInput, NotFound, Retryable, StatusdbError
from statusdb.formats import feeds, ical, source, statuspage
from statusdb.infra.pool import make_async_pool

__all__ = [
    "Answer",
    "Reader",
    "Route",
    "create_app",
    "default_routes",
    "feed_routes",
    "page_routes",
    "statuspage_routes",
]

log = logging.getLogger(__name__)


class Answer(Protocol):
    """What a route's reader answers: `version_text` (the ETag) and, unless it is a
    not-modified answer, `body`; `fresh_until` where the clock may change it."""

    @property
    def version_text(self) -> str: ...


#: A route's read: (connection, slug, token, if_version: an ETag's text or None) -> an
#: `Answer` or None (no such page for this caller). Called on an autocommit connection of the
#: app's pool.
Reader = Callable[
    [psycopg.AsyncConnection[Any], str, str | None, str | None],
    Awaitable[Any],
]

#: A localized read (migration 0035): a `Reader` with the locale asked for last.
LocaleReader = Callable[
    [psycopg.AsyncConnection[Any], str, str | None, str | None, str],
    Awaitable[Any],
]

JSON: Final = "application/json"
_NOT_FOUND_BODY: Final = b'{"error": "not found"}'
_VARY: Final = "Authorization, X-Statusdb-Token"


@attrs.frozen
class Route:
    """One URL of a page: `path` under ``/pages/{slug}``, its reader and its media type."""

    path: str
    read: Reader
    media_type: str = JSON
    #: The read in a locale (the Statuspage documents'): used when the request names one
    #: (``?locale=`` or ``Accept-Language``); the answer's `locale` is sent as
    #: Content-Language, with ``Vary: Accept-Language``.
    read_in: LocaleReader | None = None


def page_routes(
    *, maintenance_horizon: dt.timedelta = dt.timedelta(days=7), maintenance_limit: int = 20
) -> list[Route]:
    """statusdb's own page JSON, ``/page.json`` (`views.page_view_bytes`)."""

    async def read(
        conn: psycopg.AsyncConnection[Any], slug: str, token: str | None, if_version: str | None
    ) -> views.PageBytes | views.NotModified | None:
        version = int(if_version) if if_version is not None and if_version.isdigit() else None
        return await views.page_view_bytes(
            conn,
            slug,
            token=token,
            if_version=version if version is not None and version < 2**63 else None,
            maintenance_horizon=maintenance_horizon,
            maintenance_limit=maintenance_limit,
        )

    return [Route("/page.json", read)]


def statuspage_routes(
    *, maintenance_horizon: dt.timedelta = dt.timedelta(days=7), maintenance_limit: int = 20
) -> list[Route]:
    """The Statuspage v2 documents, ``/api/v2/<document>.json``."""

    def reader(name: str) -> Callable[..., Awaitable[Any]]:
        async def read(
            conn: psycopg.AsyncConnection[Any],
            slug: str,
            token: str | None,
            if_version: str | None,
            locale: str | None = None,
        ) -> statuspage.Document | statuspage.NotModified | None:
            return await statuspage.adocument(
                conn,
                slug,
                name,
                token=token,
                if_version=if_version,
                maintenance_horizon=maintenance_horizon,
                maintenance_limit=maintenance_limit,
                locale=locale,
            )

        return read

    return [
        Route(f"/api/v2/{name}.json", reader(name), read_in=reader(name))
        for name in statuspage.DOCUMENTS
    ]


def feed_routes(
    *,
    base_url: str = "http://localhost:8000",
    page_url: str = "{base_url}/pages/{slug}/page.json",
    limit: int = source.DEFAULT_LIMIT,
) -> list[Route]:
    """The feeds, ``/feed.atom``, ``/feed.rss`` (`statusdb.formats.feeds`) and
    ``/maintenance.ics`` (`statusdb.formats.ical`), at most `limit` entries each.

    `base_url` is where the app is served (the feeds' rel="self" links); `page_url` the page
    for people that the feeds link to, a template of `base_url` and `slug` (RSS requires one).
    The feeds are composed on every request; their ETag is a digest of their bytes.
    """
    base = base_url.rstrip("/")

    def urls(slug: str, path: str) -> tuple[str, str]:
        return page_url.format(base_url=base, slug=slug), f"{base}/pages/{slug}/{path}"

    async def atom(
        conn: psycopg.AsyncConnection[Any], slug: str, token: str | None, if_version: str | None
    ) -> Any:
        page, own = urls(slug, "feed.atom")
        return await feeds.atom(conn, slug, token=token, limit=limit, page_url=page, feed_url=own)

    async def rss(
        conn: psycopg.AsyncConnection[Any], slug: str, token: str | None, if_version: str | None
    ) -> Any:
        page, own = urls(slug, "feed.rss")
        return await feeds.rss(conn, slug, token=token, limit=limit, page_url=page, feed_url=own)

    async def calendar(
        conn: psycopg.AsyncConnection[Any], slug: str, token: str | None, if_version: str | None
    ) -> Any:
        return await ical.calendar(conn, slug, token=token, limit=limit)

    return [
        Route("/feed.atom", atom, feeds.ATOM_CONTENT_TYPE),
        Route("/feed.rss", rss, feeds.RSS_CONTENT_TYPE),
        Route("/maintenance.ics", calendar, ical.CONTENT_TYPE),
    ]


def default_routes(
    *,
    maintenance_horizon: dt.timedelta = dt.timedelta(days=7),
    maintenance_limit: int = 20,
    base_url: str = "http://localhost:8000",
) -> list[Route]:
    """`page_routes`, `statuspage_routes` (the same horizon and limit) and `feed_routes`."""
    return (
        page_routes(maintenance_horizon=maintenance_horizon, maintenance_limit=maintenance_limit)
        + statuspage_routes(
            maintenance_horizon=maintenance_horizon, maintenance_limit=maintenance_limit
        )
        + feed_routes(base_url=base_url)
    )


class _Bodies:
    """The last body served per (route, slug, token digest), bounded, least recently used out:
    a request without If-None-Match is a conditional read with the cached version, so an
    unchanged page costs one index lookup and no body from the server."""

    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self._entries: collections.OrderedDict[tuple[Any, ...], Any] = collections.OrderedDict()
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._size = 0
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...]) -> Any:
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
            return found

    def put(self, key: tuple[Any, ...], body: Any) -> None:
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._size -= len(old.body)
            if body is None or len(body.body) > self._max_bytes or self._max_entries == 0:
                return
            self._entries[key] = body
            self._size += len(body.body)
            while len(self._entries) > self._max_entries or self._size > self._max_bytes:
                _, dropped = self._entries.popitem(last=False)
                self._size -= len(dropped.body)


def _token(request: Request) -> str | None:
    """The page token from the headers (never the query string)."""
    authorization = request.headers.get("authorization", "")
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    token = request.headers.get("x-statusdb-token")
    return token if token else None


_TAG_CHARACTERS: Final = frozenset(string.ascii_letters + string.digits + "-.")


def _locale(request: Request) -> str | None:
    """The locale a request asks for: ``?locale=`` (a BCP 47 tag; an invalid one is a 400),
    else the first acceptable tag of ``Accept-Language`` by weight (the header's first 1,000
    characters, 16 entries; ``*``, q=0 and tags statusdb cannot store are skipped), else None."""
    asked = request.query_params.get("locale")
    if asked is not None:
        return validate.locale("locale", asked)
    header = request.headers.get("accept-language", "")[:1000]
    weighted: list[tuple[float, int, str]] = []
    for n, entry in enumerate(header.split(",")[:16]):
        tag, _, params = entry.strip().partition(";")
        weight = 1.0
        name, _, value = params.strip().partition("=")
        if name.strip().lower() == "q":
            try:
                weight = float(value.strip()[:5])
            except ValueError:
                continue
        if not 0 < weight <= 1 or tag.strip() in ("", "*"):
            continue
        weighted.append((-weight, n, tag.strip()))
    for _, _, tag in sorted(weighted):
        try:
            return validate.locale("Accept-Language", tag)
        except InvalidInput:
            continue
    return None


def _if_none_match(request: Request) -> list[str] | bool | None:
    """The entity tags an If-None-Match names (of our form: up to 8, at most 80 characters of
    letters, digits and "-"), True for ``*``, else None."""
    header = request.headers.get("if-none-match")
    if not header:
        return None
    found: list[str] = []
    for tag in header.split(",")[:8]:
        tag = tag.strip()
        if tag == "*":
            return True
        tag = tag.removeprefix("W/")
        text = tag[1:-1]
        if (
            len(tag) >= 3
            and tag[0] == tag[-1] == '"'
            and len(text) <= 80
            and _TAG_CHARACTERS.issuperset(text)
        ):
            found.append(text)
    return found or None


def _max_age(answer: Any, limit: int) -> int:
    fresh_until = getattr(answer, "fresh_until", None)
    if fresh_until is None:
        return limit
    until = (fresh_until - dt.datetime.now(dt.UTC)).total_seconds()
    return max(0, min(limit, int(until)))


def _not_found() -> Response:
    # The same for an unknown slug and a private page without its token.
    return Response(
        _NOT_FOUND_BODY,
        status_code=404,
        media_type=JSON,
        headers={"Cache-Control": "no-store", "Vary": _VARY},
    )


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps({"error": message}).encode(),
        status_code=status,
        media_type=JSON,
        headers={"Cache-Control": "no-store", **(headers or {})},
    )


def create_app(
    pool_or_dsn: AsyncConnectionPool[Any] | str,
    *,
    routes: Sequence[Route] | None = None,
    max_age: int = 30,
    pool_size: int = 10,
    cache_entries: int = 1024,
    cache_bytes: int = 64 * 1024 * 1024,
) -> Starlette:
    """The ASGI app serving `routes` (default: `default_routes()`) under ``/pages/{slug}``.

    `pool_or_dsn`: an `AsyncConnectionPool` the caller opens and closes, or a conninfo (the
    app then opens a pool of `pool_size` autocommit connections for its lifetime). `max_age`
    bounds Cache-Control's max-age (writes are announced by `feed.listen_pages`: purge a CDN
    on them rather than raising it); the app keeps the last body of up to `cache_entries`
    URLs (`cache_bytes` in all) and revalidates it on every request.
    """
    if type(max_age) is not int or max_age < 0:
        raise InvalidInput("max_age must be a non-negative int (seconds)")
    table = list(default_routes() if routes is None else routes)
    owned = isinstance(pool_or_dsn, str)
    pool: AsyncConnectionPool[Any] = (
        make_async_pool(pool_or_dsn, autocommit=True, min_size=1, max_size=pool_size, open=False)
        if isinstance(pool_or_dsn, str)
        else pool_or_dsn
    )
    bodies = _Bodies(cache_entries, cache_bytes)

    def endpoint(index: int, route: Route) -> Callable[[Request], Awaitable[Response]]:
        async def handle(request: Request) -> Response:
            slug = request.path_params["slug"]
            token = _token(request)
            seen = _if_none_match(request)
            locale = _locale(request) if route.read_in is not None else None
            key = (index, slug, tokens.digest(token) if token is not None else None, locale)
            cached = bodies.get(key)
            ask = seen[0] if isinstance(seen, list) else (cached.version_text if cached else None)
            async with pool.connection() as conn:
                if route.read_in is not None and locale is not None:
                    answer = await route.read_in(conn, slug, token, ask, locale)
                else:
                    answer = await route.read(conn, slug, token, ask)
            if answer is None:
                bodies.put(key, None)
                return _not_found()
            matched = seen is True or (isinstance(seen, list) and answer.version_text in seen)
            headers = {
                "ETag": f'"{answer.version_text}"',
                "Cache-Control": (
                    f"{'private' if token is not None else 'public'}, "
                    f"max-age={_max_age(answer, max_age)}"
                ),
                "Vary": _VARY if route.read_in is None else _VARY + ", Accept-Language",
            }
            if getattr(answer, "locale", None) is not None:
                headers["Content-Language"] = answer.locale
            if not hasattr(answer, "body"):  # not modified since `ask`
                if matched:
                    return Response(status_code=304, headers=headers)
                assert cached is not None
                assert cached.version_text == answer.version_text
                answer = cached
            else:
                bodies.put(key, answer)
                if matched:
                    return Response(status_code=304, headers=headers)
            return Response(answer.body, media_type=route.media_type, headers=headers)

        return handle

    async def invalid(request: Request, exc: Exception) -> Response:
        return _error(400, str(exc))

    async def not_found(request: Request, exc: Exception) -> Response:
        return _not_found()

    async def busy(request: Request, exc: Exception) -> Response:
        return _error(503, "busy, try again", {"Retry-After": "1"})

    async def failed(request: Request, exc: Exception) -> Response:
        log.error("statusdb.http: %s on %s", type(exc).__name__, request.url.path)
        return _error(500, "internal error")

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if owned:
            await pool.open(wait=True)
        try:
            yield
        finally:
            if owned:
                await pool.close()

    return Starlette(
        routes=[
            StarletteRoute(
                "/pages/{slug}" + route.path, endpoint(i, route), methods=["GET", "HEAD"]
            )
            for i, route in enumerate(table)
        ],
        exception_handlers={
            InvalidInput: invalid,
            NotFound: not_found,
            Retryable: busy,
            PoolTimeout: busy,
            StatusdbError: failed,
            Exception: failed,
        },
        lifespan=lifespan,
    )
