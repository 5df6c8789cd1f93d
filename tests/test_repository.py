"""The repository's contract: typed rows, clear errors, caller-owned transactions, sync+async."""

from __future__ import annotations

import datetime as dt
import importlib
import pkgutil
from typing import Any

import psycopg
import pytest
from psycopg.rows import TupleRow

import statusdb
from statusdb import components, incidents, pages, status, teams, tenancy
from statusdb.db import executor
from statusdb.domain import tokens
from statusdb.errors import Conflict, InvalidInput, NotFound, StatusdbError
from statusdb.pages import NewComponent

Conn = psycopg.Connection[TupleRow]
AConn = psycopg.AsyncConnection[Any]


def test_pages_crud_and_typed_rows(conn: Conn) -> None:
    team = teams.create(conn, name="SRE")
    created = pages.create(
        conn,
        team_id=team.id,
        name="Acme",
        slug="acme",
        created_by_id="u1",
        components=[NewComponent(name="API"), NewComponent(name="DB", display_order=-1)],
    )
    assert created.access_token is not None  # private by default
    page = created.page
    assert page.created_at.tzinfo is not None
    assert pages.get(conn, page.id) == page
    assert pages.get_by_slug(conn, "acme") == page
    assert [c.name for c in components.list_for_page(conn, page.id)] == ["DB", "API"]
    renamed = pages.update(conn, page.id, name="Acme Cloud", description=None)
    assert (renamed.name, renamed.slug, renamed.description) == ("Acme Cloud", "acme", None)
    assert pages.list_for_team(conn, team.id) == [renamed]
    pages.delete(conn, page.id)
    with pytest.raises(NotFound, match="no status page"):
        pages.get(conn, page.id)
    assert components.list_for_page(conn, page.id) == []


def test_token_digest_only_and_rotation(conn: Conn) -> None:
    team = teams.create(conn, name="SRE")
    created = pages.create(conn, team_id=team.id, name="P", slug="p", created_by_id="u")
    token = created.access_token
    assert token is not None
    stored = conn.execute("SELECT access_token_hash FROM status_page").fetchone()
    assert stored is not None
    assert bytes(stored[0]) == tokens.page_digest(token)  # the digest of the digest (0014)
    assert token.encode() not in bytes(stored[0])
    new = pages.rotate_access_token(conn, created.page.id)
    assert new != token
    assert pages.check_access_token(conn, "p", new)
    assert not pages.check_access_token(conn, "p", token)
    public, no_token = pages.set_visibility(conn, created.page.id, is_public=True)
    assert public.is_public
    assert no_token is None
    with pytest.raises(NotFound, match="no private status page"):
        pages.rotate_access_token(conn, created.page.id)
    private, fresh = pages.set_visibility(conn, created.page.id, is_public=False)
    assert not private.is_public
    assert fresh is not None
    assert pages.check_access_token(conn, "p", fresh)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"slug": "Not A Slug"}, InvalidInput, "slug 'Not A Slug' is not valid"),
        ({"slug": "double--hyphen"}, InvalidInput, "not valid"),
        ({"name": "a\x00b"}, InvalidInput, "name must not contain a NUL"),
        ({"name": "   "}, InvalidInput, "name must not be blank"),
        ({"name": "x" * 201}, InvalidInput, "at most 200"),
        ({"team_id": "no-such-team"}, NotFound, "no team with that id"),
        (
            {"components": [NewComponent(name="A"), NewComponent(name="A")]},
            InvalidInput,
            "unique",
        ),
    ],
)
def test_page_creation_refusals(
    conn: Conn, kwargs: dict[str, Any], error: type[StatusdbError], message: str
) -> None:
    team = teams.create(conn, name="SRE")
    conn.commit()
    arguments: dict[str, Any] = {
        "team_id": team.id,
        "name": "P",
        "slug": "p",
        "created_by_id": "u",
        **kwargs,
    }
    with pytest.raises(error, match=message):
        pages.create(conn, **arguments)
    conn.rollback()
    assert conn.execute("SELECT count(*) FROM status_page").fetchone() == (0,)


