"""Status incidents: what a status page tells its readers about a problem, and its timeline.

A status incident belongs to one page, optionally publishes a platform incident
(`incident_id`), names the components of that page it affects, and carries a timeline
(`updates`): the `{timestamp, status, message}` entries posted over its life, oldest first.

* `status` and `message` are the incident's *current* state: the latest entry of the timeline.
  `create` records the first entry and `add_update` appends one, each in the same statement
  that sets the current state, so the two never disagree after one of our writes.
* The timeline is append-only. `edit` corrects the title, severity, affected components or the
  current message (a typo, say) without rewriting what was already posted.
* `resolved_at` is kept by the database (trigger of migration 0002): set when the status becomes
  RESOLVED, cleared when it leaves RESOLVED.
* Timeline timestamps are UTC ISO 8601 strings with microseconds and a `Z`
  (`2024-05-01T10:00:00.123456Z`), whatever the session's TimeZone: fixed width, so they sort
  as text too. They decode to aware datetimes.

Updates after RESOLVED are allowed (see `add_update`): an incident that flares up again is
re-opened rather than duplicated, and a closing note keeps it resolved.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

import attrs
from psycopg.rows import class_row, kwargs_row

from statusdb import groups, idempotency
from statusdb.db.executor import Op, execute, many, one, operation
from statusdb.domain import validate
from statusdb.domain.types import (
    STATUS_INCIDENT_SEVERITY,
    STATUS_INCIDENT_STATUS,
    StatusIncidentSeverity,
    StatusIncidentStatus,
    StatusUpdate,
)
from statusdb.errors import DataCorrupt, InvalidInput, NotFound

TITLE_MAX: Final = 500
"""As the table's CHECK (status_incident_title_check)."""

MESSAGE_MAX: Final = 10_000
"""A status message is prose for readers, not a log dump; bounded so one row stays small."""

UPDATES_MAX: Final = 500
"""Entries a timeline holds at most (statusdb_is_readable_timeline, migration 0024): the
database refuses the 501st update as InvalidInput."""

HISTORY_MAX_DAYS: Final = 36_500
"""History reaches back at most a century: keeps `days` a sane integer interval."""

HISTORY_MAX_LIMIT: Final = 100

_UTC: Final = dt.UTC
_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=_UTC)
_MICROSECOND: Final = dt.timedelta(microseconds=1)


def _parse_timestamp(value: object) -> dt.datetime:
    """A timeline timestamp as written by statusdb, or by hand in another ISO 8601 form.

    Entries written outside statusdb without an offset are read as UTC (the form statusdb
    writes) rather than refused: one odd entry must not make the incident unreadable.
    """
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=_UTC)
    raise DataCorrupt(f"a status incident update has an unreadable timestamp: {value!r}")


def _decode_update(item: StatusUpdate | Mapping[str, Any]) -> StatusUpdate:
    if isinstance(item, StatusUpdate):  # attrs.evolve, or a row built by hand
        return item
    return StatusUpdate(
        timestamp=_parse_timestamp(item["timestamp"]),
        status=item["status"],
        message=item["message"],
    )


def decode_updates(value: Iterable[StatusUpdate | Mapping[str, Any]]) -> tuple[StatusUpdate, ...]:
    """The jsonb timeline (a list of dicts, as psycopg loads it) as StatusUpdate values.

    Public so that other readers of `status_incident.updates` (the page view) decode it the
    same way: aware datetimes, hand-written offset-less entries read as UTC.
    """
    return tuple(_decode_update(item) for item in value)


