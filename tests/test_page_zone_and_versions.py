"""What messages and pages need (issue 25, item 3): the page's name, slug and time zone in
every notification and in the page view, times shown in the page's zone, versions as text."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections import Counter

import attrs
import psycopg
import pytest
from factories import new_page, new_subscriber
from psycopg.rows import TupleRow

from statusdb import components, feed, incidents, maintenance, pages, status_incidents, teams, views
from statusdb.domain import serialise
from statusdb.domain.types import (
    IncidentNotification,
    Notification,
    StatusChangeNotification,
)
from statusdb.errors import InvalidInput
from statusdb.workers import deliveries, outbox

Conn = psycopg.Connection[TupleRow]
ZONE = "Asia/Kolkata"
BIG = 2**53 + 1  # a version JavaScript's numbers cannot hold


def _zoned_page(conn: Conn, zone: str = ZONE) -> tuple[str, pages.StatusPage]:
    slug = f"zone-{uuid.uuid4().hex[:10]}"
    team = teams.create(conn, name=f"T {slug}")
    page = new_page(conn, team.id, slug=slug, name=f"Page {slug}")
    page = pages.update(conn, page.id, time_zone=zone)
    return team.id, page


# -- notifications -----------------------------------------------------------------------------


@pytest.mark.fresh_db
def test_every_kind_of_notification_names_the_page_and_its_zone(conn: Conn) -> None:
    team_id, page = _zoned_page(conn)
    comp = components.create(conn, page.id, name="API", team_id=team_id, service_identifier="s")
    new_subscriber(conn, page.id, f"all-{page.slug}")
    conn.commit()
    start = dt.datetime(2031, 3, 1, 10, tzinfo=dt.UTC)
    incidents.create(conn, team_id, title="down", priority="CRITICAL", service_identifier="s")
    story = status_incidents.create(
        conn, page.id, title="Slow", severity="MINOR", message="Looking", affected_component_ids=[]
    )
    status_incidents.add_update(conn, story.id, status="RESOLVED", message="Fixed.")
    window = maintenance.create(
        conn,
        page.id,
        title="Upgrade",
        start_time=start,
        end_time=start + dt.timedelta(hours=1),
        component_ids=[comp.id],
        created_by_id="u",
    )
    other = maintenance.create(
        conn,
        page.id,
        title="Never",
        start_time=start,
        end_time=start + dt.timedelta(hours=1),
        component_ids=[comp.id],
        created_by_id="u",
    )
    conn.commit()
    maintenance.update(conn, window.id, end_time=start + dt.timedelta(minutes=90))
    maintenance.cancel(conn, other.id)
    conn.commit()
    got: list[Notification] = []

    def drain() -> None:
        while outbox.process_all(
            conn,
            lambda note, _r, _k: got.append(note),
            worker_id="z",
            hold_down=dt.timedelta(0),
        ).claimed:
            pass

    drain()
    for at in (start - dt.timedelta(minutes=30), start + dt.timedelta(minutes=1)):
        maintenance.advance(conn, at)
        conn.commit()
        drain()
    maintenance.advance(conn, start + dt.timedelta(hours=2))
    conn.commit()
    drain()
    kinds = Counter(
        "status_change" if isinstance(n, StatusChangeNotification) else n.kind for n in got
    )
    for kind in (
        "status_change",
        "incident_created",
        "incident_resolved",
        "maintenance_scheduled",
        "maintenance_rescheduled",
        "maintenance_cancelled",
        "maintenance_reminder",
        "maintenance_started",
        "maintenance_completed",
    ):
        assert kinds[kind] >= 1, (kind, kinds)
    for note in got:
        assert (note.page_name, note.page_slug, note.page_time_zone) == (
            page.name,
            page.slug,
            ZONE,
        ), note
        when = (
            note.changed_at
            if isinstance(note, StatusChangeNotification)
            else note.at
            if isinstance(note, IncidentNotification)
            else note.start_time
        )
        assert when is not None, note
        assert note.local_time(when) == when
        assert note.local_time(when).utcoffset() == dt.timedelta(hours=5, minutes=30)
        assert note.time_text(when).endswith(" IST (UTC+05:30)")


def test_time_text_and_the_change_time_survive_a_retry_payload() -> None:
    changed = dt.datetime(2026, 3, 29, 12, 30, tzinfo=dt.UTC)
    note = StatusChangeNotification(
        "p", "Acme", "acme", "Europe/Berlin", "c", "API", "OPERATIONAL", "MAJOR_OUTAGE",
        changed_at=changed,
    )  # fmt: skip
    assert note.time_text(changed) == "2026-03-29 14:30 CEST (UTC+02:00)"
    assert attrs.evolve(note, page_time_zone="UTC").time_text(changed) == "2026-03-29 12:30 UTC"
    with pytest.raises(InvalidInput):
        note.local_time(dt.datetime(2026, 1, 1))  # naive: not an instant
    payload = deliveries.notification_payload(note)
    assert payload is not None
    retry = deliveries.DueRetry(
        "a", "k", "s", "WEBHOOK", "https://x.example.com", 1, changed, json.dumps(payload)
    )
    assert deliveries.decode_notification(retry) == note
    # A payload stored before changed_at existed still decodes.
    del payload["changed_at"]
    old = attrs.evolve(retry, payload_json=json.dumps(payload))
    assert deliveries.decode_notification(old) == attrs.evolve(note, changed_at=None)


# -- the page view -----------------------------------------------------------------------------


def test_the_page_view_has_the_page_time_zone(conn: Conn) -> None:
    _team, page = _zoned_page(conn, "Europe/Berlin")
    conn.commit()
    view = views.page_view(conn, page.slug)
    assert view is not None
    assert view.page.time_zone == "Europe/Berlin"
    answer = views.page_view_bytes(conn, page.slug)
    assert isinstance(answer, views.PageBytes)
    assert json.loads(answer.body)["time_zone"] == "Europe/Berlin"
    assert views.decode_page_bytes(answer) == view
    assert views.PageViewCache().get(conn, page.slug) == view


def _now(conn: Conn) -> dt.datetime:
    row = conn.execute("SELECT now()").fetchone()
    assert row is not None
    moment: dt.datetime = row[0]
    return moment


@pytest.mark.fresh_db
def test_a_new_time_zone_is_a_new_version(conn: Conn) -> None:
    _team, page = _zoned_page(conn, "Europe/Berlin")
    conn.commit()
    before = views.page_view(conn, page.slug)
    assert before is not None
    before_at = _now(conn)
    conn.commit()
    pages.update(conn, page.id, time_zone="America/New_York")
    conn.commit()
    after = views.page_view(conn, page.slug, if_version=before.version)
    assert isinstance(after, views.PageView)  # not NotModified: the zone changed
    assert after.version > before.version
    assert after.page.time_zone == "America/New_York"
    # The page as it was: its zone then (from the kept history).
    for at, zone in ((before_at, "Europe/Berlin"), (_now(conn), "America/New_York")):
        past = views.page_view_at(conn, page.slug, at=at)
        assert past is not None
        assert past.page.time_zone == zone


# -- versions as text --------------------------------------------------------------------------


def test_versions_are_text_wherever_a_client_gets_them(conn: Conn) -> None:
    _team, page = _zoned_page(conn)
    conn.commit()
    view = views.page_view(conn, page.slug)
    assert view is not None
    big = attrs.evolve(view, version=BIG)
    assert big.version_text == str(BIG)
    document = json.loads(json.dumps(serialise.asdict(big)))
    assert document["version"] == str(BIG)
    assert int(document["version"]) == BIG  # exact, unlike a JSON number read by JavaScript
    assert document["page"]["time_zone"] == ZONE
    assert document["page"]["updated_at"] == view.page.updated_at.isoformat()
    assert isinstance(document["page"]["components"], list)
    assert views.NotModified(BIG, None).version_text == str(BIG)
    assert serialise.asdict(views.NotModified(BIG, None)) == {
        "version": str(BIG),
        "fresh_until": None,
    }
    assert views.PageBytes(b"{}", BIG, None).version_text == str(BIG)
    event = feed.PageVersionEvent("p", BIG)
    assert event.version_text == str(BIG)
    assert serialise.asdict(event) == {"status_page_id": "p", "version": str(BIG)}
    # Plain attrs.asdict keeps the int (what the issue saw): use serialise.asdict.
    assert attrs.asdict(big)["version"] == BIG
    with pytest.raises(InvalidInput):
        serialise.asdict({"version": 1})
