"""Translations (migration 0033): the page view, the bytes read, the feeds and notifications
in a locale; the fallback chain; bounds; versions."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import feedparser
import icalendar
import psycopg
import pytest
from factories import new_page, new_subscriber

from statusdb import (
    components,
    groups,
    maintenance,
    pages,
    status_incidents,
    subscribers,
    teams,
    translations,
    views,
)
from statusdb.domain import validate
from statusdb.domain.types import IncidentNotification, MaintenanceNotification
from statusdb.errors import InvalidInput, NotFound
from statusdb.formats import feeds, ical
from statusdb.pages import NewComponent
from statusdb.workers import outbox

Conn = psycopg.Connection


def _slug() -> str:
    return f"tr-{uuid.uuid4().hex[:10]}"


def _page(conn: Conn, *, is_public: bool = True) -> tuple[pages.StatusPage, dict[str, str]]:
    team = teams.create(conn, name=f"T {uuid.uuid4().hex[:6]}")
    page = new_page(conn, team.id, slug=_slug(), name="Status", is_public=is_public)
    group = groups.create(conn, page.id, name="Core", description="Core services")
    api = components.create(conn, page.id, name="API", description="The API")
    conn.execute("UPDATE status_page_component SET group_id = %s WHERE id = %s", (group.id, api.id))
    incident = status_incidents.create(
        conn,
        page.id,
        title="Slow API",
        severity="MINOR",
        message="Looking",
        affected_component_ids=[api.id],
    )
    status_incidents.add_update(conn, incident.id, status="IDENTIFIED", message="Found it")
    start = dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)
    window = maintenance.create(
        conn,
        page.id,
        title="Upgrade",
        description="Database upgrade",
        start_time=start,
        end_time=start + dt.timedelta(hours=1),
        component_ids=[api.id],
        created_by_id="u1",
    )
    ids = {"group": group.id, "api": api.id, "incident": incident.id, "window": window.id}
    return page, ids


def _translate_de(conn: Conn, page_id: str, ids: dict[str, str]) -> None:
    t = translations.set
    t(conn, page_id, "de", entity="page", entity_id=page_id, field="name", text="Zustand")
    t(
        conn,
        page_id,
        "de",
        entity="component",
        entity_id=ids["api"],
        field="name",
        text="Schnittstelle",
    )
    t(conn, page_id, "de", entity="group", entity_id=ids["group"], field="name", text="Kern")
    t(
        conn,
        page_id,
        "de",
        entity="incident",
        entity_id=ids["incident"],
        field="title",
        text="Langsame API",
    )
    t(
        conn,
        page_id,
        "de",
        entity="incident_update",
        entity_id=ids["incident"],
        field="message",
        text="Gefunden",
        update_number=2,
    )
    t(
        conn,
        page_id,
        "de",
        entity="maintenance",
        entity_id=ids["window"],
        field="title",
        text="Aktualisierung",
    )


def test_locale_tags_are_canonicalised() -> None:
    assert validate.locale("l", "de-ch") == "de-CH"
    assert validate.locale("l", "ZH-hant-tw") == "zh-Hant-TW"
    assert validate.locale("l", "es-419") == "es-419"
    for bad in ("de_CH", "d", "de-CH-x-private", "", "de-", "deutsch"):
        with pytest.raises(InvalidInput):
            validate.locale("l", bad)


def test_page_view_in_a_locale_translates_every_kind(conn: Conn) -> None:
    page, ids = _page(conn)
    _translate_de(conn, page.id, ids)
    view = views.page_view(conn, page.slug, locale="de", maintenance_horizon=dt.timedelta(days=1))
    assert view is not None
    assert view.locale == "de"
    assert view.page.name == "Zustand"
    assert view.page.description == page.description  # not translated: the page's own
    (api,) = view.page.components
    assert (api.name, api.description) == ("Schnittstelle", "The API")
    assert (view.groups[0].name, view.groups[0].description) == ("Kern", "Core services")
    assert view.groups[0].components[0].name == "Schnittstelle"
    (incident,) = view.active_incidents
    assert incident.title == "Langsame API"
    assert [u.message for u in incident.updates] == ["Looking", "Gefunden"]
    (window,) = view.upcoming_maintenance
    assert (window.title, window.description) == ("Aktualisierung", "Database upgrade")
    # Without a locale, or in one the page lacks: the page's own texts, its default locale.
    plain = views.page_view(conn, page.slug, maintenance_horizon=dt.timedelta(days=1))
    assert plain is not None
    assert plain.page.name == "Status"
    assert plain.locale is None  # not asked: the page's own texts, as before
    french = views.page_view(conn, page.slug, locale="fr-FR")
    assert french is not None
    assert french.page.name == "Status"
    assert french.locale == "en"
    assert (
        views.page_view(conn, page.slug, locale="de", maintenance_horizon=dt.timedelta(days=1))
        == view
    )


def test_fallback_chain_tag_then_language_then_default(conn: Conn) -> None:
    page, ids = _page(conn)
    _translate_de(conn, page.id, ids)
    translations.set(
        conn, page.id, "de-CH", entity="page", entity_id=page.id, field="name", text="Zueschtand"
    )
    swiss = views.page_view(conn, page.slug, locale="de-ch")
    assert swiss is not None
    assert swiss.locale == "de-CH"
    assert swiss.page.name == "Zueschtand"  # the tag
    assert swiss.page.components[0].name == "Schnittstelle"  # its language
    assert swiss.active_incidents[0].updates[0].message == "Looking"  # the page's own
    austrian = views.page_view(conn, page.slug, locale="de-AT")
    assert austrian is not None
    assert austrian.locale == "de"
    assert austrian.page.name == "Zustand"
    assert translations.set_default_locale(conn, page.id, "en-gb") == "en-GB"
    assert views.page_view(conn, page.slug, locale="ja").locale == "en-GB"  # type: ignore[union-attr]


def test_bytes_read_in_a_locale_decodes_as_page_view(conn: Conn) -> None:
    page, ids = _page(conn)
    _translate_de(conn, page.id, ids)
    answer = views.page_view_bytes(conn, page.slug, locale="de")
    assert isinstance(answer, views.PageBytes)
    assert answer.locale == "de"
    assert json.loads(answer.body)["name"] == "Zustand"
    assert views.decode_page_bytes(answer) == views.page_view(conn, page.slug, locale="de")
    own = views.page_view_bytes(conn, page.slug, locale="fr")
    assert isinstance(own, views.PageBytes)
    assert own.locale == "en"
    assert own.body == views.page_view_bytes(conn, page.slug).body  # type: ignore[union-attr]
    unchanged = views.page_view_bytes(conn, page.slug, locale="de", if_version=answer.version)
    assert isinstance(unchanged, views.NotModified)


def test_a_translation_moves_the_version(conn: Conn) -> None:
    page, ids = _page(conn)
    before = views.page_view(conn, page.slug, locale="de")
    assert before is not None
    translations.set(
        conn,
        page.id,
        "de",
        entity="component",
        entity_id=ids["api"],
        field="description",
        text="Die API",
    )
    answer = views.page_view_bytes(conn, page.slug, locale="de", if_version=before.version)
    assert isinstance(answer, views.PageBytes)  # not "not modified": the text changed
    assert json.loads(answer.body)["components"][0][2] == "Die API"
    again = views.page_view(conn, page.slug, locale="de", if_version=answer.version)
    assert isinstance(again, views.NotModified)
    translations.delete(
        conn, page.id, "de", entity="component", entity_id=ids["api"], field="description"
    )
    gone = views.page_view(conn, page.slug, locale="de", if_version=answer.version)
    assert isinstance(gone, views.PageView)
    assert gone.page.components[0].description == "The API"
    translations.set_default_locale(conn, page.id, "fr")
    moved = views.page_view(conn, page.slug, locale="de", if_version=gone.version)
    assert isinstance(moved, views.PageView)
    assert moved.locale == "fr"


def test_deleting_an_entity_deletes_its_translations(conn: Conn) -> None:
    page, ids = _page(conn)
    _translate_de(conn, page.id, ids)
    assert len(translations.list_for_page(conn, page.id)) == 6
    components.delete(conn, ids["api"])
    status_incidents.delete(conn, ids["incident"])
    kinds = {t.entity_kind for t in translations.list_for_page(conn, page.id, locale="de")}
    assert kinds == {"page", "group", "maintenance"}
    assert translations.locales(conn, page.id) == ("de",)
    assert translations.delete_locale(conn, page.id, "de") == 3
    assert translations.list_for_page(conn, page.id) == ()


def test_translations_are_bounded_and_checked(conn: Conn) -> None:
    page, ids = _page(conn)
    _other, other_ids = _page(conn)
    t = translations.set
    with pytest.raises(InvalidInput):
        t(
            conn,
            page.id,
            "de",
            entity="component",
            entity_id=ids["api"],
            field="name",
            text="x" * 201,
        )
    t(
        conn,
        page.id,
        "de",
        entity="incident",
        entity_id=ids["incident"],
        field="title",
        text="x" * 500,
    )
    with pytest.raises(InvalidInput):
        t(
            conn,
            page.id,
            "de",
            entity="incident",
            entity_id=ids["incident"],
            field="title",
            text=" ",
        )
    with pytest.raises(InvalidInput):
        t(conn, page.id, "de", entity="incident", entity_id=ids["incident"], field="name", text="x")
    with pytest.raises(NotFound):  # another page's component
        t(
            conn,
            page.id,
            "de",
            entity="component",
            entity_id=other_ids["api"],
            field="name",
            text="x",
        )
    with pytest.raises(NotFound):  # no such timeline entry
        t(
            conn,
            page.id,
            "de",
            entity="incident_update",
            entity_id=ids["incident"],
            field="message",
            text="x",
            update_number=3,
        )
    conn.commit()
    # The database's own bounds, whatever the client (psql).
    for sql, constraint in [
        (
            "INSERT INTO translation (locale, entity_kind, entity_id, field, text) "
            "VALUES ('de', 'component', %(api)s, 'name', repeat('x', 201))",
            "translation_text_length_check",
        ),
        (
            "INSERT INTO translation (locale, entity_kind, entity_id, field, text) "
            "VALUES ('de_CH', 'component', %(api)s, 'name', 'x')",
            "translation_locale_check",
        ),
        (
            "INSERT INTO translation (locale, entity_kind, entity_id, field, text) "
            "VALUES ('de', 'component', 'nope', 'name', 'x')",
            "translation_entity_fkey",
        ),
    ]:
        with pytest.raises(psycopg.errors.IntegrityError) as caught:
            conn.execute(sql, ids)
        assert caught.value.diag.constraint_name == constraint
        conn.rollback()
    # At most 20 locales per page.
    for n in range(19):  # with de: 20
        tag = "a" + chr(ord("a") + n)
        t(conn, page.id, tag, entity="page", entity_id=page.id, field="name", text=tag)
    with pytest.raises(InvalidInput, match="20 locales"):
        t(conn, page.id, "zz", entity="page", entity_id=page.id, field="name", text="zz")


def test_private_page_translations_need_its_token(conn: Conn) -> None:
    team = teams.create(conn, name=f"T {uuid.uuid4().hex[:6]}")
    created = pages.create(
        conn,
        team_id=team.id,
        name="Secret",
        slug=_slug(),
        created_by_id="u",
        is_public=False,
        components=[NewComponent(name="API")],
    )
    page = created.page
    translations.set(
        conn, page.id, "de", entity="page", entity_id=page.id, field="name", text="Geheim"
    )
    assert views.page_view(conn, page.slug, locale="de") is None
    assert views.page_view(conn, page.slug, locale="de", token="wrong") is None
    assert views.page_view_bytes(conn, page.slug, locale="de") is None
    with pytest.raises(NotFound):
        feeds.atom(conn, page.slug, locale="de")
    shown = views.page_view(conn, page.slug, locale="de", token=created.access_token)
    assert shown is not None
    assert shown.page.name == "Geheim"


def test_feeds_in_a_locale_parse_with_the_translated_text(conn: Conn) -> None:
    page, ids = _page(conn)
    _translate_de(conn, page.id, ids)
    atom = feedparser.parse(feeds.atom(conn, page.slug, locale="de").body)
    assert not atom.bozo
    assert atom.feed.title == "Zustand"
    assert atom.feed.get("language") == "de"
    titles = [e.title for e in atom.entries]
    assert any("Langsame API" in t for t in titles)
    assert any("Aktualisierung" in t for t in titles)
    assert any("Gefunden" in e.content[0].value for e in atom.entries)
    assert any("Schnittstelle" in e.content[0].value for e in atom.entries)
    rss = feedparser.parse(
        feeds.rss(conn, page.slug, locale="de", page_url="https://status.example.com/").body
    )
    assert not rss.bozo
    assert rss.feed.title == "Zustand"
    assert rss.feed.language == "de"
    calendar = icalendar.Calendar.from_ical(ical.calendar(conn, page.slug, locale="de").body)
    summaries = [str(e["SUMMARY"]) for e in calendar.walk("VEVENT")]
    assert any("Aktualisierung" in text for text in summaries)
    plain = feedparser.parse(feeds.atom(conn, page.slug).body)
    assert plain.feed.title == "Status"


def test_notification_in_the_subscribers_locale(conn: Conn) -> None:
    page, ids = _page(conn)
    _translate_de(conn, page.id, ids)
    translations.set(
        conn,
        page.id,
        "de",
        entity="incident",
        entity_id=ids["incident"],
        field="message",
        text="Wir schauen",
    )
    conn.execute("SET CONSTRAINTS ALL IMMEDIATE")  # maintenance_scheduled is written at commit
    everything = outbox.claim_events(conn, worker_id="w", limit=10_000)
    claimed = [e for e in everything if e.subject_id == ids["incident"]]
    by_kind = {e.kind: e.notification for e in claimed}
    created, updated = by_kind["incident_created"], by_kind["incident_updated"]
    assert isinstance(updated, IncidentNotification)
    german = outbox.localize(conn, updated, "de-DE")
    assert isinstance(german, IncidentNotification)
    assert german.locale == "de"
    assert german.title == "Langsame API"
    assert german.message == "Gefunden"
    assert german.page_name == "Zustand"
    assert [c.name for c in german.components] == ["Schnittstelle"]
    first = outbox.localize(conn, created, "de")
    assert isinstance(first, IncidentNotification)
    assert first.message == "Looking"  # entry 1: not translated
    assert outbox.localize(conn, updated, None) is updated
    assert outbox.localize(conn, updated, "fr").locale == "en"
    window_event = next(e for e in everything if e.subject_id == ids["window"])
    localized = outbox.localize(conn, window_event.notification, "de")
    assert localized.title == "Aktualisierung"


def test_the_worker_round_tells_each_subscriber_in_its_locale(
    conn: Conn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """process_all: a subscriber reading 'de' gets the event translated, one reading the
    page's default (no locale) the text as written; translated once per (event, locale)."""
    page, ids = _page(conn)
    _translate_de(conn, page.id, ids)
    german = new_subscriber(conn, page.id, f"de-{uuid.uuid4().hex[:8]}")
    other = new_subscriber(conn, page.id, f"xx-{uuid.uuid4().hex[:8]}")
    swiss = new_subscriber(conn, page.id, f"ch-{uuid.uuid4().hex[:8]}")
    assert subscribers.set_locale(conn, german, "de") == "de"
    assert subscribers.set_locale(conn, swiss, "de-CH") == "de-CH"
    conn.commit()
    told: dict[tuple[str, str], tuple[str | None, object]] = {}
    calls: list[str] = []
    real = outbox.localize

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(str(kwargs.get("locale")))
        return real(*args, **kwargs)

    events: set[str] = set()

    def deliver(note: object, recipient: outbox.Recipient, key: str) -> None:
        if isinstance(note, IncidentNotification | MaintenanceNotification):
            events.add(note.event_id)
        if isinstance(note, IncidentNotification):
            told[(recipient.subscriber_id, note.kind)] = (recipient.locale, note)

    monkeypatch.setattr(outbox, "localize", counting)
    for _ in range(5):
        if not outbox.process_all(conn, deliver, worker_id="w", hold_down=dt.timedelta(0)).claimed:
            break
    monkeypatch.undo()
    locale, in_german = told[(german, "incident_updated")]
    assert locale == "de"
    assert isinstance(in_german, IncidentNotification)
    assert (in_german.locale, in_german.title, in_german.message, in_german.page_name) == (
        "de",
        "Langsame API",
        "Gefunden",
        "Zustand",
    )
    assert [c.name for c in in_german.components] == ["Schnittstelle"]
    _, in_swiss = told[(swiss, "incident_updated")]
    assert isinstance(in_swiss, IncidentNotification)
    assert (in_swiss.locale, in_swiss.title) == ("de", "Langsame API")  # de-CH falls back to de
    locale, as_written = told[(other, "incident_updated")]
    assert locale is None
    assert isinstance(as_written, IncidentNotification)
    assert (as_written.locale, as_written.title, as_written.message) == (
        None,
        "Slow API",
        "Found it",
    )
    # Once per (event, locale) of its recipients, not per recipient.
    assert sorted(calls) == sorted(["de", "de-CH"] * len(events))


