"""The database layer, internal: the executor that runs operations on sync and async psycopg
connections (`executor`), the named queries (`queries`, read from `statusdb/db/sql/*.sql`),
server-side cursors (`streams`) and where the packaged SQL files live (`resources`).

Modules here import `statusdb.errors`, `statusdb.domain` and each other, never an operation.
"""
