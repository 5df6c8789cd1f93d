"""Delivery bookkeeping: every attempt to tell a subscriber, retries with back-off, and
subscribers switched off after repeated permanent failures.

Each attempt to deliver a notification to a subscriber is a row of `delivery_attempt`, keyed by
the notification's idempotency key (`outbox.ClaimedChange.key` for component changes, another
event's own key otherwise: plain text, at most 200 characters) and the subscriber. The
database's trigger (migration 0019) keeps the rules for every writer, psql included:

* attempts of one (key, subscriber) are numbered 1, 2, ...;
* a `FAILED_TEMPORARY` attempt n < MAX_ATTEMPTS is due again `backoff(n)` after it was made
  (1, 2, 4, 8, 16, 32, 60 minutes: exponential from BACKOFF_BASE, capped at BACKOFF_CAP); the
  pending retries are the rows with `next_attempt_at` set, claimed by `claim_retries` under a
  lease with `FOR UPDATE SKIP LOCKED`. Delivery stays at least once: a worker that stalls past
  its lease may deliver a retry another worker delivers again (same key: deduplicate on it);
* `FAILED_PERMANENT` (hard bounce, HTTP 404/410, an invalid or refused destination) counts on
  the subscriber, and so does a temporary failure that exhausts MAX_ATTEMPTS; other temporary
  failures (timeouts, 5xx, 429) neither count nor reset; `DELIVERED` resets the count.
  DEACTIVATE_AFTER such failures in a row make the subscriber inactive, with
  `deactivated_at` and `deactivation_reason`. Re-activating it (re-subscribing) starts over.

A deliver callback says "permanent" by raising `PermanentDeliveryFailure`; anything else it
raises is temporary. The one way to run a worker with bookkeeping is
`outbox.process_all(conn, deliver, worker_id=..., bookkeeping=True)`: outcomes are buffered
(`Bookkeeper`) and recorded before each claim's completion, in its transaction. Rows are keyed
by (notification key, subscriber): the change's or event's own key (`ClaimedChange.key`,
`ClaimedEvent.key`), not the per-subscriber delivery key; `deliver` always gets
`outbox.delivery_key(key, recipient)`, on the first attempt and on retries. A temporary
failure keeps `notification_payload(notification)` (any of the three notification types,
bounded by PAYLOAD_MAX), and `retry`, a retry worker's round, hands `deliver` the equal typed
notification (`decode_notification`). `deliver_with_bookkeeping` (one delivery) and
`Bookkeeper` (buffered) are the building blocks of hand-written loops.

Support staff read it all in SQL: the view `delivery_log` (attempts with the subscriber's page,
channel, destination and state), or `list_for_subscriber`, `list_for_notification` and
`subscriber_health` here.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, Generic, Literal, TypeVar, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs
import psycopg
from psycopg.rows import class_row, tuple_row

from statusdb.db.executor import Op, execute, many, one, operation, optional
from statusdb.domain import validate
from statusdb.domain.types import (
    AffectedComponent,
    IncidentNotification,
    MaintenanceNotification,
    Notification,
    StatusChangeNotification,
    SubscriberChannel,
)
from statusdb.domain.unsubscribe_links import UnsubscribeKey, check_keys
from statusdb.errors import InvalidInput, StatusdbError, translate
from statusdb.workers.outbox import Recipient, deliver_one, with_unsubscribe_token

Outcome = Literal["DELIVERED", "FAILED_TEMPORARY", "FAILED_PERMANENT"]
OUTCOMES: Final[tuple[Outcome, ...]] = ("DELIVERED", "FAILED_TEMPORARY", "FAILED_PERMANENT")

#: The retry policy and the deactivation rule, as migration 0019's trigger applies them.
MAX_ATTEMPTS: Final = 8
BACKOFF_BASE: Final = dt.timedelta(minutes=1)
BACKOFF_CAP: Final = dt.timedelta(hours=1)
DEACTIVATE_AFTER: Final = 3

KEY_MAX: Final = 200
"""A notification key's length (delivery_attempt_notification_key_check)."""
ERROR_MAX: Final = 1_000
"""Error texts are cut to this many characters (delivery_attempt_error_check)."""
PAYLOAD_MAX: Final = 16_384
"""A retry payload's JSON size in bytes (delivery_attempt_payload_check)."""
BATCH_MAX: Final = 10_000
"""The most attempts `record_many` writes in one call."""
LIST_MAX: Final = 1_000
DEFAULT_LEASE: Final = dt.timedelta(minutes=2)

