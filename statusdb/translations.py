"""Translations of the texts a page shows (migration 0033).

One row per translated field of one entity in one locale, in table `translation`: the page's
name and description, its components' and groups' names and descriptions, its status
incidents' titles and messages and their timeline entries' messages, its maintenance windows'
titles and descriptions. A page's own texts are written in its `default_locale`
(`pages.set_default_locale`); reads in a locale (`views.page_view(..., locale=)`,
`views.page_view_bytes`, the feeds, `outbox.localize`) show, per field, the translation in
the tag asked for, else in its language subtag, else the page's own text, and say which locale
they used. Deleting an entity deletes its translations; every write moves the page's version.
"""

from __future__ import annotations

import datetime as dt
from typing import Final, Literal, get_args

import attrs
from psycopg.rows import class_row, tuple_row

from statusdb import status_incidents
from statusdb.db.executor import Op, many, one, operation, optional
from statusdb.domain import validate
from statusdb.errors import InvalidInput, NotFound

#: What can be translated.
EntityKind = Literal["page", "component", "group", "incident", "incident_update", "maintenance"]
ENTITY_KINDS: Final[tuple[EntityKind, ...]] = get_args(EntityKind)
#: The fields of each kind (as the source columns are named).
FIELDS: Final[dict[EntityKind, tuple[str, ...]]] = {
    "page": ("name", "description"),
    "component": ("name", "description"),
    "group": ("name", "description"),
    "incident": ("title", "message"),
    "incident_update": ("message",),
    "maintenance": ("title", "description"),
}
#: Longest text of each field: the source column's bound (translation_text_length_check).
TEXT_MAX: Final[dict[str, int]] = {
    "name": validate.NAME_MAX,
    "title": status_incidents.TITLE_MAX,
    "description": validate.DESCRIPTION_MAX,
    "message": status_incidents.MESSAGE_MAX,
}
#: Most locales one page has translations in (translation_locales_per_page_check).
MAX_LOCALES_PER_PAGE: Final = 20
#: Most timeline entries of a status incident (statusdb_is_readable_timeline).
MAX_UPDATE_NUMBER: Final = 500
#: Most rows `list` returns unless told.
DEFAULT_LIST_LIMIT: Final = 1_000


@attrs.frozen
class Translation:
    """One field of one entity in one locale.

    `entity_id` is the translated row's id (the page's own for kind page, the status
    incident's for incident_update); `update_number` the timeline entry (1 = the first) for
    incident_update, 0 otherwise.
    """

    status_page_id: str
    locale: str
    entity_kind: EntityKind
    entity_id: str
    update_number: int
    field: str
    text: str
    created_at: dt.datetime
    updated_at: dt.datetime


def _key(
    status_page_id: str,
    locale: str,
    entity: EntityKind,
    entity_id: str,
    field: str,
    update_number: int,
) -> dict[str, object]:
    kind = validate.one_of("entity", entity, ENTITY_KINDS)
    if field not in FIELDS[kind]:
        raise InvalidInput(f"a {kind} has no field {field!r} to translate: {FIELDS[kind]}")
    if isinstance(update_number, bool) or not isinstance(update_number, int):
        raise InvalidInput("update_number must be an int")
    if kind == "incident_update":
        if not 1 <= update_number <= MAX_UPDATE_NUMBER:
            raise InvalidInput(
                f"update_number must be from 1 to {MAX_UPDATE_NUMBER} (the timeline entry)"
            )
    elif update_number != 0:
        raise InvalidInput("update_number is only for an incident_update")
    return {
        "status_page_id": validate.identifier("status_page_id", status_page_id),
        "locale": validate.locale("locale", locale),
        "entity_kind": kind,
        "entity_id": validate.identifier("entity_id", entity_id),
        "field": field,
        "update_number": update_number,
    }


@operation(retry=True)
def set(
    status_page_id: str,
    locale: str,
    *,
    entity: EntityKind,
    entity_id: str,
    field: str,
    text: str,
    update_number: int = 0,
) -> Op[Translation]:
    """Write (or replace) the translation of `field` of the `entity` `entity_id` of page
    `status_page_id` in `locale` (a BCP 47 tag, any case: stored canonical). NotFound when the
    entity is not on that page (or the incident's timeline has no entry `update_number`);
    InvalidInput for a text longer than the source field allows, a blank name or title, or a
    21st locale on the page."""
    params = _key(status_page_id, locale, entity, entity_id, field, update_number)
    params["text"] = validate.text(
        "text", text, max_length=TEXT_MAX[field], blank_ok=field not in ("name", "title")
    )
    return (
        yield from one(
            "translation_set",
            params,
            class_row(Translation),
            not_found=f"no {entity} {entity_id!r} on status page {status_page_id!r} to translate",
        )
    )


@operation(retry=True)
def delete(
    status_page_id: str,
    locale: str,
    *,
    entity: EntityKind,
    entity_id: str,
    field: str,
    update_number: int = 0,
) -> Op[bool]:
    """Delete one translation; whether there was one."""
    params = _key(status_page_id, locale, entity, entity_id, field, update_number)
    row = yield from optional("translation_delete", params, tuple_row)
    return row is not None


@operation(retry=True)
def delete_locale(status_page_id: str, locale: str) -> Op[int]:
    """Delete every translation of the page in `locale`; how many there were."""
    params = {
        "status_page_id": validate.identifier("status_page_id", status_page_id),
        "locale": validate.locale("locale", locale),
    }
    row = yield from one("translation_delete_locale", params, tuple_row, not_found="no count")
    return int(row[0])


@operation(retry=True)
def list_for_page(
    status_page_id: str, *, locale: str | None = None, limit: int = DEFAULT_LIST_LIMIT
) -> Op[tuple[Translation, ...]]:
    """The page's translations (in one `locale`, or all), by locale, kind, entity, field."""
    params = {
        "status_page_id": validate.identifier("status_page_id", status_page_id),
        "locale": None if locale is None else validate.locale("locale", locale),
        "limit": validate.limit(limit, maximum=100_000),
    }
    rows = yield from many("translation_list", params, class_row(Translation))
    return tuple(rows)


@operation(retry=True)
def locales(status_page_id: str) -> Op[tuple[str, ...]]:
    """The locales the page has translations in (at most MAX_LOCALES_PER_PAGE)."""
    params = {"status_page_id": validate.identifier("status_page_id", status_page_id)}
    rows = yield from many("translation_locales", params, tuple_row)
    return tuple(r[0] for r in rows)


@operation(retry=True)
def set_default_locale(status_page_id: str, locale: str) -> Op[str]:
    """Set the locale the page's own texts are written in; the stored (canonical) tag."""
    tag = validate.locale("locale", locale)
    params = {
        "status_page_id": validate.identifier("status_page_id", status_page_id),
        "locale": tag,
    }
    row = yield from optional("page_set_default_locale", params, tuple_row)
    if row is None:
        raise NotFound(f"no status page with id {status_page_id!r}")
    return tag


@operation(retry=True)
def set_subscriber_locale(subscriber_id: str, locale: str | None) -> Op[str | None]:
    """Set the locale a subscriber reads (None: the page's default); the stored tag."""
    tag = None if locale is None else validate.locale("locale", locale)
    params = {"subscriber_id": validate.identifier("subscriber_id", subscriber_id), "locale": tag}
    row = yield from optional("subscriber_set_locale", params, tuple_row)
    if row is None:
        raise NotFound(f"no subscriber with id {subscriber_id!r}")
    return tag