def test_page_view_cache_keeps_each_locale_apart(conn: Conn) -> None:
    """One snapshot row per page: a read in 'de' has the version of the page's own texts, so
    the cache's key holds the locale (else the English view answers the German read)."""
    page, ids = _page(conn)
    _translate_de(conn, page.id, ids)
    cache = views.PageViewCache()
    own = cache.get(conn, page.slug)
    german = cache.get(conn, page.slug, locale="de")
    assert own is not None
    assert german is not None
    assert (own.page.name, own.locale) == ("Status", None)
    assert (german.page.name, german.locale) == ("Zustand", "de")
    assert german.version == own.version
    again = cache.get(conn, page.slug, locale="de")
    assert again is german  # validated by a not-modified read, reused
    assert cache.get(conn, page.slug) is own
    assert len(cache) == 2


def test_reads_in_a_locale_keep_the_pages_time_zone(conn: Conn) -> None:
    """The v3 reads wrap 0029's v2 functions: a translated page view, its bytes (translated or
    falling back to the stored ones) carry the page's time zone as the reads without a locale."""
    page, ids = _page(conn)
    _translate_de(conn, page.id, ids)
    pages.update(conn, page.id, time_zone="Europe/Berlin")
    german = views.page_view(conn, page.slug, locale="de")
    assert german is not None
    assert (german.page.name, german.page.time_zone) == ("Zustand", "Europe/Berlin")
    for locale in ("de", "fr"):
        answer = views.page_view_bytes(conn, page.slug, locale=locale)
        assert isinstance(answer, views.PageBytes)
        document = json.loads(answer.body)
        assert document["time_zone"] == "Europe/Berlin"
        assert list(document)[-1] == "time_zone"  # the body's shape, as 0029's
        assert views.decode_page_bytes(answer).page.time_zone == "Europe/Berlin"
    cached = views.PageViewCache().get(conn, page.slug, locale="de")
    assert cached is not None
    assert cached.page.time_zone == "Europe/Berlin"
