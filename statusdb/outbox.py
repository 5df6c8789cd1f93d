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
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable, Generator, Iterable, Iterator
from typing import Any, Final, Literal, overload

import attrs
import psycopg
from psycopg.rows import class_row, tuple_row

from statusdb import validate
from statusdb.errors import InvalidInput, StatusdbError, translate
from statusdb.executor import Op, dispatch, execute, many, one, operation
from statusdb.streams import DEFAULT_ITERSIZE, stream
from statusdb.types import (
    ComponentStatus,
    NotifyOnEvent,
    StatusChangeNotification,
    SubscriberChannel,
)

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


def _change_ids(values: Iterable[str]) -> tuple[str, ...]:
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise InvalidInput(f"change_ids must be a list of ids, not {type(values).__name__}")
    return tuple(values)


@attrs.frozen
class ClaimedChange:
    """The coalesced, leased changes of one component, ready to fan out."""

    status_page_id: str
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
            component_id=self.component_id,
            component_name=self.component_name,
            previous_status=self.previous_status,
            new_status=self.new_status,
            incident_id=self.incident_id,
            maintenance_id=self.maintenance_window_id,
        )


@attrs.frozen
class Recipient:
    """A subscriber to deliver one notification to."""

    subscriber_id: str
    channel: SubscriberChannel
    destination: str


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


def _recipient_row(cursor: Any) -> Callable[[Any], Recipient]:
    def make(values: Any) -> Recipient:
        return Recipient(*values)

    return make


def _recipient_params(claimed: ClaimedChange) -> dict[str, object]:
    return {
        "status_page_id": claimed.status_page_id,
        "component_id": claimed.component_id,
        "notify_types": list(claimed.notify_types),
    }


@overload
def recipients(
    conn: psycopg.AsyncConnection[Any], claimed: ClaimedChange, *, itersize: int = ...
) -> AsyncIterator[Recipient]: ...


@overload
def recipients(
    conn: psycopg.Connection[Any], claimed: ClaimedChange, *, itersize: int = ...
) -> Iterator[Recipient]: ...


def recipients(
    conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any],
    claimed: ClaimedChange,
    *,
    itersize: int = DEFAULT_ITERSIZE,
) -> Iterator[Recipient] | AsyncIterator[Recipient]:
    """Stream the subscribers to tell of `claimed`, in constant memory (none for a flap)."""
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
    """One worker round: claim, deliver to every recipient, complete. Commits as it goes.

    A worker loop, not a repository operation: it owns `conn` and commits the claim and each
    completion. `deliver(notification, recipient, key)` should enqueue or send; if it raises,
    the change is released for another round and the error propagates (a psycopg error raised
    by `deliver` becomes statusdb's, chained). A database failure (a lost connection, say)
    raises statusdb's `Retryable`, chained to psycopg's error; if the change cannot be released
    then, its lease expires and another round claims it again.
    """
    claimed = claim(conn, worker_id=worker_id, limit=limit, hold_down=hold_down, lease=lease)
    _commit(conn)
    notified = deliveries = lost = 0
    for change in claimed:
        # Built once per change, not once per recipient (a change can have a million).
        notification, key = change.notification, change.key
        stream = recipients(conn, change)
        try:
            for recipient in stream:
                deliver(notification, recipient, key)
                deliveries += 1
        except BaseException as exc:
            if isinstance(stream, Generator):  # now, not in a finaliser (drops close failures)
                stream.close()
            _give_back(conn, change, worker_id, exc)
            if isinstance(exc, psycopg.Error):  # raised by `deliver` itself
                raise translate(exc) from exc
            raise
        if complete(conn, change, worker_id=worker_id):
            notified += change.outcome == "NOTIFIED"
        else:
            lost += 1
        _commit(conn)
    return ProcessReport(len(claimed), notified, deliveries, lost)


def _commit(conn: psycopg.Connection[Any]) -> None:
    try:
        conn.commit()
    except psycopg.Error as exc:
        raise translate(exc) from exc


def _give_back(
    conn: psycopg.Connection[Any], change: ClaimedChange, worker_id: str, failure: BaseException
) -> None:
    """Release `change` after `failure`; if that fails too (a dead connection), say so on
    `failure`, which stays the error the caller gets: the lease then runs out by itself."""
    try:
        conn.rollback()
        release(conn, change, worker_id=worker_id)
        conn.commit()
    except (psycopg.Error, StatusdbError) as exc:
        failure.add_note(
            f"statusdb.outbox.process could not release the claim ({exc}); another round "
            "claims the change again once its lease expires"
        )
