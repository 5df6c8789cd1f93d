"""Wrong argument types: every public operation refuses them with InvalidInput.

A truthy string must never stand for a flag (`is_public="false"` made a private page public),
and no wrong type may surface as AttributeError, TypeError or a database error. The operations
and their input classes are found by introspection (every `@operation` of every statusdb
module, and every attrs class their parameters name), so a new operation cannot skip this.
"""

from __future__ import annotations

import collections.abc
import datetime as dt
import importlib
import inspect
import pkgutil
import types
import typing
from collections.abc import Iterator
from typing import Any, Final, Literal, Union

import attrs
import psycopg
import pytest
from psycopg import sql
from psycopg.rows import TupleRow

import statusdb
from statusdb import pages, teams, views
from statusdb.db.executor import Operation
from statusdb.domain.validate import UNSET, Unset
from statusdb.errors import InvalidInput, Unauthorized
from statusdb.pages import NewComponent

Conn = psycopg.Connection[TupleRow]

T0: Final = dt.datetime(2031, 1, 6, 10, 0, tzinfo=dt.UTC)
#: Support modules without repository operations (local cluster tooling).
SKIP_MODULES: Final = frozenset({"cli", "demo", "localpg", "migrations"})


def _operations() -> Iterator[tuple[str, Operation[Any, Any]]]:
    for info in pkgutil.iter_modules(statusdb.__path__):
        if info.name in SKIP_MODULES:
            continue
        module = importlib.import_module(f"statusdb.{info.name}")
        for name, value in sorted(vars(module).items()):
            if isinstance(value, Operation) and value.body.__module__ == module.__name__:
                yield f"{info.name}.{name}", value


OPERATIONS: Final = dict(_operations())


def _hints(fn: Any) -> dict[str, Any]:
    hints = typing.get_type_hints(fn)
    hints.pop("return", None)
    return hints


def _members(hint: Any) -> list[Any]:
    """The alternatives of a union (without None and Unset), else [hint]."""
    if typing.get_origin(hint) in (Union, types.UnionType):
        return [m for m in typing.get_args(hint) if m not in (type(None), Unset)]
    return [hint]


def _input_classes() -> dict[str, type]:
    """Every attrs class that an operation's parameters name, at any depth."""
    found: dict[str, type] = {}

    def visit(hint: Any) -> None:
        if attrs.has(hint) and isinstance(hint, type):
            if hint.__qualname__ not in found:
                found[f"{hint.__module__}.{hint.__qualname__}"] = hint
                for field_hint in _hints(hint).values():
                    visit(field_hint)
            return
        for arg in typing.get_args(hint):
            visit(arg)

    for op in OPERATIONS.values():
        for hint in _hints(op.body).values():
            visit(hint)
    return found


INPUT_CLASSES: Final = _input_classes()


def _valid(hint: Any) -> Any:
    """A value of the right type (not necessarily one the operation accepts)."""
    hint = _members(hint)[0]
    origin = typing.get_origin(hint)
    if origin is Literal:
        return typing.get_args(hint)[0]
    if origin is not None and issubclass(origin, collections.abc.Iterable):
        return ()
    if attrs.has(hint):
        return _build(hint)
    return {
        str: "x",
        bool: False,
        int: 1,
        float: 1.0,
        dt.datetime: T0,
        dt.timedelta: dt.timedelta(hours=1),
    }[hint]


def _wrong(hint: Any) -> list[Any]:
    """Values of a wrong type for `hint` (a str where a bool is expected, and so on)."""
    members = _members(hint)
    wrong: list[Any] = []
    for member in members:
        origin = typing.get_origin(member)
        if member is bool:
            wrong += ["false", 0]
        elif member is int:
            wrong += ["1", True, 1.5, 2**63]
        elif member is str or origin is Literal:
            wrong += [5, ["x"], b"x"]
        elif member is dt.datetime:
            wrong += ["2031-01-06T10:00:00Z", T0.date()]
        elif member is dt.timedelta:
            wrong += [5, "1 hour"]
        elif origin is not None and issubclass(origin, collections.abc.Iterable):
            wrong += ["abc", 5, [5]]
        elif attrs.has(member):
            wrong += ["x", {"name": "x"}]
    # Only values that no alternative of the union accepts.
    return [
        w
        for w in wrong
        if not any(_plainly_accepts(member, w) for member in members)
        and not (w is None or w is UNSET)
    ]


def _plainly_accepts(member: Any, value: Any) -> bool:
    if member is int:
        return type(value) is int and value < 2**63
    if member is bool:
        return type(value) is bool
    if member is str or typing.get_origin(member) is Literal:
        return type(value) is str
    if member is dt.datetime:
        return isinstance(value, dt.datetime)
    origin = typing.get_origin(member)
    if origin is not None and issubclass(origin, collections.abc.Iterable):
        return isinstance(value, list | tuple) and all(
            _plainly_accepts(typing.get_args(member)[0], v) for v in value
        )
    return False


def _build(cls: type) -> Any:
    fields = attrs.fields_dict(cls)
    hints = _hints(cls)
    return cls(
        **{
            name: _valid(hints[name])
            for name, field in fields.items()
            if field.default is attrs.NOTHING and field.init
        }
    )


def _required(fn: Any) -> dict[str, Any]:
    hints = _hints(fn)
    return {
        name: _valid(hints[name])
        for name, p in inspect.signature(fn).parameters.items()
        if p.default is inspect.Parameter.empty
    }


def _call(op: Operation[Any, Any], conn: Conn, kwargs: dict[str, Any]) -> Any:
    sig = inspect.signature(op.body)
    args = [
        kwargs.pop(name)
        for name, p in sig.parameters.items()
        if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD and name in kwargs
    ]
    return op(conn, *args, **kwargs)


