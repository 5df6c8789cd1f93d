"""Subscribers of a status page: who is told about status changes, where, and about what.

A subscriber is a destination on a channel: an email address (EMAIL), or an https URL that
receives a POST (SLACK incoming webhook, WEBHOOK). It follows some components of the page (none
listed: all of them) and some kinds of events (`notify_on`).

Tokens. Each token is returned once, when it is made; the database keeps only its SHA-256 digest
(`statusdb.domain.tokens`), so a leaked dump verifies or unsubscribes nobody. Tokens are looked
up by digest through a unique index: the timing of that lookup says nothing useful about a token,
since the digest of a guess is unrelated to the digest of the real token.

* An EMAIL subscriber starts unverified, with a verification token that works once and expires
  (`verify_ttl`, 24 hours by default): only the owner of the address can confirm it, so nobody
  can sign someone else up. SLACK and WEBHOOK URLs are secrets of their owner already, so those
  subscribers start verified.
* Every subscribe returns an unsubscribe token. It keeps working after unsubscribing (a second
  click on the same link is harmless) and is replaced when the destination subscribes again.

Subscribing a destination again renews its subscription instead of failing: preferences are
replaced, an unsubscribed subscription is reactivated, both tokens are replaced, and an EMAIL
destination must verify again. That last rule keeps a stranger who re-subscribes someone else's
address from silently changing what they receive; to change preferences without a new
verification, use `update_preferences` (behind the caller's own authentication).

Unsubscribe links (`unsubscribe_by_link`): every message a worker sends carries a link signed
by the service, per (subscriber, message), with keys the database never sees
(`statusdb.domain.unsubscribe_links`); it works forever and only for its subscriber. The stored
unsubscribe token (`unsubscribe_by_token`) is one per subscriber, shown once: for a page's own
"manage your subscription" flow, not for messages.

Unsubscribing (by id, by link or by token; never by address, which anyone can type) keeps the row,
inactive, for a later re-subscribe and for audit; `delete` removes it for good.

Errors: invalid input raises InvalidInput naming the field; an unknown page or subscriber
NotFound; a wrong, used or expired token Unauthorized (the message tells an expired
verification token apart, so the page can offer to send a new one).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Final, NamedTuple

import attrs
from psycopg.rows import class_row, kwargs_row, tuple_row

from statusdb import idempotency, translations
from statusdb.db.executor import Op, copy_in, execute, many, one, operation, optional
from statusdb.domain import destinations, tokens, unsubscribe_links, validate
from statusdb.domain.types import (
    NOTIFY_ON_EVENTS,
    SUBSCRIBER_CHANNELS,
    NotifyOnEvent,
    SubscriberChannel,
)
from statusdb.errors import InvalidInput, NotFound, Unauthorized

#: How long a verification token works unless the caller says otherwise.
DEFAULT_VERIFY_TTL: Final = dt.timedelta(hours=24)
#: The longest verification lifetime accepted: a link older than this is more likely leaked
#: than used.
MAX_VERIFY_TTL: Final = dt.timedelta(days=30)


def _tuple(values: Iterable[Any]) -> tuple[Any, ...]:
    return tuple(values)


@attrs.frozen
class Subscriber:
    """A subscription as stored. Token digests are never read back."""

    id: str
    status_page_id: str
    channel: SubscriberChannel
    destination: str
    #: Components followed; empty: all components of the page.
    component_ids: tuple[str, ...] = attrs.field(converter=_tuple)
    notify_on: tuple[NotifyOnEvent, ...] = attrs.field(converter=_tuple)
    is_verified: bool
    is_active: bool
    #: When the pending verification token expires; None when no verification is pending.
    verify_token_expires_at: dt.datetime | None
    created_at: dt.datetime
    updated_at: dt.datetime


@attrs.frozen
class Subscription:
    """The result of `subscribe`: the subscriber and its tokens, shown this once."""

    subscriber: Subscriber
    #: For EMAIL: the token that confirms the address (send it to the address). Else None.
    verify_token: str | None
    #: Empty only when `replayed` (the first call showed it).
    unsubscribe_token: str
    #: True when a new subscription was made; False when an existing one was renewed.
    created: bool
    #: True when this was a repeat of an earlier call with the same idempotency key: nothing
    #: was written, and the tokens (shown to the first call only) are None and "".
    replayed: bool = False


@attrs.frozen
class SubscriberCounts:
    """A page's subscribers: all of them, the active ones, and those notified."""

    total: int
    active: int
    #: Active and verified: the subscribers notifications actually go to.
    verified: int


