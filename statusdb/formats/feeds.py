"""Atom 1.0 (RFC 4287) and RSS 2.0 feeds of a status page's incidents and maintenance.

`atom(conn, slug, token=..., limit=...)` and `rss(conn, slug, page_url=..., ...)` are
operations (sync or async connection, like any other) returning a `FeedDocument`: the UTF-8
XML bytes, `version_text` (an ETag: a digest of the bytes, so an unchanged page gives the same
one) and `content_type`. A private page needs its token; without it, `NotFound`, exactly like
an unknown slug.

Entries, newest updated first, at most `limit` (1 to 200) in all:

* one per status incident (unresolved ones and the latest resolved): the title, the timeline
  as content (newest first, each entry's time in the page's time zone), the affected
  components; `published` = created, `updated` = last changed;
* one per maintenance window (scheduled and running ones, then the latest completed and
  cancelled): when it runs (in the page's time zone), its recurrence, components, description
  and status changes; `published` = created, `updated` = its last change.

Ids are tag: URIs (RFC 4151) made of the page's and the entry's ids, stable for the life of
the row: `tag:<authority>:page/<page id>/incident/<id>`. Machine-readable times are in UTC
(RFC 3339 in Atom, RFC 822 in RSS). Every text is escaped by ElementTree, HTML content is
escaped once more (`html.escape`) before that, and characters XML cannot carry (control
characters, lone surrogates) are replaced by U+FFFD, so no stored title can break the document
or inject markup. The bytes depend only on the page's data (no clock): the same page always
renders the same bytes and the same version.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import html
import re
import urllib.parse
import xml.etree.ElementTree as ET
import zoneinfo
from collections.abc import Iterable
from typing import Final

import attrs

from statusdb.db.executor import Op, operation
from statusdb.domain import recurrence
from statusdb.errors import InvalidInput
from statusdb.formats import source
from statusdb.formats.source import (
    DEFAULT_LIMIT,
    FeedDocument,
    FeedIncident,
    FeedSource,
    FeedWindow,
    clean,
)

__all__ = [
    "ATOM_CONTENT_TYPE",
    "RSS_CONTENT_TYPE",
    "TAG_AUTHORITY",
    "FeedDocument",
    "atom",
    "render_atom",
    "render_rss",
    "rss",
]

ATOM_CONTENT_TYPE: Final = "application/atom+xml; charset=utf-8"
RSS_CONTENT_TYPE: Final = "application/rss+xml; charset=utf-8"
ATOM_NS: Final = "http://www.w3.org/2005/Atom"
#: The tagging entity of entry ids unless told (RFC 4151: a domain or e-mail address and a
#: date). A deployment passes its own (`status.example.com,2025`); ids stay stable as long as
#: it does not change.
TAG_AUTHORITY: Final = "statusdb,2024"
_TAG_AUTHORITY: Final = re.compile(
    r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,200}[A-Za-z0-9])?(?:@[A-Za-z0-9.-]{1,200})?"
    r",[0-9]{4}(?:-[0-9]{2}(?:-[0-9]{2})?)?"
)
_URL_MAX: Final = 2000

_INCIDENT_STATUS: Final = {
    "INVESTIGATING": "Investigating",
    "IDENTIFIED": "Identified",
    "MONITORING": "Monitoring",
    "RESOLVED": "Resolved",
}
_WINDOW_STATUS: Final = {
    "SCHEDULED": "Scheduled",
    "IN_PROGRESS": "In progress",
    "COMPLETED": "Completed",
    "CANCELLED": "Cancelled",
}


@attrs.frozen
class _Entry:
    id: str
    title: str
    published: dt.datetime
    updated: dt.datetime
    summary: str
    html: str
    categories: tuple[str, ...]


# -- arguments ---------------------------------------------------------------------------------


def _url(field: str, value: str | None) -> str | None:
    """An absolute http(s) URL, or None; anything else is InvalidInput."""
    if value is None:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= _URL_MAX:
        raise InvalidInput(f"{field} must be an absolute http(s) URL of at most {_URL_MAX} chars")
    parts = urllib.parse.urlsplit(value)
    if (
        parts.scheme not in ("http", "https")
        or not parts.netloc
        or clean(value) != value
        or any(c.isspace() for c in value)
    ):
        raise InvalidInput(f"{field} must be an absolute http(s) URL, not {value!r}")
    return value


def _authority(value: str) -> str:
    if not isinstance(value, str) or not _TAG_AUTHORITY.fullmatch(value):
        raise InvalidInput(
            "tag_authority must be a domain name (or e-mail address), a comma and a date "
            f"(RFC 4151: 'status.example.com,2025'), not {value!r}"
        )
    return value


def _zone(name: str) -> dt.tzinfo:
    """The page's zone; UTC for a name this machine does not know (a feed still renders)."""
    try:
        return recurrence.zone(name)
    except (InvalidInput, zoneinfo.ZoneInfoNotFoundError, ValueError):
        return dt.UTC