N = TypeVar("N")
Deliver = Callable[[N, Recipient, str], None]


class PermanentDeliveryFailure(StatusdbError):
    """Raised by a deliver callback when retrying cannot help: a hard bounce, HTTP 404 or 410,
    an invalid or refused destination. Counts towards deactivating the subscriber."""


def backoff(attempt: int) -> dt.timedelta | None:
    """How long after a FAILED_TEMPORARY attempt number `attempt` it is retried; None: never
    (the last attempt)."""
    if attempt < 1:
        raise InvalidInput("attempt numbers start at 1")
    if attempt >= MAX_ATTEMPTS:
        return None
    return min(BACKOFF_BASE * (1 << (attempt - 1)), BACKOFF_CAP)


def error_text(error: BaseException | str | None) -> str | None:
    """An error as stored: `Type: message` for an exception, at most ERROR_MAX characters,
    without the NUL bytes and unpaired surrogates PostgreSQL cannot store."""
    if error is None:
        return None
    if isinstance(error, BaseException):
        message = str(error)
        text = type(error).__name__ + (f": {message}" if message else "")
    else:
        text = error
    text = text.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")
    return text[:ERROR_MAX]


def _key(value: str) -> str:
    return validate.text("notification_key", value, max_length=KEY_MAX)


def _outcome(value: str) -> Outcome:
    return validate.one_of("outcome", value, OUTCOMES)


def _error(outcome: Outcome, value: str | None) -> str | None:
    if value is None:
        return None
    if outcome == "DELIVERED":
        raise InvalidInput("a DELIVERED attempt has no error text")
    return validate.text("error", value, max_length=ERROR_MAX, blank_ok=True)


def _payload(value: Mapping[str, Any] | None) -> str | None:
    if value is None:
        return None
    try:
        encoded = json.dumps(value, separators=(",", ":"), allow_nan=False, default=_json_default)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"payload must be JSON-serialisable: {exc}") from None
    validate.text("payload", encoded, max_length=PAYLOAD_MAX, blank_ok=True)
    if _encoded_size(value, default=_json_default) > PAYLOAD_MAX:  # as the CHECK measures it
        raise InvalidInput(f"payload must be at most {PAYLOAD_MAX} bytes of JSON")
    return encoded


def _json_default(value: object) -> object:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def _at(field: str, value: dt.datetime | None) -> dt.datetime | None:
    return None if value is None else validate.aware(field, value)


@attrs.frozen
class NewAttempt:
    """One attempt to record with `record_many`."""

    notification_key: str
    subscriber_id: str
    outcome: Outcome
    error: str | None = None
    #: When it was made; None: now (the transaction's time).
    attempted_at: dt.datetime | None = None
    #: What a retry needs to deliver it again (kept only on a temporary failure).
    payload: Mapping[str, Any] | None = None

    def __attrs_post_init__(self) -> None:
        validate.fields(self)


@attrs.frozen
class DeliveryAttempt:
    """A recorded attempt."""

    id: str
    notification_key: str
    subscriber_id: str
    attempt: int
    outcome: Outcome
    error: str | None
    attempted_at: dt.datetime
    #: When it is retried; None: no retry pending.
    next_attempt_at: dt.datetime | None
    lease_owner: str | None
    lease_expires_at: dt.datetime | None


