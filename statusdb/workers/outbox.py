"""Notifications from the status-change log: claim, fan out, complete.

Every change of a component's status is logged in `status_change` by the transaction that makes
it, so the log is a transactional outbox. Workers (any number, on any machines) turn it into
notifications:

1. `claim` leases the due changes of some components to one worker (`FOR UPDATE SKIP LOCKED`,
   so workers never wait for or double-claim each other) and returns one `ClaimedChange` per
   component. Commit right after claiming, so that the lease is visible to the other workers.
2. `recipients` streams, through a server-side cursor in constant memory, the subscribers to
   tell: active, verified, following the component (or all components), and wanting one of
   the change's notify types.
3. `complete` marks the claimed changes notified, only if this worker still holds the lease.

A worker that dies (crash, killed connection) leaves its lease to expire, after which another
worker claims the same changes again: nothing is lost. A change is never marked done twice;
delivery itself is at least once (a worker that stalls past its lease may have told some
subscribers before another worker tells them again), so give deliveries an idempotency key
(`ClaimedChange.key`).

Flap damping: a component's changes are due once the first of them is older than `hold_down`
(default 5 minutes); all its changes inside that window are claimed together and coalesce into
one notification from the first previous status to the last new status. A component that ended
where it started (a flap) notifies nobody, nor does a change caused by a maintenance window with
notify_subscribers off. `process_all` (`aprocess_all`) is the worker round.

Notification events (migration 0018). Status incidents (created, updated, resolved, re-opened)
and maintenance windows (scheduled, rescheduled, cancelled, reminder, started, completed) are
written to `notification_event` by triggers, in the transaction of the change; `claim_events`,
`recipients`, `complete_event` and `release_event` work on them as on changes, one event per
subject (status incident or window) at a time so that a subject's events go out in order. Who
gets what is one SQL function, `statusdb_notification_recipients`, for both kinds: active,
verified subscribers wanting the kind and following an affected component or every component
(an event without components: the whole page), one row per subscriber. A component change that
an event already tells of (its status incident's created, re-opened or resolved event, its
window's started, completed or cancelled one: the folding rule of docs/notifications.md) is
*folded*: `ClaimedChange.folded_into` names that event's kind, and subscribers wanting it are
not told of the change itself, so that everyone hears of it exactly once. `process_all` is
the worker round for everything, with one `deliver` callback taking a typed notification
(`statusdb.domain.types.Notification`) and a key stable per (change or event, subscriber);
every delivery goes through `deliver_one`.
"""

from __future__ import annotations

import datetime as dt
import inspect
import operator
import time
import zoneinfo
from collections import deque
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from itertools import repeat
from typing import Any, Final, Literal, cast, overload

import attrs
import psycopg
from psycopg.rows import class_row, tuple_row

from statusdb.db.executor import Op, dispatch, execute, many, one, operation, optional
from statusdb.db.streams import DEFAULT_ITERSIZE, batches_async, batches_sync
from statusdb.domain import unsubscribe_links, validate
from statusdb.domain.types import (
    INCIDENT_EVENT_KINDS,
    AffectedComponent,
    ComponentStatus,
    EventKind,
    IncidentNotification,
    MaintenanceEventKind,
    MaintenanceNotification,
    Notification,
    NotifyOnEvent,
    StatusChangeNotification,
    SubscriberChannel,
)
from statusdb.errors import InvalidInput, StatusdbError, translate

DEFAULT_HOLD_DOWN: Final = dt.timedelta(minutes=5)
DEFAULT_LEASE: Final = dt.timedelta(minutes=2)

Outcome = Literal["NOTIFIED", "FLAP", "MUTED"]


def notify_types(previous: ComponentStatus, new: ComponentStatus) -> tuple[NotifyOnEvent, ...]:
    """Which subscriber events a change from `previous` to `new` is (none for no change)."""
    if previous == new:
        return ()
    if new == "OPERATIONAL":
        return ("resolved",)
    if new == "DEGRADED_PERFORMANCE":
        return ("degraded",)
    if new == "UNDER_MAINTENANCE":
        return ("maintenance",)
    return ("outage",)  # PARTIAL_OUTAGE, MAJOR_OUTAGE


def _list_of(field: str, values: Iterable[str]) -> tuple[str, ...]:
    """`values` as a tuple; InvalidInput naming `field` for a string or a non-iterable."""
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise InvalidInput(f"{field} must be a list, not {type(values).__name__}")
    return tuple(values)


def _change_ids(values: Iterable[str]) -> tuple[str, ...]:
    return _list_of("change_ids", values)


def _folded_into(values: Iterable[str]) -> tuple[str, ...]:
    return _list_of("folded_into", values)


def _component_ids(values: Iterable[str]) -> tuple[str, ...]:
    return _list_of("component_ids", values)


@attrs.frozen
class ClaimedChange:
    """The coalesced, leased changes of one component, ready to fan out."""

    status_page_id: str
    page_name: str
    page_slug: str
    page_time_zone: str
    component_id: str
    component_name: str
    change_ids: tuple[str, ...] = attrs.field(converter=_change_ids)
    previous_status: ComponentStatus
    new_status: ComponentStatus
    cause: Literal["INCIDENT", "MAINTENANCE", "MANUAL"]
    incident_id: str | None
    maintenance_window_id: str | None
    notify_subscribers: bool
    first_changed_at: dt.datetime
    last_changed_at: dt.datetime
    #: The event kind that already tells of this change (none, or one: the folding rule of
    #: docs/notifications.md): subscribers wanting it are not told of the change itself.
    folded_into: tuple[NotifyOnEvent, ...] = attrs.field(default=(), converter=_folded_into)

    def __attrs_post_init__(self) -> None:
        validate.fields(self)  # InvalidInput for a wrong-typed field (a str for a bool, ...)

    @property
    def notify_types(self) -> tuple[NotifyOnEvent, ...]:
        """The subscriber events this is; empty when nobody is to be told."""
        if not self.notify_subscribers:
            return ()
        return notify_types(self.previous_status, self.new_status)

    @property
    def outcome(self) -> Outcome:
        """What completing it records: NOTIFIED, FLAP (no net change) or MUTED."""
        if self.previous_status == self.new_status:
            return "FLAP"
        if not self.notify_subscribers:
            return "MUTED"
        return "NOTIFIED"

    @property
    def key(self) -> str:
        """A stable idempotency key for deliveries of this notification."""
        return self.change_ids[-1]

    @property
    def notification(self) -> StatusChangeNotification:
        """What subscribers are told."""
        return StatusChangeNotification(
            status_page_id=self.status_page_id,
            page_name=self.page_name,
            page_slug=self.page_slug,
            page_time_zone=self.page_time_zone,
            component_id=self.component_id,
            component_name=self.component_name,
            previous_status=self.previous_status,
            new_status=self.new_status,
            maintenance_id=self.maintenance_window_id,
            changed_at=self.last_changed_at,
        )


