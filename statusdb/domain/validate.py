"""Input checks that run before any SQL is sent.

The database enforces the same rules (CHECK constraints, triggers); checking here first gives
the caller a precise message naming the field, and saves a round trip for bad input.
"""

from __future__ import annotations

import datetime as dt
import enum
import functools
import inspect
import re
import types
import typing
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any, Final, Literal, TypeVar, Union

import attrs

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
    return text(field, value, max_length=ID_MAX)


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


#: The instants a stored timestamp may hold, as the database's range checks (migration 0024):
#: [0001-01-02, 9999-12-31) UTC, finite, readable as a datetime under any UTC offset.
TIMESTAMP_MIN: Final = dt.datetime(1, 1, 2, tzinfo=dt.UTC)
TIMESTAMP_END: Final = dt.datetime(9999, 12, 31, tzinfo=dt.UTC)
#: Text bounds the database repeats (the <table>_<column>_length_check constraints and older
#: checks; tests/security/test_s26_column_bounds.py compares them with the catalog).
ID_MAX: Final = 200
NAME_MAX: Final = 200
DESCRIPTION_MAX: Final = 10_000


def aware(field: str, value: dt.datetime) -> dt.datetime:
    """An aware datetime: naive ones are refused, since their zone is a guess."""
    if not isinstance(value, dt.datetime):
        raise InvalidInput(f"{field} must be a datetime, not {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInput(
            f"{field} must be timezone-aware (for example datetime.now(timezone.utc)); "
            "naive datetimes are refused"
        )
    instant: dt.datetime | None
    local: dt.datetime | None
    try:
        # Near datetime.min/max an offset can carry the instant out of Python's years 1-9999:
        # PostgreSQL would store it, and reading it back would then fail.
        instant = value.astimezone(dt.UTC)
        local = instant.astimezone(value.tzinfo)
    except (OverflowError, ValueError):
        instant = local = None
    if instant is None or not TIMESTAMP_MIN <= instant < TIMESTAMP_END:
        # The database's <table>_<column>_range_check (migration 0024) keeps the same range: a
        # day inside Python's, so that a session in any time zone reads the value back.
        raise InvalidInput(
            f"{field} ({value.isoformat()}) is out of range: in UTC it must fall within "
            "0001-01-02 and 9999-12-30"
        ) from None
    assert local is not None
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
    # On instants: two datetimes sharing one tzinfo compare by wall clock and ignore `fold`
    # (PEP 495), so 01:15 (second pass) would come "before" 01:30 (first pass) on a fall-back day.
    if end.astimezone(dt.UTC) <= start.astimezone(dt.UTC):
        raise InvalidInput(
            f"end_time ({end.isoformat()}) must be after start_time ({start.isoformat()})"
        )


class Unset(enum.Enum):
    """Marks an argument the caller left out of a partial update (None may be a real value)."""

    UNSET = enum.auto()

    def __repr__(self) -> str:
        # Shown as the default of partial-update parameters in help() and signatures.
        return "unchanged"


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


#: PostgreSQL's integer (int4) and bigint (int8) ranges.
INT4_MIN: Final = -(2**31)
INT4_MAX: Final = 2**31 - 1
INT8_MIN: Final = -(2**63)
INT8_MAX: Final = 2**63 - 1


def flag(field: str, value: bool) -> bool:
    """A flag: `True` or `False` only; a truthy string ("false") or a number is refused."""
    if not isinstance(value, bool):
        raise InvalidInput(f"{field} must be True or False (a bool), not {type(value).__name__}")
    return value


