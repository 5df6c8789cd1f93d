"""Infrastructure around connections: pools that keep prepared statements (`pool`), reads on
streaming replicas with read-your-writes tokens (`routing`), and the migration runner backend
services call at deploy time (`migrations`).

Modules here import `statusdb.db`, `statusdb.domain` and `statusdb.errors`, never an operation.
"""