@attrs.frozen
class DueRetry:
    """A retry claimed by `claim_retries`: deliver again, then record the outcome."""

    attempt_id: str
    notification_key: str
    subscriber_id: str
    channel: SubscriberChannel
    destination: str
    #: The number of the failed attempt; the retry is attempt + 1.
    attempt: int
    next_attempt_at: dt.datetime
    #: The stored payload, as JSON text (None: none was stored).
    payload_json: str | None

    def __attrs_post_init__(self) -> None:
        validate.fields(self)  # it is passed back to release_retry / give_up_retry

    @property
    def payload(self) -> Any:
        """The stored payload, decoded (None: none was stored)."""
        return None if self.payload_json is None else json.loads(self.payload_json)

    @property
    def recipient(self) -> Recipient:
        return Recipient(self.subscriber_id, self.channel, self.destination)


@attrs.frozen
class SubscriberHealth:
    """A subscriber's delivery state."""

    subscriber_id: str
    is_active: bool
    consecutive_permanent_failures: int
    deactivated_at: dt.datetime | None
    deactivation_reason: str | None


_attempt_row = class_row(DeliveryAttempt)


@operation(retry=True)
def record(
    notification_key: str,
    subscriber_id: str,
    outcome: Outcome,
    *,
    error: str | None = None,
    attempted_at: dt.datetime | None = None,
    payload: Mapping[str, Any] | None = None,
) -> Op[DeliveryAttempt]:
    """Record one attempt; the database numbers it, schedules its retry and counts it on the
    subscriber (deactivating it at DEACTIVATE_AFTER). Unknown subscriber: NotFound."""
    checked = _outcome(outcome)
    params = {
        "notification_key": _key(notification_key),
        "subscriber_id": validate.identifier("subscriber_id", subscriber_id),
        "outcome": checked,
        "error": _error(checked, error),
        "attempted_at": _at("attempted_at", attempted_at),
        "payload": _payload(payload),
    }
    return (yield from one("delivery_record", params, _attempt_row, not_found="not recorded"))


@operation(retry=True)
def record_many(attempts: Sequence[NewAttempt]) -> Op[int]:
    """Record up to BATCH_MAX attempts in one statement (a fan-out's outcomes); returns how
    many were recorded (attempts for subscribers deleted meanwhile are skipped)."""
    if isinstance(attempts, str | bytes) or not isinstance(attempts, Sequence):
        raise InvalidInput("attempts must be a list of NewAttempt")
    if len(attempts) > BATCH_MAX:
        raise InvalidInput(f"record_many takes at most {BATCH_MAX} attempts, got {len(attempts)}")
    columns: dict[str, list[Any]] = {
        "notification_keys": [],
        "subscriber_ids": [],
        "outcomes": [],
        "errors": [],
        "attempted_ats": [],
        "payloads": [],
    }
    for item in attempts:
        if not isinstance(item, NewAttempt):
            raise InvalidInput(f"attempts must hold NewAttempt, not {type(item).__name__}")
        outcome = _outcome(item.outcome)
        columns["notification_keys"].append(_key(item.notification_key))
        columns["subscriber_ids"].append(validate.identifier("subscriber_id", item.subscriber_id))
        columns["outcomes"].append(outcome)
        columns["errors"].append(_error(outcome, item.error))
        columns["attempted_ats"].append(_at("attempted_at", item.attempted_at))
        columns["payloads"].append(_payload(item.payload))
    if not attempts:
        return 0
    return (yield from execute("delivery_record_many", columns))


def _duration(field: str, value: dt.timedelta) -> dt.timedelta:
    if not isinstance(value, dt.timedelta) or not (
        dt.timedelta(milliseconds=1) <= value <= dt.timedelta(days=1)
    ):
        raise InvalidInput(f"{field} must be a timedelta from 1 ms to 1 day")
    return value


def _worker(worker_id: str) -> str:
    return validate.text("worker_id", worker_id, max_length=200)


def _due_retry(cursor: Any) -> Callable[[Any], DueRetry]:
    def make(values: Any) -> DueRetry:
        return DueRetry(*values)

    return make


@operation(retry=True)
def claim_retries(
    *,
    worker_id: str,
    limit: int = 100,
    lease: dt.timedelta = DEFAULT_LEASE,
    now: dt.datetime | None = None,
) -> Op[list[DueRetry]]:
    """Lease up to `limit` retries due at `now` (default: the database's now()) to
    `worker_id`, oldest due first; never one another worker holds. Commit afterwards."""
    params = {
        "worker": _worker(worker_id),
        "limit": validate.limit(limit, maximum=LIST_MAX),
        "lease": _duration("lease", lease),
        "now": _at("now", now),
    }
    return (yield from many("delivery_claim_retries", params, _due_retry))