@attrs.frozen
class ImportRow:
    """One subscriber to import (for example from another status page tool)."""

    channel: SubscriberChannel
    destination: str
    component_ids: Sequence[str] = ()
    notify_on: Sequence[NotifyOnEvent] = NOTIFY_ON_EVENTS
    #: Whether the previous tool had confirmed this EMAIL address. Only honoured when the import
    #: is called with trust_verified=True; ignored for SLACK and WEBHOOK (always verified).
    verified: bool = True

    def __attrs_post_init__(self) -> None:
        validate.fields(self)  # InvalidInput for a wrong-typed field (a str for a bool, ...)


class RefusedRow(NamedTuple):
    """A row the import did not insert, and why."""

    #: Position of the row in the input, counting from 1.
    row_number: int
    destination: str
    reason: str


@attrs.frozen
class ImportReport:
    """What an import did: how many rows were inserted, and every other row with its reason."""

    accepted: int
    #: In input order.
    refused: list[RefusedRow]


_row = class_row(Subscriber)


def _subscribed(*, created: bool, **columns: Any) -> tuple[bool, Subscriber]:
    return created, Subscriber(**columns)


def _verify_outcome(*, expired: bool, **columns: Any) -> tuple[bool, Subscriber]:
    return expired, Subscriber(**columns)


_subscribed_row = kwargs_row(_subscribed)
_verify_row = kwargs_row(_verify_outcome)


# --- validation -------------------------------------------------------------------------------


def normalize_destination(channel: SubscriberChannel, destination: str) -> str:
    """Check a destination for its channel and return it as it is stored (no allow-list).

    See `statusdb.domain.destinations.normalize`; kept here for callers of the earlier API.
    """
    return destinations.normalize(channel, destination)


def _allow_list() -> Op[destinations.AllowList]:
    """The deployment's allow-list of internal destination hosts (migration 0013)."""
    rows = yield from many("destination_allowlist_all", {}, tuple_row)
    return destinations.AllowList(
        frozenset(host for host, _ in rows if host is not None),
        tuple(network for _, network in rows if network is not None),
    )


def _component_ids(values: Iterable[str]) -> list[str]:
    try:
        return validate.identifiers("component_ids", values)
    except TypeError:
        raise InvalidInput("component_ids must be a list of component ids") from None


def _notify_on(values: Iterable[NotifyOnEvent]) -> list[NotifyOnEvent]:
    """A non-empty subset of the events, de-duplicated, in the canonical order."""
    if values is NOTIFY_ON_EVENTS:  # the default (an import's rows, mostly): already so
        return list(NOTIFY_ON_EVENTS)
    events = ", ".join(NOTIFY_ON_EVENTS)
    if isinstance(values, str):
        raise InvalidInput(f"notify_on must be a list of events ({events}), not a string")
    try:
        chosen = {validate.one_of("notify_on", value, NOTIFY_ON_EVENTS) for value in values}
    except TypeError:
        raise InvalidInput(f"notify_on must be a list of events ({events})") from None
    if not chosen:
        raise InvalidInput(f"notify_on must name at least one event: {events}")
    return [event for event in NOTIFY_ON_EVENTS if event in chosen]