def int4(field: str, value: int) -> int:
    """An integer that fits PostgreSQL's `integer` column type."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidInput(f"{field} must be an integer, not {type(value).__name__}")
    if not INT4_MIN <= value <= INT4_MAX:
        raise InvalidInput(f"{field} must be a 32-bit integer ({INT4_MIN} to {INT4_MAX})")
    return value


def optional_int4(field: str, value: int | None) -> int | None:
    return None if value is None else int4(field, value)


def _int4_attribute(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    optional_int4(attribute.name, value)


#: attrs validator for an optional int4 field (`attrs.field(validator=validate.int4_field)`).
int4_field: Final = _int4_attribute


# --- types at the boundary ---------------------------------------------------------------------
#
# Operations declare their parameters' types; mypy checks them for typed callers, but a caller
# without mypy (or one passing user input through) can pass a str where a bool is expected, and
# Python's truthiness would then turn "false" into True. `arguments` checks every argument of an
# operation against its annotation before the operation runs (statusdb.db.executor calls it), and
# `fields` does the same for input rows (attrs classes). Only types are checked here (a Literal
# must be a str, an int must be an int and not a bool); values are each operation's business.


def _describe(hint: Any) -> str:
    if typing.get_origin(hint) in (Union, types.UnionType):
        return " or ".join(_describe(h) for h in typing.get_args(hint) if h is not Unset)
    if hint is type(None):
        return "None"
    if typing.get_origin(hint) is Literal:
        return "one of " + ", ".join(repr(v) for v in typing.get_args(hint))
    origin = typing.get_origin(hint)
    if origin is not None:
        args = typing.get_args(hint)
        item = _describe(args[0]) if args else "values"
        return f"a list of {item}"
    return {
        bool: "True or False (a bool)",
        int: "an integer",
        str: "a string",
        dt.datetime: "a datetime",
        dt.timedelta: "a timedelta",
    }.get(hint, getattr(hint, "__name__", str(hint)))


Predicate = Callable[[Any], bool]


def _any(value: Any) -> bool:
    return True


def _is_none(value: Any) -> bool:
    return value is None


def _is_int(value: Any) -> bool:
    # bool is an int subclass, and no flag is a number; beyond int8 no column takes it.
    return isinstance(value, int) and not isinstance(value, bool) and INT8_MIN <= value <= INT8_MAX


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _instance_of(cls: type) -> Predicate:
    def test(value: Any) -> bool:
        return isinstance(value, cls)

    return test


def _union(predicates: list[Predicate]) -> Predicate:
    def test(value: Any) -> bool:
        return any(p(value) for p in predicates)

    return test


def _collection(origin: type, item: Predicate | None) -> Predicate:
    def test(value: Any) -> bool:
        if isinstance(value, str | bytes | bytearray) or not isinstance(value, origin):
            return False
        if item is not None and isinstance(value, list | tuple):  # iterators stay unread
            return all(item(v) for v in value)
        return True

    return test


@functools.cache
def _predicate(hint: Any) -> Predicate:
    """A fast test of whether a value has the type `hint` names."""
    if hint is Any or hint is object:
        return _any
    if hint is type(None):
        return _is_none
    if hint is int:
        return _is_int
    if hint is float:
        return _is_number
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        return _union([_predicate(h) for h in typing.get_args(hint)])
    if origin is Literal:
        choices = typing.get_args(hint)
        if all(isinstance(c, str) for c in choices):
            return _instance_of(str)  # membership: the operation's own message
        return lambda value: value in choices
    if origin in (list, tuple):
        origin = Sequence  # a list where a tuple is annotated (or the reverse) is fine
    if origin is not None and isinstance(origin, type) and issubclass(origin, Iterable):
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        # Items are checked when the value is a list or tuple; a one-shot stream is left to
        # the operation, which checks its items as it reads them.
        return _collection(origin, _predicate(args[0]) if args else None)
    if isinstance(hint, type):
        return _instance_of(hint)  # bool, str, datetime, timedelta, attrs classes, ...
    return _any  # a construct this check does not know: leave it to the operation


def _refuse(field: str, value: Any, hint: Any) -> WrongType:
    shown = type(value).__name__
    if hint is int and isinstance(value, int) and not isinstance(value, bool):
        shown = "an integer out of the 64-bit range"
    return WrongType(field, f"{field} must be {_describe(hint)}, not {shown}")


def check(field: str, value: Any, hint: Any) -> None:
    """Refuse `value` with InvalidInput naming `field` unless it has the type `hint` names."""
    if not _predicate(hint)(value):
        raise _refuse(field, value, hint)


@functools.cache
def _hints(fn: Callable[..., Any] | type) -> dict[str, Any]:
    hints = typing.get_type_hints(fn)
    hints.pop("return", None)
    return hints


Checker = Callable[[tuple[Any, ...], dict[str, Any]], None]


@functools.cache
def _checker(fn: Callable[..., Any]) -> Checker:
    """The argument check of `fn`, compiled once."""
    hints = _hints(fn)
    parameters = inspect.signature(fn).parameters.values()
    positional = [
        p.name
        for p in parameters
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    tests = {name: (_predicate(hint), hint) for name, hint in hints.items()}

    def run(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        # Arguments that fit no parameter are left to Python (TypeError, as for any call).
        for name, value in zip(positional, args, strict=False):
            test = tests.get(name)
            if test is not None and not test[0](value):
                raise _refuse(name, value, test[1])
        for name, value in kwargs.items():
            test = tests.get(name)
            if test is not None and not test[0](value):
                raise _refuse(name, value, test[1])

    return run


def arguments(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Check the arguments of a call of `fn` against its annotations (InvalidInput)."""
    _checker(fn)(args, kwargs)


class WrongType(InvalidInput):
    """An argument or field whose type is not the one its annotation names."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def argument_problem(
    fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> WrongType | None:
    """`arguments`' refusal, returned instead of raised; None when every type fits."""
    try:
        _checker(fn)(args, kwargs)
    except WrongType as exc:
        return exc
    return None


def fields(instance: attrs.AttrsInstance) -> None:
    """Check every field of an attrs input row against its annotation (InvalidInput)."""
    cls = type(instance)
    hints = _hints(cls)
    for attribute in attrs.fields(cls):
        if attribute.name in hints:
            check(attribute.name, getattr(instance, attribute.name), hints[attribute.name])


#: A BCP 47 tag as statusdb stores it (migration 0033): language, optional script, optional
#: region, in their canonical case ("de", "de-CH", "zh-Hant-TW", "es-419").
LOCALE_PATTERN: Final = re.compile(r"[a-z]{2,3}(?:-[A-Z][a-z]{3})?(?:-(?:[A-Z]{2}|[0-9]{3}))?")
_LOCALE_ANY_CASE: Final = re.compile(
    r"([A-Za-z]{2,3})(?:-([A-Za-z]{4}))?(?:-([A-Za-z]{2}|[0-9]{3}))?", re.ASCII
)
#: Longest locale tag accepted (the pattern's longest is 12 characters).
LOCALE_MAX: Final = 35


def locale(field: str, value: str) -> str:
    """A BCP 47 tag (language[-Script][-REGION]) in canonical case: "de-ch" -> "de-CH",
    "zh-hant-tw" -> "zh-Hant-TW". Variants, extensions and "_" separators are refused."""
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be a string, not {type(value).__name__}")
    match = _LOCALE_ANY_CASE.fullmatch(value) if len(value) <= LOCALE_MAX else None
    if match is None:
        raise InvalidInput(
            f"{field} must be a BCP 47 tag: a language, an optional script and an optional "
            f"region (de, de-CH, zh-Hant-TW, es-419), not {value[:40]!r}"
        )
    language, script, region = match.groups()
    tag = language.lower()
    if script:
        tag += "-" + script.title()
    if region:
        tag += "-" + region.upper()
    return tag