def _ids(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


@attrs.frozen
class StatusIncident:
    """A status incident as stored; `updates` is its timeline, oldest first."""

    id: str
    status_page_id: str
    incident_id: str | None
    title: str
    #: The current message (that of the latest update, unless corrected by `edit`).
    message: str | None
    severity: StatusIncidentSeverity
    status: StatusIncidentStatus
    affected_component_ids: tuple[str, ...] = attrs.field(converter=_ids)
    created_at: dt.datetime
    updated_at: dt.datetime
    resolved_at: dt.datetime | None
    updates: tuple[StatusUpdate, ...] = attrs.field(converter=decode_updates)


@attrs.frozen
class HistoryPage:
    """One page of resolved incidents; `next_cursor` fetches the next one (None: that was all).

    `postmortems`: the postmortems (as they read now) of those of `items` that have one, in the
    order of `items`.
    """

    items: tuple[StatusIncident, ...]
    next_cursor: str | None
    postmortems: tuple[Postmortem, ...] = ()


_row = class_row(StatusIncident)


def _title(value: str) -> str:
    return validate.text("title", value, max_length=TITLE_MAX)


def _message(value: str) -> str:
    return validate.text("message", value, max_length=MESSAGE_MAX)


def _severity(value: str) -> StatusIncidentSeverity:
    return validate.one_of("severity", value, STATUS_INCIDENT_SEVERITY)


def _status(value: str) -> StatusIncidentStatus:
    return validate.one_of("status", value, STATUS_INCIDENT_STATUS)


def _not_found(status_incident_id: str) -> str:
    return f"no status incident with id {status_incident_id!r}"


@operation(retry=True, atomic_when="idempotency_key")
def create(
    status_page_id: str,
    *,
    title: str,
    severity: StatusIncidentSeverity,
    message: str,
    status: StatusIncidentStatus = "INVESTIGATING",
    affected_component_ids: Sequence[str] = (),
    incident_id: str | None = None,
    affected_group_ids: Sequence[str] = (),
    idempotency_key: str | None = None,
) -> Op[StatusIncident]:
    """Publish a status incident on a page, its first timeline entry included (one INSERT).

    `affected_group_ids` (groups of the page, statusdb.groups) stand for their member
    components at the time of writing, subgroups included: they are added to
    `affected_component_ids`.

    The entry's timestamp is the transaction's now(), equal to `created_at`. Affected
    components must be components of the same page (InvalidInput otherwise); an unknown page
    or platform incident is NotFound. Creating it directly as RESOLVED (a retrospective
    notice) is allowed.

    `idempotency_key` (at most 200 characters, per page): a repeat with the same key writes
    nothing and returns the incident the first call made, as it is now (`statusdb.idempotency`;
    the same key with other arguments: Conflict).
    """
    chosen_key = idempotency.key(idempotency_key)
    params = {
        "status_page_id": validate.identifier("status_page_id", status_page_id),
        "title": _title(title),
        "severity": _severity(severity),
        "message": _message(message),
        "status": _status(status),
        "affected_component_ids": validate.identifiers(
            "affected_component_ids", affected_component_ids
        ),
        "incident_id": None
        if incident_id is None
        else validate.identifier("incident_id", incident_id),
    }
    if affected_group_ids:
        # A read before the insert, nothing to undo: the operation need not be atomic.
        members = yield from groups.member_component_ids.body(status_page_id, affected_group_ids)
        named = validate.identifiers("affected_component_ids", affected_component_ids)
        params["affected_component_ids"] = list(dict.fromkeys([*named, *members]))
    return (
        yield from idempotency.guarded(
            "status_incident.create",
            chosen_key,
            params,
            lambda: one(
                "status_incident_create",
                params,
                _row,
                not_found=f"no status page with id {status_page_id!r}",
            ),
            get.body,
            lambda incident: incident.id,
            status_page_id=validate.identifier("status_page_id", status_page_id),
        )
    )


@operation(retry=True)
def create_from_template(
    template_id: str,
    *,
    title: str | None = None,
    message: str | None = None,
    severity: StatusIncidentSeverity | None = None,
    status: StatusIncidentStatus = "INVESTIGATING",
    affected_component_ids: Sequence[str] | None = None,
    incident_id: str | None = None,
) -> Op[StatusIncident]:
    """Publish a status incident from an incident template (`statusdb.incident_templates`),
    on the template's page, in one INSERT (atomic: nothing else to undo).

    `title`, `message` (the first update's), `severity` and `affected_component_ids` replace
    the template's values when given (None: the template's); `status` is the first update's.
    An unknown template (or one of another team, under a team scope) is NotFound; overriding
    components must name components of the template's page (InvalidInput otherwise).
    """
    params = {
        "template_id": validate.identifier("template_id", template_id),
        "title": None if title is None else _title(title),
        "message": None if message is None else _message(message),
        "severity": None if severity is None else _severity(severity),
        "status": _status(status),
        "affected_component_ids": None
        if affected_component_ids is None
        else validate.identifiers("affected_component_ids", affected_component_ids),
        "incident_id": None
        if incident_id is None
        else validate.identifier("incident_id", incident_id),
    }
    return (
        yield from one(
            "status_incident_create_from_template",
            params,
            _row,
            not_found=f"no incident template with id {template_id!r}",
        )
    )


@operation(retry=True)
def get(status_incident_id: str) -> Op[StatusIncident]:
    """One status incident by id."""
    params = {"id": validate.identifier("status_incident_id", status_incident_id)}
    return (
        yield from one(
            "status_incident_get", params, _row, not_found=_not_found(status_incident_id)
        )
    )


@operation(retry=True, atomic_when="idempotency_key")
def add_update(
    status_incident_id: str,
    *,
    status: StatusIncidentStatus,
    message: str,
    idempotency_key: str | None = None,
) -> Op[StatusIncident]:
    """Post a timeline entry; its status and message become the incident's current ones.

    One UPDATE appends to the stored array (`updates || ...`), so concurrent writers never
    lose each other's entries: the row lock makes them take turns, and each appends to the
    version the previous one committed. The entry's timestamp is taken once the lock is held
    (clock_timestamp()), so the timeline is in commit order and its timestamps never go
    backwards, even when a writer's transaction began before another's.

    After RESOLVED, updates are still allowed, by design:

    * a status other than RESOLVED re-opens the incident: `resolved_at` is cleared, it leaves
      the history and shows among the active ones again. A problem that comes back is the same
      incident to readers, and its earlier timeline stays in view;
    * RESOLVED again is a closing note ("post-mortem published"): the incident stays resolved
      and keeps its original `resolved_at`, so its place in the history (and in any history
      cursor already handed out) does not move.

    Refusing them instead would make callers open a duplicate incident for a relapse and lose
    the context readers need.

    `idempotency_key` (at most 200 characters, per page): a repeat with the same key appends
    nothing (and announces nothing) and returns the incident as it is now
    (`statusdb.idempotency`; the same key with other arguments: Conflict).
    """
    chosen_key = idempotency.key(idempotency_key)
    params = {
        "id": validate.identifier("status_incident_id", status_incident_id),
        "status": _status(status),
        "message": _message(message),
    }
    return (
        yield from idempotency.guarded(
            "status_incident.add_update",
            chosen_key,
            params,
            lambda: one(
                "status_incident_add_update",
                params,
                _row,
                not_found=_not_found(status_incident_id),
            ),
            get.body,
            lambda incident: incident.id,
            status_incident_id=params["id"],
        )
    )


@operation(retry=True)
def edit(
    status_incident_id: str,
    *,
    title: str | validate.Unset = validate.UNSET,
    message: str | validate.Unset = validate.UNSET,
    severity: StatusIncidentSeverity | validate.Unset = validate.UNSET,
    affected_component_ids: Sequence[str] | validate.Unset = validate.UNSET,
) -> Op[StatusIncident]:
    """Correct any of title, current message, severity, affected components; others are kept.

    The timeline is not touched (what was posted stays as posted); to tell readers something
    new, use `add_update`. Status changes go through `add_update` too, so that each one is on
    the timeline.
    """
    U = validate.UNSET
    params = {
        "id": validate.identifier("status_incident_id", status_incident_id),
        **validate.changes(
            title=U if title is U else _title(title),
            message=U if message is U else _message(message),
            severity=U if severity is U else _severity(severity),
            affected_component_ids=U
            if affected_component_ids is U
            else validate.identifiers("affected_component_ids", affected_component_ids),
        ),
    }
    return (
        yield from one(
            "status_incident_edit", params, _row, not_found=_not_found(status_incident_id)
        )
    )


@operation(retry=True)
def list_active(status_page_id: str) -> Op[list[StatusIncident]]:
    """A page's unresolved status incidents, newest first (none for an unknown page)."""
    params = {"status_page_id": validate.identifier("status_page_id", status_page_id)}
    return (yield from many("status_incident_list_active", params, _row))


# History cursors: URL-safe base64 (no padding) of the compact JSON array
# [version, status_page_id, resolved_at in microseconds since the epoch, id]. Integers keep
# resolved_at exact to the microsecond, as stored; the page id catches a cursor used on another
# page. A cursor is a position, not a credential: a hand-made one can only point somewhere in
# a history its holder can read from the top anyway, so it is validated, not signed.
_CURSOR_VERSION: Final = 1
_CURSOR_MAX_LENGTH: Final = 1_000
_CURSOR_CHARS: Final = re.compile(r"[A-Za-z0-9_-]+")


def _encode_cursor(status_page_id: str, resolved_at: dt.datetime, incident_id: str) -> str:
    micros = (resolved_at - _EPOCH) // _MICROSECOND
    payload = json.dumps(
        [_CURSOR_VERSION, status_page_id, micros, incident_id], separators=(",", ":")
    )
    return base64.urlsafe_b64encode(payload.encode()).decode("ascii").rstrip("=")


def _decode_cursor(status_page_id: str, cursor: str) -> tuple[dt.datetime, str]:
    """The (resolved_at, id) position a cursor of ours stands for; InvalidInput otherwise."""
    invalid = InvalidInput("after is not a valid history cursor (pass next_cursor as given)")
    if not isinstance(cursor, str):
        raise InvalidInput(f"after must be a cursor string or None, not {type(cursor).__name__}")
    if len(cursor) > _CURSOR_MAX_LENGTH or not _CURSOR_CHARS.fullmatch(cursor):
        raise invalid
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        decoded = json.loads(raw.decode("utf-8"))
    except (binascii.Error, ValueError):  # UnicodeDecodeError and JSONDecodeError included
        raise invalid from None
    if not (isinstance(decoded, list) and len(decoded) == 4):
        raise invalid
    version, page_id, micros, incident_id = decoded
    if (
        version != _CURSOR_VERSION
        or isinstance(version, bool)
        or not isinstance(page_id, str)
        or not isinstance(micros, int)
        or isinstance(micros, bool)
        or not isinstance(incident_id, str)
    ):
        raise invalid
    if page_id != status_page_id:
        raise InvalidInput("after is a history cursor of another status page")
    try:
        resolved_at = _EPOCH + micros * _MICROSECOND
        validate.identifier("cursor id", incident_id)
    except (OverflowError, InvalidInput):
        raise invalid from None
    return resolved_at, incident_id


def _days(value: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= HISTORY_MAX_DAYS:
        raise InvalidInput(f"days must be an integer from 1 to {HISTORY_MAX_DAYS}")
    return value


@operation(retry=True)
def history(
    status_page_id: str, *, days: int, limit: int = 20, after: str | None = None
) -> Op[HistoryPage]:
    """Incidents of a page resolved in the last `days` days, newest resolved first, a page at
    a time.

    Keyset pagination over (resolved_at DESC, id DESC): pass the returned `next_cursor` as
    `after` for the next page; each incident shows up once even when several share a
    resolved_at, and pages stay stable while new incidents are resolved in between. An
    incident re-opened in between leaves the history; a closing note does not move it. A
    malformed cursor, or one of another page, is InvalidInput.
    """
    page_id = validate.identifier("status_page_id", status_page_id)
    position = None if after is None else _decode_cursor(page_id, after)
    size = validate.limit(limit, maximum=HISTORY_MAX_LIMIT)
    params = {
        "status_page_id": page_id,
        "days": _days(days),
        "after_resolved_at": None if position is None else position[0],
        "after_id": None if position is None else position[1],
        "limit": size + 1,  # one more tells whether there is a next page
    }
    found = yield from many("status_incident_history", params, _history_row)
    rows = [incident for incident, _ in found[:size]]
    postmortems = tuple(postmortem for _, postmortem in found[:size] if postmortem is not None)
    if len(found) <= size:
        return HistoryPage(tuple(rows), None, postmortems)
    last = rows[size - 1]
    assert (
        last.resolved_at is not None
    )  # RESOLVED rows have one (status_incident_resolved_at_check)
    cursor = _encode_cursor(page_id, last.resolved_at, last.id)
    return HistoryPage(tuple(rows), cursor, postmortems)


def _history_item(
    *,
    postmortem_revision: int | None,
    postmortem_body: str | None,
    postmortem_published_at: dt.datetime | None,
    postmortem_updated_at: dt.datetime | None,
    **incident: Any,
) -> tuple[StatusIncident, Postmortem | None]:
    row = StatusIncident(**incident)
    if (
        postmortem_revision is None
        or postmortem_body is None
        or postmortem_published_at is None
        or postmortem_updated_at is None
    ):
        return row, None
    postmortem = Postmortem(
        row.id, postmortem_revision, postmortem_body, postmortem_published_at, postmortem_updated_at
    )
    return row, postmortem


_history_row = kwargs_row(_history_item)


@operation(retry=True)
def delete(status_incident_id: str) -> Op[None]:
    """Delete a status incident and its timeline."""
    count = yield from execute(
        "status_incident_delete",
        {"id": validate.identifier("status_incident_id", status_incident_id)},
    )
    if count == 0:
        raise NotFound(_not_found(status_incident_id))


# -- postmortems ------------------------------------------------------------------------------

POSTMORTEM_MAX: Final = 100_000
"""As the table's CHECK (status_incident_postmortem_body_check)."""

REVISIONS_MAX_LIMIT: Final = 1_000


@attrs.frozen
class Postmortem:
    """A resolved status incident's postmortem as it reads (at some instant).

    `published_at` is when revision 1 was written; `updated_at` when the revision shown was.
    """

    status_incident_id: str
    revision: int
    body: str
    published_at: dt.datetime
    updated_at: dt.datetime


@attrs.frozen
class PostmortemRevision:
    """One revision of a postmortem; revisions are never rewritten (migration 0022)."""

    status_incident_id: str
    revision: int
    body: str
    written_at: dt.datetime
    written_by_id: str


_postmortem_row = class_row(Postmortem)
_revision_row = class_row(PostmortemRevision)


def _body(value: str) -> str:
    return validate.text("body", value, max_length=POSTMORTEM_MAX)


def _author(value: str) -> str:
    return validate.text("written_by_id", value, max_length=200)


@operation(retry=True)
def publish_postmortem(
    status_incident_id: str, *, body: str, written_by_id: str
) -> Op[PostmortemRevision]:
    """Publish the postmortem of a RESOLVED status incident (its revision 1).

    Conflict when the incident is not resolved or already has a postmortem (edit it with
    `edit_postmortem`); NotFound for an unknown incident. The database enforces all of this for
    every client, and stamps the revision (`written_at`, the publication time).
    """
    params = {
        "status_incident_id": validate.identifier("status_incident_id", status_incident_id),
        "body": _body(body),
        "written_by_id": _author(written_by_id),
    }
    return (
        yield from one(
            "postmortem_publish",
            params,
            _revision_row,
            not_found=_not_found(status_incident_id),
        )
    )


@operation(retry=True)
def edit_postmortem(
    status_incident_id: str,
    *,
    body: str,
    written_by_id: str,
    expected_revision: int | None = None,
) -> Op[PostmortemRevision]:
    """Edit a published postmortem: adds its next revision, the earlier text stays as written.

    `expected_revision`, when given, must be the latest revision (optimistic concurrency: a
    Conflict says someone edited it meanwhile). Conflict when the incident is no longer
    resolved; NotFound when no postmortem was published.
    """
    params = {
        "status_incident_id": validate.identifier("status_incident_id", status_incident_id),
        "body": _body(body),
        "written_by_id": _author(written_by_id),
        "expected_revision": validate.optional_int4("expected_revision", expected_revision),
    }
    return (
        yield from one(
            "postmortem_edit",
            params,
            _revision_row,
            not_found=f"no postmortem published for status incident {status_incident_id!r}",
        )
    )


@operation(retry=True)
def get_postmortem(status_incident_id: str, *, at: dt.datetime | None = None) -> Op[Postmortem]:
    """The postmortem as it reads now, or as it read at the instant `at` (NotFound: none then)."""
    params = {
        "status_incident_id": validate.identifier("status_incident_id", status_incident_id),
        "at": None if at is None else validate.aware("at", at),
    }
    return (
        yield from one(
            "postmortem_get",
            params,
            _postmortem_row,
            not_found=f"no postmortem published for status incident {status_incident_id!r}",
        )
    )


@operation(retry=True)
def postmortem_revisions(
    status_incident_id: str, *, limit: int = 100
) -> Op[list[PostmortemRevision]]:
    """The revisions of a postmortem, oldest (the publication) first, at most `limit`."""
    params = {
        "status_incident_id": validate.identifier("status_incident_id", status_incident_id),
        "limit": validate.limit(limit, maximum=REVISIONS_MAX_LIMIT),
    }
    return (yield from many("postmortem_revisions", params, _revision_row))