@attrs.frozen
class Recipient:
    """A subscriber to deliver one notification to.

    With `unsubscribe_keys` given to the worker (`process_all`, `deliveries.retry`),
    `unsubscribe_token` is this subscriber's unsubscribe link for this message, signed by the
    service (`statusdb.domain.unsubscribe_links`): put `unsubscribe_url(base_url)` in the message
    (and, for email, `list_unsubscribe_headers(base_url)` in its headers).
    """

    subscriber_id: str
    channel: SubscriberChannel
    destination: str
    #: The signed unsubscribe token for this (subscriber, message); None without keys.
    unsubscribe_token: str | None = None
    #: The subscriber's `locale` (migration 0033; None: the page's default): the worker
    #: hands this recipient the notification `localize`d to it.
    locale: str | None = None

    def _token(self) -> str:
        if self.unsubscribe_token is None:
            raise InvalidInput(
                "this recipient has no unsubscribe token: give the worker unsubscribe_keys"
            )
        return self.unsubscribe_token

    def unsubscribe_url(self, base_url: str) -> str:
        """The unsubscribe link for this message (`statusdb.domain.unsubscribe_links.url`): the
        token in place of ``{token}`` in `base_url`, or appended to its path."""
        return unsubscribe_links.url(base_url, self._token())

    def list_unsubscribe_headers(
        self, base_url: str, *, mailto: str | None = None
    ) -> dict[str, str]:
        """An email's RFC 8058 `List-Unsubscribe` and `List-Unsubscribe-Post` headers."""
        link = self.unsubscribe_url(base_url)
        return unsubscribe_links.list_unsubscribe_headers(link, mailto=mailto)


def with_unsubscribe_token(
    recipient: Recipient, key: str, keys: Sequence[unsubscribe_links.UnsubscribeKey]
) -> Recipient:
    """`recipient` with its unsubscribe token for the notification `key` (a claim's key, as
    `deliver` gets it in `delivery_key`), signed with the first of `keys`."""
    token = unsubscribe_links.sign(keys, subscriber_id=recipient.subscriber_id, message_id=key)
    return attrs.evolve(recipient, unsubscribe_token=token)


EventOutcome = Literal["NOTIFIED", "MUTED", "OBSOLETE"]


def _utc_time(value: object) -> dt.datetime:
    """A payload time (UTC ISO 8601, as statusdb_event_time writes it) as an aware datetime."""
    if not isinstance(value, str):
        raise StatusdbError(f"a notification event has an unreadable time: {value!r}")
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise StatusdbError(f"a notification event has an unreadable time: {value!r}") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=dt.UTC)


def _zone(name: str) -> dt.tzinfo:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return dt.UTC  # a zone the server knows and Python does not: the instant stays right


def _components(value: Any) -> tuple[AffectedComponent, ...]:
    return tuple(AffectedComponent(name=c["name"], status=c["status"]) for c in value or ())


@attrs.frozen
class ClaimedEvent:
    """One leased notification event (a status incident's or a window's), ready to fan out."""

    id: str
    status_page_id: str
    #: The page's IANA time zone (`status_page.time_zone`), for the typed notification.
    page_time_zone: str
    kind: EventKind
    #: Affected components (ids): their followers are told; empty: the whole page.
    component_ids: tuple[str, ...] = attrs.field(converter=_component_ids)
    created_at: dt.datetime
    #: What completing it records: NOTIFIED, MUTED (window with notify_subscribers off) or
    #: OBSOLETE (a reminder whose occurrence no longer comes). Only NOTIFIED has recipients.
    outcome: EventOutcome
    #: What a message needs (notification_event.payload); decoded by `notification`.
    payload: Mapping[str, Any] = attrs.field(factory=dict)
    #: The status incident or window the event is about (its events go out in order).
    subject_id: str = ""

    def __attrs_post_init__(self) -> None:
        validate.fields(self)  # InvalidInput for a wrong-typed field (a str for a bool, ...)

    @property
    def key(self) -> str:
        """The event's stable id; with a subscriber id, the idempotency key of a delivery."""
        return self.id

    @property
    def notification(self) -> IncidentNotification | MaintenanceNotification:
        """What subscribers are told, decoded from the event's payload."""
        p = self.payload
        page = p["page"]
        if self.kind in INCIDENT_EVENT_KINDS:
            incident, update = p["incident"], p["update"]
            return IncidentNotification(
                kind=self.kind,
                event_id=self.id,
                status_page_id=self.status_page_id,
                page_name=page["name"],
                page_slug=page["slug"],
                page_time_zone=self.page_time_zone,
                status_incident_id=incident["id"],
                title=incident["title"],
                severity=incident["severity"],
                status=update["status"],
                message=update["message"],
                at=_utc_time(update["timestamp"]),
                components=_components(p["components"]),
            )
        window, occurrence, previous = p["window"], p["occurrence"], p.get("previous")
        zone = _zone(window["time_zone"])
        return MaintenanceNotification(
            kind=cast(MaintenanceEventKind, self.kind),
            event_id=self.id,
            status_page_id=self.status_page_id,
            page_name=page["name"],
            page_slug=page["slug"],
            page_time_zone=self.page_time_zone,
            maintenance_window_id=window["id"],
            title=window["title"],
            description=window["description"],
            time_zone=window["time_zone"],
            recurring=window["recurring"],
            start_time=_utc_time(occurrence["start"]).astimezone(zone),
            end_time=_utc_time(occurrence["end"]).astimezone(zone),
            components=_components(p["components"]),
            previous_start_time=None
            if previous is None
            else _utc_time(previous["start"]).astimezone(zone),
            previous_end_time=None
            if previous is None
            else _utc_time(previous["end"]).astimezone(zone),
        )


