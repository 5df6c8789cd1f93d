"""`statusdb serve`: the HTTP app (statusdb.http.app) on uvicorn, for the demo and for trying it.

Registered by statusdb.tooling.cli (`add_parser`, then `run` with the DSN it resolved):
`statusdb serve --local` serves the local cluster's database (`statusdb demo` fills it),
`--dsn` / $STATUSDB_DSN another one; `--host` / `--port` where to listen.
"""

from __future__ import annotations

import argparse
from typing import Any

DESCRIPTION = (
    "Serve the public formats of every page over HTTP (needs the http extra: pip install "
    "'statusdb[http]'): /pages/<slug>/page.json and the Statuspage v2 documents under "
    "/pages/<slug>/api/v2/ (summary.json, status.json, ...), with ETag, 304 and Cache-Control. "
    "A private page needs its token in `Authorization: Bearer <token>`. Uses the local cluster "
    "with --local (after `statusdb demo`: /pages/acme-cloud/api/v2/summary.json), else --dsn / "
    "$STATUSDB_DSN. Stops on Ctrl-C."
)


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """The `serve` subcommand and its options."""
    serve = sub.add_parser(
        "serve", parents=[common], help="serve the pages' public formats over HTTP"
    )
    serve.description = DESCRIPTION
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    serve.add_argument("--port", type=int, default=8000, help="port (default: %(default)s)")
    serve.add_argument(
        "--max-age",
        type=int,
        default=30,
        metavar="SECONDS",
        help="Cache-Control max-age bound (default: %(default)s)",
    )
    serve.add_argument(
        "--pool-size", type=int, default=10, help="database connections (default: %(default)s)"
    )
    serve.add_argument(
        "--cache-entries",
        type=int,
        default=1024,
        help="bodies kept and revalidated per URL and token; 0 composes every answer "
        "(default: %(default)s)",
    )


def run(args: argparse.Namespace, dsn: str) -> None:
    """Serve until interrupted."""
    from statusdb.tooling.cli import CliError

    try:
        import uvicorn

        from statusdb.http.app import create_app, default_routes
    except ImportError as exc:
        raise CliError(
            f"`statusdb serve` needs the http extra ({exc.name} is missing): "
            "pip install 'statusdb[http]'"
        ) from exc
    app = create_app(
        dsn,
        routes=default_routes(base_url=f"http://{args.host}:{args.port}"),
        max_age=args.max_age,
        pool_size=args.pool_size,
        cache_entries=args.cache_entries,
    )
    print(f"serving http://{args.host}:{args.port}/pages/<slug>/api/v2/summary.json", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
