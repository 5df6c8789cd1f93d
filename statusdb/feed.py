"""The live feed of component status changes, for websocket broadcasters and the like.

Every change of a component's status is logged to `status_change` and announced with
`pg_notify('statusdb_status_change', '<seq>')` (migrations 0003, 0012): the payload is only the
change's `seq` number. LISTEN needs no privilege, so a payload is readable by any role that can
connect; it tells them that something changed, not where. `listen` / `alisten` read each
announced change from `status_change` with the listener's own privileges (and, when the listener
is scoped with `statusdb.tenancy.set_team(..., local=False)`, its team's row-level security) and
turn it into a typed `StatusChangeEvent`::

    with psycopg.connect(dsn, autocommit=True) as listener:
        for event in feed.listen(listener, status_page_id=page_id):
            broadcast(event)

What a listener must know:

* It needs SELECT on `status_change` (statusdb_app has it; statusdb_reader does not, and gets
  `Unauthorized`). Changes it may not read (another team's, under a team scope) are skipped, as
  are changes whose row is gone by the time it reads (its component or page was deleted).
* Notifications are delivered when, and only if, the transaction that made the change commits,
  in commit order. A rolled-back change is never announced.
* They are not durable. A listener that is down, reconnecting or not yet listening misses them.
  The durable record is the `status_change` table (and the subscriber outbox): on (re)connect,
  `start_listening` first, then read the current state or the changes since the last `change_id` you
  handled, then follow the feed; the events carry `change_id` so that duplicates from that
  overlap can be dropped.
* Use a dedicated connection, in autocommit mode, and keep reading from it. Notifications reach
  a session only between transactions, so a connection inside a transaction (or a pooled one
  lent to other work) would hold them back; worse, a listener that stops consuming holds back
  PostgreSQL's shared notification queue, and once that is full every transaction that changes
  a status fails at commit. `listen` also consumes every notification the connection receives,
  including those of other channels it listens to (they are dropped). `listen`, `alisten` and
  `start_listening` refuse a connection that is not in autocommit mode or is inside a transaction.
* LISTEN stays in effect on the connection after a round of `listen` ends on its `timeout` or
  `stop_after`: notifications arriving meanwhile are kept by psycopg and come out of the next
  `listen`, so a loop such as ``while True: for e in listen(conn, timeout=30): ...`` (doing a
  health check between rounds) loses nothing. Breaking out of the loop instead drops the rest of
  the batch the last event came with (see `listen`). Close the connection to stop listening.
* A payload that is not what the database sends (someone running NOTIFY by hand) is skipped
  with a logged warning; it never stops the listener. A hand-made payload can at most name an
  existing change again (read from the table like any other): drop duplicates by `change_id`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any, Final, Literal, overload

import attrs
import psycopg
from psycopg import sql
from psycopg.rows import class_row

from statusdb.db.executor import Op, _owns_transaction, many, operation
from statusdb.domain import validate
from statusdb.domain.types import ComponentStatus
from statusdb.errors import InvalidInput, translate

#: The channel migrations 0003 and 0012 notify on.
CHANNEL: Final = "statusdb_status_change"
#: The channel migration 0017 announces new page versions on (payload: the version).
PAGE_CHANNEL: Final = "statusdb_page_version"

_LISTEN: Final = sql.SQL("LISTEN {}").format(sql.Identifier(CHANNEL))
_LISTEN_PAGES: Final = sql.SQL("LISTEN {}").format(sql.Identifier(PAGE_CHANNEL))
_MAX_LOGGED_PAYLOAD: Final = 200
#: A seq is a bigint: at most 19 digits.
_MAX_SEQ_DIGITS: Final = 19

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


@attrs.frozen
class PageVersionEvent:
    """A page was re-rendered (committed): any cached version below `version` is stale.

    `version` is the lowest `PageView.version` readers of the new rendering see (migration
    0017: the snapshot's version * 256; a reader's version adds the scheduled maintenance
    windows already in its horizon, so several horizons of one rendering share this floor). A
    page's versions only increase: a cache holding a version of the page equal to or above
    `version` has nothing to do; below it, refresh.
    """

    status_page_id: str
    version: int

    @property
    def version_text(self) -> str:
        """The version as text (versions exceed 2^53: never a JSON number)."""
        return str(self.version)


@attrs.frozen
class GroupStatusChangeEvent:
    """One committed change of a component group's derived status (migration 0020).

    Announced on the same channel, with a seq from the same sequence as component changes;
    `listen(..., groups=True)` yields these too. `change_id` is the id of the
    `component_group_status_change` row.
    """

    status_page_id: str
    group_id: str
    new_status: ComponentStatus
    change_id: str


@attrs.frozen
class _AnyChange:
    position: int
    status_page_id: str
    component_id: str | None
    group_id: str | None
    new_status: ComponentStatus
    change_id: str

    def event(self) -> StatusChangeEvent | GroupStatusChangeEvent:
        if self.group_id is not None:
            return GroupStatusChangeEvent(
                self.status_page_id, self.group_id, self.new_status, self.change_id
            )
        assert self.component_id is not None
        return StatusChangeEvent(
            self.status_page_id, self.component_id, self.new_status, self.change_id
        )


def _decode(payload: str) -> int:
    """The change seq a notification payload announces; ValueError saying why if malformed."""
    if not (payload.isascii() and payload.isdigit()) or len(payload) > _MAX_SEQ_DIGITS:
        raise ValueError("not a sequence number (a decimal number)")
    seq = int(payload)
    if seq >= 2**63:
        raise ValueError("not a sequence number (out of range)")
    return seq


def _seqs(batch: list[psycopg.Notify], channel: str = CHANNEL) -> list[int]:
    """The seqs announced by a batch of notifications, in order; other notifications dropped."""
    seqs: list[int] = []
    for notify in batch:
        if notify.channel != channel:
            logger.debug("dropping a notification on channel %r (not %s)", notify.channel, channel)
            continue
        try:
            seqs.append(_decode(notify.payload))
        except ValueError as exc:
            logger.warning(
                "skipping a malformed %s notification from backend %d: %s; payload %r",
                channel,
                notify.pid,
                exc,
                notify.payload[:_MAX_LOGGED_PAYLOAD],
            )
    return seqs


@operation(retry=True)
def _changes(seqs: list[int], status_page_id: str | None) -> Op[list[StatusChangeEvent]]:
    """The announced changes the connection's role may read (of one page, when given)."""
    params = {"seqs": seqs, "status_page_id": status_page_id}
    return (yield from many("feed_changes_by_seq", params, class_row(StatusChangeEvent)))


