"""Teams: the platform's owners of pages and incidents."""

from __future__ import annotations

import datetime as dt

import attrs
from psycopg.rows import class_row

from statusdb.db.executor import Op, execute, many, one, operation
from statusdb.domain import validate
from statusdb.errors import NotFound


@attrs.frozen
class Team:
    id: str
    name: str
    created_at: dt.datetime
    updated_at: dt.datetime


_row = class_row(Team)


@operation(retry=True)
def create(*, name: str) -> Op[Team]:
    """Create a team."""
    params = {"name": validate.text("name", name, max_length=200)}
    return (yield from one("team_create", params, _row, not_found="team was not created"))


@operation(retry=True)
def get(team_id: str) -> Op[Team]:
    """One team; NotFound if there is none with that id."""
    params = {"id": validate.identifier("team_id", team_id)}
    return (yield from one("team_get", params, _row, not_found=f"no team with id {team_id!r}"))


@operation(retry=True)
def list_all() -> Op[list[Team]]:
    """Every team, by name."""
    return (yield from many("team_list", {}, _row))


@operation(retry=True)
def rename(team_id: str, *, name: str) -> Op[Team]:
    """Rename a team."""
    params = {
        "id": validate.identifier("team_id", team_id),
        "name": validate.text("name", name, max_length=200),
    }
    return (yield from one("team_rename", params, _row, not_found=f"no team with id {team_id!r}"))


@operation(retry=True)
def delete(team_id: str) -> Op[None]:
    """Delete a team; Conflict while it still owns pages or incidents."""
    count = yield from execute("team_delete", {"id": validate.identifier("team_id", team_id)})
    if count == 0:
        raise NotFound(f"no team with id {team_id!r}")
