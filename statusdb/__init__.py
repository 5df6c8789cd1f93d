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

from importlib import metadata as _metadata

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

try:
    __version__: str = _metadata.version("statusdb")
    """The installed distribution's version (PEP 440), as `statusdb --version` prints it."""
except _metadata.PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0.0.0+unknown"

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
    "types",
    "unsubscribe_links",
    "uptime",
    "views",
]