# -- text --------------------------------------------------------------------------------------


def _rfc3339(value: dt.datetime) -> str:
    utc = value.astimezone(dt.UTC)
    fraction = f".{utc.microsecond:06d}" if utc.microsecond else ""
    return utc.replace(microsecond=0, tzinfo=None).isoformat() + fraction + "Z"


def _rfc822(value: dt.datetime) -> str:
    return email.utils.format_datetime(value.astimezone(dt.UTC).replace(microsecond=0), True)


def _shown(value: dt.datetime, zone: dt.tzinfo) -> str:
    """A time as readers read it: in the page's zone, with its abbreviation."""
    local = value.astimezone(zone)
    day = local.date().isoformat()
    return f"{day} {local:%H:%M} {local.tzname() or ''}".rstrip()


def _p(*parts: str) -> str:
    return "<p>" + "".join(parts) + "</p>"


def _e(value: str) -> str:
    return html.escape(clean(value), quote=True)


def _incident_entry(page: FeedSource, incident: FeedIncident, tag: str, zone: dt.tzinfo) -> _Entry:
    status = _INCIDENT_STATUS.get(incident.status, incident.status)
    parts = [_p("<strong>", _e(status), "</strong> (", _e(incident.severity.lower()), ")")]
    if incident.components:
        parts.append(_p("Affected: ", _e(", ".join(incident.components))))
    for update in reversed(incident.updates):
        label = _INCIDENT_STATUS.get(update.status, update.status)
        parts.append(
            _p(
                "<strong>",
                _e(label),
                "</strong> - ",
                _e(_shown(update.timestamp, zone)),
                "<br/>",
                _e(update.message).replace("\n", "<br/>"),
            )
        )
    latest = incident.message if incident.message is not None else ""
    return _Entry(
        id=f"{tag}page/{page.id}/incident/{incident.id}",
        title=clean(f"{incident.title} [{status}]"),
        published=incident.created_at,
        updated=incident.updated_at,
        summary=clean(f"{status}: {latest}" if latest else status),
        html="".join(parts),
        categories=("incident", incident.severity.lower(), incident.status.lower()),
    )


def _window_entry(page: FeedSource, window: FeedWindow, tag: str, zone: dt.tzinfo) -> _Entry:
    status = _WINDOW_STATUS.get(window.status, window.status)
    when = f"{_shown(window.start_time, zone)} to {_shown(window.end_time, zone)}"
    parts = [_p("<strong>", _e(status), "</strong>: ", _e(when))]
    if window.recurrence_rule is not None:
        parts.append(_p("Repeats: ", _e(window.recurrence_rule), " in ", _e(window.time_zone)))
    if window.components:
        parts.append(_p("Components: ", _e(", ".join(window.components))))
    if window.description:
        parts.append(_p(_e(window.description).replace("\n", "<br/>")))
    for change in reversed(window.changes):
        label = _WINDOW_STATUS.get(change.status, change.status)
        parts.append(_p(_e(label), " - ", _e(_shown(change.at, zone))))
    updated = max([window.updated_at, *(change.at for change in window.changes)])
    return _Entry(
        id=f"{tag}page/{page.id}/maintenance/{window.id}",
        title=clean(f"Maintenance: {window.title} [{status}]"),
        published=window.created_at,
        updated=updated,
        summary=clean(f"{status}: {when}"),
        html="".join(parts),
        categories=("maintenance", window.status.lower()),
    )


def _entries(page: FeedSource, limit: int, tag_authority: str) -> list[_Entry]:
    tag = f"tag:{_authority(tag_authority)}:"
    zone = _zone(page.time_zone)
    entries = [_incident_entry(page, i, tag, zone) for i in page.incidents]
    entries += [_window_entry(page, w, tag, zone) for w in page.maintenance]
    entries.sort(key=lambda e: (e.updated, e.id), reverse=True)
    return entries[:limit]


def _updated(page: FeedSource, entries: Iterable[_Entry]) -> dt.datetime:
    return max([page.updated_at, *(entry.updated for entry in entries)])


def _child(parent: ET.Element, tag: str, text: str | None = None, **attrib: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrib)
    if text is not None:
        element.text = text
    return element


def _bytes(root: ET.Element) -> bytes:
    text: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return text + b"\n"


# -- Atom --------------------------------------------------------------------------------------


