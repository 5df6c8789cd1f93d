"""Statuspage v2 documents (statusdb.formats.statuspage, migration 0034) against the published
field list (tests/statuspage_v2_fields.py), for public and private pages, groups, DST zones and
conditional reads."""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from typing import Any

import psycopg
import pytest
import statuspage_v2_fields as spec
from factories import new_page

from statusdb import groups, maintenance, pages, status_incidents, teams, translations, views
from statusdb.errors import InvalidInput
from statusdb.formats import statuspage
from statusdb.pages import NewComponent

Conn = psycopg.Connection[Any]
_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d$")


def _type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    names: dict[type, str] = {str: "string", list: "array", dict: "object"}
    return names[type(value)]


def check(obj: dict[str, Any], fields: dict[str, frozenset[str]], what: str) -> None:
    """Every published field present with a published type, and nothing else."""
    assert set(obj) == set(fields), what
    for name, types in fields.items():
        assert _type(obj[name]) in types, f"{what}.{name} = {obj[name]!r}"
        if name.endswith("_at") or name in ("scheduled_for", "scheduled_until"):
            assert obj[name] is None or _TIME.match(obj[name]), f"{what}.{name} = {obj[name]!r}"


def check_incident(incident: dict[str, Any], fields: dict[str, frozenset[str]]) -> None:
    check(incident, fields, "incident")
    assert incident["impact"] in spec.IMPACTS
    for update in incident["incident_updates"]:
        check(update, spec.INCIDENT_UPDATE, "incident_update")
        assert update["incident_id"] == incident["id"]
    for component in incident["components"]:
        check_component(component)


def check_component(component: dict[str, Any]) -> None:
    check(component, spec.GROUP if component["group"] else spec.COMPONENT, "component")
    assert component["status"] in spec.COMPONENT_STATUSES


def read(conn: Conn, slug: str, name: str, **kwargs: Any) -> dict[str, Any]:
    answer = statuspage.document(conn, slug, name, **kwargs)
    assert isinstance(answer, statuspage.Document), answer
    document: dict[str, Any] = json.loads(answer.body)
    assert set(document) == set(spec.DOCUMENTS[name]), name
    check(document["page"], spec.PAGE, "page")
    for key in ("components",):
        for component in document.get(key, []):
            check_component(component)
    for incident in document.get("incidents", []):
        check_incident(incident, spec.INCIDENT)
        assert incident["status"] in spec.INCIDENT_STATUSES
    for window in document.get("scheduled_maintenances", []):
        check_incident(window, spec.SCHEDULED_MAINTENANCE)
        assert window["status"] in spec.MAINTENANCE_STATUSES
    if "status" in document:
        check(document["status"], spec.STATUS, "status")
        assert document["status"]["indicator"] in spec.INDICATORS
    return document


def busy_page(conn: Conn, *, is_public: bool = True, time_zone: str = "UTC") -> Any:
    """A page with a group, components, an open and a resolved incident, and windows."""
    team = teams.create(conn, name=f"sp-{uuid.uuid4().hex[:8]}")
    slug = f"sp-{uuid.uuid4().hex[:10]}"
    created = pages.create(
        conn,
        team_id=team.id,
        name="Statuspage demo",
        slug=slug,
        created_by_id="ops",
        is_public=is_public,
        components=[NewComponent(name="API"), NewComponent(name="Web", description="site")],
    )
    page = created.page
    if time_zone != "UTC":
        conn.execute("UPDATE status_page SET time_zone = %s WHERE id = %s", (time_zone, page.id))
    api, web = (
        row[0]
        for row in conn.execute(
            "SELECT id FROM status_page_component WHERE status_page_id = %s ORDER BY name",
            (page.id,),
        )
    )
    group = groups.create(conn, page.id, name="Core")
    groups.assign(conn, api, group.id)
    conn.execute(
        "UPDATE status_page_component SET manual_status = 'PARTIAL_OUTAGE' WHERE id = %s", (web,)
    )
    open_one = status_incidents.create(
        conn,
        page.id,
        title="Slow API",
        severity="MAJOR",
        message="Looking",
        affected_component_ids=[api],
    )
    status_incidents.add_update(conn, open_one.id, status="MONITORING", message="Fixed, watching")
    done = status_incidents.create(conn, page.id, title="Old", severity="MINOR", message="Oops")
    status_incidents.add_update(conn, done.id, status="RESOLVED", message="Gone")
    now = dt.datetime.now(dt.UTC)
    soon = maintenance.create(
        conn,
        page.id,
        title="Upgrade",
        start_time=now + dt.timedelta(days=1),
        end_time=now + dt.timedelta(days=1, hours=2),
        component_ids=[api],
        created_by_id="ops",
    )
    return (
        created,
        slug,
        {
            "api": api,
            "web": web,
            "group": group.id,
            "open": open_one.id,
            "done": done.id,
            "soon": soon.id,
        },
    )


