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
  Statuspage v2 documents (`statusdb.formats.statuspage`).

Every answer carries ``ETag: "<version>"`` (strong: the version names the body) and
``Cache-Control: max-age`` bounded by `max_age` and by the page's fresh_until (the next instant
the clock changes what it shows); ``If-None-Match`` with the current ETag answers 304 from the
snapshot's index lookup alone. A private page's token comes in ``Authorization: Bearer <token>``
or ``X-Statusdb-Token`` (never the query string); without it the page answers exactly as an
unknown one (404, same body and headers). Errors are JSON with a status code, never a
traceback: InvalidInput 400, NotFound 404, Retryable 503 (Retry-After), others 500.

The routes are a table (`Route`): `create_app(..., routes=default_routes() + [Route(...)])`
adds a format, e.g. a feed whose reader answers `views.PageBytes` / `views.NotModified` / None.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, Final

import attrs
import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route as StarletteRoute

from statusdb import views
from statusdb.domain import tokens
from statusdb.errors import InvalidInput, NotFound, Retryable, StatusdbError
from statusdb.formats import statuspage
from statusdb.infra.pool import make_async_pool

__all__ = ["Reader", "Route", "create_app", "default_routes", "page_routes", "statuspage_routes"]

log = logging.getLogger(__name__)

#: A route's read: (connection, slug, token, if_version) -> the page's bytes, NotModified or
#: None (no such page for this caller). Called on an autocommit connection of the app's pool.
Reader = Callable[
    [psycopg.AsyncConnection[Any], str, str | None, int | None],
    Awaitable["views.PageBytes | views.NotModified | None"],
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


def page_routes(
    *, maintenance_horizon: dt.timedelta = dt.timedelta(days=7), maintenance_limit: int = 20
) -> list[Route]:
    """statusdb's own page JSON, ``/page.json`` (`views.page_view_bytes`)."""

    async def read(
        conn: psycopg.AsyncConnection[Any], slug: str, token: str | None, if_version: int | None
    ) -> views.PageBytes | views.NotModified | None:
        return await views.page_view_bytes(
            conn,
            slug,
            token=token,
            if_version=if_version,
            maintenance_horizon=maintenance_horizon,
            maintenance_limit=maintenance_limit,
        )

    return [Route("/page.json", read)]


def statuspage_routes(
    *, maintenance_horizon: dt.timedelta = dt.timedelta(days=7), maintenance_limit: int = 20
) -> list[Route]:
    """The Statuspage v2 documents, ``/api/v2/<document>.json``."""

    def reader(name: str) -> Reader:
        async def read(
            conn: psycopg.AsyncConnection[Any],
            slug: str,
            token: str | None,
            if_version: int | None,
        ) -> views.PageBytes | views.NotModified | None:
            return await statuspage.adocument(
                conn,
                slug,
                name,
                token=token,
                if_version=if_version,
                maintenance_horizon=maintenance_horizon,
                maintenance_limit=maintenance_limit,
            )

        return read

    return [Route(f"/api/v2/{name}.json", reader(name)) for name in statuspage.DOCUMENTS]


def default_routes(
    *, maintenance_horizon: dt.timedelta = dt.timedelta(days=7), maintenance_limit: int = 20
) -> list[Route]:
    """`page_routes` and `statuspage_routes` with the same horizon and limit."""
    return page_routes(
        maintenance_horizon=maintenance_horizon, maintenance_limit=maintenance_limit
    ) + statuspage_routes(
        maintenance_horizon=maintenance_horizon, maintenance_limit=maintenance_limit
    )


class _Bodies:
    """The last body served per (route, slug, token digest), bounded, least recently used out:
    a request without If-None-Match is a conditional read with the cached version, so an
    unchanged page costs one index lookup and no body from the server."""

    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self._entries: collections.OrderedDict[tuple[Any, ...], views.PageBytes] = (
            collections.OrderedDict()
        )
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._size = 0
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...]) -> views.PageBytes | None:
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
            return found

    def put(self, key: tuple[Any, ...], body: views.PageBytes | None) -> None:
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


def _if_none_match(request: Request) -> int | bool | None:
    """The version an If-None-Match names (the first of ours), True for ``*``, else None."""
    header = request.headers.get("if-none-match")
    if not header:
        return None
    for tag in header.split(","):
        tag = tag.strip()
        if tag == "*":
            return True
        tag = tag.removeprefix("W/")
        if len(tag) >= 3 and tag[0] == tag[-1] == '"' and tag[1:-1].isdigit():
            value = int(tag[1:-1])
            if value < 2**63:
                return value
    return None


def _max_age(answer: views.PageBytes | views.NotModified, limit: int) -> int:
    if answer.fresh_until is None:
        return limit
    until = (answer.fresh_until - dt.datetime.now(dt.UTC)).total_seconds()
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
            key = (index, slug, tokens.digest(token) if token is not None else None)
            cached = bodies.get(key)
            ask = seen if type(seen) is int else (cached.version if cached else None)
            async with pool.connection() as conn:
                answer = await route.read(conn, slug, token, ask)
            if answer is None:
                bodies.put(key, None)
                return _not_found()
            headers = {
                "ETag": f'"{answer.version_text}"',
                "Cache-Control": (
                    f"{'private' if token is not None else 'public'}, "
                    f"max-age={_max_age(answer, max_age)}"
                ),
                "Vary": _VARY,
            }
            if isinstance(answer, views.NotModified):
                if seen is not None and (seen is True or seen == answer.version):
                    return Response(status_code=304, headers=headers)
                assert cached is not None
                assert cached.version == answer.version
                answer = cached
            else:
                bodies.put(key, answer)
                if seen is True:
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