def render_atom(
    page: FeedSource,
    *,
    limit: int = DEFAULT_LIMIT,
    page_url: str | None = None,
    feed_url: str | None = None,
    tag_authority: str = TAG_AUTHORITY,
) -> FeedDocument:
    """The Atom 1.0 feed of `page` (as `source.read` returned it)."""
    page_url = _url("page_url", page_url)
    feed_url = _url("feed_url", feed_url)
    entries = _entries(page, limit, tag_authority)
    root = ET.Element("feed", {"xmlns": ATOM_NS})
    _child(root, "id", f"tag:{tag_authority}:page/{page.id}")
    _child(root, "title", clean(page.name), type="text")
    if page.description:
        _child(root, "subtitle", clean(page.description), type="text")
    _child(root, "updated", _rfc3339(_updated(page, entries)))
    author = _child(root, "author")
    _child(author, "name", clean(page.name))
    if page_url is not None:
        _child(root, "link", rel="alternate", type="text/html", href=page_url)
    if feed_url is not None:
        _child(root, "link", rel="self", type="application/atom+xml", href=feed_url)
    _child(root, "generator", "statusdb")
    for entry in entries:
        item = _child(root, "entry")
        _child(item, "id", entry.id)
        _child(item, "title", entry.title, type="text")
        _child(item, "published", _rfc3339(entry.published))
        _child(item, "updated", _rfc3339(entry.updated))
        if page_url is not None:
            _child(item, "link", rel="alternate", type="text/html", href=page_url)
        for term in entry.categories:
            _child(item, "category", term=term)
        _child(item, "summary", entry.summary, type="text")
        _child(item, "content", entry.html, type="html")
    return source.document(_bytes(root), ATOM_CONTENT_TYPE)


@operation(retry=True)
def atom(
    slug: str,
    *,
    token: str | None = None,
    limit: int = DEFAULT_LIMIT,
    page_url: str | None = None,
    feed_url: str | None = None,
    tag_authority: str = TAG_AUTHORITY,
) -> Op[FeedDocument]:
    """The Atom 1.0 feed of page `slug`: its latest `limit` (1 to 200) incidents and windows.

    `page_url` (the page for people) and `feed_url` (this feed's own URL: RFC 4287 asks for a
    rel="self" link) are absolute http(s) URLs, shown when given. A private page needs `token`;
    without it, NotFound like an unknown slug.
    """
    _url("page_url", page_url)
    _url("feed_url", feed_url)
    _authority(tag_authority)
    page = yield from source.read.body(slug, token=token, limit=limit)
    return render_atom(
        page, limit=limit, page_url=page_url, feed_url=feed_url, tag_authority=tag_authority
    )


# -- RSS 2.0 -----------------------------------------------------------------------------------


def render_rss(
    page: FeedSource,
    *,
    page_url: str,
    limit: int = DEFAULT_LIMIT,
    feed_url: str | None = None,
    tag_authority: str = TAG_AUTHORITY,
) -> FeedDocument:
    """The RSS 2.0 feed of `page` (as `source.read` returned it)."""
    link = _url("page_url", page_url)
    if link is None:
        raise InvalidInput("page_url is required: an RSS channel has a link")
    feed_url = _url("feed_url", feed_url)
    entries = _entries(page, limit, tag_authority)
    root = ET.Element("rss", {"version": "2.0", "xmlns:atom": ATOM_NS})
    channel = _child(root, "channel")
    _child(channel, "title", clean(page.name))
    _child(channel, "link", link)
    _child(channel, "description", clean(page.description or f"Status of {page.name}"))
    if feed_url is not None:
        _child(channel, "atom:link", rel="self", type="application/rss+xml", href=feed_url)
    _child(channel, "lastBuildDate", _rfc822(_updated(page, entries)))
    _child(channel, "generator", "statusdb")
    _child(channel, "docs", "https://www.rssboard.org/rss-specification")
    for entry in entries:
        item = _child(channel, "item")
        _child(item, "title", entry.title)
        _child(item, "link", link)
        _child(item, "description", entry.html)
        _child(item, "guid", entry.id, isPermaLink="false")
        _child(item, "pubDate", _rfc822(entry.updated))
        for term in entry.categories:
            _child(item, "category", term)
    return source.document(_bytes(root), RSS_CONTENT_TYPE)


@operation(retry=True)
def rss(
    slug: str,
    *,
    page_url: str,
    token: str | None = None,
    limit: int = DEFAULT_LIMIT,
    feed_url: str | None = None,
    tag_authority: str = TAG_AUTHORITY,
) -> Op[FeedDocument]:
    """The RSS 2.0 feed of page `slug`, the same entries as `atom`.

    `page_url` (required: an RSS channel and its items link to the page) and `feed_url` are
    absolute http(s) URLs. An item's pubDate is its last change (RSS has no "updated"); its
    guid is the Atom entry's id (not a permalink). A private page needs `token`.
    """
    if _url("page_url", page_url) is None:
        raise InvalidInput("page_url is required: an RSS channel has a link")
    _url("feed_url", feed_url)
    _authority(tag_authority)
    page = yield from source.read.body(slug, token=token, limit=limit)
    return render_rss(
        page, page_url=page_url, limit=limit, feed_url=feed_url, tag_authority=tag_authority
    )