def test_every_document_has_the_published_fields_and_types(conn: Conn) -> None:
    _, slug, ids = busy_page(conn)
    for name in statuspage.DOCUMENTS:
        read(conn, slug, name)
    summary = read(conn, slug, "summary")
    assert summary["status"] == {"indicator": "major", "description": "Partial System Outage"}
    by_id = {c["id"]: c for c in summary["components"]}
    assert by_id[ids["web"]]["status"] == "partial_outage"
    assert by_id[ids["web"]]["description"] == "site"
    assert by_id[ids["api"]]["group_id"] == ids["group"]
    assert by_id[ids["group"]]["group"] is True
    assert by_id[ids["group"]]["components"] == [ids["api"]]
    assert sorted(c["position"] for c in summary["components"]) == [1, 2, 3]
    assert [i["id"] for i in summary["incidents"]] == [ids["open"]]  # unresolved only
    incident = summary["incidents"][0]
    assert incident["impact"] == "major"
    assert incident["status"] == "monitoring"
    assert [u["status"] for u in incident["incident_updates"]] == ["monitoring", "investigating"]
    assert incident["monitoring_at"] == incident["incident_updates"][0]["created_at"]
    assert incident["resolved_at"] is None
    assert [c["id"] for c in incident["components"]] == [ids["api"]]
    assert [w["id"] for w in summary["scheduled_maintenances"]] == [ids["soon"]]
    assert summary["scheduled_maintenances"][0]["status"] == "scheduled"
    everything = read(conn, slug, "incidents")
    assert [i["id"] for i in everything["incidents"]] == [ids["done"], ids["open"]]
    resolved = everything["incidents"][0]
    assert resolved["status"] == "resolved"
    assert resolved["resolved_at"] is not None
    assert read(conn, slug, "scheduled-maintenances/active")["scheduled_maintenances"] == []
    upcoming = read(conn, slug, "scheduled-maintenances/upcoming")
    assert [w["id"] for w in upcoming["scheduled_maintenances"]] == [ids["soon"]]
    for path, fields in spec.DOCUMENTS.items():
        assert set(read(conn, slug, path)) == set(fields)
    for kind, names in statuspage.NULL_FIELDS.items():
        assert kind in ("page", "component", "incident", "incident_update", "scheduled_maintenance")
        for field in names:
            if kind == "page":
                assert summary["page"][field] is None


def _document(conn: Conn, slug: str, name: str, **kwargs: Any) -> statuspage.Document:
    answer = statuspage.document(conn, slug, name, **kwargs)
    assert isinstance(answer, statuspage.Document), answer
    return answer


