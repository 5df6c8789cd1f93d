"""Attack class: markup and control characters in a page's texts break or hijack its feeds
(issue 24, item 2).

Whoever may write a status incident, a maintenance window or a page (the app, a DBA's psql)
chooses its title, message and description. Put into XML or iCalendar as they are, a title
such as ``]]><script>`` or a control character (the API accepts U+0001..U+001F but NUL) makes
an Atom or RSS document that no XML parser accepts (a feed reader drops the whole feed) or
carries markup into readers' pages, and a description holding CRLF + ``END:VEVENT`` forges
calendar events. The feeds escape every text (ElementTree; HTML content escaped once more),
replace characters XML and iCalendar TEXT cannot carry by U+FFFD, and escape and fold
iCalendar TEXT values, so every feed still parses and shows the text as text.
"""

from __future__ import annotations

import datetime as dt
import uuid
import xml.etree.ElementTree as ET
from typing import Any

import feedparser
import icalendar
import psycopg
from psycopg.rows import TupleRow

from statusdb import maintenance, pages, status_incidents, teams
from statusdb.formats import feeds, ical

Conn = psycopg.Connection[TupleRow]

UTC = dt.UTC
CONTROLS = "".join(chr(c) for c in range(1, 32) if chr(c) not in "\t\n\r") + "\x7f\x85"
HOSTILE_TITLE = "]]><script>alert(1)</script> &amp; <![CDATA[x]]> \"q\" 'a'" + CONTROLS
HOSTILE_MESSAGE = '<img src=x onerror="alert(1)"> ]]> &#0; \x01\x1b[31m'
FORGED = "x\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:evil@statusdb\r\nSUMMARY:forged; a, b \\"


def _page(conn: Conn) -> tuple[str, str, str]:
    team = teams.create(conn, name=f"S36 {uuid.uuid4().hex[:6]}")
    created = pages.create(
        conn,
        team_id=team.id,
        name="Acme <b>Status</b> &\x07",
        description="]]> & <i>description</i>\x0b",
        slug=f"s36-{uuid.uuid4().hex[:10]}",
        created_by_id="ops",
        is_public=True,
    )
    incident = status_incidents.create(
        conn, created.page.id, title=HOSTILE_TITLE, severity="MAJOR", message=HOSTILE_MESSAGE
    )
    window = maintenance.create(
        conn,
        created.page.id,
        title="Upgrade\x01 <script>" + FORGED,
        description=FORGED,
        start_time=dt.datetime(2030, 5, 1, 8, 0, tzinfo=UTC),
        end_time=dt.datetime(2030, 5, 1, 9, 0, tzinfo=UTC),
        created_by_id="ops",
    )
    return created.page.slug, incident.id, window.id


def _cleaned(value: str) -> str:
    return "".join("\ufffd" if c in CONTROLS else c for c in value)


def test_hostile_texts_leave_atom_and_rss_well_formed_and_inert(conn: Conn) -> None:
    slug, incident_id, _ = _page(conn)
    for body, version in (
        (feeds.atom(conn, slug).body, "atom10"),
        (feeds.rss(conn, slug, page_url="https://status.example.com/").body, "rss20"),
    ):
        ET.fromstring(body)  # a strict XML 1.0 parser (expat) accepts it
        parsed = feedparser.parse(body)
        assert not parsed.bozo, parsed.get("bozo_exception")
        assert parsed.version == version
        assert parsed.feed.title == _cleaned("Acme <b>Status</b> &\x07")
        incident = next(e for e in parsed.entries if e.id.endswith(incident_id))
        assert incident.title == _cleaned(HOSTILE_TITLE) + " [Investigating]"
        content = incident.content[0].value if version == "atom10" else incident.description
        # The HTML shows the message as text: its markup arrives escaped, none of it as tags.
        assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in content
        assert "<img" not in content
        assert "<script" not in content
        assert b"<script" not in body
        assert b"\x01" not in body
        assert b"\x1b" not in body


def _ical(body: bytes) -> Any:
    return icalendar.Calendar.from_ical(body)


def test_hostile_texts_forge_no_calendar_event(conn: Conn) -> None:
    slug, _, window_id = _page(conn)
    body = ical.calendar(conn, slug).body
    assert b"\r\nUID:evil" not in body
    assert b"\r\nEND:VEVENT\r\nBEGIN:VEVENT" not in body
    for line in body.split(b"\r\n")[:-1]:
        assert len(line) <= 75
        assert not any(c < 32 and c != 9 for c in line), line  # no CONTROL in a content line
    (event,) = _ical(body).walk("VEVENT")
    assert str(event["UID"]) == f"maintenance-{window_id}@statusdb"
    assert str(event["SUMMARY"]) == _cleaned("Upgrade\x01 <script>" + FORGED).replace("\r\n", "\n")
    assert str(event["DESCRIPTION"]).startswith(FORGED.replace("\r\n", "\n"))
