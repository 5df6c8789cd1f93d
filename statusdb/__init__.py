"""statusdb: a PostgreSQL data layer for incident-driven status pages.

The public API in one place: the modules below (each lists its operations and types; see
docs/api.md, "API reference") and the error classes every operation raises. Call an operation with
a psycopg connection first (`pages.get(conn, page_id)`, or `await pages.get(aconn, page_id)`).
The local-cluster tooling (the package `statusdb.tooling`: `cli`, `demo`, `localpg`) and the
internals (`executor`, `queries`, `resources`, `streams`, `tokens`, `validate`) are not part of
it.
"""

from importlib import metadata as _metadata

from statusdb import (
    components,
    deliveries,
    destinations,
    errors,
    feed,
    groups,
    incident_templates,
    incidents,
    maintenance,
    migrations,
    outbox,
    pages,
    pool,
    recurrence,
    routing,
    status,
    status_incidents,
    subscribers,
    teams,
    tenancy,
    types,
    uptime,
    views,
)
from statusdb.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    NotMigrated,
    Retryable,
    StatusdbError,
    Unauthorized,
)

try:
    __version__: str = _metadata.version("statusdb")
    """The installed distribution's version (PEP 440), as `statusdb --version` prints it."""
except _metadata.PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0.0.0+unknown"

#: The error classes and the public modules.
__all__ = [
    "Conflict",
    "InvalidInput",
    "NotFound",
    "NotMigrated",
    "Retryable",
    "StatusdbError",
    "Unauthorized",
    "__version__",
    "components",
    "deliveries",
    "destinations",
    "errors",
    "feed",
    "groups",
    "incident_templates",
    "incidents",
    "maintenance",
    "migrations",
    "outbox",
    "pages",
    "pool",
    "recurrence",
    "routing",
    "status",
    "status_incidents",
    "subscribers",
    "teams",
    "tenancy",
    "types",
    "uptime",
    "views",
]
