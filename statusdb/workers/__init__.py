"""Worker loops that own their transactions: the subscriber outbox (`outbox`, with
`outbox.process_all`) and delivery bookkeeping (`deliveries`, with `deliveries.Bookkeeper`).

Their operations (enqueue, claim, record) are called like any other; the loops commit. Modules
here may import the operations, `statusdb.db`, `statusdb.domain` and `statusdb.errors`.
"""