def _verify_ttl(value: dt.timedelta) -> dt.timedelta:
    if not isinstance(value, dt.timedelta) or not dt.timedelta(0) < value <= MAX_VERIFY_TTL:
        raise InvalidInput(
            f"verify_ttl must be a timedelta greater than 0 and at most {MAX_VERIFY_TTL.days} days"
        )
    return value


def _token_digest(token: str, *, what: str) -> bytes:
    """The digest to look a presented token up by; a missing or non-text token matches nothing."""
    if not isinstance(token, str) or not token:
        raise Unauthorized(f"{what} token is missing")
    return tokens.digest(token)


# --- operations -------------------------------------------------------------------------------


@operation(retry=True, atomic_when="idempotency_key")
def subscribe(
    status_page_id: str,
    *,
    channel: SubscriberChannel,
    destination: str,
    component_ids: Iterable[str] = (),
    notify_on: Iterable[NotifyOnEvent] = NOTIFY_ON_EVENTS,
    verify_ttl: dt.timedelta = DEFAULT_VERIFY_TTL,
    idempotency_key: str | None = None,
) -> Op[Subscription]:
    """Subscribe a destination to a page, or renew its subscription; one statement.

    Returns the subscriber, its tokens (shown this once) and whether it was created. Renewing
    (same page, channel and normalized destination) replaces the preferences, reactivates, and
    replaces both tokens; an EMAIL destination is unverified again until its new verification
    token is used. component_ids must be components of the page (empty: all of them).

    `idempotency_key` (at most 200 characters, per page): a repeat with the same key renews
    nothing and returns the subscriber the first call made, without tokens (`replayed` is
    True, `verify_token` None, `unsubscribe_token` empty: only their digests are stored;
    `statusdb.idempotency`; the same key with other arguments: Conflict).
    """
    chosen_key = idempotency.key(idempotency_key)
    channel = validate.one_of("channel", channel, SUBSCRIBER_CHANNELS)
    checked = destinations.check(channel, destination)
    is_email = channel == "EMAIL"
    ttl = _verify_ttl(verify_ttl)
    page_id = validate.identifier("status_page_id", status_page_id)
    chosen_components = _component_ids(component_ids)
    chosen_events = _notify_on(notify_on)
    # An internal host passes only if the deployment's allow-list names it: read it then only.
    allow = destinations.NOTHING_ALLOWED
    if checked.internal is not None:
        allow = yield from _allow_list()
    normalized = checked.require_allowed(allow)
    verify_token = tokens.new_token() if is_email else None
    unsubscribe_token = tokens.new_token()
    params = {
        "status_page_id": page_id,
        "channel": channel,
        "destination": normalized,
        "component_ids": chosen_components,
        "notify_on": chosen_events,
        "is_verified": not is_email,
        "verify_token_hash": None if verify_token is None else tokens.digest(verify_token),
        "verify_ttl": ttl if is_email else None,
        "unsubscribe_token_hash": tokens.digest(unsubscribe_token),
    }

    def write() -> Op[Subscription]:
        created, subscriber = yield from one(
            "subscriber_subscribe", params, _subscribed_row, not_found="subscriber was not saved"
        )
        return Subscription(subscriber, verify_token, unsubscribe_token, created)

    def replay(subscriber_id: str) -> Op[Subscription]:
        subscriber = yield from get.body(subscriber_id)
        return Subscription(subscriber, None, "", created=False, replayed=True)

    # The request, without the tokens made for this call.
    request = {k: v for k, v in params.items() if not k.endswith("_token_hash")}
    return (
        yield from idempotency.guarded(
            "subscriber.subscribe",
            chosen_key,
            request,
            write,
            replay,
            lambda subscription: subscription.subscriber.id,
            status_page_id=page_id,
        )
    )


