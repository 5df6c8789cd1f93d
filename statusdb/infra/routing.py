"""Reads on streaming replicas, within a staleness bound, with read-your-writes tokens.

What PostgreSQL and libpq already do, and statusdb uses as is:

* **Streaming replication** keeps hot standbys that answer read-only queries.
* **libpq multi-host conninfo** with `target_session_attrs=read-write` finds the primary among
  several hosts (`host=db1,db2 port=5432,5432 target_session_attrs=read-write`): pass such a
  string as `primary` and writes follow a failover. `target_session_attrs=standby` /
  `prefer-standby` find *a* standby, but know nothing of how far behind it is, and a pool over
  one such string cannot tell which host a connection reached (libpq 16's
  `load_balance_hosts` spreads connections, no more). So replicas are listed one conninfo each,
  with one psycopg_pool pool each, and the router picks the pool.

What the router adds:

* **Bounded staleness.** A background thread samples, every `check_interval` seconds, the
  primary's WAL insert position (`pg_current_wal_insert_lsn()`) with the local time just
  before asking, then each replica's replayed position (`pg_last_wal_replay_lsn()`) and
  whether replay is paused. A replica that has replayed past the primary's position sampled at
  time t holds every transaction committed before t; reads may go to it until `t + max_lag`.
  Comparing positions, not `pg_last_xact_replay_timestamp()`, matters: on an idle primary the
  last replayed commit grows old although the replica is fully caught up, and a timestamp
  would call it lagging. A replica that is paused, no longer in recovery (promoted),
  unreachable, or behind every sample of the last `max_lag` seconds gets no reads until a later
  check finds it fresh again. Between checks the deadline only runs out, never moves forward,
  so the bound holds even if a replica stops replaying right after a check.
* **Failover of reads.** `read(fn)` runs `fn(conn)` on a fresh replica; when the replica's
  connection breaks (the replica died since the last check, or a recovery conflict terminated
  the session) or no connection can be had, the replica is marked down until the next check
  and `fn` runs again elsewhere: on another fresh replica, else on the primary. Reads must
  therefore be safe to run twice (statusdb's read operations are). With no fresh replica, reads
  go to the primary; callers see no error unless the primary itself fails.
* **Read-your-writes.** `write(fn)` (or `commit(conn)` at the end of your own transaction on
  `primary()`) returns a position token: the primary's WAL insert position after the commit, so
  past the commit record (the *insert* position, because with `synchronous_commit = off` the
  written position may not have reached it yet). A read given that token goes to a replica only
  if *that* replica's replayed position, as last checked, is at or past the token (and the
  replica is fresh): checked per replica, never "some replica has caught up". Otherwise it
  reads on the primary. Just after a write that is the primary until the next check (at most
  `check_interval`). When a commit record ends exactly at a WAL page boundary, the insert
  position lies past the next page's header, so replicas count as behind that token until the
  primary writes more WAL; those reads go to the primary, which is safe. Tokens are
  16 hexadecimal digits, safe in a cookie or a URL. They are not secret and not signed: a forged
  token can do no more than send its own reads to the primary.

Writes, the outbox and the maintenance scheduler always go to the primary (`write`,
`primary()`): a replica refuses writes ("cannot execute ... in a read-only transaction"), and
status derivation runs in the writing transaction, so replicas receive derived statuses by
replication and never derive anything themselves.

`AsyncRouter` is the same for asyncio callers (async pools; the checker is the same thread).

LISTEN (`statusdb.feed`) needs a session on the primary itself: `listener()` opens a direct
connection (the `direct` conninfo, e.g. past PgBouncer) and refuses one that goes through a
pooler (see `require_direct`).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import itertools
import logging
import re
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import Any, Final, Generic, TypeVar

import attrs
import psycopg
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import TupleRow, class_row

from statusdb.db.executor import Op, one, operation
from statusdb.domain import validate
from statusdb.errors import (
    InvalidArgument,
    InvalidInput,
    ReadOnlyTransaction,
    Retryable,
    StatusdbError,
    Unavailable,
    commit_outcome_unknown,
    connection_lost,
    translate,
    translate_commit,
    translate_connect,
)
from statusdb.infra.pool import (
    CHECKOUT_TIMEOUT,
    RECONNECT_DELAY,
    StatusdbAsyncPool,
    StatusdbPool,
    make_async_pool,
    make_pool,
)

__all__ = [
    "PRIMARY_ONLY_TOKEN",
    "AsyncRouter",
    "HostStatus",
    "Router",
    "Written",
    "acommit",
    "arequire_direct",
    "commit",
    "format_token",
    "parse_token",
    "position",
    "require_direct",
]

T = TypeVar("T")
Conn = psycopg.Connection[TupleRow]
AConn = psycopg.AsyncConnection[TupleRow]

logger = logging.getLogger(__name__)

_TOKEN: Final = re.compile(r"[0-9a-f]{16}")
#: At most this many samples of the primary's position are kept (those of the last max_lag
#: seconds, and always the newest).
_MAX_SAMPLES: Final = 10_000


# -- position tokens --------------------------------------------------------------------------


_CLOSED_BEFORE_COMMIT: Final = (
    "the connection was closed before the commit: the transaction was not committed; retry "
    "it on a new connection"
)

#: The token `commit` returns when the commit succeeded but the connection was lost before
#: the position could be read: no replica ever reaches it, so reads given it go to the primary.
PRIMARY_ONLY_TOKEN: Final = "ffffffffffffffff"  # noqa: S105 - a WAL position, not a secret


def format_token(lsn: int) -> str:
    """The token for WAL position `lsn` (bytes): 16 lowercase hexadecimal digits."""
    return f"{lsn:016x}"


def parse_token(token: str) -> int:
    """The WAL position (bytes) a token names; InvalidInput for anything else."""
    if not isinstance(token, str) or not _TOKEN.fullmatch(token):
        raise InvalidInput("token must be a position token from statusdb (16 hex digits)")
    return int(token, 16)


@attrs.frozen
class _Position:
    position: int


@operation(retry=True)
def position() -> Op[str]:
    """The primary's position now, as a token: past every transaction committed before.

    Run it on the primary after your commit (`commit(conn)` does both). On a replica it fails
    (PostgreSQL: "recovery is in progress").
    """
    row = yield from one("routing_position", {}, class_row(_Position), not_found="no position")
    return format_token(row.position)


# async-to-sync: begin
async def acommit(aconn: AConn) -> str:
    """Commit `aconn`'s transaction (on the primary) and return its position token.

    A connection lost during the COMMIT raises `CommitOutcomeUnknown` (the transaction may
    have committed); other failures of the COMMIT are translated as statements' are (a
    serialization failure `Retryable`, a deferred constraint its message). When the commit
    succeeded but the position cannot be read, `PRIMARY_ONLY_TOKEN` is returned: the write
    happened, and reads given that token go to the primary.
    """
    if aconn.closed:
        # Closed (or found broken) before COMMIT was sent: the transaction is gone, uncommitted.
        raise Retryable(_CLOSED_BEFORE_COMMIT)
    try:
        await aconn.commit()
    except psycopg.Error as exc:
        raise _on_primary(translate_commit(exc)) from exc
    try:
        return await position(aconn)
    except Retryable:
        return PRIMARY_ONLY_TOKEN


# async-to-sync: end
# async-to-sync: generated from the async code above by tools/async_to_sync.py, do not edit


def commit(conn: Conn) -> str:
    """Commit `conn`'s transaction (on the primary) and return its position token.

    A connection lost during the COMMIT raises `CommitOutcomeUnknown` (the transaction may
    have committed); other failures of the COMMIT are translated as statements' are (a
    serialization failure `Retryable`, a deferred constraint its message). When the commit
    succeeded but the position cannot be read, `PRIMARY_ONLY_TOKEN` is returned: the write
    happened, and reads given that token go to the primary.
    """
    if conn.closed:
        raise Retryable(_CLOSED_BEFORE_COMMIT)
    try:
        conn.commit()
    except psycopg.Error as exc:
        raise _on_primary(translate_commit(exc)) from exc
    try:
        return position(conn)
    except Retryable:
        return PRIMARY_ONLY_TOKEN


# async-to-sync: end of generated code


# -- replica state ----------------------------------------------------------------------------


@attrs.frozen
class _ReplicaRow:
    in_recovery: bool
    replayed: int | None
    paused: bool
    last_replayed_commit: dt.datetime | None


@operation(retry=True)
def _replica_state() -> Op[_ReplicaRow]:
    return (
        yield from one("routing_replica_state", {}, class_row(_ReplicaRow), not_found="no state")
    )


@attrs.frozen
class HostStatus:
    """What the last check found on one host.

    `fresh_until` is a `time.monotonic()` deadline: reads without a token may go to this
    replica until then. `lag_bytes` is how far its replayed position was behind the primary's
    at the check. `last_replayed_commit` is for display only (it grows old on an idle primary).
    """

    name: str
    is_primary: bool
    reachable: bool
    checked_at: float | None = None
    position: int | None = None
    in_recovery: bool | None = None
    paused: bool = False
    lag_bytes: int | None = None
    last_replayed_commit: dt.datetime | None = None
    fresh_until: float = float("-inf")
    error: str | None = None

    def usable(self, now: float, token: int | None) -> bool:
        """Whether a read (with position `token`, if any) may go to this replica at `now`."""
        if not (self.reachable and self.in_recovery and not self.paused):
            return False
        if token is not None and (self.position is None or self.position < token):
            return False
        return now < self.fresh_until


@attrs.frozen
class Written(Generic[T]):
    """A write's result and the position token to pass to later reads."""

    result: T
    token: str


