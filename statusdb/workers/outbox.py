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
notify_subscribers off. `process` ties it together for a simple worker loop.

Notification events (migration 0018). Status incidents (created, updated, resolved, re-opened)
and maintenance windows (scheduled, rescheduled, cancelled, reminder, started, completed) are
written to `notification_event` by triggers, in the transaction of the change; `claim_events`,
`recipients`, `complete_event` and `release_event` work on them as on changes, one event per
subject (status incident or window) at a time so that a subject's events go out in order. Who
gets what is one SQL function, `statusdb_notification_recipients`, for both kinds: active,
verified subscribers wanting the kind and following an affected component or every component
(an event without components: the whole page), one row per subscriber. A component change that
a published status incident (or a window's started/completed event) already tells of is
*folded*: `ClaimedChange.folded_into` names those event kinds, and subscribers wanting any of
them are not told of the change itself. `process_all` is the worker round for everything, with
one `deliver` callback taking a typed notification (`statusdb.domain.types.Notification`) and a key
stable per (change or event, subscriber); every delivery goes through `deliver_one`.
"""

from __future__ import annotations

import datetime as dt
import functools
import zoneinfo
from collections.abc import AsyncIterator, Callable, Generator, Iterable, Iterator, Mapping
from typing import Any, Final, Literal, TypeVar, cast, overload

import attrs
import psycopg
from psycopg.rows import class_row, tuple_row

from statusdb.db.executor import Op, dispatch, execute, many, one, operation
from statusdb.db.streams import DEFAULT_ITERSIZE, stream
from statusdb.domain import validate
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
    #: Event kinds that already tell of this change (see `process_all`): subscribers wanting
    #: any of them are not told of the change itself.
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
        )


@attrs.frozen
class Recipient:
    """A subscriber to deliver one notification to."""

    subscriber_id: str
    channel: SubscriberChannel
    destination: str


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
    *, worker_id: str, limit: int = 100, lease: dt.timedelta = DEFAULT_LEASE
) -> Op[list[ClaimedEvent]]:
    """Lease the oldest pending event of up to `limit` subjects (status incidents, windows) to
    `worker_id`, so that one subject's events go out in order. Commit afterwards."""
    params = {
        "worker": _worker(worker_id),
        "limit": validate.limit(limit, maximum=10_000),
        "lease": _duration("lease", lease, minimum=dt.timedelta(milliseconds=1)),
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
def pending_events() -> Op[int]:
    """Notification events still waiting to be notified (a gauge for monitoring)."""
    row = yield from one("event_pending_count", {}, tuple_row, not_found="no count")
    return int(row[0])


def _recipient_row(cursor: Any) -> Callable[[Any], Recipient]:
    def make(values: Any) -> Recipient:
        return Recipient(*values)

    return make


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
    if isinstance(claimed, ClaimedEvent):
        if claimed.outcome != "NOTIFIED":
            return dispatch(conn, lambda _: iter(()), lambda _: _empty(), what="recipients")
        params = _event_recipient_params(claimed)
        return stream(conn, "event_recipients", params, _recipient_row, itersize=itersize)
    if not claimed.notify_types:
        return dispatch(conn, lambda _: iter(()), lambda _: _empty(), what="recipients")
    params = _recipient_params(claimed)
    return stream(conn, "outbox_recipients", params, _recipient_row, itersize=itersize)


async def _empty() -> AsyncIterator[Recipient]:
    return
    yield  # makes this an async generator


@attrs.frozen
class ProcessReport:
    """What one `process` round did."""

    claimed: int
    notified: int
    deliveries: int
    lost: int


def process(
    conn: psycopg.Connection[Any],
    deliver: Callable[[StatusChangeNotification, Recipient, str], None],
    *,
    worker_id: str,
    limit: int = 100,
    hold_down: dt.timedelta = DEFAULT_HOLD_DOWN,
    lease: dt.timedelta = DEFAULT_LEASE,
) -> ProcessReport:
    """One worker round over component status changes only: claim, deliver, complete.

    Kept for workers written before notification events (0018); `process_all` handles every
    kind of notification. A worker owns `conn` and commits the claim and each completion.
    `deliver(notification, recipient, key)` should enqueue or send; `key` is the change's
    (`ClaimedChange.key`). If it raises, the change is released for another round and the error
    propagates (a psycopg error raised by `deliver` becomes statusdb's, chained). A database
    failure (a lost connection, say) raises statusdb's `Retryable`, chained to psycopg's error;
    if the change cannot be released then, its lease expires and another round claims it again.
    """
    claimed = claim(conn, worker_id=worker_id, limit=limit, hold_down=hold_down, lease=lease)
    _commit(conn)
    notified = deliveries = lost = 0
    for change in claimed:
        # Built once per change, not once per recipient (a change can have a million).
        give_back = functools.partial(release, conn, change, worker_id=worker_id)
        deliveries += _fan_out(conn, change, deliver, change.notification, change.key, give_back)
        if complete(conn, change, worker_id=worker_id):
            notified += change.outcome == "NOTIFIED"
        else:
            lost += 1
        _commit(conn)
    return ProcessReport(len(claimed), notified, deliveries, lost)


def delivery_key(key: str, recipient: Recipient) -> str:
    """The idempotency key of one delivery: stable per (change or event, subscriber)."""
    return f"{key}/{recipient.subscriber_id}"


def deliver_one(
    deliver: Callable[[Notification, Recipient, str], None],
    notification: Notification,
    recipient: Recipient,
    key: str,
) -> None:
    """`process_all`'s per-recipient step: one delivery of `notification` to `recipient`.

    The one place delivery goes through, so that bookkeeping (attempts, retries) can wrap it.
    `key` is the change's or event's key; the delivery's own key is `delivery_key(key,
    recipient)`, stable per (event, subscriber) across rounds and workers.
    """
    deliver(notification, recipient, delivery_key(key, recipient))


def process_all(
    conn: psycopg.Connection[Any],
    deliver: Callable[[Notification, Recipient, str], None],
    *,
    worker_id: str,
    limit: int = 100,
    hold_down: dt.timedelta = DEFAULT_HOLD_DOWN,
    lease: dt.timedelta = DEFAULT_LEASE,
    bookkeeping: bool = False,
) -> ProcessReport:
    """One worker round over every kind of notification: component status changes (coalesced
    and damped as `process` does) and status-incident and maintenance events.

    `deliver(notification, recipient, key)` gets a `StatusChangeNotification`, an
    `IncidentNotification` or a `MaintenanceNotification` (match on the class, or on `kind`),
    the recipient, and an idempotency key stable per (change or event, subscriber): delivery
    is at least once (a worker that stalls past its lease may deliver again what another worker
    then delivers), so let the receiving end drop a key it has seen. Each subscriber gets one
    delivery per event, never one per affected component, and a component change that a status
    incident's or a window's event already tells of is not delivered to those who want that
    event (`ClaimedChange.folded_into`). Commits the claims and each completion; errors as
    `process`.

    `bookkeeping=True` records every delivery in `delivery_attempt` (statusdb.workers.deliveries):
    under (the change's or event's key, subscriber id), DELIVERED, FAILED_PERMANENT
    (`deliver` raised `deliveries.PermanentDeliveryFailure`) or FAILED_TEMPORARY (any other
    Exception, kept with the typed notification for `deliveries.retry`). A failing delivery
    then no longer fails the round: the outcomes are written in batches and flushed before
    each completion, in its transaction, so they commit together.
    """
    send: Callable[[Any, Recipient, str], None]
    new_sender: Callable[[], Any]
    if validate.flag("bookkeeping", bookkeeping):
        if getattr(deliver, "statusdb_bookkeeping", False):
            raise InvalidInput(
                "deliver is already wrapped by deliveries.bookkeeping: pass the plain callback"
                " with bookkeeping=True"
            )
        from statusdb.workers.deliveries import Bookkeeper  # deliveries imports this module

        def new_sender() -> Any:
            return Bookkeeper(conn, deliver)
    else:
        plain = functools.partial(deliver_one, deliver)

        def new_sender() -> Any:
            return plain

    changes = claim(conn, worker_id=worker_id, limit=limit, hold_down=hold_down, lease=lease)
    _commit(conn)
    events = claim_events(conn, worker_id=worker_id, limit=limit, lease=lease)
    _commit(conn)
    notified = deliveries = lost = 0
    for change in changes:
        give_back = functools.partial(release, conn, change, worker_id=worker_id)
        send = new_sender()
        deliveries += _fan_out(conn, change, send, change.notification, change.key, give_back)
        _flush(send)
        if complete(conn, change, worker_id=worker_id):
            notified += change.outcome == "NOTIFIED"
        else:
            lost += 1
        _commit(conn)
    for event in events:
        give_back = functools.partial(release_event, conn, event, worker_id=worker_id)
        send = new_sender()
        deliveries += _fan_out(conn, event, send, event.notification, event.key, give_back)
        _flush(send)
        if complete_event(conn, event, worker_id=worker_id):
            notified += event.outcome == "NOTIFIED"
        else:
            lost += 1
        _commit(conn)
    return ProcessReport(len(changes) + len(events), notified, deliveries, lost)


def _flush(send: object) -> None:
    """Record a bookkeeper's buffered outcomes (before the completion, same transaction)."""
    flush = getattr(send, "flush", None)
    if flush is not None:
        flush()


_N = TypeVar("_N", bound=Notification)


def _fan_out(
    conn: psycopg.Connection[Any],
    claimed: ClaimedChange | ClaimedEvent,
    send: Callable[[_N, Recipient, str], None],
    notification: _N,
    key: str,
    give_back: Callable[[], object],
) -> int:
    """`send` `notification` to every recipient of `claimed` (streamed); on failure give the
    claim back and re-raise. `notification` is built once per claim, not once per recipient."""
    count = 0
    stream = recipients(conn, claimed)
    try:
        for recipient in stream:
            send(notification, recipient, key)
            count += 1
    except BaseException as exc:
        if isinstance(stream, Generator):  # now, not in a finaliser (drops close failures)
            stream.close()
        _give_back(conn, give_back, exc)
        if isinstance(exc, psycopg.Error):  # raised by `deliver` itself
            raise translate(exc) from exc
        raise
    return count


def _commit(conn: psycopg.Connection[Any]) -> None:
    try:
        conn.commit()
    except psycopg.Error as exc:
        raise translate(exc) from exc


def _give_back(
    conn: psycopg.Connection[Any], release_claim: Callable[[], object], failure: BaseException
) -> None:
    """Release a claim after `failure`; if that fails too (a dead connection), say so on
    `failure`, which stays the error the caller gets: the lease then runs out by itself."""
    try:
        conn.rollback()
        release_claim()
        conn.commit()
    except (psycopg.Error, StatusdbError) as exc:
        failure.add_note(
            f"statusdb.workers.outbox.process could not release the claim ({exc}); another round "
            "claims the change again once its lease expires"
        )
