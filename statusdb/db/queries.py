"""Named SQL queries, read once from the `.sql` files under `sql/`.

A file holds blocks of the form::

    -- name: page_get_by_slug
    -- Fetch one page by its slug.
    SELECT ...;

The first comment line names the query, the second says what it does; the rest, up to the next
`-- name:` line, is the statement. Values travel as `%(param)s` parameters, never as text.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Final

import attrs

from statusdb.db.resources import sql_dir

_NAME_LINE: Final = re.compile(r"^-- name: ([a-z][a-z0-9_]*)\s*$", re.MULTILINE)


@attrs.frozen
class Query:
    """One named statement."""

    name: str
    description: str
    sql: bytes
    source: str

    @property
    def text(self) -> str:
        return self.sql.decode()


def parse(source: str, text: str) -> dict[str, Query]:
    """Split a file's text into its named queries."""
    queries: dict[str, Query] = {}
    matches = list(_NAME_LINE.finditer(text))
    if not matches and text.strip():
        raise ValueError(f"{source}: no '-- name:' block found")
    for match, following in zip(matches, [*matches[1:], None], strict=True):
        name = match.group(1)
        body = text[match.end() : following.start() if following else len(text)].strip("\n")
        first, _, statement = body.partition("\n")
        if not first.startswith("-- ") or not first[3:].strip():
            raise ValueError(f"{source}: query {name} needs a one-line '-- description'")
        statement = statement.strip()
        if not statement:
            raise ValueError(f"{source}: query {name} has no statement")
        if name in queries:
            raise ValueError(f"{source}: query {name} is defined twice")
        queries[name] = Query(name, first[3:].strip(), statement.encode(), source)
    return queries


def load(directory: Path) -> dict[str, Query]:
    """Every named query of every `.sql` file in `directory`."""
    queries: dict[str, Query] = {}
    for path in sorted(directory.glob("*.sql")):
        for name, query in parse(path.name, path.read_text(encoding="utf-8")).items():
            if name in queries:
                raise ValueError(
                    f"query {name} is defined in {queries[name].source} and {path.name}"
                )
            queries[name] = query
    return queries


@functools.cache
def all_queries() -> dict[str, Query]:
    """The project's queries, loaded once per process."""
    return load(sql_dir())


def get(name: str) -> Query:
    """One query by name."""
    try:
        return all_queries()[name]
    except KeyError:
        raise KeyError(f"no SQL query named {name!r} under {sql_dir()}") from None