@operation(retry=True)
def release_retry(retry: DueRetry, *, worker_id: str) -> Op[None]:
    """Give a claimed retry back at once (it stays due), instead of waiting for its lease."""
    yield from execute(
        "delivery_release_retry", {"id": retry.attempt_id, "worker": _worker(worker_id)}
    )


@operation(retry=True)
def give_up_retry(retry: DueRetry, *, worker_id: str) -> Op[None]:
    """Drop a claimed retry without attempting it (counts nothing on the subscriber)."""
    yield from execute(
        "delivery_give_up_retry", {"id": retry.attempt_id, "worker": _worker(worker_id)}
    )


@operation(retry=True)
def list_for_subscriber(
    subscriber_id: str, *, limit: int = 100, before: dt.datetime | None = None
) -> Op[list[DeliveryAttempt]]:
    """A subscriber's attempts, newest first; pass the last `attempted_at` as `before` for
    older ones."""
    params = {
        "subscriber_id": validate.identifier("subscriber_id", subscriber_id),
        "limit": validate.limit(limit, maximum=LIST_MAX),
        "before": _at("before", before),
    }
    return (yield from many("delivery_list_for_subscriber", params, _attempt_row))


@operation(retry=True)
def list_for_notification(
    notification_key: str, *, limit: int = 100, after_subscriber_id: str | None = None
) -> Op[list[DeliveryAttempt]]:
    """A notification's attempts by subscriber id, then attempt; pass the last subscriber id
    as `after_subscriber_id` for the next ones."""
    params = {
        "notification_key": _key(notification_key),
        "limit": validate.limit(limit, maximum=LIST_MAX),
        "after_subscriber_id": None
        if after_subscriber_id is None
        else validate.identifier("after_subscriber_id", after_subscriber_id),
    }
    return (yield from many("delivery_list_for_notification", params, _attempt_row))


@operation(retry=True)
def subscriber_health(subscriber_id: str) -> Op[SubscriberHealth]:
    """Whether a subscriber still gets notifications, and why not."""
    params = {"subscriber_id": validate.identifier("subscriber_id", subscriber_id)}
    return (
        yield from one(
            "delivery_subscriber_health",
            params,
            class_row(SubscriberHealth),
            not_found=f"no subscriber with id {subscriber_id!r}",
        )
    )


@operation(retry=True)
def pending_retries() -> Op[int]:
    """Retries scheduled (a gauge for monitoring)."""
    row = yield from optional("delivery_pending_retries", {}, tuple_row)
    return 0 if row is None else int(row[0])


@operation(retry=True)
def purge(*, before: dt.datetime, limit: int = 10_000) -> Op[int]:
    """Delete up to `limit` attempts recorded before `before` (retention), pending retries
    excepted; returns how many. Call again until it returns less than `limit`. Run it as the
    owner (a retention job): the backend login cannot delete attempts (migration 0024), so it
    cannot hide failures; as statusdb_app it raises Unauthorized."""
    params = {
        "before": validate.aware("before", before),
        "limit": validate.limit(limit, maximum=BATCH_MAX),
    }
    return (yield from execute("delivery_purge", params))


_PAYLOAD_TYPES: Final[dict[str, type[Any]]] = {
    "status_change": StatusChangeNotification,
    "incident": IncidentNotification,
    "maintenance": MaintenanceNotification,
}
_TIMES: Final = (
    "at",
    "start_time",
    "end_time",
    "previous_start_time",
    "previous_end_time",
    "changed_at",
)
#: The free text a too-large payload gives up first (see `notification_payload`).
_LONG_TEXT: Final = {"incident": "message", "maintenance": "description"}
TRUNCATED: Final = "\u2026"
"""What ends a message or description `payload` had to shorten."""


