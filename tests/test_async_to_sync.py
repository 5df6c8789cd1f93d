"""tools/async_to_sync.py: the sync twins are generated from the async code, and are current."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

TOOL = Path(__file__).resolve().parent.parent / "tools" / "async_to_sync.py"


@pytest.fixture(scope="module")
def tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("async_to_sync", TOOL)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_generated_sync_code_is_current(tool: ModuleType) -> None:
    assert tool.main(["--check"]) == 0, "run `python tools/async_to_sync.py` (make sync-twins)"


def test_a_stale_or_edited_twin_is_found(tool: ModuleType) -> None:
    path = tool.REPO / "statusdb" / "infra" / "pool.py"  # read, never written here
    source = path.read_text(encoding="utf-8")
    assert tool.generate(source, path) == source
    edited = source.replace('        conn.execute(b"", prepare=False)\n        return\n', "")
    assert edited != source
    assert tool.generate(edited, path) == source  # a hand edit of the sync twin is overwritten
    changed = source.replace('await conn.execute(b"", prepare=False)', 'await conn.execute(b";")')
    assert 'conn.execute(b";")' in tool.generate(changed, path).split(tool.HEADER)[1]


def test_the_transformation(tool: ModuleType) -> None:
    source = '''
async def afetch(aconn: AConn, fn: Callable[[AConn], Awaitable[T]]) -> AsyncIterator[T]:
    """`afetch` for `aconn`: ``async for x in afetch(aconn): await x``."""
    await asyncio.to_thread(start, 1)
    async with aconn.transaction():
        rows = [r async for r in aconn.stream()]
    if True:  # ASYNC
        await aconn.set_autocommit(True)
    else:
        aconn.autocommit = True
    yield await fn(aconn)
'''
    assert tool.to_sync(source).strip() == (
        "def afetch(conn: Conn, fn: Callable[[Conn], T]) -> Iterator[T]:\n"
        '    """`afetch` for `conn`: ``for x in afetch(conn): x``."""\n'
        "    start(1)\n"
        "    with conn.transaction():\n"
        "        rows = [r for r in conn.stream()]\n"
        "    conn.autocommit = True\n"
        "    yield fn(conn)"
    )