def _host_name(conninfo: str) -> str:
    params = conninfo_to_dict(conninfo)
    return f"{params.get('host', 'localhost')}:{params.get('port', '5432')}"


class _Host:
    """One host as the checker sees it: its last status and its monitor connection."""

    def __init__(self, conninfo: str, is_primary: bool) -> None:
        self.conninfo = conninfo
        self.name = _host_name(conninfo)
        self.status = HostStatus(self.name, is_primary=is_primary, reachable=False)
        self.monitor: Conn | None = None


def _seconds(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise InvalidInput(f"{name} must be a number of seconds > 0")
    return float(value)


class _Checker:
    """The primary's position samples and each replica's state, refreshed by a thread."""

    def __init__(
        self,
        primary: str,
        replicas: Sequence[str],
        *,
        max_lag: float,
        check_interval: float | None,
        connect_timeout: int,
        on_back: Callable[[int], None],
    ) -> None:
        if isinstance(replicas, str):
            raise InvalidArgument("replicas is a sequence of conninfo strings, not one string")
        self.max_lag = _seconds("max_lag", max_lag)
        interval = min(1.0, self.max_lag / 4) if check_interval is None else check_interval
        if _seconds("check_interval", interval) >= self.max_lag:
            raise InvalidInput("check_interval must be > 0 seconds and shorter than max_lag")
        self.interval = float(interval)
        self.connect_timeout = connect_timeout
        self.primary = _Host(primary, is_primary=True)
        self.replicas = [_Host(conninfo, is_primary=False) for conninfo in replicas]
        self._on_back = on_back
        self._samples: collections.deque[tuple[float, int]] = collections.deque(maxlen=_MAX_SAMPLES)
        self._turn = itertools.count()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._reads_lock = threading.Lock()
        self._reads: collections.Counter[str] = collections.Counter()

    def start(self) -> None:
        self.check()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="statusdb-router", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        for host in (self.primary, *self.replicas):
            if host.monitor is not None:
                host.monitor.close()
                host.monitor = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except Exception:  # never let the checker die; the next round tries again
                logger.exception("statusdb router: check failed")

    def _monitor(self, host: _Host) -> Conn:
        if host.monitor is None or host.monitor.closed or host.monitor.broken:
            if host.monitor is not None:
                host.monitor.close()
            conn = psycopg.connect(
                host.conninfo, autocommit=True, connect_timeout=self.connect_timeout
            )
            conn.prepare_threshold = None  # also safe behind PgBouncer
            host.monitor = conn
        return host.monitor

    def check(self) -> list[HostStatus]:
        with self._lock:
            self._check_primary()
            for index, replica in enumerate(self.replicas):
                was_reachable = replica.status.reachable
                self._check_replica(replica)
                if replica.status.reachable and not was_reachable:
                    # Back (or first seen): drop the pool's connections broken meanwhile
                    # before reads go there again.
                    self._on_back(index)
            return self.status()

    def _check_primary(self) -> None:
        host = self.primary
        sampled_at = time.monotonic()  # before asking: the position covers commits until now
        try:
            lsn = parse_token(position(self._monitor(host)))
        except (StatusdbError, psycopg.Error) as exc:
            host.status = attrs.evolve(host.status, reachable=False, error=str(exc))
            return
        self._samples.append((sampled_at, lsn))
        horizon = sampled_at - self.max_lag
        while len(self._samples) > 1 and self._samples[1][0] <= horizon:
            self._samples.popleft()
        host.status = HostStatus(
            host.name, is_primary=True, reachable=True, checked_at=sampled_at, position=lsn
        )

    def _fresh_until(self, replayed: int) -> float:
        """max_lag after the newest primary sample the replica has replayed past."""
        for sampled_at, lsn in reversed(self._samples):
            if lsn <= replayed:
                return sampled_at + self.max_lag
        return float("-inf")

    def _check_replica(self, host: _Host) -> None:
        checked_at = time.monotonic()
        try:
            row = _replica_state(self._monitor(host))
        except (StatusdbError, psycopg.Error) as exc:
            host.status = HostStatus(
                host.name, is_primary=False, reachable=False, checked_at=checked_at, error=str(exc)
            )
            return
        latest = self._samples[-1][1] if self._samples else None
        replayed = row.replayed
        host.status = HostStatus(
            host.name,
            is_primary=False,
            reachable=True,
            checked_at=checked_at,
            position=replayed,
            in_recovery=row.in_recovery,
            paused=row.paused,
            lag_bytes=None if latest is None or replayed is None else max(0, latest - replayed),
            last_replayed_commit=row.last_replayed_commit,
            fresh_until=float("-inf") if replayed is None else self._fresh_until(replayed),
        )

    def status(self) -> list[HostStatus]:
        return [self.primary.status, *(r.status for r in self.replicas)]

    def candidates(self, token: int | None) -> list[int]:
        """Indexes of the replicas a read may go to now, in round-robin order."""
        now = time.monotonic()
        fresh = [i for i, r in enumerate(self.replicas) if r.status.usable(now, token)]
        if len(fresh) > 1:
            turn = next(self._turn) % len(fresh)
            fresh = fresh[turn:] + fresh[:turn]
        return fresh

    def mark_down(self, index: int, exc: BaseException) -> None:
        host = self.replicas[index]
        logger.info("statusdb router: %s skipped until its next check: %s", host.name, exc)
        host.status = attrs.evolve(host.status, reachable=False, error=str(exc))

    def count(self, name: str) -> None:
        with self._reads_lock:
            self._reads[name] += 1

    def reads_served(self) -> dict[str, int]:
        with self._reads_lock:
            return dict(self._reads)


def _broken(conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any] | None) -> bool:
    return conn is not None and (conn.closed or conn.broken)