@operation(retry=True)
def localize(
    notification: IncidentNotification | MaintenanceNotification, locale: str | None
) -> Op[IncidentNotification | MaintenanceNotification]:
    """`notification` with its texts in `locale` (a subscriber's `locale`, migration 0033; a
    BCP 47 tag): page name, title, message or description and component names translated as
    `views.page_view(..., locale=)` translates them (the tag, its language, else the text as
    written), `locale` set to the locale used. None: as written. One statement
    (statusdb_event_texts); an event of another team, or gone, is returned as it is."""
    if locale is None:
        return notification
    params = {
        "event_id": validate.identifier("event_id", notification.event_id),
        "locale": validate.locale("locale", locale),
    }
    row = yield from optional("event_texts", params, tuple_row)
    if row is None:
        return notification
    used, page_name, title, message, description, components = row
    shown = _components(components)
    if isinstance(notification, IncidentNotification):
        return attrs.evolve(
            notification,
            page_name=page_name,
            title=title,
            message=message,
            components=shown,
            locale=used,
        )
    return attrs.evolve(
        notification,
        page_name=page_name,
        title=title,
        description=description,
        components=shown,
        locale=used,
    )


def _duration(field: str, value: dt.timedelta, *, minimum: dt.timedelta) -> dt.timedelta:
    if not isinstance(value, dt.timedelta) or value < minimum:
        raise InvalidInput(f"{field} must be a timedelta of at least {minimum}")
    return value


def _worker(worker_id: str) -> str:
    return validate.text("worker_id", worker_id, max_length=200)


@operation(retry=True)
def claim(
    *,
    worker_id: str,
    limit: int = 100,
    hold_down: dt.timedelta = DEFAULT_HOLD_DOWN,
    lease: dt.timedelta = DEFAULT_LEASE,
) -> Op[list[ClaimedChange]]:
    """Lease the due changes of up to `limit` components to `worker_id`. Commit afterwards."""
    params = {
        "worker": _worker(worker_id),
        "limit": validate.limit(limit, maximum=10_000),
        "hold_down": _duration("hold_down", hold_down, minimum=dt.timedelta(0)),
        "lease": _duration("lease", lease, minimum=dt.timedelta(milliseconds=1)),
    }
    return (yield from many("outbox_claim", params, class_row(ClaimedChange)))


@operation(retry=True)
def complete(claimed: ClaimedChange, *, worker_id: str) -> Op[bool]:
    """Mark `claimed` done; False (and nothing written) if the lease was lost to another worker."""
    params = {
        "worker": _worker(worker_id),
        "change_ids": list(claimed.change_ids),
        "outcome": claimed.outcome,
    }
    count = yield from execute("outbox_complete", params)
    return count == len(claimed.change_ids)


@operation(retry=True)
def release(claimed: ClaimedChange, *, worker_id: str) -> Op[None]:
    """Give `claimed` back at once (e.g. delivery failed), instead of waiting for the lease."""
    params = {"worker": _worker(worker_id), "change_ids": list(claimed.change_ids)}
    yield from execute("outbox_release", params)


@operation(retry=True)
def pending_count() -> Op[int]:
    """Changes still waiting to be notified (a gauge for monitoring)."""
    row = yield from one("outbox_pending_count", {}, tuple_row, not_found="no count")
    return int(row[0])


@operation(retry=True)
def claim_events(
    *,
    worker_id: str,
    limit: int = 100,
    lease: dt.timedelta = DEFAULT_LEASE,
    per_subject: int = 100,
) -> Op[list[ClaimedEvent]]:
    """Lease the pending events of up to `limit` subjects (status incidents, windows) to
    `worker_id`: each subject's oldest and up to `per_subject` - 1 after it, in order (seq), so
    that one subject's events go out in order. Commit afterwards."""
    params = {
        "worker": _worker(worker_id),
        "limit": validate.limit(limit, maximum=10_000),
        "lease": _duration("lease", lease, minimum=dt.timedelta(milliseconds=1)),
        "per_subject": validate.limit(per_subject, maximum=1_000),
    }
    return (yield from many("event_claim", params, class_row(ClaimedEvent)))


def _claimed_event(claimed: ClaimedEvent) -> str:
    if not isinstance(claimed, ClaimedEvent):
        raise InvalidInput(f"claimed must be a ClaimedEvent, not {type(claimed).__name__}")
    return claimed.id


@operation(retry=True)
def complete_event(claimed: ClaimedEvent, *, worker_id: str) -> Op[bool]:
    """Mark `claimed` done; False (and nothing written) if the lease was lost to another worker."""
    params = {
        "worker": _worker(worker_id),
        "id": _claimed_event(claimed),
        "outcome": claimed.outcome,
    }
    count = yield from execute("event_complete", params)
    return count == 1


@operation(retry=True)
def release_event(claimed: ClaimedEvent, *, worker_id: str) -> Op[None]:
    """Give `claimed` back at once (e.g. delivery failed), instead of waiting for the lease."""
    params = {"worker": _worker(worker_id), "id": _claimed_event(claimed)}
    yield from execute("event_release", params)


@operation(retry=True)
def renew(
    claimed: Sequence[ClaimedChange | ClaimedEvent], *, worker_id: str, lease: dt.timedelta
) -> Op[set[str]]:
    """Extend the leases of `claimed` to now + `lease` (a long fan-out); the keys
    (`ClaimedChange.key`, `ClaimedEvent.key`) of those this worker still holds. Row locks are
    taken in the caller's transaction, so another worker skips them until it ends."""
    worker = _worker(worker_id)
    interval = _duration("lease", lease, minimum=dt.timedelta(milliseconds=1))
    changes = [c for c in claimed if isinstance(c, ClaimedChange)]
    events = [e for e in claimed if isinstance(e, ClaimedEvent)]
    held: set[str] = set()
    if changes:
        ids = [i for c in changes for i in c.change_ids]
        params = {"worker": worker, "lease": interval, "change_ids": ids}
        rows = yield from many("outbox_renew", params, tuple_row)
        still = {row[0] for row in rows}
        held.update(c.key for c in changes if still.issuperset(c.change_ids))
    if events:
        params = {"worker": worker, "lease": interval, "ids": [e.id for e in events]}
        rows = yield from many("event_renew", params, tuple_row)
        held.update(row[0] for row in rows)
    return held


@operation(retry=True)
def pending_events() -> Op[int]:
    """Notification events still waiting to be notified (a gauge for monitoring)."""
    row = yield from one("event_pending_count", {}, tuple_row, not_found="no count")
    return int(row[0])


