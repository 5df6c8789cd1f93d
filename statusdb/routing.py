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
  if *that* replica's replayed position, as last checked, is at or past the token: checked per
  replica, never "some replica has caught up". Otherwise it reads on the primary. Just after a
  write that is the primary until the next check (at most `check_interval`). Tokens are
  16 hexadecimal digits, safe in a cookie or a URL. They are not secret and not signed: a forged
  token can do no more than send its own reads to the primary.

Writes, the outbox and the maintenance scheduler always go to the primary (`write`,
`primary()`): a replica refuses writes ("cannot execute ... in a read-only transaction"), and
status derivation runs in the writing transaction, so replicas receive derived statuses by
replication and never derive anything themselves.

LISTEN (`statusdb.feed`) needs a session on the primary itself: `listener()` opens a direct
connection (the `direct` conninfo, e.g. past PgBouncer) and refuses one that goes through a
pooler (see `require_direct`).
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import itertools
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Final, Generic, TypeVar

import attrs
import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import TupleRow, class_row
from psycopg_pool import ConnectionPool, PoolTimeout

from statusdb.errors import InvalidInput, StatusdbError, translate
from statusdb.executor import Op, one, operation
from statusdb.pool import make_pool

__all__ = [
    "HostStatus",
    "Router",
    "Written",
    "commit",
    "parse_token",
    "position",
    "require_direct",
]

T = TypeVar("T")
Conn = psycopg.Connection[TupleRow]

logger = logging.getLogger(__name__)

_TOKEN: Final = re.compile(r"[0-9a-f]{16}")
#: Samples of the primary's position kept beyond max_lag (never fewer than one).
_MAX_SAMPLES: Final = 10_000


# -- position tokens --------------------------------------------------------------------------


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


def commit(conn: Conn) -> str:
    """Commit `conn`'s transaction (on the primary) and return its position token."""
    try:
        conn.commit()
    except psycopg.Error as exc:
        raise translate(exc) from exc
    return position(conn)


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
    def __init__(self, conninfo: str, pool: ConnectionPool[Conn], is_primary: bool) -> None:
        self.conninfo = conninfo
        self.pool = pool
        self.name = _host_name(conninfo)
        self.status = HostStatus(self.name, is_primary=is_primary, reachable=False)
        self.monitor: Conn | None = None


def require_direct(conn: psycopg.Connection[Any]) -> None:
    """Refuse a connection that goes through a pooler such as PgBouncer (InvalidInput).

    PgBouncer hands clients a made-up backend key, so the process id the client was told
    differs from the server process that runs its statements. LISTEN needs a session of its own
    on the server: in transaction pooling the server connection goes back to the pool after
    each transaction and notifications reach whoever gets it next (or nobody).
    """
    try:
        row = conn.execute(b"SELECT pg_backend_pid()", prepare=False).fetchone()
    except psycopg.Error as exc:
        raise translate(exc) from exc
    if row is None or row[0] != conn.info.backend_pid:
        raise InvalidInput(
            "this connection goes through a connection pooler (PgBouncer?): LISTEN and other "
            "session state need a direct connection to PostgreSQL (Router(direct=...))"
        )