_POOLED: Final = (
    "this connection goes through a connection pooler (PgBouncer?): LISTEN and other session "
    "state need a direct connection to PostgreSQL (Router(direct=...))"
)


_ROUTER_DOC = """
    `primary` and each of `replicas` are libpq conninfo strings (one pool each, made by
    `statusdb.infra.pool` with `prepare`). `max_lag` (seconds) bounds the staleness of a read
    without a token; `check_interval` (default a quarter of it, at most 1 s) is how often the
    positions are checked (by a thread, on connections of its own). `direct` is the conninfo
    `listener()` uses (default: `primary`). `min_size`/`max_size` size each pool;
    `connect_timeout` (whole seconds) bounds each connection attempt, and a replica that yields
    no connection within `replica_timeout` seconds is skipped. `primary_timeout` (seconds,
    default `statusdb.infra.pool.CHECKOUT_TIMEOUT`) is how long a write (and a read on the
    primary) waits for a primary connection before `Unavailable`: during a failover, how long
    a write waits for the new primary. `reconnect_delay` caps the pause between the pools'
    connection attempts (see `statusdb.infra.pool.RECONNECT_DELAY`), so that a new primary is
    used within that long of accepting connections. `read_only` (default True): `read(fn)`
    runs `fn` in a read-only transaction on every host, the primary included (BEGIN READ
    ONLY and COMMIT around it: two more round trips per read); False runs reads in autocommit
    (one round trip each, each statement its own snapshot), where a write sent through
    `read()` succeeds on the primary and fails only on replicas.
"""


