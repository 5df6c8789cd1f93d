"""No SQL is built from values: statements are fixed text, values travel as parameters.

A static scan, so that a string-built statement is caught in review before any input reaches
it: the package's Python (AST) and the named queries in `sql/`. The scanner itself is tested on
small snippets first, so that a scan finding nothing means something.

Allowed: a statement that is a literal (str or bytes), a name or attribute bound to one (a
named query's `.sql`, a module constant), and psycopg's composition API (`sql.SQL("...")` with
a literal template, `.format(sql.Identifier(...))`), which quotes what it inserts.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from statusdb.db import queries
from statusdb.db.resources import sql_dir

PACKAGE = Path(__file__).resolve().parent.parent / "statusdb"

#: Methods that send a statement: their first argument is the statement.
_SENDERS = frozenset({"execute", "executemany", "copy", "stream"})

#: Upper-case SQL keywords that start or shape a statement. Upper case only: the project writes
#: SQL in upper case, and lower-case words ("from", "update") are everyday English in messages.
_SQL_WORDS = re.compile(
    r"\b(SELECT|INSERT|UPDATE|DELETE|FROM|WHERE|VALUES|CREATE|ALTER|DROP|GRANT|REVOKE|"
    r"TRUNCATE|RETURNING|LISTEN|NOTIFY|SET\s+\w+\s*=|ORDER\s+BY|GROUP\s+BY|JOIN)\b"
)

#: The only `%` forms a named query may hold: a named parameter, or a literal percent sign.
_PERCENT = re.compile(r"%\((?P<name>[A-Za-z_][A-Za-z0-9_]*)\)s|%%")
#: `str.format` / f-string replacement fields (a SQL array literal `'{}'` has no name inside).
_FORMAT_FIELD = re.compile(r"\{[A-Za-z_][A-Za-z0-9_.]*\}")
#: Positional placeholders of other drivers / PREPARE.
_POSITIONAL = re.compile(r"\$\d+\b")


def _is_str_literal(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str | bytes)


def _is_sql_composition(node: ast.AST) -> bool:
    """`sql.SQL("literal")`, possibly `.format(...)`-ed or `.join(...)`-ed: psycopg's safe API."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        if node.func.attr in {"format", "join"}:
            return _is_sql_composition(node.func.value)
        if node.func.attr == "SQL":
            return len(node.args) == 1 and _is_str_literal(node.args[0])
    return False


def _string_built(node: ast.AST) -> str | None:
    """How `node` builds a string from values, if it does."""
    if isinstance(node, ast.JoinedStr):
        return "an f-string"
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod) and _is_str_literal(node.left):
        return "%-formatting"
    if (
        isinstance(node, ast.BinOp)
        and isinstance(node.op, ast.Add)
        and any(_is_str_literal(side) or _string_built(side) for side in (node.left, node.right))
    ):
        return "string concatenation"
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "format"
        and not _is_sql_composition(node)
    ):
        return "str.format"
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        if node.func.attr == "SQL" and not (node.args and _is_str_literal(node.args[0])):
            return "sql.SQL() over a non-literal template"
        if node.func.attr in {"encode", "decode"}:
            return _string_built(node.func.value)
    return None