def test_resolved_and_completed_edits_change_the_etag(conn: Conn) -> None:
    """History is read when a document is composed: an edit of a resolved incident or of a
    completed window does not move the page's version, but the ETag of the document listing it
    (version_text) changes, and if_version with the old one is answered in full."""
    _, slug, ids = busy_page(conn)
    before = _document(conn, slug, "incidents")
    assert before.version_text.startswith(f"{before.version}-")
    unchanged = statuspage.document(conn, slug, "incidents", if_version=before.version_text)
    assert unchanged == statuspage.NotModified(
        before.version, before.version_text, before.fresh_until
    )
    # The plain version is not the ETag of a document with a stamp: never not-modified.
    assert isinstance(
        statuspage.document(conn, slug, "incidents", if_version=before.version),
        statuspage.Document,
    )
    status_incidents.edit(conn, ids["done"], title="Old, renamed")
    after = _document(conn, slug, "incidents", if_version=before.version_text)
    assert after.version == before.version  # nothing the page view shows changed
    assert after.version_text != before.version_text
    assert b"Old, renamed" in after.body
    assert statuspage.document(conn, slug, "incidents", if_version=after.version_text) == (
        statuspage.NotModified(after.version, after.version_text, after.fresh_until)
    )
    # A deleted resolved incident changes it too (count and max alone could miss this).
    conn.execute("DELETE FROM status_incident WHERE id = %s", (ids["done"],))
    gone = _document(conn, slug, "incidents", if_version=after.version_text)
    assert gone.version_text not in (before.version_text, after.version_text)
    assert ids["done"].encode() not in gone.body
    conn.execute(  # as the scheduler moves it: started, then completed
        "UPDATE maintenance_window SET status = 'IN_PROGRESS' WHERE id = %s", (ids["soon"],)
    )
    active = read(conn, slug, "scheduled-maintenances/active")["scheduled_maintenances"]
    assert [(w["id"], w["status"]) for w in active] == [(ids["soon"], "in_progress")]
    conn.execute("UPDATE maintenance_window SET status = 'COMPLETED' WHERE id = %s", (ids["soon"],))
    windows = read(conn, slug, "scheduled-maintenances")["scheduled_maintenances"]
    assert [(w["id"], w["status"]) for w in windows] == [(ids["soon"], "completed")]
    assert read(conn, slug, "summary")["scheduled_maintenances"] == []
    done = _document(conn, slug, "scheduled-maintenances")
    conn.execute(
        "UPDATE maintenance_window SET title = 'Upgrade, done' WHERE id = %s", (ids["soon"],)
    )
    edited = _document(conn, slug, "scheduled-maintenances", if_version=done.version_text)
    assert (edited.version, b"Upgrade, done" in edited.body) == (done.version, True)
    assert edited.version_text != done.version_text
    # Its components are part of the stamp (they do not touch the window's updated_at).
    conn.execute(
        "DELETE FROM maintenance_window_component WHERE maintenance_window_id = %s",
        (ids["soon"],),
    )
    fewer = _document(conn, slug, "scheduled-maintenances", if_version=edited.version_text)
    assert fewer.version_text != edited.version_text
    # The documents that list no history keep the page view's ETag.
    assert _document(conn, slug, "summary").version_text == str(fewer.version)


def test_not_modified_and_the_page_views_version(conn: Conn) -> None:
    _, slug, _ = busy_page(conn)
    first = _document(conn, slug, "summary")
    view = views.page_view_bytes(conn, slug)
    assert isinstance(view, views.PageBytes)
    assert (first.version, first.fresh_until) == (view.version, view.fresh_until)
    assert first.version_text == view.version_text
    again = statuspage.document(conn, slug, "summary", if_version=first.version_text)
    assert again == statuspage.NotModified(first.version, first.version_text, first.fresh_until)
    assert statuspage.document(conn, slug, "summary", if_version=first.version) == again
    stale = _document(conn, slug, "summary", if_version=first.version - 1)
    assert stale.body == first.body
    with pytest.raises(InvalidInput):
        statuspage.document(conn, slug, "summary", if_version=1.5)  # type: ignore[call-overload]


def test_private_pages_need_their_token(conn: Conn) -> None:
    created, slug, _ = busy_page(conn, is_public=False)
    token = created.access_token
    assert token is not None
    for name in statuspage.DOCUMENTS:
        assert statuspage.document(conn, slug, name) is None
        assert statuspage.document(conn, slug, name, token="wrong") is None
        assert statuspage.document(conn, slug, name, token="wrong", if_version=1) is None
        assert statuspage.document(conn, "no-such-page", name) is None
        read(conn, slug, name, token=token)


def _next(month: int, after: dt.datetime) -> dt.datetime:
    """The next 1st of `month`, 10:00 UTC, after `after` (always within a year)."""
    at = dt.datetime(after.year, month, 1, 10, tzinfo=dt.UTC)
    return at if at > after else at.replace(year=after.year + 1)