@operation(retry=True)
def verify(token: str) -> Op[Subscriber]:
    """Confirm an EMAIL subscriber with its verification token; the token then stops working.

    Raises Unauthorized when the token is wrong, already used or replaced ("unknown or already
    used"), or expired ("expired": subscribing again sends a new one).
    """
    params = {"verify_token_hash": _token_digest(token, what="the verification")}
    outcome = yield from optional("subscriber_verify", params, _verify_row)
    if outcome is None:
        raise Unauthorized("unknown or already used verification token")
    expired, subscriber = outcome
    if expired:
        raise Unauthorized("this verification token has expired; subscribe again to get a new one")
    return subscriber


@operation(retry=True)
def unsubscribe(subscriber_id: str) -> Op[Subscriber]:
    """Deactivate a subscriber (idempotent); its pending verification, if any, is dropped.

    The row stays (inactive) for a later re-subscribe and for audit; see `delete` for erasure.
    """
    params = {"id": validate.identifier("subscriber_id", subscriber_id)}
    return (
        yield from one(
            "subscriber_unsubscribe",
            params,
            _row,
            not_found=f"no subscriber with id {subscriber_id!r}",
        )
    )


@operation(retry=True)
def unsubscribe_by_token(token: str) -> Op[Subscriber]:
    """Deactivate the subscriber whose unsubscribe token this is (idempotent).

    Raises Unauthorized for a token that matches no subscriber; nothing changes then.
    """
    params = {"unsubscribe_token_hash": _token_digest(token, what="the unsubscribe")}
    subscriber = yield from optional("subscriber_unsubscribe_by_token", params, _row)
    if subscriber is None:
        raise Unauthorized("unknown unsubscribe token")
    return subscriber


@operation(retry=True)
def unsubscribe_by_link(
    token: str, *, keys: Sequence[unsubscribe_links.UnsubscribeKey]
) -> Op[Subscriber]:
    """Deactivate the subscriber whose signed unsubscribe link this is (idempotent).

    `token` is what `outbox.Recipient.unsubscribe_token` carried in a message (the last path
    segment of its link); `keys` are the service's unsubscribe keys, newest first, as given
    to the worker (`statusdb.domain.unsubscribe_links`). The link is checked in Python before any
    SQL runs: a malformed, forged or altered token, or one no key in `keys` signed, raises
    Unauthorized and changes nothing. A genuine link keeps working for good (after later
    messages, `rotate_unsubscribe_token`, unsubscribing and subscribing again), until its key
    is dropped from `keys`; NotFound when its subscriber was deleted.

    Unlike `unsubscribe_by_token` (a random token the database stores as a digest: one per
    subscriber, replaced by a rotation or a re-subscribe, which ends every link made with the
    old one), nothing of a link is stored: the database cannot make one, and a message's link
    outlives every rotation.
    """
    claims = unsubscribe_links.verify(keys, token)
    subscriber = yield from optional("subscriber_unsubscribe", {"id": claims.subscriber_id}, _row)
    if subscriber is None:
        raise NotFound("the subscriber of this unsubscribe link no longer exists")
    return subscriber


@operation(retry=True)
def rotate_unsubscribe_token(subscriber_id: str) -> Op[str]:
    """Give a subscriber a new unsubscribe token (returned once); the old one stops working.

    For subscribers that have none (imported ones) or whose token was lost: tokens are stored
    as digests, so a notification can only carry an unsubscribe link made this way.
    """
    token = tokens.new_token()
    params = {
        "id": validate.identifier("subscriber_id", subscriber_id),
        "unsubscribe_token_hash": tokens.digest(token),
    }
    yield from one(
        "subscriber_rotate_unsubscribe_token",
        params,
        tuple_row,
        not_found=f"no subscriber with id {subscriber_id!r}",
    )
    return token