#: A recipients row's columns, Recipient fields (statusdb_notification_recipients_v2).
_ROW_FIELDS: Final = ("subscriber_id", "channel", "destination", "locale")


def _fast_recipient() -> Callable[[Sequence[Any]], Recipient] | None:
    """A Recipient from a row of its fields' values without attrs' __init__ (a frozen class
    sets each slot through object.__setattr__): the slots' own setters, ~1.3x faster per row
    of a fan-out. The row gives the fields named in _ROW_FIELDS (the three without a default,
    then `locale`); the other fields take their plain default (`unsubscribe_token`: None; the
    worker signs it afterwards). Only while the class has no converters, validators,
    factories or post-init hook that __init__ would run (then None: use the class)."""
    fields = attrs.fields(Recipient)
    factory: type = attrs.Factory  # type: ignore[assignment]
    if hasattr(Recipient, "__attrs_post_init__") or any(
        f.converter is not None or f.validator is not None or isinstance(f.default, factory)
        for f in fields
    ):
        return None
    given = [f.name for f in fields if f.default is attrs.NOTHING]
    names = [f.name for f in fields]
    if given != names[:3] or list(_ROW_FIELDS[:3]) != given or _ROW_FIELDS[3] not in names:
        return None
    first, second, third, fourth = (getattr(Recipient, name).__set__ for name in _ROW_FIELDS)
    defaults = tuple(
        (getattr(Recipient, f.name).__set__, f.default) for f in fields if f.name not in _ROW_FIELDS
    )
    width = len(_ROW_FIELDS)
    new = object.__new__

    def make(values: Sequence[Any]) -> Recipient:
        if len(values) != width:
            return _slow_recipient(values)
        recipient = new(Recipient)
        first(recipient, values[0])
        second(recipient, values[1])
        third(recipient, values[2])
        fourth(recipient, values[3])
        for setter, value in defaults:
            setter(recipient, value)
        return recipient

    return make


def _slow_recipient(values: Sequence[Any]) -> Recipient:
    return Recipient(**dict(zip(_ROW_FIELDS, values, strict=False)))


#: A Recipient from one row of a recipients query (subscriber_id, channel, destination,
#: locale).
_recipient: Final[Callable[[Sequence[Any]], Recipient]] = _fast_recipient() or _slow_recipient


def _column_setters() -> tuple[tuple[Callable[[Any, Any], None], ...], tuple[Any, ...]] | None:
    """The slot setters of _ROW_FIELDS' fields, then of the other fields, and the defaults of
    the others: for building a batch column by column. None when a Recipient must be built
    by its __init__ (the conditions of _fast_recipient)."""
    if _fast_recipient() is None:
        return None
    others = [f for f in attrs.fields(Recipient) if f.name not in _ROW_FIELDS]
    names = (*_ROW_FIELDS, *(f.name for f in others))
    return tuple(getattr(Recipient, name).__set__ for name in names), tuple(
        f.default for f in others
    )


_COLUMN_SETTERS: Final = _column_setters()
#: Recipients built at once for a per-recipient consumer: fewer than the collector's first
#: threshold (700 allocations), so that a consumer dropping each one before the next keeps
#: the garbage collector from running over a batch of live objects.
_CHUNK: Final = 256
_new = object.__new__


def _recipients_of(rows: Sequence[Sequence[Any]]) -> list[Recipient]:
    """The Recipients of a batch of recipients rows, equal to `[_recipient(r) for r in rows]`.

    Issue 20 (fan-out speed): built column by column as the page view's decoder does
    (`views._Columns`): one object.__new__ per row, then each field's slot setter mapped over
    its whole column (a loop in C, no Python frame per value): ~1.3x cheaper per recipient
    than a call of `_recipient` per row. Rows of another width, or a Recipient that its
    __init__ must build, go row by row."""
    count = len(rows)
    if _COLUMN_SETTERS is None or count == 0:
        return [_recipient(values) for values in rows]
    columns = list(zip(*rows, strict=False))
    setters, defaults = _COLUMN_SETTERS
    width = len(_ROW_FIELDS)
    if len(columns) != width or any(len(values) != width for values in rows):
        return [_recipient(values) for values in rows]
    built = list(map(_new, repeat(Recipient, count)))
    for setter, column in zip(setters, columns, strict=False):
        deque(map(setter, built, column), maxlen=0)
    for setter, default in zip(setters[width:], defaults, strict=True):
        deque(map(setter, built, repeat(default, count)), maxlen=0)
    return built


#: A recipients row's locale; the set of them for a batch nobody reads in another locale.
_locale_of: Final = operator.itemgetter(3)
_id_of: Final = operator.attrgetter("subscriber_id")
_DEFAULT: Final = frozenset({None})


def _recipient_params(claimed: ClaimedChange) -> dict[str, object]:
    return {
        "status_page_id": claimed.status_page_id,
        "component_id": claimed.component_id,
        "notify_types": list(claimed.notify_types),
        "folded_into": list(claimed.folded_into),
    }


def _event_recipient_params(claimed: ClaimedEvent) -> dict[str, object]:
    return {
        "status_page_id": claimed.status_page_id,
        "component_ids": list(claimed.component_ids),
        "kind": claimed.kind,
    }


@overload
def recipients(
    conn: psycopg.AsyncConnection[Any],
    claimed: ClaimedChange | ClaimedEvent,
    *,
    itersize: int = ...,
) -> AsyncIterator[Recipient]: ...


@overload
def recipients(
    conn: psycopg.Connection[Any], claimed: ClaimedChange | ClaimedEvent, *, itersize: int = ...
) -> Iterator[Recipient]: ...


def recipients(
    conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any],
    claimed: ClaimedChange | ClaimedEvent,
    *,
    itersize: int = DEFAULT_ITERSIZE,
) -> Iterator[Recipient] | AsyncIterator[Recipient]:
    """Stream the subscribers to tell of `claimed`, in constant memory (none for a flap, a
    muted change or event, an obsolete reminder). One row per subscriber, whatever the number
    of components it shares with the change or event (statusdb_notification_recipients)."""
    query = _recipients_query(claimed, resume=False)
    return dispatch(
        conn,
        lambda sync: _each_sync(sync, query, itersize),
        lambda aconn: _each_async(aconn, query, itersize),
        what="recipients",
    )


