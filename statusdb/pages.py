"""Status pages: create (with components), read, rename, visibility and access tokens.

A private page (is_public false) is opened with an access token. The token is returned once,
when it is made, and only the digest of its digest is stored (`statusdb.domain.tokens.page_digest`).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from typing import Final

import attrs
from psycopg.rows import class_row, tuple_row
from psycopg.types.json import Jsonb

from statusdb import translations
from statusdb.db.executor import Op, execute, many, one, operation, optional
from statusdb.domain import tokens, validate
from statusdb.errors import InvalidInput, NotFound


@attrs.frozen
class StatusPage:
    """A page as stored (the token digest is never read back)."""

    id: str
    name: str
    description: str | None
    slug: str
    is_public: bool
    team_id: str
    created_by_id: str
    created_at: dt.datetime
    updated_at: dt.datetime
    #: The page's IANA time zone: `uptime.daily` counts calendar days from its midnights.
    time_zone: str = "UTC"


@attrs.frozen
class NewComponent:
    """A component to create along with its page."""

    name: str
    description: str | None = None
    display_order: int | None = attrs.field(default=None, validator=validate.int4_field)
    team_id: str | None = None
    service_identifier: str | None = None

    def __attrs_post_init__(self) -> None:
        validate.fields(self)  # InvalidInput for a wrong-typed field (a str for a bool, ...)


@attrs.frozen
class CreatedPage:
    """A new page, and its access token when private: shown this once, never stored."""

    page: StatusPage
    access_token: str | None


_row = class_row(StatusPage)

#: As the table's CHECK (status_page_time_zone_check, migration 0021): an IANA name with a '/'
#: (Europe/Berlin, America/New_York, Etc/GMT+5) or UTC. The database also checks that it knows
#: the zone and stores its canonical spelling.
TIME_ZONE_MAX: Final = 64
_TIME_ZONE = re.compile(r"UTC|[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)+")
#: As status_page_time_zone_iana_check (migration 0024), case aside (the database stores the
#: canonical spelling): IANA names only, never a POSIX spec such as 'Europe/Berlin+1'.
_IANA_ZONE = re.compile(
    r"UTC|Etc/GMT(0|[+-]([0-9]|1[0-2])|-1[34])|(?!(posix|right)/)[A-Za-z][A-Za-z_-]*(/[A-Za-z][A-Za-z_-]*)+",
    re.IGNORECASE,
)


def _time_zone(value: str) -> str:
    """A page time zone, checked for shape (InvalidInput); the database checks the rest."""
    validate.text("time_zone", value, max_length=TIME_ZONE_MAX)
    if _TIME_ZONE.fullmatch(value) is None or _IANA_ZONE.fullmatch(value) is None:
        raise InvalidInput(
            f"time_zone {value!r} is not an IANA time zone name "
            "(for example 'Europe/Berlin', 'America/New_York' or 'UTC')"
        )
    return value


def _component_payload(components: Sequence[NewComponent]) -> list[dict[str, object]]:
    payload: list[dict[str, object]] = []
    for position, component in enumerate(components):
        payload.append(
            {
                "name": validate.text("component name", component.name, max_length=200),
                "description": validate.optional_text(
                    "component description", component.description, max_length=10_000
                ),
                "display_order": position
                if component.display_order is None
                else component.display_order,
                "team_id": None
                if component.team_id is None
                else validate.identifier("team_id", component.team_id),
                "service_identifier": None
                if component.service_identifier is None
                else validate.text(
                    "service_identifier", component.service_identifier, max_length=200
                ),
            }
        )
    names = [c["name"] for c in payload]
    if len(set(names)) != len(names):
        raise InvalidInput("component names on a page must be unique")
    return payload


@operation(retry=True)
def create(
    *,
    team_id: str,
    name: str,
    slug: str,
    created_by_id: str,
    description: str | None = None,
    is_public: bool = False,
    components: Sequence[NewComponent] = (),
    time_zone: str = "UTC",
) -> Op[CreatedPage]:
    """Create a page with its components in one statement.

    Components without a display_order are placed in the order given. A private page gets an
    access token, returned here once. `time_zone` is the page's IANA zone (a name with a '/',
    or UTC), the one its daily uptime bars count days in; InvalidInput for one the database
    does not know.
    """
    token = None if is_public else tokens.new_token()
    params = {
        "team_id": validate.identifier("team_id", team_id),
        "name": validate.text("name", name, max_length=200),
        "slug": validate.slug(slug),
        "created_by_id": validate.identifier("created_by_id", created_by_id),
        "description": validate.optional_text("description", description, max_length=10_000),
        "is_public": validate.flag("is_public", is_public),
        "access_token_hash": None if token is None else tokens.page_digest(token),
        "components": Jsonb(_component_payload(components)),
        "time_zone": _time_zone(time_zone),
    }
    page = yield from one("page_create", params, _row, not_found="page was not created")
    return CreatedPage(page, token)


@operation(retry=True)
def get(page_id: str) -> Op[StatusPage]:
    """One page by id."""
    params = {"id": validate.identifier("page_id", page_id)}
    return (
        yield from one("page_get", params, _row, not_found=f"no status page with id {page_id!r}")
    )


@operation(retry=True)
def get_by_slug(slug: str) -> Op[StatusPage]:
    """One page by slug (no token check: this is for the page's owners, not its readers)."""
    params = {"slug": validate.text("slug", slug, max_length=100)}
    return (
        yield from one(
            "page_get_by_slug", params, _row, not_found=f"no status page with slug {slug!r}"
        )
    )


@operation(retry=True)
def list_for_team(team_id: str) -> Op[list[StatusPage]]:
    """A team's pages, by name."""
    params = {"team_id": validate.identifier("team_id", team_id)}
    return (yield from many("page_list_for_team", params, _row))


@operation(retry=True)
def update(
    page_id: str,
    *,
    name: str | validate.Unset = validate.UNSET,
    description: str | validate.Unset | None = validate.UNSET,
    slug: str | validate.Unset = validate.UNSET,
    time_zone: str | validate.Unset = validate.UNSET,
) -> Op[StatusPage]:
    """Change a page's name, description, slug or time zone; fields left out keep theirs."""
    params = {
        "id": validate.identifier("page_id", page_id),
        **validate.changes(
            name=name if name is validate.UNSET else validate.text("name", name, max_length=200),
            description=description
            if description is validate.UNSET
            else validate.optional_text("description", description, max_length=10_000),
            slug=slug if slug is validate.UNSET else validate.slug(slug),
            time_zone=time_zone if time_zone is validate.UNSET else _time_zone(time_zone),
        ),
    }
    return (
        yield from one("page_update", params, _row, not_found=f"no status page with id {page_id!r}")
    )


@operation(retry=True)
def set_visibility(page_id: str, *, is_public: bool) -> Op[tuple[StatusPage, str | None]]:
    """Make a page public (its token is forgotten) or private (a new token, returned once)."""
    token = None if is_public else tokens.new_token()
    params = {
        "id": validate.identifier("page_id", page_id),
        "is_public": validate.flag("is_public", is_public),
        "access_token_hash": None if token is None else tokens.page_digest(token),
    }
    page = yield from one(
        "page_set_visibility", params, _row, not_found=f"no status page with id {page_id!r}"
    )
    return page, token


@operation(retry=True)
def rotate_access_token(page_id: str) -> Op[str]:
    """Give a private page a new access token (returned once); the old one stops working."""
    token = tokens.new_token()
    params = {
        "id": validate.identifier("page_id", page_id),
        "access_token_hash": tokens.page_digest(token),
    }
    yield from one(
        "page_rotate_access_token",
        params,
        tuple_row,
        not_found=f"no private status page with id {page_id!r}",
    )
    return token


@operation(retry=True)
def check_access_token(slug: str, token: str | None) -> Op[bool]:
    """Whether `token` opens the page `slug` (always True for a public page).

    Compares digests in constant time; an unknown slug is simply False.
    """
    params = {"slug": validate.text("slug", slug, max_length=100)}
    row = yield from optional("page_access_token_hash", params, tuple_row)
    if row is None:
        tokens.page_matches(token, bytes(32))  # same work as a real comparison
        return False
    is_public, stored = row
    return bool(is_public) or tokens.page_matches(token, stored)


@operation(retry=True)
def delete(page_id: str) -> Op[None]:
    """Delete a page and everything on it."""
    count = yield from execute("page_delete", {"id": validate.identifier("page_id", page_id)})
    if count == 0:
        raise NotFound(f"no status page with id {page_id!r}")


@operation(retry=True)
def set_default_locale(page_id: str, locale: str) -> Op[str]:
    """Set the locale (a BCP 47 tag) the page's own texts are written in (migration 0033; see
    `statusdb.translations`); the stored, canonical tag."""
    return (yield from translations.set_default_locale.body(page_id, locale))
