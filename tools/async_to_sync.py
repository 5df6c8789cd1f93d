#!/usr/bin/env python3
"""Write the sync twins of statusdb's async code: one source for sync and async callers.

Where an edge needs both a sync and an async function (feed's listeners, pool's factories,
routing's routers and commits), only the async one is written by hand, between two marker
comments; this tool writes its sync twin right below, in the same file:

    # async-to-sync: begin
    async def alisten(aconn: psycopg.AsyncConnection[Any]) -> AsyncIterator[Event]: ...
    # async-to-sync: end
    # async-to-sync: generated from the async code above by tools/async_to_sync.py, do not edit
    def listen(conn: psycopg.Connection[Any]) -> Iterator[Event]: ...
    # async-to-sync: end of generated code

As psycopg's own tools/async_to_sync.py does for its package, the async code is parsed (ast) and
transformed: `async def` / `async with` / `async for` lose their `async`, `await x` becomes `x`,
`asyncio.to_thread(f, *args)` becomes `f(*args)`, `asyncio.sleep` becomes `time.sleep`,
`Awaitable[T]` and `Coroutine[Any, Any, T]` become `T`, and the names of `RENAMES` are renamed
(in code and in docstrings, where `await ` and `async ` before `with`/`for`/`def` are dropped
and `DOC_PHRASES` replaced). A region may also be a class's methods. Where the two must differ,
write

    if True:  # ASYNC
        ...  # the async code
    else:
        ...  # the sync code

and the sync twin gets the `else` branch. Comments of the async code are not copied. The output
is laid out by `ruff format`.

    python tools/async_to_sync.py          # rewrite the generated parts
    python tools/async_to_sync.py --check  # exit 1 if one is stale (`make lint` runs this)
"""

from __future__ import annotations

import argparse
import ast
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Final, cast

REPO: Final = Path(__file__).resolve().parent.parent

#: The files holding async sources (relative to the repository).
FILES: Final = (
    "statusdb/db/executor.py",
    "statusdb/db/libpq.py",
    "statusdb/db/streams.py",
    "statusdb/feed.py",
    "statusdb/infra/pool.py",
    "statusdb/infra/routing.py",
    "statusdb/views.py",
    "statusdb/workers/outbox.py",
)

#: Async name -> sync name, for names, attributes, arguments, definitions and docstrings.
RENAMES: Final = {
    "AConn": "Conn",
    "AsyncConnection": "Connection",
    "AsyncConnectionPool": "ConnectionPool",
    "AsyncIterator": "Iterator",
    "AsyncRouter": "Router",
    "StatusdbAsyncPool": "StatusdbPool",
    "AsyncFollower": "Follower",
    "__aenter__": "__enter__",
    "__aexit__": "__exit__",
    "_acheck": "_check",
    "_aread_only": "_read_only",
    "_arun": "_run",
    "acommit": "commit",
    "aconn": "conn",
    "alisten": "listen",
    "alisten_pages": "listen_pages",
    "arequire_direct": "require_direct",
    "astart_listening": "start_listening",
    "asynccontextmanager": "contextmanager",
    "make_async_pool": "make_pool",
    # statusdb.db.executor
    "_atomic_async": "_atomic_sync",
    "_call_async": "_call_sync",
    "_drive_async": "_drive_sync",
    "_run_step_async": "_run_step_sync",
    "run_async": "run_sync",
    # statusdb.db.libpq
    "row_async": "row_sync",
    # statusdb.db.streams
    "batches_async": "batches_sync",
    # statusdb.workers.outbox
    "_batches_async": "_batches_sync",
    "_give_back_all_async": "_give_back_all_sync",
    "_run_async": "_run_sync",
    # statusdb.views
    "_AsyncReader": "_SyncReader",
    "_read_async": "_read_sync",
    "_view_async": "_view_sync",
    "_lean_async": "_lean_sync",
}
#: Phrases of docstrings said otherwise in the sync twin.
DOC_PHRASES: Final = {"an async connection": "a sync connection", "`aclose()`": "`close()`"}

BEGIN: Final = "# async-to-sync: begin"
END: Final = "# async-to-sync: end"
HEADER: Final = (
    "# async-to-sync: generated from the async code above by tools/async_to_sync.py, do not edit"
)
GENERATED_END: Final = "# async-to-sync: end of generated code"

_DOC_WORDS: Final = re.compile(r"\b(" + "|".join(map(re.escape, RENAMES)) + r")\b")


def sync_docstring(text: str) -> str:
    for phrase, sync in DOC_PHRASES.items():
        text = text.replace(phrase, sync)
    text = re.sub(r"\bawait ", "", text)
    text = re.sub(r"\basync (with|for|def)\b", r"\1", text)
    return _DOC_WORDS.sub(lambda m: RENAMES[m[1]], text)