def _row_counts(conn: Conn) -> dict[str, int]:
    tables = conn.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
    ).fetchall()
    return {
        table: conn.execute(
            sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
        ).fetchone()[0]  # type: ignore[index]
        for (table,) in tables
    }


CASES: Final = [
    (name, param, wrong)
    for name, op in OPERATIONS.items()
    for param, hint in _hints(op.body).items()
    for wrong in _wrong(hint)
]
FIELD_CASES: Final = [
    (name, field, wrong)
    for name, cls in INPUT_CLASSES.items()
    for field, hint in _hints(cls).items()
    for wrong in _wrong(hint)
]


def test_the_enumeration_finds_the_operations() -> None:
    """Guards the introspection itself: it sees the operations and input classes."""
    assert len(OPERATIONS) > 50
    assert {"pages.create", "pages.set_visibility", "views.page_view"} <= set(OPERATIONS)
    assert {c.__name__ for c in INPUT_CLASSES.values()} >= {
        "NewComponent",
        "CreateMaintenanceWindowInput",
        "ImportRow",
    }
    assert len(CASES) > 200


def test_every_operation_refuses_wrong_types(conn: Conn) -> None:
    """A wrong type for any parameter of any operation gives something else than InvalidInput."""
    before = _row_counts(conn)
    failures = []
    for name, param, wrong in CASES:
        op = OPERATIONS[name]
        kwargs = _required(op.body)
        kwargs[param] = wrong
        try:
            _call(op, conn, kwargs)
        except InvalidInput as exc:
            if param not in str(exc):
                failures.append((name, param, wrong, f"message does not name it: {exc}"))
        except Unauthorized:
            # Documented: a token that is not a string is a missing token.
            if "token" not in param:
                failures.append((name, param, wrong, "Unauthorized"))
        except Exception as exc:
            failures.append((name, param, wrong, f"{type(exc).__name__}: {exc}"))
        else:
            failures.append((name, param, wrong, "accepted"))
        try:
            conn.execute("SELECT 1")  # the caller's transaction is still usable
        except psycopg.Error as exc:
            failures.append((name, param, wrong, f"transaction broken: {exc}"))
            conn.rollback()
    assert failures == []
    assert _row_counts(conn) == before


def test_every_input_class_refuses_wrong_types() -> None:
    """Building an input row (NewComponent, ...) with a wrong-typed field is accepted."""
    failures = []
    for name, field, wrong in FIELD_CASES:
        cls = INPUT_CLASSES[name]
        kwargs = {
            n: _valid(h)
            for n, h in _hints(cls).items()
            if attrs.fields_dict(cls)[n].default is attrs.NOTHING
        }
        kwargs[field] = wrong
        try:
            cls(**kwargs)
        except InvalidInput as exc:
            if field not in str(exc):
                failures.append((name, field, wrong, f"message does not name it: {exc}"))
        except Exception as exc:
            failures.append((name, field, wrong, f"{type(exc).__name__}: {exc}"))
        else:
            failures.append((name, field, wrong, "accepted"))
    assert failures == []


@pytest.fixture
def team_id(conn: Conn) -> str:
    team = teams.create(conn, name="SRE")
    conn.commit()
    return team.id


def test_truthy_string_does_not_make_a_page_public(conn: Conn, team_id: str) -> None:
    """pages.create(is_public="false") and set_visibility(is_public="false") make a public page."""
    with pytest.raises(InvalidInput, match="is_public"):
        pages.create(
            conn,
            team_id=team_id,
            name="P",
            slug="p",
            created_by_id="u",
            is_public="false",  # type: ignore[call-overload]
        )
    conn.rollback()
    page = pages.create(conn, team_id=team_id, name="P", slug="p", created_by_id="u").page
    conn.commit()
    with pytest.raises(InvalidInput, match="is_public"):
        pages.set_visibility(conn, page.id, is_public="false")  # type: ignore[call-overload]
    conn.rollback()
    assert not pages.get(conn, page.id).is_public
    assert views.page_view(conn, "p") is None


def test_the_issue_examples(conn: Conn, team_id: str) -> None:
    """components="abc", maintenance_horizon=5 and display_order=2**40 fail outside InvalidInput."""
    with pytest.raises(InvalidInput, match="components"):
        pages.create(
            conn,
            team_id=team_id,
            name="P",
            slug="p",
            created_by_id="u",
            components="abc",  # type: ignore[arg-type]
        )
    with pytest.raises(InvalidInput, match="maintenance_horizon"):
        views.page_view(conn, "p", maintenance_horizon=5)  # type: ignore[call-overload]
    with pytest.raises(InvalidInput, match="display_order"):
        NewComponent(name="API", display_order=2**40)
    with pytest.raises(InvalidInput, match="display_order"):
        NewComponent(name="API", display_order=-(2**31) - 1)
    assert NewComponent(name="API", display_order=2**31 - 1).display_order == 2**31 - 1
    conn.execute("SELECT 1")


def test_a_wrong_connection_is_invalid_input() -> None:
    """An operation called with something else than a connection raises a bare TypeError."""
    with pytest.raises(InvalidInput, match="psycopg Connection"):
        teams.get("not a connection", "x")  # type: ignore[call-overload]


def test_a_truthy_string_is_no_autocommit_flag_for_a_pool(dsn: str) -> None:
    """make_pool(autocommit="false") (not an operation) made an autocommit pool."""
    from statusdb.errors import InvalidInput
    from statusdb.infra.pool import make_async_pool, make_pool

    with pytest.raises(InvalidInput, match="autocommit"):
        make_pool(dsn, autocommit="false")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="autocommit"):
        make_async_pool(dsn, autocommit="false")  # type: ignore[arg-type]
