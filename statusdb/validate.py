"""Input checks that run before any SQL is sent.

The database enforces the same rules (CHECK constraints, triggers); checking here first gives
the caller a precise message naming the field, and saves a round trip for bad input.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from collections.abc import Collection, Iterable
from typing import Final, TypeVar

from statusdb.errors import InvalidInput

_SLUG: Final = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
E = TypeVar("E", bound=str)


def text(field: str, value: str, *, max_length: int, blank_ok: bool = False) -> str:
    """A text value: a str, no NUL byte, within the length the schema allows."""
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be a string, not {type(value).__name__}")
    if "\x00" in value:
        raise InvalidInput(f"{field} must not contain a NUL (0x00) character")
    if not value.isascii():
        # A lone surrogate ('\ud800', say, from a bad decode) has no UTF-8 form: psycopg would
        # fail to send it with a UnicodeEncodeError instead of an error naming the field.
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidInput(
                f"{field} must be valid Unicode text: it holds an unpaired surrogate "
                f"({value[exc.start]!r}) at position {exc.start}"
            ) from None
    if not blank_ok and not value.strip():
        raise InvalidInput(f"{field} must not be blank")
    if len(value) > max_length:
        raise InvalidInput(f"{field} must be at most {max_length} characters, got {len(value)}")
    return value


def optional_text(field: str, value: str | None, *, max_length: int) -> str | None:
    """Like `text`, but None passes; blank is allowed (free-form descriptions)."""
    if value is None:
        return None
    return text(field, value, max_length=max_length, blank_ok=True)


def identifier(field: str, value: str) -> str:
    """An id passed in by a caller: a non-blank string without NUL bytes."""
    return text(field, value, max_length=200)


def identifiers(field: str, values: Iterable[str]) -> list[str]:
    """A list of ids, de-duplicated, order kept."""
    if isinstance(values, str):
        raise InvalidInput(f"{field} must be a list of ids, not a string")
    seen: dict[str, None] = {}
    for value in values:
        seen[identifier(field, value)] = None
    return list(seen)


def is_slug(value: object) -> bool:
    """Whether `value` could be a page slug (no error: for lookups that answer "not found")."""
    return isinstance(value, str) and len(value) <= 100 and _SLUG.fullmatch(value) is not None


def slug(value: str) -> str:
    """A page slug: lower-case letters, digits and single hyphens."""
    text("slug", value, max_length=100)
    if not _SLUG.fullmatch(value):
        raise InvalidInput(
            f"slug {value!r} is not valid: use lower-case letters, digits and single hyphens "
            "(for example 'acme-api')"
        )
    return value


def one_of(field: str, value: str, allowed: Collection[E]) -> E:
    """One value of an enumeration."""
    if value not in allowed:
        raise InvalidInput(f"{field} must be one of {', '.join(allowed)}; got {value!r}")
    return value  # type: ignore[return-value]


def aware(field: str, value: dt.datetime) -> dt.datetime:
    """An aware datetime: naive ones are refused, since their zone is a guess."""
    if not isinstance(value, dt.datetime):
        raise InvalidInput(f"{field} must be a datetime, not {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInput(
            f"{field} must be timezone-aware (for example datetime.now(timezone.utc)); "
            "naive datetimes are refused"
        )
    try:
        # Near datetime.min/max an offset can carry the instant out of Python's years 1-9999:
        # PostgreSQL would store it, and reading it back would then fail.
        instant = value.astimezone(dt.UTC)
        local = instant.astimezone(value.tzinfo)
    except (OverflowError, ValueError):
        raise InvalidInput(
            f"{field} ({value.isoformat()}) is out of range: in UTC it must fall within the "
            "years 1 to 9999"
        ) from None
    if local.replace(tzinfo=None, fold=0) != value.replace(tzinfo=None, fold=0):
        # A wall-clock time skipped by a daylight-saving change (02:30 on a spring-forward
        # night): it names no instant, and the one Python picks depends on `fold`, a guess as
        # much as a naive datetime's zone is.
        raise InvalidInput(
            f"{field} ({value.replace(tzinfo=None).isoformat()} in {value.tzinfo}) does not "
            "exist: the clocks skip it (a daylight-saving change); give a time that exists, "
            "or a UTC datetime"
        )
    return value


def time_range(start: dt.datetime, end: dt.datetime) -> None:
    """`end` strictly after `start`, both aware."""
    aware("start_time", start)
    aware("end_time", end)
    if end <= start:
        raise InvalidInput(
            f"end_time ({end.isoformat()}) must be after start_time ({start.isoformat()})"
        )


class Unset(enum.Enum):
    """Marks an argument the caller left out of a partial update (None may be a real value)."""

    UNSET = enum.auto()


UNSET: Final = Unset.UNSET


def changes(**fields: object) -> dict[str, object]:
    """Parameters for a partial UPDATE: each field's value and a `set_<field>` flag."""
    params: dict[str, object] = {}
    for name, value in fields.items():
        params[f"set_{name}"] = value is not UNSET
        params[name] = None if value is UNSET else value
    return params


def limit(value: int, *, maximum: int = 1000) -> int:
    """A page size: 1 to `maximum`."""
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= maximum:
        raise InvalidInput(f"limit must be an integer from 1 to {maximum}")
    return value
