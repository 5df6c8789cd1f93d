"""Secret tokens (page access, subscriber verification, unsubscribe).

A token is shown to its owner once; the database keeps only its SHA-256 digest, so a leaked dump
or backup opens nothing. Tokens are compared in constant time.
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


def matches(token: str | None, stored_digest: bytes | None) -> bool:
    """Whether `token` is the one behind `stored_digest`, in constant time."""
    if token is None or stored_digest is None or not isinstance(token, str):
        return False
    return hmac.compare_digest(digest(token), bytes(stored_digest))