@operation(retry=True)
def update_preferences(
    subscriber_id: str,
    *,
    component_ids: Iterable[str] | validate.Unset = validate.UNSET,
    notify_on: Iterable[NotifyOnEvent] | validate.Unset = validate.UNSET,
) -> Op[Subscriber]:
    """Change the components a subscriber follows and the events it is notified about.

    Fields left out keep their value. The destination and channel cannot change (they are what
    was verified): subscribe the new destination and unsubscribe the old one instead.
    """
    U = validate.UNSET
    if component_ids is U and notify_on is U:
        return (yield from get.body(subscriber_id))
    params = {
        "id": validate.identifier("subscriber_id", subscriber_id),
        **validate.changes(
            component_ids=U if component_ids is U else _component_ids(component_ids),
            notify_on=U if notify_on is U else _notify_on(notify_on),
        ),
    }
    return (
        yield from one(
            "subscriber_update_preferences",
            params,
            _row,
            not_found=f"no subscriber with id {subscriber_id!r}",
        )
    )


@operation(retry=True)
def get(subscriber_id: str) -> Op[Subscriber]:
    """One subscriber by id."""
    params = {"id": validate.identifier("subscriber_id", subscriber_id)}
    return (
        yield from one(
            "subscriber_get", params, _row, not_found=f"no subscriber with id {subscriber_id!r}"
        )
    )


@operation(retry=True)
def list_for_page(
    status_page_id: str,
    *,
    active_only: bool = False,
    limit: int = 100,
    after: str | None = None,
) -> Op[list[Subscriber]]:
    """A page's subscribers in id order (ids are time-ordered: about creation order), `limit`
    at a time.

    Pass the id of the last subscriber of one page as `after` to get the next (keyset
    pagination: stable while rows are added or removed, and as fast for the last page as for
    the first).
    """
    params = {
        "status_page_id": validate.identifier("status_page_id", status_page_id),
        "active_only": validate.flag("active_only", active_only),
        "limit": validate.limit(limit),
        # Every id sorts after the empty string.
        "after": "" if after is None else validate.identifier("after", after),
    }
    return (yield from many("subscriber_list_for_page", params, _row))


@operation(retry=True)
def count_for_page(status_page_id: str) -> Op[SubscriberCounts]:
    """How many subscribers a page has (zeros for an unknown page)."""
    params = {"status_page_id": validate.identifier("status_page_id", status_page_id)}
    return (
        yield from one(
            "subscriber_count_for_page",
            params,
            class_row(SubscriberCounts),
            not_found="no counts",
        )
    )


@operation(retry=True)
def delete(subscriber_id: str) -> Op[None]:
    """Delete a subscriber for good (erasure request); `unsubscribe` keeps the row."""
    count = yield from execute(
        "subscriber_delete", {"id": validate.identifier("subscriber_id", subscriber_id)}
    )
    if count == 0:
        raise NotFound(f"no subscriber with id {subscriber_id!r}")


_ARRAY_ELEMENT: Final = str.maketrans({"\\": "\\\\", '"': '\\"'})


def _array_literal(values: Sequence[str]) -> str:
    """A text[] literal of `values`, every element quoted (none reads as NULL).

    The import sends its arrays as literals: psycopg dumps a str in C, whereas a list goes
    through its Python array dumper, which was most of the COPY's client CPU (issue 20:
    0.23 s against 0.04 s per 20,000 rows)."""
    return "{" + ",".join(f'"{value.translate(_ARRAY_ELEMENT)}"' for value in values) + "}"


