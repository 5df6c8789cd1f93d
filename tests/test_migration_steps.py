"""Migrations one step at a time: each rollback restores exactly the schema before it, and the
dependency graph is the one migrations/README.md documents.

A full rollback compared by object names (tests/test_cli.py) misses a rollback that leaves a
column, a grant, a comment or an old function body behind. Here, for each migration N in order,
the normalised `pg_dump --schema-only` (schema/generate.py) after applying N and rolling it back
must equal the dump at N-1. (Applying N again then continues; the full forward-back-forward
cycle is tests/test_cli.py's.)
"""

from __future__ import annotations

import difflib
import re
import shutil
import sys
from pathlib import Path

import pytest
from psycopg.conninfo import make_conninfo
from yoyo.migrations import topological_sort

from statusdb.db.resources import migrations_dir
from statusdb.infra import migrations

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository's schema/

from schema import generate

pytestmark = pytest.mark.slow

_DEPENDS = re.compile(r"^-- depends:(.*)$", re.MULTILINE)
_README_ROW = re.compile(r"^\| (\d{4}_\w+) \| (.*) \|$", re.MULTILINE)


def _forward_files() -> list[Path]:
    return sorted(p for p in migrations_dir().glob("*.sql") if not p.name.endswith(".rollback.sql"))


def _declared_depends() -> dict[str, list[str]]:
    graph: dict[str, list[str]] = {}
    for path in _forward_files():
        found = _DEPENDS.search(path.read_text())
        graph[path.stem] = found.group(1).split() if found else []
    return graph


def _documented_depends() -> dict[str, list[str]]:
    readme = (Path(__file__).resolve().parent.parent / "migrations" / "README.md").read_text()
    return {
        name: [] if depends == "(none)" else depends.replace(",", " ").split()
        for name, depends in _README_ROW.findall(readme)
    }


def _diff(expected: str, actual: str) -> str:
    lines = difflib.unified_diff(
        expected.splitlines(), actual.splitlines(), "expected", "actual", lineterm="", n=2
    )
    return "\n".join(list(lines)[:60])


def test_dependency_graph_is_the_documented_one() -> None:
    assert _declared_depends() == _documented_depends(), (
        "update the table in migrations/README.md (and CHANGELOG.md) with the new migration"
    )


def test_yoyo_applies_in_numeric_order() -> None:
    found = migrations._migrations(migrations_dir())  # loaded as `migrations.apply` loads them
    ordered = [m.id for m in topological_sort(found)]
    assert ordered == [p.stem for p in _forward_files()]
    assert not any(p.name.startswith("0007_") for p in migrations_dir().iterdir())


def test_from_0006_on_each_migration_depends_on_the_one_before() -> None:
    graph = _declared_depends()
    names = list(graph)
    start = names.index("0006_notification_outbox")
    for previous, name in zip(names[start:], names[start + 1 :], strict=False):
        assert graph[name] == [previous], f"{name} must depend on {previous} (the latest)"


STEP_PARTS = 4
"""The migrations are checked in this many consecutive parts, each a test of its own on a
database of its own, so that xdist runs them side by side (one test of all of them was the
suite's longest, ~30 s on one worker). A part starts from the schema of the migrations before
it, applied at once."""


@pytest.mark.parametrize("part", range(STEP_PARTS), ids=lambda p: f"part{p + 1}of{STEP_PARTS}")
def test_each_migration_rolls_back_to_the_schema_before_it(
    part: int, empty_dsn: str, tmp_path: Path
) -> None:
    # Future-proof: rollbacks that drop tables holding data may ask for this setting; these
    # databases are empty, so it changes nothing today.
    dsn = make_conninfo(empty_dsn, options="-c statusdb.allow_data_loss=on")
    steps = tmp_path / "migrations"
    steps.mkdir()
    files = _forward_files()
    first, end = part * len(files) // STEP_PARTS, (part + 1) * len(files) // STEP_PARTS

    def copy(path: Path) -> None:
        shutil.copy(path, steps / path.name)
        shutil.copy(
            path.with_name(f"{path.stem}.rollback.sql"), steps / f"{path.stem}.rollback.sql"
        )

    if first:  # the schema the part starts from
        for path in files[:first]:
            copy(path)
        assert migrations.apply(dsn, directory=steps) == [p.stem for p in files[:first]]
    before = generate.dump_schema(dsn)
    problems: list[str] = []
    for path in files[first:end]:
        name = path.stem
        copy(path)
        assert migrations.apply(dsn, directory=steps) == [name]
        applied = generate.dump_schema(dsn)
        assert migrations.rollback(dsn, 1, directory=steps) == [name]
        rolled_back = generate.dump_schema(dsn)
        if rolled_back != before:
            problems.append(
                f"{name}: rolling back does not restore the schema before it:\n"
                + _diff(before, rolled_back)
            )
        assert migrations.apply(dsn, directory=steps) == [name]  # on to the next one
        before = applied
    assert problems == [], "\n\n".join(problems)


def test_the_parts_cover_every_migration_once() -> None:
    files = _forward_files()
    covered = [
        path
        for part in range(STEP_PARTS)
        for path in files[part * len(files) // STEP_PARTS : (part + 1) * len(files) // STEP_PARTS]
    ]
    assert covered == files


def test_every_migration_has_a_changelog_line() -> None:
    changelog = (Path(__file__).resolve().parent.parent / "CHANGELOG.md").read_text()
    missing = [p.stem for p in _forward_files() if f"- **{p.stem}**: " not in changelog]
    assert missing == [], f"add a line to CHANGELOG.md for {missing} (tables and functions)"