def _serialise(_inst: object, _field: object, value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()  # with its offset: a window's times keep their zone
    return value


def _encoded_size(
    value: Mapping[str, Any], default: Callable[[object], object] | None = None
) -> int:
    """The larger of the payload's sizes as sent (compact JSON, non-ASCII escaped) and as the
    column's CHECK measures it (jsonb's text: UTF-8, ", " and ": ")."""
    compact = json.dumps(value, separators=(",", ":"), allow_nan=False, default=default)
    spaced = json.dumps(value, ensure_ascii=False, allow_nan=False, default=default)
    return max(len(compact.encode("utf-8")), len(spaced.encode("utf-8")))


def notification_payload(notification: Notification) -> dict[str, Any] | None:
    """What a retry needs to deliver `notification` again: its fields (datetimes as ISO 8601
    text with their offsets) and a `type` tag (status_change, incident, maintenance), so that
    `decode_notification(retry)` gives back an equal typed notification.

    Bounded by PAYLOAD_MAX (16 KiB of JSON, the column's CHECK): an incident update's message
    or a window's description too long for it is cut to fit and ends with TRUNCATED (the retry
    then delivers the shortened text: a subscriber gets the news, with a pointer to the page,
    rather than nothing). Still too large without that text: None (no retry is possible; the
    attempt is recorded and `retry` drops it when due, counting nothing on the subscriber).
    """
    tag = next((t for t, cls in _PAYLOAD_TYPES.items() if isinstance(notification, cls)), None)
    if tag is None:
        raise InvalidInput(f"cannot encode a {type(notification).__name__} for a retry")
    fields = attrs.asdict(notification, value_serializer=_serialise)
    encoded: dict[str, Any] = {"type": tag, **fields}
    if _encoded_size(encoded) <= PAYLOAD_MAX:
        return encoded
    name = _LONG_TEXT.get(tag)
    text = encoded.get(name) if name is not None else None
    if not isinstance(text, str) or name is None:
        return None
    low, high = 0, len(text) - 1  # the longest prefix that fits (binary search)
    while low < high:
        middle = (low + high + 1) // 2
        if _encoded_size({**encoded, name: text[:middle] + TRUNCATED}) <= PAYLOAD_MAX:
            low = middle
        else:
            high = middle - 1
    shortened = {**encoded, name: text[:low] + TRUNCATED}
    return shortened if _encoded_size(shortened) <= PAYLOAD_MAX else None


def _decode_time(value: Any, zone: dt.tzinfo | None) -> dt.datetime:
    if not isinstance(value, str):
        raise TypeError(f"a time must be ISO 8601 text, not {type(value).__name__}")
    parsed = dt.datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError(f"a time must carry its offset: {value!r}")
    return parsed if zone is None else parsed.astimezone(zone)


def decode_notification(retry: DueRetry) -> Notification:
    """The typed notification a retry stands for, from `notification_payload`'s payload (a
    StatusChangeNotification, an IncidentNotification or a MaintenanceNotification, equal to
    the one first delivered). `retry`'s default decoder. No or a malformed payload:
    InvalidInput (`retry` drops such a retry)."""
    stored = retry.payload
    if not isinstance(stored, dict):
        raise InvalidInput(f"retry {retry.attempt_id} has no notification payload")
    tag = stored.get("type")
    cls = _PAYLOAD_TYPES.get(tag) if isinstance(tag, str) else None
    if cls is None:
        raise InvalidInput(f"retry {retry.attempt_id} has no notification payload")
    fields = {k: v for k, v in stored.items() if k != "type"}
    try:
        if "components" in fields:
            fields["components"] = tuple(AffectedComponent(**c) for c in fields["components"])
        zone = ZoneInfo(fields["time_zone"]) if cls is MaintenanceNotification else None
        for name in _TIMES:
            if fields.get(name) is not None:
                fields[name] = _decode_time(fields[name], zone)
        decoded: Notification = cls(**fields)
    except (TypeError, ValueError, KeyError, ZoneInfoNotFoundError) as exc:
        raise InvalidInput(f"retry {retry.attempt_id} has a malformed payload: {exc}") from None
    return decoded


def _default_payload(notification: object) -> dict[str, Any] | None:
    if isinstance(notification, tuple(_PAYLOAD_TYPES.values())):
        return notification_payload(cast(Notification, notification))
    return None


def _attempt(
    deliver: Deliver[N], notification: N, recipient: Recipient, key: str
) -> tuple[Outcome, str | None]:
    """Call `deliver` through `outbox.deliver_one` (so it gets the delivery key
    `outbox.delivery_key(key, recipient)`); its outcome and error text (PermanentDeliveryFailure:
    permanent; any other Exception: temporary; other BaseExceptions propagate)."""
    try:
        deliver_one(deliver, notification, recipient, key)  # type: ignore[arg-type]
    except PermanentDeliveryFailure as exc:
        return "FAILED_PERMANENT", error_text(exc)
    except Exception as exc:
        return "FAILED_TEMPORARY", error_text(exc)
    return "DELIVERED", None


def attempt_for(
    key: str, notification: object, recipient: Recipient, outcome: BaseException | None
) -> NewAttempt:
    """The attempt `outbox.process_all` records for one delivery's outcome (None: delivered;
    PermanentDeliveryFailure: permanent; any other exception: temporary, with the payload a
    retry needs)."""
    if outcome is None:
        return NewAttempt(key, recipient.subscriber_id, "DELIVERED")
    if isinstance(outcome, PermanentDeliveryFailure):
        return NewAttempt(
            key, recipient.subscriber_id, "FAILED_PERMANENT", error=error_text(outcome)
        )
    return NewAttempt(
        key,
        recipient.subscriber_id,
        "FAILED_TEMPORARY",
        error=error_text(outcome),
        payload=_default_payload(notification),
    )


def deliver_with_bookkeeping(
    conn: psycopg.Connection[Any],
    deliver: Deliver[N],
    notification: N,
    recipient: Recipient,
    key: str,
    *,
    payload: Mapping[str, Any] | None = None,
    attempted_at: dt.datetime | None = None,
) -> Outcome:
    """Deliver `notification` to `recipient` and record the outcome on `conn`, in the
    caller's transaction (never committed here); returns the outcome.

    `key` is the notification's key (`ClaimedChange.key`, `ClaimedEvent.key`): the attempt is
    recorded under (key, subscriber), and `deliver` gets the delivery's idempotency key
    `outbox.delivery_key(key, recipient)` ("<key>/<subscriber id>"), as from
    `outbox.process_all`, on the first attempt and on every retry.

    `PermanentDeliveryFailure` raised by `deliver` is FAILED_PERMANENT; any other Exception is
    FAILED_TEMPORARY, recorded with `payload` (default: `notification_payload(notification)`
    for any of the three notification types) so that `retry` can deliver it again. Neither
    propagates: the worker goes on with the next recipient. BaseExceptions that are not Exceptions
    (KeyboardInterrupt, ...) propagate unrecorded. One INSERT per delivery: for large fan-outs
    see `Bookkeeper`.
    """
    outcome, error = _attempt(deliver, notification, recipient, key)
    keep = None
    if outcome == "FAILED_TEMPORARY":
        keep = payload if payload is not None else _default_payload(notification)
    record(
        conn,
        key,
        recipient.subscriber_id,
        outcome,
        error=error,
        attempted_at=attempted_at,
        payload=keep,
    )
    return outcome


class Bookkeeper(Generic[N]):
    """Buffered bookkeeping for large fan-outs: a deliver callback that records outcomes with
    `record_many`, `batch_size` at a time, instead of one INSERT per delivery.

    `outbox.process_all(..., bookkeeping=True)` uses one per claimed change or event and
    flushes it before completing that claim, in the same transaction, so that the outcomes
    commit with the completion and a crash loses neither; a hand-written loop does the same
    (claim, `for r in recipients: bookkeeper(n, r, key)`, `bookkeeper.flush()`, complete,
    commit). Keys as in `deliver_with_bookkeeping`: recorded under the notification's key,
    `deliver` gets the delivery key. `payload(notification)` gives what a retry needs
    (default: `notification_payload`); it is computed only for temporary failures.
    """

    def __init__(
        self,
        conn: psycopg.Connection[Any],
        deliver: Deliver[N],
        *,
        batch_size: int = 1_000,
        payload: Callable[[N], Mapping[str, Any] | None] | None = None,
    ) -> None:
        self._conn = conn
        self._deliver = deliver
        self._batch_size = validate.limit(batch_size, maximum=BATCH_MAX)
        self._payload = payload
        self._pending: list[NewAttempt] = []
        #: Outcomes so far (recorded or pending).
        self.counts: dict[Outcome, int] = dict.fromkeys(OUTCOMES, 0)

    def __call__(self, notification: N, recipient: Recipient, key: str) -> None:
        outcome, error = _attempt(self._deliver, notification, recipient, key)
        keep = None
        if outcome == "FAILED_TEMPORARY":
            keep = (
                self._payload(notification)
                if self._payload is not None
                else _default_payload(notification)
            )
        self._pending.append(
            NewAttempt(key, recipient.subscriber_id, outcome, error=error, payload=keep)
        )
        self.counts[outcome] += 1
        if len(self._pending) >= self._batch_size:
            self.flush()

    def flush(self) -> int:
        """Record the buffered outcomes (in the connection's transaction); how many."""
        if not self._pending:
            return 0
        recorded = record_many(self._conn, self._pending)
        self._pending = []
        return recorded


@attrs.frozen
class RetryReport:
    """What one `retry` round did."""

    claimed: int
    delivered: int
    failed: int
    dropped: int


def retry(
    conn: psycopg.Connection[Any],
    deliver: Deliver[N],
    *,
    worker_id: str,
    decode: Callable[[DueRetry], N] = decode_notification,  # type: ignore[assignment]
    limit: int = 100,
    lease: dt.timedelta = DEFAULT_LEASE,
    now: dt.datetime | None = None,
    unsubscribe_keys: Sequence[UnsubscribeKey] | None = None,
) -> RetryReport:
    """One retry worker round: claim due retries, deliver each again, record the outcome.
    Commits the claim and each retry (a worker loop, like `outbox.process_all`, not an operation).

    `decode(retry)` rebuilds the notification (default: `decode_notification`, the typed
    StatusChangeNotification, IncidentNotification or MaintenanceNotification from the payload
    `deliver_with_bookkeeping` or `Bookkeeper` stored); `deliver` gets it with the delivery key
    `outbox.delivery_key(retry.notification_key, recipient)`, as on the first attempt. A retry
    it cannot decode (InvalidInput) is dropped without counting against the subscriber. `now`
    (default the database's) decides what is due and is recorded as the retry's time.
    `unsubscribe_keys`: as `outbox.process_all`'s, the recipient's `unsubscribe_token` signed
    again for the same (subscriber, notification), so the retried message carries the link
    the first attempt did (the payload never holds it).
    """
    keys = () if unsubscribe_keys is None else check_keys(unsubscribe_keys)
    claimed = claim_retries(conn, worker_id=worker_id, limit=limit, lease=lease, now=now)
    _commit(conn)
    delivered = failed = dropped = 0
    for due in claimed:
        try:
            notification = decode(due)
        except InvalidInput:
            give_up_retry(conn, due, worker_id=worker_id)
            _commit(conn)
            dropped += 1
            continue
        payload = due.payload
        recipient = due.recipient
        if keys:
            recipient = with_unsubscribe_token(recipient, due.notification_key, keys)
        outcome = deliver_with_bookkeeping(
            conn,
            deliver,
            notification,
            recipient,
            due.notification_key,
            payload=payload if isinstance(payload, dict) else None,
            attempted_at=now,
        )
        _commit(conn)
        if outcome == "DELIVERED":
            delivered += 1
        else:
            failed += 1
    return RetryReport(len(claimed), delivered, failed, dropped)


def _commit(conn: psycopg.Connection[Any]) -> None:
    try:
        conn.commit()
    except psycopg.Error as exc:
        raise translate(exc) from exc