def _recipients_query(
    claimed: ClaimedChange | ClaimedEvent, *, resume: bool
) -> tuple[str, dict[str, object]] | None:
    """The named query and parameters of `claimed`'s recipients; None: nobody to tell.
    `resume`: without the subscribers already recorded in delivery_attempt under the claim's
    key (a re-claimed fan-out with bookkeeping resumes where it stopped)."""
    if isinstance(claimed, ClaimedEvent):
        if claimed.outcome != "NOTIFIED":
            return None
        params = _event_recipient_params(claimed)
        name = "event_recipients"
    else:
        if not claimed.notify_types:
            return None
        params = _recipient_params(claimed)
        name = "outbox_recipients"
    if resume:
        return name + "_resume", {**params, "key": claimed.key}
    return name, params


def _batches_sync(
    conn: psycopg.Connection[Any],
    query: tuple[str, dict[str, object]] | None,
    size: int,
    fetch: int,
) -> Generator[list[tuple[Any, ...]], None, None]:
    """The rows of `query` in lists of up to `size`, `fetch` rows per FETCH (the worker
    fetches DEFAULT_ITERSIZE, or its batch if larger: fewer round trips than one per batch)."""
    if query is None:
        return
    batches = batches_sync(conn, query[0], query[1], tuple_row, size=fetch)
    try:
        for rows in batches:
            if len(rows) <= size:
                yield rows
            else:
                for start in range(0, len(rows), size):
                    yield rows[start : start + size]
    finally:
        cast(Generator[Any, None, None], batches).close()


async def _batches_async(
    conn: psycopg.AsyncConnection[Any],
    query: tuple[str, dict[str, object]] | None,
    size: int,
    fetch: int,
) -> AsyncIterator[list[tuple[Any, ...]]]:
    if query is None:
        return
    batches = batches_async(conn, query[0], query[1], tuple_row, size=fetch)
    try:
        async for rows in batches:
            if len(rows) <= size:
                yield rows
            else:
                for start in range(0, len(rows), size):
                    yield rows[start : start + size]
    finally:
        await _aclose(batches)


def _each_sync(
    conn: psycopg.Connection[Any], query: tuple[str, dict[str, object]] | None, size: int
) -> Iterator[Recipient]:
    # Rows come a FETCH at a time as tuples (built in C), and become Recipients here: one
    # Python step per row, not three (psycopg's cursor iterator, the stream, this).
    batches = _batches_sync(conn, query, size, size)
    try:
        for rows in batches:
            for start in range(0, len(rows), _CHUNK):
                yield from _recipients_of(rows[start : start + _CHUNK])
    finally:
        batches.close()


async def _each_async(
    conn: psycopg.AsyncConnection[Any], query: tuple[str, dict[str, object]] | None, size: int
) -> AsyncIterator[Recipient]:
    batches = _batches_async(conn, query, size, size)
    try:
        async for rows in batches:
            for start in range(0, len(rows), _CHUNK):
                for recipient in _recipients_of(rows[start : start + _CHUNK]):
                    yield recipient
    finally:
        await _aclose(batches)


async def _aclose(iterator: object) -> None:
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        await aclose()


@operation(retry=True)
def started(key: str) -> Op[bool]:
    """Whether deliveries are recorded under `key` (a fan-out with bookkeeping to resume)."""
    params = {"key": validate.text("key", key, max_length=200)}
    row = yield from one("delivery_key_started", params, tuple_row, not_found="no answer")
    return bool(row[0])


@attrs.frozen
class ProcessReport:
    """What one `process_all` round did."""

    #: Changes and events claimed.
    claimed: int
    #: Claims completed as NOTIFIED.
    notified: int
    #: Deliveries made (with bookkeeping: attempts recorded, whatever their outcome).
    deliveries: int
    #: Claims lost to another worker (their lease ran out).
    lost: int
    #: Claims given back for another round: none since failed deliveries are retried alone
    #: (issue 27); kept for callers that read it.
    released: int = 0
    #: Deliveries that failed (without bookkeeping): recorded for `deliveries.retry`.
    failed: int = 0


def delivery_key(key: str, recipient: Recipient) -> str:
    """The idempotency key of one delivery: stable per (change or event, subscriber)."""
    return f"{key}/{recipient.subscriber_id}"


def deliver_one(
    deliver: Callable[[Notification, Recipient, str], None],
    notification: Notification,
    recipient: Recipient,
    key: str,
) -> None:
    """One delivery of `notification` to `recipient` with its delivery key.

    `key` is the change's or event's key; the delivery's own key is `delivery_key(key,
    recipient)`, stable per (event, subscriber) across rounds and workers.
    """
    # delivery_key(key, recipient), inlined: one Python call less per recipient (issue 20).
    deliver(notification, recipient, f"{key}/{recipient.subscriber_id}")


#: A per-recipient deliverer: `deliver(notification, recipient, delivery_key)`; sync, or (for
#: `aprocess_all`) sync or async. It reports failure by raising.
Deliver = Callable[[Notification, Recipient, str], "Awaitable[None] | None"]
#: A batch deliverer: `deliver_batch(notification, [(recipient, delivery_key), ...])` returns
#: one outcome per recipient, in order: None (delivered) or the exception that delivery failed
#: with. A shorter list means the rest were not attempted: with bookkeeping, the outcomes
#: given are recorded and the claim released, so that the next claim resumes after them;
#: without, the rest are recorded as failed deliveries for `deliveries.retry`.
#: Sync, or for `aprocess_all` async.
DeliverBatch = Callable[
    [Notification, Sequence[tuple[Recipient, str]]],
    "Sequence[BaseException | None] | Awaitable[Sequence[BaseException | None]]",
]

DEFAULT_BATCH: Final = 1_000


# The worker round is written once, as a generator of steps (like operations are): the sync
# driver `process_all` and the async driver `aprocess_all` run the same steps on their kind of
# connection. A step is a tuple whose first item names it.
_Step = tuple[Any, ...]


class _NotAttempted(Exception):
    """The outcome of a delivery a batch deliverer returned no outcome for: retried later."""

    def __init__(self) -> None:
        super().__init__("the batch deliverer returned no outcome for this delivery")


@attrs.define
class _Round:
    """What a round holds while it runs: the claims not yet completed or released."""

    pending: list[ClaimedChange | ClaimedEvent] = attrs.field(factory=list)
    failure: BaseException | None = None


