"""Atlassian Statuspage public API v2 documents of a page (issue 24, migration 0034).

`document(conn, slug, name, token=..., if_version=...)` answers the JSON document `name` of
the page (one of `DOCUMENTS`, the paths of ``/api/v2/<name>.json``) as the bytes the database
composes at read time from the page's snapshot (`statusdb_page_statuspage`): a `Document` with
the page's version, its `version_text` (the ETag) and fresh_until, `NotModified` when
`if_version` is still the `version_text` (answered from the snapshot's index lookup, plus one
bounded index scan for the two documents listing history, nothing composed), or None when there
is no such page for the caller (a private page without its token, exactly as an unknown slug).

What it shows is what `views.page_view` shows (same horizon and limit arguments, same windows,
same version), plus the page's time zone and created/updated stamps, and in "incidents" the 50
latest resolved incidents, in "scheduled-maintenances" the 50 latest completed windows, read
from their tables by index when the document is composed (nothing is rendered when a page is
written). Editing those does not move the page's version, so these two documents' version_text
is ``"<version>-<stamp>"``, the stamp a digest of the listed rows' ids and updated_at; the
other documents' is the version, as the page view's. Times are ISO 8601 in the page's time zone
with its offset at each instant (DST included). Fields statusdb has no value for are null
(`NULL_FIELDS`); see docs/public-formats.md for the mapping. `locale=` (migration 0035,
`statusdb_page_statuspage_v2`) translates every text shown by the page view's chain;
`version_text` then ends in ``".<locale used>"``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Coroutine
from typing import Any, Final, cast, overload

import attrs
import psycopg

from statusdb import views
from statusdb.db import queries
from statusdb.db.executor import RETRY_ATTEMPTS, _backoff, _not_a_connection
from statusdb.domain import validate
from statusdb.errors import InvalidInput, translate

__all__ = ["DOCUMENTS", "NULL_FIELDS", "Document", "NotModified", "adocument", "document"]

#: The documents, by their path under /api/v2/ (without ".json").
DOCUMENTS: Final = (
    "summary",
    "status",
    "components",
    "incidents",
    "incidents/unresolved",
    "scheduled-maintenances",
    "scheduled-maintenances/upcoming",
    "scheduled-maintenances/active",
)

#: Fields of the published format that statusdb has no value for: always null.
NULL_FIELDS: Final = {
    "page": ("url",),
    "component": ("start_date",),
    "incident": ("shortlink",),
    "incident_update": ("affected_components", "deliver_notifications", "custom_tweet", "tweet_id"),
    "scheduled_maintenance": ("shortlink", "monitoring_at", "resolved_at"),
}


@attrs.frozen
class Document:
    """A Statuspage v2 document: `body` (UTF-8 JSON), the page's `version` and `fresh_until`
    (`views.page_view`'s), and `version_text`, the document's ETag (the version, or
    ``"<version>-<stamp>"`` for "incidents" and "scheduled-maintenances")."""

    body: bytes
    version: int
    version_text: str
    fresh_until: dt.datetime | None
    #: The locale of the texts (migration 0035) when the read asked for one (`locale=`): the
    #: tag or its language that matched, else the page's `default_locale`; None without.
    locale: str | None = None


@attrs.frozen
class NotModified:
    """`document(..., if_version=v)` when `v` is still the document's `version_text`."""

    version: int
    version_text: str
    fresh_until: dt.datetime | None
    locale: str | None = None


_QUERY: Final = queries.get("statuspage_document").sql
_LOCALE_QUERY: Final = queries.get("statuspage_document_locale").sql
_WEEK: Final = dt.timedelta(days=7)


def _params(
    slug: object,
    name: object,
    token: object,
    if_version: object,
    maintenance_horizon: object,
    maintenance_limit: object,
    locale: object = None,
) -> dict[str, Any] | None:
    if type(name) is not str or name not in DOCUMENTS:
        raise InvalidInput(f"document must be one of {', '.join(DOCUMENTS)}")
    if if_version is not None:
        if type(if_version) is int and 0 <= if_version < 2**63:
            if_version = str(if_version)
        elif type(if_version) is not str or len(if_version) > 100:
            raise InvalidInput("if_version must be a document's version_text (a str) or None")
    params = views._bytes_params(slug, token, None, maintenance_horizon, maintenance_limit)
    if params is not None:
        params["document"] = name
        params["if_version"] = if_version
        if locale is not None:
            params["locale"] = validate.locale("locale", cast(str, locale))
    return params


def _query(params: dict[str, Any]) -> bytes:
    return _LOCALE_QUERY if "locale" in params else _QUERY


def _answer(row: tuple[Any, ...] | None) -> Document | NotModified | None:
    if row is None:
        return None
    version, version_text, fresh_until, body, *rest = row
    locale = rest[0].decode() if rest else None
    if body is None:
        return NotModified(version, version_text.decode(), fresh_until, locale)
    return Document(body, version, version_text.decode(), fresh_until, locale)


def _read_sync(conn: psycopg.Connection[Any], params: dict[str, Any]) -> Any:
    for attempt in range(1, RETRY_ATTEMPTS + 1):
        reader = views._reader(conn, views._SyncReader)
        try:
            with reader.lock:
                cur = reader.cursor
                cur.execute(_query(params), params, binary=True)
                return _answer(cur.fetchone())
        except psycopg.Error as exc:
            error = translate(exc)
            if not views._retry_read(conn, error, attempt):
                raise error from exc
        time.sleep(_backoff(attempt))
    raise AssertionError("unreachable")  # pragma: no cover


async def _read_async(conn: psycopg.AsyncConnection[Any], params: dict[str, Any]) -> Any:
    for attempt in range(1, RETRY_ATTEMPTS + 1):
        reader = views._reader(conn, views._AsyncReader)
        try:
            async with reader.lock:
                cur = reader.cursor
                await cur.execute(_query(params), params, binary=True)
                return _answer(await cur.fetchone())
        except psycopg.Error as exc:
            error = translate(exc)
            if not views._retry_read(conn, error, attempt):
                raise error from exc
        await asyncio.sleep(_backoff(attempt))
    raise AssertionError("unreachable")  # pragma: no cover


@overload
def document(
    conn: psycopg.AsyncConnection[Any],
    /,
    slug: str,
    name: str,
    *,
    token: str | None = None,
    if_version: str | int | None = None,
    maintenance_horizon: dt.timedelta = ...,
    maintenance_limit: int = 20,
    locale: str | None = None,
) -> Coroutine[Any, Any, Document | NotModified | None]: ...


@overload
def document(
    conn: psycopg.Connection[Any],
    /,
    slug: str,
    name: str,
    *,
    token: str | None = None,
    if_version: str | int | None = None,
    maintenance_horizon: dt.timedelta = ...,
    maintenance_limit: int = 20,
    locale: str | None = None,
) -> Document | NotModified | None: ...


def document(
    conn: Any,
    /,
    slug: str,
    name: str,
    *,
    token: str | None = None,
    if_version: str | int | None = None,
    maintenance_horizon: dt.timedelta = _WEEK,
    maintenance_limit: int = 20,
    locale: str | None = None,
) -> Any:
    """The Statuspage v2 document `name` of page `slug` as JSON bytes (`Document`).

    `views.page_view_bytes`'s arguments and access rule: None for an unknown slug or a private
    page without its token; `NotModified` when `if_version` is the document's `version_text`
    (an int is taken as its text: the version of the documents without a stamp).
    `locale` (a BCP 47 tag, migration 0035): every text in that tag, else its language, else
    the page's own, as `views.page_view`'s; `Document.locale` says which, and `version_text`
    is then ``"<version_text>.<locale>"`` (one ETag per locale used).
    For a sync connection the answer, for an async one a coroutine.
    """
    params = _params(slug, name, token, if_version, maintenance_horizon, maintenance_limit, locale)
    if isinstance(conn, psycopg.Connection):
        return None if params is None else _read_sync(conn, params)
    if isinstance(conn, psycopg.AsyncConnection):
        return views._none() if params is None else _read_async(conn, params)
    raise _not_a_connection(conn, "statuspage.document")


async def adocument(
    conn: psycopg.AsyncConnection[Any],
    /,
    slug: str,
    name: str,
    *,
    token: str | None = None,
    if_version: str | int | None = None,
    maintenance_horizon: dt.timedelta = _WEEK,
    maintenance_limit: int = 20,
    locale: str | None = None,
) -> Document | NotModified | None:
    """`document` on an async connection, as a coroutine function (for route tables)."""
    return await document(
        conn,
        slug,
        name,
        token=token,
        if_version=if_version,
        maintenance_horizon=maintenance_horizon,
        maintenance_limit=maintenance_limit,
        locale=locale,
    )
