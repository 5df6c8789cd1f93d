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
* They are not durable (nor replicated: after a failover the new primary knows nothing of the
  old one's listeners). A listener that is down, reconnecting or not yet listening misses them.
  The durable record is the `status_change` table (and the subscriber outbox). `Follower` /
  `AsyncFollower` do the catching up: they reconnect by themselves, LISTEN, read what was
  missed with `changes_since` (bounded pages, in seq order) and then follow the feed, yielding
  every committed change once (`FeedChange`, with its seq: keep `last_seq` to resume later).
  `pages_changed_since` is the same for page versions. By hand: on (re)connect,
  `start_listening` first, then read the changes since the last seq you handled, then follow
  the feed, dropping seqs already handled.
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

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any, Final, Literal, overload

import attrs
import psycopg
from psycopg import sql
from psycopg.rows import class_row, tuple_row

from statusdb.db.executor import Op, _owns_transaction, many, one, operation
from statusdb.domain import validate
from statusdb.domain.types import ComponentStatus
from statusdb.errors import InvalidInput, Retryable, StatusdbError, translate

#: The channel migrations 0003 and 0012 notify on.
CHANNEL: Final = "statusdb_status_change"
#: The channel migration 0017 announces new page versions on (payload: the version).
PAGE_CHANNEL: Final = "statusdb_page_version"

_LISTEN: Final = sql.SQL("LISTEN {}").format(sql.Identifier(CHANNEL))
_LISTEN_PAGES: Final = sql.SQL("LISTEN {}").format(sql.Identifier(PAGE_CHANNEL))
_MAX_LOGGED_PAYLOAD: Final = 200
#: A seq is a bigint: at most 19 digits.
_MAX_SEQ_DIGITS: Final = 19

AConn = psycopg.AsyncConnection[Any]
Conn = psycopg.Connection[Any]

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


# -- catching up (issue 22) ---------------------------------------------------------------------

#: How many changes `changes_since` / `pages_changed_since` return at most per call.
MAX_LIMIT: Final = 1000


@attrs.frozen
class FeedChange:
    """A status change with its position in the feed: `seq`, the announced number.

    Seqs come from one sequence (component and group changes alike) and only increase, but a
    transaction that took a lower seq may commit after one that took a higher one: the feed is
    in commit order, `changes_since` in seq order. `event` is what `listen` yields.
    """

    seq: int
    event: StatusChangeEvent | GroupStatusChangeEvent


@attrs.frozen
class _SeqChange:
    seq: int
    status_page_id: str
    component_id: str | None
    group_id: str | None
    new_status: ComponentStatus
    change_id: str

    def change(self) -> FeedChange:
        event = _AnyChange(
            0,
            self.status_page_id,
            self.component_id,
            self.group_id,
            self.new_status,
            self.change_id,
        ).event()
        return FeedChange(self.seq, event)


def _seq(field: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        raise InvalidInput(f"{field} must be an integer from 0 to 2**63 - 1")
    return value


@operation(retry=True)
def changes_since(
    seq: int,
    *,
    limit: int = 100,
    status_page_id: str | None = None,
    groups: bool = False,
) -> Op[list[FeedChange]]:
    """Up to `limit` (at most `MAX_LIMIT`) committed changes with a seq above `seq`, in seq
    order, that the connection's role may read (of one page, when given; group changes too
    with `groups=True`). Page on with the last one's seq. The durable side of the feed: what a
    listener that was away missed (see `Follower`, which uses it)."""
    params = {
        "seq": _seq("seq", seq),
        "limit": validate.limit(limit, maximum=MAX_LIMIT),
        "status_page_id": None
        if status_page_id is None
        else validate.identifier("status_page_id", status_page_id),
        "groups": validate.flag("groups", groups),
    }
    rows = yield from many("feed_changes_since", params, class_row(_SeqChange))
    return [row.change() for row in rows]


@operation(retry=True)
def _changes_with_seq(
    seqs: list[int], status_page_id: str | None, groups: bool
) -> Op[list[FeedChange]]:
    params = {"seqs": seqs, "status_page_id": status_page_id, "groups": groups}
    rows = yield from many("feed_changes_with_seq", params, class_row(_SeqChange))
    return [row.change() for row in rows]


@operation(retry=True)
def latest_seq() -> Op[int]:
    """The highest seq of the feed so far (0 if none): `changes_since` from it sees only what
    comes next."""
    (seq,) = yield from one("feed_latest_seq", {}, tuple_row, not_found="no feed position")
    return int(seq)


@operation(retry=True)
def pages_changed_since(
    version: int, *, limit: int = 100, status_page_id: str | None = None
) -> Op[list[PageVersionEvent]]:
    """Up to `limit` pages whose current rendering is newer than page version `version` (a
    `PageVersionEvent.version`), oldest first, each once with its current version. Versions
    come from one sequence for all pages, so a cache purger that was away passes the highest
    version it handled and purges what comes back (paging on with the last one's version);
    renderings superseded meanwhile are not listed, only the current one."""
    params = {
        "version": _seq("version", version),
        "limit": validate.limit(limit, maximum=MAX_LIMIT),
        "status_page_id": None
        if status_page_id is None
        else validate.identifier("status_page_id", status_page_id),
    }
    return (yield from many("feed_pages_changed_since", params, class_row(PageVersionEvent)))


def _broken(conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any] | None) -> bool:
    return conn is None or conn.closed or conn.broken


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


class AsyncFollower:
    """A feed listener that reconnects by itself and catches up: every change once, in order.

    ``follower = AsyncFollower(conninfo)`` then ``async for change in follower.changes():``
    yields `FeedChange`s (`change.seq`, `change.event`). It opens its own autocommit
    connection with `conninfo` (give a multi-host conninfo with `target_session_attrs=
    read-write`, so that a reconnect finds the new primary after a failover; LISTEN only works
    on the primary), LISTENs, then reads what it missed with `changes_since` (bounded pages of
    `limit`) before following the notifications. When the connection drops (a failover, a
    restart, pg_terminate_backend) it reconnects (every `reconnect_delay` seconds, doubling up
    to `max_reconnect_delay`) and catches up again from where it was: nothing committed is
    missed, nothing is yielded twice.

    `since`: the seq it starts after (`last_seq` of an earlier follower, kept by the caller);
    None starts from the feed's latest seq at the first connection (only what comes next).

    Why a look-back: seqs are taken when a change is written and the change is visible when its
    transaction commits, so a lower seq can commit after a higher one. On reconnect the catch-up
    starts `lookback` seqs below the highest one yielded and skips the seqs already yielded
    (kept for that window). A change whose transaction took its seq more than `lookback` seqs
    before the newest yielded change and committed while the follower was disconnected is the
    one case it can miss; keep transactions that change statuses short (they are) or raise
    `lookback`. Notifications that arrive while connected are exact whatever the order.

    `changes(timeout=)` ends after `timeout` seconds (None: never) and can be called again: the
    state (`last_seq`, what was yielded) is the follower's, not the round's. `close()` closes
    the connection. `reconnects` counts the connections made after the first, `yielded` the
    changes yielded.
    """

    def __init__(
        self,
        conninfo: str,
        *,
        since: int | None = None,
        status_page_id: str | None = None,
        groups: bool = False,
        limit: int = 100,
        lookback: int = 1000,
        reconnect_delay: float = 0.1,
        max_reconnect_delay: float = 2.0,
        connect_timeout: int = 2,
    ) -> None:
        self._conninfo = conninfo
        self._start = None if since is None else _seq("since", since)
        self._page = (
            None
            if status_page_id is None
            else validate.identifier("status_page_id", status_page_id)
        )
        self._groups = validate.flag("groups", groups)
        self._limit = validate.limit(limit, maximum=MAX_LIMIT)
        self._lookback = _seq("lookback", lookback)
        self._delay = float(reconnect_delay)
        self._max_delay = float(max_reconnect_delay)
        self._connect_timeout = connect_timeout
        self._conn: AConn | None = None
        self._seen: dict[int, None] = {}
        self._last = 0 if self._start is None else self._start
        self._catch_up = True
        self.reconnects = -1
        self.yielded = 0

    @property
    def last_seq(self) -> int:
        """The highest seq yielded so far (or `since`): persist it to resume a later follower."""
        return self._last

    async def close(self) -> None:
        """Close the connection (a later `changes()` opens a new one)."""
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def _connect(self) -> None:
        conn = await psycopg.AsyncConnection.connect(
            self._conninfo, autocommit=True, connect_timeout=self._connect_timeout
        )
        try:
            await astart_listening(conn)  # before catching up: nothing falls in between
            if self._start is None:
                self._start = self._last = await latest_seq(conn)
        except BaseException:
            await conn.close()
            raise
        self._conn = conn
        self._catch_up = True
        self.reconnects += 1

    def _fresh(self, changes: list[FeedChange]) -> list[FeedChange]:
        fresh: list[FeedChange] = []
        for change in changes:
            if change.seq in self._seen or change.seq <= (self._start or 0):
                continue
            self._seen[change.seq] = None
            fresh.append(change)
            self._last = max(self._last, change.seq)
        horizon = self._last - self._lookback
        if len(self._seen) > 2 * self._lookback + 2 * self._limit:
            self._seen = {seq: None for seq in self._seen if seq > horizon}
        return fresh

    def _floor(self) -> int:
        return max(self._start or 0, self._last - self._lookback)

    async def _step(self, conn: AConn, deadline: float | None) -> list[FeedChange]:
        if self._catch_up:
            got: list[FeedChange] = []
            after = self._floor()
            while True:
                page = await changes_since(
                    conn, after, limit=self._limit, status_page_id=self._page, groups=self._groups
                )
                got += self._fresh(page)
                if len(page) < self._limit:
                    self._catch_up = False
                    return got
                after = page[-1].seq
                if got:
                    return got  # bounded work per step; the next step pages on
        batch = [n async for n in conn.notifies(timeout=_remaining(deadline), stop_after=1)]
        seqs = _seqs(batch)
        if not seqs:
            return []
        return self._fresh(await _changes_with_seq(conn, seqs, self._page, self._groups))

    async def _pause(
        self, exc: BaseException, delay: float, deadline: float | None
    ) -> float | None:
        """Wait before the next connection attempt; the next delay, or None past the deadline."""
        logger.info("feed follower: cannot connect yet (%s)", exc)
        left = _remaining(deadline)
        if left is not None and left <= 0:
            return None
        await asyncio.sleep(delay if left is None else min(delay, left))
        return min(2 * delay, self._max_delay)

    async def changes(
        self,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> AsyncIterator[FeedChange]:
        """Every committed change after `last_seq`, once, reconnecting as needed (see the
        class); ends after `timeout` seconds (None: never)."""
        _check_options(None, timeout, None)
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = self._delay
        while True:
            if _broken(self._conn):
                self._conn = None
                try:
                    await self._connect()
                    delay = self._delay
                except (psycopg.Error, Retryable) as exc:
                    if isinstance(exc, psycopg.Error) and not isinstance(
                        exc, psycopg.OperationalError
                    ):
                        raise translate(exc) from exc  # a bad conninfo: not worth retrying
                    pause = await self._pause(exc, delay, deadline)  # no primary yet, or lost
                    if pause is None:
                        return
                    delay = pause
                    continue
            conn = self._conn
            assert conn is not None
            try:
                changes = await self._step(conn, deadline)
            except (psycopg.Error, StatusdbError) as exc:
                if not _broken(conn):
                    if isinstance(exc, psycopg.Error):
                        raise translate(exc) from exc
                    raise
                logger.info("feed follower: connection lost (%s); reconnecting", exc)
                await conn.close()
                self._conn = None
                continue
            for change in changes:
                yield change
                self.yielded += 1
            left = _remaining(deadline)
            if left is not None and left <= 0:
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


class Follower:
    """A feed listener that reconnects by itself and catches up: every change once, in order.

    ``follower = Follower(conninfo)`` then ``for change in follower.changes():``
    yields `FeedChange`s (`change.seq`, `change.event`). It opens its own autocommit
    connection with `conninfo` (give a multi-host conninfo with `target_session_attrs=
    read-write`, so that a reconnect finds the new primary after a failover; LISTEN only works
    on the primary), LISTENs, then reads what it missed with `changes_since` (bounded pages of
    `limit`) before following the notifications. When the connection drops (a failover, a
    restart, pg_terminate_backend) it reconnects (every `reconnect_delay` seconds, doubling up
    to `max_reconnect_delay`) and catches up again from where it was: nothing committed is
    missed, nothing is yielded twice.

    `since`: the seq it starts after (`last_seq` of an earlier follower, kept by the caller);
    None starts from the feed's latest seq at the first connection (only what comes next).

    Why a look-back: seqs are taken when a change is written and the change is visible when its
    transaction commits, so a lower seq can commit after a higher one. On reconnect the catch-up
    starts `lookback` seqs below the highest one yielded and skips the seqs already yielded
    (kept for that window). A change whose transaction took its seq more than `lookback` seqs
    before the newest yielded change and committed while the follower was disconnected is the
    one case it can miss; keep transactions that change statuses short (they are) or raise
    `lookback`. Notifications that arrive while connected are exact whatever the order.

    `changes(timeout=)` ends after `timeout` seconds (None: never) and can be called again: the
    state (`last_seq`, what was yielded) is the follower's, not the round's. `close()` closes
    the connection. `reconnects` counts the connections made after the first, `yielded` the
    changes yielded.
    """

    def __init__(
        self,
        conninfo: str,
        *,
        since: int | None = None,
        status_page_id: str | None = None,
        groups: bool = False,
        limit: int = 100,
        lookback: int = 1000,
        reconnect_delay: float = 0.1,
        max_reconnect_delay: float = 2.0,
        connect_timeout: int = 2,
    ) -> None:
        self._conninfo = conninfo
        self._start = None if since is None else _seq("since", since)
        self._page = (
            None
            if status_page_id is None
            else validate.identifier("status_page_id", status_page_id)
        )
        self._groups = validate.flag("groups", groups)
        self._limit = validate.limit(limit, maximum=MAX_LIMIT)
        self._lookback = _seq("lookback", lookback)
        self._delay = float(reconnect_delay)
        self._max_delay = float(max_reconnect_delay)
        self._connect_timeout = connect_timeout
        self._conn: Conn | None = None
        self._seen: dict[int, None] = {}
        self._last = 0 if self._start is None else self._start
        self._catch_up = True
        self.reconnects = -1
        self.yielded = 0

    @property
    def last_seq(self) -> int:
        """The highest seq yielded so far (or `since`): persist it to resume a later follower."""
        return self._last

    def close(self) -> None:
        """Close the connection (a later `changes()` opens a new one)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _connect(self) -> None:
        conn = psycopg.Connection.connect(
            self._conninfo, autocommit=True, connect_timeout=self._connect_timeout
        )
        try:
            start_listening(conn)
            if self._start is None:
                self._start = self._last = latest_seq(conn)
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        self._catch_up = True
        self.reconnects += 1

    def _fresh(self, changes: list[FeedChange]) -> list[FeedChange]:
        fresh: list[FeedChange] = []
        for change in changes:
            if change.seq in self._seen or change.seq <= (self._start or 0):
                continue
            self._seen[change.seq] = None
            fresh.append(change)
            self._last = max(self._last, change.seq)
        horizon = self._last - self._lookback
        if len(self._seen) > 2 * self._lookback + 2 * self._limit:
            self._seen = {seq: None for seq in self._seen if seq > horizon}
        return fresh

    def _floor(self) -> int:
        return max(self._start or 0, self._last - self._lookback)

    def _step(self, conn: Conn, deadline: float | None) -> list[FeedChange]:
        if self._catch_up:
            got: list[FeedChange] = []
            after = self._floor()
            while True:
                page = changes_since(
                    conn, after, limit=self._limit, status_page_id=self._page, groups=self._groups
                )
                got += self._fresh(page)
                if len(page) < self._limit:
                    self._catch_up = False
                    return got
                after = page[-1].seq
                if got:
                    return got
        batch = [n for n in conn.notifies(timeout=_remaining(deadline), stop_after=1)]
        seqs = _seqs(batch)
        if not seqs:
            return []
        return self._fresh(_changes_with_seq(conn, seqs, self._page, self._groups))

    def _pause(self, exc: BaseException, delay: float, deadline: float | None) -> float | None:
        """Wait before the next connection attempt; the next delay, or None past the deadline."""
        logger.info("feed follower: cannot connect yet (%s)", exc)
        left = _remaining(deadline)
        if left is not None and left <= 0:
            return None
        time.sleep(delay if left is None else min(delay, left))
        return min(2 * delay, self._max_delay)

    def changes(self, *, timeout: float | None = None) -> Iterator[FeedChange]:
        """Every committed change after `last_seq`, once, reconnecting as needed (see the
        class); ends after `timeout` seconds (None: never)."""
        _check_options(None, timeout, None)
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = self._delay
        while True:
            if _broken(self._conn):
                self._conn = None
                try:
                    self._connect()
                    delay = self._delay
                except (psycopg.Error, Retryable) as exc:
                    if isinstance(exc, psycopg.Error) and (
                        not isinstance(exc, psycopg.OperationalError)
                    ):
                        raise translate(exc) from exc
                    pause = self._pause(exc, delay, deadline)
                    if pause is None:
                        return
                    delay = pause
                    continue
            conn = self._conn
            assert conn is not None
            try:
                changes = self._step(conn, deadline)
            except (psycopg.Error, StatusdbError) as exc:
                if not _broken(conn):
                    if isinstance(exc, psycopg.Error):
                        raise translate(exc) from exc
                    raise
                logger.info("feed follower: connection lost (%s); reconnecting", exc)
                conn.close()
                self._conn = None
                continue
            for change in changes:
                yield change
                self.yielded += 1
            left = _remaining(deadline)
            if left is not None and left <= 0:
                return


# async-to-sync: end of generated code
