"""Secret tokens (page access, subscriber verification, unsubscribe).

A token is shown to its owner once and never sent to the database: statusdb sends its SHA-256
digest (`digest`), so the server never sees (or logs) a token. Tokens are compared in constant
time.

What is stored, so that a leaked dump or backup opens nothing:

* verification and unsubscribe tokens: their digest. Only the backend (statusdb_app) and the
  owner can read or write status_subscriber, and the operations that take a token
  (`subscribers.verify`, `subscribers.unsubscribe_by_token`) hash what they are given, so a
  digest from a dump is just a wrong token to them;
* page access tokens: the SHA-256 of their digest (`page_digest`, since migration 0014). The page
  view function (statusdb_page_view, which statusdb_reader may call with any bytes) is given the
  digest and hashes it once more before comparing: what a dump holds is useless to it, and a
  digest that would open the page is a SHA-256 preimage of what is stored.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

#: 32 random bytes: 256 bits, URL-safe base64 (43 characters).
TOKEN_BYTES = 32


def new_token() -> str:
    """A fresh random token, safe to put in a URL."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def digest(token: str) -> bytes:
    """The SHA-256 digest stored in place of `token`."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def page_digest(token: str) -> bytes:
    """What status_page stores for a page access token: the SHA-256 of `digest(token)`."""
    return hashlib.sha256(digest(token)).digest()


def page_matches(token: str | None, stored: bytes | None) -> bool:
    """Whether `token` is the page access token behind `stored`, in constant time."""
    if token is None or stored is None or not isinstance(token, str):
        return False
    return hmac.compare_digest(page_digest(token), bytes(stored))


def matches(token: str | None, stored_digest: bytes | None) -> bool:
    """Whether `token` is the one behind `stored_digest`, in constant time."""
    if token is None or stored_digest is None or not isinstance(token, str):
        return False
    return hmac.compare_digest(digest(token), bytes(stored_digest))
