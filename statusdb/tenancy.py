"""Row-level security per team: scope a connection to one team.

Migration 0008 puts a policy on every table: a session that has set `statusdb.team_id` sees and
changes only that team's rows (the team, its incidents, its pages and everything on them:
components, subscribers, maintenance windows, status incidents, status changes). Rows of other
teams are invisible: reads skip them, updates and deletes do not reach them (an operation on one
of them raises NotFound, as for a row that does not exist), and writing a row for another team
is refused with a StatusdbError. A session that has not set it sees everything, so scoping is
opt-in.

The policies bind every role except the tables' owner (and superusers): connect as a member of
`statusdb_app` for them to apply. Statuses are still derived across teams (a component follows
its own team's incidents, whoever owns its page): the derivation runs as the owner. Under a scope
nothing of another team's incidents is visible (migration 0012): components may be created or
updated only to follow the scoped team or no team (another `team_id` is refused by the policy:
Unauthorized), components that follow another team are invisible, and so are status changes of
invisible components or caused by incidents the scope cannot see.

Scope per transaction (`local=True`, the default) wherever connections are shared: a pool, or
PgBouncer in transaction mode. The setting then ends with the transaction, committed or rolled
back, so it never reaches the connection's next user:

    with pool.connection() as conn:          # one transaction
        tenancy.set_team(conn, team_id)
        pages.list_for_team(conn, team_id)

`local=False` scopes the whole session (a connection dedicated to one team). Like any SET it is
part of the current transaction: a rollback of that transaction undoes it, so set it on an
autocommit connection or commit right after. The setting is only a filter chosen by the client,
not an authentication: code that can run SQL on the connection can change it.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, Final, overload

import psycopg
from psycopg.rows import tuple_row

from statusdb.db.executor import Op, Operation, one, operation
from statusdb.domain import validate

#: The session setting the policies read ('' or unset: not scoped).
SETTING: Final = "statusdb.team_id"

__all__ = ["SETTING", "clear_team", "current_team", "set_team"]


@operation(requires_transaction=True)
def _set_team(team_id: str) -> Op[None]:
    """Scope the current transaction (the setting ends with it)."""
    params = {"team_id": team_id, "is_local": True}
    yield from one("tenancy_set_team", params, tuple_row, not_found="setting was not changed")


@operation(retry=True)
def _set_session_team(team_id: str) -> Op[None]:
    """Scope the session (part of the current transaction, like any SET)."""
    params = {"team_id": team_id, "is_local": False}
    yield from one("tenancy_set_team", params, tuple_row, not_found="setting was not changed")


@overload
def set_team(
    conn: psycopg.AsyncConnection[Any], team_id: str, *, local: bool = True
) -> Coroutine[Any, Any, None]: ...


@overload
def set_team(conn: psycopg.Connection[Any], team_id: str, *, local: bool = True) -> None: ...


def set_team(
    conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any],
    team_id: str,
    *,
    local: bool = True,
) -> Coroutine[Any, Any, None] | None:
    """Scope `conn` to team `team_id`: until the transaction ends (`local`), or for the session.

    On an autocommit connection outside `conn.transaction()` a transaction-scoped setting would
    end with its own statement, leaving the connection unscoped; that is refused (InvalidInput,
    the operation's `requires_transaction`) rather than silently ignored: open a transaction,
    or scope the session with local=False. The team need not exist: a scope to an unknown team
    sees nothing.
    """
    scope: Operation[[str], None] = (
        _set_team if validate.flag("local", local) else _set_session_team
    )
    team = validate.identifier("team_id", team_id)
    if isinstance(conn, psycopg.AsyncConnection):
        return scope(conn, team)
    return scope(conn, team)  # or NotAConnection, for anything else


@operation(retry=True)
def clear_team() -> Op[None]:
    """Unscope the session: it sees every team again (from now on, this transaction included).

    A setting made with `local=True` ends with its transaction anyway; this also clears one
    made for the session.
    """
    yield from _set_session_team.body("")


@operation(retry=True)
def current_team() -> Op[str | None]:
    """The team the connection is scoped to now, or None."""
    row = yield from one("tenancy_current_team", {}, tuple_row, not_found="no setting")
    return None if row[0] is None else str(row[0])