def test_duplicates_are_conflicts_and_leave_nothing_half_written(conn: Conn) -> None:
    team = teams.create(conn, name="SRE")
    page = pages.create(
        conn, team_id=team.id, name="P", slug="p", created_by_id="u", is_public=True
    )
    conn.commit()
    with pytest.raises(Conflict, match="slug already exists"):
        pages.create(
            conn,
            team_id=team.id,
            name="Q",
            slug="p",
            created_by_id="u",
            components=[NewComponent(name="would be orphaned")],
        )
    conn.rollback()
    assert conn.execute("SELECT count(*) FROM status_page_component").fetchone() == (0,)
    components.create(conn, page.page.id, name="API")
    with pytest.raises(Conflict, match="already has a component with that name"):
        components.create(conn, page.page.id, name="API")
    conn.rollback()


def test_team_delete_is_refused_while_it_owns_pages(conn: Conn) -> None:
    team = teams.create(conn, name="SRE")
    pages.create(conn, team_id=team.id, name="P", slug="p", created_by_id="u", is_public=True)
    conn.commit()
    with pytest.raises(Conflict, match="still owns status pages"):
        teams.delete(conn, team.id)
    conn.rollback()
    with pytest.raises(NotFound):
        teams.delete(conn, "missing")


def test_naive_datetimes_and_bad_enums_are_refused() -> None:
    from statusdb.domain import validate

    with pytest.raises(InvalidInput, match="timezone-aware"):
        validate.aware("start_time", dt.datetime(2026, 1, 1))
    with pytest.raises(InvalidInput, match="priority must be one of"):
        validate.one_of("priority", "URGENT", ("CRITICAL", "HIGH"))


def test_incident_refusals(conn: Conn) -> None:
    team = teams.create(conn, name="SRE")
    with pytest.raises(InvalidInput, match="priority must be one of CRITICAL"):
        incidents.create(conn, team.id, title="x", priority="URGENT")  # type: ignore[call-overload]
    with pytest.raises(InvalidInput, match="title must not contain a NUL"):
        incidents.create(conn, team.id, title="\x00", priority="LOW")


def test_operations_never_commit(conn: Conn, dsn: str) -> None:
    """A caller's rollback undoes an operation, single-statement or atomic alike."""
    teams.create(conn, name="SRE")
    conn.rollback()
    with psycopg.connect(dsn) as other:
        assert other.execute("SELECT count(*) FROM team").fetchone() == (0,)


def test_atomic_operation_uses_a_savepoint_inside_the_callers_transaction(conn: Conn) -> None:
    @executor.operation(atomic=True)
    def two_teams_then_fail(name: str) -> executor.Op[None]:
        yield from teams.create.body(name=name)
        yield from teams.create.body(name=name + " bis")
        raise InvalidInput("second thoughts")

    teams.create(conn, name="kept")
    with pytest.raises(InvalidInput):
        two_teams_then_fail(conn, "dropped")
    # The caller's transaction is intact and still holds its own work, nothing of the failed op.
    assert [t.name for t in teams.list_all(conn)] == ["kept"]
    conn.commit()


def test_atomic_operation_on_autocommit_connection_is_all_or_nothing(dsn: str) -> None:
    @executor.operation(atomic=True)
    def team_then_bad_page(name: str) -> executor.Op[None]:
        team = yield from teams.create.body(name=name)
        yield from pages.create.body(
            team_id=team.id, name="P", slug="p", created_by_id="u", is_public=True
        )
        yield from pages.create.body(
            team_id=team.id, name="P", slug="p", created_by_id="u", is_public=True
        )

    with psycopg.connect(dsn, autocommit=True) as auto:
        with pytest.raises(Conflict):
            team_then_bad_page(auto, "gone")
        assert auto.execute("SELECT count(*) FROM team").fetchone() == (0,)


def _operations() -> dict[str, executor.Operation[Any, Any]]:
    """Every operation object of the package, by module.name."""
    found: dict[str, executor.Operation[Any, Any]] = {}
    for info in pkgutil.walk_packages(statusdb.__path__, "statusdb."):
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if isinstance(value, executor.Operation) and value.body.__module__ == info.name:
                found[f"{info.name}.{name}"] = value
    return found