@operation(retry=True)
def _page_versions(versions: list[int], status_page_id: str | None) -> Op[list[PageVersionEvent]]:
    """The announced page versions the connection's role may read (of one page, when given)."""
    params = {"versions": versions, "status_page_id": status_page_id}
    return (yield from many("feed_page_versions", params, class_row(PageVersionEvent)))


@operation(retry=True)
def _changes_with_groups(
    seqs: list[int], status_page_id: str | None
) -> Op[list[StatusChangeEvent | GroupStatusChangeEvent]]:
    """The announced component and group changes the connection's role may read, in order."""
    params = {"seqs": seqs, "status_page_id": status_page_id}
    rows = yield from many("feed_changes_with_groups_by_seq", params, class_row(_AnyChange))
    return [row.event() for row in rows]


def _check_listener(conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> None:
    # A listener is a connection whose every call owns its transaction (notifications arrive
    # between transactions); the two ways of failing that get their own message.
    if _owns_transaction(conn):
        return
    if not conn.autocommit:
        raise InvalidInput(
            "conn must be in autocommit mode to receive notifications promptly "
            "(psycopg.connect(dsn, autocommit=True)), and dedicated to listening"
        )
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


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def _round_over(
    batch: list[psycopg.Notify], deadline: float | None, yielded: int, stop_after: int | None
) -> bool:
    """Whether iteration ends after a batch: enough events, or the timeout is over.

    An empty batch means psycopg waited until the deadline. A batch whose notifications were
    skipped, filtered out or not readable counts nothing: the next one is waited for (within
    what is left of the timeout).
    """
    if stop_after is not None and yielded >= stop_after:
        return True
    return not batch or (deadline is not None and time.monotonic() >= deadline)


# async-to-sync: begin
async def astart_listening(aconn: psycopg.AsyncConnection[Any]) -> None:
    """Start listening on `aconn` (idempotent) without waiting for anything.

    `alisten` does this itself; call it first when you must not miss a change made between now
    and the moment you start iterating (start listening, then read a snapshot, then `alisten`).
    """
    _check_listener(aconn)
    try:
        await aconn.execute(_LISTEN)
    except psycopg.Error as exc:
        raise translate(exc) from exc


@overload
def alisten(
    aconn: psycopg.AsyncConnection[Any],
    *,
    status_page_id: str | None = ...,
    timeout: float | None = ...,
    stop_after: int | None = ...,
    groups: Literal[False] = ...,
) -> AsyncIterator[StatusChangeEvent]: ...


@overload
def alisten(
    aconn: psycopg.AsyncConnection[Any],
    *,
    status_page_id: str | None = ...,
    timeout: float | None = ...,
    stop_after: int | None = ...,
    groups: Literal[True],
) -> AsyncIterator[StatusChangeEvent | GroupStatusChangeEvent]: ...


async def alisten(
    aconn: psycopg.AsyncConnection[Any],
    *,
    status_page_id: str | None = None,
    # The same deadline as psycopg's own notifies(timeout=).
    timeout: float | None = None,  # noqa: ASYNC109
    stop_after: int | None = None,
    groups: bool = False,
) -> AsyncIterator[StatusChangeEvent | GroupStatusChangeEvent]:
    """Status change events as they are committed, from a dedicated autocommit connection.

    ``async for event in alisten(aconn): ...`` listens (LISTEN) when iteration starts, then
    yields each event. Each batch of notifications (those that arrived together) is read whole,
    then its changes are read from `status_change` in one query on `aconn`, as `aconn`'s role may
    see them (Unauthorized without SELECT on it). `status_page_id` keeps only that page's events
    (filtered in that query: PostgreSQL has no per-payload filter). Iteration ends after
    `timeout` seconds in total (None: never), or once at least `stop_after` events have been
    yielded (skipped, unreadable and filtered-out notifications do not count). Like psycopg's
    own `notifies(stop_after=)`, it may yield a few more: the changes of a batch are all handed
    out. For the same reason, end a round with `timeout` or `stop_after` rather than by breaking
    out of the loop (which drops the rest of the last event's batch). A lost connection raises
    `Retryable`: reconnect, catch up from `status_change`, listen again. With `groups=True` the
    changes of component groups' derived statuses (`GroupStatusChangeEvent`, from
    `component_group_status_change`) come too, in announcement order.
    """
    page = _check_options(status_page_id, timeout, stop_after)
    with_groups = validate.flag("groups", groups)
    await astart_listening(aconn)
    deadline = None if timeout is None else time.monotonic() + timeout
    yielded = 0
    while True:
        # One batch: what arrived in one packet (psycopg stops after it), or nothing by the
        # deadline. It is read whole before its changes are looked up on the same connection.
        try:
            batch = [n async for n in aconn.notifies(timeout=_remaining(deadline), stop_after=1)]
        except psycopg.Error as exc:
            raise translate(exc) from exc
        seqs = _seqs(batch)
        events: list[StatusChangeEvent | GroupStatusChangeEvent] = []
        if seqs and with_groups:
            events = await _changes_with_groups(aconn, seqs, page)
        elif seqs:
            events = list(await _changes(aconn, seqs, page))
        for event in events:
            yield event
            yielded += 1
        if _round_over(batch, deadline, yielded, stop_after):
            return


async def alisten_pages(
    aconn: psycopg.AsyncConnection[Any],
    *,
    status_page_id: str | None = None,
    timeout: float | None = None,  # noqa: ASYNC109
    stop_after: int | None = None,
) -> AsyncIterator[PageVersionEvent]:
    """Page version announcements as they are committed (migration 0017), for cache purgers.

    Every committed change of what a page's view shows re-renders the page and notifies
    `statusdb_page_version` with a number only: the lowest version readers of the new rendering
    see (see `PageVersionEvent`; a window entering a horizon moves that horizon's version by
    the clock alone, unannounced: `PageView.fresh_until` says when). Each announced version is
    looked up in `status_page_snapshot` with `aconn`'s own privileges and row-level security
    (statusdb_app may; statusdb_reader gets `Unauthorized`), so a listener scoped to a team
    hears only its team's pages. A version already superseded when it is read is skipped: the
    newer version's own announcement follows. Same connection rules, options and guarantees as
    `alisten` (a dedicated autocommit connection; not durable: on reconnect, start listening,
    then re-read the pages you cache).
    """
    page = _check_options(status_page_id, timeout, stop_after)
    _check_listener(aconn)
    try:
        await aconn.execute(_LISTEN_PAGES)
    except psycopg.Error as exc:
        raise translate(exc) from exc
    deadline = None if timeout is None else time.monotonic() + timeout
    yielded = 0
    while True:
        try:
            batch = [n async for n in aconn.notifies(timeout=_remaining(deadline), stop_after=1)]
        except psycopg.Error as exc:
            raise translate(exc) from exc
        versions = _seqs(batch, PAGE_CHANNEL)
        for event in await _page_versions(aconn, versions, page) if versions else []:
            yield event
            yielded += 1
        if _round_over(batch, deadline, yielded, stop_after):
            return


# async-to-sync: end
# async-to-sync: generated from the async code above by tools/async_to_sync.py, do not edit


def start_listening(conn: psycopg.Connection[Any]) -> None:
    """Start listening on `conn` (idempotent) without waiting for anything.

    `listen` does this itself; call it first when you must not miss a change made between now
    and the moment you start iterating (start listening, then read a snapshot, then `listen`).
    """
    _check_listener(conn)
    try:
        conn.execute(_LISTEN)
    except psycopg.Error as exc:
        raise translate(exc) from exc


@overload
def listen(
    conn: psycopg.Connection[Any],
    *,
    status_page_id: str | None = ...,
    timeout: float | None = ...,
    stop_after: int | None = ...,
    groups: Literal[False] = ...,
) -> Iterator[StatusChangeEvent]: ...


@overload
def listen(
    conn: psycopg.Connection[Any],
    *,
    status_page_id: str | None = ...,
    timeout: float | None = ...,
    stop_after: int | None = ...,
    groups: Literal[True],
) -> Iterator[StatusChangeEvent | GroupStatusChangeEvent]: ...


def listen(
    conn: psycopg.Connection[Any],
    *,
    status_page_id: str | None = None,
    timeout: float | None = None,
    stop_after: int | None = None,
    groups: bool = False,
) -> Iterator[StatusChangeEvent | GroupStatusChangeEvent]:
    """Status change events as they are committed, from a dedicated autocommit connection.

    ``for event in listen(conn): ...`` listens (LISTEN) when iteration starts, then
    yields each event. Each batch of notifications (those that arrived together) is read whole,
    then its changes are read from `status_change` in one query on `conn`, as `conn`'s role may
    see them (Unauthorized without SELECT on it). `status_page_id` keeps only that page's events
    (filtered in that query: PostgreSQL has no per-payload filter). Iteration ends after
    `timeout` seconds in total (None: never), or once at least `stop_after` events have been
    yielded (skipped, unreadable and filtered-out notifications do not count). Like psycopg's
    own `notifies(stop_after=)`, it may yield a few more: the changes of a batch are all handed
    out. For the same reason, end a round with `timeout` or `stop_after` rather than by breaking
    out of the loop (which drops the rest of the last event's batch). A lost connection raises
    `Retryable`: reconnect, catch up from `status_change`, listen again. With `groups=True` the
    changes of component groups' derived statuses (`GroupStatusChangeEvent`, from
    `component_group_status_change`) come too, in announcement order.
    """
    page = _check_options(status_page_id, timeout, stop_after)
    with_groups = validate.flag("groups", groups)
    start_listening(conn)
    deadline = None if timeout is None else time.monotonic() + timeout
    yielded = 0
    while True:
        try:
            batch = [n for n in conn.notifies(timeout=_remaining(deadline), stop_after=1)]
        except psycopg.Error as exc:
            raise translate(exc) from exc
        seqs = _seqs(batch)
        events: list[StatusChangeEvent | GroupStatusChangeEvent] = []
        if seqs and with_groups:
            events = _changes_with_groups(conn, seqs, page)
        elif seqs:
            events = list(_changes(conn, seqs, page))
        for event in events:
            yield event
            yielded += 1
        if _round_over(batch, deadline, yielded, stop_after):
            return


def listen_pages(
    conn: psycopg.Connection[Any],
    *,
    status_page_id: str | None = None,
    timeout: float | None = None,
    stop_after: int | None = None,
) -> Iterator[PageVersionEvent]:
    """Page version announcements as they are committed (migration 0017), for cache purgers.

    Every committed change of what a page's view shows re-renders the page and notifies
    `statusdb_page_version` with a number only: the lowest version readers of the new rendering
    see (see `PageVersionEvent`; a window entering a horizon moves that horizon's version by
    the clock alone, unannounced: `PageView.fresh_until` says when). Each announced version is
    looked up in `status_page_snapshot` with `conn`'s own privileges and row-level security
    (statusdb_app may; statusdb_reader gets `Unauthorized`), so a listener scoped to a team
    hears only its team's pages. A version already superseded when it is read is skipped: the
    newer version's own announcement follows. Same connection rules, options and guarantees as
    `listen` (a dedicated autocommit connection; not durable: on reconnect, start listening,
    then re-read the pages you cache).
    """
    page = _check_options(status_page_id, timeout, stop_after)
    _check_listener(conn)
    try:
        conn.execute(_LISTEN_PAGES)
    except psycopg.Error as exc:
        raise translate(exc) from exc
    deadline = None if timeout is None else time.monotonic() + timeout
    yielded = 0
    while True:
        try:
            batch = [n for n in conn.notifies(timeout=_remaining(deadline), stop_after=1)]
        except psycopg.Error as exc:
            raise translate(exc) from exc
        versions = _seqs(batch, PAGE_CHANNEL)
        for event in _page_versions(conn, versions, page) if versions else []:
            yield event
            yielded += 1
        if _round_over(batch, deadline, yielded, stop_after):
            return


# async-to-sync: end of generated code