def _conflict(exc: BaseException) -> bool:
    """A read cancelled by a serialization failure or deadlock (on a replica: a recovery
    conflict), which another host can serve."""
    return isinstance(exc, Retryable) and isinstance(
        exc.__cause__, pg_errors.SerializationFailure | pg_errors.DeadlockDetected
    )


def _escaped(exc: psycopg.Error) -> StatusdbError:
    """A psycopg error raised by the caller's own statements in a `primary()` block."""
    if connection_lost(exc):
        return commit_outcome_unknown(exc)
    return _on_primary(translate(exc))


def _on_primary(error: StatusdbError) -> StatusdbError:
    """A read-only refusal on a connection meant for writes: that server is not the primary
    (any more): `Unavailable`, chained; anything else unchanged."""
    if not isinstance(error, ReadOnlyTransaction):
        return error
    moved = Unavailable(
        "the server refused a write as read-only: it is not (or no longer) the primary "
        "(a failover?); retry, and give the primary conninfo target_session_attrs=read-write"
    )
    moved.__cause__ = error.__cause__
    return moved


# async-to-sync: begin
async def _aread_only(aconn: AConn) -> None:
    """The read pools' connections: every transaction read-only (psycopg's BEGIN READ ONLY)."""
    await aconn.set_read_only(True)