@pytest.mark.parametrize(
    ("zone", "summer", "winter"),
    [
        ("Europe/Berlin", "T12:00:00.000+02:00", "T11:00:00.000+01:00"),
        ("America/St_Johns", "T07:30:00.000-02:30", "T06:30:00.000-03:30"),
        ("Australia/Sydney", "T20:00:00.000+10:00", "T21:00:00.000+11:00"),
    ],
)
def test_dst_zones_write_the_offset_of_each_instant(
    conn: Conn, zone: str, summer: str, winter: str
) -> None:
    created, slug, _ = busy_page(conn, time_zone=zone)
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(days=2)
    for month in (7, 12):  # July and December: each side of DST, in either hemisphere
        start = _next(month, soon)
        maintenance.create(
            conn,
            created.page.id,
            title=f"In {month}",
            start_time=start,
            end_time=start + dt.timedelta(hours=1),
            created_by_id="ops",
        )
    document = read(
        conn,
        slug,
        "scheduled-maintenances/upcoming",
        maintenance_horizon=dt.timedelta(days=366),
        maintenance_limit=200,
    )
    found = {w["name"]: w for w in document["scheduled_maintenances"]}
    assert found["In 7"]["scheduled_for"].endswith(summer)
    assert found["In 12"]["scheduled_for"].endswith(winter)
    assert found["In 12"]["scheduled_for"].startswith(f"{_next(12, soon):%Y-%m-%d}")
    assert document["page"]["time_zone"] == zone
    for component in read(conn, slug, "components")["components"]:
        assert component["created_at"][-6:] in (summer[-6:], winter[-6:])


def test_unknown_document_names_are_refused(conn: Conn) -> None:
    with pytest.raises(InvalidInput):
        statuspage.document(conn, "x", "summary.json")
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        conn.execute("SELECT * FROM statusdb_page_statuspage('x', NULL, NULL, NULL, NULL, 'nope')")


def test_a_page_with_nothing_on_it(conn: Conn) -> None:
    team = teams.create(conn, name=f"sp-{uuid.uuid4().hex[:8]}")
    page = new_page(conn, team.id, slug=f"sp-{uuid.uuid4().hex[:10]}")
    summary = read(conn, page.slug, "summary")
    assert summary["status"] == {"indicator": "none", "description": "All Systems Operational"}
    assert summary["components"] == summary["incidents"] == []
    assert summary["scheduled_maintenances"] == []


async def test_async_connection(aconn: psycopg.AsyncConnection[Any]) -> None:
    team = await teams.create(aconn, name="sp-async")
    await pages.create(
        aconn, team_id=team.id, name="A", slug="sp-async", created_by_id="u", is_public=True
    )
    await aconn.commit()
    answer = await statuspage.adocument(aconn, "sp-async", "status")
    assert isinstance(answer, statuspage.Document)
    assert json.loads(answer.body)["status"]["indicator"] == "none"


def test_a_resolved_incident_shows_its_25_latest_updates(conn: Conn) -> None:
    created, slug, _ = busy_page(conn)
    long = status_incidents.create(
        conn, created.page.id, title="Long one", severity="CRITICAL", message="update 1"
    )
    for n in range(2, 30):
        status_incidents.add_update(conn, long.id, status="MONITORING", message=f"update {n}")
    status_incidents.add_update(conn, long.id, status="RESOLVED", message="update 30")
    incidents = {i["id"]: i for i in read(conn, slug, "incidents")["incidents"]}
    updates = incidents[long.id]["incident_updates"]
    assert [u["body"] for u in updates] == [f"update {n}" for n in range(30, 5, -1)]
    assert [u["id"] for u in updates] == [f"{long.id}-{n}" for n in range(30, 5, -1)]
    assert incidents[long.id]["monitoring_at"] == updates[1]["created_at"]


