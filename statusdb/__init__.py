"""statusdb: a PostgreSQL data layer for incident-driven status pages.

The public API in one place: the modules below (each lists its operations and types; see
docs/api.md, "API reference") and the error classes every operation raises. Call an operation with
a psycopg connection first (`pages.get(conn, page_id)`, or `await pages.get(aconn, page_id)`).

The package is laid out in layers (CONTRIBUTING.md, "Layout"; `tests/test_layers.py` keeps a
lower layer from importing a higher one):

* `statusdb.errors`: the exceptions (and the translation of PostgreSQL's errors into them);
* `statusdb.domain`: pure logic with no psycopg import (`recurrence`, `destinations`, `types`,
  `unsubscribe_links`, `serialise`, and the internals `validate`, `tokens`);
* `statusdb.db`: the database layer, internal (`executor`, `queries` with the named queries
  in `statusdb/db/sql/`, `streams`, `resources`);
* the operations, one module per aggregate, at the top (`statusdb.pages`, ...; they never
  commit);
* `statusdb.workers`: the loops that own their transactions (`outbox`, `deliveries`,
  `scheduler`);
* `statusdb.infra`: connection pools, replica routing and the migration runner;
* `statusdb.tooling`: the command line, the demo and the local cluster (not part of the API).

The public modules of the sub-packages are re-exported here under their short names, so
`from statusdb import routing` and `statusdb.types.ComponentStatus` work; importing by path
names their package (`from statusdb.infra.routing import Router`).
"""

from __future__ import annotations

import importlib as _importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the names as type checkers see them; at run time they load on first use
    from statusdb import (
        components,
        doctor,
        errors,
        feed,
        groups,
        idempotency,
        incident_templates,
        incidents,
        maintenance,
        pages,
        status,
        status_incidents,
        subscribers,
        teams,
        tenancy,
        translations,
        uptime,
        views,
    )
    from statusdb.domain import destinations, recurrence, serialise, types, unsubscribe_links
    from statusdb.errors import (
        CommitOutcomeUnknown,
        Conflict,
        DataCorrupt,
        InvalidArgument,
        InvalidInput,
        NotFound,
        NotMigrated,
        ReadOnlyTransaction,
        Retryable,
        StatusdbError,
        Unauthorized,
        Unavailable,
    )
    from statusdb.infra import migrations, pool, routing
    from statusdb.workers import deliveries, outbox, scheduler

    __version__: str

_PACKAGE_OF: dict[str, str] = {
    **dict.fromkeys(
        (
            "components", "doctor", "errors", "feed", "groups", "idempotency",
            "incident_templates", "incidents", "maintenance", "pages", "status",
            "status_incidents", "subscribers", "teams", "tenancy", "translations", "uptime",
            "views",
        ),
        "statusdb",
    ),
    **dict.fromkeys(
        ("destinations", "recurrence", "serialise", "types", "unsubscribe_links"),
        "statusdb.domain",
    ),
    **dict.fromkeys(("migrations", "pool", "routing"), "statusdb.infra"),
    **dict.fromkeys(("deliveries", "outbox", "scheduler"), "statusdb.workers"),
}  # fmt: skip
"""Each public module's package: `statusdb.<name>` loads `<package>.<name>` on first use."""

_ERRORS = frozenset(
    (
        "CommitOutcomeUnknown", "Conflict", "DataCorrupt", "InvalidArgument", "InvalidInput",
        "NotFound", "NotMigrated", "ReadOnlyTransaction", "Retryable", "StatusdbError",
        "Unauthorized", "Unavailable",
    )
)  # fmt: skip


def __getattr__(name: str) -> Any:
    """Load a public module (or an error class, or `__version__`) when it is first asked for.

    Importing statusdb used to import every module (psycopg, yoyo, importlib.metadata and all
    the operations): ~0.18 s of CPU for each process, also for one that runs a single command
    (`statusdb worker`, a script using two modules). Loaded on first use, a name is then an
    ordinary attribute of the package (`from statusdb import pages` works as before).
    """
    package = _PACKAGE_OF.get(name)
    if package is not None:
        value: Any = _importlib.import_module(f"{package}.{name}")
    elif name in _ERRORS:
        value = getattr(_importlib.import_module("statusdb.errors"), name)
    elif name == "__version__":
        value = _installed_version()
    else:
        raise AttributeError(f"module 'statusdb' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


def _installed_version() -> str:
    """The installed distribution's version (PEP 440), as `statusdb --version` prints it."""
    from importlib import metadata

    try:
        return metadata.version("statusdb")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "0.0.0+unknown"


#: The error classes and the public modules.
__all__ = [
    "CommitOutcomeUnknown",
    "Conflict",
    "DataCorrupt",
    "InvalidArgument",
    "InvalidInput",
    "NotFound",
    "NotMigrated",
    "ReadOnlyTransaction",
    "Retryable",
    "StatusdbError",
    "Unauthorized",
    "Unavailable",
    "__version__",
    "components",
    "deliveries",
    "destinations",
    "doctor",
    "errors",
    "feed",
    "groups",
    "idempotency",
    "incident_templates",
    "incidents",
    "maintenance",
    "migrations",
    "outbox",
    "pages",
    "pool",
    "recurrence",
    "routing",
    "scheduler",
    "serialise",
    "status",
    "status_incidents",
    "subscribers",
    "teams",
    "tenancy",
    "translations",
    "types",
    "unsubscribe_links",
    "uptime",
    "views",
]