async def _arun(fn: Callable[[AConn], Awaitable[T]], aconn: AConn) -> T:
    """`fn(aconn)`, its psycopg errors (the caller's own statements) translated."""
    try:
        return await fn(aconn)
    except psycopg.Error as exc:
        raise translate(exc) from exc


async def arequire_direct(aconn: psycopg.AsyncConnection[Any]) -> None:
    """Refuse a connection that goes through a pooler such as PgBouncer (InvalidInput).

    PgBouncer hands clients a made-up backend key, so the process id the client was told
    differs from the server process that runs its statements. LISTEN needs a session of its own
    on the server: in transaction pooling the server connection goes back to the pool after
    each transaction and notifications reach whoever gets it next (or nobody).
    """
    try:
        cur = await aconn.execute(b"SELECT pg_backend_pid()", prepare=False)
        row = await cur.fetchone()
    except psycopg.Error as exc:
        raise translate(exc) from exc
    if row is None or row[0] != aconn.info.backend_pid:
        raise InvalidInput(_POOLED)


class AsyncRouter:
    """Send reads to fresh streaming replicas, writes to the primary. See the module doc.

    Use it as a context manager (`async with AsyncRouter(...) as router:`), or call
    `await router.open()` and `await router.close()`. `open()` checks every host once before
    returning, so that the first reads already go to fresh replicas. `read(fn)` and `write(fn)`
    take `fn(aconn)`, e.g. a lambda calling a statusdb operation on the connection. The checker
    is a thread of its own.
    """

    __doc__ = (__doc__ or "") + _ROUTER_DOC

    def __init__(
        self,
        primary: str,
        replicas: Sequence[str] = (),
        *,
        max_lag: float = 2.0,
        check_interval: float | None = None,
        prepare: bool = True,
        direct: str | None = None,
        min_size: int = 1,
        max_size: int = 4,
        connect_timeout: int = 2,
        replica_timeout: float = 1.0,
        primary_timeout: float = CHECKOUT_TIMEOUT,
        reconnect_delay: float = RECONNECT_DELAY,
        read_only: bool = True,
    ) -> None:
        self._checker = _Checker(
            primary,
            replicas,
            max_lag=max_lag,
            check_interval=check_interval,
            connect_timeout=connect_timeout,
            on_back=self._back,
        )
        self.max_lag = self._checker.max_lag
        self.check_interval = self._checker.interval
        self._direct = direct if direct is not None else primary
        self._replica_timeout = replica_timeout
        self._connect_timeout = connect_timeout
        self._attempts = max_size + 1
        common: dict[str, Any] = {
            "prepare": prepare,
            "kwargs": {"connect_timeout": connect_timeout},
            "min_size": min_size,
            "max_size": max_size,
            "timeout": primary_timeout,
            "reconnect_delay": reconnect_delay,
        }
        self._primary = make_async_pool(primary, name="primary", **common)
        # Reads: read-only transactions (on every host, so that a write sent through read()
        # fails in development as on a replica; read_only=False: autocommit, one round trip),
        # no check on checkout (a broken connection fails the read, which then runs
        # elsewhere: the check's round trip is saved).
        read: dict[str, Any] = {**common, "check": None}
        if validate.flag("read_only", read_only):
            read["configure"] = _aread_only
        else:
            read["autocommit"] = True
        self._primary_reads = make_async_pool(primary, name="primary-reads", **read)
        self._replicas = [
            make_async_pool(conninfo, name=f"replica-{n}", **read)
            for n, conninfo in enumerate(replicas)
        ]
        if True:  # ASYNC
            self._back_to_check: set[int] = set()
        self._opened = False

    def _back(self, index: int) -> None:
        if True:  # ASYNC
            # Called from the checker thread: the pool is checked on the event loop, at next use.
            self._back_to_check.add(index)
        elif self._opened:
            self._replicas[index].check()

    def _pools(self) -> list[StatusdbAsyncPool]:
        return [self._primary, self._primary_reads, *self._replicas]

    async def open(self) -> None:
        """Open the pools, check every host once, start the checker thread."""
        if self._opened:
            return
        for pool in self._pools():
            await pool.open(wait=False)
        self._opened = True
        await asyncio.to_thread(self._checker.start)
        if True:  # ASYNC
            self._back_to_check.clear()

    async def close(self) -> None:
        """Stop the checker and close every pool and monitor connection."""
        await asyncio.to_thread(self._checker.stop)
        for pool in self._pools():
            await pool.close()
        self._opened = False

    async def __aenter__(self) -> AsyncRouter:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def check(self) -> list[HostStatus]:
        """Check every host now (the checker thread does this every `check_interval`)."""
        return await asyncio.to_thread(self._checker.check)

    def status(self) -> list[HostStatus]:
        """The last check's findings: the primary first, then each replica."""
        return self._checker.status()

    def reads_served(self) -> dict[str, int]:
        """How many reads each host served (by `host:port`)."""
        return self._checker.reads_served()

    async def read(self, fn: Callable[[AConn], Awaitable[T]], *, token: str | None = None) -> T:
        """`fn(aconn)` on a fresh replica (one that has replayed `token`, if given), else on
        the primary. `fn` runs in one read-only transaction (one snapshot), committed after it,
        wherever it runs, the primary included: a write sent through here fails everywhere
        with `ReadOnlyTransaction`. `fn` may run more than once (on another host when a
        replica's connection breaks). psycopg errors of `fn`'s own statements are translated;
        no connection within `primary_timeout`: `Unavailable`."""
        lsn = None if token is None else parse_token(token)
        for index in self._checker.candidates(lsn):
            pool = self._replicas[index]
            if True:  # ASYNC
                if index in self._back_to_check:
                    self._back_to_check.discard(index)
                    await pool.check()
            aconn: AConn | None = None
            try:
                async with pool.connection(timeout=self._replica_timeout) as aconn:
                    result = await _arun(fn, aconn)
            except Unavailable as exc:
                self._checker.mark_down(index, exc)
                continue
            except Exception as exc:
                if _conflict(exc) and not _broken(aconn):
                    # A recovery conflict cancelled the read (40001): run it elsewhere.
                    continue
                if not _broken(aconn):
                    raise
                self._checker.mark_down(index, exc)
                continue
            self._checker.count(self._checker.replicas[index].name)
            return result
        # The primary: a broken idle connection (after a restart) is dropped and the read runs
        # on the next one; at most max_size + 1 attempts.
        for attempt in range(1, self._attempts + 1):
            aconn = None
            try:
                async with self._primary_reads.connection() as aconn:
                    result = await _arun(fn, aconn)
            except Exception:
                if attempt == self._attempts or not _broken(aconn):
                    raise
                continue
            self._checker.count(self._checker.primary.name)
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    @contextlib.asynccontextmanager
    async def primary(self) -> AsyncIterator[AConn]:
        """A connection to the primary (autocommit off; committed when the block succeeds,
        rolled back when it raises). End with `token = await acommit(aconn)` for a position
        token. No connection within `primary_timeout`: `Unavailable`; the connection lost
        while committing at the end of the block: `CommitOutcomeUnknown`; a write refused as
        read-only (the server is no longer the primary): `Unavailable`. psycopg errors of the
        block's own statements are translated; a connection lost in the block (your own
        `aconn.commit()` included) is `CommitOutcomeUnknown`, since it may have been lost
        while committing."""
        try:
            async with self._primary.connection() as aconn:
                yield aconn
        except ReadOnlyTransaction as exc:
            raise _on_primary(exc) from exc.__cause__
        except psycopg.Error as exc:
            raise _escaped(exc) from exc

    async def write(self, fn: Callable[[AConn], Awaitable[T]]) -> Written[T]:
        """`fn(aconn)` in one transaction on the primary, committed; its result and token.

        Errors are statusdb's: `Unavailable` when no primary connection comes within
        `primary_timeout` (nothing ran), `Retryable` when the connection is lost before the
        commit (nothing was kept), `CommitOutcomeUnknown` when it is lost during the commit
        (the write may have landed: retry with an idempotency key, `docs/retries.md`)."""
        async with self.primary() as aconn:
            result = await _arun(fn, aconn)
            token = await acommit(aconn)
        return Written(result, token)

    async def listener(self) -> AConn:
        """A new direct autocommit connection to the primary for `statusdb.feed.alisten`
        (yours to close). Refused (InvalidInput) if `direct` goes through a pooler."""
        try:
            aconn = await psycopg.AsyncConnection.connect(
                self._direct, autocommit=True, connect_timeout=self._connect_timeout
            )
        except psycopg.Error as exc:
            raise translate_connect(exc, "the listener's direct connection") from exc
        try:
            await arequire_direct(aconn)
        except BaseException:
            await aconn.close()
            raise
        return aconn