def translated_page(conn: Conn, *, is_public: bool = True) -> Any:
    """busy_page with German translations of every text kind, a Swiss name of one component,
    a second window completed (with a translation) and the resolved incident translated."""
    created, slug, ids = busy_page(conn, is_public=is_public)
    page_id = created.page.id
    now = dt.datetime.now(dt.UTC)
    old = maintenance.create(
        conn,
        page_id,
        title="Old window",
        description="Was done",
        start_time=now + dt.timedelta(days=2),
        end_time=now + dt.timedelta(days=2, hours=1),
        created_by_id="ops",
    )
    conn.execute("UPDATE maintenance_window SET status = 'IN_PROGRESS' WHERE id = %s", (old.id,))
    conn.execute("UPDATE maintenance_window SET status = 'COMPLETED' WHERE id = %s", (old.id,))
    ids["old_window"] = old.id
    de: list[tuple[Any, str, str, str, int]] = [
        ("page", page_id, "name", "Statusseite", 0),
        ("component", ids["api"], "name", "Schnittstelle", 0),
        ("component", ids["web"], "description", "Webseite", 0),
        ("group", ids["group"], "name", "Kern", 0),
        ("incident", ids["open"], "title", "Langsame API", 0),
        ("incident_update", ids["open"], "message", "Wir schauen", 1),
        ("incident_update", ids["open"], "message", "Behoben, wir beobachten", 2),
        ("incident", ids["done"], "title", "Alt", 0),
        ("incident_update", ids["done"], "message", "Weg", 2),
        ("maintenance", ids["soon"], "title", "Aktualisierung", 0),
        ("maintenance", old.id, "title", "Altes Fenster", 0),
        ("maintenance", old.id, "description", "Erledigt", 0),
    ]
    for kind, entity_id, field, text, number in de:
        translations.set(
            conn,
            page_id,
            "de",
            entity=kind,
            entity_id=entity_id,
            field=field,
            text=text,
            update_number=number,
        )
    translations.set(
        conn,
        page_id,
        "de-CH",
        entity="component",
        entity_id=ids["api"],
        field="name",
        text="Schnittstell",
    )
    return created, slug, ids


def test_translated_documents_carry_the_translated_texts(conn: Conn) -> None:
    _, slug, ids = translated_page(conn)
    for name in statuspage.DOCUMENTS:
        read(conn, slug, name, locale="de")  # the published field list, in a locale
    summary = read(conn, slug, "summary", locale="de")
    assert summary["page"]["name"] == "Statusseite"
    by_id = {c["id"]: c for c in summary["components"]}
    assert by_id[ids["api"]]["name"] == "Schnittstelle"
    assert by_id[ids["web"]]["name"] == "Web"  # no translation: the page's own text
    assert by_id[ids["web"]]["description"] == "Webseite"
    assert by_id[ids["group"]]["name"] == "Kern"
    incident = summary["incidents"][0]
    assert incident["name"] == "Langsame API"
    assert [u["body"] for u in incident["incident_updates"]] == [
        "Behoben, wir beobachten",
        "Wir schauen",
    ]
    assert incident["components"][0]["name"] == "Schnittstelle"
    assert summary["scheduled_maintenances"][0]["name"] == "Aktualisierung"
    components = read(conn, slug, "components", locale="de")["components"]
    assert {c["name"] for c in components} == {"Schnittstelle", "Web", "Kern"}
    incidents = {i["id"]: i for i in read(conn, slug, "incidents", locale="de")["incidents"]}
    assert incidents[ids["done"]]["name"] == "Alt"  # resolved ones too
    assert [u["body"] for u in incidents[ids["done"]]["incident_updates"]] == ["Weg", "Oops"]
    windows = {
        w["id"]: w
        for w in read(conn, slug, "scheduled-maintenances", locale="de")["scheduled_maintenances"]
    }
    assert windows[ids["soon"]]["name"] == "Aktualisierung"
    assert windows[ids["old_window"]]["name"] == "Altes Fenster"  # completed ones too
    assert windows[ids["old_window"]]["incident_updates"][0]["body"] == "Erledigt"
    upcoming = read(conn, slug, "scheduled-maintenances/upcoming", locale="de")
    assert upcoming["scheduled_maintenances"][0]["name"] == "Aktualisierung"
    # Without a locale, or in one the page has nothing in: the page's own texts.
    own = read(conn, slug, "summary")
    assert own["page"]["name"] == "Statuspage demo"
    assert read(conn, slug, "summary", locale="ja") == own
    assert _document(conn, slug, "summary", locale="ja").locale == "en"