class _ToSync(ast.NodeTransformer):
    def __init__(self, lines: list[str]) -> None:
        self._lines = lines

    # -- async syntax --------------------------------------------------------------------------

    def _body(self, node: ast.AST) -> None:
        body = getattr(node, "body", None)
        if (
            body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            body[0].value.value = sync_docstring(body[0].value.value)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> ast.AST:
        new = ast.FunctionDef(**{f: getattr(node, f) for f in node._fields})
        ast.copy_location(new, node)
        return self.visit_FunctionDef(new)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        node.name = RENAMES.get(node.name, node.name)
        self._body(node)
        self.generic_visit(node)
        return node

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.AST:
        node.name = RENAMES.get(node.name, node.name)
        self._body(node)
        self.generic_visit(node)
        return node

    def visit_AsyncWith(self, node: ast.AsyncWith) -> ast.AST:
        new = ast.With(items=node.items, body=node.body, type_comment=node.type_comment)
        self.generic_visit(new)
        return ast.copy_location(new, node)

    def visit_AsyncFor(self, node: ast.AsyncFor) -> ast.AST:
        new = ast.For(
            target=node.target,
            iter=node.iter,
            body=node.body,
            orelse=node.orelse,
            type_comment=node.type_comment,
        )
        self.generic_visit(new)
        return ast.copy_location(new, node)

    def visit_comprehension(self, node: ast.comprehension) -> ast.AST:
        node.is_async = 0
        self.generic_visit(node)
        return node

    def visit_Await(self, node: ast.Await) -> ast.AST:
        return cast(ast.AST, self.visit(node.value))

    def visit_If(self, node: ast.If) -> ast.AST | list[ast.stmt]:
        if (
            isinstance(node.test, ast.Constant)
            and node.test.value is True
            and self._lines[node.lineno - 1].rstrip().endswith("# ASYNC")
        ):
            sync: list[ast.stmt] = []
            for stmt in node.orelse:
                result = self.visit(stmt)
                sync.extend(result if isinstance(result, list) else [result])
            return sync
        self.generic_visit(node)
        return node

    # -- calls and types -----------------------------------------------------------------------

    def visit_Call(self, node: ast.Call) -> ast.AST:
        func = node.func
        if (
            isinstance(func, ast.Attribute)
            and func.attr == "to_thread"
            and isinstance(func.value, ast.Name)
            and func.value.id == "asyncio"
        ):
            call = ast.Call(func=node.args[0], args=node.args[1:], keywords=node.keywords)
            return cast(ast.AST, self.visit(ast.copy_location(call, node)))
        if (
            isinstance(func, ast.Attribute)
            and func.attr == "sleep"
            and isinstance(func.value, ast.Name)
            and func.value.id == "asyncio"
        ):
            func.value.id = "time"
        self.generic_visit(node)
        return node

    def visit_Subscript(self, node: ast.Subscript) -> ast.AST:
        value = node.value
        name = value.id if isinstance(value, ast.Name) else getattr(value, "attr", None)
        if name == "Awaitable":
            return cast(ast.AST, self.visit(node.slice))
        if name == "Coroutine" and isinstance(node.slice, ast.Tuple):
            return cast(ast.AST, self.visit(node.slice.elts[-1]))
        self.generic_visit(node)
        return node

    # -- names ---------------------------------------------------------------------------------

    def visit_Name(self, node: ast.Name) -> ast.AST:
        node.id = RENAMES.get(node.id, node.id)
        return node

    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
        node.attr = RENAMES.get(node.attr, node.attr)
        self.generic_visit(node)
        return node

    def visit_arg(self, node: ast.arg) -> ast.AST:
        node.arg = RENAMES.get(node.arg, node.arg)
        self.generic_visit(node)
        return node

    def visit_keyword(self, node: ast.keyword) -> ast.AST:
        if node.arg is not None:
            node.arg = RENAMES.get(node.arg, node.arg)
        self.generic_visit(node)
        return node


def to_sync(source: str) -> str:
    """The sync twin of `source` (Python statements), unformatted."""
    tree = ast.parse(source)
    tree = _ToSync(source.splitlines()).visit(tree)
    ast.fix_missing_locations(tree)
    return ast.unparse(tree)


def _ruff_format(text: str, path: Path) -> str:
    ruff = Path(sys.executable).parent / "ruff"
    # The arguments are this tool's own (ruff next to the interpreter), not user input.
    result = subprocess.run(  # noqa: S603
        [str(ruff) if ruff.exists() else "ruff", "format", "--stdin-filename", str(path), "-"],
        input=text,
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    return result.stdout


def generate(text: str, path: Path) -> str:
    """`text` (a file's contents) with each generated part written anew from its source.

    A region may be indented (methods of a class): its code is transformed at the top level and
    indented back as its begin marker is.
    """
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    i = 0
    found = False
    while i < len(lines):
        line = lines[i]
        out.append(line)
        i += 1
        if line.strip() != BEGIN:
            continue
        found = True
        indent = line[: len(line) - len(line.lstrip())]
        start = i
        while i < len(lines) and lines[i].strip() != END:
            i += 1
        if i == len(lines):
            raise SystemExit(f"{path}: {BEGIN!r} without {END!r}")
        source = textwrap.dedent("".join(lines[start:i]))
        out.extend(lines[start : i + 1])
        i += 1
        # Drop the previous generated part, if any.
        if i < len(lines) and lines[i].strip() == HEADER:
            while i < len(lines) and lines[i].strip() != GENERATED_END:
                i += 1
            if i == len(lines):
                raise SystemExit(f"{path}: {HEADER!r} without {GENERATED_END!r}")
            i += 1
        generated = textwrap.indent(to_sync(source), indent)
        out.append(f"{indent}{HEADER}\n\n\n{generated}\n\n\n{indent}{GENERATED_END}\n")
    if not found:
        raise SystemExit(f"{path}: no {BEGIN!r} marker")
    return _ruff_format("".join(out), path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--check", action="store_true", help="fail if a generated part is stale; write nothing"
    )
    parser.add_argument("files", nargs="*", help=f"default: {', '.join(FILES)}")
    args = parser.parse_args(argv)
    stale = []
    for name in args.files or FILES:
        path = REPO / name
        text = path.read_text(encoding="utf-8")
        new = generate(text, path)
        if new == text:
            continue
        stale.append(name)
        if not args.check:
            path.write_text(new, encoding="utf-8")
            print(f"async_to_sync: wrote {name}")
    if args.check and stale:
        print(
            "async_to_sync: stale sync code in " + ", ".join(stale) + ": run "
            "`python tools/async_to_sync.py` and commit the result",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
