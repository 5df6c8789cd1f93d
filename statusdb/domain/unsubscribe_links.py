"""Unsubscribe links: signed per (subscriber, message), verified without the database.

Every message a worker sends carries a link that unsubscribes its recipient: the link's token
is an HMAC-SHA256, under a key the *service* holds (never the database), of the subscriber's id
and the message's id (`outbox.ClaimedChange.key`, `outbox.ClaimedEvent.key`). So a link

* works forever: nothing about it is stored, so later messages, re-subscribing and
  `subscribers.rotate_unsubscribe_token` leave it working (until its key is retired, below);
* is useless for any other subscriber: the id is inside the signed text, and changing it
  breaks the signature (finding another one is forging HMAC-SHA256);
* cannot be made from anything the database holds: the database never sees the key, and the
  links themselves are not stored (a retry's payload holds the notification, not the link;
  the worker signs again when it delivers).

Keys are given as a list, newest first (`unsubscribe_keys=[current, previous, ...]`): links are
signed with the first and accepted with any of them, so a key is rotated by putting a new one
first and dropping the old one once its links may go dead (dropping a key is also how to revoke
every link it signed, if it leaked). A key is at least 32 bytes (`new_key()`, or text such as
`secrets.token_urlsafe(32)`), and at most MAX_KEYS are tried.

What the link does not guard: whoever can connect as statusdb_app can unsubscribe any
subscriber by id already (`subscribers.unsubscribe`); the key is the boundary only for the
public link, which anyone may type into a browser.

A token is URL-safe base64 (no padding) of: the format version (1), the subscriber id and the
message id (each one length byte and UTF-8, at most MAX_ID_BYTES), and the first 16 bytes of
the HMAC (128 bits, as RFC 2104 recommends for truncation) over a domain-separated form of the
same bytes. It is about 120 characters for statusdb's ids; `verify` refuses anything longer
than MAX_TOKEN_LENGTH before any work, and compares signatures in constant time.

RFC 8058: `list_unsubscribe_headers(url)` gives an email's `List-Unsubscribe` and
`List-Unsubscribe-Post: List-Unsubscribe=One-Click` headers; the service answers a POST to the
link (body ``List-Unsubscribe=One-Click``) with `subscribers.unsubscribe_by_link`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import urllib.parse
from collections.abc import Sequence
from typing import Final

import attrs

from statusdb.errors import InvalidInput, Unauthorized

#: The token format this module writes (its first byte).
VERSION: Final = 1
#: Shortest key accepted, in bytes (HMAC-SHA256's block of security: 256 bits).
MIN_KEY_BYTES: Final = 32
#: Longest key accepted, in bytes (HMAC hashes longer keys first: nothing gained).
MAX_KEY_BYTES: Final = 1024
#: Most keys tried when verifying (the current one and the previous ones still honoured).
MAX_KEYS: Final = 8
#: Longest id (subscriber, message) a token carries, in UTF-8 bytes (statusdb.domain.validate's).
MAX_ID_BYTES: Final = 200
#: Signature bytes kept (HMAC-SHA256 truncated to 128 bits).
MAC_BYTES: Final = 16
#: Longest token `verify` reads; anything longer is refused unread.
MAX_TOKEN_LENGTH: Final = 4 * (3 + 2 * MAX_ID_BYTES + MAC_BYTES + 2) // 3
#: The value of the List-Unsubscribe-Post header (RFC 8058 section 3.1), and the form body
#: a mail client POSTs to the link.
ONE_CLICK: Final = "List-Unsubscribe=One-Click"

_CONTEXT: Final = b"statusdb unsubscribe link\x00"

UnsubscribeKey = bytes | str


@attrs.frozen
class LinkClaims:
    """What a verified token says: whose link it is, and in which message it was sent."""

    subscriber_id: str
    message_id: str


def new_key() -> bytes:
    """A fresh random key (32 bytes) for `unsubscribe_keys`; keep it in the service's secrets."""
    return secrets.token_bytes(MIN_KEY_BYTES)


def check_keys(keys: Sequence[UnsubscribeKey]) -> tuple[bytes, ...]:
    """`keys` (newest first) as bytes; InvalidInput for none, too many, or a short key."""
    if isinstance(keys, str | bytes | bytearray) or not isinstance(keys, Sequence):
        raise InvalidInput("unsubscribe keys must be a list of keys, newest first")
    if not 1 <= len(keys) <= MAX_KEYS:
        raise InvalidInput(f"give from 1 to {MAX_KEYS} unsubscribe keys, not {len(keys)}")
    checked = []
    for key in keys:
        if isinstance(key, str):
            raw = key.encode("utf-8", "surrogatepass")
        elif isinstance(key, bytes | bytearray):
            raw = bytes(key)
        else:
            raise InvalidInput(
                f"an unsubscribe key must be bytes or text, not {type(key).__name__}"
            )
        if not MIN_KEY_BYTES <= len(raw) <= MAX_KEY_BYTES:
            raise InvalidInput(
                f"an unsubscribe key must be {MIN_KEY_BYTES} to {MAX_KEY_BYTES} bytes long "
                "(make one with statusdb.domain.unsubscribe_links.new_key())"
            )
        checked.append(raw)
    return tuple(checked)