def _round(
    state: _Round,
    *,
    worker_id: str,
    limit: int,
    hold_down: dt.timedelta,
    lease: dt.timedelta,
    bookkeeping: bool,
    batch_size: int,
    unsubscribe_keys: tuple[bytes, ...] = (),
) -> Generator[_Step, Any, ProcessReport]:
    """The one body of a worker round; see `process_all`."""
    changes = yield (
        "call",
        claim,
        {"worker_id": worker_id, "limit": limit, "hold_down": hold_down, "lease": lease},
    )
    yield ("commit",)
    events = yield ("call", claim_events, {"worker_id": worker_id, "limit": limit, "lease": lease})
    yield ("commit",)
    work: list[ClaimedChange | ClaimedEvent] = [*changes, *events]
    state.pending = list(work)
    renew_every = lease.total_seconds() / 3
    last_renewal = time.monotonic()
    notified = deliveries = lost = failed = released = 0
    # deliveries imports this module. Without bookkeeping it records the failed deliveries only.
    from statusdb.workers import deliveries as books

    for claimed in work:
        if claimed not in state.pending:
            continue  # lost at a renewal
        notification = claimed.notification
        resume = False
        if bookkeeping:
            resume = yield ("started", claimed.key)
        handle = yield ("open", claimed, resume, batch_size)
        held = True
        stopped = False
        key = claimed.key
        localized: dict[str, Notification] = {}
        while True:
            rows: list[tuple[Any, ...]] = yield ("fetch", handle)
            if not rows:
                break
            # Each subscriber's locale (the row's fourth column): an event's texts are
            # translated once per (claim, locale), and each locale's recipients get them in
            # one deliver step. A page nobody reads in another locale: one group, as before.
            groups: list[tuple[Notification, list[tuple[Any, ...]]]]
            if not isinstance(claimed, ClaimedEvent) or set(map(_locale_of, rows)) == _DEFAULT:
                groups = [(notification, rows)]
            else:
                by_locale: dict[str | None, list[tuple[Any, ...]]] = {}
                for values in rows:
                    by_locale.setdefault(values[3], []).append(values)
                groups = []
                for locale, part in by_locale.items():
                    if locale is None:
                        told = notification
                    elif locale in localized:
                        told = localized[locale]
                    else:
                        told = yield (
                            "call",
                            localize,
                            {"notification": notification, "locale": locale},
                        )
                        localized[locale] = told
                    groups.append((told, part))
            for told, part in groups:
                # delivery_key(key, recipient), inlined: the Recipients built column by
                # column, the keys mapped over the subscriber ids (loops in C).
                built = _recipients_of(part)
                pairs = list(zip(built, map(f"{key}/".__add__, map(_id_of, built)), strict=True))
                if unsubscribe_keys:
                    pairs = [
                        (with_unsubscribe_token(r, key, unsubscribe_keys), k) for r, k in pairs
                    ]
                outcomes = yield ("deliver", told, pairs)
                if bookkeeping:
                    # A shorter list: the deliverer stopped (a worker's shutdown). The outcomes
                    # given are recorded and the claim released: the next claim resumes after
                    # them.
                    stopped = len(outcomes) < len(pairs)
                    attempts = [
                        books.attempt_for(claimed.key, told, r, outcome)
                        for (r, _), outcome in zip(pairs, outcomes, strict=False)
                    ]
                    deliveries += len(attempts)
                    if stopped:
                        yield ("call", books.record_many, {"attempts": attempts})
                        break
                else:
                    if len(outcomes) < len(pairs):  # a batch deliverer that stopped: retry them
                        outcomes = [*outcomes, *[_NotAttempted()] * (len(pairs) - len(outcomes))]
                    if outcomes.count(None) == len(outcomes):
                        attempts = []
                        deliveries += len(pairs)
                    else:
                        # Issue 27.5: the others of the fan-out go on, and only the failed
                        # deliveries are tried again (deliveries.retry): recorded as bookkeeping
                        # would, in the completion's transaction; successes are not recorded.
                        attempts = [
                            books.attempt_for(claimed.key, told, r, outcome)
                            for (r, _), outcome in zip(pairs, outcomes, strict=True)
                            if outcome is not None
                        ]
                        deliveries += len(pairs) - len(attempts)
                        failed += len(attempts)
                        if state.failure is None and attempts:
                            state.failure = next(o for o in outcomes if o is not None)
                if attempts:
                    yield ("call", books.record_many, {"attempts": attempts})
            if stopped:
                break
            if time.monotonic() - last_renewal >= renew_every:
                still = yield (
                    "call",
                    renew,
                    {"claimed": list(state.pending), "worker_id": worker_id, "lease": lease},
                )
                last_renewal = time.monotonic()
                for other in list(state.pending):
                    if other.key not in still:
                        state.pending.remove(other)
                        lost += 1
                if claimed not in state.pending:
                    held = False
                    break
                if bookkeeping:  # keep the progress: a re-claim resumes from here
                    yield ("close", handle)
                    yield ("commit",)
                    handle = yield ("open", claimed, True, batch_size)
        yield ("close", handle)
        if not held:
            yield ("rollback",)
            continue
        if stopped:  # keep what was delivered; the next claim resumes after it
            yield ("commit",)
            state.pending.remove(claimed)
            if isinstance(claimed, ClaimedEvent):
                yield ("call", release_event, {"claimed": claimed, "worker_id": worker_id})
            else:
                yield ("call", release, {"claimed": claimed, "worker_id": worker_id})
            yield ("commit",)
            released += 1
            continue
        if isinstance(claimed, ClaimedEvent):
            done = yield ("call", complete_event, {"claimed": claimed, "worker_id": worker_id})
        else:
            done = yield ("call", complete, {"claimed": claimed, "worker_id": worker_id})
        state.pending.remove(claimed)
        if done:
            notified += claimed.outcome == "NOTIFIED"
        else:
            lost += 1
        yield ("commit",)
    return ProcessReport(len(work), notified, deliveries, lost, released, failed)


def _check(
    bookkeeping: bool,
    batch_size: int,
    deliver: object,
    deliver_batch: object,
    unsubscribe_keys: Sequence[unsubscribe_links.UnsubscribeKey] | None = None,
) -> tuple[bool, int, tuple[bytes, ...]]:
    if (deliver is None) == (deliver_batch is None):
        raise InvalidInput("pass one of deliver and deliver_batch")
    keys = () if unsubscribe_keys is None else unsubscribe_links.check_keys(unsubscribe_keys)
    return (
        validate.flag("bookkeeping", bookkeeping),
        validate.limit(batch_size, maximum=10_000),
        keys,
    )