def test_requires_transaction_is_declared_where_state_outlasts_the_call() -> None:
    """The operations whose effect is meant to last until the caller's transaction ends.

    `status.lock_status_inputs` takes row locks for the transaction's later statements, and
    `tenancy.set_team(local=True)` (`_set_team`) a transaction-scoped setting: in a call that
    owns its transaction both would end with the call. Locks that an atomic operation takes
    and uses within its own statements (maintenance.update, subscribers.import_subscribers)
    need no transaction of the caller's. A new such operation joins this list."""
    operations = _operations()
    assert len(operations) > 100
    required = {name for name, op in operations.items() if op.requires_transaction}
    assert required == {"statusdb.status.lock_status_inputs", "statusdb.tenancy._set_team"}

    @executor.operation
    def plain() -> executor.Op[None]:
        yield from ()

    assert plain.requires_transaction is False


def test_requires_transaction_refuses_autocommit_before_any_statement(dsn: str) -> None:
    started: list[str] = []

    @executor.operation(requires_transaction=True, retry=True)
    def hold_a_team(name: str) -> executor.Op[int]:
        started.append(name)
        return (
            yield from executor.execute("tenancy_set_team", {"team_id": name, "is_local": True})
        )

    with psycopg.connect(dsn, autocommit=True) as auto:
        with pytest.raises(InvalidInput, match=r"hold_a_team .*autocommit connection has none"):
            hold_a_team(auto, "refused")
        assert started == []  # refused before the body ran: nothing was sent
        with pytest.raises(InvalidInput, match="autocommit"):
            status.lock_status_inputs(auto, teams=["t"])
        with auto.transaction():
            hold_a_team(auto, "kept")
            assert auto.execute("SELECT current_setting('statusdb.team_id')").fetchone() == (
                "kept",
            )
        assert started == ["kept"]
    with psycopg.connect(dsn) as in_transaction:  # psycopg opens one: allowed
        hold_a_team(in_transaction, "implicit")
        assert started == ["kept", "implicit"]


async def test_requires_transaction_refuses_async_autocommit_when_awaited(dsn: str) -> None:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as auto:
        pending = tenancy.set_team(auto, "t")  # refused when awaited, as its other errors
        with pytest.raises(InvalidInput, match=r"set_team .*autocommit"):
            await pending
        with pytest.raises(InvalidInput, match=r"lock_status_inputs .*autocommit"):
            await status.lock_status_inputs(auto, teams=["t"])
        async with auto.transaction():
            await tenancy.set_team(auto, "t")
            assert await tenancy.current_team(auto) == "t"
        assert await tenancy.current_team(auto) is None


def test_wrong_connection_type_is_a_clear_error() -> None:
    with pytest.raises(TypeError, match="takes a psycopg Connection"):
        teams.get("not a connection", "x")  # type: ignore[call-overload]


async def test_async_callers_share_the_same_operations(aconn: AConn) -> None:
    team = await teams.create(aconn, name="SRE")
    created = await pages.create(
        aconn,
        team_id=team.id,
        name="Acme",
        slug="acme",
        created_by_id="u",
        is_public=True,
        components=[NewComponent(name="API", team_id=team.id)],
    )
    assert (await pages.get_by_slug(aconn, "acme")) == created.page
    with pytest.raises(Conflict):
        await pages.create(
            aconn, team_id=team.id, name="B", slug="acme", created_by_id="u", is_public=True
        )
    await aconn.rollback()
    with pytest.raises(NotFound):
        await components.get(aconn, "missing")


async def test_async_atomic_operation_rolls_back_its_savepoint(aconn: AConn) -> None:
    @executor.operation(atomic=True)
    def create_then_fail() -> executor.Op[None]:
        yield from teams.create.body(name="dropped")
        raise InvalidInput("no")

    await teams.create(aconn, name="kept")
    with pytest.raises(InvalidInput):
        await create_then_fail(aconn)
    assert [t.name for t in await teams.list_all(aconn)] == ["kept"]
