"""`make plpgsql-check`: plpgsql_check over every PL/pgSQL function of statusdb.

Starts a throwaway PostgreSQL cluster (like `make schema`), applies the migrations, creates the
plpgsql_check extension (Debian: `postgresql-15-plpgsql-check`; `.ci/run` installs it) and runs
`plpgsql_check_function` on every PL/pgSQL function statusdb owns, each trigger function with
every relation whose triggers call it (and their transition tables), with every class of
warning on (other, extra, performance, security).

Fails on any finding that schema/plpgsql_check_allowlist.toml does not list with its reason,
and on an allow-list entry that no finding needs any more (so the list only holds what is still
true). Without the extension installed it says so and exits 0 (`--require` makes that fail).

Run as `python -m schema.plpgsql_lint` from the repository root, or with `--dsn DSN` on a
migrated database where the extension can be created (it is created if missing).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import psycopg
from psycopg.rows import dict_row

from schema import generate
from statusdb.db import queries

REPO = Path(__file__).resolve().parent.parent
ALLOWLIST = REPO / "schema" / "plpgsql_check_allowlist.toml"
_QUERIES = queries.parse(
    "schema/plpgsql_check.sql", (REPO / "schema" / "plpgsql_check.sql").read_text()
)


@attrs.frozen
class Finding:
    """One plpgsql_check finding, as the allow-list names it (no line number: bodies move)."""

    function: str
    relation: str
    level: str
    message: str
    detail: str = ""
    hint: str = attrs.field(default="", eq=False)
    lineno: int | None = attrs.field(default=None, eq=False)
    statement: str = attrs.field(default="", eq=False)

    def describe(self) -> str:
        where = f" on {self.relation}" if self.relation else ""
        line = f" line {self.lineno}" if self.lineno is not None else ""
        text = f"{self.level}: {self.function}{where}{line} ({self.statement}): {self.message}"
        if self.detail:
            text += f"\n    detail: {self.detail}"
        if self.hint:
            text += f"\n    hint: {self.hint}"
        return text

    def allow_entry(self) -> str:
        """A TOML entry that would allow this finding (its `why` still to be written)."""
        lines = ["[[allow]]", f"function = {_toml(self.function)}"]
        if self.relation:
            lines.append(f"relation = {_toml(self.relation)}")
        lines += [f"level = {_toml(self.level)}", f"message = {_toml(self.message)}"]
        if self.detail:
            lines.append(f"detail = {_toml(self.detail)}")
        lines.append('why = ""')
        return "\n".join(lines)


def _toml(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@attrs.frozen
class Allowed:
    """An allow-list entry: a finding that is known and explained."""

    function: str
    level: str
    message: str
    why: str
    relation: str | None = None
    detail: str | None = None

    def matches(self, finding: Finding) -> bool:
        return (
            (self.function, self.level, self.message)
            == (finding.function, finding.level, finding.message)
            and self.relation in (None, finding.relation)
            and self.detail in (None, finding.detail)
        )


def load_allowlist(path: Path = ALLOWLIST) -> list[Allowed]:
    """The entries of the allow-list; each must say why it is allowed."""
    data = tomllib.loads(path.read_text()) if path.exists() else {}
    entries = []
    for number, entry in enumerate(data.get("allow", []), start=1):
        allowed = Allowed(**entry)
        if not allowed.why.strip():
            raise ValueError(f"{path.name}: entry {number} ({allowed.function}) has no `why`")
        entries.append(allowed)
    return entries


@attrs.frozen
class Report:
    """What a pass found: the findings (deduplicated), the trigger functions no trigger calls,
    how many functions were checked and in how many checks (function, relation)."""

    found: list[Finding]
    unchecked: list[str]
    functions: int
    checks: int


def findings(conn: psycopg.Connection[Any]) -> Report:
    """plpgsql_check over every PL/pgSQL function of the database on `conn`."""
    found: dict[Finding, None] = {}
    unchecked: list[str] = []
    with conn.cursor(row_factory=dict_row) as cursor:
        targets = cursor.execute(_QUERIES["plpgsql_check_targets"].sql).fetchall()
        checks = 0
        for target in targets:
            if not target["checkable"]:
                unchecked.append(target["signature"])
                continue
            checks += 1
            params = {k: target[k] for k in ("function_oid", "relation_oid", "old_table")}
            params["new_table"] = target["new_table"]
            for row in cursor.execute(_QUERIES["plpgsql_check_function"].sql, params):
                finding = Finding(
                    function=target["signature"],
                    relation=target["relation"],
                    level=row["level"],
                    message=row["message"],
                    detail=row["detail"] or "",
                    hint=row["hint"] or "",
                    lineno=row["lineno"],
                    statement=row["statement"] or "",
                )
                found.setdefault(finding, None)
    functions = len({target["signature"] for target in targets})
    return Report(list(found), unchecked, functions, checks)


def judge(found: Sequence[Finding], allowed: Sequence[Allowed]) -> list[str]:
    """The problems: findings nobody allowed, and allow-list entries nothing needs."""
    problems = [
        f"{finding.describe()}\n  Fix it, or allow it with its reason in "
        f"{ALLOWLIST.relative_to(REPO)}:\n" + _indent(finding.allow_entry())
        for finding in found
        if not any(entry.matches(finding) for entry in allowed)
    ]
    problems += [
        f"{ALLOWLIST.relative_to(REPO)}: nothing reports {entry.level} {entry.message!r} in "
        f"{entry.function}{' on ' + entry.relation if entry.relation else ''} any more: "
        "remove the entry"
        for entry in allowed
        if not any(entry.matches(finding) for finding in found)
    ]
    return problems


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m schema.plpgsql_lint", description=__doc__)
    parser.add_argument("--dsn", help="a migrated database to check (default: a throwaway one)")
    parser.add_argument(
        "--require", action="store_true", help="fail when plpgsql_check is not installed"
    )
    args = parser.parse_args(argv)
    allowed = load_allowlist()
    with contextlib.ExitStack() as stack:
        dsn = args.dsn or stack.enter_context(generate.throwaway_database())
        with psycopg.connect(dsn, autocommit=True) as conn:
            available = conn.execute(_QUERIES["plpgsql_check_available"].sql).fetchone()
            if not (available and available[0]):
                print(
                    "plpgsql-check: SKIPPED: the plpgsql_check extension is not installed "
                    "(Debian: apt-get install postgresql-15-plpgsql-check; .ci/run installs it)",
                    file=sys.stderr,
                )
                return 1 if args.require else 0
            conn.execute("CREATE EXTENSION IF NOT EXISTS plpgsql_check")
            report = findings(conn)
    found = report.found
    problems = judge(found, allowed)
    allowed_count = sum(1 for f in found if any(entry.matches(f) for entry in allowed))
    problems += [
        f"{signature}: a trigger function no trigger calls (plpgsql_check needs a relation): "
        "drop it, or give it its trigger"
        for signature in report.unchecked
    ]
    for problem in problems:
        print(problem, file=sys.stderr)
    print(
        f"plpgsql-check: {report.functions} PL/pgSQL functions in {report.checks} checks; "
        f"{len(found)} "
        f"findings, {allowed_count} allowed by {ALLOWLIST.relative_to(REPO)}; "
        f"{len(problems)} problems",
        file=sys.stderr if problems else sys.stdout,
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
