"""The package's layers (CONTRIBUTING.md, "Layout"): no module imports from a layer above its own.

Every module of `statusdb/` is parsed (not imported) and each of its imports, at the top or
inside a function, is resolved to the layer of the module it names. Needs no database.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import statusdb

PACKAGE = Path(__file__).resolve().parent.parent / "statusdb"

#: What each layer may import from (besides itself and the standard library).
ALLOWED: dict[str, frozenset[str]] = {
    "errors": frozenset(),
    "domain": frozenset({"errors"}),
    "db": frozenset({"errors", "domain"}),
    "ops": frozenset({"errors", "domain", "db"}),
    # Public renderings of the operations' data (Atom, RSS, iCalendar, ...): issue 24.
    "formats": frozenset({"errors", "domain", "db", "ops"}),
    "workers": frozenset({"errors", "domain", "db", "ops"}),
    "infra": frozenset({"errors", "domain", "db"}),
    "http": frozenset({"errors", "domain", "db", "ops", "formats", "workers", "infra", "facade"}),
    "tooling": frozenset(
        {"errors", "domain", "db", "ops", "formats", "workers", "infra", "http", "facade"}
    ),
}
#: Third-party imports refused in a layer: the domain is pure logic.
FORBIDDEN_DISTRIBUTIONS: dict[str, frozenset[str]] = {
    "domain": frozenset({"psycopg", "psycopg_pool", "yoyo"}),
}
_SUBPACKAGES = {"domain", "db", "formats", "workers", "infra", "tooling", "http"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    relative = Path(*name.split("."))
    return (PACKAGE.parent / relative).with_suffix(".py").is_file() or (
        PACKAGE.parent / relative / "__init__.py"
    ).is_file()


def layer(name: str) -> str:
    """The layer of module `name` (`statusdb...`); "facade" for the package itself."""
    parts = name.split(".")
    assert parts[0] == "statusdb", name
    if len(parts) == 1:
        return "facade"
    if parts[1] in _SUBPACKAGES:
        return parts[1]
    if parts[1] == "errors":
        return "errors"
    return "ops"


def _imports(path: Path, name: str) -> list[tuple[int, str]]:
    """(line, module) for every module that `path` (module `name`) imports."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            for alias in node.names:
                candidate = f"{module}.{alias.name}"
                # `from statusdb.domain import validate` imports a module; `from statusdb import
                # NotFound` imports a name of the package (the facade).
                is_sub = module.startswith("statusdb") and _is_module(candidate)
                found.append((node.lineno, candidate if is_sub else module))
    return found


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_layer() -> None:
    names = {_module_name(path) for path in _modules()}
    top = {name.split(".")[1] for name in names if name.count(".") >= 1}
    packages = {t for t in top if (PACKAGE / t).is_dir()}
    assert packages == _SUBPACKAGES, "a new sub-package needs a layer in tests/test_layers.py"


def _violations(path: Path, name: str) -> list[str]:
    own = layer(name)
    wrong = []
    for line, module in _imports(path, name):
        root = module.split(".")[0]
        if root in FORBIDDEN_DISTRIBUTIONS.get(own, frozenset()):
            wrong.append(f"line {line}: {module} (the {own} layer does not use {root})")
        if root != "statusdb":
            continue
        target = layer(module)
        if target != own and target not in ALLOWED[own]:
            wrong.append(f"line {line}: {module} is in the {target} layer")
    return wrong


@pytest.mark.parametrize("path", _modules(), ids=lambda p: _module_name(p))
def test_no_import_goes_up_a_layer(path: Path) -> None:
    name = _module_name(path)
    if name == "statusdb":
        return  # the facade re-exports every layer
    wrong = _violations(path, name)
    assert not wrong, f"{name} ({layer(name)} layer) imports from above:\n" + "\n".join(wrong)


def test_the_layer_test_sees_an_upward_import(tmp_path: Path) -> None:
    """The checker itself: upward imports (at the top, in a function) and psycopg in the domain."""
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import psycopg\n"
        "from statusdb import NotFound, pages\n"
        "from statusdb.domain import validate\n"
        "from statusdb.errors import InvalidInput\n"
        "def later():\n"
        "    from statusdb.workers.outbox import Recipient\n"
        "    from . import tokens\n",
        encoding="utf-8",
    )
    wrong = _violations(probe, "statusdb.domain.probe")
    assert wrong == [
        "line 1: psycopg (the domain layer does not use psycopg)",
        "line 2: statusdb is in the facade layer",
        "line 2: statusdb.pages is in the ops layer",
        "line 6: statusdb.workers.outbox is in the workers layer",
    ]
    assert _violations(probe, "statusdb.tooling.probe") == []


def test_importing_the_package_loads_no_module_until_one_is_used() -> None:
    """`import statusdb` is cheap (each `statusdb` command and script pays it): the public
    modules, psycopg and yoyo load when first used, then stay ordinary attributes."""
    probe = (
        "import sys, statusdb\n"
        "print(sorted(m for m in ('psycopg', 'yoyo', 'statusdb.pages', 'statusdb.errors')"
        " if m in sys.modules))\n"
        "from statusdb import pages, types, InvalidInput\n"
        "import statusdb.domain.types, statusdb.errors\n"
        "assert pages is sys.modules['statusdb.pages'] and types is statusdb.domain.types\n"
        "assert InvalidInput is statusdb.errors.InvalidInput and 'pages' in vars(statusdb)\n"
        "assert set(statusdb.__all__) <= set(dir(statusdb))\n"
        "print(type(statusdb.__version__).__name__)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.split("\n")[:2] == ["[]", "str"]


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        statusdb.nonexistent  # noqa: B018