def _staged_rows(
    rows: Iterable[ImportRow],
    *,
    trust_verified: bool,
    refused: list[RefusedRow],
    allow: destinations.AllowList,
) -> Iterator[tuple[int, str, str, str, str, bool]]:
    """The rows that pass the checks made in Python, numbered from 1, their arrays as text[]
    literals; the others go to `refused`. Lazy: rows are read while the COPY runs, never all
    held in memory."""
    # An import's rows mostly share a few notify_on lists (the default, mostly).
    events_literals: dict[tuple[NotifyOnEvent, ...], str] = {}
    for number, row in enumerate(rows, start=1):
        if not isinstance(row, ImportRow):
            raise InvalidInput(
                f"import rows must be ImportRow values; row {number} is a {type(row).__name__}"
            )
        try:
            channel = validate.one_of("channel", row.channel, SUBSCRIBER_CHANNELS)
            destination = destinations.normalize(channel, row.destination, allow=allow)
            component_ids = _component_ids(row.component_ids)
            notify_on = _notify_on(row.notify_on)
        except InvalidInput as exc:
            shown = row.destination if isinstance(row.destination, str) else repr(row.destination)
            refused.append(RefusedRow(number, shown, str(exc)))
            continue
        is_verified = channel != "EMAIL" or (trust_verified and bool(row.verified))
        events = tuple(notify_on)
        events_literal = events_literals.get(events)
        if events_literal is None:
            events_literal = events_literals[events] = _array_literal(events)
        yield (
            number,
            channel,
            destination,
            _array_literal(component_ids),
            events_literal,
            is_verified,
        )


class _ApplyResult(NamedTuple):
    accepted: int
    row_number: int | None
    destination: str | None
    reason: str | None


# Not retry=True: a second run would find `rows` (the caller's stream, read once by COPY)
# already consumed, and import nothing.
@operation(atomic=True)
def import_subscribers(
    status_page_id: str, rows: Iterable[ImportRow], *, trust_verified: bool = False
) -> Op[ImportReport]:
    """Import subscribers in bulk: all the good rows, or nothing.

    Rows are checked as `subscribe` checks them, streamed into a staging table with COPY, and
    inserted with one INSERT. A row is refused (and reported, with its reason) when it is
    invalid, names a component not on the page, repeats an earlier valid row's channel and
    destination, or is already subscribed to the page. A destination that unsubscribed from the
    page is never re-subscribed by an import (only by its owner). Any other failure (an unknown
    page, an exception raised by `rows`, a lost connection) writes nothing.

    Imported EMAIL subscribers are verified only with trust_verified=True (the caller vouches
    that the previous tool confirmed them) and then only those with `verified` set; the others
    are stored unverified and receive nothing until they subscribe again (`subscribe` sends them
    a verification token). Imported rows get no unsubscribe token: see
    `rotate_unsubscribe_token`.
    """
    page_id = validate.identifier("status_page_id", status_page_id)
    if isinstance(rows, str | bytes):
        raise InvalidInput("rows must be an iterable of ImportRow values")
    if isinstance(rows, list | tuple):  # in hand already: say which row is wrong, now
        for number, row in enumerate(rows, start=1):
            if not isinstance(row, ImportRow):
                raise InvalidInput(
                    f"import rows must be ImportRow values; row {number} is a {type(row).__name__}"
                )
    refused: list[RefusedRow] = []
    yield from one(
        "subscriber_import_lock_page",
        {"status_page_id": page_id},
        tuple_row,
        not_found=f"no status page with id {page_id!r}",
    )
    allow = yield from _allow_list()
    yield from execute("subscriber_import_create", {})
    yield from copy_in(
        "subscriber_import_copy",
        _staged_rows(rows, trust_verified=trust_verified, refused=refused, allow=allow),
    )
    results = yield from many(
        "subscriber_import_apply", {"status_page_id": page_id}, class_row(_ApplyResult)
    )
    yield from execute("subscriber_import_drop", {})
    accepted = results[0].accepted if results else 0
    for result in results:
        if result.row_number is not None:
            refused.append(
                RefusedRow(result.row_number, result.destination or "", result.reason or "")
            )
    refused.sort(key=lambda refusal: refusal.row_number)
    return ImportReport(accepted, refused)


@operation(retry=True)
def set_locale(subscriber_id: str, locale: str | None) -> Op[str | None]:
    """Set the locale (a BCP 47 tag) a subscriber reads notifications in (migration 0033;
    None: the page's default); the stored, canonical tag."""
    return (yield from translations.set_subscriber_locale.body(subscriber_id, locale))