def test_translated_documents_fall_back_tag_language_default(conn: Conn) -> None:
    _, slug, ids = translated_page(conn)
    swiss = _document(conn, slug, "components", locale="de-ch")
    assert swiss.locale == "de-CH"
    names = {c["id"]: c["name"] for c in json.loads(swiss.body)["components"]}
    assert names[ids["api"]] == "Schnittstell"  # the tag's
    assert names[ids["group"]] == "Kern"  # its language's
    assert names[ids["web"]] == "Web"  # the page's own
    austrian = _document(conn, slug, "components", locale="de-AT")
    assert austrian.locale == "de"
    assert {c["name"] for c in json.loads(austrian.body)["components"]} >= {"Schnittstelle"}
    with pytest.raises(InvalidInput):
        statuspage.document(conn, slug, "summary", locale="de_DE")
    with pytest.raises(psycopg.errors.InvalidParameterValue), conn.transaction():
        conn.execute(
            "SELECT * FROM statusdb_page_statuspage_v2(%s, NULL, NULL, NULL, NULL,"
            " 'summary', 'not a tag')",
            (slug,),
        )


def test_translated_private_page_needs_its_token(conn: Conn) -> None:
    created, slug, _ = translated_page(conn, is_public=False)
    token = created.access_token
    assert token is not None
    for name in statuspage.DOCUMENTS:
        assert statuspage.document(conn, slug, name, locale="de") is None
        assert statuspage.document(conn, slug, name, locale="de", token="wrong") is None
        assert statuspage.document(conn, "no-such-page", name, locale="de") is None
        read(conn, slug, name, token=token, locale="de")
    assert b"Statusseite" in _document(conn, slug, "summary", token=token, locale="de").body


def test_the_etag_differs_per_locale_and_moves_with_a_translation(conn: Conn) -> None:
    created, slug, ids = translated_page(conn)
    for name in ("summary", "incidents", "scheduled-maintenances"):
        german = _document(conn, slug, name, locale="de")
        swiss = _document(conn, slug, name, locale="de-CH")
        own = _document(conn, slug, name)
        assert german.version_text.endswith(".de")
        assert swiss.version_text.endswith(".de-CH")
        assert german.version_text == own.version_text + ".de"
        assert len({german.version_text, swiss.version_text, own.version_text}) == 3
        # Another locale's ETag is not this one's: answered in full.
        again = statuspage.document(conn, slug, name, locale="de", if_version=swiss.version_text)
        assert isinstance(again, statuspage.Document)
        assert statuspage.document(
            conn, slug, name, locale="de", if_version=german.version_text
        ) == statuspage.NotModified(german.version, german.version_text, german.fresh_until, "de")
    before = _document(conn, slug, "incidents", locale="de")
    translations.set(  # a resolved incident's translation: the ETag moves too
        conn,
        created.page.id,
        "de",
        entity="incident",
        entity_id=ids["done"],
        field="title",
        text="Uralt",
    )
    after = _document(conn, slug, "incidents", locale="de", if_version=before.version_text)
    assert after.version_text != before.version_text
    assert b"Uralt" in after.body


def test_a_long_resolved_timeline_is_translated_by_entry_number(conn: Conn) -> None:
    """The resolved incident's entries are translated by their number in the whole timeline,
    before the 25 latest are kept (entry 6 is the 25th latest of 30)."""
    created, slug, _ = busy_page(conn)
    long = status_incidents.create(
        conn, created.page.id, title="Long one", severity="CRITICAL", message="update 1"
    )
    for n in range(2, 30):
        status_incidents.add_update(conn, long.id, status="MONITORING", message=f"update {n}")
    status_incidents.add_update(conn, long.id, status="RESOLVED", message="update 30")
    for n in (1, 6, 30):
        translations.set(
            conn,
            created.page.id,
            "de",
            entity="incident_update",
            entity_id=long.id,
            field="message",
            text=f"Eintrag {n}",
            update_number=n,
        )
    incidents = {i["id"]: i for i in read(conn, slug, "incidents", locale="de")["incidents"]}
    bodies = [u["body"] for u in incidents[long.id]["incident_updates"]]
    assert bodies == ["Eintrag 30", *(f"update {n}" for n in range(29, 6, -1)), "Eintrag 6"]