def _id_bytes(field: str, value: str) -> bytes:
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"{field} must be a non-empty id")
    raw = value.encode("utf-8")  # a lone surrogate is no id: UnicodeEncodeError below
    if len(raw) > MAX_ID_BYTES or "\x00" in value:
        raise InvalidInput(f"{field} must be an id of at most {MAX_ID_BYTES} bytes")
    return raw


def _body(subscriber: bytes, message: bytes) -> bytes:
    return bytes((VERSION, len(subscriber))) + subscriber + bytes((len(message),)) + message


def _mac(key: bytes, body: bytes) -> bytes:
    return hmac.new(key, _CONTEXT + body, hashlib.sha256).digest()[:MAC_BYTES]


def sign(keys: Sequence[UnsubscribeKey], *, subscriber_id: str, message_id: str) -> str:
    """The unsubscribe token of `subscriber_id` for the message `message_id`, signed with the
    first of `keys` (URL-safe text)."""
    key = check_keys(keys)[0]
    try:
        body = _body(_id_bytes("subscriber_id", subscriber_id), _id_bytes("message_id", message_id))
    except UnicodeEncodeError:
        raise InvalidInput("ids must be valid text") from None
    return base64.urlsafe_b64encode(body + _mac(key, body)).rstrip(b"=").decode("ascii")


def verify(keys: Sequence[UnsubscribeKey], token: str) -> LinkClaims:
    """What `token` says, if one of `keys` signed it; Unauthorized otherwise (malformed, too
    long, another format, or a signature none of the keys made)."""
    checked = check_keys(keys)
    if not isinstance(token, str) or not token:
        raise Unauthorized("the unsubscribe link is missing its token")
    if len(token) > MAX_TOKEN_LENGTH or not token.isascii():
        raise Unauthorized("unknown unsubscribe link")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        raise Unauthorized("unknown unsubscribe link") from None
    if len(raw) < 3 + MAC_BYTES or raw[0] != VERSION:
        raise Unauthorized("unknown unsubscribe link")
    body, mac = raw[:-MAC_BYTES], raw[-MAC_BYTES:]
    # Every key is tried (no early exit), each comparison in constant time.
    good = False
    for key in checked:
        good |= hmac.compare_digest(_mac(key, body), mac)
    if not good:
        raise Unauthorized("unknown unsubscribe link")
    # Signed by us, so well formed; checked anyway (a key shared with another format).
    sub_length = body[1]
    subscriber = body[2 : 2 + sub_length]
    rest = body[2 + sub_length :]
    if not rest or len(rest) != 1 + rest[0] or len(subscriber) != sub_length:
        raise Unauthorized("unknown unsubscribe link")
    try:
        return LinkClaims(subscriber.decode("utf-8"), rest[1:].decode("utf-8"))
    except UnicodeDecodeError:
        raise Unauthorized("unknown unsubscribe link") from None


def url(base_url: str, token: str) -> str:
    """The link to put in a message: `base_url` with `token` in place of ``{token}``, or
    appended as the last path segment (``https://status.example.com/unsubscribe/<token>``).
    `base_url` must be an absolute https URL (RFC 8058 requires https for one-click)."""
    if not isinstance(base_url, str) or not isinstance(token, str) or not token:
        raise InvalidInput("base_url and token must be text")
    parts = urllib.parse.urlsplit(base_url.replace("{token}", "TOKEN"))
    if parts.scheme != "https" or not parts.hostname or parts.fragment:
        raise InvalidInput("base_url must be an absolute https URL without a fragment")
    quoted = urllib.parse.quote(token, safe="")
    if "{token}" in base_url:
        return base_url.replace("{token}", quoted)
    if parts.query:
        raise InvalidInput("a base_url with a query must say where the token goes: {token}")
    return base_url.rstrip("/") + "/" + quoted


def list_unsubscribe_headers(link: str, *, mailto: str | None = None) -> dict[str, str]:
    """The RFC 8058 headers of an email whose unsubscribe link is `link` (see `url`):
    ``List-Unsubscribe: <link>`` (with ``<mailto:...>`` after it when `mailto` is given) and
    ``List-Unsubscribe-Post: List-Unsubscribe=One-Click``. The service must unsubscribe on a
    POST to `link` with that form body, without a login, a cookie or a confirmation page."""
    if not isinstance(link, str) or urllib.parse.urlsplit(link).scheme != "https":
        raise InvalidInput("the one-click unsubscribe link must be an https URL")
    if any(c in link for c in "<>\r\n ,"):
        raise InvalidInput("the unsubscribe link must be a URL, escaped (see url())")
    value = f"<{link}>"
    if mailto is not None:
        if not isinstance(mailto, str) or any(c in mailto for c in "<>\r\n ,"):
            raise InvalidInput("mailto must be an address without <, >, commas or line breaks")
        value += f", <mailto:{mailto}>"
    return {"List-Unsubscribe": value, "List-Unsubscribe-Post": ONE_CLICK}