def _checked_outcomes(outcomes: object, pairs: Sequence[Any]) -> list[BaseException | None]:
    if isinstance(outcomes, str | bytes) or not isinstance(outcomes, Sequence):
        raise InvalidInput("deliver_batch must return a list of outcomes (None or an exception)")
    checked = list(outcomes)[: len(pairs)]
    for outcome in checked:
        if outcome is not None and not isinstance(outcome, BaseException):
            raise InvalidInput("deliver_batch outcomes must be None or an exception")
    return checked


def process_all(
    conn: psycopg.Connection[Any],
    deliver: Callable[[Notification, Recipient, str], None] | None = None,
    *,
    worker_id: str,
    limit: int = 100,
    hold_down: dt.timedelta = DEFAULT_HOLD_DOWN,
    lease: dt.timedelta = DEFAULT_LEASE,
    bookkeeping: bool = False,
    deliver_batch: Callable[
        [Notification, Sequence[tuple[Recipient, str]]], Sequence[BaseException | None]
    ]
    | None = None,
    batch_size: int = DEFAULT_BATCH,
    unsubscribe_keys: Sequence[unsubscribe_links.UnsubscribeKey] | None = None,
) -> ProcessReport:
    """One worker round over every kind of notification: component status changes (coalesced
    and damped) and status-incident and maintenance events (several of one subject, in order).
    The worker owns `conn`: it commits the claims, each completion and each release.

    Pass `deliver(notification, recipient, key)` (one recipient at a time) or
    `deliver_batch(notification, [(recipient, key), ...])` (up to `batch_size` at once,
    returning one outcome per recipient: None or the exception it failed with). The
    notification is a `StatusChangeNotification`, an `IncidentNotification` or a
    `MaintenanceNotification`; `key` is stable per (change or event, subscriber): delivery is
    at least once, so let the receiving end drop a key it has seen. Each subscriber gets one
    delivery per event, and a component change that an event already tells of is not delivered
    to those who want that event (`ClaimedChange.folded_into`).

    Whatever a delivery does, the round leaves nothing stranded: a claim is completed, or
    released for the next round. A delivery that raises (or that `deliver_batch` returns no
    outcome for) does not stop the others: every other delivery of the round completes in it,
    and the claim is completed. Without bookkeeping the failed deliveries, and only they, are
    recorded in `delivery_attempt` as bookkeeping would (FAILED_TEMPORARY with the
    notification, or FAILED_PERMANENT), in the completion's transaction, so that
    `deliveries.retry` sends them again, with back-off, to their recipients alone (issue 27:
    before, the whole fan-out was released and sent again to everyone); the successes are not
    recorded. Run a retry worker beside it. The first failure is raised at the end of the round.
    A BaseException that is not an Exception (KeyboardInterrupt), or a database failure, stops
    the round at once: every claim not completed is released (if the connection still works;
    else the leases run out) and the error propagates (database errors as statusdb's). Leases
    are renewed every `lease`/3 while the round works.

    `bookkeeping=True` records every delivery in `delivery_attempt` (statusdb.workers.deliveries):
    DELIVERED, FAILED_PERMANENT (`deliveries.PermanentDeliveryFailure`) or FAILED_TEMPORARY
    (any other Exception, kept with the notification for `deliveries.retry`); failures then do
    not fail the round. Outcomes are written per batch and committed at each renewal and with
    the completion, so that a fan-out re-claimed after a crash resumes with the subscribers not
    yet recorded.

    `unsubscribe_keys` (the service's keys, newest first: `statusdb.domain.unsubscribe_links`) gives
    every recipient its signed `unsubscribe_token` for this notification (see
    `Recipient.unsubscribe_url`): a link that unsubscribes that subscriber, keeps working after
    later messages and token rotations, and that the database could not have made (it never
    sees the keys).
    """
    books, size, keys = _check(bookkeeping, batch_size, deliver, deliver_batch, unsubscribe_keys)
    state = _Round()
    steps = _round(
        state,
        worker_id=worker_id,
        limit=limit,
        hold_down=hold_down,
        lease=lease,
        bookkeeping=books,
        batch_size=size,
        unsubscribe_keys=keys,
    )
    return _drive_sync(conn, state, steps, worker_id, deliver, deliver_batch, "process_all")


def _failure(exc: BaseException) -> BaseException:
    return translate(exc) if isinstance(exc, psycopg.Error) else exc


async def aprocess_all(
    conn: psycopg.AsyncConnection[Any],
    deliver: Callable[[Notification, Recipient, str], Awaitable[None] | None] | None = None,
    *,
    worker_id: str,
    limit: int = 100,
    hold_down: dt.timedelta = DEFAULT_HOLD_DOWN,
    lease: dt.timedelta = DEFAULT_LEASE,
    bookkeeping: bool = False,
    deliver_batch: Callable[
        [Notification, Sequence[tuple[Recipient, str]]],
        Awaitable[Sequence[BaseException | None]] | Sequence[BaseException | None],
    ]
    | None = None,
    batch_size: int = DEFAULT_BATCH,
    unsubscribe_keys: Sequence[unsubscribe_links.UnsubscribeKey] | None = None,
) -> ProcessReport:
    """`process_all` on an async connection, with the same steps and guarantees; `deliver`
    and `deliver_batch` may be coroutine functions (or plain ones). A cancelled task releases
    what the round claimed, as a KeyboardInterrupt does in `process_all`."""
    books, size, keys = _check(bookkeeping, batch_size, deliver, deliver_batch, unsubscribe_keys)
    state = _Round()
    steps = _round(
        state,
        worker_id=worker_id,
        limit=limit,
        hold_down=hold_down,
        lease=lease,
        bookkeeping=books,
        batch_size=size,
        unsubscribe_keys=keys,
    )
    return await _drive_async(conn, state, steps, worker_id, deliver, deliver_batch, "aprocess_all")


#: What a note on a failure to release a round's claims ends with.
_LEASES: Final = "another round claims them again once their leases expire"


