"""The live feed of component status changes, for websocket broadcasters and the like.

Every change of a component's status is logged to `status_change` and announced with
`pg_notify('statusdb_status_change', {status_page_id, component_id, new_status, change_id})`
(migration 0003). `listen` / `alisten` turn those notifications into typed
`StatusChangeEvent`s::

    with psycopg.connect(dsn, autocommit=True) as listener:
        for event in feed.listen(listener, status_page_id=page_id):
            broadcast(event)

What a listener must know:

* Notifications are delivered when, and only if, the transaction that made the change commits,
  in commit order. A rolled-back change is never announced.
* They are not durable. A listener that is down, reconnecting or not yet listening misses them.
  The durable record is the `status_change` table (and the subscriber outbox): on (re)connect,
  `subscribe` first, then read the current state or the changes since the last `change_id` you
  handled, then follow the feed; the events carry `change_id` so that duplicates from that
  overlap can be dropped.
* Use a dedicated connection, in autocommit mode, and keep reading from it. Notifications reach
  a session only between transactions, so a connection inside a transaction (or a pooled one
  lent to other work) would hold them back; worse, a listener that stops consuming holds back
  PostgreSQL's shared notification queue, and once that is full every transaction that changes
  a status fails at commit. `listen` also consumes every notification the connection receives,
  including those of other channels it listens to (they are dropped). `listen`, `alisten` and
  `subscribe` refuse a connection that is not in autocommit mode or is inside a transaction.
* LISTEN stays in effect on the connection after a round of `listen` ends on its `timeout` or
  `stop_after`: notifications arriving meanwhile are kept by psycopg and come out of the next
  `listen`, so a loop such as ``while True: for e in listen(conn, timeout=30): ...`` (doing a
  health check between rounds) loses nothing. Breaking out of the loop instead drops what
  psycopg had already read along with the last event (see `listen`). Close the connection to
  stop listening.
* A payload that is not what the database sends (someone running NOTIFY by hand) is skipped
  with a logged warning; it never stops the listener.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any, Final

import attrs
import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus

from statusdb import validate
from statusdb.errors import InvalidInput, translate
from statusdb.types import STATUS_SEVERITY_ORDER, ComponentStatus

#: The channel migration 0003 notifies on.
CHANNEL: Final = "statusdb_status_change"

_LISTEN: Final = sql.SQL("LISTEN {}").format(sql.Identifier(CHANNEL))
_MAX_LOGGED_PAYLOAD: Final = 200

logger = logging.getLogger(__name__)


@attrs.frozen
class StatusChangeEvent:
    """One committed change of a component's status, as announced on the feed.

    `change_id` is the id of the `status_change` row that records it (with the previous status,
    the cause and the time).
    """

    status_page_id: str
    component_id: str
    new_status: ComponentStatus
    change_id: str


def _decode(payload: str) -> StatusChangeEvent:
    """The event a notification payload announces; ValueError saying why if it is malformed.

    Keys other than the four expected are ignored, so that the trigger may announce more later.
    """
    try:
        data: Any = json.loads(payload)
    except ValueError as exc:
        raise ValueError(f"not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    fields: dict[str, str] = {}
    for key in ("status_page_id", "component_id", "new_status", "change_id"):
        value = data.get(key)
        if not isinstance(value, str) or not value:
            raise ValueError(f"{key} is missing or not a non-empty string")
        fields[key] = value
    new_status = fields["new_status"]
    if new_status not in STATUS_SEVERITY_ORDER:
        raise ValueError(f"unknown new_status {new_status!r}")
    return StatusChangeEvent(
        status_page_id=fields["status_page_id"],
        component_id=fields["component_id"],
        new_status=new_status,
        change_id=fields["change_id"],
    )


def _event(notify: psycopg.Notify, status_page_id: str | None) -> StatusChangeEvent | None:
    """The event to hand out for a notification, or None to skip it."""
    if notify.channel != CHANNEL:
        logger.debug("dropping a notification on channel %r (not the status feed)", notify.channel)
        return None
    try:
        event = _decode(notify.payload)
    except ValueError as exc:
        logger.warning(
            "skipping a malformed %s notification from backend %d: %s; payload %r",
            CHANNEL,
            notify.pid,
            exc,
            notify.payload[:_MAX_LOGGED_PAYLOAD],
        )
        return None
    if status_page_id is not None and event.status_page_id != status_page_id:
        return None
    return event


def _check_listener(conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> None:
    if not conn.autocommit:
        raise InvalidInput(
            "conn must be in autocommit mode to receive notifications promptly "
            "(psycopg.connect(dsn, autocommit=True)), and dedicated to listening"
        )
    if conn.info.transaction_status != TransactionStatus.IDLE:
        raise InvalidInput(
            "conn is inside a transaction: notifications only arrive between transactions; "
            "use a dedicated autocommit connection for listening"
        )


def _check_options(
    status_page_id: str | None, timeout: float | None, stop_after: int | None
) -> str | None:
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout < 0
    ):
        raise InvalidInput("timeout must be a number of seconds >= 0, or None to wait forever")
    if stop_after is not None and (
        isinstance(stop_after, bool) or not isinstance(stop_after, int) or stop_after < 1
    ):
        raise InvalidInput("stop_after must be an integer >= 1, or None for no limit")
    return None if status_page_id is None else validate.identifier("status_page_id", status_page_id)


def subscribe(conn: psycopg.Connection[Any]) -> None:
    """Start listening on `conn` (idempotent) without waiting for anything.

    `listen` does this itself; call it first when you must not miss a change made between now
    and the moment you start iterating (e.g. subscribe, then read a snapshot, then `listen`).
    """
    _check_listener(conn)
    try:
        conn.execute(_LISTEN)
    except psycopg.Error as exc:
        raise translate(exc) from exc


async def asubscribe(aconn: psycopg.AsyncConnection[Any]) -> None:
    """`subscribe` for an async connection."""
    _check_listener(aconn)
    try:
        await aconn.execute(_LISTEN)
    except psycopg.Error as exc:
        raise translate(exc) from exc


def listen(
    conn: psycopg.Connection[Any],
    *,
    status_page_id: str | None = None,
    timeout: float | None = None,
    stop_after: int | None = None,
) -> Iterator[StatusChangeEvent]:
    """Status change events as they are committed, from a dedicated autocommit connection.

    Listens (LISTEN) when iteration starts, then yields each event. `status_page_id` keeps only
    that page's events (filtered here: PostgreSQL has no per-payload filter). Iteration ends
    after `timeout` seconds in total (None: never), or once at least `stop_after` events have
    been yielded (skipped and filtered-out notifications do not count). Like psycopg's own
    `notifies(stop_after=)`, it may yield a few more: notifications that arrived together are
    all handed out, because psycopg would otherwise drop the rest of the batch. For the same
    reason, end a round with `timeout` or `stop_after` rather than by breaking out of the loop
    (which drops whatever psycopg had already read with the last event). A lost connection
    raises `Retryable`: reconnect, catch up from `status_change`, listen again.
    """
    page = _check_options(status_page_id, timeout, stop_after)
    subscribe(conn)
    deadline = None if timeout is None else time.monotonic() + timeout
    yielded = 0
    while True:
        wanted = None if stop_after is None else stop_after - yielded
        received = 0
        notifies = conn.notifies(timeout=_remaining(deadline), stop_after=wanted)
        try:
            for notify in notifies:
                received += 1
                event = _event(notify, page)
                if event is not None:
                    yield event
                    yielded += 1
        except psycopg.Error as exc:
            raise translate(exc) from exc
        finally:
            # Releases the connection's lock at once, whoever stops the iteration.
            notifies.close()
        if _round_over(wanted, received, yielded, stop_after):
            return


async def alisten(
    aconn: psycopg.AsyncConnection[Any],
    *,
    status_page_id: str | None = None,
    # The same deadline as psycopg's own notifies(timeout=), and the same as `listen`'s.
    timeout: float | None = None,  # noqa: ASYNC109
    stop_after: int | None = None,
) -> AsyncIterator[StatusChangeEvent]:
    """`listen` for an async connection: ``async for event in alisten(aconn): ...``."""
    page = _check_options(status_page_id, timeout, stop_after)
    await asubscribe(aconn)
    deadline = None if timeout is None else time.monotonic() + timeout
    yielded = 0
    while True:
        wanted = None if stop_after is None else stop_after - yielded
        received = 0
        notifies = aconn.notifies(timeout=_remaining(deadline), stop_after=wanted)
        try:
            async for notify in notifies:
                received += 1
                event = _event(notify, page)
                if event is not None:
                    yield event
                    yielded += 1
        except psycopg.Error as exc:
            raise translate(exc) from exc
        finally:
            await notifies.aclose()
        if _round_over(wanted, received, yielded, stop_after):
            return


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def _round_over(wanted: int | None, received: int, yielded: int, stop_after: int | None) -> bool:
    """Whether iteration ends after psycopg's notifies() returned.

    It returns after the timeout, or once it has received `wanted` notifications. In the
    latter case, if some of them were skipped or filtered out, another round waits for the
    events still missing (within what is left of the timeout).
    """
    if wanted is None or received < wanted:
        return True  # the timeout expired
    return stop_after is not None and yielded >= stop_after
