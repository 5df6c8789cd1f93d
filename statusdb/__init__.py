"""statusdb: a PostgreSQL data layer for incident-driven status pages.

The public API in one place: the modules below (each lists its operations and types; see the
README's "API reference") and the error classes every operation raises. Call an operation with
a psycopg connection first (`pages.get(conn, page_id)`, or `await pages.get(aconn, page_id)`).
The local-cluster tooling (the package `statusdb.tooling`: `cli`, `demo`, `localpg`) and the
internals (`executor`, `queries`, `resources`, `streams`, `tokens`, `validate`) are not part of
it.
"""

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
    DataCorrupt,
    InvalidInput,
    NotFound,
    NotMigrated,
    Retryable,
    StatusdbError,
    Unauthorized,
)

#: The error classes and the public modules.
__all__ = [
    "Conflict",
    "DataCorrupt",
    "InvalidInput",
    "NotFound",
    "NotMigrated",
    "Retryable",
    "StatusdbError",
    "Unauthorized",
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
