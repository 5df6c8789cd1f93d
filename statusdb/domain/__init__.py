"""Pure domain logic: no psycopg import, no I/O (tests/test_layers.py checks it).

Public: `recurrence` (RFC 5545 expansion of maintenance schedules), `destinations` (the rules
for subscriber destinations and outbound URLs), `types` (the enums, limits and input classes).
Internal: `validate` (argument checks of every operation), `tokens` (secret tokens and their
digests). Modules here import only `statusdb.errors` and each other.
"""