# async-to-sync: end
# async-to-sync: generated from the async code above by tools/async_to_sync.py, do not edit


def _read_only(conn: Conn) -> None:
    """The read pools' connections: every transaction read-only (psycopg's BEGIN READ ONLY)."""
    conn.set_read_only(True)


def _run(fn: Callable[[Conn], T], conn: Conn) -> T:
    """`fn(conn)`, its psycopg errors (the caller's own statements) translated."""
    try:
        return fn(conn)
    except psycopg.Error as exc:
        raise translate(exc) from exc


def require_direct(conn: psycopg.Connection[Any]) -> None:
    """Refuse a connection that goes through a pooler such as PgBouncer (InvalidInput).

    PgBouncer hands clients a made-up backend key, so the process id the client was told
    differs from the server process that runs its statements. LISTEN needs a session of its own
    on the server: in transaction pooling the server connection goes back to the pool after
    each transaction and notifications reach whoever gets it next (or nobody).
    """
    try:
        cur = conn.execute(b"SELECT pg_backend_pid()", prepare=False)
        row = cur.fetchone()
    except psycopg.Error as exc:
        raise translate(exc) from exc
    if row is None or row[0] != conn.info.backend_pid:
        raise InvalidInput(_POOLED)


class Router:
    """Send reads to fresh streaming replicas, writes to the primary. See the module doc.

    Use it as a context manager (`with Router(...) as router:`), or call
    `router.open()` and `router.close()`. `open()` checks every host once before
    returning, so that the first reads already go to fresh replicas. `read(fn)` and `write(fn)`
    take `fn(conn)`, e.g. a lambda calling a statusdb operation on the connection. The checker
    is a thread of its own.
    """

    __doc__ = (__doc__ or "") + _ROUTER_DOC

    def __init__(
        self,
        primary: str,
        replicas: Sequence[str] = (),
        *,
        max_lag: float = 2.0,
        check_interval: float | None = None,
        prepare: bool = True,
        direct: str | None = None,
        min_size: int = 1,
        max_size: int = 4,
        connect_timeout: int = 2,
        replica_timeout: float = 1.0,
        primary_timeout: float = CHECKOUT_TIMEOUT,
        reconnect_delay: float = RECONNECT_DELAY,
        read_only: bool = True,
    ) -> None:
        self._checker = _Checker(
            primary,
            replicas,
            max_lag=max_lag,
            check_interval=check_interval,
            connect_timeout=connect_timeout,
            on_back=self._back,
        )
        self.max_lag = self._checker.max_lag
        self.check_interval = self._checker.interval
        self._direct = direct if direct is not None else primary
        self._replica_timeout = replica_timeout
        self._connect_timeout = connect_timeout
        self._attempts = max_size + 1
        common: dict[str, Any] = {
            "prepare": prepare,
            "kwargs": {"connect_timeout": connect_timeout},
            "min_size": min_size,
            "max_size": max_size,
            "timeout": primary_timeout,
            "reconnect_delay": reconnect_delay,
        }
        self._primary = make_pool(primary, name="primary", **common)
        read: dict[str, Any] = {**common, "check": None}
        if validate.flag("read_only", read_only):
            read["configure"] = _read_only
        else:
            read["autocommit"] = True
        self._primary_reads = make_pool(primary, name="primary-reads", **read)
        self._replicas = [
            make_pool(conninfo, name=f"replica-{n}", **read) for n, conninfo in enumerate(replicas)
        ]
        self._opened = False

    def _back(self, index: int) -> None:
        if self._opened:
            self._replicas[index].check()

    def _pools(self) -> list[StatusdbPool]:
        return [self._primary, self._primary_reads, *self._replicas]

    def open(self) -> None:
        """Open the pools, check every host once, start the checker thread."""
        if self._opened:
            return
        for pool in self._pools():
            pool.open(wait=False)
        self._opened = True
        self._checker.start()

    def close(self) -> None:
        """Stop the checker and close every pool and monitor connection."""
        self._checker.stop()
        for pool in self._pools():
            pool.close()
        self._opened = False

    def __enter__(self) -> Router:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def check(self) -> list[HostStatus]:
        """Check every host now (the checker thread does this every `check_interval`)."""
        return self._checker.check()

    def status(self) -> list[HostStatus]:
        """The last check's findings: the primary first, then each replica."""
        return self._checker.status()

    def reads_served(self) -> dict[str, int]:
        """How many reads each host served (by `host:port`)."""
        return self._checker.reads_served()

    def read(self, fn: Callable[[Conn], T], *, token: str | None = None) -> T:
        """`fn(conn)` on a fresh replica (one that has replayed `token`, if given), else on
        the primary. `fn` runs in one read-only transaction (one snapshot), committed after it,
        wherever it runs, the primary included: a write sent through here fails everywhere
        with `ReadOnlyTransaction`. `fn` may run more than once (on another host when a
        replica's connection breaks). psycopg errors of `fn`'s own statements are translated;
        no connection within `primary_timeout`: `Unavailable`."""
        lsn = None if token is None else parse_token(token)
        for index in self._checker.candidates(lsn):
            pool = self._replicas[index]
            conn: Conn | None = None
            try:
                with pool.connection(timeout=self._replica_timeout) as conn:
                    result = _run(fn, conn)
            except Unavailable as exc:
                self._checker.mark_down(index, exc)
                continue
            except Exception as exc:
                if _conflict(exc) and (not _broken(conn)):
                    continue
                if not _broken(conn):
                    raise
                self._checker.mark_down(index, exc)
                continue
            self._checker.count(self._checker.replicas[index].name)
            return result
        for attempt in range(1, self._attempts + 1):
            conn = None
            try:
                with self._primary_reads.connection() as conn:
                    result = _run(fn, conn)
            except Exception:
                if attempt == self._attempts or not _broken(conn):
                    raise
                continue
            self._checker.count(self._checker.primary.name)
            return result
        raise AssertionError("unreachable")

    @contextlib.contextmanager
    def primary(self) -> Iterator[Conn]:
        """A connection to the primary (autocommit off; committed when the block succeeds,
        rolled back when it raises). End with `token = commit(conn)` for a position
        token. No connection within `primary_timeout`: `Unavailable`; the connection lost
        while committing at the end of the block: `CommitOutcomeUnknown`; a write refused as
        read-only (the server is no longer the primary): `Unavailable`. psycopg errors of the
        block's own statements are translated; a connection lost in the block (your own
        `conn.commit()` included) is `CommitOutcomeUnknown`, since it may have been lost
        while committing."""
        try:
            with self._primary.connection() as conn:
                yield conn
        except ReadOnlyTransaction as exc:
            raise _on_primary(exc) from exc.__cause__
        except psycopg.Error as exc:
            raise _escaped(exc) from exc

    def write(self, fn: Callable[[Conn], T]) -> Written[T]:
        """`fn(conn)` in one transaction on the primary, committed; its result and token.

        Errors are statusdb's: `Unavailable` when no primary connection comes within
        `primary_timeout` (nothing ran), `Retryable` when the connection is lost before the
        commit (nothing was kept), `CommitOutcomeUnknown` when it is lost during the commit
        (the write may have landed: retry with an idempotency key, `docs/retries.md`)."""
        with self.primary() as conn:
            result = _run(fn, conn)
            token = commit(conn)
        return Written(result, token)

    def listener(self) -> Conn:
        """A new direct autocommit connection to the primary for `statusdb.feed.listen`
        (yours to close). Refused (InvalidInput) if `direct` goes through a pooler."""
        try:
            conn = psycopg.Connection.connect(
                self._direct, autocommit=True, connect_timeout=self._connect_timeout
            )
        except psycopg.Error as exc:
            raise translate_connect(exc, "the listener's direct connection") from exc
        try:
            require_direct(conn)
        except BaseException:
            conn.close()
            raise
        return conn


# async-to-sync: end of generated code
