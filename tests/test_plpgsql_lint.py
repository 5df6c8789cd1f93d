"""schema/plpgsql_lint.py, the plpgsql_check pass of `make lint`: how it judges findings against
the allow-list (no database: `make lint` runs the pass itself on a throwaway cluster)."""

from __future__ import annotations

import sys
from pathlib import Path

import attrs
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository's schema/

from schema import plpgsql_lint
from schema.plpgsql_lint import Allowed, Finding

WARNING = Finding(
    function="f(text[])",
    relation="",
    level="warning",
    message="target type is different type than source type",
    detail='cast "text" value to "text[]" type',
    lineno=5,
)


def test_an_explained_finding_passes() -> None:
    allowed = [Allowed(function="f(text[])", level="warning", message=WARNING.message, why="x")]
    assert plpgsql_lint.judge([WARNING], allowed) == []


def test_an_unexplained_finding_fails_and_says_what_to_write() -> None:
    (problem,) = plpgsql_lint.judge([WARNING], [])
    assert "f(text[])" in problem
    assert 'detail = "cast \\"text\\" value to \\"text[]\\" type"' in problem


def test_an_entry_for_another_detail_relation_or_line_number() -> None:
    other_detail = Allowed(
        function="f(text[])", level="warning", message=WARNING.message, why="x", detail="other"
    )
    other_relation = Allowed(
        function="f(text[])", level="warning", message=WARNING.message, why="x", relation="t"
    )
    assert not other_detail.matches(WARNING)
    assert not other_relation.matches(WARNING)
    moved = attrs.evolve(WARNING, lineno=40)  # bodies move: line numbers do not count
    assert Allowed(function="f(text[])", level="warning", message=WARNING.message, why="x").matches(
        moved
    )


def test_an_entry_nothing_needs_fails() -> None:
    stale = Allowed(function="g()", level="warning extra", message="never read", why="x")
    (problem,) = plpgsql_lint.judge([], [stale])
    assert "remove the entry" in problem


def test_every_allow_list_entry_says_why(tmp_path: Path) -> None:
    assert all(entry.why.strip() for entry in plpgsql_lint.load_allowlist())
    bare = tmp_path / "allow.toml"
    bare.write_text('[[allow]]\nfunction = "f()"\nlevel = "warning"\nmessage = "m"\nwhy = " "\n')
    with pytest.raises(ValueError, match="no `why`"):
        plpgsql_lint.load_allowlist(bare)