def violations(source: str, filename: str = "<snippet>") -> list[str]:
    """String-built SQL in one Python source text, as `file:line: what` strings."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr in _SENDERS and node.args:
                how = _string_built(node.args[0])
                if how:
                    found.append(f"{filename}:{node.lineno}: statement for .{func.attr}() is {how}")
            if isinstance(func, ast.Attribute) and func.attr == "SQL" and node.args:
                how = _string_built(node.args[0])
                if how:
                    found.append(f"{filename}:{node.lineno}: sql.SQL() template is {how}")
            if (
                isinstance(func, ast.Attribute)
                and func.attr == "format"
                and _is_str_literal(func.value)
                and _SQL_WORDS.search(str(func.value.value))  # type: ignore[attr-defined]
            ):
                found.append(f"{filename}:{node.lineno}: SQL text filled in with str.format")
        if (
            isinstance(node, ast.BinOp)
            and isinstance(node.op, ast.Mod)
            and _is_str_literal(node.left)
            and _SQL_WORDS.search(str(node.left.value))  # type: ignore[attr-defined]
        ):
            found.append(f"{filename}:{node.lineno}: SQL text filled in with %-formatting")
        if isinstance(node, ast.JoinedStr):
            literal = "".join(
                str(part.value) for part in node.values if isinstance(part, ast.Constant)
            )
            formatted = any(isinstance(p, ast.FormattedValue) for p in node.values)
            if formatted and _SQL_WORDS.search(literal):
                found.append(f"{filename}:{node.lineno}: SQL keywords inside an f-string")
    return found


def sql_file_problems(text: str, filename: str = "<sql>") -> list[str]:
    """Python formatting, or placeholders other than %(name)s, in a named-query file."""
    problems: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        code = line.split("--", 1)[0]  # comments may say anything
        rest = _PERCENT.sub("", code)
        if "%" in rest:
            problems.append(f"{filename}:{number}: '%' that is not a %(name)s parameter or %%")
        if _FORMAT_FIELD.search(code):
            problems.append(f"{filename}:{number}: a {{name}} format field")
        if _POSITIONAL.search(code):
            problems.append(f"{filename}:{number}: a positional $n placeholder")
    return problems


def _python_files() -> Iterator[Path]:
    yield from sorted(PACKAGE.rglob("*.py"))


# --- the scanner catches what it should --------------------------------------------------------


@pytest.mark.parametrize(
    "snippet",
    [
        'conn.execute(f"SELECT * FROM team WHERE id = {team_id}")',
        'cur.execute("SELECT * FROM team WHERE id = %s" % team_id)',
        'cur.execute("SELECT * FROM team WHERE id = {}".format(team_id))',
        'cur.execute("SELECT * FROM team WHERE id = \'" + team_id + "\'")',
        'cur.execute(f"DELETE FROM {table}".encode())',
        "q = f\"UPDATE team SET name = '{name}'\"",
        "q = \"INSERT INTO team (name) VALUES ('%s')\" % name",
        'q = "SELECT name FROM team WHERE id = {}".format(i)',
        'conn.execute(sql.SQL(f"DROP TABLE {name}"))',
        'with cur.copy(f"COPY {table} FROM STDIN") as c: pass',
    ],
)
def test_the_scanner_finds_string_built_sql(snippet: str) -> None:
    assert violations(snippet) != []


@pytest.mark.parametrize(
    "snippet",
    [
        'conn.execute("SELECT 1 FROM team WHERE id = %(id)s", {"id": team_id})',
        "cur.execute(step.query.sql, step.params)",
        "conn.execute(_SAVEPOINT)",
        'conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))',
        'raise InvalidInput(f"name must be at most {n} characters")',
        'message = f"select one of {choices} from the list"',
    ],
)
def test_the_scanner_accepts_parameterized_sql(snippet: str) -> None:
    assert violations(snippet) == []


@pytest.mark.parametrize(
    "line",
    [
        "SELECT id FROM team WHERE name = %s;",
        "SELECT id FROM team WHERE name = '%(name)s' || '%';",
        "SELECT id FROM team WHERE name = {name};",
        "SELECT id FROM team WHERE name = $1;",
    ],
)
def test_the_sql_check_finds_other_placeholders(line: str) -> None:
    assert sql_file_problems(line) != []


def test_the_sql_check_accepts_named_parameters() -> None:
    text = (
        "-- name: x\n-- 100% safe: a comment may say anything, even %s or {name}\n"
        "SELECT id FROM t WHERE a = %(a)s AND b LIKE 'x%%' AND c = '{}' AND d = '{1,2}';\n"
    )
    assert sql_file_problems(text) == []


# --- the project ------------------------------------------------------------------------------


def test_the_package_builds_no_sql_from_values() -> None:
    found = [
        problem
        for path in _python_files()
        for problem in violations(path.read_text(encoding="utf-8"), str(path.relative_to(PACKAGE)))
    ]
    assert found == []


def test_named_queries_use_only_named_parameters() -> None:
    files = sorted(sql_dir().glob("*.sql"))
    assert files, "no named-query files found"
    found = [
        problem
        for path in files
        for problem in sql_file_problems(path.read_text(encoding="utf-8"), path.name)
    ]
    assert found == []
    # And what the loader hands to psycopg (statements only, descriptions stripped).
    for query in queries.all_queries().values():
        assert sql_file_problems(query.text, query.name) == []