async def _maybe(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


# The round's driver: the async code is the source, the sync twin is generated
# (tools/async_to_sync.py).
# async-to-sync: begin
async def _drive_async(
    conn: psycopg.AsyncConnection[Any],
    state: _Round,
    steps: Generator[_Step, Any, ProcessReport],
    worker_id: str,
    deliver: Callable[..., Any] | None,
    deliver_batch: Callable[..., Any] | None,
    what: str,
) -> ProcessReport:
    """Run the round's steps on `conn` for `what` (the worker function); on any failure, give
    back what it claimed."""
    try:
        step = next(steps)
        while True:
            step = steps.send(await _run_async(conn, step, deliver, deliver_batch))
    except StopIteration as stop:
        report: ProcessReport = stop.value
    except BaseException as exc:
        steps.close()
        await _give_back_all_async(conn, state, worker_id, exc, what)
        if isinstance(exc, psycopg.Error):
            raise translate(exc) from exc
        raise
    if state.failure is not None:
        raise _failure(state.failure)
    return report


async def _run_async(
    conn: psycopg.AsyncConnection[Any],
    step: _Step,
    deliver: Callable[..., Any] | None,
    deliver_batch: Callable[..., Any] | None,
) -> Any:
    kind = step[0]
    if kind == "call":
        return await step[1](conn, **step[2])
    if kind == "commit":
        return await conn.commit()
    if kind == "rollback":
        return await conn.rollback()
    if kind == "started":
        return await started(conn, step[1])
    if kind == "open":
        claimed, resume, size = step[1], step[2], step[3]
        query = _recipients_query(claimed, resume=resume)
        return _batches_async(conn, query, size, max(size, DEFAULT_ITERSIZE))
    if kind == "fetch":
        if True:  # ASYNC
            return await anext(step[1], [])
        else:
            return next(step[1], [])
    if kind == "close":
        if True:  # ASYNC
            await _aclose(step[1])
        elif isinstance(step[1], Generator):
            step[1].close()
        return None
    if kind == "deliver":
        notification, pairs = step[1], step[2]
        if deliver_batch is not None:
            if True:  # ASYNC
                outcome = await _maybe(deliver_batch(notification, pairs))
            else:
                outcome = deliver_batch(notification, pairs)
            return _checked_outcomes(outcome, pairs)
        assert deliver is not None
        outcomes: list[BaseException | None] = [None] * len(pairs)
        for n, (recipient, key) in enumerate(pairs):
            try:
                if True:  # ASYNC
                    await _maybe(deliver(notification, recipient, key))
                else:
                    deliver(notification, recipient, key)
            except Exception as exc:
                outcomes[n] = exc
        return outcomes
    raise AssertionError(kind)  # pragma: no cover


async def _give_back_all_async(
    conn: psycopg.AsyncConnection[Any],
    state: _Round,
    worker_id: str,
    failure: BaseException,
    what: str,
) -> None:
    """Release every claim of the round not completed, after `failure`; if that fails too (a
    dead connection), say so on `failure`: the leases then run out by themselves."""
    if not state.pending:
        return
    try:
        await conn.rollback()
        for claimed in state.pending:
            if isinstance(claimed, ClaimedEvent):
                await release_event(conn, claimed, worker_id=worker_id)
            else:
                await release(conn, claimed, worker_id=worker_id)
        await conn.commit()
        state.pending = []
    except (psycopg.Error, StatusdbError) as exc:
        failure.add_note(
            f"statusdb.workers.outbox.{what} could not release its claims ({exc}); {_LEASES}"
        )


# async-to-sync: end
# async-to-sync: generated from the async code above by tools/async_to_sync.py, do not edit


def _drive_sync(
    conn: psycopg.Connection[Any],
    state: _Round,
    steps: Generator[_Step, Any, ProcessReport],
    worker_id: str,
    deliver: Callable[..., Any] | None,
    deliver_batch: Callable[..., Any] | None,
    what: str,
) -> ProcessReport:
    """Run the round's steps on `conn` for `what` (the worker function); on any failure, give
    back what it claimed."""
    try:
        step = next(steps)
        while True:
            step = steps.send(_run_sync(conn, step, deliver, deliver_batch))
    except StopIteration as stop:
        report: ProcessReport = stop.value
    except BaseException as exc:
        steps.close()
        _give_back_all_sync(conn, state, worker_id, exc, what)
        if isinstance(exc, psycopg.Error):
            raise translate(exc) from exc
        raise
    if state.failure is not None:
        raise _failure(state.failure)
    return report


def _run_sync(
    conn: psycopg.Connection[Any],
    step: _Step,
    deliver: Callable[..., Any] | None,
    deliver_batch: Callable[..., Any] | None,
) -> Any:
    kind = step[0]
    if kind == "call":
        return step[1](conn, **step[2])
    if kind == "commit":
        return conn.commit()
    if kind == "rollback":
        return conn.rollback()
    if kind == "started":
        return started(conn, step[1])
    if kind == "open":
        claimed, resume, size = (step[1], step[2], step[3])
        query = _recipients_query(claimed, resume=resume)
        return _batches_sync(conn, query, size, max(size, DEFAULT_ITERSIZE))
    if kind == "fetch":
        return next(step[1], [])
    if kind == "close":
        if isinstance(step[1], Generator):
            step[1].close()
        return None
    if kind == "deliver":
        notification, pairs = (step[1], step[2])
        if deliver_batch is not None:
            outcome = deliver_batch(notification, pairs)
            return _checked_outcomes(outcome, pairs)
        assert deliver is not None
        outcomes: list[BaseException | None] = [None] * len(pairs)
        for n, (recipient, key) in enumerate(pairs):
            try:
                deliver(notification, recipient, key)
            except Exception as exc:
                outcomes[n] = exc
        return outcomes
    raise AssertionError(kind)


def _give_back_all_sync(
    conn: psycopg.Connection[Any], state: _Round, worker_id: str, failure: BaseException, what: str
) -> None:
    """Release every claim of the round not completed, after `failure`; if that fails too (a
    dead connection), say so on `failure`: the leases then run out by themselves."""
    if not state.pending:
        return
    try:
        conn.rollback()
        for claimed in state.pending:
            if isinstance(claimed, ClaimedEvent):
                release_event(conn, claimed, worker_id=worker_id)
            else:
                release(conn, claimed, worker_id=worker_id)
        conn.commit()
        state.pending = []
    except (psycopg.Error, StatusdbError) as exc:
        failure.add_note(
            f"statusdb.workers.outbox.{what} could not release its claims ({exc}); {_LEASES}"
        )


# async-to-sync: end of generated code
