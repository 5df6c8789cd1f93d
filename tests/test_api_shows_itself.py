"""help(), pydoc and inspect.signature show every operation as callers call it (issue 25.5).

An operation is an `executor.Operation` object wrapping a generator of steps; before, its
signature was the generator's (no `conn`, returning `Op[...]`), pydoc listed it under DATA,
and partial updates showed the internal `validate.Unset` marker.
"""

from __future__ import annotations

import inspect
import pydoc
import types

import pytest

import statusdb
from statusdb.db.executor import Operation


def _operations() -> list[tuple[types.ModuleType, str, Operation[..., object]]]:
    found = []
    for name in statusdb.__all__:
        module = getattr(statusdb, name)
        if not isinstance(module, types.ModuleType):
            continue
        for attr, value in vars(module).items():
            public = not attr.startswith("_")
            if public and isinstance(value, Operation) and value.__module__ == module.__name__:
                found.append((module, attr, value))
    return found


OPERATIONS = _operations()


def test_there_are_operations_to_check() -> None:
    assert len(OPERATIONS) > 40


@pytest.mark.parametrize(
    ("module", "name", "op"), OPERATIONS, ids=[f"{m.__name__}.{n}" for m, n, _ in OPERATIONS]
)
def test_signature_and_help_show_the_public_call(
    module: types.ModuleType, name: str, op: Operation[..., object]
) -> None:
    signature = inspect.signature(op)
    first = next(iter(signature.parameters.values()))
    assert first.name == "conn"
    assert first.kind is inspect.Parameter.POSITIONAL_ONLY
    assert "Connection" in str(first.annotation)
    text = str(signature)
    assert "Op[" not in text
    assert "Unset" not in text
    assert "validate." not in text
    page = pydoc.plain(pydoc.render_doc(op))
    assert f"{name}(conn" in page
    assert (op.__doc__ or "").strip().splitlines()[0] in page


MODULES = sorted({m.__name__: m for m, _, _ in OPERATIONS}.items())


@pytest.mark.parametrize("module", [m for _, m in MODULES], ids=[n for n, _ in MODULES])
def test_pydoc_lists_operations_as_functions(module: types.ModuleType) -> None:
    page = pydoc.plain(pydoc.render_doc(module))
    assert "\nFUNCTIONS\n" in page
    functions = page.split("\nFUNCTIONS\n", 1)[1].split("\nDATA\n", 1)[0]
    for mod, name, _ in OPERATIONS:
        if mod is module:
            # An alias (`page_view = _page_view`) is listed under its own name too.
            assert f"    {name}(conn" in functions or f"    {name} = " in functions, name