class Router:
    """Send reads to fresh streaming replicas, writes to the primary. See the module doc.

    `primary` and each of `replicas` are libpq conninfo strings (one pool each, made by
    `statusdb.pool.make_pool` with `prepare`). `max_lag` (seconds) bounds the staleness of a
    read without a token; `check_interval` (default a quarter of it, at most 1 s) is how often
    the positions are checked. `direct` is the conninfo `listener()` uses (default: `primary`).
    `min_size`/`max_size` size each pool; `connect_timeout` (seconds) bounds each connection
    attempt, and a replica that yields no connection within `replica_timeout` is skipped.

    Use it as a context manager, or `open()` / `close()`. `open()` checks every host once
    before returning, so that the first reads already go to fresh replicas.
    """

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
    ) -> None:
        if isinstance(replicas, str):
            raise TypeError("replicas is a sequence of conninfo strings, not one string")
        if isinstance(max_lag, bool) or not isinstance(max_lag, int | float) or max_lag <= 0:
            raise InvalidInput("max_lag must be a number of seconds > 0")
        if check_interval is None:
            check_interval = min(1.0, max_lag / 4)
        if (
            isinstance(check_interval, bool)
            or not isinstance(check_interval, int | float)
            or not 0 < check_interval < max_lag
        ):
            raise InvalidInput("check_interval must be > 0 seconds and shorter than max_lag")
        self.max_lag = float(max_lag)
        self.check_interval = float(check_interval)
        self._direct = direct if direct is not None else primary
        self._replica_timeout = replica_timeout
        self._connect_kwargs: dict[str, Any] = {"connect_timeout": connect_timeout}
        sizes: dict[str, Any] = {"min_size": min_size, "max_size": max_size}
        self._primary = _Host(
            primary,
            make_pool(
                primary, prepare=prepare, kwargs=self._connect_kwargs, name="primary", **sizes
            ),
            is_primary=True,
        )
        # Reads: autocommit (one round trip each), no check on checkout (a broken connection
        # fails the read, which then runs elsewhere: the check's round trip is saved).
        self._primary_reads = make_pool(
            primary,
            prepare=prepare,
            autocommit=True,
            kwargs=self._connect_kwargs,
            check=None,
            name="primary-reads",
            **sizes,
        )
        self._replicas = [
            _Host(
                conninfo,
                make_pool(
                    conninfo,
                    prepare=prepare,
                    autocommit=True,
                    kwargs=self._connect_kwargs,
                    check=None,
                    name=f"replica-{n}",
                    **sizes,
                ),
                is_primary=False,
            )
            for n, conninfo in enumerate(replicas)
        ]
        self._samples: collections.deque[tuple[float, int]] = collections.deque(maxlen=_MAX_SAMPLES)
        self._turn = itertools.count()
        self._stop = threading.Event()
        self._checker: threading.Thread | None = None
        self._check_lock = threading.Lock()
        self._reads_lock = threading.Lock()
        self._reads: collections.Counter[str] = collections.Counter()

    # -- life cycle ---------------------------------------------------------------------

    def open(self) -> None:
        """Open the pools, check every host once, start the checker thread."""
        if self._checker is not None:
            return
        for pool in self._pools():
            pool.open(wait=False)
        self.check()
        self._stop.clear()
        self._checker = threading.Thread(target=self._run_checks, name="statusdb-router")
        self._checker.daemon = True
        self._checker.start()

    def close(self) -> None:
        """Stop the checker and close every pool and monitor connection."""
        self._stop.set()
        if self._checker is not None:
            self._checker.join()
            self._checker = None
        for host in (self._primary, *self._replicas):
            if host.monitor is not None:
                host.monitor.close()
                host.monitor = None
        for pool in self._pools():
            pool.close()

    def __enter__(self) -> Router:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _pools(self) -> list[ConnectionPool[Conn]]:
        return [self._primary.pool, self._primary_reads, *(r.pool for r in self._replicas)]

    # -- checks -------------------------------------------------------------------------

    def _run_checks(self) -> None:
        while not self._stop.wait(self.check_interval):
            try:
                self.check()
            except Exception:  # never let the checker die; the next round tries again
                logger.exception("statusdb router: check failed")

    def _monitor(self, host: _Host) -> Conn:
        if host.monitor is None or host.monitor.closed or host.monitor.broken:
            if host.monitor is not None:
                host.monitor.close()
            conn = psycopg.connect(host.conninfo, autocommit=True, **self._connect_kwargs)
            conn.prepare_threshold = None  # also safe behind PgBouncer
            host.monitor = conn
        return host.monitor

    def check(self) -> list[HostStatus]:
        """Check every host now (the checker thread does this every `check_interval`)."""
        with self._check_lock:
            self._check_primary()
            for replica in self._replicas:
                self._check_replica(replica)
            return self.status()

    def _check_primary(self) -> None:
        host = self._primary
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
        """The last check's findings: the primary first, then each replica."""
        return [self._primary.status, *(r.status for r in self._replicas)]

    def reads_served(self) -> dict[str, int]:
        """How many reads each host served (by `host:port`; the primary under its name)."""
        with self._reads_lock:
            return dict(self._reads)

    # -- routing ------------------------------------------------------------------------

    def _candidates(self, token: int | None) -> list[_Host]:
        now = time.monotonic()
        fresh = [r for r in self._replicas if r.status.usable(now, token)]
        if len(fresh) > 1:  # round robin among the fresh ones
            turn = next(self._turn) % len(fresh)
            fresh = fresh[turn:] + fresh[:turn]
        return fresh

    def _mark_down(self, host: _Host, exc: BaseException) -> None:
        logger.info("statusdb router: %s skipped until its next check: %s", host.name, exc)
        host.status = attrs.evolve(host.status, reachable=False, error=str(exc))

    def _count(self, name: str) -> None:
        with self._reads_lock:
            self._reads[name] += 1

    def read(self, fn: Callable[[Conn], T], *, token: str | None = None) -> T:
        """`fn(conn)` on a fresh replica (one that has replayed `token`, if given), else on
        the primary. The connection is in autocommit mode: each statement is its own snapshot;
        wrap several reads in `with conn.transaction():` to see one snapshot. `fn` may run
        more than once (on another host when a replica's connection breaks)."""
        lsn = None if token is None else parse_token(token)
        for host in self._candidates(lsn):
            conn: Conn | None = None
            try:
                with host.pool.connection(timeout=self._replica_timeout) as conn:
                    result = fn(conn)
            except PoolTimeout as exc:
                self._mark_down(host, exc)
                continue
            except Exception as exc:
                if conn is None or not (conn.closed or conn.broken):
                    raise
                self._mark_down(host, exc)
                continue
            self._count(host.name)
            return result
        return self._read_on_primary(fn)

    def _read_on_primary(self, fn: Callable[[Conn], T]) -> T:
        # One more try on a fresh connection when an idle one turns out to be broken (after a
        # restart of the primary); a second failure reaches the caller.
        for attempt in (1, 2):
            conn: Conn | None = None
            try:
                with self._primary_reads.connection() as conn:
                    result = fn(conn)
            except Exception:
                if attempt == 2 or conn is None or not (conn.closed or conn.broken):
                    raise
                continue
            self._count(self._primary.name)
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    @contextlib.contextmanager
    def primary(self) -> Iterator[Conn]:
        """A connection to the primary (autocommit off; committed when the block succeeds,
        rolled back when it raises). End with `token = commit(conn)` for a position token."""
        with self._primary.pool.connection() as conn:
            yield conn

    def write(self, fn: Callable[[Conn], T]) -> Written[T]:
        """`fn(conn)` in one transaction on the primary, committed; its result and token."""
        with self.primary() as conn:
            result = fn(conn)
            token = commit(conn)
        return Written(result, token)

    def listener(self) -> Conn:
        """A new direct autocommit connection to the primary for `statusdb.feed.listen`
        (yours to close). Refused (InvalidInput) if `direct` goes through a pooler."""
        try:
            conn = psycopg.connect(self._direct, autocommit=True, **self._connect_kwargs)
        except psycopg.Error as exc:
            raise translate(exc) from exc
        try:
            require_direct(conn)
        except BaseException:
            conn.close()
            raise
        return conn
