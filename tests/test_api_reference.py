"""The public API in one place: `statusdb.__all__` and the API reference (docs/api.md) agree."""

from __future__ import annotations

import re
import types
from pathlib import Path

import statusdb
from statusdb import errors

API_PAGE = Path(__file__).resolve().parent.parent / "docs" / "api.md"
_ROW = re.compile(r"^\| `statusdb\.(\w+)` \|(.*)\|(.*)\|\s*$")
_NAME = re.compile(r"`(\w+)`")


def _table() -> dict[str, set[str]]:
    """Module name -> the names the API reference (docs/api.md) lists for it."""
    text = API_PAGE.read_text(encoding="utf-8")
    section = ("\n" + text).split("\n## API reference\n", 1)[1].split("\n## ", 1)[0]
    listed: dict[str, set[str]] = {}
    for line in section.splitlines():
        match = _ROW.match(line)
        if match:
            assert match[1] not in listed, f"{match[1]} listed twice"
            listed[match[1]] = set(_NAME.findall(match[2] + match[3]))
    return listed


def _public(module: types.ModuleType) -> set[str]:
    """The module's public callables: its `__all__`, else the public names it defines itself."""
    names = getattr(module, "__all__", None)
    if names is None:
        names = [
            name
            for name, value in vars(module).items()
            if not name.startswith("_") and getattr(value, "__module__", None) == module.__name__
        ]
    return {name for name in names if callable(getattr(module, name))}


def _modules() -> dict[str, types.ModuleType]:
    return {
        name: value
        for name in statusdb.__all__
        if isinstance(value := getattr(statusdb, name), types.ModuleType)
    }


def test_every_public_module_is_in_the_table_and_nothing_else() -> None:
    assert set(_table()) == set(_modules())


def test_the_table_lists_each_module_s_public_callables() -> None:
    table = _table()
    for name, module in _modules().items():
        # The table's prose may name other things in backticks (an alias's target): those
        # must exist in the module too.
        assert table[name] >= _public(module), f"statusdb.{name}: add to the table in docs/api.md"
        assert table[name] <= _public(module), f"statusdb.{name}: docs/api.md lists missing names"


def test_the_package_exports_the_error_classes() -> None:
    classes = {
        name
        for name, value in vars(errors).items()
        if isinstance(value, type) and issubclass(value, errors.StatusdbError)
    }
    exported = {
        name
        for name in statusdb.__all__
        if not isinstance(getattr(statusdb, name), types.ModuleType) and name != "__version__"
    }
    assert exported == classes
    assert all(getattr(statusdb, name) is getattr(errors, name) for name in classes)
