"""Idempotency keys: a write retried after an outage is applied once.

`status_incidents.create`, `status_incidents.add_update`, `maintenance.create` and
`subscribers.subscribe` take `idempotency_key=`: a string of the caller's choosing (a UUID
made once per logical request, kept with it across retries). The first call with a key claims
it in the same transaction as its write (table `idempotency_key`, migration 0031) and records
the id of what it wrote. A repeat with the same key, after the first one committed, writes
nothing (no second row, no second notification event) and returns that row as it is now. A
repeat while the first is still in flight waits for it on the key's unique index (then
returns its row, or writes itself if the first rolled back). The same key with different
arguments is refused (`Conflict`): the arguments' SHA-256 is kept with the key.

Keys are per page (a status incident's key is per its page) and per operation, kept at least
`KEEP_FOR` (24 hours): `purge` deletes older ones, a bounded batch per call; run it from a
scheduled job (`statusdb.idempotency.purge(conn)` until it returns less than its limit).
Retrying with a key that was purged applies the write again, so retry within the period.

A repeated `subscribe` returns the subscriber without its tokens (`Subscription.replayed`):
only digests of them are stored, and the first call's response was their one showing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any, Final, Literal, TypeVar

import attrs
from psycopg.rows import class_row

from statusdb.db.executor import Op, execute, operation, optional
from statusdb.domain import validate
from statusdb.errors import Conflict, InvalidInput

__all__ = ["KEEP_FOR", "KEY_MAX_LENGTH", "PURGE_LIMIT_MAX", "Scope", "purge"]

T = TypeVar("T")

#: The longest idempotency key accepted (the table's idempotency_key_key_length_check).
KEY_MAX_LENGTH: Final = 200
#: How long a key is kept at least: `purge` deletes only older ones by default.
KEEP_FOR: Final = dt.timedelta(hours=24)
#: The most keys one `purge` call deletes.
PURGE_LIMIT_MAX: Final = 10_000

Scope = Literal[
    "status_incident.create",
    "status_incident.add_update",
    "maintenance.create",
    "subscriber.subscribe",
]


def key(value: str | None) -> str | None:
    """A caller's idempotency key, checked: None, or 1 to KEY_MAX_LENGTH characters."""
    if value is None:
        return None
    return validate.text("idempotency_key", value, max_length=KEY_MAX_LENGTH)


def _canonical(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [_canonical(v) for v in value]
        return sorted(items, key=repr) if isinstance(value, set | frozenset) else items
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def digest(scope: str, request: Mapping[str, Any]) -> bytes:
    """SHA-256 of a call's validated arguments (canonical JSON), to tell a repeat from another
    request reusing its key."""
    text = json.dumps([scope, _canonical(request)], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).digest()


@attrs.frozen
class _Claimed:
    claimed: bool


@attrs.frozen
class _Claim:
    request_digest: bytes
    result_id: str | None


def guarded(
    scope: Scope,
    idempotency_key: str | None,
    request: Mapping[str, Any],
    write: Callable[[], Op[T]],
    replay: Callable[[str], Op[T]],
    result_id: Callable[[T], str],
    *,
    status_page_id: str | None = None,
    status_incident_id: str | None = None,
) -> Op[T]:
    """Run `write()` once per key: claim the key, write, record the row's id; or, when the key
    was claimed before with the same `request`, `replay(id)` instead. Without a key, `write()`.

    The operation using it must be atomic when a key is given (`@operation(atomic_when=...)`):
    the claim and the write commit together or not at all.
    """
    if idempotency_key is None:
        return (yield from write())
    where = {
        "scope": scope,
        "key": idempotency_key,
        "status_page_id": status_page_id,
        "status_incident_id": status_incident_id,
    }
    wanted = digest(scope, request)
    claimed = yield from optional(
        "idempotency_claim", {**where, "request_digest": wanted}, class_row(_Claimed)
    )
    if claimed is None:
        found = yield from optional("idempotency_lookup", where, class_row(_Claim))
        if found is None:
            if status_page_id is None:
                # No such status incident: the write says so (NotFound).
                return (yield from write())
            raise Conflict(f"idempotency key {idempotency_key!r} is taken on this page")
        if bytes(found.request_digest) != wanted:
            raise Conflict(
                f"idempotency key {idempotency_key!r} was used for a different {scope} request: "
                "a key names one request; make a new key for a new request"
            )
        if found.result_id is None:
            raise Conflict(f"idempotency key {idempotency_key!r} has no recorded result")
        return (yield from replay(found.result_id))
    result = yield from write()
    yield from execute("idempotency_record", {**where, "result_id": result_id(result)})
    return result


def _older_than(value: dt.timedelta) -> dt.timedelta:
    if not isinstance(value, dt.timedelta) or value < dt.timedelta(0):
        raise InvalidInput("older_than must be a timedelta >= 0")
    return value


@operation(retry=True)
def purge(older_than: dt.timedelta = KEEP_FOR, *, limit: int = 1000) -> Op[int]:
    """Delete at most `limit` (1 to PURGE_LIMIT_MAX) idempotency keys claimed more than
    `older_than` ago (default KEEP_FOR, 24 hours), oldest first; how many were deleted. Call
    it again while it returns `limit`. Under a team scope (`tenancy.set_team`), that team's."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= PURGE_LIMIT_MAX:
        raise InvalidInput(f"limit must be an integer from 1 to {PURGE_LIMIT_MAX}")
    params = {"older_than": _older_than(older_than), "limit": limit}
    return (yield from execute("idempotency_purge", params))
